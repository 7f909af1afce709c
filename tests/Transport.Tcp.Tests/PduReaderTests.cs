using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>PduReader against real PDUs from shared/captures/linux61-host_spdk-target.pcap, split every way, and
/// against every malformed case.</summary>
public class PduReaderTests
{
    private static readonly PduReaderSettings Digests = new()
    {
        HeaderDigest = true, DataDigest = true, MaxInCapsuleData = 8192, MaxH2CData = 128 * 1024,
    };
    private static readonly PduReaderSettings NoDigests = Digests with { HeaderDigest = false, DataDigest = false };

    /// <summary>Everything TryRead produced, copied out of the buffer so results can be compared.</summary>
    private sealed record Parsed(PduReadResult Result, PduType Type, byte Flags, int HeaderLength, byte[] Header, byte[] Data,
        bool DataDigestError, PduError Error, long Remaining)
    {
        public void AssertSame(Parsed other)
        {
            Assert.Equal(Result, other.Result);
            Assert.Equal(Type, other.Type);
            Assert.Equal(Flags, other.Flags);
            Assert.Equal(HeaderLength, other.HeaderLength);
            Assert.Equal(Header, other.Header);
            Assert.Equal(Data, other.Data);
            Assert.Equal(DataDigestError, other.DataDigestError);
            Assert.Equal(Error, other.Error);
            Assert.Equal(Remaining, other.Remaining);
        }
    }

    private static Parsed Read(ReadOnlySequence<byte> seq, in PduReaderSettings settings)
    {
        var buffer = seq;
        var r = PduReader.TryRead(ref buffer, settings, out var pdu, out var error);
        return new Parsed(r, pdu.Type, pdu.Flags, pdu.HeaderLength, pdu.Header.ToArray(), pdu.Data.ToArray(), pdu.DataDigestError,
            error, buffer.Length);
    }

    private static Parsed Read(byte[] bytes, in PduReaderSettings settings) => Read(new ReadOnlySequence<byte>(bytes), settings);

    private static (byte[] Bytes, PduReaderSettings Settings) Vector(string name) => name switch
    {
        nameof(CaptureVectors.DiscoveryICReq) => (CaptureVectors.DiscoveryICReq, NoDigests),
        nameof(CaptureVectors.DiscoveryConnect) => (CaptureVectors.DiscoveryConnect, NoDigests),
        nameof(CaptureVectors.ICReq) => (CaptureVectors.ICReq, NoDigests),
        nameof(CaptureVectors.ICResp) => (CaptureVectors.ICResp, Digests),
        nameof(CaptureVectors.ConnectCmd) => (CaptureVectors.ConnectCmd, Digests),
        nameof(CaptureVectors.ConnectResp) => (CaptureVectors.ConnectResp, Digests),
        nameof(CaptureVectors.PropertyGetCapCmd) => (CaptureVectors.PropertyGetCapCmd, Digests),
        nameof(CaptureVectors.PropertyGetCapResp) => (CaptureVectors.PropertyGetCapResp, Digests),
        nameof(CaptureVectors.PropertySetCcCmd) => (CaptureVectors.PropertySetCcCmd, Digests),
        nameof(CaptureVectors.PropertySetCcResp) => (CaptureVectors.PropertySetCcResp, Digests),
        nameof(CaptureVectors.WriteInCapsuleCmd) => (CaptureVectors.WriteInCapsuleCmd, Digests),
        nameof(CaptureVectors.WriteResp) => (CaptureVectors.WriteResp, Digests),
        nameof(CaptureVectors.R2T) => (CaptureVectors.R2T, Digests),
        nameof(CaptureVectors.H2CData) => (CaptureVectors.H2CData, Digests),
        nameof(CaptureVectors.AerResp) => (CaptureVectors.AerResp, Digests),
        _ => throw new ArgumentException(name),
    };

