using System.Runtime.InteropServices;

namespace Nvme.Core.Spec;

/// <summary>SMART / Health Information log page, LID 02h (NVMe base spec 5.16.1.3), 512 bytes.
/// 128-bit counters are stored as two 64-bit halves (low first).</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct SmartHealthLog
{
    public const int Size = 512;

    [FieldOffset(0)] public byte CriticalWarning;
    [FieldOffset(1)] public ushort CompositeTemperature;
    [FieldOffset(3)] public byte AvailableSpare;
    [FieldOffset(4)] public byte AvailableSpareThreshold;
    [FieldOffset(5)] public byte PercentageUsed;
    [FieldOffset(32)] public ulong DataUnitsRead;
    [FieldOffset(48)] public ulong DataUnitsWritten;
    [FieldOffset(64)] public ulong HostReadCommands;
    [FieldOffset(80)] public ulong HostWriteCommands;
    [FieldOffset(96)] public ulong ControllerBusyTime;
    [FieldOffset(112)] public ulong PowerCycles;
    [FieldOffset(128)] public ulong PowerOnHours;
    [FieldOffset(144)] public ulong UnsafeShutdowns;
    [FieldOffset(160)] public ulong MediaErrors;
    [FieldOffset(176)] public ulong NumErrorLogEntries;
}

/// <summary>Error Information log entry, LID 01h (NVMe base spec 5.16.1.2), 64 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct ErrorLogEntry
{
    public const int Size = 64;

    [FieldOffset(0)] public ulong ErrorCount;
    [FieldOffset(8)] public ushort SqId;
    [FieldOffset(10)] public ushort CommandId;
    /// <summary>Status field (bits 15:1) as in the completion, phase tag bit 0.</summary>
    [FieldOffset(12)] public ushort Status;
    [FieldOffset(14)] public ushort ParameterErrorLocation;
    [FieldOffset(16)] public ulong Lba;
    [FieldOffset(24)] public uint Nsid;
    [FieldOffset(28)] public byte VendorSpecific;
    [FieldOffset(29)] public byte TransportType;
    [FieldOffset(32)] public ulong CommandSpecific;
    [FieldOffset(40)] public ushort TransportTypeSpecific;
}

/// <summary>Firmware Slot Information log page, LID 03h, 512 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct FirmwareSlotLog
{
    public const int Size = 512;

    [FieldOffset(0)] public byte ActiveFirmwareInfo;
    [FieldOffset(8)] public Bytes8 Slot1;
}

/// <summary>
/// Asymmetric Namespace Access log page header, LID 0Ch (NVMe base spec 5.16.1.13), 16 bytes; the group
/// descriptors follow it.
/// <code>
///  0      8        10         16
/// +------+--------+----------+
/// |CHGCNT| NGRPS  | reserved |
/// +------+--------+----------+
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct AnaLogHeader
{
    public const int Size = 16;
    /// <summary>LSP bit 0 (CDW10 bit 8): Return Groups Only, the descriptors carry no NSID list.</summary>
    public const uint ReturnGroupsOnly = 1u << 8;

    [FieldOffset(0)] public ulong ChangeCount;
    [FieldOffset(8)] public ushort NumberOfDescriptors;
}

/// <summary>
/// ANA Group Descriptor (NVMe base spec Figure "ANA Group Descriptor Format"), 32 bytes followed by NNSIDS NSIDs
/// (4 bytes each, ascending).
/// <code>
///  0        4        8        16      17         32
/// +--------+--------+--------+-------+----------+----------
/// |ANAGRPID| NNSIDS | CHGCNT | STATE | reserved | NSID ...
/// +--------+--------+--------+-------+----------+----------
/// </code>
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct AnaGroupDescriptor
{
    public const int Size = 32;

    [FieldOffset(0)] public uint GroupId;
    [FieldOffset(4)] public uint NumberOfNsids;
    [FieldOffset(8)] public ulong ChangeCount;
    /// <summary>ANA state (bits 3:0), see <see cref="Model.AnaState"/>.</summary>
    [FieldOffset(16)] public byte State;
}

