using System.Buffers.Binary;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>PduWriter output against SPDK's bytes from the capture, and against the spec layout built by hand.
/// The writer gets dirty memory, so every reserved byte it forgets to clear shows up.</summary>
public class PduWriterTests
{
    private static CompletionQueueEntry Cqe(ulong result, ushort sqhd, ushort sqid, ushort cid, NvmeStatus status = NvmeStatus.Success)
    {
        var c = new CompletionQueueEntry { Result = result, SqHead = sqhd, SqId = sqid, CommandId = cid };
        c.Status = status;
        return c;
    }

    [Fact]
    public void ICResp_equals_spdk()
    {
        var w = new DirtyBufferWriter();
        PduWriter.WriteICResp(w, digest: 3, maxH2CData: 128 * 1024);
        Assert.Equal(CaptureVectors.ICResp, w.WrittenBytes);
        Assert.Equal(CaptureVectors.IoICResp, w.WrittenBytes);
    }

    [Fact]
    public void ICResp_echoes_digest_choice()
    {
        var w = new DirtyBufferWriter();
        PduWriter.WriteICResp(w, digest: 0, maxH2CData: 65536);
        var b = w.WrittenBytes;
        Assert.Equal(128, b.Length);
        Assert.Equal([0x01, 0x00, 0x80, 0x00, 0x80, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x01, 0x00], b.AsSpan(0, 16).ToArray());
        Assert.All(b.AsSpan(16).ToArray(), x => Assert.Equal(0, x));
    }

    [Fact]
    public void CapsuleResp_equals_spdk()
    {
        void Check(byte[] expected, CompletionQueueEntry cqe)
        {
            var w = new DirtyBufferWriter();
            PduWriter.WriteCapsuleResp(w, cqe, hdgst: true);
            Assert.Equal(expected, w.WrittenBytes);
        }
        Check(CaptureVectors.ConnectResp, Cqe(1, sqhd: 1, sqid: 0, cid: 0));
        Check(CaptureVectors.PropertyGetCapResp, Cqe(0x0000_0020_1E01_007F, sqhd: 2, sqid: 0, cid: 1));
        Check(CaptureVectors.PropertySetCcResp, Cqe(0, sqhd: 3, sqid: 0, cid: 0x1000));
        Check(CaptureVectors.PropertyGetVsResp, Cqe(0x10300, sqhd: 8, sqid: 0, cid: 0x3001));
        Check(CaptureVectors.WriteResp, Cqe(0, sqhd: 3, sqid: 0, cid: 0x32));
        Check(CaptureVectors.AerResp, Cqe(0x00040002, sqhd: 0x16, sqid: 0, cid: 0x1F));
    }

    [Fact]
    public void CapsuleResp_without_digest_by_hand()
    {
        var w = new DirtyBufferWriter();
        PduWriter.WriteCapsuleResp(w, Cqe(0x10100, sqhd: 5, sqid: 2, cid: 0xBEEF, NvmeStatus.ConnectInvalidParameters), hdgst: false);
        byte[] expected =
        [
            0x05, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00,  // CH: CapsuleResp, no flags, HLEN 24, PDO 0, PLEN 24
            0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,  // DW0, DW1
            0x05, 0x00, 0x02, 0x00, 0xEF, 0xBE, 0x04, 0x83,  // SQHD, SQID, CID, status 0x4182 << 1
        ];
        Assert.Equal(expected, w.WrittenBytes);
    }

    [Fact]
    public void R2T_equals_spdk()
    {
        var w = new DirtyBufferWriter();
        PduWriter.WriteR2T(w, cid: 0x35, ttag: 6, offset: 0, length: 8192, hdgst: true);
        Assert.Equal(CaptureVectors.R2T, w.WrittenBytes);
    }

