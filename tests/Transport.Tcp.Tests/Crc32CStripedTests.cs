using System.Numerics;

namespace Transport.Tcp.Tests;

/// <summary>The three-stripe CRC32C path and the VPCLMULQDQ folding (where the CPU has it) against a plain
/// byte-at-a-time reference, at every length around the stripe boundaries and on large buffers, whole and as
/// running CRCs.</summary>
public class Crc32CStripedTests
{
    private static uint Reference(ReadOnlySpan<byte> data)
    {
        uint c = ~0u;
        foreach (byte b in data) c = BitOperations.Crc32C(c, b);
        return ~c;
    }

    [Fact]
    public void Striped_matches_the_reference_at_every_length_around_the_stripes()
    {
        var rnd = new Random(11);
        var buffer = new byte[4 * 1536 + 64];
        rnd.NextBytes(buffer);
        for (int length = 0; length <= buffer.Length; length += length < 3 * 1536 + 40 && length > 3 * 1536 - 40 ? 1 : 7)
            Assert.Equal(Reference(buffer.AsSpan(0, length)), Crc32C.Compute(buffer.AsSpan(0, length)));
        // Unaligned starts.
        for (int offset = 1; offset < 8; offset++)
            Assert.Equal(Reference(buffer.AsSpan(offset, 3 * 1536)), Crc32C.Compute(buffer.AsSpan(offset, 3 * 1536)));
    }

    [Fact]
    public void Folding_and_the_instruction_agree_with_the_reference_at_every_length_start_and_seed()
    {
        var rnd = new Random(12);
        var buffer = new byte[2 * 1024 + 64];
        rnd.NextBytes(buffer);
        for (int length = Crc32C.FoldMinimum; length <= 2 * 1024; length++)
        {
            int offset = length % 8; // unaligned starts too
            var span = buffer.AsSpan(offset, length);
            uint seed = (uint)rnd.Next();
            uint reference = seed;
            foreach (byte b in span) reference = BitOperations.Crc32C(reference, b);
            Assert.Equal(reference, Crc32C.AppendInstruction(seed, span));
            if (Crc32C.FoldingSupported) Assert.Equal(reference, Crc32C.AppendFolded(seed, span));
        }
    }

    [Theory]
    [InlineData(4096)]
    [InlineData(128 * 1024)]
    [InlineData(1 << 20)]
    [InlineData(1_000_003)]
    public void Large_buffers_match_the_reference_and_running_crcs_compose(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        uint expected = Reference(data);
        Assert.Equal(expected, Crc32C.Compute(data));
        int cut = length / 3 + 5;
        Assert.Equal(expected, ~Crc32C.Append(Crc32C.Append(~0u, data.AsSpan(0, cut)), data.AsSpan(cut)));
    }
}
