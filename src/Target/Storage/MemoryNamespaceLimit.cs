using System.Globalization;
using Nvme.Core.Model;
using Target.Configuration;

namespace Target.Storage;

/// <summary>
/// The total size memory namespaces may promise (<see cref="TargetLimits.MemoryNamespaceLimit"/>): a memory
/// namespace allocates RAM as hosts write it, so the sum of their sizes is what the target may come to need.
/// Checked at start (exit 2), on hot-add, on subsystem creation and on grow (400), always with the numbers.
/// </summary>
public static class MemoryNamespaceLimit
{
    /// <summary>The configured limit (<c>limits.memoryNamespaces</c>, --memory-namespaces; "0" allows none) or the
    /// default, 3/4 of the available memory.</summary>
    public static long Resolve(string? configured) =>
        Sizes.IsZero(configured) ? 0 : Sizes.TryParse(configured, out long bytes) ? bytes : TargetLimits.DefaultMemoryNamespaceLimit;

    /// <summary>The size a namespace configuration promises in RAM (0 unless it is a memory namespace with a size).</summary>
    public static long SizeOf(NamespaceConfig nc) => nc.Backend == "memory" && Sizes.TryParse(nc.Size, out long bytes) ? bytes : 0;

    public static long SizeOf(IEnumerable<SubsystemConfig> subsystems) => subsystems.SelectMany(s => s.Namespaces).Sum(SizeOf);

    /// <summary>Null when <paramref name="current"/> + <paramref name="adding"/> fits in <paramref name="limit"/>;
    /// otherwise the refusal for the operator.</summary>
    public static string? Check(long limit, long current, long adding)
    {
        if (adding <= 0 || current + adding <= limit) return null;
        var now = current > 0 ? $" ({Format(current)} already)" : "";
        return $"memory namespaces would take {Format(current + adding)} of RAM together{now}, more than the limit of {Format(limit)} " +
            "(limits.memoryNamespaces or --memory-namespaces SIZE; default 3/4 of the available memory); " +
            "use a file namespace, remove or shrink a memory namespace, or raise the limit";
    }

    private static string Format(long bytes) => bytes switch
    {
        >= 1L << 40 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 40):0.##} TiB"),
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):0.##} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):0.##} MiB"),
        _ => $"{bytes} bytes",
    };
}
