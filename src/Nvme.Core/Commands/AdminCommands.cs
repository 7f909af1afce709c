using System.Buffers.Binary;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>Admin commands (NVMe base spec 5): dispatch, features, async events, keep-alive, abort.
/// Identify and Get Log Page live in their own files.</summary>
internal static partial class AdminCommands
{
    public static NvmeStatus Prepare(FabricQueue q, Controller c, NvmeRequest req)
    {
        if (!c.IsReady) return NvmeStatus.CommandSequenceError; // CC.EN=1 / CSTS.RDY=1 first
        // Each command moves exactly the data it defines, checked before any buffer is taken (the kernel target's
        // nvmet_check_transfer_len): a 4-byte log page read never costs a 1 MiB buffer.
        switch (req.Sqe.Opcode)
        {
            case AdminOpcode.Identify:
                return TransferLength(req, IdentifyDataSize);
            case AdminOpcode.GetLogPage:
                return TransferLength(req, LogPageLength(req.Sqe));
            case AdminOpcode.GetFeatures:
                // Only the Host Identifier feature returns data (the 128-bit host ID).
                return TransferLength(req, (byte)req.Sqe.Cdw10 == FeatureId.HostIdentifier && !c.IsDiscovery ? 16 : 0);
            case AdminOpcode.SetFeatures:
            case AdminOpcode.AsyncEventRequest:
            case AdminOpcode.KeepAlive:
                return TransferLength(req, 0);
            case AdminOpcode.Abort:
                return c.IsDiscovery ? NvmeStatus.InvalidOpcode : TransferLength(req, 0);
            case AdminOpcode.NamespaceAttachment:
                return c.IsDiscovery ? NvmeStatus.InvalidOpcode : TransferLength(req, ControllerListSize);
            default:
                return NvmeStatus.InvalidOpcode;
        }
    }

    private const int IdentifyDataSize = 4096;
    private const int ControllerListSize = 4096;

    /// <summary>NUMD (CDW10 bits 31:16, CDW11 bits 15:0, 0's based) in bytes.</summary>
    private static long LogPageLength(in SubmissionQueueEntry sqe) => ((((long)(sqe.Cdw11 & 0xFFFF) << 16) | (sqe.Cdw10 >> 16)) + 1) * 4;

    /// <summary>Data SGL Length Invalid unless the SGL describes exactly <paramref name="expected"/> bytes. A
    /// zero-length SGL of any kind means "no data" (SPDK's host sends one in the capsule for Set Features).</summary>
    internal static NvmeStatus TransferLength(NvmeRequest req, long expected) =>
        req.Sqe.Sgl.Length == expected ? NvmeStatus.Success : NvmeStatus.DataSglLengthInvalid;

    public static NvmeStatus Execute(FabricQueue q, Controller c, NvmeRequest req, out bool parked)
    {
        parked = false;
        if (req.Direction == DataDirection.ControllerToHost) req.DataSpan.Clear(); // never leak old buffer contents
        switch (req.Sqe.Opcode)
        {
            case AdminOpcode.Identify: return Identify(c, req);
            case AdminOpcode.GetLogPage: return GetLogPage(c, req);
            case AdminOpcode.GetFeatures: return GetFeatures(c, req);
            case AdminOpcode.SetFeatures: return SetFeatures(c, req);
            case AdminOpcode.KeepAlive: return NvmeStatus.Success;
            case AdminOpcode.Abort:
                req.Cqe.Dword0 = 1; // bit 0 set: command not aborted (as the kernel target answers)
                return NvmeStatus.Success;
            case AdminOpcode.NamespaceAttachment:
                return NamespaceAttachment(q, c, req, out parked);
            case AdminOpcode.AsyncEventRequest:
                if (!c.AsyncEvents.TryPark(req, out var now)) return NvmeStatus.AsyncEventRequestLimitExceeded;
                if (now is uint dword0)
                {
                    Interlocked.Increment(ref c.Target.Metrics.AsyncEventsSent);
                    req.Cqe.Dword0 = dword0;
                    return NvmeStatus.Success;
                }
                parked = true;
                return NvmeStatus.Success;
            default:
                return NvmeStatus.InvalidOpcode;
        }
    }

    // ---- Namespace Attachment (NVMe base spec 5.20) ----

