using System.Collections.Immutable;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;

namespace Nvme.Core;

/// <summary>
/// The root of the NVMe model: subsystems (including the well-known discovery subsystem), ports, limits, and
/// the keep-alive watchdog. Transports create one <see cref="FabricQueue"/> per connection through it.
/// </summary>
public sealed class NvmeTarget : IDisposable
{
    private readonly Lock _lock = new();
    private ImmutableDictionary<string, Subsystem> _subsystems = ImmutableDictionary<string, Subsystem>.Empty.WithComparers(StringComparer.Ordinal);
    private ImmutableList<Port> _ports = ImmutableList<Port>.Empty;
    private readonly Timer _keepAliveTimer;
    private long _discoveryGeneration = 1;

    public NvmeTarget(TargetLimits? limits = null, ILoggerFactory? loggerFactory = null, TimeSpan? keepAliveScanInterval = null)
    {
        Limits = limits ?? new TargetLimits();
        DataBuffers = new DataBufferPool(Limits);
        Log = (loggerFactory ?? NullLoggerFactory.Instance).CreateLogger("Nvme.Core");
        Discovery = new Subsystem(WellKnown.DiscoveryNqn, SubsystemKind.Discovery, serial: "discovery", model: "NvmeTcpTarget discovery");
        var interval = keepAliveScanInterval ?? TimeSpan.FromMilliseconds(250);
        _keepAliveTimer = new Timer(_ => CheckKeepAlives(), null, interval, interval);
        Faults = new Faults.FaultInjector(this);
        Metrics = new CoreMetrics(this);
    }

    /// <summary>Injected I/O faults (a test lab's tool); none by default, and then they cost one null check per command.</summary>
    public Faults.FaultInjector Faults { get; }

    /// <summary>The core's meter ("NvmeTcpTarget.Core") and counters not held by namespaces; disposed with the target.</summary>
    public CoreMetrics Metrics { get; }

    /// <summary>Fraction (0..1) of I/O commands that get a trace Activity when a tracer listens (default 0: none).
    /// Admin and fabrics commands always get one then.</summary>
    public double TraceIoSampleRate { get; set; }

    public TargetLimits Limits { get; }

    /// <summary>The budgeted pool of large data buffers, shared by every queue.</summary>
    public DataBufferPool DataBuffers { get; }
    public DateTimeOffset StartedAt { get; } = DateTimeOffset.UtcNow;
    internal ILogger Log { get; }
    public Subsystem Discovery { get; }

    public IReadOnlyCollection<Subsystem> Subsystems => Volatile.Read(ref _subsystems).Values.ToArray();
    public IReadOnlyList<Port> Ports => Volatile.Read(ref _ports);

    /// <summary>What the memory namespaces of every subsystem promise together: the sum of their sizes (see
    /// <see cref="TargetLimits.MemoryNamespaceLimit"/>).</summary>
    public long MemoryNamespaceBytes
    {
        get
        {
            long sum = 0;
            foreach (var s in Volatile.Read(ref _subsystems).Values)
                foreach (var ns in s.Namespaces)
                    if (ns.Store is Storage.MemoryBlockStore m) sum += m.Length;
            return sum;
        }
    }

    /// <summary>Discovery log generation counter; bumped whenever what the log would list changes.</summary>
    public ulong DiscoveryGeneration => (ulong)Interlocked.Read(ref _discoveryGeneration);

    /// <summary>Raised after a controller is destroyed (tests and metrics watch this).</summary>
    public event Action<Controller>? ControllerDestroyed;
    internal void OnControllerDestroyed(Controller c) => ControllerDestroyed?.Invoke(c);

    public Subsystem? FindSubsystem(string nqn) =>
        nqn == WellKnown.DiscoveryNqn ? Discovery : Volatile.Read(ref _subsystems).GetValueOrDefault(nqn);

    public void AddSubsystem(Subsystem subsystem)
    {
        if (subsystem.Kind != SubsystemKind.Nvm || subsystem.Nqn == WellKnown.DiscoveryNqn)
            throw new ArgumentException("only NVM subsystems can be added; the discovery subsystem is built in");
        lock (_lock)
        {
            if (_subsystems.ContainsKey(subsystem.Nqn)) throw new InvalidOperationException($"subsystem {subsystem.Nqn} already exists");
            _subsystems = _subsystems.Add(subsystem.Nqn, subsystem);
        }
        subsystem.Changed += _ => BumpDiscoveryGeneration();
        BumpDiscoveryGeneration();
    }

