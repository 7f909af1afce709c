namespace Target.Management;

/// <summary>A subsystem as the API shows it; <see cref="Ports"/> null means every port.</summary>
public sealed record SubsystemInfo(string Nqn, string Serial, string Model, string FirmwareRevision, bool AllowAnyHost,
    IReadOnlyList<string> AllowedHosts, IReadOnlyList<NamespaceInfo> Namespaces, int Controllers, IReadOnlyList<ushort>? Ports = null);

public sealed record NamespaceInfo(uint Nsid, string Backend, string? Path, long SizeBytes, int BlockSize, ulong Blocks,
    Guid Uuid, string Nguid, string Eui64, int InFlight);

public sealed record ControllerInfo(ushort Cntlid, string Subsystem, string HostNqn, Guid HostId, bool Discovery,
    int IoQueues, uint KeepAliveTimeoutMs, DateTimeOffset CreatedAt, IReadOnlyList<QueueInfo> Queues);

public sealed record QueueInfo(ushort Qid, string Peer, int Size, bool SqFlowControlDisabled);