    /// <summary>
    /// Attach (SEL 0) or detach (SEL 1) the namespace in NSID to or from the controllers in the data's controller list.
    /// Only a host holding the privilege (<see cref="Subsystem.MayAttachNamespaces"/>) may, and only for its own
    /// controllers (Access Denied otherwise); the change belongs to the host NQN (see
    /// <see cref="Subsystem.ChangeAttachmentAsync"/>). A detach drains the host's in-flight I/O first, so the command
    /// completes later, from the drain.
    /// </summary>
    private static NvmeStatus NamespaceAttachment(FabricQueue q, Controller c, NvmeRequest req, out bool parked)
    {
        parked = false;
        uint sel = req.Sqe.Cdw10 & 0xF;
        uint nsid = req.Sqe.Nsid;
        if (!c.Subsystem.MayAttachNamespaces(c.HostNqn)) return Logged(c, sel, nsid, NvmeStatus.AccessDenied);
        if (sel > 1) return NvmeStatus.InvalidField;
        if (nsid == 0 || nsid == 0xFFFFFFFF || nsid > c.Target.Limits.MaxNamespaces) return NvmeStatus.InvalidNamespaceOrFormat;
        var list = req.DataSpan;
        int count = BinaryPrimitives.ReadUInt16LittleEndian(list);
        if (count is 0 or > 2047) return NvmeStatus.ControllerListInvalid;
        for (int i = 0; i < count; i++)
        {
            ushort id = BinaryPrimitives.ReadUInt16LittleEndian(list[(2 + 2 * i)..]);
            if (c.Subsystem.FindController(id) is not { } other) return NvmeStatus.ControllerListInvalid;
            if (other.HostNqn != c.HostNqn) return Logged(c, sel, nsid, NvmeStatus.AccessDenied); // only its own controllers
        }
        var pending = LogWhenDone(c, sel, nsid, c.Subsystem.RequestAttachmentAsync(nsid, c.HostNqn, attach: sel == 0));
        if (pending.IsCompletedSuccessfully) return pending.Result;
        parked = true; // not an event wait (IsParked stays false): the answer follows the drain
        _ = q.CompleteWhenDone(req, pending);
        return NvmeStatus.Success;
    }

    private static async Task<NvmeStatus> LogWhenDone(Controller c, uint sel, uint nsid, Task<NvmeStatus> pending) =>
        Logged(c, sel, nsid, await pending.ConfigureAwait(false));

    private static NvmeStatus Logged(Controller c, uint sel, uint nsid, NvmeStatus status)
    {
        c.Target.Log.NamespaceAttachment(c.Cntlid, c.HostNqn, c.Subsystem.Nqn, sel == 0 ? "attach" : sel == 1 ? "detach" : $"SEL {sel}", nsid,
            status == NvmeStatus.Success ? "Success" : status.ToString());
        return status;
    }

    /// <summary>Copies a structure built in scratch space to the request's data, cut to the transfer length.</summary>
    private static void Transfer(NvmeRequest req, ReadOnlySpan<byte> page)
    {
        var dest = req.DataSpan;
        page[..Math.Min(page.Length, dest.Length)].CopyTo(dest);
    }

    // ---- Set / Get Features (NVMe base spec 5.27) ----

    private const uint SupportedAsyncEventConfig = AsyncEvent.ConfigNamespaceAttributeNotices | AsyncEvent.ConfigAnaChangeNotices | 0xFF;

    private static NvmeStatus SetFeatures(Controller c, NvmeRequest req)
    {
        byte fid = (byte)req.Sqe.Cdw10;
        bool save = (req.Sqe.Cdw10 & 0x8000_0000) != 0;
        uint value = req.Sqe.Cdw11;
        if (save) return NvmeStatus.FeatureIdNotSaveable;
        switch (fid)
        {
            case FeatureId.AsyncEventConfiguration:
                c.AsyncEvents.Config = value & SupportedAsyncEventConfig;
                return NvmeStatus.Success;
            case FeatureId.KeepAliveTimer:
                c.SetKeepAliveTimeout(value);
                return NvmeStatus.Success;
            case FeatureId.NumberOfQueues when !c.IsDiscovery:
                {
                    uint nsqr = value & 0xFFFF, ncqr = value >> 16;
                    if (nsqr == 0xFFFF || ncqr == 0xFFFF) return NvmeStatus.InvalidField;
                    if (c.NumberOfQueuesSet && c.IoQueueCount > 0) return NvmeStatus.CommandSequenceError;
                    uint max = c.Target.Limits.MaxIoQueues;
                    uint granted = Math.Min(Math.Min(nsqr, ncqr) + 1, max);
                    c.AllocatedIoQueues = (ushort)granted;
                    c.NumberOfQueuesSet = true;
                    req.Cqe.Dword0 = (granted - 1) | ((granted - 1) << 16);
                    return NvmeStatus.Success;
                }
            case FeatureId.VolatileWriteCache when !c.IsDiscovery:
                c.VolatileWriteCacheEnabled = (value & 1) != 0;
                return NvmeStatus.Success;
            case FeatureId.HostIdentifier when !c.IsDiscovery:
                return NvmeStatus.CommandSequenceError; // over fabrics the host identifier comes with Connect
            default:
                return NvmeStatus.InvalidField;
        }
    }

