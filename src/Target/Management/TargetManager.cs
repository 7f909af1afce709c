using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Auth;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Target.Configuration;
using Target.Storage;

namespace Target.Management;

/// <summary>
/// Live changes to a running target: subsystems, namespaces (hot-add, hot-remove, resize), allowed hosts.
/// A change is live only once it is saved: when the target runs from a configuration file, each change is
/// written to it (atomically) at the last point where it can still be undone, and if writing fails nothing is
/// changed and the caller is told so — the answer always matches what is live. Changes to one subsystem are
/// serialised; changes to different subsystems do not wait for each other (a slow hot-remove holds only its own
/// subsystem).
/// </summary>
public sealed partial class TargetManager
{
    private readonly SemaphoreSlim _structure = new(1, 1); // creating and deleting subsystems
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _subsystemGates = new(StringComparer.Ordinal);
    private readonly Lock _saveLock = new();               // the live configuration and its file
    private readonly NvmeTarget _target;
    private readonly TargetConfig _config;
    private readonly ILogger _log;

    private readonly TargetConfig? _fileConfig;

    public TargetManager(NvmeTarget target, TargetConfig config, string? configPath, ILogger log)
    {
        _target = target;
        _config = config;
        ConfigPath = configPath;
        _log = log;
        // What is written back is the file as the operator wrote it, with only the subsystems replaced by the
        // live ones: --listen, --advertise or limit options given for this run never end up in the file.
        if (configPath != null)
            _fileConfig = System.Text.Json.JsonSerializer.Deserialize<TargetConfig>(File.ReadAllText(configPath), TargetConfig.Json);
        foreach (var s in target.Subsystems)
        {
            HookInBandAttachment(s);
            foreach (var ns in s.Namespaces) HookExternalResize(s.Nqn, ns);
        }
    }

    /// <summary>Where accepted changes are persisted; null when the target runs without a configuration file.</summary>
    public string? ConfigPath { get; }

    /// <summary>Where namespaces added or created at run time may keep their data: the target's start-up policy
    /// (TargetHost sets it); default the built-in defaults (no configured directories, no block devices).</summary>
    public StoragePolicy Storage { get; init; } = StoragePolicy.Create(null, null);

    /// <summary>Automatic failover of ANA groups between gateways (null: none, as in tests that build a manager alone).</summary>
    public AnaFailover? Failover { get; init; }

    /// <summary>How long a hot-remove waits for in-flight I/O before detaching anyway.</summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(10);

    // ------------------------------------------------------------------ queries

    public IReadOnlyList<SubsystemInfo> ListSubsystems() =>
        _target.Subsystems.OrderBy(s => s.Nqn, StringComparer.Ordinal).Select(Describe).ToList();

    public SubsystemInfo GetSubsystem(string nqn) => Describe(Find(nqn));

    public IReadOnlyList<NamespaceInfo> ListNamespaces(string nqn) => Describe(Find(nqn)).Namespaces;

    public NamespaceInfo GetNamespace(string nqn, uint nsid)
    {
        var s = Find(nqn);
        var ns = s.GetNamespace(nsid) ?? throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {nqn}");
        return Describe(s, ns);
    }

    public IReadOnlyList<string> ListHosts(string nqn) => [.. Find(nqn).AllowedHosts.Order(StringComparer.Ordinal)];

    /// <summary>The allowed hosts with what is set of their DH-HMAC-CHAP settings (never the secrets).</summary>
    public IReadOnlyList<HostEntry> ListHostEntries(string nqn)
    {
        var s = Find(nqn);
        return [.. s.AllowedHosts.Order(StringComparer.Ordinal).Select(h => DescribeHost(h, s.GetHostAuthentication(h)))];
    }

    internal static HostEntry DescribeHost(string hostNqn, Nvme.Core.Auth.HostAuthentication? a) => new()
    {
        HostNqn = hostNqn,
        DhchapSecretSet = a != null,
        DhchapCtrlSecretSet = a?.ControllerSecret != null,
        DhchapHash = a?.Hash?.Name(),
        DhchapDhgroup = a?.DhGroup is { } g ? Nvme.Core.Auth.FfdheGroup.Name(g) : null,
    };

