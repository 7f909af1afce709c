using System.Buffers.Binary;
using System.Text;

namespace Transport.Tcp.Trace;

/// <summary>
/// Writes a pcapng file (IETF draft-ietf-opsawg-pcapng): one Section Header Block, one Interface Description Block
/// of link type RAW (101: each packet starts with its IPv4 or IPv6 header, no Ethernet header to invent) with
/// microsecond timestamps (if_tsresol 6), then Enhanced Packet Blocks. Little-endian, as the byte-order magic says.
/// Not thread-safe: one background writer owns it.
/// </summary>
public sealed class PcapngWriter
{
    public const uint SectionHeaderType = 0x0A0D0D0A, InterfaceDescriptionType = 1, EnhancedPacketType = 6;
    public const uint ByteOrderMagic = 0x1A2B3C4D;
    /// <summary>LINKTYPE_RAW: the packet is an IPv4 or IPv6 datagram, told apart by its version nibble.</summary>
    public const ushort LinkTypeRaw = 101;
    private const ushort OptEnd = 0, OptComment = 1, OptIfTsresol = 9;

    private readonly Stream _out;
    private byte[] _block = new byte[1024];

    public PcapngWriter(Stream output) => _out = output;

    /// <summary>Bytes written so far.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>The file's start: section header and the one interface (packets refer to interface 0).</summary>
    public void WriteHeader(string? comment = null)
    {
        int body = 16 + OptionsLength(comment);
        var b = Begin(SectionHeaderType, body);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(b[12..], 1); // major version
        BinaryPrimitives.WriteUInt16LittleEndian(b[14..], 0); // minor version
        BinaryPrimitives.WriteInt64LittleEndian(b[16..], -1);  // section length: not given
        WriteOptions(b[24..], comment, tsresol: false);
        End(body);

        body = 8 + 8 + 4; // link type, reserved, snaplen; if_tsresol option (4 + 1 padded to 8); end of options
        b = Begin(InterfaceDescriptionType, body);
        BinaryPrimitives.WriteUInt16LittleEndian(b[8..], LinkTypeRaw);
        BinaryPrimitives.WriteUInt16LittleEndian(b[10..], 0);
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], 0); // snaplen 0: no limit
        WriteOptions(b[16..], null, tsresol: true);
        End(body);
    }

    /// <summary>One packet: <paramref name="captured"/> is what the file holds, <paramref name="originalLength"/>
    /// what was on the wire (larger when the data was truncated). <paramref name="timestampMicros"/>: since the Unix epoch.</summary>
    public void WritePacket(ReadOnlySpan<byte> captured, int originalLength, long timestampMicros, string? comment = null)
    {
        int padded = Pad4(captured.Length);
        int body = 20 + padded + OptionsLength(comment);
        var b = Begin(EnhancedPacketType, body);
        BinaryPrimitives.WriteUInt32LittleEndian(b[8..], 0); // interface 0
        BinaryPrimitives.WriteUInt32LittleEndian(b[12..], (uint)((ulong)timestampMicros >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(b[16..], (uint)timestampMicros);
        BinaryPrimitives.WriteUInt32LittleEndian(b[20..], (uint)captured.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b[24..], (uint)originalLength);
        captured.CopyTo(b[28..]);
        b.Slice(28 + captured.Length, padded - captured.Length).Clear();
        WriteOptions(b[(28 + padded)..], comment, tsresol: false);
        End(body);
    }

    public void Flush() => _out.Flush();

    private static int Pad4(int n) => (n + 3) & ~3;

    private static int OptionsLength(string? comment) =>
        comment is null ? 0 : 4 + Pad4(Encoding.UTF8.GetByteCount(comment)) + 4;

    private static void WriteOptions(Span<byte> b, string? comment, bool tsresol)
    {
        int at = 0;
        if (tsresol)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(b, OptIfTsresol);
            BinaryPrimitives.WriteUInt16LittleEndian(b[2..], 1);
            b[4] = 6; // 10^-6 s
            b.Slice(5, 3).Clear();
            at = 8;
        }
        if (comment != null)
        {
            int n = Encoding.UTF8.GetBytes(comment, b[(at + 4)..]);
            BinaryPrimitives.WriteUInt16LittleEndian(b[at..], OptComment);
            BinaryPrimitives.WriteUInt16LittleEndian(b[(at + 2)..], (ushort)n);
            b.Slice(at + 4 + n, Pad4(n) - n).Clear();
            at += 4 + Pad4(n);
        }
        if (tsresol || comment != null)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(b[at..], (uint)OptEnd); // opt_endofopt, length 0
        }
    }

    /// <summary>A block is type, total length, body, total length again (the length covers all of it).</summary>
    private Span<byte> Begin(uint type, int body)
    {
        int total = 12 + body;
        if (_block.Length < total) _block = new byte[Math.Max(total, _block.Length * 2)];
        var b = _block.AsSpan(0, total);
        BinaryPrimitives.WriteUInt32LittleEndian(b, type);
        BinaryPrimitives.WriteUInt32LittleEndian(b[4..], (uint)total);
        return b;
    }

    private void End(int body)
    {
        int total = 12 + body;
        BinaryPrimitives.WriteUInt32LittleEndian(_block.AsSpan(total - 4), (uint)total);
        _out.Write(_block, 0, total);
        BytesWritten += total;
    }
}
