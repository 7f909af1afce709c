using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>Identify (NVMe base spec 5.17): CNS 00, 01, 02, 03, 05, 06, 08, 12, 13. Namespaces are as the asking
/// controller's host sees them (masking): a namespace it does not see is an inactive NSID.</summary>
internal static partial class AdminCommands
{
    private static NvmeStatus Identify(Controller c, NvmeRequest req)
    {
        byte cns = (byte)req.Sqe.Cdw10;
        byte csi = (byte)(req.Sqe.Cdw11 >> 24);
        uint nsid = req.Sqe.Nsid;
        Span<byte> page = stackalloc byte[4096];
        page.Clear();
        if (c.IsDiscovery && cns != IdentifyCns.Controller) return NvmeStatus.InvalidField;
        switch (cns)
        {
            case IdentifyCns.Controller:
                FillController(c, page);
                break;
            case IdentifyCns.Namespace:
            case IdentifyCns.CommandSetIndependentNamespace:
            case IdentifyCns.NamespaceDescriptorList:
            case IdentifyCns.IoCommandSetNamespace:
                {
                    if (nsid == 0 || (nsid > c.Target.Limits.MaxNamespaces && nsid != 0xFFFFFFFF)) return NvmeStatus.InvalidNamespaceOrFormat;
                    if (cns == IdentifyCns.IoCommandSetNamespace && csi != 0) return NvmeStatus.InvalidField;
                    var ns = c.Subsystem.GetNamespace(nsid, c.HostNqn);
                    if (ns is null)
                    {
                        // An allocated-but-inactive NSID (a masked one too) reads as zeros (NVMe base spec 5.17.2.1); the
                        // descriptor list has nothing to describe (kernel nvmet: Invalid Namespace for an NSID it cannot find).
                        if (cns == IdentifyCns.NamespaceDescriptorList) return NvmeStatus.InvalidNamespaceOrFormat;
                        break;
                    }
                    if (cns == IdentifyCns.Namespace) FillNamespace(ns, page);
                    else if (cns == IdentifyCns.CommandSetIndependentNamespace) FillIndependentNamespace(ns, page);
                    else if (cns == IdentifyCns.NamespaceDescriptorList) FillDescriptors(ns, page);
                    // CNS 05 with CSI 0 (NVM): no NVM-specific fields beyond the defaults; all zero.
                    break;
                }
            case IdentifyCns.ActiveNamespaceList:
                {
                    if (nsid >= 0xFFFFFFFE) return NvmeStatus.InvalidNamespaceOrFormat;
                    int i = 0;
                    foreach (var id in c.Subsystem.ActiveNsids(c.HostNqn, nsid))
                    {
                        if (i == 1024) break;
                        WriteU32(page, 4 * i++, id);
                    }
                    break;
                }
            case IdentifyCns.AttachedControllerList:
                {
                    if (nsid == 0 || nsid == 0xFFFFFFFF || nsid > c.Target.Limits.MaxNamespaces) return NvmeStatus.InvalidNamespaceOrFormat;
                    // The controllers whose host sees the namespace. A host that neither sees it nor may attach it learns
                    // nothing of it: an empty list, as for an NSID that is not allocated.
                    var ns = c.Subsystem.GetNamespace(nsid);
                    if (ns is null || (!ns.IsVisibleTo(c.HostNqn) && !c.Subsystem.MayAttachNamespaces(c.HostNqn))) break;
                    FillControllerList(page, c.Subsystem.Controllers.Where(x => ns.IsVisibleTo(x.HostNqn)), (ushort)(req.Sqe.Cdw10 >> 16));
                    break;
                }
            case IdentifyCns.ControllerList:
                FillControllerList(page, c.Subsystem.Controllers, (ushort)(req.Sqe.Cdw10 >> 16));
                break;
            case IdentifyCns.IoCommandSetController:
                // NVM command set specific controller data: no VSL/WZSL/DMRL limits beyond MDTS; all zero.
                if (csi != 0) return NvmeStatus.InvalidField;
                break;
            default:
                return NvmeStatus.InvalidField;
        }
        Transfer(req, page);
        return NvmeStatus.Success;
    }