    private static HostAuthConfig? CheckAuth(HostAuthConfig? auth)
    {
        if (auth is null || auth.IsEmpty) return null;
        var problems = auth.Validate();
        if (problems.Count > 0) throw new ManagementException(ManagementError.Invalid, string.Join("; ", problems));
        return auth;
    }

    public IReadOnlyList<ControllerInfo> ListControllers() =>
        _target.Controllers.OrderBy(c => c.Subsystem.Nqn, StringComparer.Ordinal).ThenBy(c => c.Cntlid)
            .Select(c => new ControllerInfo(c.Cntlid, c.Subsystem.Nqn, c.HostNqn, c.HostId, c.IsDiscovery, c.IoQueueCount,
                c.KeepAliveTimeoutMs, c.CreatedAt,
                c.Queues.Select(q => new QueueInfo(q.QueueId, q.Transport.PeerAddress, q.QueueSize, q.SqFlowControlDisabled)).ToList()))
            .ToList();

    // ------------------------------------------------------------------ subsystems

    public async Task<SubsystemInfo> CreateSubsystemAsync(SubsystemConfig sc)
    {
        await _structure.WaitAsync().ConfigureAwait(false);
        try
        {
            sc.Namespaces ??= [];
            sc.AllowedHosts ??= [];
            sc.AllowAnyHost ??= false; // explicit in the file: a created subsystem admits only its listed hosts
            var errors = ConfigValidator.ValidateSubsystem(sc, _target.Ports.Select(p => p.PortId).ToList());
            if (errors.Count > 0) throw new ManagementException(ManagementError.Invalid, string.Join("; ", errors));
            if (_target.FindSubsystem(sc.Nqn) != null) throw new ManagementException(ManagementError.Conflict, $"subsystem {sc.Nqn} already exists");
            using var memory = ReserveMemory(MemoryNamespaceLimit.SizeOf([sc]));
            var built = Open(() => TargetHost.BuildSubsystem(sc, Storage)); // opens the namespaces' stores
            try
            {
                if (CheckHostsAllowed(built) is string notAllowed) throw new ManagementException(ManagementError.Invalid, notAllowed);
                Persist(() => _config.Subsystems.Add(sc), () => _config.Subsystems.Remove(sc));
            }
            catch
            {
                foreach (var ns in built.Namespaces) Discard(ns);
                throw;
            }
            HookInBandAttachment(built);
            foreach (var ns in built.Namespaces) HookExternalResize(built.Nqn, ns);
            if (sc.Failover == true)
            {
                if (Failover is null) throw new ManagementException(ManagementError.Invalid, "this target runs without automatic failover");
                Failover.Track(sc.Nqn);
            }
            _target.AddSubsystem(built); // cannot collide: creation is serialised and the NQN was free
            _log.SubsystemCreated(sc.Nqn, sc.Namespaces.Count);
            return Describe(built);
        }
        finally { _structure.Release(); }
    }

    public async Task DeleteSubsystemAsync(string nqn)
    {
        await _structure.WaitAsync().ConfigureAwait(false);
        try
        {
            var gate = Gate(nqn);
            await gate.WaitAsync().ConfigureAwait(false);
            try
            {
                var s = Find(nqn);
                var sc = ConfigOf(nqn);
                int index = 0;
                Persist(() => { index = _config.Subsystems.IndexOf(sc); _config.Subsystems.Remove(sc); }, () => _config.Subsystems.Insert(index, sc));
                _target.RemoveSubsystem(nqn); // destroys its controllers
                Failover?.Untrack(nqn);
                foreach (var ns in s.Namespaces) await s.RemoveNamespaceAsync(ns.Nsid, DrainTimeout).ConfigureAwait(false);
                _log.SubsystemDeleted(nqn);
            }
            finally { gate.Release(); }
        }
        finally { _structure.Release(); }
    }

