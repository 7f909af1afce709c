using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Nvme.Core.Auth;
using Nvme.Core.Spec;

namespace Nvme.Core.Model;

public enum SubsystemKind { Nvm, Discovery }

/// <summary>
/// An NVM subsystem (or the discovery subsystem): identity, allowed hosts, namespaces and the controllers
/// hosts created on it. Namespace lookups on the I/O path read an immutable snapshot (no locks).
/// </summary>
public sealed partial class Subsystem
{
    private readonly Lock _lock = new();
    private ImmutableSortedDictionary<uint, Namespace> _namespaces = ImmutableSortedDictionary<uint, Namespace>.Empty;
    private readonly Dictionary<ushort, Controller> _controllers = new();
    private ImmutableHashSet<string> _allowedHosts;
    private ushort _nextCntlid;
    public const ushort MaxCntlid = 0xFFEF;

    public Subsystem(string nqn, SubsystemKind kind = SubsystemKind.Nvm, string? serial = null, string? model = null,
        string? firmwareRevision = null, bool allowAnyHost = false, IEnumerable<string>? allowedHosts = null, IEnumerable<ushort>? portIds = null)
    {
        var error = ValidateNqn(nqn);
        if (error != null) throw new ArgumentException(error, nameof(nqn));
        Nqn = nqn;
        Kind = kind;
        Serial = serial ?? DeriveSerial(nqn);
        Model = model ?? "NvmeTcpTarget";
        FirmwareRevision = firmwareRevision ?? "1.0";
        if (Serial.Length > 20) throw new ArgumentException("serial number is longer than 20 characters", nameof(serial));
        if (Model.Length > 40) throw new ArgumentException("model number is longer than 40 characters", nameof(model));
        if (FirmwareRevision.Length > 8) throw new ArgumentException("firmware revision is longer than 8 characters", nameof(firmwareRevision));
        AllowAnyHost = allowAnyHost;
        _allowedHosts = (allowedHosts ?? []).ToImmutableHashSet(StringComparer.Ordinal);
        _nextCntlid = 1;
        _portIds = portIds?.ToImmutableHashSet();
    }

    public string Nqn { get; }
    public SubsystemKind Kind { get; }
    public string Serial { get; }
    public string Model { get; }
    public string FirmwareRevision { get; }
    /// <summary>Any host NQN may connect (kernel nvmet's allow_any_host). When false only <see cref="AllowedHosts"/>
    /// may, and an empty list admits nobody.</summary>
    public bool AllowAnyHost { get; private set; }
    public IReadOnlySet<string> AllowedHosts => _allowedHosts;

    /// <summary>Raised (outside locks) when what the discovery log shows of this subsystem changes (its allowed hosts).</summary>
    internal event Action<Subsystem>? Changed;

    public bool IsHostAllowed(string hostNqn) => AllowAnyHost || _allowedHosts.Contains(hostNqn);

    public void AllowHost(string hostNqn) { lock (_lock) _allowedHosts = _allowedHosts.Add(hostNqn); Changed?.Invoke(this); }

    // ---- DH-HMAC-CHAP ----

    private ImmutableDictionary<string, HostAuthentication> _hostAuth = ImmutableDictionary<string, HostAuthentication>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>The DH-HMAC-CHAP secrets of a host, or null (no authentication). A host with secrets must
    /// authenticate even where any host may connect (SPDK looks the host up then too); the discovery subsystem
    /// never asks.</summary>
    public HostAuthentication? GetHostAuthentication(string hostNqn) =>
        hostNqn.Length == 0 ? null : Volatile.Read(ref _hostAuth).GetValueOrDefault(hostNqn);

    /// <summary>Hosts that have secrets here.</summary>
    public IReadOnlyDictionary<string, HostAuthentication> HostAuthentications => Volatile.Read(ref _hostAuth);

    /// <summary>Sets, replaces (key rotation) or with null removes a host's secrets. Controllers that exist keep the
    /// secrets they authenticated with (their I/O queues too) until the host re-authenticates on the admin queue;
    /// new controllers use the new ones.</summary>
    public void SetHostAuthentication(string hostNqn, HostAuthentication? auth)
    {
        if (ValidateNqn(hostNqn) is string bad) throw new ArgumentException(bad, nameof(hostNqn));
        lock (_lock) _hostAuth = auth is null ? _hostAuth.Remove(hostNqn) : _hostAuth.SetItem(hostNqn, auth);
    }

