using System.Buffers;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Nvme.Core.Spec;

namespace Nvme.Core.Storage.Rbd;

/// <summary>
/// A Ceph RADOS Block Device image as a namespace's store, through librbd's asynchronous C API: each read, write,
/// flush, discard and write-zeroes is one rbd_aio_* call whose completion callback (on a librbd thread) completes the
/// command's ValueTask — no thread waits per I/O, nothing allocates per I/O (operations are pooled, buffers pinned
/// for the call). The size is the image's; <see cref="Resize"/> resizes the image; a resize by anyone else reaches
/// <see cref="ExternallyResized"/> through librbd's update watch. Errors carry the NVMe status a host gets:
/// ENOSPC/EDQUOT Capacity Exceeded; a blocklisted client (another gateway took this one's ANA group over and fenced it)
/// Asymmetric Access Inaccessible, a path error, so the host retries the command on another path; the rest Internal
/// Error (a host may retry it).
/// </summary>
public sealed unsafe class RbdBlockStore : IBlockStore
{
    private readonly RbdCluster _cluster;
    private IntPtr _ioctx, _image;
    private ulong _watch;
    private bool _watching;
    private GCHandle _self;
    private long _length;
    private int _closed;
    private readonly ConcurrentQueue<Operation> _pool = new();

    private RbdBlockStore(RbdCluster cluster, IntPtr ioctx, IntPtr image, string pool, string name, long length, bool created)
    {
        _cluster = cluster;
        _ioctx = ioctx;
        _image = image;
        Pool = pool;
        Image = name;
        _length = length;
        Created = created;
    }

    public string Pool { get; }
    public string Image { get; }
    /// <summary>This open created the image.</summary>
    public bool Created { get; }
    public long Length => Volatile.Read(ref _length);
    public bool IsOpen => Volatile.Read(ref _closed) == 0;
    public string? Problem => IsOpen ? _cluster.Problem : null;
    public string Description => $"rbd {Pool}/{Image} ({_cluster.Description})";
    /// <summary>The cluster the image is on (the same options share one connection).</summary>
    public RbdClusterOptions ClusterOptions => _cluster.Options;

    /// <summary>A librados/librbd option of the image's cluster connection, as it is set (null: no such option).</summary>
    public string? ClusterOption(string name) => _cluster.GetOption(name);

    /// <summary>The features of an image several gateways write at once: layering only (no exclusive-lock, which would
    /// move a lock between them on every change of writer and stall I/O while a dead holder's watch times out).</summary>
    public const ulong SharedImageFeatures = Librbd.FeatureLayering;

    /// <summary>The image's size changed by someone else (another client's resize): the new size in bytes. Called on a
    /// librbd thread; keep it short.</summary>
    public event Action<RbdBlockStore, long>? ExternallyResized;

    /// <summary>Opens POOL/IMAGE at its own size, or creates it at <paramref name="createSize"/> bytes when it does not
    /// exist and a size is given. Throws <see cref="StoreException"/> naming what is wrong (no such pool or image, authentication,
    /// unreachable cluster). <paramref name="createFeatures"/>: the features of an image this creates (null: librbd's
    /// default, which includes exclusive-lock; gateways sharing an image create it without, see README).</summary>
    public static RbdBlockStore Open(RbdClusterOptions cluster, string pool, string image, long? createSize = null, ulong? createFeatures = null)
    {
        if (string.IsNullOrEmpty(pool) || string.IsNullOrEmpty(image)) throw new StoreException("an RBD namespace needs a pool and an image (rbd:POOL/IMAGE)");
        var c = RbdCluster.Acquire(cluster);
        IntPtr io = IntPtr.Zero, img = IntPtr.Zero;
        try
        {
            io = c.OpenPool(pool);
            bool created = false;
            int rc = Librbd.rbd_open(io, image, out img, null);
            if (rc == -Librbd.ENOENT && createSize is long size)
            {
                if (size <= 0) throw new StoreException($"size {size} for RBD image {pool}/{image} is not positive");
                int order = 0; // librbd's default object size
                rc = createFeatures is ulong features
                    ? Librbd.rbd_create2(io, image, (ulong)size, features, ref order)
                    : Librbd.rbd_create(io, image, (ulong)size, ref order);
                if (rc < 0 && rc != -Librbd.EEXIST) throw new StoreException($"cannot create RBD image {pool}/{image}: {Librbd.Describe(rc)}");
                created = rc == 0;
                rc = Librbd.rbd_open(io, image, out img, null);
            }
            if (rc < 0)
                throw new StoreException(rc == -Librbd.ENOENT
                    ? $"RBD image {pool}/{image} does not exist (give a size to create it)"
                    : $"cannot open RBD image {pool}/{image}: {Librbd.Describe(rc)}");
            rc = Librbd.rbd_get_size(img, out ulong bytes);
            if (rc < 0) throw new StoreException($"cannot read the size of RBD image {pool}/{image}: {Librbd.Describe(rc)}");
            var store = new RbdBlockStore(c, io, img, pool, image, (long)bytes, created);
            store.Watch();
            return store;
        }
        catch
        {
            if (img != IntPtr.Zero) Librbd.rbd_close(img);
            if (io != IntPtr.Zero) Librbd.rados_ioctx_destroy(io);
            c.Release();
            throw;
        }
    }

