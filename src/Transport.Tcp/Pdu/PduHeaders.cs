using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;

namespace Transport.Tcp.Pdu;

/// <summary>PDU types (NVMe/TCP transport spec 3.6.2).</summary>
public enum PduType : byte
{
    ICReq = 0x00,
    ICResp = 0x01,
    H2CTermReq = 0x02,
    C2HTermReq = 0x03,
    CapsuleCmd = 0x04,
    CapsuleResp = 0x05,
    H2CData = 0x06,
    C2HData = 0x07,
    R2T = 0x09,
}

/// <summary>Common header FLAGS bits.</summary>
public static class PduFlags
{
    public const byte HeaderDigest = 0x01;
    public const byte DataDigest = 0x02;
    /// <summary>H2CData/C2HData: last PDU of the transfer (or of the R2T window).</summary>
    public const byte LastPdu = 0x04;
    /// <summary>C2HData: the command completed successfully, no CapsuleResp follows.</summary>
    public const byte Success = 0x08;
}

/// <summary>Fatal error status of a TermReq (NVMe/TCP transport spec 3.6.2.4).</summary>
public enum FatalErrorStatus : ushort
{
    InvalidPduHeaderField = 0x01,
    PduSequenceError = 0x02,
    HeaderDigestError = 0x03,
    DataTransferOutOfRange = 0x04,
    DataTransferLimitExceeded = 0x05,
    UnsupportedParameter = 0x06,
}

/// <summary>
/// The 8-byte common header of every PDU.
/// <code>
///  0      1      2      3      4             8
/// +------+------+------+------+-------------+
/// | type |flags | HLEN | PDO  |    PLEN     |
/// +------+------+------+------+-------------+
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct CommonHeader
{
    public const int Size = 8;
    [FieldOffset(0)] public PduType Type;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public byte HeaderLength;
    [FieldOffset(3)] public byte DataOffset;
    [FieldOffset(4)] public uint PduLength;
}

/// <summary>ICReq (host to controller) and ICResp share one 128-byte layout:
/// <code>
///  0     8     10          11     12                  16 ... 128
/// | CH  | PFV | HPDA/CPDA | DGST | MAXR2T/MAXH2CDATA | reserved |
/// </code></summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct InitializeConnectionPdu
{
    public const int Size = 128;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public ushort Pfv;
    /// <summary>HPDA in ICReq, CPDA in ICResp.</summary>
    [FieldOffset(10)] public byte DataAlignment;
    /// <summary>Bit 0 header digest, bit 1 data digest.</summary>
    [FieldOffset(11)] public byte Digest;
    /// <summary>MAXR2T in ICReq (0's based), MAXH2CDATA in ICResp.</summary>
    [FieldOffset(12)] public uint Limit;
}

/// <summary>CapsuleCmd: common header + 64-byte SQE (HLEN 72), then optional in-capsule data.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct CapsuleCommandPdu
{
    public const int Size = 72;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public SubmissionQueueEntry Command;
}

/// <summary>CapsuleResp: common header + 16-byte CQE (HLEN 24).</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct CapsuleResponsePdu
{
    public const int Size = 24;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public CompletionQueueEntry Response;
}

/// <summary>H2CData / C2HData header (HLEN 24).
/// <code>
///  0     8       10              12      16      20     24
/// | CH  | CCCID | TTAG (H2C) or | DATAO | DATAL | rsvd |
/// |     |       | reserved (C2H)|       |       |      |
/// </code></summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct DataPdu
{
    public const int Size = 24;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public ushort CommandId;
    [FieldOffset(10)] public ushort TransferTag;
    [FieldOffset(12)] public uint DataOffset;
    [FieldOffset(16)] public uint DataLength;
}

/// <summary>R2T header (HLEN 24): CCCID, TTAG, R2TO, R2TL.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct R2TPdu
{
    public const int Size = 24;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public ushort CommandId;
    [FieldOffset(10)] public ushort TransferTag;
    [FieldOffset(12)] public uint Offset;
    [FieldOffset(16)] public uint Length;
}

/// <summary>H2CTermReq / C2HTermReq header (HLEN 24): FES, FEI; followed by up to 128 bytes of the PDU
/// header in error.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct TermReqPdu
{
    public const int Size = 24;
    public const int MaxDataLength = 128;
    [FieldOffset(0)] public CommonHeader Header;
    [FieldOffset(8)] public FatalErrorStatus Status;
    [FieldOffset(10)] public uint ErrorInformation;
}

/// <summary>Room for the largest PDU header (ICReq, 128 bytes) without a heap allocation.</summary>
[InlineArray(128)]
public struct PduHeaderBytes { private byte _e; }