    /// <summary>Allows a host and sets its secrets in one step.</summary>
    public void AllowHost(string hostNqn, HostAuthentication? auth)
    {
        SetHostAuthentication(hostNqn, auth);
        AllowHost(hostNqn);
    }

    /// <summary>Takes a host off the allowed list and destroys the controllers it holds here, unless the subsystem
    /// admits any host. Returns the controllers destroyed.</summary>
    public int DisallowHost(string hostNqn)
    {
        lock (_lock)
        {
            _allowedHosts = _allowedHosts.Remove(hostNqn);
            _hostAuth = _hostAuth.Remove(hostNqn);
        }
        Changed?.Invoke(this);
        return DisconnectHostsNotAllowed($"host {hostNqn} was removed from the allowed hosts of {Nqn}");
    }

    /// <summary>Opens the subsystem to any host, or closes it to all but <see cref="AllowedHosts"/> (destroying the
    /// controllers of every other host). Returns the controllers destroyed.</summary>
    public int SetAllowAnyHost(bool allow)
    {
        AllowAnyHost = allow;
        Changed?.Invoke(this);
        return allow ? 0 : DisconnectHostsNotAllowed($"{Nqn} no longer admits any host and this host is not in its allowed hosts");
    }

    /// <summary>Destroys every controller whose host is not allowed any more (as SPDK does when a host is removed).</summary>
    private int DisconnectHostsNotAllowed(string reason)
    {
        int n = 0;
        foreach (var c in Controllers)
            if (!IsHostAllowed(c.HostNqn)) { c.Destroy(reason); n++; }
        return n;
    }

    // ---- ports ----

    private ImmutableHashSet<ushort>? _portIds;

    /// <summary>The ports this subsystem is reachable on, for Connect and in the discovery log (the kernel target's
    /// ports/N/subsystems links); null = every port. Narrowing it destroys the controllers whose admin queue came
    /// in on a port no longer listed, as the kernel does when a subsystem is unlinked from a port.</summary>
    public IReadOnlySet<ushort>? PortIds
    {
        get => Volatile.Read(ref _portIds);
        set
        {
            Controller[] ctrls;
            lock (_lock)
            {
                Volatile.Write(ref _portIds, value?.ToImmutableHashSet());
                ctrls = [.. _controllers.Values];
            }
            foreach (var c in ctrls)
                if (!IsReachableOn(c.PortId)) c.Destroy($"subsystem {Nqn} is no longer reachable on port {c.PortId}");
            Changed?.Invoke(this);
        }
    }

    /// <summary>Whether a host that came in on <paramref name="portId"/> may reach this subsystem. Port 0 (the
    /// transport does not know its port) reaches only subsystems open to every port; the discovery subsystem is on
    /// every port.</summary>
    public bool IsReachableOn(ushort portId) =>
        Kind == SubsystemKind.Discovery || Volatile.Read(ref _portIds) is not { } ports || (portId != 0 && ports.Contains(portId));

    // ---- namespaces ----

    public IReadOnlyCollection<Namespace> Namespaces => _namespaces.Values.ToArray();

    /// <summary>Active namespace by NSID, or null. Lock-free: safe on the I/O path.</summary>
    public Namespace? GetNamespace(uint nsid) => Volatile.Read(ref _namespaces).GetValueOrDefault(nsid);

    /// <summary>Active NSIDs in ascending order greater than <paramref name="after"/>.</summary>
    public IEnumerable<uint> ActiveNsids(uint after = 0) => Volatile.Read(ref _namespaces).Keys.Where(n => n > after);

    /// <summary>Attaches a namespace and tells every controller whose host sees it (<see cref="Namespace.Visibility"/>):
    /// changed list + async event.</summary>
    public void AttachNamespace(Namespace ns)
    {
        if (Kind == SubsystemKind.Discovery) throw new InvalidOperationException("the discovery subsystem has no namespaces");
        Controller[] ctrls;
        lock (_lock)
        {
            if (_namespaces.ContainsKey(ns.Nsid)) throw new InvalidOperationException($"NSID {ns.Nsid} is already in use in {Nqn}");
            _namespaces = _namespaces.Add(ns.Nsid, ns);
            ctrls = [.. _controllers.Values];
        }
        NotifySeeing(ctrls, ns);
    }

