using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Target.Configuration;
using Target.Storage;

namespace Target.Management;

/// <summary>
/// Live changes to a running target: subsystems, namespaces (hot-add, hot-remove, resize), allowed hosts.
/// Changes are serialised; each accepted one is applied to the NVMe model (hosts get the namespace-changed
/// event) and, when the target runs from a configuration file, written back to it atomically.
/// </summary>
public sealed partial class TargetManager
{
    private readonly SemaphoreSlim _gate = new(1, 1);
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
    }

    /// <summary>Where accepted changes are persisted; null when the target runs without a configuration file.</summary>
    public string? ConfigPath { get; }

    /// <summary>Where namespaces added or created at run time may keep their data: the target's start-up policy
    /// (TargetHost sets it); default the built-in defaults (no configured directories, no block devices).</summary>
    public StoragePolicy Storage { get; init; } = StoragePolicy.Create(null, null);

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

    public IReadOnlyList<ControllerInfo> ListControllers() =>
        _target.Controllers.OrderBy(c => c.Subsystem.Nqn, StringComparer.Ordinal).ThenBy(c => c.Cntlid)
            .Select(c => new ControllerInfo(c.Cntlid, c.Subsystem.Nqn, c.HostNqn, c.HostId, c.IsDiscovery, c.IoQueueCount,
                c.KeepAliveTimeoutMs, c.CreatedAt,
                c.Queues.Select(q => new QueueInfo(q.QueueId, q.Transport.PeerAddress, q.QueueSize, q.SqFlowControlDisabled)).ToList()))
            .ToList();

    // ------------------------------------------------------------------ subsystems

    public Task<SubsystemInfo> CreateSubsystemAsync(SubsystemConfig sc) => Change(() =>
    {
        sc.Namespaces ??= [];
        sc.AllowedHosts ??= [];
        var errors = ConfigValidator.ValidateSubsystem(sc);
        if (errors.Count > 0) throw new ManagementException(ManagementError.Invalid, string.Join("; ", errors));
        if (_target.FindSubsystem(sc.Nqn) != null) throw new ManagementException(ManagementError.Conflict, $"subsystem {sc.Nqn} already exists");
        CheckMemoryLimit(MemoryNamespaceLimit.SizeOf([sc]));
        Subsystem built;
        try { built = TargetHost.BuildSubsystem(sc, Storage); } // opens the namespaces' stores
        catch (StoreException e) { throw Refused(e); }
        try { _target.AddSubsystem(built); }
        catch (InvalidOperationException e)
        {
            foreach (var ns in built.Namespaces) ns.Store.Dispose();
            throw new ManagementException(ManagementError.Conflict, e.Message);
        }
        _config.Subsystems.Add(sc);
        _log.SubsystemCreated(sc.Nqn, sc.Namespaces.Count);
        return Task.FromResult(Describe(built));
    });

    public Task DeleteSubsystemAsync(string nqn) => Change(async () =>
    {
        var s = Find(nqn);
        _target.RemoveSubsystem(nqn); // destroys its controllers
        foreach (var ns in s.Namespaces) await s.RemoveNamespaceAsync(ns.Nsid, DrainTimeout).ConfigureAwait(false);
        _config.Subsystems.RemoveAll(x => x.Nqn == nqn);
        _log.SubsystemDeleted(nqn);
        return true;
    });

    // ------------------------------------------------------------------ namespaces

    /// <summary>Hot-add: opens the store and attaches the namespace; every controller of the subsystem gets the
    /// changed-namespace event. NSID 0 picks the lowest free one.</summary>
    public Task<NamespaceInfo> AddNamespaceAsync(string nqn, NamespaceConfig nc) => Change(() =>
    {
        var s = Find(nqn);
        if (nc.Nsid == 0)
            nc.Nsid = Enumerable.Range(1, (int)_target.Limits.MaxNamespaces).Select(i => (uint)i).First(i => s.GetNamespace(i) is null);
        var errors = ConfigValidator.ValidateNamespace(nc, $"namespace {nc.Nsid}", _target.Limits.MaxNamespaces);
        if (errors.Count > 0) throw new ManagementException(ManagementError.Invalid, string.Join("; ", errors));
        if (s.GetNamespace(nc.Nsid) != null) throw new ManagementException(ManagementError.Conflict, $"NSID {nc.Nsid} is already in use in {nqn}");
        // A fresh identity (persisted with the namespace): a host must not mistake it for one removed earlier.
        nc.Uuid ??= Guid.NewGuid();
        var ns = OpenStore(nqn, nc);
        try { s.AttachNamespace(ns); }
        catch (InvalidOperationException e)
        {
            ns.Store.Dispose();
            throw new ManagementException(ManagementError.Conflict, e.Message);
        }
        ConfigOf(nqn).Namespaces.Add(nc);
        _log.NamespaceAdded(ns.Nsid, nqn, ns.Store.Description, ns.BlockCount, ns.BlockSize);
        return Task.FromResult(Describe(s, ns));
    });

    /// <summary>Hot-remove: stop admitting, drain, detach from every controller with the event, release the store.</summary>
    public Task RemoveNamespaceAsync(string nqn, uint nsid) => Change(async () =>
    {
        var s = Find(nqn);
        if (s.GetNamespace(nsid) is null) throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {nqn}");
        bool drained = await s.RemoveNamespaceAsync(nsid, DrainTimeout).ConfigureAwait(false);
        ConfigOf(nqn).Namespaces.RemoveAll(n => n.Nsid == nsid);
        if (drained) _log.NamespaceRemoved(nsid, nqn);
        else _log.NamespaceRemovedWithStuckIo(nsid, nqn, DrainTimeout);
        return true;
    });

    /// <summary>Resize: grow any time; shrink only when forced. Hosts get the changed-namespace event.</summary>
    public Task<NamespaceInfo> ResizeNamespaceAsync(string nqn, uint nsid, string size, bool force) => Change(async () =>
    {
        var s = Find(nqn);
        var ns = s.GetNamespace(nsid) ?? throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {nqn}");
        if (!Sizes.TryParse(size, out long bytes))
            throw new ManagementException(ManagementError.Invalid, Sizes.IsZero(size) ? "size must be greater than zero" : $"size '{size}' is not a size (e.g. 2G, 512M, 1073741824)");
        if (bytes % ns.BlockSize != 0) throw new ManagementException(ManagementError.Invalid, $"size {bytes} is not a multiple of the block size {ns.BlockSize}");
        if (ns.Store is MemoryBlockStore) CheckMemoryLimit(bytes - ns.Store.Length);
        ulong before = ns.BlockCount;
        try { await s.ResizeNamespaceAsync(nsid, bytes, force, DrainTimeout).ConfigureAwait(false); }
        catch (InvalidOperationException e) { throw new ManagementException(ManagementError.Conflict, e.Message); }
        catch (StoreException e) { throw new ManagementException(ManagementError.Invalid, e.Message); }
        var nc = ConfigOf(nqn).Namespaces.FirstOrDefault(n => n.Nsid == nsid);
        if (nc != null) nc.Size = bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        _log.NamespaceResized(nsid, nqn, before, ns.BlockCount);
        return Describe(s, ns);
    });

    // ------------------------------------------------------------------ hosts

    public Task AddHostAsync(string nqn, string hostNqn) => Change(() =>
    {
        var s = Find(nqn);
        if (Subsystem.ValidateNqn(hostNqn) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        if (s.AllowedHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.Conflict, $"host {hostNqn} is already allowed on {nqn}");
        s.AllowHost(hostNqn);
        s.AllowAnyHost = false;
        var sc = ConfigOf(nqn);
        sc.AllowedHosts.Add(hostNqn);
        sc.AllowAnyHost = null;
        _log.HostAllowed(hostNqn, nqn);
        return Task.FromResult(true);
    });

    /// <summary>Removes a host from the allowed list (its existing controllers stay until they disconnect).
    /// Removing the last one makes the subsystem open to any host again.</summary>
    public Task RemoveHostAsync(string nqn, string hostNqn) => Change(() =>
    {
        var s = Find(nqn);
        if (!s.AllowedHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.NotFound, $"host {hostNqn} is not in the allowed list of {nqn}");
        s.DisallowHost(hostNqn);
        if (s.AllowedHosts.Count == 0) s.AllowAnyHost = true;
        ConfigOf(nqn).AllowedHosts.Remove(hostNqn);
        _log.HostRemoved(hostNqn, nqn);
        return Task.FromResult(true);
    });

    // ------------------------------------------------------------------ helpers

    private async Task<T> Change<T>(Func<Task<T>> change)
    {
        await _gate.WaitAsync().ConfigureAwait(false);
        try
        {
            T result;
            try { result = await change().ConfigureAwait(false); }
            catch (StoreException e) { throw new ManagementException(ManagementError.Invalid, e.Message); }
            if (ConfigPath != null && _fileConfig != null)
            {
                _fileConfig.Subsystems = _config.Subsystems;
                ConfigStore.Save(ConfigPath, _fileConfig);
            }
            return result;
        }
        finally { _gate.Release(); }
    }

    private Subsystem Find(string nqn) =>
        _target.FindSubsystem(nqn) is { Kind: SubsystemKind.Nvm } s ? s
            : throw new ManagementException(ManagementError.NotFound, $"subsystem {nqn} does not exist");

    private SubsystemConfig ConfigOf(string nqn) => _config.Subsystems.First(s => s.Nqn == nqn);

    private Namespace OpenStore(string nqn, NamespaceConfig nc)
    {
        CheckMemoryLimit(MemoryNamespaceLimit.SizeOf(nc));
        try { return TargetHost.OpenNamespace(nqn, nc, Storage); }
        catch (StoreException e) { throw Refused(e); }
    }

    /// <summary>Refuses (400) a change that would take the memory namespaces past their total limit. Changes are
    /// serialised, so the sum cannot move between this check and the change.</summary>
    private void CheckMemoryLimit(long adding)
    {
        if (MemoryNamespaceLimit.Check(_target.Limits.MemoryNamespaceLimit, _target.MemoryNamespaceBytes, adding) is string tooMuch)
            throw new ManagementException(ManagementError.Invalid, tooMuch);
    }

    /// <summary>A store that could not be opened: 403 when the storage policy refused it, 400 otherwise.</summary>
    private static ManagementException Refused(StoreException e) =>
        new(e is StoragePolicyException ? ManagementError.Forbidden : ManagementError.Invalid, e.Message);

    private static SubsystemInfo Describe(Subsystem s) => new(s.Nqn, s.Serial, s.Model, s.FirmwareRevision, s.AllowAnyHost,
        [.. s.AllowedHosts.Order(StringComparer.Ordinal)], s.Namespaces.OrderBy(n => n.Nsid).Select(n => Describe(s, n)).ToList(), s.Controllers.Count);

    private static NamespaceInfo Describe(Subsystem s, Namespace ns)
    {
        string backend = ns.Store switch { MemoryBlockStore => "memory", FileBlockStore f when f.Description.StartsWith("block", StringComparison.Ordinal) => "block", _ => "file" };
        return new NamespaceInfo(ns.Nsid, backend, (ns.Store as FileBlockStore)?.Path, (long)ns.BlockCount << ns.BlockShift, ns.BlockSize, ns.BlockCount,
            ns.Ids.Uuid, Convert.ToHexStringLower(ns.Ids.Nguid), Convert.ToHexStringLower(ns.Ids.Eui64), ns.InFlight);
    }
}
