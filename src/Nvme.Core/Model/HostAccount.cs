namespace Nvme.Core.Model;

/// <summary>
/// What one host NQN holds across the target: its controllers (discovery included, bounded by
/// <see cref="TargetLimits.MaxControllersPerHost"/>) and the bytes of data buffers attached to its commands (bounded
/// by its share of the data buffer budget). One object per host NQN while it has a controller, shared by all
/// of them, so the buffer accounting on the I/O path is a field update under the pool's lock, no lookup.
/// </summary>
public sealed class HostAccount
{
    internal HostAccount(string hostNqn) => HostNqn = hostNqn;

    public string HostNqn { get; }

    /// <summary>Controllers of this host right now.</summary>
    public int Controllers => Volatile.Read(ref ControllerCount);

    /// <summary>Bytes of budgeted data buffers attached to this host's commands right now.</summary>
    public long BufferBytes => Volatile.Read(ref BufferBytesHeld);

    // Under NvmeTarget's host lock.
    internal int ControllerCount;
    // Under DataBufferPool's lock.
    internal long BufferBytesHeld;
    /// <summary>DataBufferPool: the grant pass that found this host at its share (its later waiters are skipped too,
    /// so a host's own commands stay in order).</summary>
    internal long SkippedInPass;
}
