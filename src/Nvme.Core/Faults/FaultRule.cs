namespace Nvme.Core.Faults;

/// <summary>
/// A fault that is set: its <see cref="FaultSpec"/> and its live state (how often it matched and fired, how many
/// firings are left, the commands it stalls). Thread-safe: I/O queues match it concurrently.
/// </summary>
public sealed class FaultRule
{
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _remaining;
    private long _matched, _fired, _stalled;
    internal long LastLogMs = long.MinValue;
    internal long FiredAtLastLog;

    internal FaultRule(int id, FaultSpec spec)
    {
        Id = id;
        Spec = spec;
        _remaining = spec.Count ?? long.MaxValue;
        ExpiresAt = spec.Duration is { } d ? CreatedAt + d : null;
    }

    public int Id { get; }
    public FaultSpec Spec { get; }
    public DateTimeOffset CreatedAt { get; } = DateTimeOffset.UtcNow;
    /// <summary>When the fault removes itself (null: when cleared, or when its count is used up).</summary>
    public DateTimeOffset? ExpiresAt { get; }
    /// <summary>Commands that matched the filters (before the probability decided).</summary>
    public long Matched => Interlocked.Read(ref _matched);
    /// <summary>Commands the fault hit.</summary>
    public long Fired => Interlocked.Read(ref _fired);
    /// <summary>Firings left (null: no count).</summary>
    public long? Remaining => Spec.Count is null ? null : Math.Max(0, Interlocked.Read(ref _remaining));
    /// <summary>Commands held by this stall fault right now.</summary>
    public long Stalled => Interlocked.Read(ref _stalled);
    /// <summary>The fault was cleared, expired or used up; stalled commands go on.</summary>
    public bool HasEnded => _ended.Task.IsCompleted;
    internal Task Ended => _ended.Task;

    internal void End() => _ended.TrySetResult();

    internal void CountMatch() => Interlocked.Increment(ref _matched);

    /// <summary>Takes one firing from the count. False when none is left (another queue took the last).</summary>
    internal bool TryTakeFiring(out bool wasLast)
    {
        if (Spec.Count is null) { wasLast = false; Interlocked.Increment(ref _fired); return true; }
        long left = Interlocked.Decrement(ref _remaining);
        wasLast = left == 0;
        if (left < 0) return false;
        Interlocked.Increment(ref _fired);
        return true;
    }

    /// <summary>The added latency of one delayed command: the fixed part plus uniform jitter.</summary>
    internal TimeSpan NextDelay() =>
        Spec.Jitter > TimeSpan.Zero ? Spec.Delay + TimeSpan.FromTicks((long)(Random.Shared.NextDouble() * Spec.Jitter.Ticks)) : Spec.Delay;

    /// <summary>Holds a command until the fault ends, its stall time passes, or the queue closes (then it throws
    /// <see cref="OperationCanceledException"/>).</summary>
    internal async Task StallAsync(CancellationToken queueClosed)
    {
        Interlocked.Increment(ref _stalled);
        try
        {
            if (Spec.StallFor is { } limit) await _ended.Task.WaitAsync(limit, queueClosed).ConfigureAwait(false);
            else await _ended.Task.WaitAsync(queueClosed).ConfigureAwait(false);
        }
        catch (TimeoutException) { } // the stall time passed: the command goes on
        finally { Interlocked.Decrement(ref _stalled); }
    }
}
