using Nvme.Core.Model;

namespace Target.Management;

/// <summary>A port's state for one ANA group, as the API shows it.</summary>
public sealed record AnaPortState(ushort Port, string State);

/// <summary>One ANA group of a subsystem: its state on every port, the state each port the subsystem is reachable on has (the
/// same unless set for that port), and its namespaces.
/// Under automatic failover (<see cref="Managed"/>) the group's <see cref="Owner"/> is the gateway holding its lease
/// and <see cref="Gateways"/> the gateways alive for it.</summary>
public sealed record AnaGroupInfo(uint Group, string State, IReadOnlyList<AnaPortState> Ports, IReadOnlyList<uint> Namespaces,
    bool Managed = false, AnaOwner? Owner = null, IReadOnlyList<string>? Gateways = null);

/// <summary>Body of POST /subsystems/{nqn}/ana/{group}/owner: the gateway to hand the group to.</summary>
public sealed class AnaOwnerRequest
{
    [System.Text.Json.Serialization.JsonRequired]
    public string Gateway { get; set; } = "";
}

/// <summary>Answer of GET /subsystems/{nqn}/ana.</summary>
public sealed record AnaInfo(string Subsystem, ulong ChangeCount, IReadOnlyList<AnaGroupInfo> Groups);

/// <summary>Answer of PUT /subsystems/{nqn}/ana/{group}: the group as it is now and how many controllers got the ANA change event.</summary>
public sealed record AnaStateResult(AnaGroupInfo Group, ulong ChangeCount, int ControllersNotified);

/// <summary>Body of PUT /subsystems/{nqn}/ana/{group}.</summary>
public sealed class AnaStateRequest
{
    /// <summary>optimized, non-optimized, inaccessible, persistent-loss or change.</summary>
    [System.Text.Json.Serialization.JsonRequired]
    public string State { get; set; } = "";
    /// <summary>Only this port (absent: every port, which also drops the states set for single ports).</summary>
    public ushort? Port { get; set; }
}

/// <summary>Body of PUT /subsystems/{nqn}/namespaces/{nsid}/ana-group.</summary>
public sealed class AnaGroupRequest
{
    [System.Text.Json.Serialization.JsonRequired]
    public uint AnaGroup { get; set; }
}

/// <summary>
/// Asymmetric Namespace Access: the groups' states are live state, as write protection and faults are — never saved, a
/// restarted target comes up with every group optimized (paths start healthy; the state of a path is the operator's
/// statement about now), except the groups under automatic failover (<see cref="AnaFailover"/>), whose state follows
/// their owner and is not the operator's to set. A namespace's group is configuration (NamespaceConfig.AnaGroup) and is saved when it moves.
/// </summary>
public sealed partial class TargetManager
{
    public static readonly IReadOnlyList<(string Name, AnaState State)> AnaStateNames =
    [
        ("optimized", AnaState.Optimized), ("non-optimized", AnaState.NonOptimized), ("inaccessible", AnaState.Inaccessible),
        ("persistent-loss", AnaState.PersistentLoss), ("change", AnaState.Change),
    ];

    public static string AnaStateName(AnaState s) => AnaStateNames.First(e => e.State == s).Name;

    public AnaInfo GetAna(string nqn)
    {
        var s = Find(nqn);
        return new AnaInfo(s.Nqn, s.AnaChangeCount, [.. s.AnaGroupsInUse.Select(g => DescribeAnaGroup(s, g))]);
    }

