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
using Target.Configuration;
using Target.Management;
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
    private readonly List<IPEndPoint> _endpoints;
    private readonly ListenOptions? _apiListener;
    private readonly NvmeTcpServer _server;
    private readonly TcpTransportMetrics _transportMetrics;
    private readonly OtlpTelemetry? _otlp;
    private readonly Lifecycle _lifecycle;
    private readonly ILogger _log;
    private readonly Lock _stopLock = new();
    private Task? _stopping;

    private TargetHost(WebApplication? app, NvmeTarget target, List<IPEndPoint> endpoints, TargetManager manager, ListenOptions? apiListener,
        NvmeTcpServer server, TcpTransportMetrics transportMetrics, OtlpTelemetry? otlp, Lifecycle lifecycle,
        PrometheusExposition metrics, ILogger log)
    {
        _app = app;
        Target = target;
        _endpoints = endpoints;
        Manager = manager;
        _apiListener = apiListener;
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

    /// <summary>Bound endpoint of the management HTTP API (the real port even when port 0 was asked for);
    /// null when the API is off.</summary>
    public IPEndPoint? ApiEndpoint => _apiListener?.IPEndPoint;

    /// <summary>The Prometheus text of GET /metrics (also usable without the API).</summary>
    public PrometheusExposition Metrics { get; }

    /// <summary>Meter of the NVMe/TCP transport ("NvmeTcpTarget.Transport"); the core's is Target.Metrics.Meter.</summary>
    public TcpTransportMetrics TransportMetrics => _transportMetrics;

    public LifecyclePhase Phase => _lifecycle.Phase;

    /// <summary>What GET /readyz answers.</summary>
    public ReadinessReport Readiness => ReadinessReport.Check(_lifecycle.Phase, Target);

    /// <summary>NVMe/TCP connections open right now.</summary>
    public int ConnectionCount => _server.ConnectionCount;

    /// <summary>How long <see cref="StopAsync()"/> lets connections finish the commands they have (default 10 s).</summary>
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Builds the model, opens stores and starts listening. Throws <see cref="StoreException"/> for
    /// backing store problems and <see cref="IOException"/> when a port cannot be bound.
    /// <paramref name="api"/> is the management HTTP API listener (see <see cref="CommandLine.Api"/>); null: no API
    /// (and no /metrics, /healthz, /readyz). <paramref name="telemetry"/>: OTLP export, I/O trace sampling, /metrics auth.</summary>
    public static async Task<TargetHost> StartAsync(TargetConfig config, ILoggerFactory loggerFactory, TcpTransportOptions? transportOptions = null,
        string? configPath = null, ApiConfig? api = null, TelemetryOptions? telemetry = null)
    {
        telemetry ??= new TelemetryOptions();
        var target = BuildModel(config, loggerFactory);
        target.TraceIoSampleRate = telemetry.TraceIoSampleRate;
        var transportMetrics = new TcpTransportMetrics();
        OtlpTelemetry? otlp = null;
        try
        {
            var log = loggerFactory.CreateLogger("Target");
            var lifecycle = new Lifecycle();
            var exposition = new PrometheusExposition(target, transportMetrics.Meter);
            if (telemetry.OtlpEndpoint != null)
            {
                otlp = OtlpTelemetry.Start(telemetry);
                log.OtlpOn(telemetry.OtlpProtocol, telemetry.OtlpEndpoint, telemetry.TraceIoSampleRate);
            }
            var manager = new TargetManager(target, config, configPath, loggerFactory.CreateLogger("Target.Management"));
            var server = new NvmeTcpServer(target, transportOptions ?? TransportOptions(config.Limits), loggerFactory, transportMetrics);
            WebApplication? app = null;
            try
            {
                ListenOptions? apiListener = null;
                if (api != null)
                {
                    app = BuildApi(loggerFactory, api, telemetry, manager, lifecycle, exposition, target, lo => apiListener = lo);
                    await app.StartAsync().ConfigureAwait(false);
                }
                var endpoints = new List<IPEndPoint>();
                foreach (var p in config.Ports)
                {
                    var bound = server.Listen(new IPEndPoint(IPAddress.Parse(p.Address), p.Port), p.Id);
                    endpoints.Add(bound);
                    target.AddPort(new Port(p.Id, bound.Address, bound.Port, p.AdvertisedAddress));
                }
                lifecycle.Phase = LifecyclePhase.Running;
                return new TargetHost(app, target, endpoints, manager, apiListener, server, transportMetrics, otlp, lifecycle, exposition, log);
            }
            catch
            {
                await server.DisposeAsync().ConfigureAwait(false);
                if (app != null) await app.DisposeAsync().ConfigureAwait(false);
                throw;
            }
        }
        catch
        {
            otlp?.Dispose();
            transportMetrics.Dispose();
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    /// <summary>The management HTTP API (with /metrics, /healthz, /readyz) on Kestrel, on its own listener.</summary>
    private static WebApplication BuildApi(ILoggerFactory loggerFactory, ApiConfig api, TelemetryOptions telemetry, TargetManager manager,
        Lifecycle lifecycle, PrometheusExposition exposition, NvmeTarget target, Action<ListenOptions> bound)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "nvme-tcp-target" });
        builder.Services.AddSingleton(loggerFactory);
        builder.WebHost.UseKestrelCore();
        ManagementApi.AddServices(builder.Services);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Parse(api.Address), api.Port, lo =>
        {
            lo.Protocols = HttpProtocols.Http1;
            bound(lo);
        }));
        var app = builder.Build();
        bool metricsOpen = !telemetry.MetricsRequireToken;
        ManagementApi.Map(app, manager, api.Token, path =>
            path == HealthEndpoints.LivenessPath || path == HealthEndpoints.ReadinessPath || (metricsOpen && path == MetricsPath));
        HealthEndpoints.Map(app, () => ReadinessReport.Check(lifecycle.Phase, target));
        app.MapGet(MetricsPath, () => Results.Text(exposition.Collect(), PrometheusExposition.ContentType))
            .ExcludeFromDescription().WithName("Metrics")
            .WithSummary("Prometheus text exposition of the target's metrics (no token unless --metrics-auth token).");
        return app;
    }

    public const string MetricsPath = "/metrics";

    /// <summary>Creates subsystems and namespaces; opens every backing store (closing them all on failure).</summary>
    public static NvmeTarget BuildModel(TargetConfig config, ILoggerFactory loggerFactory)
    {
        var l = config.Limits;
        var defaults = new TargetLimits();
        var limits = new TargetLimits
        {
            MaxQueueEntries = (ushort)(l.Mqes ?? defaults.MaxQueueEntries),
            Mdts = (byte)(l.Mdts ?? defaults.Mdts),
            InCapsuleDataSize = l.InCapsuleDataSize ?? defaults.InCapsuleDataSize,
            MaxH2CData = l.MaxH2CData ?? defaults.MaxH2CData,
            MaxIoQueues = (ushort)(l.IoQueues ?? defaults.MaxIoQueues),
            C2HSuccessOptimization = l.C2HSuccess ?? defaults.C2HSuccessOptimization,
            DataBufferBudget = l.DataBufferBudget != null && Sizes.TryParse(l.DataBufferBudget, out long budget) ? budget : defaults.DataBufferBudget,
            MaxControllersPerHost = l.MaxControllersPerHost ?? defaults.MaxControllersPerHost,
            HostBufferShare = l.HostBufferShare ?? defaults.HostBufferShare,
        };
        var target = new NvmeTarget(limits, loggerFactory);
        try
        {
            foreach (var sc in config.Subsystems) target.AddSubsystem(BuildSubsystem(sc));
            return target;
        }
        catch
        {
            DisposeStores(target);
            target.Dispose();
            throw;
        }
    }

    /// <summary>The NVMe/TCP bounds of a validated configuration (connections, deadlines, keep-alive).</summary>
    public static TcpTransportOptions TransportOptions(LimitsConfig l)
    {
        var d = new TcpTransportOptions();
        static TimeSpan? Seconds(double? s) => s is double v ? TimeSpan.FromSeconds(v) : null;
        return d with
        {
            MaxConnections = l.MaxConnections ?? d.MaxConnections,
            R2TTimeout = Seconds(l.R2TTimeout) ?? d.R2TTimeout,
            PduTimeout = Seconds(l.PduTimeout) ?? d.PduTimeout,
            ConnectTimeout = Seconds(l.ConnectTimeout) ?? d.ConnectTimeout,
            TcpKeepAlive = l.TcpKeepAlive is string k && ConfigValidator.TcpKeepAliveSeconds(k) is int idle
                ? idle == 0 ? null : TimeSpan.FromSeconds(idle)
                : d.TcpKeepAlive,
        };
    }

    /// <summary>A subsystem with its namespaces' stores open (all closed again if one fails).</summary>
    public static Subsystem BuildSubsystem(SubsystemConfig sc)
    {
        var sub = new Subsystem(sc.Nqn, SubsystemKind.Nvm, sc.Serial, sc.Model, sc.FirmwareRevision,
            allowAnyHost: sc.AllowAnyHost ?? sc.AllowedHosts.Count == 0, sc.AllowedHosts);
        try
        {
            foreach (var nc in sc.Namespaces) sub.AttachNamespace(OpenNamespace(sc.Nqn, nc));
        }
        catch
        {
            foreach (var ns in sub.Namespaces) ns.Store.Dispose();
            throw;
        }
        return sub;
    }

    public static Namespace OpenNamespace(string subsystemNqn, NamespaceConfig nc)
    {
        long? size = nc.Size != null && Sizes.TryParse(nc.Size, out var s) ? s : null;
        IBlockStore store = nc.Backend switch
        {
            "memory" => new MemoryBlockStore(size ?? throw new StoreException($"namespace {nc.Nsid}: a memory namespace needs a size")),
            "file" => FileBlockStore.Open(nc.Path!, size),
            "block" => FileBlockStore.Open(nc.Path!, null),
            _ => throw new StoreException($"namespace {nc.Nsid}: unknown backend '{nc.Backend}'"),
        };
        try
        {
            return new Namespace(nc.Nsid, store, nc.BlockSize, NamespaceIds.Derive(subsystemNqn, nc.Nsid, nc.Uuid));
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
        int draining = _server.BeginDrain();
        _log.ShutdownDraining(draining, grace.TotalSeconds);
        int leftAtExpiry = 0;
        using (var timeout = new CancellationTokenSource(grace))
        using (timeout.Token.Register(() => Volatile.Write(ref leftAtExpiry, _server.ConnectionCount)))
        {
            // The listeners are closed already; the connections close once drained. After the grace period
            // those that remain are reset.
            await _server.StopAsync(timeout.Token).ConfigureAwait(false);
            if (_app != null)
            {
                try { await _app.StopAsync(timeout.Token).ConfigureAwait(false); }
                catch (OperationCanceledException) { }
            }
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
        if (_otlp != null)
        {
            _otlp.Dispose(); // the last push sees the final counts: the meters live until the target is disposed
            _log.ShutdownTelemetry();
        }
        Target.Dispose();
        _transportMetrics.Dispose();
        _lifecycle.Phase = LifecyclePhase.Stopped;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_app != null) await _app.DisposeAsync().ConfigureAwait(false);
    }
}
