using System.Runtime.CompilerServices;
using System.Text;

namespace Nvme.Core.Spec;

// Fixed-size byte areas used by the wire structures. InlineArray keeps the structs blittable.
[InlineArray(3)] public struct Bytes3 { private byte _e; }
[InlineArray(8)] public struct Bytes8 { private byte _e; }
[InlineArray(16)] public struct Bytes16 { private byte _e; }
[InlineArray(20)] public struct Bytes20 { private byte _e; }
[InlineArray(32)] public struct Bytes32 { private byte _e; }
[InlineArray(40)] public struct Bytes40 { private byte _e; }
[InlineArray(256)] public struct Bytes256 { private byte _e; }

/// <summary>Helpers for the spec's ASCII fields: space padded (SN/MN/FR) or NUL padded (NQNs).</summary>
public static class SpecText
{
    /// <summary>Writes <paramref name="value"/> as ASCII, padded with spaces (Identify SN, MN, FR; NVMe base spec 5.17.2.1).</summary>
    public static void WriteSpacePadded(Span<byte> field, string value)
    {
        field.Fill((byte)' ');
        int n = Encoding.ASCII.GetBytes(value.AsSpan(0, Math.Min(value.Length, field.Length)), field);
        _ = n;
    }

    /// <summary>Writes <paramref name="value"/> as UTF-8, NUL terminated/padded (NQN fields).</summary>
    public static void WriteNulPadded(Span<byte> field, string value)
    {
        field.Clear();
        int max = field.Length - 1;
        var bytes = Encoding.UTF8.GetBytes(value);
        bytes.AsSpan(0, Math.Min(bytes.Length, max)).CopyTo(field);
    }

    /// <summary>Reads a NUL-terminated (or NUL/space padded) string.</summary>
    public static string ReadNulTerminated(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        if (end < 0) end = field.Length;
        return Encoding.UTF8.GetString(field[..end]).TrimEnd(' ');
    }
}
