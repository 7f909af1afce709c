using System.Runtime.InteropServices;

namespace Nvme.Core.Spec;

/// <summary>Identify Controller data structure, CNS 01h (NVMe base spec 5.17.2.1), 4096 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct IdentifyController
{
    public const int Size = 4096;

    [FieldOffset(0)] public ushort Vid;
    [FieldOffset(2)] public ushort Ssvid;
    [FieldOffset(4)] public Bytes20 SerialNumber;
    [FieldOffset(24)] public Bytes40 ModelNumber;
    [FieldOffset(64)] public Bytes8 FirmwareRevision;
    [FieldOffset(72)] public byte Rab;
    [FieldOffset(73)] public Bytes3 Ieee;
    [FieldOffset(76)] public byte Cmic;
    [FieldOffset(77)] public byte Mdts;
    [FieldOffset(78)] public ushort Cntlid;
    [FieldOffset(80)] public uint Ver;
    [FieldOffset(84)] public uint Rtd3r;
    [FieldOffset(88)] public uint Rtd3e;
    [FieldOffset(92)] public uint Oaes;
    [FieldOffset(96)] public uint Ctratt;
    [FieldOffset(100)] public ushort Rrls;
    [FieldOffset(111)] public byte CntrlType;
    [FieldOffset(112)] public Bytes16 Fguid;
    [FieldOffset(128)] public ushort Crdt1;
    [FieldOffset(130)] public ushort Crdt2;
    [FieldOffset(132)] public ushort Crdt3;
    [FieldOffset(256)] public ushort Oacs;
    [FieldOffset(258)] public byte Acl;
    [FieldOffset(259)] public byte Aerl;
    [FieldOffset(260)] public byte Frmw;
    [FieldOffset(261)] public byte Lpa;
    [FieldOffset(262)] public byte Elpe;
    [FieldOffset(263)] public byte Npss;
    [FieldOffset(264)] public byte Avscc;
    [FieldOffset(265)] public byte Apsta;
    [FieldOffset(266)] public ushort Wctemp;
    [FieldOffset(268)] public ushort Cctemp;
    [FieldOffset(320)] public ushort Kas;
    [FieldOffset(342)] public byte Anatt;
    [FieldOffset(343)] public byte Anacap;
    [FieldOffset(344)] public uint Anagrpmax;
    [FieldOffset(348)] public uint Nanagrpid;
    [FieldOffset(512)] public byte Sqes;
    [FieldOffset(513)] public byte Cqes;
    [FieldOffset(514)] public ushort Maxcmd;
    [FieldOffset(516)] public uint Nn;
    [FieldOffset(520)] public ushort Oncs;
    [FieldOffset(522)] public ushort Fuses;
    [FieldOffset(524)] public byte Fna;
    [FieldOffset(525)] public byte Vwc;
    [FieldOffset(526)] public ushort Awun;
    [FieldOffset(528)] public ushort Awupf;
    [FieldOffset(530)] public byte Icsvscc;
    [FieldOffset(531)] public byte Nwpc;
    [FieldOffset(532)] public ushort Acwu;
    [FieldOffset(534)] public ushort Ocfs;
    [FieldOffset(536)] public uint Sgls;
    [FieldOffset(540)] public uint Mnan;
    [FieldOffset(768)] public Bytes256 SubNqn;
    // NVMe over Fabrics fields (NVMe over Fabrics spec 4.1, Figure "Identify Controller fabrics fields")
    [FieldOffset(1792)] public uint Ioccsz;
    [FieldOffset(1796)] public uint Iorcsz;
    [FieldOffset(1800)] public ushort Icdoff;
    [FieldOffset(1802)] public byte Fcatt;
    [FieldOffset(1803)] public byte Msdbd;
    [FieldOffset(1804)] public ushort Ofcs;
    [FieldOffset(2048)] public PowerStateDescriptor Psd0;
}

/// <summary>Power State Descriptor (NVMe base spec Figure "Power State Descriptor Data Structure"), 32 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct PowerStateDescriptor
{
    /// <summary>Maximum power in centiwatts.</summary>
    [FieldOffset(0)] public ushort MaxPower;
    [FieldOffset(3)] public byte Flags;
    [FieldOffset(4)] public uint EntryLatency;
    [FieldOffset(8)] public uint ExitLatency;
}

/// <summary>Identify Namespace data structure for the NVM command set, CNS 00h, 4096 bytes.</summary>
[StructLayout(LayoutKind.Explicit, Size = Size)]
public struct IdentifyNamespace
{
    public const int Size = 4096;

    [FieldOffset(0)] public ulong Nsze;
    [FieldOffset(8)] public ulong Ncap;
    [FieldOffset(16)] public ulong Nuse;
    [FieldOffset(24)] public byte Nsfeat;
    [FieldOffset(25)] public byte Nlbaf;
    [FieldOffset(26)] public byte Flbas;
    [FieldOffset(27)] public byte Mc;
    [FieldOffset(28)] public byte Dpc;
    [FieldOffset(29)] public byte Dps;
    [FieldOffset(30)] public byte Nmic;
    [FieldOffset(31)] public byte Rescap;
    [FieldOffset(32)] public byte Fpi;
    [FieldOffset(33)] public byte Dlfeat;
    [FieldOffset(34)] public ushort Nawun;
    [FieldOffset(36)] public ushort Nawupf;
    [FieldOffset(38)] public ushort Nacwu;
    [FieldOffset(46)] public ushort Noiob;
    [FieldOffset(64)] public ushort Npwg;
    [FieldOffset(66)] public ushort Npwa;
    [FieldOffset(68)] public ushort Npdg;
    [FieldOffset(70)] public ushort Npda;
    [FieldOffset(72)] public ushort Nows;
    [FieldOffset(92)] public uint Anagrpid;
    [FieldOffset(99)] public byte Nsattr;
    [FieldOffset(104)] public Bytes16 Nguid;
    [FieldOffset(120)] public Bytes8 Eui64;
    /// <summary>LBA format 0: MS bits 15:0, LBADS bits 23:16, RP bits 25:24.</summary>
    [FieldOffset(128)] public uint Lbaf0;
}

/// <summary>I/O Command Set Independent Identify Namespace, CNS 08h (NVMe base spec 5.17.2.9).</summary>
[StructLayout(LayoutKind.Explicit, Size = 4096)]
public struct IdentifyNamespaceIndependent
{
    [FieldOffset(0)] public byte Nsfeat;
    [FieldOffset(1)] public byte Nmic;
    [FieldOffset(2)] public byte Rescap;
    [FieldOffset(3)] public byte Fpi;
    [FieldOffset(4)] public uint Anagrpid;
    [FieldOffset(8)] public byte Nsattr;
    [FieldOffset(10)] public ushort Nvmsetid;
    [FieldOffset(12)] public ushort Endgid;
    /// <summary>Namespace Status: bit 0 NRDY (namespace ready).</summary>
    [FieldOffset(14)] public byte Nstat;
}

/// <summary>Namespace Identification Descriptor types (NVMe base spec 5.17.2.3).</summary>
public static class NsIdType
{
    public const byte Eui64 = 1;
    public const byte Nguid = 2;
    public const byte Uuid = 3;
    public const byte Csi = 4;
}
