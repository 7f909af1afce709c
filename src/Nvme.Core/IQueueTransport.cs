using Nvme.Core.Spec;

namespace Nvme.Core;

/// <summary>
/// The seam between the core and a transport queue (one connection), shaped like the kernel target's
/// nvmet_fabrics_ops. The transport describes itself (<see cref="Descriptor"/>) and is told what happened; the
/// core never names a transport and the transport never infers the core's state.
/// </summary>
public interface IQueueTransport
{
    /// <summary>What this transport is (type, discovery requirements, limits), for what the core reports of it.</summary>
    TransportDescriptor Descriptor { get; }

    /// <summary>A Connect on this queue succeeded (the kernel's install_queue), called before its response is queued,
    /// on the thread that executes the Connect: from the next command on this is queue <paramref name="queueId"/>
    /// (0 = admin) of <paramref name="queueSize"/> entries (SQSIZE + 1); <paramref name="sqFlowControlDisabled"/>: the
    /// host disabled SQ flow control (Connect CATTR bit 2).</summary>
    void QueueInstalled(ushort queueId, int queueSize, bool sqFlowControlDisabled);

    /// <summary>Sends the response for a completed request (data first for reads). Thread-safe; may be called
    /// from any thread, long after the command arrived (async events). When <see cref="NvmeRequest.CloseAfterResponse"/>
    /// is set, the transport closes the connection once this response is sent.</summary>
    void QueueResponse(NvmeRequest request);

    /// <summary>Closes the connection (controller teardown, keep-alive expiry). Thread-safe, idempotent.</summary>
    void Terminate(string reason);

    /// <summary>Answers every running request that <paramref name="match"/> selects with <paramref name="status"/>
    /// now, before its store operation returns (see <see cref="NvmeRequest.TryAbort(long)"/>). Returns how many.</summary>
    int AbortRequests(Func<NvmeRequest, bool> match, NvmeStatus status);

    /// <summary>The peer address for logs ("10.0.2.15:51234").</summary>
    string PeerAddress { get; }
}

/// <summary>
/// What a transport tells the core about itself, as the kernel target's nvmet_fabrics_ops type and its port's
/// discovery address and inline data size do. The core copies these into the discovery log, the error log and
/// Identify Controller.
/// </summary>
public sealed record TransportDescriptor
{
    /// <summary>TRTYPE of discovery log entries and error log entries.</summary>
    public required TransportType Type { get; init; }

    /// <summary>TREQ of this transport's discovery log entries (see <see cref="DiscoveryLogEntry.TreqSqFlowControlDisableSupported"/>).</summary>
    public byte Requirements { get; init; }

    /// <summary>In-capsule data bytes an I/O queue accepts: Identify Controller IOCCSZ is (this + 64) / 16.</summary>
    public int InCapsuleDataSize { get; init; }
}
