using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Storage.Rbd;

namespace Target.Management;

/// <summary>Who owns an ANA group under automatic failover: the gateway's name, its Ceph client and session address,
/// and whether it is this gateway.</summary>
public sealed record AnaOwner(string Gateway, string Client, string Address, bool Self);

/// <summary>
/// Automatic failover between gateways serving one subsystem, coordinated through Ceph itself (no consensus of our
/// own). Every ANA group of a failover subsystem that holds RBD namespaces has a RADOS object in the pool of its first
/// RBD namespace, <c>nvmet-ana.NQN.GROUP</c>, with two cls_lock locks:
/// <list type="bullet">
/// <item>an exclusive lock with a lease (<see cref="LockName"/>): its holder owns the group — optimized on its ports —
/// and renews the lease every tick; every other gateway is non-optimized. When the owner dies its lease runs out and
/// the first survivor to take the lock becomes optimized, after blocklisting the previous owner's Ceph client (read
/// from the object's <see cref="OwnerAttribute"/>) so that a gateway that was only frozen cannot write any more — its
/// I/O then fails with a path status and its own loop turns its paths inaccessible. An owner that stepped down on
/// purpose (planned move, graceful stop) says so in <see cref="ReleasedAttribute"/> and is not blocklisted.</item>
/// <item>a shared lock with the same lease (<see cref="MemberLockName"/>) every gateway serving the group renews: its
/// holders are the gateways alive, which a planned move checks its target against.</item>
/// </list>
/// A planned move writes <see cref="HandoverAttribute"/> ("GATEWAY UNTIL-UNIX-MS"): the owner steps down at its next
/// tick, the named gateway takes the lock (the others leave it alone until the hand-over expires). An owner that cannot
/// renew for 3/4 of the lease (cluster unreachable, a call stuck) turns non-optimized before anyone can take over.
/// Every RADOS call is made on this class's own thread, never on an I/O path.
/// </summary>
public sealed class AnaFailover : IDisposable
{
    public const string LockName = "nvmet-ana-owner";
    public const string MemberLockName = "nvmet-ana-member";
    public const string OwnerAttribute = "nvmet.owner";
    public const string ReleasedAttribute = "nvmet.released";
    public const string HandoverAttribute = "nvmet.handover";
    /// <summary>How long a fenced gateway stays blocklisted: it must restart (a new Ceph session) well before that.</summary>
    public static readonly TimeSpan BlocklistTime = TimeSpan.FromHours(1);