    // ------------------------------------------------------------------ namespaces

    /// <summary>Hot-add: opens the store and attaches the namespace; every controller of the subsystem gets the
    /// changed-namespace event. NSID 0 picks the lowest free one.</summary>
    public Task<NamespaceInfo> AddNamespaceAsync(string nqn, NamespaceConfig nc) => OnSubsystem(nqn, s =>
    {
        if (nc.Nsid == 0)
            nc.Nsid = Enumerable.Range(1, (int)_target.Limits.MaxNamespaces).Select(i => (uint)i).FirstOrDefault(i => s.GetNamespace(i) is null);
        if (nc.Nsid == 0) throw new ManagementException(ManagementError.Conflict, $"{nqn} has no free NSID (it holds {_target.Limits.MaxNamespaces} namespaces)");
        var errors = ConfigValidator.ValidateNamespace(nc, $"namespace {nc.Nsid}", _target.Limits.MaxNamespaces);
        if (errors.Count > 0) throw new ManagementException(ManagementError.Invalid, string.Join("; ", errors));
        if (s.GetNamespace(nc.Nsid) != null) throw new ManagementException(ManagementError.Conflict, $"NSID {nc.Nsid} is already in use in {nqn}");
        if (s.CheckMaskHosts(NamespaceVisibility.Auto, TargetHost.VisibilityOf(nc)) is string notAllowed)
            throw new ManagementException(ManagementError.Invalid, notAllowed);
        // A fresh identity (persisted with the namespace): a host must not mistake it for one removed earlier.
        nc.Uuid ??= Guid.NewGuid();
        using var memory = ReserveMemory(MemoryNamespaceLimit.SizeOf(nc));
        var ns = Open(() => TargetHost.OpenNamespace(nqn, nc, Storage, Failover?.IsFailover(nqn) == true));
        try
        {
            var namespaces = ConfigOf(nqn).Namespaces;
            Persist(() => namespaces.Add(nc), () => namespaces.Remove(nc));
        }
        catch
        {
            Discard(ns); // not saved: not live, and a file made for it is gone again
            throw;
        }
        s.AttachNamespace(ns); // cannot collide: changes to the subsystem are serialised
        HookExternalResize(nqn, ns);
        _log.NamespaceAdded(ns.Nsid, nqn, ns.Store.Description, ns.BlockCount, ns.BlockSize);
        return Task.FromResult(Describe(s, ns));
    });

    /// <summary>Hot-remove: stop admitting, drain, detach from every controller with the event, release the store.</summary>
    public Task RemoveNamespaceAsync(string nqn, uint nsid) => OnSubsystem(nqn, async s =>
    {
        if (s.GetNamespace(nsid) is null) throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {nqn}");
        var namespaces = ConfigOf(nqn).Namespaces;
        var nc = namespaces.FirstOrDefault(n => n.Nsid == nsid);
        int index = nc is null ? -1 : namespaces.IndexOf(nc);
        Persist(() => { if (nc != null) namespaces.Remove(nc); }, () => { if (nc != null) namespaces.Insert(index, nc); });
        bool drained = await s.RemoveNamespaceAsync(nsid, DrainTimeout).ConfigureAwait(false);
        if (drained) _log.NamespaceRemoved(nsid, nqn);
        else _log.NamespaceRemovedWithStuckIo(nsid, nqn, DrainTimeout);
        return true;
    });

