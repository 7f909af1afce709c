using System.Diagnostics;
using Nvme.Core.Spec;

namespace Nvme.Core.Telemetry;

/// <summary>What a command counts as in the per-namespace metrics (label op="read|write|flush|other").</summary>
public enum IoOp { Read, Write, Flush, Other }

public static class IoOps
{
    public const int Count = 4;
    public static IoOp Of(byte opcode) => opcode switch
    {
        IoOpcode.Read => IoOp.Read,
        IoOpcode.Write => IoOp.Write,
        IoOpcode.Flush => IoOp.Flush,
        _ => IoOp.Other,
    };
    public static string Label(IoOp op) => op switch
    {
        IoOp.Read => "read",
        IoOp.Write => "write",
        IoOp.Flush => "flush",
        _ => "other",
    };
}

/// <summary>
/// A lock-free latency histogram with fixed buckets (10 µs .. 10 s): recording is a short scan over the bounds
/// and two interlocked adds, no allocation. The count is the sum of the buckets, so a snapshot's count always
/// equals its +Inf bucket.
/// </summary>
public sealed class LatencyHistogram
{
    /// <summary>Upper bounds in seconds (Prometheus "le"); the last bucket is +Inf.</summary>
    public static readonly double[] BoundsSeconds =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private static readonly long[] BoundsTicks = Array.ConvertAll(BoundsSeconds, s => (long)Math.Ceiling(s * Stopwatch.Frequency));

    private readonly long[] _buckets = new long[BoundsSeconds.Length + 1];
    private long _sumTicks;

    /// <summary>Records one duration in <see cref="Stopwatch"/> ticks.</summary>
    public void Record(long ticks)
    {
        var bounds = BoundsTicks;
        int i = 0;
        while (i < bounds.Length && ticks > bounds[i]) i++;
        Interlocked.Increment(ref _buckets[i]);
        Interlocked.Add(ref _sumTicks, ticks);
    }

    /// <summary>Copies the per-bucket (not cumulative) counts into <paramref name="buckets"/> (BoundsSeconds.Length + 1
    /// entries) and returns the sum in seconds.</summary>
    public double Snapshot(Span<long> buckets)
    {
        for (int i = 0; i < _buckets.Length; i++) buckets[i] = Volatile.Read(ref _buckets[i]);
        return Interlocked.Read(ref _sumTicks) / (double)Stopwatch.Frequency;
    }

    /// <summary>Observations so far.</summary>
    public long Count
    {
        get
        {
            long n = 0;
            for (int i = 0; i < _buckets.Length; i++) n += Volatile.Read(ref _buckets[i]);
            return n;
        }
    }
}
