namespace Transport.Tcp;

/// <summary>NVMe/TCP transport settings (the NVMe limits themselves live in Nvme.Core's TargetLimits).</summary>
public sealed record TcpTransportOptions
{
    /// <summary>In-capsule data accepted on the admin queue. The Linux host assumes 8 KiB whatever IOCCSZ says.</summary>
    public int AdminInCapsuleDataSize { get; init; } = 8192;
    /// <summary>A PDU that started arriving must complete within this time, or the connection is closed.</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>A new connection must send its ICReq within this time.</summary>
    public TimeSpan ICReqTimeout { get; init; } = TimeSpan.FromSeconds(10);
}