    private void Watch()
    {
        _self = GCHandle.Alloc(this, GCHandleType.Weak);
        _watching = Librbd.rbd_update_watch(_image, out _watch, &OnUpdate, GCHandle.ToIntPtr(_self)) == 0;
    }

    [UnmanagedCallersOnly]
    private static void OnUpdate(IntPtr arg)
    {
        try
        {
            if (GCHandle.FromIntPtr(arg).Target is not RbdBlockStore s || !s.IsOpen) return;
            if (Librbd.rbd_get_size(s._image, out ulong bytes) < 0 || (long)bytes == s.Length) return;
            s.ExternallyResized?.Invoke(s, (long)bytes);
        }
        catch (Exception) { /* never into librbd's thread */ }
    }

    // ------------------------------------------------------------------ I/O

    public ValueTask ReadAsync(long offset, Memory<byte> destination)
    {
        var op = Rent(Kind.Read, destination.Length, offset, destination.Pin());
        return op.Start(Librbd.rbd_aio_read(_image, (ulong)offset, (nuint)destination.Length, (byte*)op.Pointer, op.Completion));
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
    {
        var op = Rent(Kind.Write, source.Length, offset, source.Pin());
        return op.Start(Librbd.rbd_aio_write(_image, (ulong)offset, (nuint)source.Length, (byte*)op.Pointer, op.Completion));
    }

    public ValueTask FlushAsync()
    {
        var op = Rent(Kind.Flush, 0, 0, default);
        return op.Start(Librbd.rbd_aio_flush(_image, op.Completion));
    }

    public ValueTask ZeroAsync(long offset, long length, bool deallocate)
    {
        var op = Rent(deallocate ? Kind.Discard : Kind.Zero, 0, offset, default);
        return op.Start(deallocate
            ? Librbd.rbd_aio_discard(_image, (ulong)offset, (ulong)length, op.Completion)
            : Librbd.rbd_aio_write_zeroes(_image, (ulong)offset, (nuint)length, op.Completion, 0, 0));
    }

    public void Resize(long newLength)
    {
        if (newLength <= 0) throw new StoreException($"size {newLength} is not positive");
        if (Librbd.rbd_get_size(_image, out ulong now) == 0 && (long)now != newLength)
        {
            int rc = Librbd.rbd_resize(_image, (ulong)newLength);
            if (rc < 0) throw new StoreException($"cannot resize RBD image {Pool}/{Image} to {newLength} bytes: {Librbd.Describe(rc)}");
        }
        Volatile.Write(ref _length, newLength);
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0) return;
        if (_watching) Librbd.rbd_update_unwatch(_image, _watch);
        Librbd.rbd_close(_image); // waits for operations still in flight
        Librbd.rados_ioctx_destroy(_ioctx);
        _image = _ioctx = IntPtr.Zero;
        if (_self.IsAllocated) _self.Free();
        _cluster.Release();
        while (_pool.TryDequeue(out var op)) op.Free();
    }

