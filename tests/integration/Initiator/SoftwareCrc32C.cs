namespace Integration.Tests.Initiator;

/// <summary>
/// A table-driven CRC32C (Castagnoli, reflected polynomial 0x82F63B78, seed ~0, final inversion): the
/// initiator computes and verifies digests with its own code, independent of the target's hardware CRC.
/// </summary>
public static class SoftwareCrc32C
{
    private static readonly uint[] Table = BuildTable();

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = ~0u;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            t[i] = c;
        }
        return t;
    }
}
