using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Transport.Tcp;

/// <summary>
/// CRC32C (Castagnoli), the NVMe/TCP header and data digest (NVMe/TCP transport spec 3.6.1): seed ~0,
/// final inversion, stored little-endian. Folds with VPCLMULQDQ where the CPU has it, else uses the CRC32
/// instruction through BitOperations.
/// </summary>
/// <remarks>
/// The instruction has a latency of about three cycles but can start one per cycle, so a single dependent
/// chain runs at a third of the possible speed. Large buffers are therefore cut into rounds of three
/// <see cref="Block"/>-byte stripes, each with its own chain, and the three results are joined with the
/// linearity of the raw CRC: crc(c, A‖B) = shift(crc(c, A), |B|) ^ crc(0, B), where shift (feeding |B| zero
/// bytes) is a fixed linear map applied with four 256-entry tables built once at start.
/// </remarks>
public static class Crc32C
{
    private const int Block = 512;                 // bytes per stripe
    private const int WordsPerBlock = Block / 8;
    private static readonly uint[] s_shift = BuildShiftTables();

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
        if (FoldingSupported && data.Length >= FoldMinimum) return AppendFolded(crc, data);
        return AppendInstruction(crc, data);
    }

    /// <summary>The CRC32 instruction only: three stripes for large buffers, one chain for the rest.</summary>
    internal static uint AppendInstruction(uint crc, ReadOnlySpan<byte> data)
    {
        if (BitConverter.IsLittleEndian && data.Length >= 3 * Block)
        {
            int rounds = data.Length / (3 * Block);
            crc = AppendStriped(crc, data[..(rounds * 3 * Block)], rounds);
            data = data[(rounds * 3 * Block)..];
        }
        return AppendSerial(crc, data);
    }

    private static uint AppendSerial(uint crc, ReadOnlySpan<byte> data)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (ulong w in words) crc = BitOperations.Crc32C(crc, BitConverter.IsLittleEndian ? w : BinaryPrimitives.ReverseEndianness(w));
        for (int i = words.Length * 8; i < data.Length; i++) crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }

    private static uint AppendStriped(uint crc, ReadOnlySpan<byte> data, int rounds)
    {
        ref ulong w = ref Unsafe.As<byte, ulong>(ref MemoryMarshal.GetReference(data));
        for (int r = 0; r < rounds; r++)
        {
            uint c0 = crc, c1 = 0, c2 = 0;
            ref ulong p0 = ref Unsafe.Add(ref w, r * 3 * WordsPerBlock);
            ref ulong p1 = ref Unsafe.Add(ref p0, WordsPerBlock);
            ref ulong p2 = ref Unsafe.Add(ref p1, WordsPerBlock);
            for (int i = 0; i < WordsPerBlock; i++)
            {
                c0 = BitOperations.Crc32C(c0, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref p0, i))));
                c1 = BitOperations.Crc32C(c1, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref p1, i))));
                c2 = BitOperations.Crc32C(c2, Unsafe.ReadUnaligned<ulong>(ref Unsafe.As<ulong, byte>(ref Unsafe.Add(ref p2, i))));
            }
            crc = Shift(Shift(c0) ^ c1) ^ c2;
        }
        return crc;
    }

    // ------------------------------------------------------------------ carry-less multiplication (VPCLMULQDQ)

    /// <summary>Buffers from this size on are folded with VPCLMULQDQ where the CPU has it (AVX-512): 16 lanes of 128
    /// bits in flight, about six times the speed of three CRC32 chains (bench/README.md, micro benchmarks).</summary>
    internal const int FoldMinimum = 256;

    internal static bool FoldingSupported => Pclmulqdq.V512.IsSupported && Avx512F.IsSupported && BitConverter.IsLittleEndian;

    // Fold constants for the reflected CRC32C polynomial, 33 bits each: a 128-bit lane moves D bits forward as
    // lo64 * (x^(D+32) mod P) ^ hi64 * (x^(D-32) mod P), both bit-reflected (the Intel "fast CRC computation with
    // PCLMULQDQ" scheme). Computed from the polynomial; Crc32CStripedTests checks the result against a reference.
    private const ulong K2048Lo = 0xdcb17aa4, K2048Hi = 0xb9e02b86, K512Lo = 0x740eef02, K512Hi = 0x9e4addf8,
        K128Lo = 0xf20c0dfe, K128Hi = 0x14cd00bd6;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Fold(Vector512<ulong> x, Vector512<ulong> k) =>
        Pclmulqdq.V512.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.V512.CarrylessMultiply(x, k, 0x11);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<ulong> Fold(Vector128<ulong> x, Vector128<ulong> k) =>
        Pclmulqdq.CarrylessMultiply(x, k, 0x00) ^ Pclmulqdq.CarrylessMultiply(x, k, 0x11);

    /// <summary>Raw CRC of at least <see cref="FoldMinimum"/> bytes by folding: four 512-bit accumulators take 256
    /// bytes per round, then fold into one 128-bit lane whose CRC (from 0) is the CRC of everything so far; the
    /// tail under 16 bytes goes through the instruction. Only where <see cref="FoldingSupported"/>.</summary>
    internal static uint AppendFolded(uint crc, ReadOnlySpan<byte> data)
    {
        ref byte p = ref MemoryMarshal.GetReference(data);
        nuint len = (nuint)data.Length;
        var a0 = Vector512.LoadUnsafe(ref p).AsUInt64() ^ Vector512.CreateScalar((ulong)crc);
        var a1 = Vector512.LoadUnsafe(ref p, 64).AsUInt64();
        var a2 = Vector512.LoadUnsafe(ref p, 128).AsUInt64();
        var a3 = Vector512.LoadUnsafe(ref p, 192).AsUInt64();
        nuint off = 256;
        var k2048 = Vector512.Create(K2048Lo, K2048Hi, K2048Lo, K2048Hi, K2048Lo, K2048Hi, K2048Lo, K2048Hi);
        for (; len - off >= 256; off += 256)
        {
            a0 = Fold(a0, k2048) ^ Vector512.LoadUnsafe(ref p, off).AsUInt64();
            a1 = Fold(a1, k2048) ^ Vector512.LoadUnsafe(ref p, off + 64).AsUInt64();
            a2 = Fold(a2, k2048) ^ Vector512.LoadUnsafe(ref p, off + 128).AsUInt64();
            a3 = Fold(a3, k2048) ^ Vector512.LoadUnsafe(ref p, off + 192).AsUInt64();
        }
        var k512 = Vector512.Create(K512Lo, K512Hi, K512Lo, K512Hi, K512Lo, K512Hi, K512Lo, K512Hi);
        a0 = Fold(a0, k512) ^ a1;
        a0 = Fold(a0, k512) ^ a2;
        a0 = Fold(a0, k512) ^ a3;
        for (; len - off >= 64; off += 64) a0 = Fold(a0, k512) ^ Vector512.LoadUnsafe(ref p, off).AsUInt64();
        var k128 = Vector128.Create(K128Lo, K128Hi);
        var x = a0.GetLower().GetLower();
        x = Fold(x, k128) ^ a0.GetLower().GetUpper();
        x = Fold(x, k128) ^ a0.GetUpper().GetLower();
        x = Fold(x, k128) ^ a0.GetUpper().GetUpper();
        for (; len - off >= 16; off += 16) x = Fold(x, k128) ^ Vector128.LoadUnsafe(ref p, off).AsUInt64();
        uint c = BitOperations.Crc32C(0u, x.GetElement(0));
        c = BitOperations.Crc32C(c, x.GetElement(1));
        return AppendSerial(c, data[(int)off..]);
    }

    /// <summary>The raw CRC state after <see cref="Block"/> zero bytes, starting from <paramref name="c"/>.</summary>
    private static uint Shift(uint c)
    {
        var t = s_shift;
        return t[c & 0xFF] ^ t[256 + ((c >> 8) & 0xFF)] ^ t[512 + ((c >> 16) & 0xFF)] ^ t[768 + (c >> 24)];
    }

    private static uint[] BuildShiftTables()
    {
        // Shift is linear over GF(2): its value on each of the 32 basis bits, computed by feeding zeros.
        Span<uint> basis = stackalloc uint[32];
        for (int bit = 0; bit < 32; bit++)
        {
            uint c = 1u << bit;
            for (int i = 0; i < WordsPerBlock; i++) c = BitOperations.Crc32C(c, 0ul);
            basis[bit] = c;
        }
        var tables = new uint[4 * 256];
        for (int k = 0; k < 4; k++)
            for (int v = 0; v < 256; v++)
            {
                uint x = 0;
                for (int b = 0; b < 8; b++)
                    if ((v & (1 << b)) != 0) x ^= basis[8 * k + b];
                tables[256 * k + v] = x;
            }
        return tables;
    }
}