    /// <summary>Removes a subsystem, destroying its controllers.</summary>
    public Subsystem? RemoveSubsystem(string nqn)
    {
        Subsystem? s;
        lock (_lock)
        {
            if (!_subsystems.TryGetValue(nqn, out s)) return null;
            _subsystems = _subsystems.Remove(nqn);
        }
        foreach (var c in s.Controllers) c.Destroy("subsystem removed");
        BumpDiscoveryGeneration();
        return s;
    }

    /// <summary>Ports of other gateways listed in the discovery log (see <see cref="PeerPort"/>).</summary>
    public IReadOnlyList<PeerPort> PeerPorts => Volatile.Read(ref _peerPorts);

    private IReadOnlyList<PeerPort> _peerPorts = [];

    /// <summary>Replaces the peer ports; a peer's port id must not be one of this target's.</summary>
    public void SetPeerPorts(IEnumerable<PeerPort> peers)
    {
        var list = peers.ToArray();
        lock (_lock)
        {
            if (list.FirstOrDefault(p => _ports.Any(l => l.PortId == p.PortId)) is { } clash)
                throw new InvalidOperationException($"peer port id {clash.PortId} is a port id of this target");
            Volatile.Write(ref _peerPorts, list);
        }
        BumpDiscoveryGeneration();
    }

    public void AddPort(Port port)
    {
        lock (_lock)
        {
            if (_ports.Any(p => p.PortId == port.PortId)) throw new InvalidOperationException($"port id {port.PortId} already exists");
            _ports = _ports.Add(port);
        }
        BumpDiscoveryGeneration();
    }

    private void BumpDiscoveryGeneration() => Interlocked.Increment(ref _discoveryGeneration);

    /// <summary>Every live controller across all subsystems (discovery included).</summary>
    public IReadOnlyList<Controller> Controllers =>
        [.. Discovery.Controllers, .. Volatile.Read(ref _subsystems).Values.SelectMany(s => s.Controllers)];

    // ---- hosts ----

    private readonly Lock _hostsLock = new();
    private readonly Dictionary<string, HostAccount> _hosts = new(StringComparer.Ordinal);

    /// <summary>The account of a host NQN that holds at least one controller, or null.</summary>
    public HostAccount? FindHost(string hostNqn) { lock (_hostsLock) return _hosts.GetValueOrDefault(hostNqn); }

    /// <summary>Counts a new controller for <paramref name="hostNqn"/>; null when the host holds
    /// <see cref="TargetLimits.MaxControllersPerHost"/> already.</summary>
    internal HostAccount? TryAddHostController(string hostNqn)
    {
        lock (_hostsLock)
        {
            if (!_hosts.TryGetValue(hostNqn, out var account)) _hosts.Add(hostNqn, account = new HostAccount(hostNqn));
            if (account.ControllerCount >= Limits.MaxControllersPerHost) return null;
            account.ControllerCount++;
            return account;
        }
    }

    /// <summary>A controller of the host is gone. The last one drops the account (host NQNs cost a peer nothing to
    /// invent, so none is kept without a controller); buffers still attached to a command of a destroyed controller
    /// (a store that has not returned) go back to the old account object.</summary>
    internal void ReleaseHostController(HostAccount account)
    {
        lock (_hostsLock)
        {
            if (--account.ControllerCount == 0 && _hosts.TryGetValue(account.HostNqn, out var current) && current == account)
                _hosts.Remove(account.HostNqn);
        }
    }

    private int _queueCount;

    /// <summary>Transport queues (connections) open right now, connected to a controller or not.</summary>
    public int QueueCount => Volatile.Read(ref _queueCount);

    /// <summary>Creates the core side of a new transport queue (one per connection); <see cref="FabricQueue.Close"/> ends it.</summary>
    public FabricQueue CreateQueue(IQueueTransport transport)
    {
        Interlocked.Increment(ref _queueCount);
        return new FabricQueue(this, transport);
    }

    internal void OnQueueClosed() => Interlocked.Decrement(ref _queueCount);

    /// <summary>Destroys controllers whose keep-alive timeout passed without any command.</summary>
    public void CheckKeepAlives()
    {
        long now = Environment.TickCount64;
        long authTimeout = (long)Limits.AuthenticationTimeout.TotalMilliseconds;
        foreach (var c in Controllers)
        {
            if (c.RequiresAuthentication)
                foreach (var q in c.Queues)
                    if (q.Auth?.Expire(now, authTimeout) is string why)
                        q.Transport.Terminate($"DH-HMAC-CHAP: {why} (queue {q.QueueId} of controller {c.Cntlid})");
            if (c.KeepAliveExpired(now))
            {
                Log.KeepAliveExpired(c.Cntlid, c.Subsystem.Nqn, c.HostNqn, c.KeepAliveTimeoutMs);
                Interlocked.Increment(ref Metrics.KeepAliveExpiries);
                c.Destroy("keep-alive timeout");
            }
        }
    }

