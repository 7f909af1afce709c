using Nvme.Core.Model;

namespace Nvme.Core;

/// <summary>Told when a buffer <see cref="DataBufferPool.TryRent"/> could not give at once is attached.</summary>
public interface IDataBufferWaiter
{
    /// <summary>Any thread, no lock held: <paramref name="request"/> now has its buffer.</summary>
    void BufferGranted(NvmeRequest request);
}

/// <summary>
/// The target's large data buffers (more than <see cref="SmallLimit"/> bytes), under one byte budget. Buffers
/// come in power-of-two sizes, are pinned and reused; created bytes never exceed the budget (free buffers of
/// another size are dropped to make room). A request that cannot have one waits in FIFO order and is handed
/// the first buffer that fits. Small buffers (in-capsule data, admin pages) use the shared ArrayPool.
/// </summary>
public sealed class DataBufferPool
{
    /// <summary>Buffers up to this size are not budgeted (a 4 KiB command never waits).</summary>
    public const int SmallLimit = 16 * 1024;
    private const int MinClassShift = 15; // 32 KiB

    private readonly Lock _lock = new();
    private readonly Stack<byte[]>[] _free;
    private readonly LinkedList<(NvmeRequest Request, IDataBufferWaiter Waiter)> _waiters = new();
    private readonly long _budget;
    private long _created;
    private int _inUse;

    public DataBufferPool(TargetLimits limits)
    {
        int maxShift = ClassShift(limits.MaxTransferBytes);
        _free = new Stack<byte[]>[maxShift - MinClassShift + 1];
        for (int i = 0; i < _free.Length; i++) _free[i] = new Stack<byte[]>();
        _budget = Math.Max(limits.DataBufferBudget, 1L << maxShift);
    }

    /// <summary>Bytes of buffers in existence (in use or free), at most the budget.</summary>
    public long CreatedBytes { get { lock (_lock) return _created; } }
    /// <summary>Buffers attached to requests right now.</summary>
    public int InUse => Volatile.Read(ref _inUse);
    /// <summary>Requests waiting for a buffer.</summary>
    public int Waiting { get { lock (_lock) return _waiters.Count; } }

    private static int ClassShift(int size) => Math.Max(MinClassShift, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)size - 1));

    /// <summary>Attaches a buffer of at least <see cref="NvmeRequest.DataLength"/> bytes to <paramref name="request"/>,
    /// or queues it: then <paramref name="waiter"/> is told once it has one. False means: wait.</summary>
    public bool TryRent(NvmeRequest request, IDataBufferWaiter waiter)
    {
        byte[]? buffer;
        lock (_lock)
        {
            buffer = _waiters.Count == 0 ? Take(ClassShift(request.DataLength)) : null; // FIFO: no overtaking
            if (buffer is null)
            {
                _waiters.AddLast((request, waiter));
                return false;
            }
        }
        request.AttachPooledBuffer(buffer, this);
        Interlocked.Increment(ref _inUse);
        return true;
    }

    /// <summary>Takes a request out of the waiting list (its queue is closing); false when it was granted already.</summary>
    public bool CancelWait(NvmeRequest request)
    {
        lock (_lock)
        {
            for (var n = _waiters.First; n != null; n = n.Next)
                if (ReferenceEquals(n.Value.Request, request))
                {
                    _waiters.Remove(n);
                    return true;
                }
        }
        return false;
    }

    internal void Return(byte[] buffer)
    {
        Interlocked.Decrement(ref _inUse);
        NvmeRequest? next = null;
        IDataBufferWaiter? waiter = null;
        byte[]? granted = null;
        lock (_lock)
        {
            _free[ClassShift(buffer.Length) - MinClassShift].Push(buffer);
            if (_waiters.First is { } head && Take(ClassShift(head.Value.Request.DataLength)) is { } b)
            {
                (next, waiter) = head.Value;
                _waiters.RemoveFirst();
                granted = b;
            }
        }
        if (next is null) return;
        next.AttachPooledBuffer(granted!, this);
        Interlocked.Increment(ref _inUse);
        waiter!.BufferGranted(next);
    }

    /// <summary>Under the lock: a free buffer of the class, or a new one if the budget allows (dropping free
    /// buffers of other classes to make room); null when the budget is spent.</summary>
    private byte[]? Take(int shift)
    {
        var stack = _free[shift - MinClassShift];
        if (stack.TryPop(out var b)) return b;
        long size = 1L << shift;
        for (int i = 0; i < _free.Length && _created + size > _budget; i++)
            while (_created + size > _budget && _free[i].TryPop(out var drop)) _created -= drop.Length;
        if (_created + size > _budget) return null;
        _created += size;
        return GC.AllocateUninitializedArray<byte>((int)size, pinned: true);
    }
}
