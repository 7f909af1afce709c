using System.Buffers;
using System.Text;

namespace Transport.Tcp.Tests;

public class Crc32CTests
{
    [Fact]
    public void Check_value_of_123456789()
    {
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(0xE3069283u, Crc32C.Compute(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("123456789"))));
    }

    [Fact]
    public void Empty_input()
    {
        Assert.Equal(0u, Crc32C.Compute(ReadOnlySpan<byte>.Empty));
        Assert.Equal(0u, Crc32C.Compute(ReadOnlySequence<byte>.Empty));
    }

    [Theory]
    [InlineData(new byte[] { 0x00 }, 0x527D5351u)]
    [InlineData(new byte[] { 0x61 }, 0xC1D04330u)] // "a"
    public void Known_single_bytes(byte[] data, uint crc) => Assert.Equal(crc, Crc32C.Compute(data));

    [Fact]
    public void Rfc3720_vectors()
    {
        // iSCSI (RFC 3720 B.4): 32 bytes of zeros, of ones, incrementing, decrementing.
        Assert.Equal(0x8A9136AAu, Crc32C.Compute(new byte[32]));
        Assert.Equal(0x62A8AB43u, Crc32C.Compute(Enumerable.Repeat((byte)0xFF, 32).ToArray()));
        Assert.Equal(0x46DD794Eu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray()));
        Assert.Equal(0x113FDB5Cu, Crc32C.Compute(Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray()));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(4096)]
    public void Multi_segment_sequence_equals_single_span(int segmentSize)
    {
        var data = new byte[10007];
        new Random(segmentSize).NextBytes(data);
        uint expected = Crc32C.Compute(data);
        Assert.Equal(expected, Crc32C.Compute(Segment.Chunked(data, segmentSize)));
        for (int at = 0; at <= 40; at++) Assert.Equal(expected, Crc32C.Compute(Segment.Split(data, at)));
        Assert.Equal(expected, Crc32C.Compute(Segment.Split(data, data.Length - 5)));
    }

    [Fact]
    public void Append_continues_a_running_crc()
    {
        var data = new byte[1000];
        new Random(7).NextBytes(data);
        uint crc = ~0u;
        crc = Crc32C.Append(crc, data.AsSpan(0, 333));
        crc = Crc32C.Append(crc, data.AsSpan(333, 1));
        crc = Crc32C.Append(crc, data.AsSpan(334));
        Assert.Equal(Crc32C.Compute(data), ~crc);
        // Unaligned start.
        Assert.Equal(Crc32C.Compute(data.AsSpan(3).ToArray()), Crc32C.Compute(data.AsSpan(3)));
    }

    [Fact]
    public void Header_digest_from_the_capture()
    {
        // Connect CapsuleCmd (frame 50): HDGST over the 72-byte header, stored little-endian right after it.
        var pdu = CaptureVectors.ConnectCmd;
        Assert.Equal(0xFF0E9150u, Bytes.U32(pdu, 72));
        Assert.Equal(0xFF0E9150u, Crc32C.Compute(pdu.AsSpan(0, 72)));
        // R2T (frame 154) and a CapsuleResp (frame 51).
        Assert.Equal(Bytes.U32(CaptureVectors.R2T, 24), Crc32C.Compute(CaptureVectors.R2T.AsSpan(0, 24)));
        Assert.Equal(0x32336242u, Crc32C.Compute(CaptureVectors.ConnectResp.AsSpan(0, 24)));
    }

    [Fact]
    public void Data_digest_from_the_capture()
    {
        // Connect data (1024 bytes at PDO 76) and its DDGST at the end of the PDU.
        var pdu = CaptureVectors.ConnectCmd;
        Assert.Equal(0x60E4C9F7u, Bytes.U32(pdu, pdu.Length - 4));
        Assert.Equal(0x60E4C9F7u, Crc32C.Compute(pdu.AsSpan(76, 1024)));
        // H2CData (frame 163): 8192 bytes, also split in two segments.
        var h2c = CaptureVectors.H2CData;
        uint ddgst = Bytes.U32(h2c, h2c.Length - 4);
        var payload = h2c.AsSpan(28, 8192).ToArray();
        Assert.Equal(ddgst, Crc32C.Compute(payload));
        Assert.Equal(ddgst, Crc32C.Compute(Segment.Split(payload, 4097)));
        // C2HData from SPDK (frame 134).
        var c2h = CaptureVectors.C2HDataSuccess;
        Assert.Equal(Bytes.U32(c2h, c2h.Length - 4), Crc32C.Compute(c2h.AsSpan(28, 512)));
    }
}