    /// <summary>Sets a group's state on one port or every port; the controllers whose state changed get the ANA change event.</summary>
    public Task<AnaStateResult> SetAnaStateAsync(string nqn, uint group, string state, ushort? port) => OnSubsystem(nqn, s =>
    {
        if (Subsystem.ValidateAnaGroup(group) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        if (Failover?.IsManaged(nqn, group) == true)
            throw new ManagementException(ManagementError.Conflict, $"ANA group {group} of {nqn} is under automatic failover: its state follows its owner " +
                $"({Failover.OwnerOf(nqn, group)?.Gateway ?? "nobody"} now); move it with POST .../ana/{group}/owner (CLI: ana owner)");
        var match = AnaStateNames.Where(e => string.Equals(e.Name, state, StringComparison.OrdinalIgnoreCase)).ToArray();
        if (match.Length == 0)
            throw new ManagementException(ManagementError.Invalid, $"ANA state '{state}' is not {string.Join(", ", AnaStateNames.Select(e => e.Name))}");
        if (port is ushort p)
        {
            var known = _target.Ports.Select(x => x.PortId).ToHashSet();
            if (!known.Contains(p)) throw new ManagementException(ManagementError.Invalid, $"port {p} does not exist (the target's ports: {string.Join(", ", known.Order())})");
            if (!s.IsReachableOn(p)) throw new ManagementException(ManagementError.Invalid, $"subsystem {nqn} is not reachable on port {p}");
        }
        var next = match[0].State;
        var before = port is ushort q ? s.GetAnaState(q, group) : s.GetAnaState(group);
        int told = s.SetAnaState(group, next, port);
        _log.AnaStateChanged(nqn, group, port is ushort pp ? $"port {pp}" : "every port", AnaStateName(before), AnaStateName(next), told);
        return Task.FromResult(new AnaStateResult(DescribeAnaGroup(s, group), s.AnaChangeCount, told));
    });

    /// <summary>Moves a namespace to another ANA group (saved): the hosts that see it get the ANA change event.</summary>
    public Task<NamespaceInfo> SetNamespaceAnaGroupAsync(string nqn, uint nsid, uint group) => OnSubsystem(nqn, s =>
    {
        if (Subsystem.ValidateAnaGroup(group) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        var ns = FindNamespace(s, nsid);
        uint old = ns.AnaGroupId;
        var nc = ConfigOf(nqn).Namespaces.FirstOrDefault(n => n.Nsid == nsid);
        uint? oldConfig = nc?.AnaGroup;
        Persist(() => { if (nc != null) nc.AnaGroup = group == Subsystem.DefaultAnaGroup ? null : group; },
            () => { if (nc != null) nc.AnaGroup = oldConfig; });
        int told = s.SetNamespaceAnaGroup(nsid, group);
        _log.NamespaceAnaGroupChanged(nsid, nqn, old, group, told);
        return Task.FromResult(Describe(s, ns));
    });

    /// <summary>A planned move under automatic failover: hands the group to <paramref name="gateway"/> and returns once it
    /// holds it (the old owner's paths turn non-optimized, the new one's optimized; no I/O fails).</summary>
    public async Task<AnaGroupInfo> SetAnaOwnerAsync(string nqn, uint group, string gateway)
    {
        var s = Find(nqn);
        if (Subsystem.ValidateAnaGroup(group) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        if (Configuration.ConfigValidator.GatewayNameProblem(gateway) is string badName) throw new ManagementException(ManagementError.Invalid, $"gateway {badName}");
        if (Failover is null) throw new ManagementException(ManagementError.Conflict, "this target runs without automatic failover");
        var owner = await Failover.HandOverAsync(nqn, group, gateway).ConfigureAwait(false);
        return DescribeAnaGroup(s, group) with { Owner = owner };
    }

    private List<AnaPortState> AnaPorts(Subsystem s, uint group) =>
        [.. _target.Ports.Where(p => s.IsReachableOn(p.PortId)).OrderBy(p => p.PortId)
            .Select(p => new AnaPortState(p.PortId, AnaStateName(s.GetAnaState(p.PortId, group))))];

    private AnaGroupInfo DescribeAnaGroup(Subsystem s, uint group)
    {
        bool managed = Failover?.IsManaged(s.Nqn, group) == true;
        return new(group, AnaStateName(s.GetAnaState(group)), AnaPorts(s, group),
            [.. s.Namespaces.Where(n => n.AnaGroupId == group).Select(n => n.Nsid).Order()],
            managed, managed ? Failover!.OwnerOf(s.Nqn, group) : null, managed ? Failover!.GatewaysOf(s.Nqn, group) : null);
    }
}
