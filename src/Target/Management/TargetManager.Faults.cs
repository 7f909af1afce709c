using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Faults;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Target.Configuration;

namespace Target.Management;

/// <summary>A fault that is set, as the API shows it.</summary>
public sealed record FaultInfo(
    int Id, string Description, string Subsystem, uint? Nsid, string? Host, ushort? Queue, IReadOnlyList<string>? Opcodes,
    ulong? LbaFirst, ulong? LbaLast, double Probability, long? Count, long? Remaining, string Action,
    string? Status, int? Sct, int? Sc, bool? Dnr, bool? AfterExecute, double? DelayMs, double? JitterMs, double? StallMs,
    DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt, long Matched, long Fired, long Stalled);

/// <summary>Body of POST /api/v1/faults/connections: which connections, and what to do to them.</summary>
public sealed class ConnectionFaultRequest
{
    /// <summary>drop, terminate (C2HTermReq), pause-receive, corrupt-data-digest.</summary>
    public string Action { get; set; } = "";
    /// <summary>Connections of this subsystem only.</summary>
    public string? Subsystem { get; set; }
    /// <summary>Connections of this host NQN only.</summary>
    public string? Host { get; set; }
    /// <summary>Connections of this controller only (with the subsystem when several have the same CNTLID).</summary>
    public ushort? Cntlid { get; set; }
    /// <summary>Only this queue (0 = admin).</summary>
    public ushort? Queue { get; set; }
    /// <summary>drop: after this many more received PDUs (absent: now).</summary>
    public int? AfterPdus { get; set; }
    /// <summary>pause-receive: for this many milliseconds.</summary>
    public double? DurationMs { get; set; }
}

/// <summary>A connection a connection fault was applied to.</summary>
public sealed record ConnectionRef(string Subsystem, ushort Cntlid, string Host, ushort Queue, string Peer);

/// <summary>Answer of POST /api/v1/faults/connections.</summary>
public sealed record ConnectionFaultResult(string Action, IReadOnlyList<ConnectionRef> Connections);

/// <summary>Answer of the on-demand events and of write protection: how many controllers were told (Nsid 0: an ANA change).</summary>
public sealed record EventResult(string Event, uint Nsid, int ControllersNotified);

/// <summary>
/// Fault injection for test labs: I/O faults (the core's <see cref="FaultInjector"/>), connection faults, events on demand
/// and simulated write protection. None of it is saved to the configuration file: a fault is test state that ends
/// with the process (faults meant from the start go in the file's "faults" list).
/// </summary>
public sealed partial class TargetManager
{
    public IReadOnlyList<FaultInfo> ListFaults() => [.. _target.Faults.Rules.Select(DescribeFault)];

    public FaultInfo GetFault(int id) =>
        DescribeFault(_target.Faults.Find(id) ?? throw new ManagementException(ManagementError.NotFound, $"fault {id} is not set (it may have expired or used up its count)"));