    public static TheoryData<string> VectorNames =>
    [
        nameof(CaptureVectors.DiscoveryICReq), nameof(CaptureVectors.DiscoveryConnect), nameof(CaptureVectors.ICReq),
        nameof(CaptureVectors.ICResp), nameof(CaptureVectors.ConnectCmd), nameof(CaptureVectors.ConnectResp),
        nameof(CaptureVectors.PropertyGetCapCmd), nameof(CaptureVectors.PropertyGetCapResp), nameof(CaptureVectors.PropertySetCcCmd),
        nameof(CaptureVectors.PropertySetCcResp), nameof(CaptureVectors.WriteInCapsuleCmd), nameof(CaptureVectors.WriteResp),
        nameof(CaptureVectors.R2T), nameof(CaptureVectors.H2CData), nameof(CaptureVectors.AerResp),
    ];

    // ------------------------------------------------------------------ every vector, every split

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void Vector_parses_completely(string name)
    {
        var (bytes, settings) = Vector(name);
        var p = Read(bytes, settings);
        Assert.Equal(PduReadResult.Complete, p.Result);
        Assert.Equal(0, p.Remaining);
        Assert.Equal((PduType)bytes[0], p.Type);
        Assert.Equal(bytes[1], p.Flags);
        Assert.Equal(bytes[2], p.HeaderLength);
        Assert.Equal(bytes.AsSpan(0, bytes[2]).ToArray(), p.Header);
        Assert.False(p.DataDigestError);
        // Data: after PDO, without the data digest.
        int pdo = bytes[3];
        int expectedData = pdo == 0 ? 0 : bytes.Length - pdo - ((bytes[1] & PduFlags.DataDigest) != 0 ? 4 : 0);
        Assert.Equal(expectedData, p.Data.Length);
        if (expectedData > 0) Assert.Equal(bytes.AsSpan(pdo, expectedData).ToArray(), p.Data);
    }

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void Vector_split_at_every_offset_gives_the_same_result(string name)
    {
        var (bytes, settings) = Vector(name);
        var whole = Read(bytes, settings);
        for (int at = 0; at <= bytes.Length; at++) whole.AssertSame(Read(Segment.Split(bytes, at), settings));
        whole.AssertSame(Read(Segment.Chunked(bytes, 1), settings));
        whole.AssertSame(Read(Segment.Chunked(bytes, 5), settings));
    }

    [Theory]
    [MemberData(nameof(VectorNames))]
    public void Every_strict_prefix_is_incomplete(string name)
    {
        var (bytes, settings) = Vector(name);
        for (int len = 0; len < bytes.Length; len++)
        {
            var seq = new ReadOnlySequence<byte>(bytes, 0, len);
            var buffer = seq;
            var r = PduReader.TryRead(ref buffer, settings, out _, out var error);
            Assert.True(r == PduReadResult.Incomplete, $"prefix of {len} bytes: {r} {error.Message}");
            Assert.Equal(seq.Length, buffer.Length); // nothing consumed
        }
        // Two-segment prefixes as well (a sample of split points).
        for (int len = 1; len < bytes.Length; len += Math.Max(1, bytes.Length / 97))
        {
            var prefix = bytes.AsSpan(0, len).ToArray();
            var seq = Segment.Split(prefix, len / 2);
            Assert.Equal(PduReadResult.Incomplete, PduReader.TryRead(ref seq, settings, out _, out _));
        }
    }

    [Fact]
    public void Back_to_back_pdus_are_read_one_after_the_other()
    {
        var stream = Bytes.Concat(CaptureVectors.PropertyGetCapCmd, CaptureVectors.ConnectCmd, CaptureVectors.WriteInCapsuleCmd, CaptureVectors.PropertySetCcCmd);
        for (int at = 0; at < stream.Length; at += 37)
        {
            var buffer = Segment.Split(stream, at);
            var types = new List<(byte Opcode, ushort Cid)>();
            while (PduReader.TryRead(ref buffer, Digests, out var pdu, out var err) == PduReadResult.Complete)
            {
                var sqe = pdu.As<CapsuleCommandPdu>().Command;
                types.Add((sqe.Opcode, sqe.CommandId));
            }
            Assert.Equal([(0x7F, 1), (0x7F, 0), (0x01, 0x32), (0x7F, 0x1000)], types);
            Assert.Equal(0, buffer.Length);
        }
    }

