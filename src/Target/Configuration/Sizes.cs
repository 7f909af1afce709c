using System.Globalization;

namespace Target.Configuration;

public static class Sizes
{
    /// <summary>Parses "1073741824", "512M", "1G", "1GiB", "4k" (powers of 1024); zero is not a size.</summary>
    public static bool TryParse(string? text, out long bytes) => TryParseOrZero(text, out bytes) && bytes > 0;

    /// <summary>"0", "0G", ...: a size that is zero (for a message better than "not a size").</summary>
    public static bool IsZero(string? text) => TryParseOrZero(text, out long bytes) && bytes == 0;

    private static bool TryParseOrZero(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        if (s.EndsWith("iB", StringComparison.OrdinalIgnoreCase)) s = s[..^2];
        else if (s.EndsWith('B') || s.EndsWith('b')) s = s[..^1];
        int shift = 0;
        if (s.Length > 0)
        {
            shift = char.ToUpperInvariant(s[^1]) switch { 'K' => 10, 'M' => 20, 'G' => 30, 'T' => 40, _ => 0 };
            if (shift != 0) s = s[..^1];
        }
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var n)) return false;
        if (n > (long.MaxValue >> shift)) return false;
        bytes = n << shift;
        return true;
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 40 when bytes % (1L << 40) == 0 => $"{bytes >> 40} TiB",
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30} GiB",
        >= 1L << 20 when bytes % (1L << 20) == 0 => $"{bytes >> 20} MiB",
        _ => $"{bytes} bytes",
    };
}
