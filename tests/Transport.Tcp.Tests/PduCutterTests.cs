using System.Buffers.Binary;
using Transport.Tcp.Trace;

namespace Transport.Tcp.Tests;

/// <summary>The wire trace's PDU cutter: one record per PDU whatever the pieces the stream arrives in, truncation that
/// keeps headers (and header digests) whole, and streams that are not PDUs passed on as they are.</summary>
public class PduCutterTests
{
    private static byte[] Pdu(byte type, int hlen, int pdo, int dataLength, byte fill)
    {
        int plen = (pdo != 0 ? pdo : hlen) + dataLength;
        var b = new byte[plen];
        Array.Fill(b, fill);
        b[0] = type; b[1] = 0; b[2] = (byte)hlen; b[3] = (byte)pdo;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
        return b;
    }

    private static List<(byte[] Captured, int Original)> Cut(IEnumerable<byte[]> pieces, int? truncate, bool flush = false)
    {
        var records = new List<(byte[], int)>();
        var cutter = new PduCutter((c, o) => records.Add((c.ToArray(), o)), truncate);
        foreach (var p in pieces) cutter.Write(p);
        if (flush) cutter.Flush();
        return records;
    }

    private static void Same(byte[] captured, int original, (byte[] Captured, int Original) record)
    {
        Assert.Equal(captured, record.Captured);
        Assert.Equal(original, record.Original);
    }

    private static IEnumerable<byte[]> Pieces(byte[] stream, int size)
    {
        for (int i = 0; i < stream.Length; i += size) yield return stream[i..Math.Min(stream.Length, i + size)];
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(100)]
    [InlineData(70000)]
    public void Cuts_one_record_per_pdu_whatever_the_pieces(int pieceSize)
    {
        var cmd = Pdu(4, 72, 0, 0, 0x11);                 // CapsuleCmd
        var data = Pdu(7, 24, 24, 8192, 0x22);            // C2HData
        var withHdgst = Pdu(5, 24, 0, 4, 0x33);           // CapsuleResp + HDGST (PLEN 28)
        byte[] stream = [.. cmd, .. data, .. withHdgst];
        var records = Cut(Pieces(stream, pieceSize), truncate: null);
        Assert.Equal(3, records.Count);
        Same(cmd, cmd.Length, records[0]);
        Same(data, data.Length, records[1]);
        Same(withHdgst, withHdgst.Length, records[2]);
    }

    [Fact]
    public void Truncation_keeps_the_header_up_to_PDO_and_that_many_data_bytes()
    {
        var data = Pdu(7, 24, 28, 4096 + 4, 0x44);        // header + HDGST, data, DDGST
        var resp = Pdu(5, 24, 0, 0, 0x55);
        var records = Cut(Pieces([.. data, .. resp], 1000), truncate: 16);
        Assert.Equal(2, records.Count);
        Assert.Equal(28 + 16, records[0].Captured.Length);
        Assert.Equal(data.Length, records[0].Original);
        Assert.Equal(data[..44], records[0].Captured);
        Same(resp, resp.Length, records[1]); // no data: whole

        var headersOnly = Cut([data], truncate: 0);
        Assert.Equal((28, data.Length), (headersOnly[0].Captured.Length, headersOnly[0].Original));
    }

    [Fact]
    public void A_stream_that_is_not_pdus_passes_as_it_comes()
    {
        var garbage = new byte[64];
        Array.Fill(garbage, (byte)0xFF);
        BinaryPrimitives.WriteUInt32LittleEndian(garbage.AsSpan(4), 3); // PLEN 3: shorter than a common header
        var good = Pdu(4, 72, 0, 0, 0x11);
        var records = Cut([good, garbage[..20], garbage[20..]], truncate: 0);
        Same(good, good.Length, records[0]);
        Assert.Equal(garbage, records.Skip(1).SelectMany(r => r.Captured).ToArray()); // every byte, untruncated
        Assert.Equal(garbage.Length, records.Skip(1).Sum(r => r.Original));
    }

    [Fact]
    public void Flush_hands_over_a_pdu_cut_off_by_the_end_of_the_connection()
    {
        var data = Pdu(6, 24, 24, 1000, 0x66);
        var records = Cut([data[..500]], truncate: null, flush: true);
        Assert.Single(records);
        Same(data[..500], 500, records[0]);
        var start = Assert.Single(Cut([new byte[] { 4, 0, 72 }], null, flush: true)); // not even a whole common header
        Same([4, 0, 72], 3, start);
    }
}