    /// <summary>A Controller List (NVMe base spec 4.7, "Controller List"): the number of identifiers, then up to 2047
    /// CNTLIDs in ascending order, those at least <paramref name="from"/> (CDW10.CNTID).</summary>
    private static void FillControllerList(Span<byte> page, IEnumerable<Controller> controllers, ushort from)
    {
        var ids = controllers.Where(x => !x.IsDestroyed && x.Cntlid >= from).Select(x => x.Cntlid).Order().Take(2047).ToArray();
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(page, (ushort)ids.Length);
        for (int i = 0; i < ids.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(page[(2 + 2 * i)..], ids[i]);
    }

    private static void FillController(Controller c, Span<byte> page)
    {
        ref var id = ref MemoryMarshal.AsRef<IdentifyController>(page);
        var s = c.Subsystem;
        var limits = c.Target.Limits;
        SpecText.WriteSpacePadded(id.SerialNumber, s.Serial);
        SpecText.WriteSpacePadded(id.ModelNumber, s.Model);
        SpecText.WriteSpacePadded(id.FirmwareRevision, s.FirmwareRevision);
        id.Rab = 6;
        id.Cmic = c.IsDiscovery ? (byte)0 : (byte)0xB;    // multi-port, multi-controller, ANA reporting (bit 3)
        id.Mdts = limits.Mdts;
        id.Cntlid = c.Cntlid;
        id.Ver = Controller.Version;
        // Bit 8: namespace attribute notices; bit 11: ANA change notices.
        id.Oaes = c.IsDiscovery ? 0 : AsyncEvent.ConfigNamespaceAttributeNotices | AsyncEvent.ConfigAnaChangeNotices;
        id.Ctratt = c.IsDiscovery ? 0 : (1u << 0) | (1u << 6); // 128-bit host ID; traffic based keep-alive
        id.CntrlType = c.IsDiscovery ? (byte)2 : (byte)1;
        id.Acl = 3;
        id.Aerl = limits.AsyncEventRequestLimit;
        id.Frmw = 0x3;            // one slot, slot 1 read-only
        id.Lpa = c.IsDiscovery ? (byte)0x4 : (byte)0x7; // SMART per NS, effects log, extended data
        id.Elpe = (byte)(limits.ErrorLogEntries - 1);
        id.Kas = 10;              // keep-alive granularity 10 x 100 ms
        id.Sqes = 0x66;
        id.Cqes = 0x44;
        id.Maxcmd = (ushort)(limits.MaxQueueEntries + 1);
        id.Nn = c.IsDiscovery ? 0 : limits.MaxNamespaces;
        if (!c.IsDiscovery)
        {
            // ANA (NVMe base spec 8.1.3): every state reported and enterable (ANACAP bits 4:0), no ANAGRPID in Namespace
            // Management (bit 7: there is none), groups may change while attached (bit 6 clear). ANATT 10 s as nvmet: a
            // group left in the change state longer makes the Linux host reset the controller. MNAN must be 1..NN or Linux
            // refuses the controller; it sizes the ANA log it reads from NANAGRPID and MNAN (16 + 32 x 128 + 4 x 1024 bytes
            // by default, well under MDTS).
            id.Anacap = 0x1F;
            id.Anatt = 10;
            id.Anagrpmax = Subsystem.MaxAnaGroups;
            id.Nanagrpid = Subsystem.MaxAnaGroups;
            id.Mnan = limits.MaxNamespaces;
        }
        id.Oncs = c.IsDiscovery ? (ushort)0 : (ushort)((1 << 2) | (1 << 3)); // Dataset Management, Write Zeroes
        id.Vwc = c.IsDiscovery ? (byte)0 : (byte)0x7; // volatile write cache; Flush with NSID FFFFFFFFh supported
        id.Sgls = (1u << 0) | (1u << 20); // SGLs supported, no alignment; address is an offset
        SpecText.WriteNulPadded(id.SubNqn, s.Nqn);
        id.Ioccsz = (uint)((c.Transport.InCapsuleDataSize + SubmissionQueueEntry.Size) / 16); // what the transport accepts
        id.Iorcsz = CompletionQueueEntry.Size / 16;
        id.Icdoff = 0;
        id.Fcatt = 0;             // dynamic controller model
        id.Msdbd = 1;
        id.Ofcs = 1;              // Disconnect command supported (I/O queues)
        id.Psd0.MaxPower = 0x9c4; // 25 W, as the kernel target
        id.Psd0.EntryLatency = 0x10;
        id.Psd0.ExitLatency = 0x4;
    }

    private static void FillNamespace(Namespace ns, Span<byte> page)
    {
        ref var id = ref MemoryMarshal.AsRef<IdentifyNamespace>(page);
        id.Nsze = id.Ncap = id.Nuse = ns.BlockCount;
        id.Nlbaf = 0;
        id.Flbas = 0;
        id.Nmic = 1;       // may be attached to more than one controller
        id.Dlfeat = 0x9;   // deallocated blocks read as zeros; Write Zeroes DEAC supported
        ns.Ids.Nguid.CopyTo(id.Nguid);
        ns.Ids.Eui64.CopyTo(id.Eui64);
        id.Lbaf0 = (uint)ns.BlockShift << 16;
        id.Nsattr = ns.WriteProtected ? (byte)1 : (byte)0; // bit 0: write protected (Linux then marks the disk read-only)
        id.Anagrpid = ns.AnaGroupId;
    }

    private static void FillIndependentNamespace(Namespace ns, Span<byte> page)
    {
        ref var id = ref MemoryMarshal.AsRef<IdentifyNamespaceIndependent>(page);
        id.Nmic = 1;
        id.Nsattr = ns.WriteProtected ? (byte)1 : (byte)0;
        id.Anagrpid = ns.AnaGroupId;
        id.Nstat = 1; // namespace ready
    }

    private static void FillDescriptors(Namespace ns, Span<byte> page)
    {
        int o = 0;
        void Add(Span<byte> p, byte type, ReadOnlySpan<byte> value)
        {
            p[o] = type;
            p[o + 1] = (byte)value.Length;
            value.CopyTo(p[(o + 4)..]);
            o += 4 + value.Length;
        }
        Add(page, NsIdType.Eui64, ns.Ids.Eui64);
        Add(page, NsIdType.Nguid, ns.Ids.Nguid);
        Span<byte> uuid = stackalloc byte[16];
        ns.Ids.Uuid.TryWriteBytes(uuid, bigEndian: true, out _);
        Add(page, NsIdType.Uuid, uuid);
        Add(page, NsIdType.Csi, [0]); // NVM command set
    }
}
