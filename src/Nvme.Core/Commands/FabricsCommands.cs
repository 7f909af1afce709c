using System.Runtime.InteropServices;
using Nvme.Core.Auth;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;

namespace Nvme.Core.Commands;

/// <summary>Fabrics commands: Connect, Property Get/Set, Disconnect (NVMe over Fabrics spec 3).</summary>
internal static class FabricsCommands
{
    public static NvmeStatus Prepare(FabricQueue q, NvmeRequest req)
    {
        byte type = req.Sqe.FabricsType;
        if (type == FabricsType.Connect)
        {
            if (q.IsConnected) return NvmeStatus.CommandSequenceError; // a second Connect on one queue
            if (req.Sqe.Sgl.Length != ConnectData.Size || req.Direction != DataDirection.HostToController)
                return NvmeStatus.DataSglLengthInvalid;
            return NvmeStatus.Success;
        }
        if (!q.IsConnected) return NvmeStatus.CommandSequenceError;
        if (type is FabricsType.AuthenticationSend or FabricsType.AuthenticationReceive) return AuthCommands.Prepare(q, req);
        if (q.AwaitsAuthentication) return NvmeStatus.AuthenticationRequired; // Property Get/Set and Disconnect too
        q.Controller!.Touch();
        // Property Get/Set and Disconnect carry no data (nvmet_check_transfer_len(req, 0) in the kernel target).
        return type switch
        {
            FabricsType.PropertyGet or FabricsType.PropertySet => q.QueueId == 0 ? AdminCommands.TransferLength(req, 0) : NvmeStatus.InvalidOpcode,
            FabricsType.Disconnect => q.QueueId == 0 ? NvmeStatus.InvalidField : AdminCommands.TransferLength(req, 0),
            _ => NvmeStatus.InvalidOpcode,
        };
    }

    public static NvmeStatus Execute(FabricQueue q, NvmeRequest req) => req.Sqe.FabricsType switch
    {
        FabricsType.Connect => Connect(q, req),
        FabricsType.PropertyGet => PropertyGet(q.Controller!, req),
        FabricsType.PropertySet => PropertySet(q.Controller!, req),
        FabricsType.Disconnect => Disconnect(req),
        FabricsType.AuthenticationSend or FabricsType.AuthenticationReceive => AuthCommands.Execute(q, req),
        _ => NvmeStatus.InvalidOpcode,
    };

    private static NvmeStatus Connect(FabricQueue q, NvmeRequest req)
    {
        var status = TryConnect(q, req, out var rejection);
        if (status != NvmeStatus.Success) q.Target.Metrics.ConnectRejected(rejection);
        return status;
    }

