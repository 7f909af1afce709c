using System.Collections.Immutable;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;

namespace Nvme.Core.Model;

/// <summary>ANA states (NVMe base spec 8.1.3, "Asymmetric Namespace Access Reporting"), as the ANA log codes them.</summary>
public enum AnaState : byte
{
    Optimized = 0x1,
    NonOptimized = 0x2,
    Inaccessible = 0x3,
    PersistentLoss = 0x4,
    Change = 0xF,
}

/// <summary>
/// Asymmetric Namespace Access on one target: every namespace belongs to an ANA group (1..<see cref="MaxAnaGroups"/>,
/// default 1) and each (port, group) has a state, optimized unless set. A state set without a port is the group's
/// state on every port (and drops the per-port ones); a state set for one port overrides it there. The states are the
/// operator's live state: they are not part of the subsystem's identity.
/// </summary>
public sealed partial class Subsystem
{
    /// <summary>ANAGRPMAX and NANAGRPID (as the kernel target's NVMET_MAX_ANAGRPS).</summary>
    public const uint MaxAnaGroups = 128;
    public const uint DefaultAnaGroup = 1;

    private sealed record AnaTable(ImmutableDictionary<uint, AnaState> Groups, ImmutableDictionary<(ushort Port, uint Group), AnaState> Ports)
    {
        public static readonly AnaTable Empty = new(ImmutableDictionary<uint, AnaState>.Empty, ImmutableDictionary<(ushort, uint), AnaState>.Empty);

        public AnaState StateOf(ushort port, uint group) =>
            Ports.TryGetValue((port, group), out var s) ? s : Groups.GetValueOrDefault(group, AnaState.Optimized);

        /// <summary>Some (port, group) refuses I/O: only then does the I/O path look the state up.</summary>
        public bool BlocksIo => Groups.Values.Any(Refuses) || Ports.Values.Any(Refuses);
    }

    private AnaTable _ana = AnaTable.Empty;
    private volatile bool _anaBlocksIo;
    private long _anaChangeCount;

    /// <summary>CHGCNT of the ANA log: bumped by every state change and every move of a namespace to another group.</summary>
    public ulong AnaChangeCount => (ulong)Interlocked.Read(ref _anaChangeCount);

    /// <summary>Why <paramref name="group"/> is not a valid ANA group id, or null.</summary>
    public static string? ValidateAnaGroup(long group) =>
        group is >= 1 and <= MaxAnaGroups ? null : $"ANA group {group} is out of range 1..{MaxAnaGroups}";

    /// <summary>The state of <paramref name="group"/> for hosts that came in on <paramref name="portId"/>.</summary>
    public AnaState GetAnaState(ushort portId, uint group) => Volatile.Read(ref _ana).StateOf(portId, group);

    /// <summary>The group's state on every port (what a state set without a port gave it).</summary>
    public AnaState GetAnaState(uint group) => Volatile.Read(ref _ana).Groups.GetValueOrDefault(group, AnaState.Optimized);

    /// <summary>The ports with a state of their own for <paramref name="group"/>.</summary>
    public IReadOnlyDictionary<ushort, AnaState> GetAnaPortStates(uint group) =>
        Volatile.Read(ref _ana).Ports.Where(e => e.Key.Group == group).ToDictionary(e => e.Key.Port, e => e.Value);

    /// <summary>The groups that hold a namespace or have a state other than optimized, ascending.</summary>
    public IReadOnlyList<uint> AnaGroupsInUse
    {
        get
        {
            var t = Volatile.Read(ref _ana);
            return Volatile.Read(ref _namespaces).Values.Select(n => n.AnaGroupId).Concat(t.Groups.Keys).Concat(t.Ports.Keys.Select(k => k.Group))
                .Distinct().Order().ToArray();
        }
    }

    private static bool Same<TKey>(ImmutableDictionary<TKey, AnaState> a, ImmutableDictionary<TKey, AnaState> b) where TKey : notnull =>
        a.Count == b.Count && a.All(e => b.TryGetValue(e.Key, out var v) && v == e.Value);

    private static bool Refuses(AnaState s) => s is AnaState.Inaccessible or AnaState.PersistentLoss or AnaState.Change;

    /// <summary>
    /// Sets the state of <paramref name="group"/> on <paramref name="portId"/> (null: on every port, dropping the per-port
    /// states of the group). Bumps the change count and sends the ANA change event to every controller whose state for
    /// the group changed (as its async event configuration and masking allow). I/O that arrives from then on for a
    /// namespace of the group gets the path status of the new state; I/O already admitted finishes. Returns how many
    /// controllers were told (0: nothing changed).
    /// </summary>
    public int SetAnaState(uint group, AnaState state, ushort? portId = null)
    {
        if (ValidateAnaGroup(group) is string bad) throw new ArgumentOutOfRangeException(nameof(group), bad);
        if (!Enum.IsDefined(state)) throw new ArgumentOutOfRangeException(nameof(state), $"{state} is not an ANA state");
        if (Kind == SubsystemKind.Discovery) throw new InvalidOperationException("the discovery subsystem has no ANA groups");
        Controller[] ctrls;
        AnaTable old, next;
        lock (_lock)
        {
            old = _ana;
            if (portId is ushort p)
                next = old with { Ports = old.Ports.SetItem((p, group), state) };
            else
                next = new AnaTable(state == AnaState.Optimized ? old.Groups.Remove(group) : old.Groups.SetItem(group, state),
                    old.Ports.RemoveRange(old.Ports.Keys.Where(k => k.Group == group)));
            if (Same(next.Groups, old.Groups) && Same(next.Ports, old.Ports)) return 0;
            Volatile.Write(ref _ana, next);
            _anaBlocksIo = next.BlocksIo;
            Interlocked.Increment(ref _anaChangeCount);
            ctrls = [.. _controllers.Values];
        }
        int told = 0;
        foreach (var c in ctrls)
            if (old.StateOf(c.PortId, group) != next.StateOf(c.PortId, group)) { c.NotifyAnaChanged(); told++; }
        return told;
    }