    public void Dispose()
    {
        _keepAliveTimer.Dispose();
        foreach (var c in Controllers) c.Destroy("target shutting down");
        Metrics.Dispose();
    }
}

internal static partial class CoreLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "Created {Kind} controller {Cntlid} on {SubNqn} for host {HostNqn} at {Peer} (KATO {KatoMs} ms)")]
    public static partial void ControllerCreated(this ILogger log, string kind, ushort cntlid, string subNqn, string hostNqn, string peer, uint katoMs);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "Destroyed controller {Cntlid} on {SubNqn} for host {HostNqn}: {Reason}")]
    public static partial void ControllerDestroyed(this ILogger log, ushort cntlid, string subNqn, string hostNqn, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Warning,
        Message = "Keep-alive timeout: controller {Cntlid} on {SubNqn} for host {HostNqn} sent nothing for {KatoMs} ms")]
    public static partial void KeepAliveExpired(this ILogger log, ushort cntlid, string subNqn, string hostNqn, uint katoMs);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "Rejected connect from {HostNqn} at {Peer} to {SubNqn}: {Reason}")]
    public static partial void ConnectRejected(this ILogger log, string hostNqn, string peer, string subNqn, string reason);

    [LoggerMessage(EventId = 104, Level = LogLevel.Error, Message = "I/O error on namespace {Nsid} ({Store}), answered {Status}: {Error}")]
    public static partial void StoreError(this ILogger log, uint nsid, string store, string status, string error);

    [LoggerMessage(EventId = 106, Level = LogLevel.Warning,
        Message = "DH-HMAC-CHAP failed for host {HostNqn} at {Peer} on {SubNqn} (controller {Cntlid}, queue {Qid}): {Reason}")]
    public static partial void AuthenticationFailed(this ILogger log, string hostNqn, string peer, string subNqn, ushort cntlid, ushort qid, string reason);

    [LoggerMessage(EventId = 107, Level = LogLevel.Information,
        Message = "DH-HMAC-CHAP authenticated host {HostNqn} at {Peer} on {SubNqn} (controller {Cntlid}, queue {Qid}, {Hash}, DH group {DhGroup}, {Direction})")]
    public static partial void AuthenticationSucceeded(this ILogger log, string hostNqn, string peer, string subNqn, ushort cntlid, ushort qid, string hash, string dhGroup, string direction);

    [LoggerMessage(EventId = 105, Level = LogLevel.Debug, Message = "Controller {Cntlid}: I/O queue {Qid} connected (size {Size})")]
    public static partial void IoQueueConnected(this ILogger log, ushort cntlid, ushort qid, int size);

    [LoggerMessage(EventId = 120, Level = LogLevel.Information,
        Message = "Namespace Attachment from controller {Cntlid} (host {HostNqn}) on {SubNqn}: {Action} NSID {Nsid} answered {Status}")]
    public static partial void NamespaceAttachment(this ILogger log, ushort cntlid, string hostNqn, string subNqn, string action, uint nsid, string status);

    [LoggerMessage(EventId = 121, Level = LogLevel.Warning,
        Message = "Namespace Attachment from controller {Cntlid} (host {HostNqn}) on {SubNqn} failed: {Error}")]
    public static partial void NamespaceAttachmentFailed(this ILogger log, ushort cntlid, string hostNqn, string subNqn, string error);

    [LoggerMessage(EventId = 130, Level = LogLevel.Warning, Message = "Fault {Id} set: {Description}")]
    public static partial void FaultSet(this ILogger log, int id, string description);

    [LoggerMessage(EventId = 131, Level = LogLevel.Warning, Message = "Fault {Id} removed ({Why}) after firing {Fired} time(s) of {Matched} match(es)")]
    public static partial void FaultRemoved(this ILogger log, int id, string why, long fired, long matched);

    [LoggerMessage(EventId = 132, Level = LogLevel.Warning,
        Message = "Fault {Id} fired ({Action}) on {Opcode} NSID {Nsid} LBA {Lba} from host {HostNqn} queue {Qid} command {CommandId}: {Fired} firing(s) so far, {Since} since the last line")]
    public static partial void FaultFired(this ILogger log, int id, string action, string opcode, uint nsid, ulong lba, string hostNqn, ushort qid, ushort commandId, long fired, long since);
}
