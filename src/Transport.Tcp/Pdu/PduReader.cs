using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Transport.Tcp.Pdu;

/// <summary>Per-connection limits and negotiated options the reader checks every PDU against.</summary>
public struct PduReaderSettings
{
    public bool HeaderDigest;
    public bool DataDigest;
    /// <summary>Largest in-capsule data accepted in a CapsuleCmd right now (admin vs. I/O queue).</summary>
    public int MaxInCapsuleData;
    /// <summary>Largest H2CData payload (MAXH2CDATA).</summary>
    public int MaxH2CData;
}

/// <summary>A complete PDU: a copy of its header and a zero-copy slice of its data.</summary>
public struct ReceivedPdu
{
    public PduHeaderBytes HeaderBytes;
    public PduType Type;
    public byte Flags;
    public int HeaderLength;
    /// <summary>Payload (after PDO, without data digest). Valid until the buffer is advanced.</summary>
    public ReadOnlySequence<byte> Data;
    /// <summary>The data digest did not match (a non-fatal, per-command error).</summary>
    public bool DataDigestError;

    public readonly ReadOnlySpan<byte> Header => MemoryMarshal.CreateReadOnlySpan(ref MemoryMarshal.GetReference<byte>(HeaderBytes), HeaderLength);
    public readonly T As<T>() where T : unmanaged => MemoryMarshal.Read<T>(Header);
}

/// <summary>Why a connection must end: the fatal error status and the field that caused it.</summary>
public readonly record struct PduError(FatalErrorStatus Status, uint FieldOffset, string Message);

public enum PduReadResult { Complete, Incomplete, Error }

/// <summary>
/// Frames NVMe/TCP PDUs out of a byte sequence. Like Kestrel's HTTP/2 frame reader, the common header is
/// validated (type, HLEN, PDO, PLEN against limits) before waiting for the rest, so a hostile PLEN never
/// makes us buffer more than the limit. Receive order: common header, PDU header (+HDGST), data (+DDGST).
/// </summary>
public static class PduReader
{
    /// <summary>HLEN fixed by the spec for each PDU type, or 0 for an unknown type.</summary>
    public static int ExpectedHeaderLength(PduType type) => type switch
    {
        PduType.ICReq or PduType.ICResp => InitializeConnectionPdu.Size,
        PduType.CapsuleCmd => CapsuleCommandPdu.Size,
        PduType.CapsuleResp => CapsuleResponsePdu.Size,
        PduType.H2CData or PduType.C2HData => DataPdu.Size,
        PduType.R2T => R2TPdu.Size,
        PduType.H2CTermReq or PduType.C2HTermReq => TermReqPdu.Size,
        _ => 0,
    };

    public static PduReadResult TryRead(ref ReadOnlySequence<byte> buffer, in PduReaderSettings settings, out ReceivedPdu pdu, out PduError error)
    {
        pdu = default;
        error = default;
        if (buffer.Length < CommonHeader.Size) return PduReadResult.Incomplete;

        Span<byte> chBytes = stackalloc byte[CommonHeader.Size];
        buffer.Slice(0, CommonHeader.Size).CopyTo(chBytes);
        var ch = MemoryMarshal.Read<CommonHeader>(chBytes);
        int hlen = ExpectedHeaderLength(ch.Type);
        if (hlen == 0) return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 0, $"unsupported PDU type 0x{(byte)ch.Type:x2}");
        if (ch.HeaderLength != hlen) return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 2, $"HLEN {ch.HeaderLength} for {ch.Type}, expected {hlen}");

        bool noDigests = ch.Type is PduType.ICReq or PduType.ICResp or PduType.H2CTermReq or PduType.C2HTermReq;
        bool hdgst = settings.HeaderDigest && !noDigests;
        if (!noDigests && ((ch.Flags & PduFlags.HeaderDigest) != 0) != hdgst)
            return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 1, $"HDGSTF flag does not match the negotiated header digest ({hdgst})");
        int hd = hdgst ? 4 : 0;
        long plen = ch.PduLength;
        if (plen < hlen + hd) return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 4, $"PLEN {plen} shorter than the header");

        long dataAndDigest = plen - hlen - hd;
        int ddgst = 0;
        int dataStart = hlen + hd;
        if (dataAndDigest > 0)
        {
            long max;
            switch (ch.Type)
            {
                case PduType.CapsuleCmd: max = settings.MaxInCapsuleData; break;
                case PduType.H2CData: max = settings.MaxH2CData; break;
                case PduType.H2CTermReq or PduType.C2HTermReq: max = TermReqPdu.MaxDataLength; break;
                default: return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 4, $"{ch.Type} with PLEN {plen} carries unexpected data");
            }
            if (!noDigests)
            {
                bool flag = (ch.Flags & PduFlags.DataDigest) != 0;
                if (flag != settings.DataDigest)
                    return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 1, $"DDGSTF flag does not match the negotiated data digest ({settings.DataDigest})");
                ddgst = flag ? 4 : 0;
                // CPDA is 0, so data starts right after the header and its digest.
                if (ch.DataOffset != hlen + hd)
                    return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 3, $"PDO {ch.DataOffset}, expected {hlen + hd}");
            }
            if (dataAndDigest - ddgst <= 0) return Fail(out error, FatalErrorStatus.InvalidPduHeaderField, 4, $"PLEN {plen} leaves no room for data");
            if (dataAndDigest - ddgst > max)
                return Fail(out error, FatalErrorStatus.DataTransferLimitExceeded, 4, $"{ch.Type} carries {dataAndDigest - ddgst} data bytes, limit {max}");
        }
        if (buffer.Length < plen) return PduReadResult.Incomplete;

        pdu.Type = ch.Type;
        pdu.Flags = ch.Flags;
        pdu.HeaderLength = hlen;
        Span<byte> header = pdu.HeaderBytes;
        buffer.Slice(0, hlen).CopyTo(header);
        if (hdgst)
        {
            Span<byte> digest = stackalloc byte[4];
            buffer.Slice(hlen, 4).CopyTo(digest);
            uint expected = Crc32C.Compute(header[..hlen]);
            uint received = BinaryPrimitives.ReadUInt32LittleEndian(digest);
            if (expected != received)
                return Fail(out error, FatalErrorStatus.HeaderDigestError, 0, $"header digest 0x{received:x8} != 0x{expected:x8} on {ch.Type}");
        }
        if (dataAndDigest > 0)
        {
            int dataLength = (int)(dataAndDigest - ddgst);
            pdu.Data = buffer.Slice(dataStart, dataLength);
            if (ddgst != 0)
            {
                Span<byte> digest = stackalloc byte[4];
                buffer.Slice(dataStart + dataLength, 4).CopyTo(digest);
                pdu.DataDigestError = Crc32C.Compute(pdu.Data) != BinaryPrimitives.ReadUInt32LittleEndian(digest);
            }
        }
        buffer = buffer.Slice(plen);
        return PduReadResult.Complete;
    }

    private static PduReadResult Fail(out PduError error, FatalErrorStatus status, uint offset, string message)
    {
        error = new PduError(status, offset, message);
        return PduReadResult.Error;
    }
}
