using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Nvme.Core.Spec;

/// <summary>
/// The 64-byte submission queue entry (NVMe base spec 4.2, "Common Command Format").
/// For fabrics commands (opcode 0x7F) byte 4 is FCTYPE instead of the low byte of NSID.
/// <code>
///  0      1      2      4       8      16     24          40    44    48    52    56    60   64
/// +------+------+------+-------+------+------+-----------+-----+-----+-----+-----+-----+-----+
/// |OPC   |FLAGS |CID   |NSID   |CDW2-3|MPTR  |DPTR (SGL) |CDW10|CDW11|CDW12|CDW13|CDW14|CDW15|
/// +------+------+------+-------+------+------+-----------+-----+-----+-----+-----+-----+-----+
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct SubmissionQueueEntry
{
    public const int Size = 64;

    [FieldOffset(0)] public byte Opcode;
    /// <summary>FUSE (bits 1:0) and PSDT (bits 7:6); fabrics always uses SGLs.</summary>
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort CommandId;
    [FieldOffset(4)] public uint Nsid;
    [FieldOffset(8)] public uint Cdw2;
    [FieldOffset(12)] public uint Cdw3;
    [FieldOffset(16)] public ulong MetadataPointer;
    [FieldOffset(24)] public SglDescriptor Sgl;
    [FieldOffset(40)] public uint Cdw10;
    [FieldOffset(44)] public uint Cdw11;
    [FieldOffset(48)] public uint Cdw12;
    [FieldOffset(52)] public uint Cdw13;
    [FieldOffset(56)] public uint Cdw14;
    [FieldOffset(60)] public uint Cdw15;

    /// <summary>Fabrics command type (byte 4 when <see cref="Opcode"/> is 0x7F).</summary>
    public readonly byte FabricsType => (byte)Nsid;

    /// <summary>Starting LBA of a Read/Write/Write Zeroes (CDW10-11).</summary>
    public readonly ulong StartingLba => Cdw10 | ((ulong)Cdw11 << 32);

    /// <summary>Number of logical blocks, converted from the 0's based NLB in CDW12 bits 15:0.</summary>
    public readonly uint BlockCount => (Cdw12 & 0xFFFF) + 1u;

    public static SubmissionQueueEntry Read(ReadOnlySpan<byte> source) => MemoryMarshal.Read<SubmissionQueueEntry>(source);
    public readonly void Write(Span<byte> destination) => MemoryMarshal.Write(destination, in this);
}

/// <summary>
/// A 16-byte SGL descriptor (NVMe base spec 4.3.2). NVMe/TCP uses two forms: a Data Block descriptor with
/// subtype Offset (0x01) for in-capsule data, and a Transport Data Block descriptor with the transport
/// specific subtype (0x5A) for data that moves by R2T/H2CData or C2HData.
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
public struct SglDescriptor
{
    public const byte InCapsuleOffset = 0x01;       // Data Block, subtype Offset
    public const byte TransportDataBlock = 0x5A;    // Transport SGL Data Block, transport specific subtype

    [FieldOffset(0)] public ulong Address;
    [FieldOffset(8)] public uint Length;
    [FieldOffset(15)] public byte Identifier;
}

/// <summary>
/// The 16-byte completion queue entry (NVMe base spec 4.2.1).
/// <code>
///  0                 8       10      12      14      16
/// +-----------------+-------+-------+-------+-------+
/// | DW0 | DW1 result| SQHD  | SQID  | CID   |STATUS |  status = status field &lt;&lt; 1 | phase
/// +-----------------+-------+-------+-------+-------+
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct CompletionQueueEntry
{
    public const int Size = 16;

    [FieldOffset(0)] public ulong Result;
    [FieldOffset(0)] public uint Dword0;
    [FieldOffset(4)] public uint Dword1;
    [FieldOffset(8)] public ushort SqHead;
    [FieldOffset(10)] public ushort SqId;
    [FieldOffset(12)] public ushort CommandId;
    /// <summary>Status field in bits 15:1, phase tag in bit 0 (always 0 over fabrics).</summary>
    [FieldOffset(14)] public ushort StatusAndPhase;

    public NvmeStatus Status
    {
        readonly get => (NvmeStatus)(StatusAndPhase >> 1);
        set => StatusAndPhase = (ushort)((ushort)value << 1);
    }

    public static CompletionQueueEntry Read(ReadOnlySpan<byte> source) => MemoryMarshal.Read<CompletionQueueEntry>(source);
    public readonly void Write(Span<byte> destination) => MemoryMarshal.Write(destination, in this);
}

internal static class Le
{
    public static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
}
