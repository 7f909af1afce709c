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

/// <summary>Where a PDU's parts lie, from its common header: header, header digest, data (from
/// <see cref="DataStart"/>, CPDA being 0), data digest; <see cref="Length"/> is PLEN.</summary>
public readonly record struct PduLayout(PduType Type, byte Flags, int HeaderLength, int HeaderDigestLength, int DataLength, int DataDigestLength)
{
    public int DataStart => HeaderLength + HeaderDigestLength;
    public long Length => (long)DataStart + DataLength + DataDigestLength;
}

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
        var r = Frame(buffer, settings, out var layout, out error);
        if (r != PduReadResult.Complete) return r;
        if (buffer.Length < layout.Length) return PduReadResult.Incomplete;
        r = ReadHeader(buffer, layout, ref pdu, out error);
        if (r != PduReadResult.Complete) return r;
        if (layout.DataLength > 0)
        {
            pdu.Data = buffer.Slice(layout.DataStart, layout.DataLength);
            if (layout.DataDigestLength != 0)
            {
                Span<byte> digest = stackalloc byte[4];
                buffer.Slice(layout.DataStart + layout.DataLength, 4).CopyTo(digest);
                pdu.DataDigestError = Crc32C.Compute(pdu.Data) != BinaryPrimitives.ReadUInt32LittleEndian(digest);
            }
        }
        buffer = buffer.Slice(layout.Length);
        return PduReadResult.Complete;
    }

    /// <summary>The PDU at the buffer's start as far as its header: Complete when the header (and its digest) has
    /// arrived and is valid, whether or not its data has; <paramref name="layout"/> says where the data lies. The
    /// buffer is not advanced. <see cref="ReceivedPdu.Data"/> stays empty.</summary>
    public static PduReadResult TryReadHeader(in ReadOnlySequence<byte> buffer, in PduReaderSettings settings, out ReceivedPdu pdu, out PduLayout layout, out PduError error)
    {
        pdu = default;
        var r = Frame(buffer, settings, out layout, out error);
        if (r != PduReadResult.Complete) return r;
        if (buffer.Length < layout.DataStart) return PduReadResult.Incomplete;
        return ReadHeader(buffer, layout, ref pdu, out error);
    }

    /// <summary>Validates the common header (type, HLEN, digest flags, PDO, PLEN against the limits) and works out
    /// the layout; Incomplete only while the 8 bytes of the common header have not all arrived.</summary>
    private static PduReadResult Frame(in ReadOnlySequence<byte> buffer, in PduReaderSettings settings, out PduLayout layout, out PduError error)
    {
        layout = default;
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
        layout = new PduLayout(ch.Type, ch.Flags, hlen, hd, (int)(dataAndDigest > 0 ? dataAndDigest - ddgst : 0), ddgst);
        return PduReadResult.Complete;
    }

    /// <summary>Copies the header (its length is in <paramref name="layout"/>) and checks its digest.</summary>
    private static PduReadResult ReadHeader(in ReadOnlySequence<byte> buffer, in PduLayout layout, ref ReceivedPdu pdu, out PduError error)
    {
        error = default;
        pdu.Type = layout.Type;
        pdu.Flags = layout.Flags;
        pdu.HeaderLength = layout.HeaderLength;
        Span<byte> header = pdu.HeaderBytes;
        buffer.Slice(0, layout.HeaderLength).CopyTo(header);
        if (layout.HeaderDigestLength != 0)
        {
            Span<byte> digest = stackalloc byte[4];
            buffer.Slice(layout.HeaderLength, 4).CopyTo(digest);
            uint expected = Crc32C.Compute(header[..layout.HeaderLength]);
            uint received = BinaryPrimitives.ReadUInt32LittleEndian(digest);
            if (expected != received)
                return Fail(out error, FatalErrorStatus.HeaderDigestError, 0, $"header digest 0x{received:x8} != 0x{expected:x8} on {layout.Type}");
        }
        return PduReadResult.Complete;
    }

    private static PduReadResult Fail(out PduError error, FatalErrorStatus status, uint offset, string message)
    {
        error = new PduError(status, offset, message);
        return PduReadResult.Error;
    }
}
