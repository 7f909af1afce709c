using Nvme.Core;
using Nvme.Core.Spec;

namespace Transport.Tcp;

/// <summary>NVMe/TCP transport settings (the NVMe limits themselves live in Nvme.Core's TargetLimits; what of these
/// the core reports, it learns from <see cref="Describe"/>).</summary>
public sealed record TcpTransportOptions
{
    /// <summary>In-capsule data accepted on the admin queue. The Linux host assumes 8 KiB whatever IOCCSZ says.</summary>
    public int AdminInCapsuleDataSize { get; init; } = 8192;
    /// <summary>In-capsule data accepted on I/O queues; the core reports it as IOCCSZ = (this + 64) / 16.</summary>
    public int InCapsuleDataSize { get; init; } = 8192;
    /// <summary>Largest H2CData PDU payload (ICResp MAXH2CDATA); R2Ts are cut to this size.</summary>
    public int MaxH2CData { get; init; } = 128 * 1024;
    /// <summary>Largest C2HData PDU payload; reads larger than this go out in several PDUs.</summary>
    public int MaxC2HData { get; init; } = 128 * 1024;
    /// <summary>Send a read's completion as C2HData SUCCESS (no CapsuleResp) when the host disabled SQ flow control.</summary>
    public bool C2HSuccess { get; init; } = true;
    /// <summary>A PDU that started arriving must be complete within this time (cumulative: partial reads do not
    /// restart it), or the connection is closed. <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</summary>
    public TimeSpan PduTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>From accept, the ICReq and a successful Connect must both have arrived within this time, or the
    /// connection is closed. <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>The H2CData answering an R2T must be complete within this time, or the command fails (its buffer
    /// goes back) and the connection is closed. <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</summary>
    public TimeSpan R2TTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>TCP keep-alive idle time on every NVMe/TCP socket (then probes every 10 s, 6 of them): a host that
    /// vanished without a FIN or RST is found even with no keep-alive timeout of its own. Null turns it off.</summary>
    public TimeSpan? TcpKeepAlive { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>NVMe/TCP connections open at once; more are closed as they are accepted.</summary>
    public int MaxConnections { get; init; } = 1024;
    /// <summary>Receive the rest of a large H2CData payload from the socket straight into the command's buffer (one copy
    /// fewer per written byte) instead of through the input pipe. On by default; off only to compare the two.</summary>
    public bool DirectDataReceive { get; init; } = true;
    /// <summary>Null (the default): event-driven sockets. Set: the polling mode, dedicated reactor threads that
    /// busy-poll their connections' sockets (see <see cref="Net.PollingReactor"/>).</summary>
    public Net.PollingOptions? Polling { get; init; }

    /// <summary>How this transport describes itself to the core: TRTYPE TCP, SQ flow control disable supported
    /// (TREQ), and the I/O queues' in-capsule data size.</summary>
    public TransportDescriptor Describe() => new()
    {
        Type = TransportType.Tcp,
        Requirements = DiscoveryLogEntry.TreqSqFlowControlDisableSupported,
        InCapsuleDataSize = InCapsuleDataSize,
    };
}
