using Nvme.Core.Spec;

namespace Nvme.Core.Faults;

/// <summary>What an injected fault does to the I/O commands it matches.</summary>
public enum FaultAction
{
    /// <summary>Answer with <see cref="FaultSpec.Status"/>: instead of executing, or after executing
    /// (<see cref="FaultSpec.AfterExecute"/>: "written but reported failed").</summary>
    Error,
    /// <summary>Execute after an added latency (<see cref="FaultSpec.Delay"/> plus up to <see cref="FaultSpec.Jitter"/>);
    /// the queue keeps serving other commands meanwhile.</summary>
    Delay,
    /// <summary>Hold the command until the fault is cleared or expires, or for <see cref="FaultSpec.StallFor"/>; then
    /// execute it. A host whose I/O timeout passes first aborts and resets, as against a hung device.</summary>
    Stall,
}

/// <summary>
/// An injected I/O fault: which commands it matches (subsystem, namespace, host, queue, opcodes, LBA range), how often
/// it fires (probability, count), how long it lives, and what it does. Immutable; a <see cref="FaultRule"/> carries its
/// live state. Only NVM command set I/O commands on I/O queues are matched (admin and fabrics commands never are).
/// </summary>
public sealed record FaultSpec
{
    public required string SubsystemNqn { get; init; }
    /// <summary>0: every namespace of the subsystem.</summary>
    public uint Nsid { get; init; }
    /// <summary>Only commands from this host NQN (null: any host).</summary>
    public string? HostNqn { get; init; }
    /// <summary>Only commands on this I/O queue id (null: any queue).</summary>
    public ushort? QueueId { get; init; }
    /// <summary>I/O opcodes matched (null: every one).</summary>
    public IReadOnlyList<byte>? Opcodes { get; init; }
    /// <summary>First and last LBA of the range matched; a command matches when its blocks overlap the range. A fault
    /// with a range never matches commands without one (Flush, Dataset Management).</summary>
    public ulong FirstLba { get; init; }
    public ulong LastLba { get; init; } = ulong.MaxValue;
    public bool HasLbaRange => FirstLba != 0 || LastLba != ulong.MaxValue;
    /// <summary>Chance that a matching command is hit (0 &lt; p ≤ 1).</summary>
    public double Probability { get; init; } = 1;
    /// <summary>The fault fires this many times and is then removed (null: no limit).</summary>
    public long? Count { get; init; }
    /// <summary>The fault is removed after this long (null: until cleared).</summary>
    public TimeSpan? Duration { get; init; }

    public FaultAction Action { get; init; }
    /// <summary>Error: the completion status (any SCT/SC, with or without DNR).</summary>
    public NvmeStatus Status { get; init; }
    /// <summary>Error: execute the command first (its data is written or read), then report <see cref="Status"/>.</summary>
    public bool AfterExecute { get; init; }
    /// <summary>Delay: the fixed part.</summary>
    public TimeSpan Delay { get; init; }
    /// <summary>Delay: a uniformly distributed extra 0..Jitter.</summary>
    public TimeSpan Jitter { get; init; }
    /// <summary>Stall: hold each command this long at most (null: until the fault is cleared or expires).</summary>
    public TimeSpan? StallFor { get; init; }

    /// <summary>The longest delay or stall a fault may ask for: a day (a longer one is a typo, not a test).</summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromDays(1);

    /// <summary>What is wrong with this fault, or null when it is valid.</summary>
    public string? Validate()
    {
        if (string.IsNullOrEmpty(SubsystemNqn)) return "a fault needs a subsystem NQN";
        if (!(Probability > 0 && Probability <= 1)) return $"probability {Probability} is not in (0, 1]";
        if (Count is <= 0) return $"count {Count} must be at least 1";
        if (Duration is { } d && (d <= TimeSpan.Zero || d > MaxWait)) return $"duration {d.TotalSeconds} s must be more than 0 and at most a day";
        if (FirstLba > LastLba) return $"the LBA range {FirstLba}-{LastLba} is empty (first > last)";
        if (QueueId == 0) return "queue 0 is the admin queue: faults apply to I/O queues (1, 2, ...)";
        if (Opcodes is { Count: 0 }) return "the opcode list is empty (leave it out to match every I/O command)";
        if (Opcodes != null)
            foreach (var op in Opcodes)
                if (op is not (IoOpcode.Flush or IoOpcode.Write or IoOpcode.Read or IoOpcode.WriteZeroes or IoOpcode.DatasetManagement))
                    return $"opcode 0x{op:x2} is not an I/O command this target executes (flush, write, read, write-zeroes, dsm)";
        switch (Action)
        {
            case FaultAction.Error:
                if (Status == NvmeStatus.Success || ((ushort)Status & 0x7FF) == 0) return "an error fault needs a status other than success";
                if (((ushort)Status & ~0x47FF) != 0) return $"status 0x{(ushort)Status:x4} has bits other than SCT, SC and DNR";
                break;
            case FaultAction.Delay:
                if (Delay < TimeSpan.Zero || Jitter < TimeSpan.Zero) return "a delay and its jitter cannot be negative";
                if (Delay + Jitter <= TimeSpan.Zero) return "a delay fault needs a delay or a jitter above 0";
                if (Delay + Jitter > MaxWait) return "a delay (with its jitter) is at most a day";
                break;
            case FaultAction.Stall:
                if (StallFor is { } s && (s <= TimeSpan.Zero || s > MaxWait)) return "a stall time must be more than 0 and at most a day";
                break;
            default:
                return $"unknown fault action {Action}";
        }
        return null;
    }
}