/// <summary>Commands Supported and Effects log page, LID 05h: 256 admin then 256 I/O dwords.</summary>
public static class CommandEffectsLog
{
    public const int Size = 4096;
    public const int IoOffset = 1024;
    public const uint CommandSupported = 1u << 0;
    public const uint LogicalBlockContentChange = 1u << 1;
    /// <summary>NCC: the command may change namespace capabilities.</summary>
    public const uint NamespaceCapabilityChange = 1u << 2;
    /// <summary>NIC: the command may change the namespace inventory (the Linux host rescans after such a passthrough command).</summary>
    public const uint NamespaceInventoryChange = 1u << 3;
}

/// <summary>TRTYPE values (NVMe over Fabrics spec 5.3, Figure "Discovery Log Page Entry"; also the error log's
/// Transport Type). The core writes what the transport describes itself as and never picks one.</summary>
public enum TransportType : byte
{
    Rdma = 1,
    FibreChannel = 2,
    Tcp = 3,
    IntraHost = 254,
}

/// <summary>Discovery log page header, LID 70h (NVMe over Fabrics spec 5.3), 1024 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct DiscoveryLogHeader
{
    public const int Size = 1024;

    [FieldOffset(0)] public ulong GenerationCounter;
    [FieldOffset(8)] public ulong NumberOfRecords;
    [FieldOffset(16)] public ushort RecordFormat;
}

/// <summary>Discovery log page entry (NVMe over Fabrics spec 5.3, Figure "Discovery Log Page Entry"), 1024 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct DiscoveryLogEntry
{
    public const int Size = 1024;
    public const byte AddressFamilyIpv4 = 1;
    public const byte AddressFamilyIpv6 = 2;
    public const byte SubtypeNvmSubsystem = 2;
    public const byte SubtypeCurrentDiscovery = 3;
    /// <summary>TREQ: secure channel not specified (bits 1:0 = 0), SQ flow control disable supported (bit 2).</summary>
    public const byte TreqSqFlowControlDisableSupported = 1 << 2;

    [FieldOffset(0)] public byte TransportType;
    [FieldOffset(1)] public byte AddressFamily;
    [FieldOffset(2)] public byte SubsystemType;
    [FieldOffset(3)] public byte TransportRequirements;
    [FieldOffset(4)] public ushort PortId;
    [FieldOffset(6)] public ushort ControllerId;
    [FieldOffset(8)] public ushort AdminMaxSqSize;
    [FieldOffset(10)] public ushort EntryFlags;
    [FieldOffset(32)] public Bytes32 TransportServiceId;
    [FieldOffset(256)] public Bytes256 SubNqn;
    [FieldOffset(512)] public Bytes256 TransportAddress;
    /// <summary>TCP transport specific address subtype: byte 0 = SECTYPE (0 none).</summary>
    [FieldOffset(768)] public Bytes256 TransportSpecificAddressSubtype;
}

/// <summary>Connect command data (NVMe over Fabrics spec 3.3, Figure "Connect Command Data"), 1024 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct ConnectData
{
    public const int Size = 1024;
    public const int SubNqnOffset = 256;
    public const int HostNqnOffset = 512;
    public const int CntlidOffset = 16;

    [FieldOffset(0)] public Bytes16 HostId;
    [FieldOffset(16)] public ushort Cntlid;
    [FieldOffset(256)] public Bytes256 SubNqn;
    [FieldOffset(512)] public Bytes256 HostNqn;
}

/// <summary>Field offsets inside the Connect command SQE (for the IPO of a Connect Invalid Parameters result).</summary>
public static class ConnectCommand
{
    public const int RecfmtOffset = 40;
    public const int QidOffset = 42;
    public const int SqsizeOffset = 44;
    public const int CattrOffset = 46;
    public const int KatoOffset = 48;
    /// <summary>CATTR bit 2: the host disables SQ flow control (SQHD is then not maintained).</summary>
    public const byte CattrDisableSqFlowControl = 1 << 2;
    /// <summary>IATTR bit 16 of the result: the invalid parameter is in the Connect data, not the SQE.</summary>
    public const uint IattrData = 1u << 16;
    /// <summary>AUTHREQ.ATR (bit 17 of a successful Connect's result): the queue must run an authentication
    /// transaction (DH-HMAC-CHAP) before anything else; NVME_CONNECT_AUTHREQ_ATR in Linux.</summary>
    public const uint AuthreqAtr = 1u << 17;
}