    /// <summary>Resize: grow any time; shrink only when forced. Hosts get the changed-namespace event.</summary>
    public Task<NamespaceInfo> ResizeNamespaceAsync(string nqn, uint nsid, string size, bool force) => OnSubsystem(nqn, async s =>
    {
        var ns = s.GetNamespace(nsid) ?? throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {nqn}");
        if (!Sizes.TryParse(size, out long bytes))
            throw new ManagementException(ManagementError.Invalid, Sizes.IsZero(size) ? "size must be greater than zero" : $"size '{size}' is not a size (e.g. 2G, 512M, 1073741824)");
        if (bytes % ns.BlockSize != 0) throw new ManagementException(ManagementError.Invalid, $"size {bytes} is not a multiple of the block size {ns.BlockSize}");
        using var memory = ReserveMemory(ns.Store is MemoryBlockStore ? bytes - ns.Store.Length : 0);
        ulong before = ns.BlockCount;
        var nc = ConfigOf(nqn).Namespaces.FirstOrDefault(n => n.Nsid == nsid);
        string? oldSize = nc?.Size;
        string newSize = bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            // Saved at the core's commit point: the space exists (grow) or nothing uses the tail any more (shrink),
            // and a failed save leaves the namespace as it was.
            await s.ResizeNamespaceAsync(nsid, bytes, force, DrainTimeout,
                () => Persist(() => { if (nc != null) nc.Size = newSize; }, () => { if (nc != null) nc.Size = oldSize; })).ConfigureAwait(false);
        }
        catch (InvalidOperationException e) { throw new ManagementException(ManagementError.Conflict, e.Message); }
        catch (StoreException e) { throw new ManagementException(ManagementError.Invalid, e.Message); }
        _log.NamespaceResized(nsid, nqn, before, ns.BlockCount);
        return Describe(s, ns);
    });

    // ------------------------------------------------------------------ hosts

    /// <summary>Allows a host NQN. A subsystem that admits any host keeps doing so (the list and allowAnyHost are
    /// separate, as in kernel nvmet and SPDK); <see cref="SetAllowAnyHostAsync"/> closes it.</summary>
    public Task AddHostAsync(string nqn, string hostNqn, HostAuthConfig? auth = null) => OnSubsystem(nqn, s =>
    {
        if (Subsystem.ValidateNqn(hostNqn) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        auth = CheckAuth(auth);
        if (s.AllowedHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.Conflict, $"host {hostNqn} is already allowed on {nqn}");
        var hosts = ConfigOf(nqn).AllowedHosts;
        Persist(() => { hosts.Add(hostNqn); if (auth != null) hosts.Auth[hostNqn] = auth; }, () => hosts.Remove(hostNqn));
        s.AllowHost(hostNqn, auth?.ToCore());
        _log.HostAllowed(hostNqn, nqn);
        return Task.FromResult(true);
    });

    /// <summary>Removes a host from the allowed list and disconnects its controllers (unless the subsystem admits
    /// any host). Removing the last one leaves the subsystem closed to every host.</summary>
    public Task<int> RemoveHostAsync(string nqn, string hostNqn) => OnSubsystem(nqn, s =>
    {
        if (!s.AllowedHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.NotFound, $"host {hostNqn} is not in the allowed list of {nqn}");
        var hosts = ConfigOf(nqn).AllowedHosts;
        int index = hosts.IndexOf(hostNqn);
        var auth = hosts.Auth.GetValueOrDefault(hostNqn);
        Persist(() => hosts.Remove(hostNqn), () =>
        {
            hosts.Insert(Math.Max(0, index), hostNqn);
            if (auth != null) hosts.Auth[hostNqn] = auth;
        });
        int disconnected = s.DisallowHost(hostNqn);
        _log.HostRemoved(hostNqn, nqn, disconnected);
        if (!s.AllowAnyHost && s.AllowedHosts.Count == 0) _log.SubsystemClosed(nqn);
        return Task.FromResult(disconnected);
    });

    /// <summary>Sets, replaces (key rotation) or, with null/empty, removes an allowed host's DH-HMAC-CHAP settings.
    /// New controllers use them at once; established ones keep working and pick them up when the host
    /// re-authenticates.</summary>
    public Task SetHostAuthAsync(string nqn, string hostNqn, HostAuthConfig? auth) => OnSubsystem(nqn, s =>
    {
        auth = CheckAuth(auth);
        if (!s.AllowedHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.NotFound, $"host {hostNqn} is not in the allowed list of {nqn}");
        var hosts = ConfigOf(nqn).AllowedHosts;
        var before = hosts.Auth.GetValueOrDefault(hostNqn);
        void Put(HostAuthConfig? a) { if (a is null) hosts.Auth.Remove(hostNqn); else hosts.Auth[hostNqn] = a; }
        Persist(() => Put(auth), () => Put(before));
        s.SetHostAuthentication(hostNqn, auth?.ToCore());
        _log.HostAuthChanged(hostNqn, nqn, auth is null ? "none" : auth.DhchapCtrlSecret is null ? "unidirectional" : "bidirectional");
        return Task.FromResult(true);
    });

    /// <summary>Opens a subsystem to any host NQN, or closes it to all but its allowed hosts (disconnecting the
    /// controllers of every other host). Returns the controllers disconnected.</summary>
    public Task<int> SetAllowAnyHostAsync(string nqn, bool allow) => OnSubsystem(nqn, s =>
    {
        var sc = ConfigOf(nqn);
        bool? old = sc.AllowAnyHost;
        Persist(() => sc.AllowAnyHost = allow, () => sc.AllowAnyHost = old);
        int disconnected = s.SetAllowAnyHost(allow);
        _log.AnyHostChanged(nqn, allow, disconnected);
        return Task.FromResult(disconnected);
    });

    /// <summary>Binds a subsystem to ports (null: every port), as the kernel's ports/N/subsystems links: Connect and
    /// the discovery log see it only there; controllers whose admin queue came in on a port dropped are destroyed.</summary>
    public Task<int> SetPortsAsync(string nqn, IReadOnlyList<ushort>? ports) => OnSubsystem(nqn, s =>
    {
        var known = _target.Ports.Select(p => p.PortId).ToHashSet();
        foreach (var p in ports ?? [])
            if (!known.Contains(p)) throw new ManagementException(ManagementError.Invalid, $"port {p} does not exist (the target's ports: {string.Join(", ", known.Order())})");
        if (ports != null && ports.Distinct().Count() != ports.Count) throw new ManagementException(ManagementError.Invalid, "a port is listed twice");
        var sc = ConfigOf(nqn);
        var old = sc.Ports;
        Persist(() => sc.Ports = ports is null ? null : [.. ports.Order()], () => sc.Ports = old);
        int before = s.Controllers.Count;
        s.PortIds = ports is null ? null : new HashSet<ushort>(ports);
        int disconnected = Math.Max(0, before - s.Controllers.Count);
        _log.PortsChanged(nqn, ports is null ? "every port" : ports.Count == 0 ? "no port" : "ports " + string.Join(", ", ports.Order()), disconnected);
        return Task.FromResult(disconnected);
    });

    // ------------------------------------------------------------------ helpers

    /// <summary>Runs a change on one subsystem while no other change on it runs.</summary>
    private async Task<T> OnSubsystem<T>(string nqn, Func<Subsystem, Task<T>> change)
    {
        var gate = Gate(nqn);
        await gate.WaitAsync().ConfigureAwait(false);
        try
        {
            var s = Find(nqn);
            try { return await change(s).ConfigureAwait(false); }
            catch (StoreException e) { throw Refused(e); }
        }
        finally { gate.Release(); }
    }

    private SemaphoreSlim Gate(string nqn) => _subsystemGates.GetOrAdd(nqn, static _ => new SemaphoreSlim(1, 1));

    /// <summary>
    /// Applies <paramref name="apply"/> to the live configuration and writes the file; if writing fails,
    /// <paramref name="undo"/> restores the configuration and the change is refused (<see cref="ManagementError.NotSaved"/>).
    /// Callers change the running model only after this returns.
    /// </summary>
    private void Persist(Action apply, Action undo)
    {
        lock (_saveLock)
        {
            apply();
            if (ConfigPath is null || _fileConfig is null) return;
            try
            {
                _fileConfig.Subsystems = _config.Subsystems;
                ConfigStore.Save(ConfigPath, _fileConfig);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                undo();
                _log.ConfigSaveFailed(ConfigPath, e.Message);
                throw new ManagementException(ManagementError.NotSaved,
                    $"nothing was changed: the configuration file {ConfigPath} could not be written ({e.Message}); a change is made live only once it is saved");
            }
        }
    }

    private Subsystem Find(string nqn) =>
        _target.FindSubsystem(nqn) is { Kind: SubsystemKind.Nvm } s ? s
            : throw new ManagementException(ManagementError.NotFound, $"subsystem {nqn} does not exist");

    private SubsystemConfig ConfigOf(string nqn)
    {
        lock (_saveLock) return _config.Subsystems.First(s => s.Nqn == nqn);
    }

    private static T Open<T>(Func<T> open)
    {
        try { return open(); }
        catch (StoreException e) { throw Refused(e); }
    }

    private static void Discard(Namespace ns)
    {
        if (ns.Store is FileBlockStore f) f.DisposeAndDeleteIfCreated();
        else ns.Store.Dispose();
    }

    private static ManagementException Refused(StoreException e) =>
        new(e is StoragePolicyException ? ManagementError.Forbidden : ManagementError.Invalid, e.Message);

    private readonly Lock _memoryLock = new();
    private long _memoryReserved;

    /// <summary>Checks the memory namespace limit and holds <paramref name="bytes"/> of it until disposed (after the
    /// namespace is attached and counted): changes to different subsystems run concurrently, and two of them must
    /// not both fit into the same remaining room.</summary>
    private IDisposable? ReserveMemory(long bytes)
    {
        if (bytes <= 0) return null;
        lock (_memoryLock)
        {
            if (MemoryNamespaceLimit.Check(_target.Limits.MemoryNamespaceLimit, _target.MemoryNamespaceBytes + _memoryReserved, bytes) is string tooMuch)
                throw new ManagementException(ManagementError.Invalid, tooMuch);
            _memoryReserved += bytes;
        }
        return new Reservation(this, bytes);
    }

    private sealed class Reservation(TargetManager m, long bytes) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            lock (m._memoryLock) m._memoryReserved -= bytes;
        }
    }

    private static SubsystemInfo Describe(Subsystem s) => new(s.Nqn, s.Serial, s.Model, s.FirmwareRevision, s.AllowAnyHost,
        [.. s.AllowedHosts.Order(StringComparer.Ordinal)], s.Namespaces.OrderBy(n => n.Nsid).Select(n => Describe(s, n)).ToList(), s.Controllers.Count,
        s.PortIds is { } ports ? [.. ports.Order()] : null, [.. s.NamespaceAttachHosts]);

    private static NamespaceInfo Describe(Subsystem s, Namespace ns)
    {
        string backend = ns.Store switch
        {
            MemoryBlockStore => "memory", Nvme.Core.Storage.Rbd.RbdBlockStore => "rbd",
            FileBlockStore f when f.Description.StartsWith("block", StringComparison.Ordinal) => "block", _ => "file",
        };
        string? path = ns.Store switch { FileBlockStore f => f.Path, Nvme.Core.Storage.Rbd.RbdBlockStore r => $"{r.Pool}/{r.Image}", _ => null };
        return new NamespaceInfo(ns.Nsid, backend, path, (long)ns.BlockCount << ns.BlockShift, ns.BlockSize, ns.BlockCount,
            ns.Ids.Uuid, Convert.ToHexStringLower(ns.Ids.Nguid), Convert.ToHexStringLower(ns.Ids.Eui64), ns.InFlight,
            ns.Visibility.Restricted ? NamespaceConfig.VisibilityRestricted : NamespaceConfig.VisibilityAuto, [.. ns.Visibility.Hosts],
            [.. ns.Visibility.Hosts.Where(h => !s.IsHostAllowed(h))], ns.WriteProtected, ns.AnaGroupId);
    }
}
