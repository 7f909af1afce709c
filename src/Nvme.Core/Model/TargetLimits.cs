namespace Nvme.Core.Model;

/// <summary>Limits and identity values shared by every controller of the target. Transport limits (in-capsule data,
/// PDU sizes) are the transport's own and reach the core through <see cref="TransportDescriptor"/>.</summary>
public sealed record TargetLimits
{
    /// <summary>CAP.MQES: maximum queue entries, 0's based (127 means 128 entries).</summary>
    public ushort MaxQueueEntries { get; init; } = 127;
    /// <summary>MDTS as a power of two of 4 KiB pages; 8 = 1 MiB per command. 0 means no limit (not recommended).</summary>
    public byte Mdts { get; init; } = 8;
    /// <summary>I/O queues a controller may have (Number of Queues feature).</summary>
    public ushort MaxIoQueues { get; init; } = 64;
    /// <summary>NN: highest NSID a subsystem can hold.</summary>
    public uint MaxNamespaces { get; init; } = 1024;
    /// <summary>AERL (0's based): Async Event Requests parked per controller is AERL + 1.</summary>
    public byte AsyncEventRequestLimit { get; init; } = 3;
    /// <summary>Entries in the error log (ELPE + 1).</summary>
    public int ErrorLogEntries { get; init; } = 64;

    /// <summary>Bytes all data buffers larger than <see cref="DataBufferPool.SmallLimit"/> may take together
    /// (at least one <see cref="MaxTransferBytes"/>). A command that needs one while the budget is spent waits
    /// (its R2T, or its read, starts when a buffer comes back), so the target's memory does not grow with
    /// connections x queue depth.</summary>
    public long DataBufferBudget { get; init; } = 64L << 20;

    /// <summary>Bytes all memory namespaces together may promise (their sizes, allocated or not: a host may write
    /// every block). Adding or growing one past it is refused by whoever adds it; default
    /// <see cref="DefaultMemoryNamespaceLimit"/>.</summary>
    public long MemoryNamespaceLimit { get; init; } = DefaultMemoryNamespaceLimit;

    /// <summary>3/4 of the memory the GC sees as available (physical memory, or the container's limit).</summary>
    public static long DefaultMemoryNamespaceLimit => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4 * 3;

    /// <summary>Percent (1..100) of <see cref="DataBufferBudget"/> one host NQN may hold (at least one
    /// <see cref="MaxTransferBytes"/>). A host at its share waits for its own buffers to come back while the other
    /// hosts are served: a host that never sends the data for its R2Ts cannot starve them.</summary>
    public int HostBufferShare { get; init; } = 50;

    /// <summary>Controllers (discovery controllers included) one host NQN may hold at once; a Connect beyond gets
    /// Connect Controller Busy.</summary>
    public int MaxControllersPerHost { get; init; } = 64;

    /// <summary>How long a DH-HMAC-CHAP exchange may sit between two steps, and a queue that must authenticate may go
    /// without doing so after its Connect, before the target drops the exchange (and closes the queue if it is not
    /// authenticated). The kernel target uses KATO (120 s without); 10 s is plenty for a host that means it.</summary>
    public TimeSpan AuthenticationTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Largest transfer of one command in bytes (MDTS; 0 = unlimited is capped at 16 MiB internally).</summary>
    public int MaxTransferBytes => Mdts == 0 ? 16 << 20 : 4096 << Mdts;
}