    // ------------------------------------------------------------------ field by field

    [Fact]
    public void TryReadHeader_gives_the_header_and_layout_before_the_data_arrives()
    {
        var pdu = CaptureVectors.ConnectCmd; // HDGST + 1024 bytes in-capsule data + DDGST
        for (int have = 0; have < pdu.Length; have += 7)
        {
            var buffer = new ReadOnlySequence<byte>(pdu, 0, have);
            var r = PduReader.TryReadHeader(buffer, Digests, out var p, out var layout, out _);
            if (have < 76)
            {
                Assert.Equal(PduReadResult.Incomplete, r);
                continue;
            }
            Assert.Equal(PduReadResult.Complete, r);
            Assert.Equal(PduType.CapsuleCmd, p.Type);
            Assert.Equal(pdu.AsSpan(0, 72).ToArray(), p.Header.ToArray());
            Assert.True(p.Data.IsEmpty);
            Assert.Equal((72, 4, 1024, 4, 76, 1104L), (layout.HeaderLength, layout.HeaderDigestLength, layout.DataLength, layout.DataDigestLength, layout.DataStart, layout.Length));
            Assert.Equal(PduReadResult.Incomplete, PduReader.TryRead(ref buffer, Digests, out _, out _)); // the whole PDU is not here
        }
    }

    [Fact]
    public void TryReadHeader_checks_the_header_digest_and_the_common_header()
    {
        var bad = CaptureVectors.ConnectCmd.ToArray();
        bad[72] ^= 1;
        AssertHeaderError(bad.AsSpan(0, 80).ToArray(), FatalErrorStatus.HeaderDigestError);
        var plen = CaptureVectors.ConnectCmd.ToArray();
        BinaryPrimitives.WriteUInt32LittleEndian(plen.AsSpan(4), 1 << 20); // beyond the in-capsule limit
        AssertHeaderError(plen.AsSpan(0, 8).ToArray(), FatalErrorStatus.DataTransferLimitExceeded); // known from 8 bytes
    }

    private static void AssertHeaderError(byte[] bytes, FatalErrorStatus status)
    {
        Assert.Equal(PduReadResult.Error, PduReader.TryReadHeader(new ReadOnlySequence<byte>(bytes), Digests, out _, out _, out var e));
        Assert.Equal(status, e.Status);
    }

    [Fact]
    public void ICReq_fields()
    {
        var p = Read(CaptureVectors.ICReq, NoDigests);
        var ic = MemoryMarshal.Read<InitializeConnectionPdu>(p.Header);
        Assert.Equal(PduType.ICReq, ic.Header.Type);
        Assert.Equal(0, ic.Header.Flags);
        Assert.Equal(128, ic.Header.HeaderLength);
        Assert.Equal(0, ic.Header.DataOffset);
        Assert.Equal(128u, ic.Header.PduLength);
        Assert.Equal(0, ic.Pfv);
        Assert.Equal(0, ic.DataAlignment); // HPDA
        Assert.Equal(3, ic.Digest);        // HDGST_ENABLE | DDGST_ENABLE
        Assert.Equal(0u, ic.Limit);        // MAXR2T (0's based)
        Assert.Equal(0, MemoryMarshal.Read<InitializeConnectionPdu>(Read(CaptureVectors.DiscoveryICReq, NoDigests).Header).Digest);
    }

    [Fact]
    public void ICResp_fields()
    {
        var ic = MemoryMarshal.Read<InitializeConnectionPdu>(Read(CaptureVectors.ICResp, NoDigests).Header);
        Assert.Equal(PduType.ICResp, ic.Header.Type);
        Assert.Equal(128u, ic.Header.PduLength);
        Assert.Equal(0, ic.Pfv);
        Assert.Equal(0, ic.DataAlignment); // CPDA
        Assert.Equal(3, ic.Digest);
        Assert.Equal(128u * 1024, ic.Limit); // MAXH2CDATA
    }

