using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>Get Log Page (NVMe base spec 5.16): 01 error, 02 SMART, 03 firmware, 04 changed namespaces,
/// 05 command effects, 0C asymmetric namespace access, 70 discovery. LPO offsets and NUMD lengths work on every page.</summary>
internal static partial class AdminCommands
{
    private static NvmeStatus GetLogPage(Controller c, NvmeRequest req)
    {
        ref readonly var sqe = ref req.Sqe;
        byte lid = (byte)sqe.Cdw10;
        bool rae = (sqe.Cdw10 & (1u << 15)) != 0;
        ulong offset = sqe.Cdw12 | ((ulong)sqe.Cdw13 << 32); // the length is NUMD, checked by Prepare
        if ((offset & 3) != 0) return NvmeStatus.InvalidField;

        byte[] page;
        ulong logSize = 0; // the size an offset is checked against, when it is not the page's own
        if (c.IsDiscovery)
        {
            if (lid != LogPageId.Discovery) return NvmeStatus.InvalidLogPage;
            page = DiscoveryLog.Build(c.Target, c.HostNqn);
        }
        else
        {
            switch (lid)
            {
                case LogPageId.Error:
                    page = new byte[c.Target.Limits.ErrorLogEntries * ErrorLogEntry.Size];
                    c.ReadErrorLog(page);
                    break;
                case LogPageId.SmartHealth:
                    {
                        page = new byte[SmartHealthLog.Size];
                        var status = FillSmart(c, sqe.Nsid, page);
                        if (status != NvmeStatus.Success) return status;
                        break;
                    }
                case LogPageId.FirmwareSlot:
                    {
                        page = new byte[FirmwareSlotLog.Size];
                        ref var fw = ref MemoryMarshal.AsRef<FirmwareSlotLog>(page.AsSpan());
                        fw.ActiveFirmwareInfo = 1;
                        SpecText.WriteSpacePadded(fw.Slot1, c.Subsystem.FirmwareRevision);
                        break;
                    }
                case LogPageId.ChangedNamespaceList:
                    page = new byte[4096];
                    c.AsyncEvents.ReadChangedList(page, rae);
                    break;
                case LogPageId.CommandsSupportedAndEffects:
                    page = CommandEffects;
                    break;
                case LogPageId.AsymmetricNamespaceAccess:
                    page = c.Subsystem.BuildAnaLog(c, groupsOnly: (sqe.Cdw10 & AnaLogHeader.ReturnGroupsOnly) != 0);
                    c.AsyncEvents.AnaLogRead(rae);
                    // Hosts size this log from NANAGRPID and MNAN and read it whole (Linux) or in 4 KiB pieces (nvme-cli):
                    // up to that size, what lies past the descriptors reads as zeros.
                    logSize = AnaLogHeader.Size + (ulong)AnaGroupDescriptor.Size * Subsystem.MaxAnaGroups + 4ul * c.Target.Limits.MaxNamespaces;
                    break;
                default:
                    return NvmeStatus.InvalidLogPage;
            }
        }
        if (offset > Math.Max(logSize, (ulong)page.Length)) return NvmeStatus.InvalidField;
        Transfer(req, page.AsSpan((int)Math.Min(offset, (ulong)page.Length)));
        return NvmeStatus.Success;
    }

    private static NvmeStatus FillSmart(Controller c, uint nsid, Span<byte> page)
    {
        ref var log = ref MemoryMarshal.AsRef<SmartHealthLog>(page);
        IEnumerable<Namespace> namespaces;
        if (nsid is 0 or 0xFFFFFFFF) namespaces = c.Subsystem.Namespaces.Where(n => n.IsVisibleTo(c.HostNqn)); // the host's own namespaces
        else
        {
            var ns = c.Subsystem.GetNamespace(nsid, c.HostNqn);
            if (ns is null) return NvmeStatus.InvalidNamespaceOrFormat;
            namespaces = [ns];
        }
        ulong bytesRead = 0, bytesWritten = 0;
        foreach (var ns in namespaces)
        {
            var k = ns.Counters;
            bytesRead += (ulong)Interlocked.Read(ref k.BytesRead);
            bytesWritten += (ulong)Interlocked.Read(ref k.BytesWritten);
            log.HostReadCommands += (ulong)Interlocked.Read(ref k.ReadCommands);
            log.HostWriteCommands += (ulong)Interlocked.Read(ref k.WriteCommands);
        }
        // Data units are thousands of 512-byte units, rounded up (NVMe base spec 5.16.1.3).
        log.DataUnitsRead = (bytesRead / 512 + 999) / 1000;
        log.DataUnitsWritten = (bytesWritten / 512 + 999) / 1000;
        log.AvailableSpare = 100;
        log.AvailableSpareThreshold = 10;
        log.PowerCycles = 1;
        log.PowerOnHours = (ulong)(DateTimeOffset.UtcNow - c.Target.StartedAt).TotalHours;
        log.NumErrorLogEntries = (ulong)c.ErrorCount;
        return NvmeStatus.Success;
    }

    private static readonly byte[] CommandEffects = BuildCommandEffects();

    private static byte[] BuildCommandEffects()
    {
        var page = new byte[CommandEffectsLog.Size];
        const uint Csupp = CommandEffectsLog.CommandSupported, Lbcc = CommandEffectsLog.LogicalBlockContentChange;
        foreach (var op in new[] { AdminOpcode.GetLogPage, AdminOpcode.Identify, AdminOpcode.Abort, AdminOpcode.SetFeatures,
                     AdminOpcode.GetFeatures, AdminOpcode.AsyncEventRequest, AdminOpcode.KeepAlive })
            WriteU32(page, op * 4, Csupp);
        // Namespace Attachment changes the namespace inventory: the Linux host rescans right after the passthrough command
        // (nvme detach-ns / attach-ns) instead of waiting for the event. No LBCC: it would make the host freeze all I/O.
        WriteU32(page, AdminOpcode.NamespaceAttachment * 4, Csupp | CommandEffectsLog.NamespaceCapabilityChange | CommandEffectsLog.NamespaceInventoryChange);
        WriteU32(page, CommandEffectsLog.IoOffset + IoOpcode.Flush * 4, Csupp);
        WriteU32(page, CommandEffectsLog.IoOffset + IoOpcode.Read * 4, Csupp);
        foreach (var op in new[] { IoOpcode.Write, IoOpcode.WriteZeroes, IoOpcode.DatasetManagement })
            WriteU32(page, CommandEffectsLog.IoOffset + op * 4, Csupp | Lbcc);
        return page;
    }
}