    public FaultInfo AddFault(FaultConfig fc)
    {
        var spec = fc.ToSpec(out var problem) ?? throw new ManagementException(ManagementError.Invalid, problem!);
        var s = Find(spec.SubsystemNqn);
        if (spec.Nsid != 0 && s.GetNamespace(spec.Nsid) is null)
            throw new ManagementException(ManagementError.NotFound, $"namespace {spec.Nsid} does not exist in {s.Nqn}");
        if (spec.HostNqn != null && Subsystem.ValidateNqn(spec.HostNqn) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        return DescribeFault(_target.Faults.Add(spec));
    }

    public void RemoveFault(int id)
    {
        if (!_target.Faults.Remove(id)) throw new ManagementException(ManagementError.NotFound, $"fault {id} is not set (it may have expired or used up its count)");
    }

    /// <summary>Clears every fault (of one subsystem when given). Returns how many.</summary>
    public int ClearFaults(string? subsystemNqn)
    {
        if (subsystemNqn != null) Find(subsystemNqn);
        return _target.Faults.Clear(subsystemNqn);
    }

    private static FaultInfo DescribeFault(FaultRule r)
    {
        var s = r.Spec;
        bool error = s.Action == FaultAction.Error;
        return new FaultInfo(r.Id, FaultInjector.Describe(s), s.SubsystemNqn, s.Nsid == 0 ? null : s.Nsid, s.HostNqn, s.QueueId,
            s.Opcodes?.Select(FaultOpcodes.Name).ToList(), s.HasLbaRange ? s.FirstLba : null, s.HasLbaRange ? s.LastLba : null,
            s.Probability, s.Count, r.Remaining, s.Action.ToString().ToLowerInvariant(),
            error ? StatusName(s.Status) : null, error ? s.Status.CodeType() : null, error ? s.Status.Code() : null,
            error ? (s.Status & NvmeStatus.Dnr) != 0 : null, error ? s.AfterExecute : null,
            s.Action == FaultAction.Delay ? s.Delay.TotalMilliseconds : null, s.Action == FaultAction.Delay ? s.Jitter.TotalMilliseconds : null,
            s.StallFor?.TotalMilliseconds, r.CreatedAt, r.ExpiresAt, r.Matched, r.Fired, r.Stalled);
    }

    private static string StatusName(NvmeStatus status)
    {
        var plain = status & ~NvmeStatus.Dnr;
        foreach (var (name, s) in FaultConfig.StatusNames) if (s == plain) return name;
        return $"{plain.CodeType():x}:{plain.Code():x2}";
    }

    // ------------------------------------------------------------------ connection faults

    public const string DropAction = "drop", TerminateAction = "terminate", PauseAction = "pause-receive", CorruptAction = "corrupt-data-digest";

    public ConnectionFaultResult InjectConnectionFault(ConnectionFaultRequest r)
    {
        if (r.Action is not (DropAction or TerminateAction or PauseAction or CorruptAction))
            throw new ManagementException(ManagementError.Invalid, $"action '{r.Action}' is not {DropAction}, {TerminateAction}, {PauseAction} or {CorruptAction}");
        if (r.Subsystem is null && r.Host is null && r.Cntlid is null)
            throw new ManagementException(ManagementError.Invalid, "say which connections: give a subsystem, a host or a cntlid (a fault on every connection of the target is never a default)");
        if (r.AfterPdus != null && r.Action != DropAction) throw new ManagementException(ManagementError.Invalid, "afterPdus belongs to the drop action");
        if (r.AfterPdus is < 0) throw new ManagementException(ManagementError.Invalid, $"afterPdus {r.AfterPdus} cannot be negative");
        if (r.DurationMs != null && r.Action != PauseAction) throw new ManagementException(ManagementError.Invalid, "durationMs belongs to the pause-receive action");
        TimeSpan pause = default;
        if (r.Action == PauseAction)
        {
            if (r.DurationMs is not { } ms || double.IsNaN(ms) || ms <= 0 || ms > FaultSpec.MaxWait.TotalMilliseconds)
                throw new ManagementException(ManagementError.Invalid, "pause-receive needs durationMs, more than 0 and at most a day");
            pause = TimeSpan.FromMilliseconds(ms);
        }
        if (r.Subsystem != null) Find(r.Subsystem);

        var targets = new List<(Controller C, FabricQueue Q, IConnectionFaults F)>();
        foreach (var c in _target.Controllers)
        {
            if (c.IsDiscovery) continue;
            if (r.Subsystem != null && c.Subsystem.Nqn != r.Subsystem) continue;
            if (r.Host != null && c.HostNqn != r.Host) continue;
            if (r.Cntlid is { } id && c.Cntlid != id) continue;
            foreach (var q in c.Queues)
                if ((r.Queue is null || q.QueueId == r.Queue) && q.Transport is IConnectionFaults f) targets.Add((c, q, f));
        }
        if (targets.Count == 0) throw new ManagementException(ManagementError.NotFound, "no connection matches (ctrl list shows the connected controllers and their queues)");

        var hit = new List<ConnectionRef>();
        foreach (var (c, q, f) in targets)
        {
            bool applied = true;
            switch (r.Action)
            {
                case DropAction: f.DropAfterPdus(r.AfterPdus ?? 0); break;
                case TerminateAction: f.SendTerminationRequest(); break;
                case PauseAction: f.PauseReceive(pause); break;
                default: applied = f.CorruptNextDataDigest(); break;
            }
            if (applied) hit.Add(new ConnectionRef(c.Subsystem.Nqn, c.Cntlid, c.HostNqn, q.QueueId, q.Transport.PeerAddress));
        }
        if (hit.Count == 0)
            throw new ManagementException(ManagementError.Conflict, "none of the matching connections has data digests on (the host connects with --data-digest)");
        return new ConnectionFaultResult(r.Action, hit);
    }

    // ------------------------------------------------------------------ events and write protection

    public const string NamespaceChangedEvent = "namespace-changed", AnaChangeEvent = "ana-change";

    public EventResult SendEvent(string nqn, string type, uint? nsid, ushort? port = null)
    {
        var s = Find(nqn);
        switch (type)
        {
            case NamespaceChangedEvent:
                if (port != null) throw new ManagementException(ManagementError.Invalid, $"{NamespaceChangedEvent} goes to the controllers that see the namespace: it takes no port");
                if (nsid is not uint n) throw new ManagementException(ManagementError.Invalid, $"{NamespaceChangedEvent} needs nsid");
                return new EventResult(type, n, s.NotifyNamespaceChanged(FindNamespace(s, n)));
            case AnaChangeEvent:
                if (nsid != null) throw new ManagementException(ManagementError.Invalid, $"{AnaChangeEvent} concerns ANA groups, not a namespace: it takes no nsid (port limits it to one port)");
                if (port is ushort p && !_target.Ports.Any(x => x.PortId == p))
                    throw new ManagementException(ManagementError.Invalid, $"port {p} does not exist (the target's ports: {string.Join(", ", _target.Ports.Select(x => x.PortId).Order())})");
                int told = s.NotifyAnaChanged(port);
                _log.AnaEventSent(nqn, told);
                return new EventResult(type, 0, told);
            default:
                throw new ManagementException(ManagementError.Invalid, $"event '{type}' is not {NamespaceChangedEvent} or {AnaChangeEvent}");
        }
    }

    public EventResult SetWriteProtected(string nqn, uint nsid, bool on)
    {
        var s = Find(nqn);
        var ns = FindNamespace(s, nsid);
        int told = s.SetWriteProtected(ns, on);
        _log.WriteProtectionSimulated(nsid, nqn, on ? "write protected" : "writable again", told);
        return new EventResult(on ? "write-protected" : "writable", nsid, told);
    }
}