    [Fact]
    public void Connect_capsule_fields()
    {
        var p = Read(CaptureVectors.ConnectCmd, Digests);
        var c = MemoryMarshal.Read<CapsuleCommandPdu>(p.Header);
        Assert.Equal(PduType.CapsuleCmd, c.Header.Type);
        Assert.Equal(PduFlags.HeaderDigest | PduFlags.DataDigest, c.Header.Flags);
        Assert.Equal(72, c.Header.HeaderLength);
        Assert.Equal(76, c.Header.DataOffset);
        Assert.Equal(1104u, c.Header.PduLength);
        var sqe = c.Command;
        Assert.Equal(AdminOpcode.Fabrics, sqe.Opcode);
        Assert.Equal(0x40, sqe.Flags); // PSDT: SGL
        Assert.Equal(FabricsType.Connect, sqe.FabricsType);
        Assert.Equal(0, sqe.CommandId);
        Assert.Equal(SglDescriptor.InCapsuleOffset, sqe.Sgl.Identifier);
        Assert.Equal(0ul, sqe.Sgl.Address);
        Assert.Equal(1024u, sqe.Sgl.Length);
        Assert.Equal(0, (ushort)sqe.Cdw10);         // RECFMT
        Assert.Equal(0, (ushort)(sqe.Cdw10 >> 16)); // QID: admin
        Assert.Equal(31, (ushort)sqe.Cdw11);        // SQSIZE
        Assert.Equal(0, (byte)(sqe.Cdw11 >> 16));   // CATTR: SQ flow control on
        Assert.Equal(5000u, sqe.Cdw12);             // KATO

        Assert.Equal(1024, p.Data.Length);
        var data = MemoryMarshal.Read<ConnectData>(p.Data);
        Assert.Equal(Guid.Parse("14bda89c-1d6f-4471-b495-db452b9b96ed"), new Guid(data.HostId, bigEndian: true));
        Assert.Equal(0xFFFF, data.Cntlid);
        Assert.Equal("nqn.2016-06.io.spdk:cnode1", SpecText.ReadNulTerminated(data.SubNqn));
        Assert.Equal("nqn.2014-08.org.nvmexpress:uuid:14bda89c-1d6f-4471-b495-db452b9b96ed", SpecText.ReadNulTerminated(data.HostNqn));
    }

    [Fact]
    public void Discovery_connect_without_digests()
    {
        var p = Read(CaptureVectors.DiscoveryConnect, NoDigests);
        Assert.Equal(PduReadResult.Complete, p.Result);
        var c = MemoryMarshal.Read<CapsuleCommandPdu>(p.Header);
        Assert.Equal(0, c.Header.Flags);
        Assert.Equal(72, c.Header.DataOffset);
        Assert.Equal(1096u, c.Header.PduLength);
        var data = MemoryMarshal.Read<ConnectData>(p.Data);
        Assert.Equal(WellKnown.DiscoveryNqn, SpecText.ReadNulTerminated(data.SubNqn));
    }

    [Fact]
    public void Property_get_and_set_fields()
    {
        var get = MemoryMarshal.Read<CapsuleCommandPdu>(Read(CaptureVectors.PropertyGetCapCmd, Digests).Header).Command;
        Assert.Equal(FabricsType.PropertyGet, get.FabricsType);
        Assert.Equal(1, get.CommandId);
        Assert.Equal(1u, get.Cdw10 & 7);  // ATTRIB: 8 bytes
        Assert.Equal(PropertyOffset.Cap, get.Cdw11);
        Assert.Equal(SglDescriptor.TransportDataBlock, get.Sgl.Identifier);
        Assert.Equal(0u, get.Sgl.Length);

        var set = MemoryMarshal.Read<CapsuleCommandPdu>(Read(CaptureVectors.PropertySetCcCmd, Digests).Header).Command;
        Assert.Equal(FabricsType.PropertySet, set.FabricsType);
        Assert.Equal(0x1000, set.CommandId);
        Assert.Equal(0u, set.Cdw10 & 7);
        Assert.Equal(PropertyOffset.Cc, set.Cdw11);
        Assert.Equal(0x00460000u, set.Cdw12);
    }

