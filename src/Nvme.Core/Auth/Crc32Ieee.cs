namespace Nvme.Core.Auth;

/// <summary>The CRC-32 of zlib and IEEE 802.3 (reflected polynomial 0xEDB88320, initial and final XOR 0xFFFFFFFF),
/// which a DH-HMAC-CHAP secret's representation appends to its key. System.IO.Hashing has it, but is a package.</summary>
internal static class Crc32Ieee
{
    private static readonly uint[] Table = BuildTable();

    public static uint Compute(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return ~crc;
    }

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }
}