    /// <summary>Moves a namespace to another ANA group (allowed while attached: ANACAP bit 6 is clear). The change count
    /// goes up and the controllers whose host sees the namespace get the ANA change event; the Linux host learns the
    /// new group from the ANA log it then reads. Returns how many controllers were told.</summary>
    public int SetNamespaceAnaGroup(uint nsid, uint group)
    {
        if (ValidateAnaGroup(group) is string bad) throw new ArgumentOutOfRangeException(nameof(group), bad);
        var ns = GetNamespace(nsid) ?? throw new KeyNotFoundException($"namespace {nsid} does not exist in {Nqn}");
        Controller[] ctrls;
        lock (_lock)
        {
            if (ns.AnaGroupId == group) return 0;
            ns.AnaGroupId = group;
            Interlocked.Increment(ref _anaChangeCount);
            ctrls = [.. _controllers.Values];
        }
        int told = 0;
        foreach (var c in ctrls)
            if (ns.IsVisibleTo(c.HostNqn)) { c.NotifyAnaChanged(); told++; }
        return told;
    }

    /// <summary>Sends the ANA change event to every controller (on <paramref name="portId"/> only, if given) without a state
    /// change (a test lab's event; the change count stays). Returns how many controllers were told.</summary>
    public int NotifyAnaChanged(ushort? portId = null)
    {
        Controller[] ctrls;
        lock (_lock) ctrls = [.. _controllers.Values];
        int told = 0;
        foreach (var c in ctrls)
            if (portId is not ushort p || c.PortId == p) { c.NotifyAnaChanged(); told++; }
        return told;
    }

    /// <summary>The path status for I/O to <paramref name="ns"/> from <paramref name="portId"/>, or Success. One volatile
    /// read when no group refuses I/O anywhere (the common case).</summary>
    internal NvmeStatus AnaIoStatus(ushort portId, Namespace ns)
    {
        if (!_anaBlocksIo) return NvmeStatus.Success;
        return GetAnaState(portId, ns.AnaGroupId) switch
        {
            AnaState.Inaccessible => NvmeStatus.AnaInaccessible,
            AnaState.PersistentLoss => NvmeStatus.AnaPersistentLoss,
            AnaState.Change => NvmeStatus.AnaTransition,
            _ => NvmeStatus.Success,
        };
    }

    /// <summary>
    /// The ANA log (LID 0Ch) as <paramref name="c"/> sees it: one descriptor per group that holds a namespace its host
    /// sees (ascending), with the state on its port and, unless <paramref name="groupsOnly"/> (RGO), the NSIDs ascending
    /// (the Linux host walks them in step with its sorted namespace list).
    /// </summary>
    internal byte[] BuildAnaLog(Controller c, bool groupsOnly)
    {
        ulong changeCount;
        AnaTable table;
        KeyValuePair<uint, uint[]>[] groups;
        lock (_lock)
        {
            changeCount = AnaChangeCount;
            table = _ana;
            groups = [.. Volatile.Read(ref _namespaces).Values.Where(n => n.IsVisibleTo(c.HostNqn))
                .GroupBy(n => n.AnaGroupId).OrderBy(g => g.Key)
                .Select(g => KeyValuePair.Create(g.Key, g.Select(n => n.Nsid).Order().ToArray()))];
        }
        int size = AnaLogHeader.Size + groups.Sum(g => AnaGroupDescriptor.Size + (groupsOnly ? 0 : 4 * g.Value.Length));
        var page = new byte[size];
        ref var header = ref MemoryMarshal.AsRef<AnaLogHeader>(page.AsSpan());
        header.ChangeCount = changeCount;
        header.NumberOfDescriptors = (ushort)groups.Length;
        int o = AnaLogHeader.Size;
        foreach (var (group, nsids) in groups)
        {
            ref var d = ref MemoryMarshal.AsRef<AnaGroupDescriptor>(page.AsSpan(o));
            d.GroupId = group;
            d.ChangeCount = changeCount;
            d.State = (byte)table.StateOf(c.PortId, group);
            o += AnaGroupDescriptor.Size;
            if (groupsOnly) continue;
            d.NumberOfNsids = (uint)nsids.Length;
            foreach (var nsid in nsids) { Commands.AdminCommands.WriteU32(page, o, nsid); o += 4; }
        }
        return page;
    }
}