    /// <summary>Detaches a namespace from every controller and sends the events to those that saw it. The caller
    /// drains and disposes it (see <see cref="Namespace.StopAndDrainAsync"/>).</summary>
    public Namespace? DetachNamespace(uint nsid)
    {
        Namespace? ns;
        Controller[] ctrls;
        lock (_lock)
        {
            if (!_namespaces.TryGetValue(nsid, out ns)) return null;
            _namespaces = _namespaces.Remove(nsid);
            ctrls = [.. _controllers.Values];
        }
        NotifySeeing(ctrls, ns);
        return ns;
    }

    /// <summary>
    /// Hot-remove (the order matters): stop admitting new I/O to the namespace, wait up to
    /// <paramref name="drainTimeout"/> for in-flight I/O, detach it from every controller (changed namespace
    /// list + async event), and release the backing store once the last in-flight request has completed.
    /// Returns false when requests were still in flight at the timeout; the store is then released when they
    /// finish (never before).
    /// </summary>
    public async Task<bool> RemoveNamespaceAsync(uint nsid, TimeSpan drainTimeout)
    {
        var ns = GetNamespace(nsid) ?? throw new KeyNotFoundException($"namespace {nsid} does not exist in {Nqn}");
        var drained = ns.StopAndDrainAsync();
        bool inTime = await Task.WhenAny(drained, Task.Delay(drainTimeout)).ConfigureAwait(false) == drained;
        if (!inTime)
        {
            // Stragglers (a hung device): answer the hosts now with a clean abort status; the requests keep
            // their buffers and the namespace reference until the store really returns.
            Controller[] owners;
            lock (_lock) owners = [.. _controllers.Values];
            foreach (var c in owners)
                foreach (var q in c.Queues)
                    q.Transport.AbortRequests(r => r.Namespace == ns, NvmeStatus.AbortRequested);
        }
        DetachNamespace(nsid);
        if (inTime) ns.Store.Dispose();
        else _ = drained.ContinueWith(_ => ns.Store.Dispose(), TaskScheduler.Default);
        return inTime;
    }

    /// <summary>Changes a namespace's size and tells every controller. Growing is always allowed; shrinking
    /// only with <paramref name="allowShrink"/> (data past the new end is lost). A shrink takes effect for new
    /// I/O at once and releases the space only after every request admitted against the old size finished.
    /// <paramref name="commit"/> (e.g. saving the configuration) runs at the last point where the change can still
    /// be undone without loss: after a grow has made the space but before any host may use it, and after a shrink
    /// has drained but before the tail is released. If it throws, the namespace keeps its old size and the
    /// exception propagates; after it returns, nothing fails.</summary>
    public async Task ResizeNamespaceAsync(uint nsid, long newBytes, bool allowShrink, TimeSpan? drainTimeout = null, Action? commit = null)
    {
        var ns = GetNamespace(nsid) ?? throw new KeyNotFoundException($"namespace {nsid} does not exist in {Nqn}");
        if (newBytes <= 0 || newBytes % ns.BlockSize != 0)
            throw new ArgumentException($"size {newBytes} is not a positive multiple of the block size {ns.BlockSize}");
        ulong blocks = (ulong)(newBytes >> ns.BlockShift);
        ulong before = ns.BlockCount;
        if (blocks == before) { commit?.Invoke(); return; }
        if (blocks < before)
        {
            if (!allowShrink) throw new InvalidOperationException($"shrinking namespace {nsid} from {before} to {blocks} blocks loses data; force it to proceed");
            ns.SetBlockCount(blocks);   // new I/O sees the new end first...
            if (!await ns.WaitForEarlierRequestsAsync(drainTimeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false))
            {
                ns.SetBlockCount(before);
                throw new InvalidOperationException($"namespace {nsid}: I/O admitted before the shrink did not finish in time; the size is unchanged");
            }
            try { commit?.Invoke(); }
            catch
            {
                ns.SetBlockCount(before); // the tail is still in the store: nothing is lost
                throw;
            }
            ns.Store.Resize(newBytes);  // ...then, with nothing left addressing the tail, the store lets it go
        }
        else
        {
            long oldBytes = (long)before << ns.BlockShift;
            ns.Store.Resize(newBytes);  // the space exists before any I/O may address it
            try { commit?.Invoke(); }
            catch
            {
                ns.Store.Resize(oldBytes); // no host was told and none may address the new space yet
                throw;
            }
            ns.SetBlockCount(blocks);
        }
        NotifyNamespaceChanged(ns);
    }