    [Fact]
    public void R2T_without_digest_by_hand()
    {
        var w = new DirtyBufferWriter();
        PduWriter.WriteR2T(w, cid: 0x1234, ttag: 0x0102, offset: 0x20000, length: 0x8000, hdgst: false);
        byte[] expected =
        [
            0x09, 0x00, 0x18, 0x00, 0x18, 0x00, 0x00, 0x00,
            0x34, 0x12, 0x02, 0x01, 0x00, 0x00, 0x02, 0x00,  // CCCID, TTAG, R2TO
            0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // R2TL, reserved
        ];
        Assert.Equal(expected, w.WrittenBytes);
    }

    [Fact]
    public void C2HData_with_success_equals_spdk()
    {
        var spdk = CaptureVectors.C2HDataSuccess;
        var data = spdk.AsSpan(28, 512).ToArray();
        var w = new DirtyBufferWriter();
        PduWriter.WriteC2HData(w, cid: 0x33, offset: 0, data, last: true, success: true, hdgst: true, ddgst: true);
        Assert.Equal(spdk, w.WrittenBytes);
    }

    [Fact]
    public void C2HData_without_success_differs_only_in_flags_and_header_digest()
    {
        var expected = (byte[])CaptureVectors.C2HDataSuccess.Clone();
        expected[1] = PduFlags.HeaderDigest | PduFlags.DataDigest | PduFlags.LastPdu;
        expected = Bytes.WithHeaderDigest(expected);
        var w = new DirtyBufferWriter();
        PduWriter.WriteC2HData(w, 0x33, 0, expected.AsSpan(28, 512), last: true, success: false, hdgst: true, ddgst: true);
        Assert.Equal(expected, w.WrittenBytes);
    }

    [Theory]
    [InlineData(0, false, 24)]   // no alignment asked: right after the header
    [InlineData(0, true, 28)]    // ... and its digest
    [InlineData(3, false, 32)]   // 16-byte alignment
    [InlineData(3, true, 32)]
    [InlineData(31, false, 128)] // 128 bytes, the most HPDA can ask
    [InlineData(31, true, 128)]
    public void C2HData_data_starts_where_the_hosts_HPDA_says_with_a_zero_pad(int hpda, bool hdgst, int pdo)
    {
        var data = Enumerable.Range(1, 40).Select(i => (byte)i).ToArray();
        var w = new DirtyBufferWriter(); // fills fresh memory with garbage: the pad must be written as zeros
        PduWriter.WriteC2HData(w, cid: 9, offset: 0, data, last: true, success: false, hdgst, ddgst: true, hpda);
        var b = w.WrittenBytes;
        Assert.Equal(pdo, b[3]);                                    // PDO
        Assert.Equal((uint)(pdo + data.Length + 4), Bytes.U32(b, 4)); // PLEN: header, digest, pad, data, data digest
        Assert.Equal(0, pdo % ((hpda + 1) * 4));
        int padStart = 24 + (hdgst ? 4 : 0);
        Assert.True(b.AsSpan(padStart, pdo - padStart).IndexOfAnyExcept((byte)0) < 0, "PAD must be zero");
        Assert.Equal(data, b.AsSpan(pdo, data.Length).ToArray());
        Assert.Equal(Crc32C.Compute(data), Bytes.U32(b, pdo + data.Length)); // the digest covers the data only, not the pad
        if (hdgst) Assert.Equal(Crc32C.Compute(b.AsSpan(0, 24)), Bytes.U32(b, 24));
    }

