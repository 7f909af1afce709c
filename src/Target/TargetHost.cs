using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Storage;
using Nvme.Core.Storage.Rbd;
using Target.Configuration;
using Target.Http;
using Target.Management;
using Target.Storage;
using Target.Telemetry;
using Transport.Tcp;
using Transport.Tcp.Net;

namespace Target;

/// <summary>
/// Composes the target: builds the NVMe model from a validated configuration, opens the backing stores, and
/// serves NVMe/TCP on its own socket listeners (Transport.Tcp.Net), with the management API, /metrics, /healthz and /readyz on their
/// own listener. Owns the telemetry (the transport's meter, the OTLP exporters) and the graceful shutdown.
/// Used by the program and by the integration tests.
/// </summary>
public sealed class TargetHost : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly WebApplication? _probeApp;
    private readonly List<IPEndPoint> _endpoints;
    private readonly ListenOptions? _apiListener;
    private readonly ListenOptions? _probeListener;
    private readonly ApiConfig? _api;
    private readonly ManagementMetrics _managementMetrics;
    private readonly NvmeTcpServer _server;
    private readonly TcpTransportMetrics _transportMetrics;
    private readonly OtlpTelemetry? _otlp;
    private readonly Lifecycle _lifecycle;
    private readonly ILogger _log;
    private readonly Lock _stopLock = new();
    private AnaFailover? _failover;
    private Task? _stopping;

    private TargetHost(HttpListeners http, NvmeTarget target, List<IPEndPoint> endpoints, TargetManager manager,
        NvmeTcpServer server, TcpTransportMetrics transportMetrics, OtlpTelemetry? otlp, Lifecycle lifecycle,
        PrometheusExposition metrics, ILogger log)
    {
        _app = http.Api;
        _probeApp = http.Probes;
        _apiListener = http.ApiListener;
        _probeListener = http.ProbeListener;
        _api = http.ApiConfig;
        _managementMetrics = http.Metrics;
        Target = target;
        _endpoints = endpoints;
        Manager = manager;
        _server = server;
        _transportMetrics = transportMetrics;
        _otlp = otlp;
        _lifecycle = lifecycle;
        Metrics = metrics;
        _log = log;
    }

    public NvmeTarget Target { get; }

    /// <summary>Live changes (namespaces, subsystems, hosts), persisted to the configuration file if there is one.</summary>
    public TargetManager Manager { get; }

    /// <summary>Bound endpoints, in configuration order (real ports even when port 0 was asked for).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => _endpoints;

    /// <summary>Bound TCP endpoint of the management HTTP API (the real port even when port 0 was asked for);
    /// null when the API is off or on a Unix socket.</summary>
    public IPEndPoint? ApiEndpoint => _api is { IsTcp: true } ? _apiListener?.IPEndPoint : null;

    /// <summary>Path of the management API's Unix socket; null when the API is off or on TCP.</summary>
    public string? ApiSocketPath => _api is { IsTcp: false } ? _api.Socket : null;

    /// <summary>Bound endpoint of the read-only probe listener (/healthz, /readyz, /metrics); null when it is off.</summary>
    public IPEndPoint? ProbesEndpoint => _probeListener?.IPEndPoint;

    /// <summary>The Prometheus text of GET /metrics (also usable without the API).</summary>
    public PrometheusExposition Metrics { get; }

    /// <summary>Meter of the NVMe/TCP transport ("NvmeTcpTarget.Transport"); the core's is Target.Metrics.Meter.</summary>
    public TcpTransportMetrics TransportMetrics => _transportMetrics;

    public LifecyclePhase Phase => _lifecycle.Phase;

    /// <summary>What GET /readyz answers.</summary>
    public ReadinessReport Readiness => ReadinessReport.Check(_lifecycle.Phase, Target);

    /// <summary>NVMe/TCP connections open right now.</summary>
    public int ConnectionCount => _server.ConnectionCount;

    /// <summary>Connections per reactor thread of the polling mode (empty when it is off).</summary>
    public IReadOnlyList<int> ReactorConnections => _server.ReactorConnections;

    /// <summary>How long <see cref="StopAsync()"/> lets connections finish the commands they have (default 10 s).</summary>
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Builds the model, opens stores and starts listening. Throws <see cref="StoreException"/> for
    /// backing store problems (<see cref="StoragePolicyException"/> for what <paramref name="storage"/> does not
    /// allow) and <see cref="IOException"/> when a port or the API socket cannot be bound. <paramref name="storage"/>:
    /// where namespaces may keep their data; null: the policy of <paramref name="config"/>'s storage section (or the
    /// defaults). <paramref name="api"/> is the management HTTP API listener as resolved by <see cref="CommandLine.Api"/>
    /// (a Unix socket, or TCP with a token); null: no API. <paramref name="probes"/> is the read-only listener for
    /// /healthz, /readyz and /metrics; null: none. <paramref name="telemetry"/>: OTLP export, I/O trace sampling, /metrics auth.
    /// <paramref name="transportOptions"/>: the NVMe/TCP settings; null: <see cref="TransportOptions"/> of <paramref name="config"/>'s limits.</summary>
    public static async Task<TargetHost> StartAsync(TargetConfig config, ILoggerFactory loggerFactory, TcpTransportOptions? transportOptions = null,
        string? configPath = null, ApiConfig? api = null, TelemetryOptions? telemetry = null, ProbesConfig? probes = null, StoragePolicy? storage = null)
    {
        telemetry ??= new TelemetryOptions();
        if (api is { IsTcp: true, Token: null }) throw new ArgumentException("a management API on TCP needs a token", nameof(api));
        if (api is { IsTcp: false, Socket: null }) throw new ArgumentException("a management API on a Unix socket needs its path", nameof(api));
        if (telemetry.MetricsRequireToken && api?.Token is null)
            throw new ArgumentException("--metrics-auth token needs an API token (--api-token-file)", nameof(telemetry));
        storage ??= StoragePolicy.Create(config.Storage, configPath);
        var target = BuildModel(config, loggerFactory, storage);
        target.TraceIoSampleRate = telemetry.TraceIoSampleRate;
        var transportMetrics = new TcpTransportMetrics();
        var managementMetrics = new ManagementMetrics();
        OtlpTelemetry? otlp = null;
        AnaFailover? failover = null;
        try
        {
            var log = loggerFactory.CreateLogger("Target");
            var lifecycle = new Lifecycle();
            var exposition = new PrometheusExposition(target, transportMetrics.Meter, managementMetrics.Meter);
            if (telemetry.OtlpEndpoint != null)
            {
                otlp = OtlpTelemetry.Start(telemetry);
                log.OtlpOn(telemetry.OtlpProtocol, telemetry.OtlpEndpoint, telemetry.TraceIoSampleRate);
            }
            failover = new AnaFailover(target, config.Gateway?.Name ?? AnaFailover.DefaultGatewayName(),
                TimeSpan.FromSeconds(config.Gateway?.LeaseSeconds ?? GatewayConfig.DefaultLeaseSeconds), loggerFactory.CreateLogger("Target.Failover"));
            foreach (var sc in config.Subsystems.Where(sc => sc.Failover == true)) failover.Track(sc.Nqn);
            managementMetrics.Failover = failover;
            // Before any port listens: a gateway never starts out optimized for a group another gateway owns.
            failover.Start();
            var manager = new TargetManager(target, config, configPath, loggerFactory.CreateLogger("Target.Management")) { Storage = storage, Failover = failover };
            var tcp = transportOptions ?? TransportOptions(config.Limits) with { Polling = Polling(config.Polling) };
            var server = new NvmeTcpServer(target, tcp, loggerFactory, transportMetrics);
            manager.Traces = server.Traces;
            if (tcp.Polling is { } poll)
                log.PollingOn(poll.Reactors, poll.Cpus.Count == 0 ? "any CPU" : "CPUs " + string.Join(",", poll.Cpus), (long)poll.IdleTime.TotalMicroseconds);
            HttpListeners? http = null;
            try
            {
                http = await HttpListeners.StartAsync(loggerFactory, api, probes, telemetry, manager, lifecycle, exposition, target, managementMetrics)
                    .ConfigureAwait(false);
                var endpoints = new List<IPEndPoint>();
                foreach (var p in config.Ports)
                {
                    var bound = server.Listen(new IPEndPoint(IPAddress.Parse(p.Address), p.Port), p.Id);
                    endpoints.Add(bound);
                    target.AddPort(new Port(p.Id, bound.Address, bound.Port, p.AdvertisedAddress) { Transport = server.Descriptor });
                }
                if (config.Peers is { Count: > 0 } peers)
                    target.SetPeerPorts(peers.Select(p => new PeerPort(p.PortId, p.Address, p.Port, p.Subsystems)));
                lifecycle.Phase = LifecyclePhase.Running;
                return new TargetHost(http, target, endpoints, manager, server, transportMetrics, otlp, lifecycle, exposition, log) { _failover = failover };
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                if (http != null) await http.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        catch
        {
            failover?.Dispose();
            otlp?.Dispose();
            transportMetrics.Dispose();
            managementMetrics.Dispose();
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    public const string MetricsPath = "/metrics";

    /// <summary>Creates subsystems and namespaces; opens every backing store through <paramref name="storage"/>
    /// (closing them all on failure).</summary>
    public static NvmeTarget BuildModel(TargetConfig config, ILoggerFactory loggerFactory, StoragePolicy storage)
    {
        var l = config.Limits;
        var defaults = new TargetLimits();
        var limits = new TargetLimits
        {
            MaxQueueEntries = (ushort)(l.Mqes ?? defaults.MaxQueueEntries),
            Mdts = (byte)(l.Mdts ?? defaults.Mdts),
            MaxIoQueues = (ushort)(l.IoQueues ?? defaults.MaxIoQueues),
            DataBufferBudget = l.DataBufferBudget != null && Sizes.TryParse(l.DataBufferBudget, out long budget) ? budget : defaults.DataBufferBudget,
            MemoryNamespaceLimit = MemoryNamespaceLimit.Resolve(l.MemoryNamespaces),
            MaxControllersPerHost = l.MaxControllersPerHost ?? defaults.MaxControllersPerHost,
            HostBufferShare = l.HostBufferShare ?? defaults.HostBufferShare,
            AuthenticationTimeout = l.AuthTimeout is double authTimeout ? TimeSpan.FromSeconds(authTimeout) : defaults.AuthenticationTimeout,
        };
        if (MemoryNamespaceLimit.Check(limits.MemoryNamespaceLimit, 0, MemoryNamespaceLimit.SizeOf(config.Subsystems)) is string tooMuch)
            throw new StoreException(tooMuch);
        var target = new NvmeTarget(limits, loggerFactory);
        try
        {
            foreach (var sc in config.Subsystems) target.AddSubsystem(BuildSubsystem(sc, storage));
            foreach (var f in config.Faults ?? []) target.Faults.Add(f.ToSpec(out _)!); // validated with the file
            return target;
        }
        catch
        {
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    /// <summary>The polling mode's transport settings, or null when it is off.</summary>
    public static PollingOptions? Polling(PollingConfig? p)
    {
        if (p is not { Enabled: true }) return null;
        var d = new PollingOptions(); // the defaults live there
        return new PollingOptions
        {
            Reactors = p.Reactors ?? d.Reactors,
            Cpus = p.Cpus ?? d.Cpus,
            IdleTime = p.IdleMicroseconds is int us ? TimeSpan.FromMicroseconds(us) : d.IdleTime,
        };
    }

    /// <summary>NVMET_TCP_DIRECT_RECEIVE=0: H2CData payloads go through the input pipe (to measure what the direct receive saves).</summary>
    public const string DirectReceiveVariable = "NVMET_TCP_DIRECT_RECEIVE";

    /// <summary>The NVMe/TCP settings of a validated configuration: in-capsule data, MAXH2CDATA, C2HData SUCCESS, and the
    /// bounds (connections, deadlines, keep-alive).</summary>
    public static TcpTransportOptions TransportOptions(LimitsConfig l)
    {
        var d = new TcpTransportOptions();
        static TimeSpan? Seconds(double? s) => s is double v ? TimeSpan.FromSeconds(v) : null;
        return d with
        {
            InCapsuleDataSize = l.InCapsuleDataSize ?? d.InCapsuleDataSize,
            MaxH2CData = l.MaxH2CData ?? d.MaxH2CData,
            C2HSuccess = l.C2HSuccess ?? d.C2HSuccess,
            MaxConnections = l.MaxConnections ?? d.MaxConnections,
            R2TTimeout = Seconds(l.R2TTimeout) ?? d.R2TTimeout,
            PduTimeout = Seconds(l.PduTimeout) ?? d.PduTimeout,
            ConnectTimeout = Seconds(l.ConnectTimeout) ?? d.ConnectTimeout,
            TcpKeepAlive = l.TcpKeepAlive is string k && ConfigValidator.TcpKeepAliveSeconds(k) is int idle
                ? idle == 0 ? null : TimeSpan.FromSeconds(idle)
                : d.TcpKeepAlive,
            // An A/B switch for benchmarks (bench/README.md), not a setting: 0 sends write data through the input pipe.
            DirectDataReceive = Environment.GetEnvironmentVariable(DirectReceiveVariable) != "0",
        };
    }

    /// <summary>A subsystem with its namespaces' stores open (all closed again if one fails).</summary>
    public static Subsystem BuildSubsystem(SubsystemConfig sc, StoragePolicy storage)
    {
        var sub = new Subsystem(sc.Nqn, SubsystemKind.Nvm, sc.Serial, sc.Model, sc.FirmwareRevision,
            allowAnyHost: sc.AllowAnyHost ?? false, sc.AllowedHosts, // absent = closed (see ConfigValidator.Warnings)
            portIds: sc.Ports)
        {
            CntlidRange = (sc.CntlidMin ?? 1, sc.CntlidMax ?? Subsystem.MaxCntlid),
        };
        try
        {
            foreach (var (host, auth) in sc.AllowedHosts.Auth) sub.SetHostAuthentication(host, auth.ToCore());
            foreach (var nc in sc.Namespaces) sub.AttachNamespace(OpenNamespace(sc.Nqn, nc, storage, sc.Failover == true));
            sub.RestoreNamespaceAttachHosts(sc.NamespaceAttachHosts ?? []);
        }
        catch
        {
            foreach (var ns in sub.Namespaces) ns.Store.Dispose();
            throw;
        }
        return sub;
    }

    /// <summary>A namespace's masking as configured ("visibility" and "hosts").</summary>
    public static NamespaceVisibility VisibilityOf(NamespaceConfig nc) =>
        NamespaceVisibility.Of(nc.Visibility == NamespaceConfig.VisibilityRestricted, nc.Hosts);

    /// <summary>Opens a namespace's store: memory, or a file or block device allowed by <paramref name="storage"/>, or an RBD
    /// image (created when missing and a size is given; for a <paramref name="failover"/> subsystem, whose gateways all
    /// write the image, without librbd's exclusive-lock feature).</summary>
    public static Namespace OpenNamespace(string subsystemNqn, NamespaceConfig nc, StoragePolicy storage, bool failover = false)
    {
        long? size = nc.Size != null && Sizes.TryParse(nc.Size, out var s) ? s : null;
        IBlockStore store = nc.Backend switch
        {
            "memory" => new MemoryBlockStore(size ?? throw new StoreException($"namespace {nc.Nsid}: a memory namespace needs a size")),
            "file" => storage.OpenFile(nc.Path!, size, nc.Preallocate == true),
            "block" => storage.OpenBlockDevice(nc.Path!),
            "rbd" => RbdBlockStore.Open(new RbdClusterOptions(nc.CephConf, nc.ClientId, nc.Keyring), nc.Pool!, nc.Image!, size,
                failover ? RbdBlockStore.SharedImageFeatures : null),
            _ => throw new StoreException($"namespace {nc.Nsid}: unknown backend '{nc.Backend}'"),
        };
        try
        {
            return new Namespace(nc.Nsid, store, nc.BlockSize, NamespaceIds.Derive(subsystemNqn, nc.Nsid, nc.Uuid))
            {
                Visibility = VisibilityOf(nc),
                AnaGroupId = nc.AnaGroup ?? Subsystem.DefaultAnaGroup,
            };
        }
        catch (ArgumentException e)
        {
            store.Dispose();
            throw new StoreException($"namespace {nc.Nsid}: {e.Message}");
        }
    }

    private static void DisposeStores(NvmeTarget target)
    {
        foreach (var s in target.Subsystems)
            foreach (var ns in s.Namespaces) ns.Store.Dispose();
    }

    /// <summary>Graceful shutdown with <see cref="ShutdownGrace"/>; see <see cref="StopAsync(TimeSpan)"/>.</summary>
    public Task StopAsync() => StopAsync(ShutdownGrace);

    /// <summary>
    /// Graceful shutdown, each step logged: /readyz turns 503; the listeners close; every connection stops
    /// taking new commands (the host retries those after reconnecting), finishes the ones it has, sends their
    /// responses and closes; after <paramref name="grace"/> the connections still busy are closed anyway. Then
    /// every namespace is flushed (fsync for files) and closed, and the telemetry exporters push what is left.
    /// Idempotent: a second call returns the first call's task.
    /// </summary>
    public Task StopAsync(TimeSpan grace)
    {
        lock (_stopLock) return _stopping ??= StopCoreAsync(grace);
    }

    private async Task StopCoreAsync(TimeSpan grace)
    {
        _lifecycle.Phase = LifecyclePhase.Stopping;
        // Owned ANA groups first: they turn non-optimized here and are released, so another gateway takes them over
        // while this one drains (its paths stay accessible until they close: nothing fails).
        _failover?.StepDownAll();
        int draining = _server.BeginDrain();
        _log.ShutdownDraining(draining, grace.TotalSeconds);
        int leftAtExpiry = 0;
        using (var timeout = new CancellationTokenSource(grace))
        using (timeout.Token.Register(() => Volatile.Write(ref leftAtExpiry, _server.ConnectionCount)))
        {
            // The listeners are closed already; the connections close once drained. After the grace period
            // those that remain are reset.
            await _server.StopAsync(timeout.Token).ConfigureAwait(false);
            foreach (var app in new[] { _app, _probeApp })
            {
                if (app is null) continue;
                try { await app.StopAsync(timeout.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { }
            }
            if (ApiSocketPath is string socket) ApiSocket.Remove(socket);
        }
        if (Volatile.Read(ref leftAtExpiry) > 0) _log.ShutdownGraceExpired(grace.TotalSeconds, leftAtExpiry);
        else _log.ShutdownDrained();
        foreach (var c in Target.Controllers) c.Destroy("target shutting down");

        var namespaces = Target.Subsystems.SelectMany(s => s.Namespaces.Select(ns => (Subsystem: s, Namespace: ns))).ToList();
        var drains = namespaces.Select(x => x.Namespace.StopAndDrainAsync()).ToList();
        // After the grace period only commands stuck in a backing store can be left; give them a moment more.
        var extra = grace < TimeSpan.FromSeconds(5) ? grace : TimeSpan.FromSeconds(5);
        await Task.WhenAny(Task.WhenAll(drains), Task.Delay(extra)).ConfigureAwait(false);
        for (int i = 0; i < namespaces.Count; i++)
        {
            var (s, ns) = namespaces[i];
            try { await ns.Store.FlushAsync().ConfigureAwait(false); }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                _log.ShutdownFlushFailed(ns.Nsid, s.Nqn, ns.Store.Description, e.Message);
            }
            if (drains[i].IsCompleted)
            {
                ns.Store.Dispose();
                _log.ShutdownFlushed(ns.Nsid, s.Nqn, ns.Store.Description);
            }
            else
            {
                _log.ShutdownStuck(ns.Nsid, s.Nqn, ns.InFlight);
                _ = drains[i].ContinueWith(_ => ns.Store.Dispose(), TaskScheduler.Default);
            }
        }
        _failover?.Dispose();
        if (_otlp != null)
        {
            _otlp.Dispose(); // the last push sees the final counts: the meters live until the target is disposed
            _log.ShutdownTelemetry();
        }
        Target.Dispose();
        _transportMetrics.Dispose();
        _managementMetrics.Dispose();
        _lifecycle.Phase = LifecyclePhase.Stopped;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_app != null) await _app.DisposeAsync().ConfigureAwait(false);
        if (_probeApp != null) await _probeApp.DisposeAsync().ConfigureAwait(false);
    }
}