    /// <summary>Sends a Namespace Attribute Changed event for <paramref name="ns"/> to every controller whose host sees it
    /// (on demand: a test lab's event). Returns how many controllers were told.</summary>
    public int NotifyNamespaceChanged(Namespace ns)
    {
        Controller[] ctrls;
        lock (_lock) ctrls = [.. _controllers.Values];
        return NotifySeeing(ctrls, ns);
    }

    /// <summary>Simulates a namespace turning write protected (or back); the hosts that see it get the namespace event and
    /// re-read Identify Namespace. Returns how many controllers were told.</summary>
    public int SetWriteProtected(Namespace ns, bool on)
    {
        ns.WriteProtected = on;
        return NotifyNamespaceChanged(ns);
    }

    /// <summary>The namespace event for the controllers whose host sees <paramref name="ns"/>; the others get nothing.
    /// Returns how many were told.</summary>
    private static int NotifySeeing(Controller[] ctrls, Namespace ns)
    {
        var visibility = ns.Visibility;
        int told = 0;
        foreach (var c in ctrls)
            if (visibility.Allows(c.HostNqn)) { c.NotifyNamespaceChanged(ns.Nsid); told++; }
        return told;
    }

    // ---- masking and in-band attachment ----

    private readonly SemaphoreSlim _visibilityGate = new(1, 1);
    private ImmutableSortedSet<string> _attachHosts = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    /// <summary>How long an in-band detach (Namespace Attachment) waits for the host's in-flight I/O when the host process
    /// set no <see cref="InBandAttachment"/> handler.</summary>
    public static readonly TimeSpan DefaultDrainTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The namespace of <paramref name="nsid"/> if controllers of <paramref name="hostNqn"/> have it in their
    /// active list (it exists and its visibility allows the host), else null. Lock-free: safe on the I/O path.</summary>
    public Namespace? GetNamespace(uint nsid, string hostNqn) =>
        GetNamespace(nsid) is { } ns && ns.IsVisibleTo(hostNqn) ? ns : null;

    /// <summary>The NSIDs in a controller of <paramref name="hostNqn"/>'s active list, ascending, greater than <paramref name="after"/>.</summary>
    public IEnumerable<uint> ActiveNsids(string hostNqn, uint after = 0) =>
        Volatile.Read(ref _namespaces).Where(e => e.Key > after && e.Value.IsVisibleTo(hostNqn)).Select(e => e.Key);

    /// <summary>
    /// Masking: changes which hosts see a namespace. For exactly the controllers whose host gains or loses it this is a
    /// hot-plug: the NSID enters their Changed Namespace List and each gets one Namespace Attribute Changed event (as
    /// their async event configuration and masking allow); other controllers get nothing. A host that loses it gets
    /// Invalid Namespace for new I/O at once; its in-flight I/O drains first (up to <paramref name="drainTimeout"/>,
    /// then what is left of it is aborted, as a hot-remove does), and only then are the events sent. Hosts added to the
    /// list must be allowed on the subsystem. <paramref name="commit"/> (saving the configuration) runs before anything
    /// is live; if it throws, nothing changed. Returns false when the drain timed out.
    /// </summary>
    public async Task<bool> SetNamespaceVisibilityAsync(uint nsid, NamespaceVisibility visibility, TimeSpan drainTimeout, Action? commit = null)
    {
        ArgumentNullException.ThrowIfNull(visibility);
        await _visibilityGate.WaitAsync().ConfigureAwait(false);
        try
        {
            var ns = GetNamespace(nsid) ?? throw new KeyNotFoundException($"namespace {nsid} does not exist in {Nqn}");
            var old = ns.Visibility;
            if (CheckMaskHosts(old, visibility) is string error) throw new ArgumentException(error, nameof(visibility));
            commit?.Invoke();
            if (old.Equals(visibility)) return true;
            return await ApplyVisibilityAsync(ns, old, visibility, drainTimeout).ConfigureAwait(false);
        }
        finally { _visibilityGate.Release(); }
    }

    /// <summary>Why <paramref name="next"/> may not follow <paramref name="current"/> (a host added that the subsystem does
    /// not allow, or a malformed NQN), or null. Hosts already listed are not checked again: a host removed from the
    /// allowed hosts keeps its entry (see <see cref="NamespaceVisibility"/>).</summary>
    public string? CheckMaskHosts(NamespaceVisibility current, NamespaceVisibility next)
    {
        foreach (var h in next.Hosts.Except(current.Hosts))
        {
            if (ValidateNqn(h) is string bad) return bad;
            if (!IsHostAllowed(h))
                return $"host {h} is not allowed on {Nqn}, so it cannot be given a namespace: allow it on the subsystem first";
        }
        return null;
    }

