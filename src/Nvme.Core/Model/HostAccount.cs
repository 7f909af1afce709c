namespace Nvme.Core.Model;

/// <summary>
/// What one host NQN holds across the target: its controllers (discovery included, bounded by
/// <see cref="TargetLimits.MaxControllersPerHost"/>) and the bytes of data buffers attached to its commands (bounded
/// by <see cref="TargetLimits.HostBufferShare"/>). One object per host NQN while it has a controller, shared by all
/// of them, so the buffer accounting on the I/O path is a field update under the pool's lock, no lookup.
/// </summary>
public sealed class HostAccount
{
    internal HostAccount(string hostNqn, bool unlimited = false)
    {
        HostNqn = hostNqn;
        Unlimited = unlimited;
    }

    public string HostNqn { get; }

    /// <summary>Controllers of this host right now.</summary>
    public int Controllers => Volatile.Read(ref ControllerCount);

    /// <summary>Bytes of budgeted data buffers attached to this host's commands right now.</summary>
    public long BufferBytes => Volatile.Read(ref BufferBytesHeld);

    // Under NvmeTarget's host lock.
    internal int ControllerCount;
    // DataBufferPool, under its lock: bytes held, this host's waiting requests (FIFO, linked through the requests)
    // and its place in the pool's round of hosts that can be served. Unlimited: no share (requests of no host).
    internal long BufferBytesHeld;
    internal NvmeRequest? WaitHead, WaitTail;
    internal HostAccount? RoundPrev, RoundNext;
    internal bool InRound;
    internal readonly bool Unlimited;
}
