namespace Bench.LoadGen;

/// <summary>Log-linear latency histogram (HDR-style): exact below 64 ns, then 32 linear sub-buckets per power of
/// two (about 3% resolution), up to 2^40 ns. One writer per instance; merge for the report.</summary>
internal sealed class Histogram
{
    private const int SubBits = 5, Direct = 64;
    private readonly long[] _counts = new long[Direct + 40 * (1 << SubBits)];
    public long Count { get; private set; }
    public double SumNs { get; private set; }
    public long MaxNs { get; private set; }

    public void Record(long ns)
    {
        if (ns < 0) ns = 0;
        _counts[Index(ns)]++;
        Count++;
        SumNs += ns;
        if (ns > MaxNs) MaxNs = ns;
    }

    private static int Index(long v)
    {
        if (v < Direct) return (int)v;
        int msb = 63 - System.Numerics.BitOperations.LeadingZeroCount((ulong)v);
        int shift = msb - SubBits;
        int idx = Direct + (shift - 1) * (1 << SubBits) + (int)((v >> shift) - (1 << SubBits));
        return Math.Min(idx, 64 + 40 * 32 - 1);
    }

    /// <summary>Upper bound of a bucket.</summary>
    private static long UpperBound(int idx)
    {
        if (idx < Direct) return idx;
        int shift = (idx - Direct) / (1 << SubBits) + 1;
        long sub = (idx - Direct) % (1 << SubBits) + (1 << SubBits);
        return ((sub + 1) << shift) - 1;
    }

    public void Merge(Histogram other)
    {
        for (int i = 0; i < _counts.Length; i++) _counts[i] += other._counts[i];
        Count += other.Count;
        SumNs += other.SumNs;
        MaxNs = Math.Max(MaxNs, other.MaxNs);
    }

    public double MeanNs => Count == 0 ? 0 : SumNs / Count;

    public long Percentile(double p)
    {
        if (Count == 0) return 0;
        long rank = (long)Math.Ceiling(p / 100.0 * Count);
        if (rank < 1) rank = 1;
        long seen = 0;
        for (int i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank) return Math.Min(UpperBound(i), MaxNs);
        }
        return MaxNs;
    }
}
