using System.Buffers.Binary;
using System.Net;
using Transport.Tcp.Trace;

namespace Transport.Tcp.Tests;

/// <summary>The wire trace's file format: pcapng blocks (types, lengths, options) and the synthesized TCP stream
/// (handshake, segment sizes, sequence and acknowledgement numbers, IPv4 header checksums, FIN).</summary>
public class WireTraceFormatTests
{
    private sealed record Packet(byte[] Captured, int OriginalLength, long Timestamp, string? Comment);

    /// <summary>Reads a pcapng file back block by block, checking each block's two lengths agree.</summary>
    private static (List<uint> Types, List<Packet> Packets, byte[] Idb) Parse(byte[] file)
    {
        var types = new List<uint>();
        var packets = new List<Packet>();
        byte[] idb = [];
        int at = 0;
        while (at < file.Length)
        {
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
            int len = (int)BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + 4));
            Assert.Equal(0, len % 4);
            Assert.True(at + len <= file.Length, "block runs past the end of the file");
            Assert.Equal((uint)len, BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at + len - 4)));
            types.Add(type);
            if (type == PcapngWriter.InterfaceDescriptionType) idb = file[at..(at + len)];
            if (type == PcapngWriter.EnhancedPacketType)
            {
                var b = file.AsSpan(at, len);
                long ts = (long)BinaryPrimitives.ReadUInt32LittleEndian(b[12..]) << 32 | BinaryPrimitives.ReadUInt32LittleEndian(b[16..]);
                int cap = (int)BinaryPrimitives.ReadUInt32LittleEndian(b[20..]);
                int orig = (int)BinaryPrimitives.ReadUInt32LittleEndian(b[24..]);
                int optAt = 28 + ((cap + 3) & ~3);
                string? comment = null;
                if (optAt < len - 4 && BinaryPrimitives.ReadUInt16LittleEndian(b[optAt..]) == 1)
                    comment = System.Text.Encoding.UTF8.GetString(b.Slice(optAt + 4, BinaryPrimitives.ReadUInt16LittleEndian(b[(optAt + 2)..])));
                packets.Add(new Packet(b.Slice(28, cap).ToArray(), orig, ts, comment));
            }
            at += len;
        }
        return (types, packets, idb);
    }

    private static (List<uint>, List<Packet>, byte[]) Trace(IPEndPoint host, IPEndPoint target, Action<TcpStreamSynthesizer, TcpStreamSynthesizer.PacketSink> body)
    {
        var ms = new MemoryStream();
        var w = new PcapngWriter(ms);
        w.WriteHeader("unit test");
        var synth = new TcpStreamSynthesizer(host, target);
        long ts = 1_700_000_000_000_000;
        body(synth, (cap, orig) => w.WritePacket(cap, orig, ts++, cap.Length < orig ? "truncated" : null));
        w.Flush();
        Assert.Equal(ms.Length, w.BytesWritten);
        return Parse(ms.ToArray());
    }

    private static readonly IPEndPoint Host4 = new(IPAddress.Parse("192.0.2.10"), 51234), Target4 = new(IPAddress.Parse("192.0.2.1"), 4420);

    [Fact]
    public void File_is_a_section_header_one_raw_interface_with_microseconds_then_packets()
    {
        var (types, packets, idb) = Trace(Host4, Target4, (s, sink) => s.Handshake(sink));
        Assert.Equal([PcapngWriter.SectionHeaderType, PcapngWriter.InterfaceDescriptionType, .. Enumerable.Repeat(PcapngWriter.EnhancedPacketType, 3)], types);
        Assert.Equal(PcapngWriter.LinkTypeRaw, BinaryPrimitives.ReadUInt16LittleEndian(idb.AsSpan(8)));
        // if_tsresol (9), length 1, value 6 = microseconds
        Assert.Equal(9, BinaryPrimitives.ReadUInt16LittleEndian(idb.AsSpan(16)));
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(idb.AsSpan(18)));
        Assert.Equal(6, idb[20]);
        Assert.Equal(3, packets.Count);
        Assert.True(packets[1].Timestamp > packets[0].Timestamp);
    }

    [Fact]
    public void Handshake_then_data_then_fin_have_consistent_seq_ack_and_valid_ipv4_checksums()
    {
        var hostData = new byte[72];
        var targetData = new byte[200_000];
        new Random(1).NextBytes(targetData);
        var (_, packets, _) = Trace(Host4, Target4, (s, sink) =>
        {
            s.Handshake(sink);
            s.Data(sink, fromHost: true, hostData, hostData.Length);
            s.Data(sink, fromHost: false, targetData, targetData.Length);
            s.Close(sink, fromHost: false);
            s.Close(sink, fromHost: true);
        });
        foreach (var p in packets)
        {
            Assert.Equal(0x45, p.Captured[0]);
            Assert.Equal(0, TcpStreamSynthesizer.InternetChecksum(p.Captured.AsSpan(0, 20), 0)); // a valid header sums to 0xFFFF
            Assert.Equal(p.OriginalLength, BinaryPrimitives.ReadUInt16BigEndian(p.Captured.AsSpan(2)));
            Assert.True(p.OriginalLength - 40 <= TcpStreamSynthesizer.MaxSegmentPayload);
        }
        uint Seq(Packet p) => BinaryPrimitives.ReadUInt32BigEndian(p.Captured.AsSpan(24));
        uint Ack(Packet p) => BinaryPrimitives.ReadUInt32BigEndian(p.Captured.AsSpan(28));
        byte Flags(Packet p) => p.Captured[33];
        Assert.Equal(TcpStreamSynthesizer.Syn, Flags(packets[0]));
        Assert.Equal(TcpStreamSynthesizer.Syn | TcpStreamSynthesizer.Ack, Flags(packets[1]));
        Assert.Equal(Seq(packets[0]) + 1, Ack(packets[1]));
        Assert.Equal(Seq(packets[1]) + 1, Ack(packets[2]));
        // host data, then 200000 bytes cut into 4 segments (3 x 65495 + 3515), then FINs
        Assert.Equal(3 + 1 + 4 + 2, packets.Count);
        Assert.Equal(Seq(packets[0]) + 1, Seq(packets[3]));
        uint targetSeq = Seq(packets[1]) + 1;
        int total = 0;
        for (int i = 4; i < 8; i++)
        {
            Assert.Equal(targetSeq + (uint)total, Seq(packets[i]));
            Assert.Equal(Seq(packets[3]) + 72, Ack(packets[i])); // acknowledges everything the host sent
            Assert.Equal(targetData.AsSpan(total, packets[i].Captured.Length - 40).ToArray(), packets[i].Captured[40..]);
            total += packets[i].Captured.Length - 40;
        }
        Assert.Equal(targetData.Length, total);
        Assert.Equal(TcpStreamSynthesizer.Fin | TcpStreamSynthesizer.Ack, Flags(packets[8]));
        Assert.Equal(targetSeq + (uint)total, Seq(packets[8]));
        Assert.Equal(Seq(packets[8]) + 1, Ack(packets[9])); // the host's FIN acknowledges the target's FIN
    }

    [Fact]
    public void Tcp_checksum_is_valid_over_the_pseudo_header()
    {
        var data = new byte[1001];
        new Random(2).NextBytes(data);
        var (_, packets, _) = Trace(Host4, Target4, (s, sink) => s.Data(sink, true, data, data.Length));
        var p = packets.Single().Captured;
        uint pseudo = 6 + (uint)(p.Length - 20);
        for (int i = 12; i < 20; i += 2) pseudo += (uint)(p[i] << 8 | p[i + 1]);
        Assert.Equal(0, TcpStreamSynthesizer.InternetChecksum(p.AsSpan(20), pseudo));
    }

    [Fact]
    public void Truncated_data_keeps_its_original_length_and_advances_seq_by_it()
    {
        var data = new byte[100_000];
        var (_, packets, _) = Trace(Host4, Target4, (s, sink) =>
        {
            s.Data(sink, false, data.AsSpan(0, 24), data.Length);
            s.Data(sink, false, data.AsSpan(0, 8), 8);
        });
        Assert.Equal(3, packets.Count);
        Assert.Equal(40 + 24, packets[0].Captured.Length);
        Assert.Equal(40 + TcpStreamSynthesizer.MaxSegmentPayload, packets[0].OriginalLength);
        Assert.Equal("truncated", packets[0].Comment);
        Assert.Equal(40, packets[1].Captured.Length);
        Assert.Equal(40 + 100_000 - TcpStreamSynthesizer.MaxSegmentPayload, packets[1].OriginalLength);
        uint seq0 = BinaryPrimitives.ReadUInt32BigEndian(packets[0].Captured.AsSpan(24));
        Assert.Equal(seq0 + 100_000u, BinaryPrimitives.ReadUInt32BigEndian(packets[2].Captured.AsSpan(24)));
        Assert.Null(packets[2].Comment);
    }

    [Fact]
    public void Ipv6_peers_get_ipv6_headers_and_mapped_ipv4_peers_ipv4()
    {
        var host6 = new IPEndPoint(IPAddress.Parse("2001:db8::10"), 40000);
        var target6 = new IPEndPoint(IPAddress.Parse("2001:db8::1"), 4420);
        var (_, packets, _) = Trace(host6, target6, (s, sink) => s.Data(sink, true, new byte[10], 10));
        var p = packets.Single().Captured;
        Assert.Equal(6, p[0] >> 4);
        Assert.Equal(30, BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(4))); // payload length: TCP header + 10
        Assert.Equal(IPAddress.Parse("2001:db8::10"), new IPAddress(p.AsSpan(8, 16)));

        var mapped = new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.10"), 40000);
        var target = new IPEndPoint(IPAddress.Parse("::ffff:192.0.2.1"), 4420);
        var (_, packets4, _) = Trace(mapped, target, (s, sink) => s.Handshake(sink));
        Assert.All(packets4, q => Assert.Equal(0x45, q.Captured[0]));
    }
}
