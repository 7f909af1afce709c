using System.Buffers;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core;

public enum DataDirection : byte { None, HostToController, ControllerToHost }

/// <summary>
/// One command in flight: its SQE, its completion, and its data buffer. Transports pool these per queue
/// (derive to add transport state) and reuse them, so steady-state I/O allocates nothing.
/// </summary>
public class NvmeRequest
{
    private byte[]? _buffer;
    private DataBufferPool? _bufferPool;
    private HostAccount? _bufferHost;

    // DataBufferPool, under its lock: the host FIFO this request waits in (WaitHost set while it waits), and a
    // buffer granted to it that is about to be attached.
    internal NvmeRequest? WaitPrev, WaitNext;
    internal HostAccount? WaitHost, GrantedHost;
    internal IDataBufferWaiter? Waiter;
    internal byte[]? GrantedBuffer;

    public SubmissionQueueEntry Sqe;
    public CompletionQueueEntry Cqe;

    /// <summary>Bytes of data the command moves (from the SGL length, checked by <see cref="FabricQueue.Prepare"/>).</summary>
    public int DataLength { get; internal set; }
    public DataDirection Direction { get; internal set; }

    /// <summary>The namespace this request holds an in-flight reference on, released at completion.</summary>
    internal Namespace? Namespace;
    /// <summary>The namespace epoch the in-flight reference was taken in (see Namespace.TryAcquire).</summary>
    internal int NamespaceEpoch;
    internal FabricQueue? Queue;
    /// <summary>When the command was received (Stopwatch ticks), for latency measurement.</summary>
    public long StartTimestamp;
    /// <summary>The command's trace span, when it has one (admin commands while traced, sampled I/O).</summary>
    internal System.Diagnostics.Activity? Activity;

    public NvmeStatus Status => Cqe.Status;

    /// <summary>Set by the core on a completed request whose response must be the last thing sent on the connection
    /// (Disconnect): the transport closes once the response is out.</summary>
    public bool CloseAfterResponse { get; internal set; }

    private volatile bool _parked;

    /// <summary>The core holds this request with no answer until an event comes (a parked Asynchronous Event Request).
    /// A parked request does not keep a draining connection open. Any thread may read it.</summary>
    public bool IsParked { get => _parked; internal set => _parked = value; }

    // Bits 1:0: 0 running, 1 completed, 2 answered early by an abort (the store may still use the buffer).
    // Bits 63:2: a generation, bumped on every reuse, so an abort can never hit the next command by mistake.
    private long _state;

    /// <summary>Identifies this use of the (pooled) request object; pass it to <see cref="TryAbort"/>.</summary>
    public long Generation => Volatile.Read(ref _state) >> 2;

    /// <summary>True when this request was answered early by <see cref="TryAbort"/> and has now really finished:
    /// the transport sends nothing more for it and only recycles it.</summary>
    public bool CompletedAfterAbort { get; internal set; }

    /// <summary>Claims the right to answer this running request early (hot-remove of a namespace with stuck
    /// I/O), if it is still the use <paramref name="generation"/> and has not completed. The transport then
    /// sends an abort completion of its own and keeps the request (and its buffer) out of the pool until the
    /// real completion arrives.</summary>
    public bool TryAbort(long generation) => Interlocked.CompareExchange(ref _state, (generation << 2) | 2, generation << 2) == generation << 2;

    /// <summary>Marks the real completion; false when an abort answered the host already.</summary>
    internal bool MarkCompleted()
    {
        long s = Volatile.Read(ref _state);
        return (s & 3) == 0 && Interlocked.CompareExchange(ref _state, s | 1, s) == s;
    }

    /// <summary>The data buffer, exactly <see cref="DataLength"/> bytes. Rented from the shared pool on demand.</summary>
    public Memory<byte> Data => EnsureBuffer().AsMemory(0, DataLength);
    public Span<byte> DataSpan => EnsureBuffer().AsSpan(0, DataLength);

    private byte[] EnsureBuffer()
    {
        if (_buffer is null || _buffer.Length < DataLength)
        {
            ReturnBuffer();
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(DataLength, 512));
        }
        return _buffer;
    }

    /// <summary>Gives this request a budgeted buffer of <paramref name="pool"/>, charged to <paramref name="host"/>
    /// (see <see cref="DataBufferPool.TryRent(NvmeRequest, IDataBufferWaiter)"/>).</summary>
    internal void AttachPooledBuffer(byte[] buffer, DataBufferPool pool, HostAccount host)
    {
        ReturnBuffer();
        _buffer = buffer;
        _bufferPool = pool;
        _bufferHost = host;
    }

    private void ReturnBuffer()
    {
        if (_buffer is null) return;
        var (buffer, pool, host) = (_buffer, _bufferPool, _bufferHost);
        _buffer = null;
        _bufferPool = null;
        _bufferHost = null;
        if (pool != null) pool.Return(buffer, host!);
        else ArrayPool<byte>.Shared.Return(buffer);
    }

    /// <summary>Prepares the object for the next command. Budgeted and large buffers go back to their pool;
    /// small ones stay.</summary>
    public virtual void Reset()
    {
        if (_buffer != null && (_bufferPool != null || _buffer.Length > 64 * 1024)) ReturnBuffer();
        Namespace = null;
        Queue = null;
        Volatile.Write(ref _state, ((_state >> 2) + 1) << 2); // next generation, running
        CompletedAfterAbort = false;
        CloseAfterResponse = false;
        IsParked = false;
        DataLength = 0;
        Direction = DataDirection.None;
        Cqe = default;
    }

    /// <summary>Returns every pooled resource (when the owning queue goes away).</summary>
    public void ReleaseBuffers() => ReturnBuffer();
}
