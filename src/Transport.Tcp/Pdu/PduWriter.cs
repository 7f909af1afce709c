using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;

namespace Transport.Tcp.Pdu;

/// <summary>
/// Writes controller-to-host PDUs into a buffer writer (the connection's PipeWriter). Headers are built in
/// place in the writer's memory; digests are appended when negotiated. Nothing allocates.
/// </summary>
public static class PduWriter
{
    public static void WriteICResp(IBufferWriter<byte> w, byte digest, uint maxH2CData)
    {
        var span = w.GetSpan(InitializeConnectionPdu.Size)[..InitializeConnectionPdu.Size];
        span.Clear();
        ref var p = ref MemoryMarshal.AsRef<InitializeConnectionPdu>(span);
        p.Header = Header(PduType.ICResp, 0, InitializeConnectionPdu.Size, 0, InitializeConnectionPdu.Size);
        p.Pfv = 0;
        p.DataAlignment = 0; // CPDA: no padding before data
        p.Digest = digest;
        p.Limit = maxH2CData;
        w.Advance(InitializeConnectionPdu.Size);
    }

    public static void WriteCapsuleResp(IBufferWriter<byte> w, in CompletionQueueEntry cqe, bool hdgst)
    {
        int total = CapsuleResponsePdu.Size + (hdgst ? 4 : 0);
        var span = w.GetSpan(total)[..total];
        ref var p = ref MemoryMarshal.AsRef<CapsuleResponsePdu>(span);
        p.Header = Header(PduType.CapsuleResp, hdgst ? PduFlags.HeaderDigest : (byte)0, CapsuleResponsePdu.Size, 0, (uint)total);
        p.Response = cqe;
        if (hdgst) AppendDigest(span, CapsuleResponsePdu.Size);
        w.Advance(total);
    }

    public static void WriteR2T(IBufferWriter<byte> w, ushort cid, ushort ttag, uint offset, uint length, bool hdgst)
    {
        int total = R2TPdu.Size + (hdgst ? 4 : 0);
        var span = w.GetSpan(total)[..total];
        span[..R2TPdu.Size].Clear();
        ref var p = ref MemoryMarshal.AsRef<R2TPdu>(span);
        p.Header = Header(PduType.R2T, hdgst ? PduFlags.HeaderDigest : (byte)0, R2TPdu.Size, 0, (uint)total);
        p.CommandId = cid;
        p.TransferTag = ttag;
        p.Offset = offset;
        p.Length = length;
        if (hdgst) AppendDigest(span, R2TPdu.Size);
        w.Advance(total);
    }

    /// <summary>One C2HData PDU carrying <paramref name="data"/> at <paramref name="offset"/> of the command's data.
    /// <paramref name="hpda"/> is the host's ICReq HPDA (0's based dwords): the data starts at the next multiple of
    /// (HPDA + 1) x 4 bytes after the header and its digest, the gap (PAD) zero-filled and outside the data digest
    /// (NVMe/TCP transport spec 3.6.2.3). HPDA 0 needs no pad: the 24-byte header is dword aligned.</summary>
    public static void WriteC2HData(IBufferWriter<byte> w, ushort cid, uint offset, ReadOnlySpan<byte> data, bool last, bool success, bool hdgst, bool ddgst,
        int hpda = 0)
    {
        WriteC2HDataHeader(w, cid, offset, data.Length, last, success, hdgst, ddgst, hpda);
        w.Write(data);
        if (ddgst) WriteDataDigest(w, data);
    }

    /// <summary>The header of a C2HData PDU (with its digest and PAD): what <see cref="WriteC2HData"/> writes before the
    /// data. A writer that sends the data from where it lies (no copy) writes this, then the data, then
    /// <see cref="WriteDataDigest"/> when data digests are on.</summary>
    public static void WriteC2HDataHeader(IBufferWriter<byte> w, ushort cid, uint offset, int dataLength, bool last, bool success, bool hdgst, bool ddgst,
        int hpda = 0)
    {
        int hd = hdgst ? 4 : 0, dd = ddgst ? 4 : 0;
        int alignment = (hpda + 1) * 4;
        int headerTotal = (DataPdu.Size + hd + alignment - 1) / alignment * alignment; // header, digest and PAD
        byte flags = (byte)((hdgst ? PduFlags.HeaderDigest : 0) | (ddgst ? PduFlags.DataDigest : 0)
                            | (last ? PduFlags.LastPdu : 0) | (success ? PduFlags.Success : 0));
        var span = w.GetSpan(headerTotal)[..headerTotal];
        span[..DataPdu.Size].Clear();
        if (headerTotal > DataPdu.Size + hd) span[(DataPdu.Size + hd)..].Clear();
        ref var p = ref MemoryMarshal.AsRef<DataPdu>(span);
        p.Header = Header(PduType.C2HData, flags, DataPdu.Size, (byte)headerTotal, (uint)(headerTotal + dataLength + dd));
        p.CommandId = cid;
        p.DataOffset = offset;
        p.DataLength = (uint)dataLength;
        if (hdgst) AppendDigest(span, DataPdu.Size);
        w.Advance(headerTotal);
    }

    /// <summary>DDGST: CRC32C of a PDU's data (<paramref name="wrong"/>: its complement, an injected digest error).</summary>
    public static void WriteDataDigest(IBufferWriter<byte> w, ReadOnlySpan<byte> data, bool wrong = false)
    {
        var d = w.GetSpan(4);
        uint crc = Crc32C.Compute(data);
        BinaryPrimitives.WriteUInt32LittleEndian(d, wrong ? ~crc : crc);
        w.Advance(4);
    }

    /// <summary>C2HTermReq: FES, FEI and (up to 128 bytes of) the header of the PDU in error.</summary>
    public static void WriteC2HTermReq(IBufferWriter<byte> w, FatalErrorStatus fes, uint fei, ReadOnlySpan<byte> offendingHeader)
    {
        var data = offendingHeader[..Math.Min(offendingHeader.Length, TermReqPdu.MaxDataLength)];
        int total = TermReqPdu.Size + data.Length;
        var span = w.GetSpan(total)[..total];
        span[..TermReqPdu.Size].Clear();
        ref var p = ref MemoryMarshal.AsRef<TermReqPdu>(span);
        p.Header = Header(PduType.C2HTermReq, 0, TermReqPdu.Size, 0, (uint)total);
        p.Status = fes;
        p.ErrorInformation = fei;
        data.CopyTo(span[TermReqPdu.Size..]);
        w.Advance(total);
    }

    private static CommonHeader Header(PduType type, byte flags, int hlen, byte pdo, uint plen) =>
        new() { Type = type, Flags = flags, HeaderLength = (byte)hlen, DataOffset = pdo, PduLength = plen };

    private static void AppendDigest(Span<byte> span, int headerLength) =>
        BinaryPrimitives.WriteUInt32LittleEndian(span[headerLength..], Crc32C.Compute(span[..headerLength]));
}