    [Fact]
    public void C2HData_without_digests_by_hand()
    {
        var data = new byte[] { 1, 2, 3, 4, 5, 6, 7, 8 };
        var w = new DirtyBufferWriter();
        PduWriter.WriteC2HData(w, cid: 7, offset: 0x1000, data, last: false, success: false, hdgst: false, ddgst: false);
        byte[] expected =
        [
            0x07, 0x00, 0x18, 0x18, 0x20, 0x00, 0x00, 0x00,  // C2HData, PDO 24, PLEN 32
            0x07, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00,  // CCCID, reserved, DATAO
            0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // DATAL, reserved
            1, 2, 3, 4, 5, 6, 7, 8,
        ];
        Assert.Equal(expected, w.WrittenBytes);

        // Data digest only: PDO stays 24, DDGST appended.
        w = new DirtyBufferWriter();
        PduWriter.WriteC2HData(w, 7, 0, data, last: true, success: false, hdgst: false, ddgst: true);
        var b = w.WrittenBytes;
        Assert.Equal(24 + 8 + 4, b.Length);
        Assert.Equal(PduFlags.DataDigest | PduFlags.LastPdu, b[1]);
        Assert.Equal(24, b[3]);
        Assert.Equal(Crc32C.Compute(data), Bytes.U32(b, 32));
    }

    [Fact]
    public void C2HTermReq_by_hand()
    {
        var offending = CaptureVectors.PropertyGetCapCmd.AsSpan(0, 72).ToArray();
        var w = new DirtyBufferWriter();
        PduWriter.WriteC2HTermReq(w, FatalErrorStatus.PduSequenceError, 0x0A0B0C0D, offending);
        var b = w.WrittenBytes;
        var expectedHeader = new byte[24];
        expectedHeader[0] = 0x03;            // C2HTermReq
        expectedHeader[2] = 24;              // HLEN
        BinaryPrimitives.WriteUInt32LittleEndian(expectedHeader.AsSpan(4), 24 + 72);
        BinaryPrimitives.WriteUInt16LittleEndian(expectedHeader.AsSpan(8), 0x0002); // FES
        BinaryPrimitives.WriteUInt32LittleEndian(expectedHeader.AsSpan(10), 0x0A0B0C0D); // FEI
        Assert.Equal(Bytes.Concat(expectedHeader, offending), b);
    }

    [Fact]
    public void C2HTermReq_truncates_the_offending_header_to_128_bytes()
    {
        var big = Enumerable.Range(0, 200).Select(i => (byte)i).ToArray();
        var w = new DirtyBufferWriter();
        PduWriter.WriteC2HTermReq(w, FatalErrorStatus.InvalidPduHeaderField, 2, big);
        var b = w.WrittenBytes;
        Assert.Equal(24 + 128, b.Length);
        Assert.Equal(152u, Bytes.U32(b, 4));
        Assert.Equal(big.AsSpan(0, 128).ToArray(), b.AsSpan(24).ToArray());
        Assert.All(b.AsSpan(14, 10).ToArray(), x => Assert.Equal(0, x)); // reserved

        w = new DirtyBufferWriter();
        PduWriter.WriteC2HTermReq(w, FatalErrorStatus.HeaderDigestError, 0, []);
        Assert.Equal(24, w.WrittenBytes.Length);
        Assert.Equal(24u, Bytes.U32(w.WrittenBytes, 4));
    }

    [Fact]
    public void Writer_output_reads_back_through_the_reader()
    {
        var settings = new PduReaderSettings { HeaderDigest = true, DataDigest = true, MaxInCapsuleData = 8192, MaxH2CData = 8192 };
        var w = new DirtyBufferWriter();
        PduWriter.WriteR2T(w, 1, 2, 3, 4, hdgst: true);
        PduWriter.WriteCapsuleResp(w, Cqe(9, 1, 0, 5), hdgst: true);
        var seq = new System.Buffers.ReadOnlySequence<byte>(w.WrittenBytes);
        Assert.Equal(PduReadResult.Complete, PduReader.TryRead(ref seq, settings, out var r2t, out _));
        Assert.Equal(4u, r2t.As<R2TPdu>().Length);
        Assert.Equal(PduReadResult.Complete, PduReader.TryRead(ref seq, settings, out var resp, out _));
        Assert.Equal(9u, resp.As<CapsuleResponsePdu>().Response.Dword0);
        Assert.Equal(0, seq.Length);
    }
}