    private async Task<bool> ApplyVisibilityAsync(Namespace ns, NamespaceVisibility old, NamespaceVisibility next, TimeSpan drainTimeout)
    {
        ns.Visibility = next; // new I/O of a host that lost it fails from here on (checked after it took its reference)
        Controller[] ctrls;
        lock (_lock) ctrls = [.. _controllers.Values];
        var lost = ctrls.Where(c => old.Allows(c.HostNqn) && !next.Allows(c.HostNqn)).ToArray();
        var gained = ctrls.Where(c => !old.Allows(c.HostNqn) && next.Allows(c.HostNqn)).ToArray();
        bool inTime = true;
        if (lost.Length > 0)
        {
            // Every request admitted before the mask changed, of any host, finishes first (other hosts' I/O keeps
            // flowing); a request admitted later saw the new mask and was refused.
            inTime = await ns.WaitForEarlierRequestsAsync(drainTimeout).ConfigureAwait(false);
            if (!inTime)
                foreach (var c in lost)
                    foreach (var q in c.Queues)
                        q.Transport.AbortRequests(r => r.Namespace == ns, NvmeStatus.AbortRequested);
        }
        foreach (var c in lost) c.NotifyNamespaceChanged(ns.Nsid);
        foreach (var c in gained) c.NotifyNamespaceChanged(ns.Nsid);
        return inTime;
    }

    /// <summary>Host NQNs that may attach and detach namespaces to and from their own controllers with the Namespace
    /// Attachment command (none by default). An entry stays when the host is removed from the allowed hosts.</summary>
    public IReadOnlySet<string> NamespaceAttachHosts => Volatile.Read(ref _attachHosts);

    /// <summary>Whether controllers of <paramref name="hostNqn"/> may use Namespace Attachment (never the empty host NQN).</summary>
    public bool MayAttachNamespaces(string hostNqn) => hostNqn.Length != 0 && Volatile.Read(ref _attachHosts).Contains(hostNqn);

    /// <summary>Grants or takes the in-band attachment privilege. Granting needs the host allowed on the subsystem.</summary>
    public void SetNamespaceAttachHost(string hostNqn, bool allowed)
    {
        if (allowed)
        {
            if (ValidateNqn(hostNqn) is string bad) throw new ArgumentException(bad, nameof(hostNqn));
            if (!IsHostAllowed(hostNqn)) throw new ArgumentException($"host {hostNqn} is not allowed on {Nqn}: allow it on the subsystem first", nameof(hostNqn));
        }
        lock (_lock) Volatile.Write(ref _attachHosts, allowed ? _attachHosts.Add(hostNqn) : _attachHosts.Remove(hostNqn));
    }

    /// <summary>The privilege list as saved in a configuration: no allowed-host check, since an entry outlives its host's
    /// removal from the allowed hosts.</summary>
    public void RestoreNamespaceAttachHosts(IEnumerable<string> hosts)
    {
        lock (_lock) Volatile.Write(ref _attachHosts, hosts.ToImmutableSortedSet(StringComparer.Ordinal));
    }

    /// <summary>Runs an in-band attach or detach where the host process serialises and persists changes (TargetManager sets
    /// it: it calls <see cref="ChangeAttachmentAsync"/> with a commit that saves the configuration). Null: the change is
    /// made in the model only, with <see cref="DefaultDrainTimeout"/>.</summary>
    public Func<uint, string, bool, Task<NvmeStatus>>? InBandAttachment { get; set; }

    internal Task<NvmeStatus> RequestAttachmentAsync(uint nsid, string hostNqn, bool attach) =>
        InBandAttachment is { } handler ? handler(nsid, hostNqn, attach) : ChangeAttachmentAsync(nsid, hostNqn, attach, DefaultDrainTimeout);