    private readonly NvmeTarget _target;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<string, bool> _subsystems = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Nqn, uint Group), Entry> _entries = new();
    private readonly Lock _lock = new(); // one pass at a time: the loop's, a step-down's, the watchdog's decisions
    private readonly AutoResetEvent _wake = new(false);
    private readonly string _description;
    private Thread? _thread;
    private Timer? _watchdog;
    private volatile bool _stopping;

    public AnaFailover(NvmeTarget target, string gatewayName, TimeSpan lease, ILogger log)
    {
        _target = target;
        Gateway = gatewayName;
        Lease = lease;
        Tick = TimeSpan.FromMilliseconds(Math.Clamp(lease.TotalMilliseconds / 5, 200, 1000));
        _log = log;
        _description = $"nvme-tcp-target gateway {gatewayName} (pid {Environment.ProcessId})";
    }

    /// <summary>This gateway's name: the cookie of its locks, shown as a group's owner.</summary>
    public string Gateway { get; }
    public TimeSpan Lease { get; }
    /// <summary>How often leases are renewed and free groups tried: a fifth of the lease, 0.2..1 s.</summary>
    public TimeSpan Tick { get; }

    /// <summary>How many times this gateway took a group over (metric nvmet_ana_takeovers).</summary>
    public long Takeovers => Interlocked.Read(ref _takeovers);
    private long _takeovers;

    /// <summary>How many ANA groups this gateway owns now.</summary>
    public int OwnedGroups => _entries.Values.Count(e => e.Owned);

    /// <summary>The gateway name when none is configured: the host name (a pod's name in Kubernetes).</summary>
    public static string DefaultGatewayName()
    {
        var name = System.Net.Dns.GetHostName().Split('.')[0];
        return Configuration.ConfigValidator.GatewayNameProblem(name) is null ? name : "gateway";
    }

    public bool IsFailover(string nqn) => _subsystems.ContainsKey(nqn);

    /// <summary>Puts a subsystem under automatic failover (at start, or when created with "failover": true).</summary>
    public void Track(string nqn) => _subsystems[nqn] = true;

    /// <summary>Leaves a subsystem (deleted): its groups are released.</summary>
    public void Untrack(string nqn)
    {
        _subsystems.TryRemove(nqn, out _);
        _wake.Set();
    }

    /// <summary>The first pass, synchronous (before the ports listen, so a gateway never starts out optimized for a group
    /// another gateway owns), then the loop on its own thread.</summary>
    public void Start()
    {
        if (_subsystems.IsEmpty) return;
        _log.FailoverStarting(Gateway, Lease.TotalSeconds, string.Join(", ", _subsystems.Keys.Order(StringComparer.Ordinal)));
        Pass();
        _thread = new Thread(Loop) { IsBackground = true, Name = "nvmet ANA failover" };
        _thread.Start();
        _watchdog = new Timer(_ => Watchdog(), null, Tick, Tick);
    }

    /// <summary>Whether the group is under automatic failover (its state is not the operator's to set).</summary>
    public bool IsManaged(string nqn, uint group) => _entries.ContainsKey((nqn, group));

    /// <summary>The owner as last seen (null: not managed, or nobody holds the group).</summary>
    public AnaOwner? OwnerOf(string nqn, uint group)
    {
        if (!_entries.TryGetValue((nqn, group), out var e)) return null;
        lock (_lock)
        {
            if (e.Owned) return new AnaOwner(Gateway, e.Lock.Client, e.Lock.Address, true);
            return e.Holder is { } h ? new AnaOwner(h.Cookie, h.Client, h.Address, e.Lock.IsThisSession(h.Address) && h.Cookie == Gateway) : null;
        }
    }

    /// <summary>The gateways alive for the group as last seen (their names).</summary>
    public IReadOnlyList<string> GatewaysOf(string nqn, uint group) =>
        _entries.TryGetValue((nqn, group), out var e) ? Volatile.Read(ref e.Members) : [];

    /// <summary>
    /// A planned move: asks the owner to hand the group to <paramref name="gateway"/> and waits until that gateway holds
    /// it. Both paths stay accessible throughout (the old owner turns non-optimized, the new one optimized), so no I/O
    /// fails. Throws <see cref="ManagementException"/> when the group is not managed, the gateway is not alive for it, or
    /// the move does not happen within two leases.
    /// </summary>
    public async Task<AnaOwner> HandOverAsync(string nqn, uint group, string gateway, CancellationToken cancel = default)
    {
        if (!_entries.TryGetValue((nqn, group), out var e))
            throw new ManagementException(ManagementError.Conflict, $"ANA group {group} of {nqn} is not under automatic failover (failover is off, or the group holds no RBD namespace)");
        var members = await CephAsync(() => e.Lock.Lockers(MemberLockName), cancel).ConfigureAwait(false);
        if (!members.Any(m => m.Cookie == gateway))
            throw new ManagementException(ManagementError.Invalid, $"gateway '{gateway}' does not serve ANA group {group} of {nqn} (gateways alive: {string.Join(", ", members.Select(m => m.Cookie).Order(StringComparer.Ordinal))})");
        var holder = await CephAsync(e.Lock.Holder, cancel).ConfigureAwait(false);
        if (holder?.Cookie == gateway) return Describe(e, holder);
        var timeout = Lease * 2 + TimeSpan.FromSeconds(2);
        long until = DateTimeOffset.UtcNow.Add(timeout).ToUnixTimeMilliseconds();
        int rc = await CephAsync(() => e.Lock.SetAttribute(HandoverAttribute, $"{gateway} {until.ToString(CultureInfo.InvariantCulture)}"), cancel).ConfigureAwait(false);
        if (rc < 0) throw new ManagementException(ManagementError.Conflict, $"cannot ask for the hand-over of ANA group {group} of {nqn}: {RadosLock.Describe(rc)}");
        _log.FailoverHandoverAsked(nqn, group, holder?.Cookie ?? "nobody", gateway);
        _wake.Set();
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(100), cancel).ConfigureAwait(false);
            holder = await CephAsync(e.Lock.Holder, cancel).ConfigureAwait(false);
            if (holder?.Cookie == gateway)
            {
                for (int i = 0; i < 50 && e.Owned && holder.Cookie != Gateway; i++) await Task.Delay(20, cancel).ConfigureAwait(false); // our side has stepped down
                lock (_lock) if (!e.Owned) e.Holder = holder;
                return Describe(e, holder);
            }
        }
        throw new ManagementException(ManagementError.Conflict,
            $"gateway '{gateway}' did not take ANA group {group} of {nqn} over within {timeout.TotalSeconds:0} s (owner now: {holder?.Cookie ?? "nobody"})");
    }

    /// <summary>A RADOS call for a request, off the request's thread and bounded: a cluster that does not answer within
    /// 10 s is a 409 that says so, not a request that hangs.</summary>
    private static async Task<T> CephAsync<T>(Func<T> call, CancellationToken cancel)
    {
        try { return await Task.Run(call, cancel).WaitAsync(TimeSpan.FromSeconds(10), cancel).ConfigureAwait(false); }
        catch (TimeoutException) { throw new ManagementException(ManagementError.Conflict, "the Ceph cluster did not answer within 10 s"); }
        catch (RadosException x) { throw new ManagementException(ManagementError.Conflict, x.Message); }
    }

    private AnaOwner Describe(Entry e, RadosLockHolder h) => new(h.Cookie, h.Client, h.Address, h.Cookie == Gateway && e.Lock.IsThisSession(h.Address));

    /// <summary>How long a stop waits for Ceph (the releases, the loop's last call) before it goes on without.</summary>
    public static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Graceful stop: every owned group turns non-optimized here and is released (marked released, so the
    /// gateway taking it over does not blocklist this one); the loop ends. Bounded: with the cluster gone, the stop goes
    /// on after <see cref="StopTimeout"/> (the lease then runs out by itself).</summary>
    public void StepDownAll()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Set();
        _watchdog?.Dispose();
        // The paths turn non-optimized at once, whatever Ceph does; then the releases, bounded.
        foreach (var e in _entries.Values)
            if (e.Owned && _target.FindSubsystem(e.Nqn) is { } s) Apply(s, e.Group, AnaState.NonOptimized, "this gateway is stopping");
        var release = Task.Run(() =>
        {
            _thread?.Join();
            lock (_lock)
                foreach (var e in _entries.Values)
                    if (e.Owned) StepDown(e, "this gateway is stopping");
        });
        if (!release.Wait(StopTimeout)) _log.FailoverLoopStuck(Gateway);
    }

    public void Dispose()
    {
        StepDownAll();
        var close = Task.Run(() =>
        {
            lock (_lock)
            {
                foreach (var e in _entries.Values) Close(e);
                _entries.Clear();
            }
        });
        if (!close.Wait(StopTimeout)) _log.FailoverLoopStuck(Gateway);
    }

    // ------------------------------------------------------------------ the loop

    private sealed class Entry(string nqn, uint group, string key, RadosLock l)
    {
        public readonly string Nqn = nqn;
        public readonly uint Group = group;
        public readonly string Key = key;   // which cluster and pool the lock is on
        public readonly RadosLock Lock = l;
        public bool Owned;
        public bool Fenced;
        public long LastRenewed;            // Environment.TickCount64 of the last renewal
        public RadosLockHolder? Holder;     // the owner seen when this gateway is not it
        public IReadOnlyList<string> Members = [];
        public string? Problem;             // the last error, logged once
    }

    private void Loop()
    {
        while (!_stopping)
        {
            _wake.WaitOne(Tick);
            if (_stopping) break;
            try { Pass(); }
            catch (Exception e) when (e is not OutOfMemoryException) { _log.FailoverPassFailed(e, Gateway); }
        }
    }

    private void Pass()
    {
        var wanted = new HashSet<(string, uint)>();
        foreach (var s in _target.Subsystems)
        {
            if (!_subsystems.ContainsKey(s.Nqn)) continue;
            foreach (var g in s.Namespaces.Where(n => n.Store is RbdBlockStore { IsOpen: true }).GroupBy(n => n.AnaGroupId))
            {
                var first = (RbdBlockStore)g.MinBy(n => n.Nsid)!.Store;
                var key = $"{first.ClusterOptions}|{first.Pool}";
                wanted.Add((s.Nqn, g.Key));
                if (_stopping) return;
                var entry = Ensure(s, g.Key, first, key);
                if (entry == null) continue;
                lock (_lock) { if (!_stopping) Step(s, entry); }
            }
        }
        foreach (var (k, e) in _entries)
            if (!wanted.Contains(k)) Forget(k, e);
    }

    private Entry? Ensure(Subsystem s, uint group, RbdBlockStore first, string key)
    {
        if (_entries.TryGetValue((s.Nqn, group), out var e))
        {
            if (e.Key == key) return e;
            Forget((s.Nqn, group), e); // its first namespace is on another pool now
        }
        RadosLock l;
        try { l = RadosLock.Open(first.ClusterOptions, first.Pool, $"nvmet-ana.{s.Nqn}.{group}", LockName, Gateway); }
        catch (Nvme.Core.Storage.StoreException x)
        {
            _log.FailoverProblem(s.Nqn, group, x.Message);
            Apply(s, group, AnaState.NonOptimized, "its lock cannot be opened");
            return null;
        }
        e = new Entry(s.Nqn, group, key, l);
        _entries[(s.Nqn, group)] = e;
        // Until this gateway owns the group it is not optimized here.
        Apply(s, group, AnaState.NonOptimized, "waiting for its lease");
        return e;
    }

    private void Forget((string, uint) k, Entry e)
    {
        lock (_lock)
        {
            if (!_entries.TryRemove(k, out _)) return;
            if (e.Owned) StepDown(e, "the group holds no RBD namespace of a failover subsystem any more");
            Close(e);
        }
    }

    /// <summary>Leaves the group's gateways alive (the shared lock) and closes its lock object.</summary>
    private static void Close(Entry e)
    {
        try { e.Lock.Unlock(MemberLockName); } catch (Exception x) when (x is not OutOfMemoryException) { }
        e.Lock.Dispose();
    }

    /// <summary>The owner has not renewed for 3/4 of the lease: it must not stay optimized (another gateway may take
    /// the group over once the lease runs out).</summary>
    private bool RenewalOverdue(Entry e, long now) => now - Volatile.Read(ref e.LastRenewed) > Lease.TotalMilliseconds * 3 / 4;

    /// <summary>The gateway a hand-over that has not expired names, or null.</summary>
    private static string? HandoverTarget(Entry e)
    {
        string? v;
        try { v = e.Lock.GetAttribute(HandoverAttribute); }
        catch (RadosException) { return null; }
        var parts = v?.Split(' ');
        if (parts is not { Length: 2 } || !long.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out long until)) return null;
        return until > DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() ? parts[0] : null;
    }

    private void Step(Subsystem s, Entry e)
    {
        if (e.Fenced) { Apply(s, e.Group, AnaState.Inaccessible, "this gateway is blocklisted"); return; }
        int member = e.Lock.LockShared(MemberLockName, Lease, _description);
        if (member == -RadosLock.ESHUTDOWN) { Fence(s, e); return; }
        try { Volatile.Write(ref e.Members, [.. e.Lock.Lockers(MemberLockName).Select(m => m.Cookie).Distinct().Order(StringComparer.Ordinal)]); }
        catch (RadosException) { }
        var handover = HandoverTarget(e);
        long now = Environment.TickCount64;
        if (e.Owned)
        {
            if (handover is { } h && h != Gateway)
            {
                StepDown(e, $"handed over to {h}");
                return;
            }
            int rc = e.Lock.TryLock(Lease, renew: true, _description);
            if (rc == 0)
            {
                e.LastRenewed = now;
                Problem(e, null);
                Apply(s, e.Group, AnaState.Optimized, "this gateway owns it");
            }
            else if (rc == -RadosLock.EBUSY)
            {
                e.Owned = false;
                e.Holder = TryHolder(e);
                _log.FailoverLost(e.Nqn, e.Group, Gateway, e.Holder?.Cookie ?? "another gateway");
                Apply(s, e.Group, AnaState.NonOptimized, "the lease was lost");
            }
            else if (rc == -RadosLock.ESHUTDOWN) Fence(s, e);
            else
            {
                Problem(e, $"cannot renew the lease: {RadosLock.Describe(rc)}");
                if (RenewalOverdue(e, now)) Demote(s, e);
            }
            return;
        }
        if (handover is { } other && other != Gateway)
        {
            e.Holder = TryHolder(e);
            Apply(s, e.Group, AnaState.NonOptimized, $"it is being handed over to {other}");
            return;
        }
        int got = e.Lock.TryLock(Lease, renew: false, _description);
        if (got == -RadosLock.EEXIST) got = e.Lock.TryLock(Lease, renew: true, _description); // still ours from before a demotion
        if (got == 0)
        {
            TakeOver(s, e, handover != null);
            e.LastRenewed = now;
        }
        else if (got == -RadosLock.EBUSY)
        {
            e.Holder = TryHolder(e);
            Problem(e, null);
            Apply(s, e.Group, AnaState.NonOptimized, "another gateway owns it");
        }
        else if (got == -RadosLock.ESHUTDOWN) Fence(s, e);
        else
        {
            Problem(e, $"cannot take the lease: {RadosLock.Describe(got)}");
            Apply(s, e.Group, AnaState.NonOptimized, "its lease cannot be taken");
        }
    }

    private RadosLockHolder? TryHolder(Entry e)
    {
        try { return e.Lock.Holder(); }
        catch (RadosException) { return e.Holder; }
    }

    private void TakeOver(Subsystem s, Entry e, bool handedOver)
    {
        // The previous owner, as it recorded itself; fenced unless it released the group on purpose.
        string? previous = null, released = null;
        try
        {
            previous = e.Lock.GetAttribute(OwnerAttribute);
            released = e.Lock.GetAttribute(ReleasedAttribute);
        }
        catch (RadosException x) { _log.FailoverProblem(e.Nqn, e.Group, x.Message); }
        var parts = previous?.Split(' ', 3);
        string fence = "";
        if (parts is { Length: 3 } && !(parts[1] == e.Lock.Client) && !e.Lock.IsThisSession(parts[2]) && released != parts[1])
        {
            int rc = e.Lock.Blocklist(parts[2], BlocklistTime);
            if (rc == 0) fence = $"; the previous owner {parts[0]} ({parts[1]} at {parts[2]}) is blocklisted for {BlocklistTime.TotalMinutes:0} min";
            else
            {
                fence = $"; the previous owner {parts[0]} ({parts[1]}) could NOT be blocklisted: {RadosLock.Describe(rc)}";
                _log.FailoverFenceFailed(e.Nqn, e.Group, parts[0], parts[2], RadosLock.Describe(rc),
                    rc == -RadosLock.EACCES || rc == -RadosLock.EPERM ? " (the Ceph key needs mon 'allow command \"osd blocklist\"')" : "");
            }
        }
        e.Lock.SetAttribute(OwnerAttribute, $"{Gateway} {e.Lock.Client} {e.Lock.Address}");
        // The release was the previous owner's: this owner has released nothing (until it steps down itself).
        if (released is { Length: > 0 }) e.Lock.SetAttribute(ReleasedAttribute, "");
        if (handedOver) e.Lock.SetAttribute(HandoverAttribute, "");
        string from = parts is not { Length: 3 } ? "nobody"
            : released == parts[1] ? $"{parts[0]}, which released it"
            : parts[1] == e.Lock.Client ? $"{parts[0]} (this session, after a lapse)" : parts[0];
        e.Owned = true;
        e.Holder = null;
        Problem(e, null);
        Interlocked.Increment(ref _takeovers);
        _log.FailoverTookOver(e.Nqn, e.Group, Gateway, from + fence);
        Apply(s, e.Group, AnaState.Optimized, "this gateway owns it");
    }

    private void StepDown(Entry e, string why)
    {
        if (_target.FindSubsystem(e.Nqn) is { } s) Apply(s, e.Group, AnaState.NonOptimized, why);
        e.Owned = false;
        try
        {
            e.Lock.SetAttribute(ReleasedAttribute, e.Lock.Client);
            e.Lock.Unlock();
        }
        catch (Exception x) when (x is not OutOfMemoryException) { _log.FailoverProblem(e.Nqn, e.Group, x.Message); }
        _log.FailoverSteppedDown(e.Nqn, e.Group, Gateway, why);
    }

    private void Demote(Subsystem s, Entry e)
    {
        if (!e.Owned) return;
        e.Owned = false;
        _log.FailoverLost(e.Nqn, e.Group, Gateway, $"nobody yet (the lease could not be renewed for {Lease.TotalSeconds * 3 / 4:0.#} s)");
        Apply(s, e.Group, AnaState.NonOptimized, "its lease could not be renewed");
    }

    private void Fence(Subsystem s, Entry e)
    {
        if (!e.Fenced) _log.FailoverFenced(e.Nqn, e.Group, Gateway, e.Lock.Client);
        e.Fenced = true;
        e.Owned = false;
        Apply(s, e.Group, AnaState.Inaccessible, "this gateway is blocklisted");
    }

    /// <summary>An owner whose renewals are stuck (a RADOS call that does not return) turns non-optimized before its
    /// lease runs out, whatever the loop is doing.</summary>
    private void Watchdog()
    {
        long now = Environment.TickCount64;
        foreach (var e in _entries.Values)
        {
            if (!e.Owned || !RenewalOverdue(e, now)) continue;
            if (_target.FindSubsystem(e.Nqn) is { } s && s.GetAnaState(e.Group) == AnaState.Optimized)
                Apply(s, e.Group, AnaState.NonOptimized, "its lease renewal is stuck");
        }
    }

    private void Problem(Entry e, string? problem)
    {
        if (problem != null && problem != e.Problem) _log.FailoverProblem(e.Nqn, e.Group, problem);
        e.Problem = problem;
    }

    private void Apply(Subsystem s, uint group, AnaState state, string why)
    {
        var before = s.GetAnaState(group);
        bool overrides = s.GetAnaPortStates(group).Count > 0;
        if (before == state && !overrides) return;
        int told = s.SetAnaState(group, state, null);
        _log.FailoverAnaState(s.Nqn, group, TargetManager.AnaStateName(state), TargetManager.AnaStateName(before), why, told);
    }
}
