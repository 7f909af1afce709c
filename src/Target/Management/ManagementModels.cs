namespace Target.Management;

/// <summary>A subsystem as the API shows it; <see cref="Ports"/> null means every port. <see cref="NamespaceAttachHosts"/>:
/// the hosts holding the in-band attachment privilege.</summary>
public sealed record SubsystemInfo(string Nqn, string Serial, string Model, string FirmwareRevision, bool AllowAnyHost,
    IReadOnlyList<string> AllowedHosts, IReadOnlyList<NamespaceInfo> Namespaces, int Controllers, IReadOnlyList<ushort>? Ports = null,
    IReadOnlyList<string>? NamespaceAttachHosts = null);

/// <summary>A namespace as the API shows it. <see cref="Visibility"/> "auto" or "restricted" (masking) with its
/// <see cref="Hosts"/>; <see cref="HostsNotAllowed"/>: listed hosts the subsystem no longer allows (kept, without effect).</summary>
public sealed record NamespaceInfo(uint Nsid, string Backend, string? Path, long SizeBytes, int BlockSize, ulong Blocks,
    Guid Uuid, string Nguid, string Eui64, int InFlight, string Visibility = "auto", IReadOnlyList<string>? Hosts = null,
    IReadOnlyList<string>? HostsNotAllowed = null, bool WriteProtected = false, uint AnaGroup = 1);

public sealed record ControllerInfo(ushort Cntlid, string Subsystem, string HostNqn, Guid HostId, bool Discovery,
    int IoQueues, uint KeepAliveTimeoutMs, DateTimeOffset CreatedAt, IReadOnlyList<QueueInfo> Queues);

public sealed record QueueInfo(ushort Qid, string Peer, int Size, bool SqFlowControlDisabled);