    /// <summary>
    /// In-band attachment, mapped onto masking: controllers are created on every connect (dynamic model), so an
    /// attachment belongs to the host NQN. Attach adds the host to a restricted namespace's list, detach removes it —
    /// with the same events, drain and order as <see cref="SetNamespaceVisibilityAsync"/> (i.e. a hot-remove for that
    /// host). Every controller of that host NQN is affected. An auto namespace is attached to every controller by the
    /// operator's choice: attaching it answers Namespace Already Attached, detaching it Invalid Field.
    /// <paramref name="commit"/> gets the new visibility to save before it goes live.
    /// </summary>
    public async Task<NvmeStatus> ChangeAttachmentAsync(uint nsid, string hostNqn, bool attach, TimeSpan drainTimeout,
        Action<NamespaceVisibility>? commit = null)
    {
        await _visibilityGate.WaitAsync().ConfigureAwait(false);
        try
        {
            if (GetNamespace(nsid) is not { } ns) return NvmeStatus.InvalidNamespaceOrFormat;
            var old = ns.Visibility;
            bool attached = old.Allows(hostNqn);
            if (attach && attached) return NvmeStatus.NamespaceAlreadyAttached;
            if (!attach && !attached) return NvmeStatus.NamespaceNotAttached;
            if (!old.Restricted) return NvmeStatus.InvalidField; // auto: only the operator changes who sees it
            var next = attach ? old.WithHost(hostNqn) : old.WithoutHost(hostNqn);
            commit?.Invoke(next);
            await ApplyVisibilityAsync(ns, old, next, drainTimeout).ConfigureAwait(false);
            return NvmeStatus.Success;
        }
        finally { _visibilityGate.Release(); }
    }

    // ---- controllers ----

    public IReadOnlyCollection<Controller> Controllers { get { lock (_lock) return [.. _controllers.Values]; } }

    internal Controller? FindController(ushort cntlid) { lock (_lock) return _controllers.GetValueOrDefault(cntlid); }

    /// <summary>The CNTLIDs this target gives out (default 1..0xFFEF). Several targets ("gateways") serving one
    /// subsystem NQN need disjoint ranges: a host refuses a second controller with a CNTLID it already has in the
    /// subsystem (kernel nvmet: attr_cntlid_min/max).</summary>
    public (ushort Min, ushort Max) CntlidRange
    {
        get { lock (_lock) return _cntlidRange; }
        init
        {
            if (value.Min < 1 || value.Max > MaxCntlid || value.Min > value.Max)
                throw new ArgumentException($"CNTLID range {value.Min}-{value.Max} must lie in 1-{MaxCntlid} with min <= max");
            _cntlidRange = value;
            _nextCntlid = value.Min;
        }
    }

    private readonly (ushort Min, ushort Max) _cntlidRange = (1, MaxCntlid);

    /// <summary>Allocates the lowest free CNTLID at or after the last one, within <see cref="CntlidRange"/> (dynamic
    /// controller model); null when the range is used up.</summary>
    internal Controller? CreateController(Func<ushort, Controller> factory)
    {
        lock (_lock)
        {
            var (min, max) = _cntlidRange;
            for (int i = 0; i <= max - min; i++)
            {
                ushort id = _nextCntlid;
                _nextCntlid = (ushort)(_nextCntlid >= max ? min : _nextCntlid + 1);
                if (_controllers.ContainsKey(id)) continue;
                var c = factory(id);
                _controllers.Add(id, c);
                return c;
            }
            return null;
        }
    }

    internal void RemoveController(Controller c)
    {
        lock (_lock)
        {
            if (_controllers.TryGetValue(c.Cntlid, out var existing) && existing == c) _controllers.Remove(c.Cntlid);
        }
    }

    // ---- identity ----

    private static string DeriveSerial(string nqn) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(nqn)).AsSpan(0, 10));

    [GeneratedRegex(@"^nqn\.\d{4}-\d{2}\.[A-Za-z0-9][A-Za-z0-9.-]*(:.+)?$")]
    private static partial Regex NqnPattern();

    /// <summary>Checks an NQN against NVMe base spec 4.7 (at most 223 bytes, "nqn.yyyy-mm.reverse-domain[:...]"
    /// or the UUID form). Returns an error message or null.</summary>
    public static string? ValidateNqn(string? nqn)
    {
        if (string.IsNullOrWhiteSpace(nqn)) return "NQN is empty";
        if (Encoding.UTF8.GetByteCount(nqn) > 223) return $"NQN '{nqn}' is longer than 223 bytes";
        if (nqn.StartsWith("nqn.2014-08.org.nvmexpress:uuid:", StringComparison.Ordinal))
            return Guid.TryParse(nqn["nqn.2014-08.org.nvmexpress:uuid:".Length..], out _) ? null : $"NQN '{nqn}' has a malformed UUID";
        if (!NqnPattern().IsMatch(nqn)) return $"NQN '{nqn}' is not of the form nqn.yyyy-mm.reverse.domain[:name]";
        return null;
    }
}