    // ------------------------------------------------------------------ operations

    private enum Kind : byte { Read, Write, Flush, Discard, Zero }

    private Operation Rent(Kind kind, int length, long offset, MemoryHandle pin)
    {
        if (!IsOpen)
        {
            pin.Dispose();
            throw new StoreIoException(NvmeStatus.InternalError, $"{Description} is closed");
        }
        if (!_pool.TryDequeue(out var op)) op = new Operation(this);
        op.Prepare(kind, length, offset, pin);
        return op;
    }

    /// <summary>One asynchronous librbd call: a completion that points back at this object, the pinned buffer, and
    /// the ValueTask the caller awaits. Back in the pool once its result was taken.</summary>
    private sealed class Operation : IValueTaskSource
    {
        private readonly RbdBlockStore _store;
        private GCHandle _self;
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true }; // never on librbd's thread
        private MemoryHandle _pin;
        private Kind _kind;
        private int _length;
        private long _offset;

        public Operation(RbdBlockStore store)
        {
            _store = store;
            _self = GCHandle.Alloc(this);
        }

        public IntPtr Completion { get; private set; }
        public void* Pointer => _pin.Pointer;

        public void Prepare(Kind kind, int length, long offset, MemoryHandle pin)
        {
            _core.Reset();
            _kind = kind;
            _length = length;
            _offset = offset;
            _pin = pin;
            int rc = Librbd.rbd_aio_create_completion(GCHandle.ToIntPtr(_self), &OnComplete, out var c);
            if (rc < 0)
            {
                _pin.Dispose();
                throw new StoreIoException(NvmeStatus.InternalError, $"{_store.Description}: cannot create an aio completion: {Librbd.Describe(rc)}", -rc);
            }
            Completion = c;
        }

        /// <summary>The rbd_aio_* call's own return: a refusal completes at once (no callback follows).</summary>
        public ValueTask Start(int rc)
        {
            if (rc < 0) Finish(rc, release: true);
            return new ValueTask(this, _core.Version);
        }

        [UnmanagedCallersOnly]
        private static void OnComplete(IntPtr completion, IntPtr arg)
        {
            try
            {
                var op = (Operation)GCHandle.FromIntPtr(arg).Target!;
                op.Finish((long)Librbd.rbd_aio_get_return_value(completion), release: true);
            }
            catch (Exception) { /* never into librbd's thread */ }
        }

        private void Finish(long rc, bool release)
        {
            if (release && Completion != IntPtr.Zero)
            {
                Librbd.rbd_aio_release(Completion);
                Completion = IntPtr.Zero;
            }
            _pin.Dispose();
            // A read answers the bytes it read (all of them, or it failed); the other operations answer 0.
            if (rc >= 0 && (_kind != Kind.Read || rc == _length)) _core.SetResult(true);
            else _core.SetException(Error(rc));
        }

        private StoreIoException Error(long rc)
        {
            string what = _kind switch
            {
                Kind.Read => $"read of {_length} bytes at {_offset}",
                Kind.Write => $"write of {_length} bytes at {_offset}",
                Kind.Flush => "flush",
                Kind.Discard => $"discard at {_offset}",
                _ => $"write zeroes at {_offset}",
            };
            if (rc >= 0) return new StoreIoException(NvmeStatus.UnrecoveredReadError, $"{_store.Description}: {what} returned {rc} bytes");
            int errno = (int)-rc;
            return new StoreIoException(errno == Librbd.EBLOCKLISTED ? NvmeStatus.AnaInaccessible : StoreIoException.StatusFor(errno), $"{_store.Description}: {what} failed: {Librbd.Describe((int)rc)}", errno);
        }

        public void GetResult(short token)
        {
            try { _core.GetResult(token); }
            finally
            {
                if (_store.IsOpen) _store._pool.Enqueue(this);
                else Free();
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        public void Free()
        {
            if (_self.IsAllocated) _self.Free();
        }
    }
}
