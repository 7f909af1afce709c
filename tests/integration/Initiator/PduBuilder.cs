using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Integration.Tests.Initiator;

/// <summary>Builds host-to-controller PDUs as byte arrays (header, optional HDGST, data, optional DDGST).
/// Everything is overridable so malformed-input tests can build broken PDUs from the same code.</summary>
public static class PduBuilder
{
    public static byte[] ICReq(bool headerDigest, bool dataDigest, byte hpda = 0, uint maxR2T = 0, ushort pfv = 0)
    {
        var p = new InitializeConnectionPdu
        {
            Header = new CommonHeader { Type = PduType.ICReq, HeaderLength = InitializeConnectionPdu.Size, PduLength = InitializeConnectionPdu.Size },
            Pfv = pfv,
            DataAlignment = hpda,
            Digest = (byte)((headerDigest ? 1 : 0) | (dataDigest ? 2 : 0)),
            Limit = maxR2T,
        };
        var bytes = new byte[InitializeConnectionPdu.Size];
        MemoryMarshal.Write(bytes, in p);
        return bytes;
    }

    public static byte[] CapsuleCmd(in SubmissionQueueEntry sqe, ReadOnlySpan<byte> inCapsuleData, bool headerDigest, bool dataDigest)
    {
        var header = new byte[CapsuleCommandPdu.Size];
        var p = new CapsuleCommandPdu { Header = new CommonHeader { Type = PduType.CapsuleCmd, HeaderLength = CapsuleCommandPdu.Size }, Command = sqe };
        MemoryMarshal.Write(header, in p);
        return Assemble(header, inCapsuleData, headerDigest, dataDigest);
    }

    public static byte[] H2CData(ushort cid, ushort ttag, uint offset, ReadOnlySpan<byte> data, bool last, bool headerDigest, bool dataDigest)
    {
        var header = new byte[DataPdu.Size];
        var p = new DataPdu
        {
            Header = new CommonHeader { Type = PduType.H2CData, HeaderLength = DataPdu.Size, Flags = last ? PduFlags.LastPdu : (byte)0 },
            CommandId = cid,
            TransferTag = ttag,
            DataOffset = offset,
            DataLength = (uint)data.Length,
        };
        MemoryMarshal.Write(header, in p);
        return Assemble(header, data, headerDigest, dataDigest);
    }

    public static byte[] H2CTermReq(FatalErrorStatus status, uint errorInformation)
    {
        var bytes = new byte[TermReqPdu.Size];
        var p = new TermReqPdu
        {
            Header = new CommonHeader { Type = PduType.H2CTermReq, HeaderLength = TermReqPdu.Size, PduLength = TermReqPdu.Size },
            Status = status,
            ErrorInformation = errorInformation,
        };
        MemoryMarshal.Write(bytes, in p);
        return bytes;
    }

    /// <summary>Completes a PDU whose header (HLEN bytes, type/HLEN/flags already set) is given: sets the digest
    /// flags, PDO and PLEN as the Linux host does (PDO 0 without data) and appends the digests.</summary>
    public static byte[] Assemble(ReadOnlySpan<byte> header, ReadOnlySpan<byte> data, bool headerDigest, bool dataDigest)
    {
        int hlen = header.Length;
        int hd = headerDigest ? 4 : 0;
        int dd = dataDigest && !data.IsEmpty ? 4 : 0;
        int total = hlen + hd + data.Length + dd;
        var pdu = new byte[total];
        header.CopyTo(pdu);
        byte flags = pdu[1];
        if (headerDigest) flags |= PduFlags.HeaderDigest;
        if (dd != 0) flags |= PduFlags.DataDigest;
        pdu[1] = flags;
        pdu[3] = data.IsEmpty ? (byte)0 : (byte)(hlen + hd);
        BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(4), (uint)total);
        if (headerDigest) BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(hlen), SoftwareCrc32C.Compute(pdu.AsSpan(0, hlen)));
        data.CopyTo(pdu.AsSpan(hlen + hd));
        if (dd != 0) BinaryPrimitives.WriteUInt32LittleEndian(pdu.AsSpan(hlen + hd + data.Length), SoftwareCrc32C.Compute(data));
        return pdu;
    }
}