    private static NvmeStatus TryConnect(FabricQueue q, NvmeRequest req, out ConnectRejection rejection)
    {
        rejection = ConnectRejection.Invalid;
        ref readonly var sqe = ref req.Sqe;
        ushort recfmt = (ushort)sqe.Cdw10, qid = (ushort)(sqe.Cdw10 >> 16), sqsize = (ushort)sqe.Cdw11;
        byte cattr = (byte)(sqe.Cdw11 >> 16);
        uint kato = sqe.Cdw12;
        var data = MemoryMarshal.Read<ConnectData>(req.DataSpan);
        string subNqn = SpecText.ReadNulTerminated(data.SubNqn);
        string hostNqn = SpecText.ReadNulTerminated(data.HostNqn);
        var hostId = new Guid(data.HostId, bigEndian: true);
        var log = q.Target.Log;

        if (recfmt != 0) return NvmeStatus.ConnectIncompatibleFormat;

        NvmeStatus Invalid(uint ipo, string why)
        {
            log.ConnectRejected(hostNqn, q.Transport.PeerAddress, subNqn, why);
            req.Cqe.Dword0 = ipo;
            return NvmeStatus.ConnectInvalidParameters;
        }

        var subsystem = q.Target.FindSubsystem(subNqn);
        if (subsystem is null)
        {
            rejection = ConnectRejection.UnknownSubsystem;
            return Invalid(ConnectCommand.IattrData | ConnectData.SubNqnOffset, "unknown subsystem NQN");
        }
        if (!subsystem.IsReachableOn(q.PortId))
        {
            // Not bound to the port the host came in on: the same answer as an unknown NQN (as kernel nvmet).
            rejection = ConnectRejection.Port;
            return Invalid(ConnectCommand.IattrData | ConnectData.SubNqnOffset, $"the subsystem is not reachable on port {q.PortId}");
        }
        // An empty Host NQN (SPDK's initiator sends one when its transport ID names none) is no name at all: kernel
        // nvmet and SPDK's target let it in where any host may connect, and it never matches an allowed-host entry.
        if (hostNqn.Length > 0 && Subsystem.ValidateNqn(hostNqn) is string bad) return Invalid(ConnectCommand.IattrData | ConnectData.HostNqnOffset, bad);
        if (subsystem.Kind == SubsystemKind.Nvm && !subsystem.IsHostAllowed(hostNqn))
        {
            rejection = ConnectRejection.HostNotAllowed;
            log.ConnectRejected(hostNqn, q.Transport.PeerAddress, subNqn, "host NQN is not in the subsystem's allowed hosts");
            req.Cqe.Dword0 = ConnectCommand.IattrData | ConnectData.HostNqnOffset;
            return NvmeStatus.ConnectInvalidHost;
        }
        // DH-HMAC-CHAP: a host with secrets here must authenticate, wherever it may connect from (never on discovery).
        var auth = subsystem.Kind == SubsystemKind.Nvm ? subsystem.GetHostAuthentication(hostNqn) : null;
        if (sqsize == 0 || sqsize > q.Limits.MaxQueueEntries)
            return Invalid(ConnectCommand.SqsizeOffset, $"SQSIZE {sqsize} outside 1..{q.Limits.MaxQueueEntries} (MQES)");

        Controller? ctrl;
        if (qid == 0)
        {
            // Every controller counts against its host NQN's limit, discovery controllers included: each costs a
            // connection, a keep-alive clock and up to SQSIZE commands.
            // Hosts without a name are told apart by their Host ID, so that they do not share one controller limit.
            var account = q.Target.TryAddHostController(hostNqn.Length > 0 ? hostNqn : $"(no host NQN, host ID {hostId})");
            if (account is null)
            {
                rejection = ConnectRejection.ControllerLimit;
                log.ConnectRejected(hostNqn, q.Transport.PeerAddress, subNqn,
                    $"the host already holds {q.Limits.MaxControllersPerHost} controllers (--max-controllers-per-host)");
                return NvmeStatus.ConnectControllerBusy;
            }
            ctrl = subsystem.CreateController(id => new Controller(q.Target, subsystem, id, hostNqn, hostId, kato, q.PortId, account, q.Transport.Descriptor));
            if (ctrl is null)
            {
                q.Target.ReleaseHostController(account);
                return NvmeStatus.ConnectControllerBusy;
            }
            ctrl.Authentication = auth;
            ctrl.RequiresAuthentication = auth != null;
            ctrl.BindQueue(0, q);
            log.ControllerCreated(ctrl.IsDiscovery ? "discovery" : "NVM", ctrl.Cntlid, subNqn, hostNqn, q.Transport.PeerAddress, ctrl.KeepAliveTimeoutMs);
        }
        else
        {
            if (subsystem.Kind == SubsystemKind.Discovery) return Invalid(ConnectCommand.QidOffset, "a discovery controller has no I/O queues");
            ctrl = subsystem.FindController(data.Cntlid);
            if (ctrl is null || ctrl.IsDestroyed) return Invalid(ConnectCommand.IattrData | ConnectData.CntlidOffset, $"no controller {data.Cntlid}");
            if (ctrl.HostNqn != hostNqn || ctrl.HostId != hostId)
                return Invalid(ConnectCommand.IattrData | ConnectData.HostNqnOffset, $"controller {data.Cntlid} belongs to another host");
            if (!ctrl.IsAuthenticated)
            {
                // Unreachable through the admin queue's own gate (CC.EN needs an authenticated queue), kept explicit.
                rejection = ConnectRejection.AuthenticationRequired;
                log.ConnectRejected(hostNqn, q.Transport.PeerAddress, subNqn, $"controller {ctrl.Cntlid} has not authenticated");
                return NvmeStatus.AuthenticationRequired;
            }
            if (!ctrl.IsReady) return NvmeStatus.CommandSequenceError;
            if (qid > ctrl.AllocatedIoQueues) return Invalid(ConnectCommand.QidOffset, $"QID {qid} above the {ctrl.AllocatedIoQueues} allocated I/O queues");
            if (ctrl.BindQueue(qid, q) != NvmeStatus.Success)
            {
                log.ConnectRejected(hostNqn, q.Transport.PeerAddress, subNqn, $"QID {qid} is already connected");
                return NvmeStatus.CommandSequenceError;
            }
            ctrl.Touch();
            log.IoQueueConnected(ctrl.Cntlid, qid, sqsize + 1);
        }
        q.QueueId = qid;
        q.QueueSize = sqsize + 1;
        req.Cqe.SqHead = q.ConsumeConnectEntry();
        q.SqFlowControlDisabled = (cattr & ConnectCommand.CattrDisableSqFlowControl) != 0;
        q.Controller = ctrl;
        req.Cqe.SqId = qid;
        req.Cqe.Dword0 = ctrl.Cntlid;
        if (ctrl.RequiresAuthentication)
        {
            // AUTHREQ.ATR: every queue of the controller authenticates before anything else (the Linux host
            // starts DH-HMAC-CHAP on the queue when it sees this bit).
            q.Auth = new QueueAuthentication(q, ctrl);
            req.Cqe.Dword0 |= ConnectCommand.AuthreqAtr;
        }
        q.Transport.QueueInstalled(qid, q.QueueSize, q.SqFlowControlDisabled); // before the response is queued
        return NvmeStatus.Success;
    }

    private static NvmeStatus PropertyGet(Controller c, NvmeRequest req)
    {
        bool eightBytes = (req.Sqe.Cdw10 & 1) != 0;
        uint offset = req.Sqe.Cdw11;
        if (eightBytes)
        {
            if (offset != PropertyOffset.Cap) return NvmeStatus.InvalidField;
            req.Cqe.Result = c.Cap;
            return NvmeStatus.Success;
        }
        switch (offset)
        {
            case PropertyOffset.Vs: req.Cqe.Result = Controller.Version; break;
            case PropertyOffset.Cc: req.Cqe.Result = c.Cc; break;
            case PropertyOffset.Csts: req.Cqe.Result = c.Csts; break;
            default: return NvmeStatus.InvalidField;
        }
        return NvmeStatus.Success;
    }

    private static NvmeStatus PropertySet(Controller c, NvmeRequest req)
    {
        bool eightBytes = (req.Sqe.Cdw10 & 1) != 0;
        if (eightBytes || req.Sqe.Cdw11 != PropertyOffset.Cc) return NvmeStatus.InvalidField;
        c.SetCc(req.Sqe.Cdw12);
        return NvmeStatus.Success;
    }

    private static NvmeStatus Disconnect(NvmeRequest req)
    {
        // The response goes out first; the transport closes once it is sent (the kernel target's nvmet_execute_disconnect).
        req.CloseAfterResponse = true;
        return NvmeStatus.Success;
    }
}
