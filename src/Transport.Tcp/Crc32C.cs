using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;

namespace Transport.Tcp;

/// <summary>
/// CRC32C (Castagnoli), the NVMe/TCP header and data digest (NVMe/TCP transport spec 3.6.1): seed ~0,
/// final inversion, stored little-endian. Uses the CPU's CRC32 instruction through BitOperations.
/// </summary>
public static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => ~Append(~0u, data);

    public static uint Compute(in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment) return Compute(data.FirstSpan);
        uint crc = ~0u;
        foreach (var segment in data) crc = Append(crc, segment.Span);
        return ~crc;
    }

    /// <summary>Continues a running (non-inverted) CRC over more bytes.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong w in words) crc = BitOperations.Crc32C(crc, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
        for (int i = words.Length * 8; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }
}
