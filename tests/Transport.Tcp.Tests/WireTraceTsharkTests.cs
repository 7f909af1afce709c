using System.Buffers.Binary;
using System.Net;
using Transport.Tcp.Trace;

namespace Transport.Tcp.Tests;

/// <summary>A synthesized trace of NVMe/TCP PDUs decoded by tshark's NVMe/TCP dissector: zero malformed packets and
/// the PDU types as written, including a C2HData that spans several TCP segments. tshark is a test prerequisite
/// (test.sh installs it): missing, the test fails and says so, it is never skipped.</summary>
public class WireTraceTsharkTests
{
    private static byte[] Pdu(byte type, byte flags, int hlen, int pdo, int dataLength, Action<byte[]> fill)
    {
        int plen = hlen + dataLength;
        var b = new byte[plen];
        b[0] = type; b[1] = flags; b[2] = (byte)hlen; b[3] = (byte)pdo;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
        fill(b);
        return b;
    }

    private static byte[] Command(byte opcode, ushort cid) => Pdu(4, 0, 72, 0, 0, b => { b[8] = opcode; BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), cid); });
    private static byte[] Response(ushort cid) => Pdu(5, 0, 24, 0, 0, b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(20), cid));
    private static byte[] C2HData(ushort cid, int length) => Pdu(7, 0x04, 24, 24, length, b =>
    {
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), cid);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)length);
    });

    [Fact]
    public void Tshark_decodes_the_synthesized_stream_without_malformed_packets()
    {
        string file = Path.Combine(Path.GetTempPath(), $"wire-trace-{Environment.ProcessId}.pcapng");
        try
        {
            using (var fs = File.Create(file))
            {
                var w = new PcapngWriter(fs);
                w.WriteHeader();
                var s = new TcpStreamSynthesizer(new IPEndPoint(IPAddress.Parse("192.0.2.10"), 51234), new IPEndPoint(IPAddress.Parse("192.0.2.1"), 4420));
                long ts = 1_700_000_000_000_000;
                TcpStreamSynthesizer.PacketSink sink = (cap, orig) => w.WritePacket(cap, orig, ts += 10);
                s.Handshake(sink);
                void Send(bool host, byte[] pdu) => s.Data(sink, host, pdu, pdu.Length);
                Send(true, Command(0x06, 1));          // Identify
                Send(false, C2HData(1, 4096));
                Send(false, Response(1));
                Send(true, Command(0x02, 2));          // Read 128 KiB: its C2HData spans three segments
                var big = C2HData(2, 128 * 1024);
                var resp = Response(2);
                Send(false, [.. big, .. resp]);        // one flush: the response rides in the last segment
                s.Close(sink, false);
                s.Close(sink, true);
                w.Flush();
            }
            Assert.Equal([4, 7, 5, 4, 7, 5], Tshark.PduTypes(file, 4420));
            Assert.Equal("", Tshark.Run(file, 4420, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Trim());
        }
        finally { File.Delete(file); }
    }
}