    [Fact]
    public void Capsule_response_fields()
    {
        var r = MemoryMarshal.Read<CapsuleResponsePdu>(Read(CaptureVectors.ConnectResp, Digests).Header);
        Assert.Equal(PduType.CapsuleResp, r.Header.Type);
        Assert.Equal(PduFlags.HeaderDigest, r.Header.Flags);
        Assert.Equal(28u, r.Header.PduLength);
        Assert.Equal(1u, r.Response.Dword0); // CNTLID
        Assert.Equal(1, r.Response.SqHead);
        Assert.Equal(0, r.Response.SqId);
        Assert.Equal(0, r.Response.CommandId);
        Assert.Equal(NvmeStatus.Success, r.Response.Status);

        var cap = MemoryMarshal.Read<CapsuleResponsePdu>(Read(CaptureVectors.PropertyGetCapResp, Digests).Header).Response;
        Assert.Equal(0x0000_0020_1E01_007Ful, cap.Result);
        Assert.Equal(2, cap.SqHead);
        Assert.Equal(1, cap.CommandId);

        var aer = MemoryMarshal.Read<CapsuleResponsePdu>(Read(CaptureVectors.AerResp, Digests).Header).Response;
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, aer.Dword0);
        Assert.Equal(0x1F, aer.CommandId);
    }

    [Fact]
    public void In_capsule_write_fields()
    {
        var p = Read(CaptureVectors.WriteInCapsuleCmd, Digests);
        var sqe = MemoryMarshal.Read<CapsuleCommandPdu>(p.Header).Command;
        Assert.Equal(IoOpcode.Write, sqe.Opcode);
        Assert.Equal(0x32, sqe.CommandId);
        Assert.Equal(1u, sqe.Nsid);
        Assert.Equal(0ul, sqe.StartingLba);
        Assert.Equal(1u, sqe.BlockCount);
        Assert.Equal(SglDescriptor.InCapsuleOffset, sqe.Sgl.Identifier);
        Assert.Equal(512u, sqe.Sgl.Length);
        Assert.Equal(512, p.Data.Length);
        // SPDK read the same block back in frame 134.
        Assert.Equal(CaptureVectors.C2HDataSuccess.AsSpan(28, 512).ToArray(), p.Data);
    }

    [Fact]
    public void R2T_and_H2CData_fields()
    {
        var r2t = MemoryMarshal.Read<R2TPdu>(Read(CaptureVectors.R2T, Digests).Header);
        Assert.Equal(PduType.R2T, r2t.Header.Type);
        Assert.Equal(PduFlags.HeaderDigest, r2t.Header.Flags);
        Assert.Equal(24, r2t.Header.HeaderLength);
        Assert.Equal(0, r2t.Header.DataOffset);
        Assert.Equal(28u, r2t.Header.PduLength);
        Assert.Equal(0x35, r2t.CommandId);
        Assert.Equal(6, r2t.TransferTag);
        Assert.Equal(0u, r2t.Offset);
        Assert.Equal(8192u, r2t.Length);

        var p = Read(CaptureVectors.H2CData, Digests);
        var h = MemoryMarshal.Read<DataPdu>(p.Header);
        Assert.Equal(PduType.H2CData, h.Header.Type);
        Assert.Equal(PduFlags.HeaderDigest | PduFlags.DataDigest | PduFlags.LastPdu, h.Header.Flags);
        Assert.Equal(28, h.Header.DataOffset);
        Assert.Equal(8224u, h.Header.PduLength);
        Assert.Equal(0x35, h.CommandId);
        Assert.Equal(6, h.TransferTag);
        Assert.Equal(0u, h.DataOffset);
        Assert.Equal(8192u, h.DataLength);
        Assert.Equal(8192, p.Data.Length);
        Assert.False(p.DataDigestError);
    }

    [Fact]
    public void C2HData_is_not_accepted_by_the_target_side_reader()
    {
        // The reader frames host-to-controller traffic; a C2HData with data is refused at the common header
        // (its bytes are checked against PduWriter in PduWriterTests instead).
        var bytes = CaptureVectors.C2HDataSuccess;
        var p = Read(bytes.AsSpan(0, 8).ToArray(), Digests);
        Assert.Equal(PduReadResult.Error, p.Result);
        Assert.Equal(FatalErrorStatus.InvalidPduHeaderField, p.Error.Status);
        Assert.Equal(4u, p.Error.FieldOffset);
    }

    [Fact]
    public void H2CTermReq_with_data()
    {
        var bytes = new byte[24 + 28];
        bytes[0] = (byte)PduType.H2CTermReq;
        bytes[2] = 24;
        BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(4), (uint)bytes.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)FatalErrorStatus.HeaderDigestError);
        CaptureVectors.ConnectResp.CopyTo(bytes, 24);
        var p = Read(bytes, Digests);
        Assert.Equal(PduReadResult.Complete, p.Result);
        Assert.Equal(FatalErrorStatus.HeaderDigestError, MemoryMarshal.Read<TermReqPdu>(p.Header).Status);
        Assert.Equal(CaptureVectors.ConnectResp, p.Data);
    }

    // ------------------------------------------------------------------ malformed

    private static void AssertError(Parsed p, FatalErrorStatus status, uint fei)
    {
        Assert.Equal(PduReadResult.Error, p.Result);
        Assert.Equal(status, p.Error.Status);
        Assert.Equal(fei, p.Error.FieldOffset);
        Assert.False(string.IsNullOrEmpty(p.Error.Message));
    }

    private static byte[] CommonHeader(byte type, byte flags, byte hlen, byte pdo, uint plen)
    {
        var b = new byte[8];
        b[0] = type; b[1] = flags; b[2] = hlen; b[3] = pdo;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), plen);
        return b;
    }

    [Theory]
    [InlineData(0x08)]
    [InlineData(0x0A)]
    [InlineData(0x7F)]
    [InlineData(0xFF)]
    public void Unknown_type(byte type)
    {
        AssertError(Read(CommonHeader(type, 0, 24, 0, 24), Digests), FatalErrorStatus.InvalidPduHeaderField, 0);
    }

    [Theory]
    [InlineData(PduType.ICReq, 127)]
    [InlineData(PduType.CapsuleCmd, 76)]
    [InlineData(PduType.CapsuleCmd, 24)]
    [InlineData(PduType.H2CData, 72)]
    [InlineData(PduType.H2CTermReq, 128)]
    public void Hlen_mismatch(PduType type, byte hlen)
    {
        AssertError(Read(CommonHeader((byte)type, 1, hlen, 0, 200), Digests), FatalErrorStatus.InvalidPduHeaderField, 2);
    }

    [Theory]
    [InlineData(PduType.CapsuleCmd, 72, 75u)]   // 72 + HDGST = 76 at least
    [InlineData(PduType.CapsuleCmd, 72, 0u)]
    [InlineData(PduType.H2CData, 24, 24u)]
    [InlineData(PduType.ICReq, 128, 100u)]
    public void Plen_shorter_than_the_header(PduType type, byte hlen, uint plen)
    {
        byte flags = type == PduType.ICReq ? (byte)0 : PduFlags.HeaderDigest;
        AssertError(Read(CommonHeader((byte)type, flags, hlen, 0, plen), Digests), FatalErrorStatus.InvalidPduHeaderField, 4);
    }

    [Fact]
    public void Plen_beyond_the_limit_is_refused_from_the_common_header_alone()
    {
        // In-capsule data limit (8192): 8193 bytes of data is too much; only the 8-byte common header is given.
        AssertError(Read(CommonHeader(4, 3, 72, 76, 76 + 8193 + 4), Digests), FatalErrorStatus.DataTransferLimitExceeded, 4);
        Assert.Equal(PduReadResult.Incomplete, Read(CommonHeader(4, 3, 72, 76, 76 + 8192 + 4), Digests).Result);
        // H2CData beyond MAXH2CDATA.
        AssertError(Read(CommonHeader(6, 7, 24, 28, 28 + 128 * 1024 + 1 + 4), Digests), FatalErrorStatus.DataTransferLimitExceeded, 4);
        Assert.Equal(PduReadResult.Incomplete, Read(CommonHeader(6, 7, 24, 28, 28 + 128 * 1024 + 4), Digests).Result);
        // A hostile 4 GiB PLEN.
        AssertError(Read(CommonHeader(4, 3, 72, 76, uint.MaxValue), Digests), FatalErrorStatus.DataTransferLimitExceeded, 4);
        // TermReq data is at most 128 bytes.
        AssertError(Read(CommonHeader(2, 0, 24, 0, 24 + 129), Digests), FatalErrorStatus.DataTransferLimitExceeded, 4);
        // PDUs that carry no data at all.
        AssertError(Read(CommonHeader(0, 0, 128, 0, 129), Digests), FatalErrorStatus.InvalidPduHeaderField, 4);
        AssertError(Read(CommonHeader(9, 1, 24, 0, 100), Digests), FatalErrorStatus.InvalidPduHeaderField, 4);
        AssertError(Read(CommonHeader(5, 1, 24, 0, 29), Digests), FatalErrorStatus.InvalidPduHeaderField, 4);
    }

    [Fact]
    public void Limits_follow_the_settings()
    {
        var small = Digests with { MaxInCapsuleData = 512 };
        Assert.Equal(PduReadResult.Complete, Read(CaptureVectors.WriteInCapsuleCmd, small).Result);
        AssertError(Read(CaptureVectors.ConnectCmd, small), FatalErrorStatus.DataTransferLimitExceeded, 4);
        var smallH2C = Digests with { MaxH2CData = 4096 };
        AssertError(Read(CaptureVectors.H2CData, smallH2C), FatalErrorStatus.DataTransferLimitExceeded, 4);
    }

    [Theory]
    [InlineData(72)]
    [InlineData(0)]
    [InlineData(80)]
    public void Pdo_mismatch(byte pdo)
    {
        AssertError(Read(CommonHeader(4, 3, 72, pdo, 1104), Digests), FatalErrorStatus.InvalidPduHeaderField, 3);
        var bytes = (byte[])CaptureVectors.ConnectCmd.Clone();
        bytes[3] = pdo;
        AssertError(Read(bytes, Digests), FatalErrorStatus.InvalidPduHeaderField, 3);
    }

    [Fact]
    public void Pdo_without_digests_is_the_header_length()
    {
        var bytes = (byte[])CaptureVectors.DiscoveryConnect.Clone();
        bytes[3] = 76;
        AssertError(Read(bytes, NoDigests), FatalErrorStatus.InvalidPduHeaderField, 3);
    }

    [Fact]
    public void Header_digest_flag_mismatch()
    {
        // HDGSTF set but header digests were not negotiated, and the reverse.
        AssertError(Read(CaptureVectors.PropertyGetCapCmd, NoDigests), FatalErrorStatus.InvalidPduHeaderField, 1);
        AssertError(Read(CaptureVectors.DiscoveryConnect, Digests), FatalErrorStatus.InvalidPduHeaderField, 1);
        var cleared = (byte[])CaptureVectors.H2CData.Clone();
        cleared[1] &= unchecked((byte)~PduFlags.HeaderDigest);
        AssertError(Read(cleared.AsSpan(0, 8).ToArray(), Digests), FatalErrorStatus.InvalidPduHeaderField, 1);
    }

    [Fact]
    public void Data_digest_flag_mismatch()
    {
        AssertError(Read(CaptureVectors.ConnectCmd, Digests with { DataDigest = false }), FatalErrorStatus.InvalidPduHeaderField, 1);
        var cleared = (byte[])CaptureVectors.ConnectCmd.Clone();
        cleared[1] &= unchecked((byte)~PduFlags.DataDigest);
        AssertError(Read(cleared.AsSpan(0, 8).ToArray(), Digests), FatalErrorStatus.InvalidPduHeaderField, 1);
    }

    [Theory]
    [InlineData(9)]   // SQE flags
    [InlineData(10)]  // command id
    [InlineData(50)]  // CDW10
    [InlineData(73)]  // the digest itself
    public void Header_digest_error(int offset)
    {
        var bytes = (byte[])CaptureVectors.ConnectCmd.Clone();
        bytes[offset] ^= 0x10;
        var p = Read(bytes, Digests);
        AssertError(p, FatalErrorStatus.HeaderDigestError, 0);
        // Also when it arrives in pieces.
        AssertError(Read(Segment.Split(bytes, 40), Digests), FatalErrorStatus.HeaderDigestError, 0);
    }

    [Theory]
    [InlineData(76)]     // first data byte
    [InlineData(700)]
    [InlineData(1100)]   // the digest itself
    public void Data_digest_error_is_flagged_not_fatal(int offset)
    {
        var bytes = (byte[])CaptureVectors.ConnectCmd.Clone();
        bytes[offset] ^= 0x01;
        var whole = Read(bytes, Digests);
        Assert.Equal(PduReadResult.Complete, whole.Result);
        Assert.True(whole.DataDigestError);
        Assert.Equal(0, whole.Remaining);
        Assert.Equal(1024, whole.Data.Length);
        for (int at = 0; at <= bytes.Length; at += 31) whole.AssertSame(Read(Segment.Split(bytes, at), Digests));

        var h2c = (byte[])CaptureVectors.H2CData.Clone();
        h2c[5000] ^= 0x80;
        Assert.True(Read(h2c, Digests).DataDigestError);
    }

    [Fact]
    public void Expected_header_lengths()
    {
        Assert.Equal(128, PduReader.ExpectedHeaderLength(PduType.ICReq));
        Assert.Equal(128, PduReader.ExpectedHeaderLength(PduType.ICResp));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.H2CTermReq));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.C2HTermReq));
        Assert.Equal(72, PduReader.ExpectedHeaderLength(PduType.CapsuleCmd));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.CapsuleResp));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.H2CData));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.C2HData));
        Assert.Equal(24, PduReader.ExpectedHeaderLength(PduType.R2T));
        Assert.Equal(0, PduReader.ExpectedHeaderLength((PduType)0x08));
    }

    [Fact]
    public void Pdu_header_struct_layouts()
    {
        Assert.Equal(8, Marshal.SizeOf<CommonHeader>());
        Assert.Equal(4, Marshal.OffsetOf<CommonHeader>(nameof(Pdu.CommonHeader.PduLength)).ToInt32());
        Assert.Equal(128, System.Runtime.CompilerServices.Unsafe.SizeOf<InitializeConnectionPdu>());
        Assert.Equal(72, System.Runtime.CompilerServices.Unsafe.SizeOf<CapsuleCommandPdu>());
        Assert.Equal(24, System.Runtime.CompilerServices.Unsafe.SizeOf<CapsuleResponsePdu>());
        Assert.Equal(24, System.Runtime.CompilerServices.Unsafe.SizeOf<DataPdu>());
        Assert.Equal(24, System.Runtime.CompilerServices.Unsafe.SizeOf<R2TPdu>());
        Assert.Equal(24, System.Runtime.CompilerServices.Unsafe.SizeOf<TermReqPdu>());
        Assert.Equal(10, Marshal.OffsetOf<TermReqPdu>(nameof(TermReqPdu.ErrorInformation)).ToInt32());
        Assert.Equal(12, Marshal.OffsetOf<DataPdu>(nameof(DataPdu.DataOffset)).ToInt32());
        Assert.Equal(16, Marshal.OffsetOf<R2TPdu>(nameof(R2TPdu.Length)).ToInt32());
        Assert.Equal(11, Marshal.OffsetOf<InitializeConnectionPdu>(nameof(InitializeConnectionPdu.Digest)).ToInt32());
    }
}
