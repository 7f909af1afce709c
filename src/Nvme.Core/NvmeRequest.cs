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

    public SubmissionQueueEntry Sqe;
    public CompletionQueueEntry Cqe;

    /// <summary>Bytes of data the command moves (from the SGL length, checked by <see cref="FabricQueue.Prepare"/>).</summary>
    public int DataLength { get; internal set; }
    public DataDirection Direction { get; internal set; }

    /// <summary>The namespace this request holds an in-flight reference on, released at completion.</summary>
    internal Namespace? Namespace;
    internal FabricQueue? Queue;
    /// <summary>When the command was received (Stopwatch ticks), for latency measurement.</summary>
    public long StartTimestamp;

    public NvmeStatus Status => Cqe.Status;

    /// <summary>The data buffer, exactly <see cref="DataLength"/> bytes. Rented from the shared pool on demand.</summary>
    public Memory<byte> Data => EnsureBuffer().AsMemory(0, DataLength);
    public Span<byte> DataSpan => EnsureBuffer().AsSpan(0, DataLength);

    private byte[] EnsureBuffer()
    {
        if (_buffer is null || _buffer.Length < DataLength)
        {
            if (_buffer != null) ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = ArrayPool<byte>.Shared.Rent(Math.Max(DataLength, 512));
        }
        return _buffer;
    }

    /// <summary>Prepares the object for the next command. Large buffers go back to the pool; small ones stay.</summary>
    public virtual void Reset()
    {
        if (_buffer != null && _buffer.Length > 64 * 1024)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }
        Namespace = null;
        Queue = null;
        DataLength = 0;
        Direction = DataDirection.None;
        Cqe = default;
    }

    /// <summary>Returns every pooled resource (when the owning queue goes away).</summary>
    public void ReleaseBuffers()
    {
        if (_buffer != null) ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = null;
    }
}

/// <summary>
/// What the core needs from a transport queue (the model is the kernel's nvmet_fabrics_ops): send a completed
/// request back, and tear the connection down.
/// </summary>
public interface IQueueTransport
{
    /// <summary>Sends the response for a completed request (data first for reads). Thread-safe; may be called
    /// from any thread, long after the command arrived (async events).</summary>
    void QueueResponse(NvmeRequest request);

    /// <summary>Closes the connection (controller teardown, keep-alive expiry). Thread-safe, idempotent.</summary>
    void Terminate(string reason);

    /// <summary>The peer address for logs ("10.0.2.15:51234").</summary>
    string PeerAddress { get; }
}