    private static NvmeStatus GetFeatures(Controller c, NvmeRequest req)
    {
        byte fid = (byte)req.Sqe.Cdw10;
        uint sel = (req.Sqe.Cdw10 >> 8) & 7;
        bool known = fid switch
        {
            FeatureId.AsyncEventConfiguration or FeatureId.KeepAliveTimer => true,
            FeatureId.NumberOfQueues or FeatureId.VolatileWriteCache or FeatureId.HostIdentifier => !c.IsDiscovery,
            // Mandatory features with nothing to arbitrate, no power states, no sensor and no error recovery timer:
            // they read as their reset values (SPDK's identify asks for them; kernel nvmet answers Invalid Field).
            FeatureId.Arbitration or FeatureId.PowerManagement or FeatureId.TemperatureThreshold or FeatureId.ErrorRecovery => !c.IsDiscovery,
            _ => false,
        };
        if (!known || sel > 3) return NvmeStatus.InvalidField;
        bool fixedValue = fid is FeatureId.HostIdentifier or FeatureId.Arbitration or FeatureId.PowerManagement
            or FeatureId.TemperatureThreshold or FeatureId.ErrorRecovery;
        if (sel == 3)
        {
            // Capabilities: changeable (bit 2) unless fixed; never saveable; Error Recovery is per namespace (bit 1).
            req.Cqe.Dword0 = (fixedValue ? 0u : 1u << 2) | (fid == FeatureId.ErrorRecovery ? 1u << 1 : 0u);
            return NvmeStatus.Success;
        }
        bool current = sel == 0;
        switch (fid)
        {
            case FeatureId.AsyncEventConfiguration:
                req.Cqe.Dword0 = current ? c.AsyncEvents.Config : 0;
                break;
            case FeatureId.KeepAliveTimer:
                req.Cqe.Dword0 = current ? c.KeepAliveTimeoutMs : 0;
                break;
            case FeatureId.NumberOfQueues:
                {
                    uint n = (uint)(current ? c.AllocatedIoQueues : c.Target.Limits.MaxIoQueues) - 1;
                    req.Cqe.Dword0 = n | (n << 16);
                    break;
                }
            case FeatureId.VolatileWriteCache:
                req.Cqe.Dword0 = !current || c.VolatileWriteCacheEnabled ? 1u : 0u;
                break;
            case FeatureId.Arbitration:      // AB 0 (one command per burst), all weights 0
            case FeatureId.PowerManagement:  // power state 0, no workload hint
            case FeatureId.ErrorRecovery:    // TLER 0 (no limit), DULBE 0
                req.Cqe.Dword0 = 0;
                break;
            case FeatureId.TemperatureThreshold:
                {
                    // TMPSEL 0 (composite) only: there is no sensor, the thresholds are the common reset values.
                    uint tmpsel = (req.Sqe.Cdw11 >> 16) & 0xF, thsel = (req.Sqe.Cdw11 >> 20) & 3;
                    if (tmpsel != 0 || thsel > 1) return NvmeStatus.InvalidField;
                    req.Cqe.Dword0 = thsel == 0 ? 343u : 0u; // over: 343 K (70 C); under: 0 K
                    break;
                }
            case FeatureId.HostIdentifier:
                // Only the 128-bit host identifier exists over fabrics (EXHID, CDW11 bit 0, must be set).
                if ((req.Sqe.Cdw11 & 1) == 0) return NvmeStatus.InvalidField; // 16 bytes of data: checked by Prepare
                c.HostId.TryWriteBytes(req.DataSpan, bigEndian: true, out _);
                break;
        }
        return NvmeStatus.Success;
    }

    internal static void WriteU32(Span<byte> s, int offset, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(s[offset..], v);
}
