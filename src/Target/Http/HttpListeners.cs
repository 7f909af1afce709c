using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Target.Configuration;
using Target.Management;
using Target.Telemetry;

namespace Target.Http;

/// <summary>
/// The target's two HTTP servers, each on Kestrel with its own listener:
/// the management API (a Unix socket by default, or TCP with a token), which also serves the probes and
/// /metrics; and the read-only probe listener (TCP, 127.0.0.1:8420 by default), which serves GET /healthz,
/// GET /readyz and GET /metrics and nothing else, so that Kubernetes probes and Prometheus need no
/// management credential and can change nothing.
/// </summary>
internal sealed class HttpListeners : IAsyncDisposable
{
    public WebApplication? Api { get; private init; }
    public WebApplication? Probes { get; private init; }
    public ListenOptions? ApiListener { get; private init; }
    public ListenOptions? ProbeListener { get; private init; }
    public ApiConfig? ApiConfig { get; private init; }
    public required ManagementMetrics Metrics { get; init; }

    public static async Task<HttpListeners> StartAsync(ILoggerFactory loggers, ApiConfig? api, ProbesConfig? probes, TelemetryOptions telemetry,
        TargetManager manager, Lifecycle lifecycle, PrometheusExposition exposition, NvmeTarget target, ManagementMetrics metrics)
    {
        WebApplication? apiApp = null, probeApp = null;
        ListenOptions? apiListener = null, probeListener = null;
        bool socketBound = false; // only a socket this target created may be removed again
        Func<ReadinessReport> readiness = () => ReadinessReport.Check(lifecycle.Phase, target);
        try
        {
            if (api != null)
            {
                if (!api.IsTcp) ApiSocket.Prepare(api.Socket!, api.SocketGroup);
                var filter = new HostHeaderFilter(api.IsTcp ? IPAddress.Parse(api.Address!) : null, api.AllowedHostNames);
                apiApp = Build(loggers, api.IsTcp ? k => k.Listen(IPAddress.Parse(api.Address!), api.Port ?? 0, Http1(lo => apiListener = lo))
                    : k => k.ListenUnixSocket(api.Socket!, Http1(lo => apiListener = lo)), withApi: true);
                bool metricsOpen = !telemetry.MetricsRequireToken;
                ManagementApi.Map(apiApp, manager, api.Token, filter, metrics, path =>
                    path == HealthEndpoints.LivenessPath || path == HealthEndpoints.ReadinessPath || (metricsOpen && path == TargetHost.MetricsPath));
                MapProbes(apiApp, readiness, exposition);
                // The socket must never exist with a wider mode than 0600/0660, not even between bind and chmod.
                uint umask = api.IsTcp ? 0 : Unix.SetUmask(ApiSocket.BindUmask(api.SocketGroup));
                try
                {
                    await apiApp.StartAsync().ConfigureAwait(false);
                    socketBound = !api.IsTcp;
                }
                finally { if (!api.IsTcp) Unix.SetUmask(umask); }
                if (!api.IsTcp) ApiSocket.Secure(api.Socket!, api.SocketGroup);
            }
            if (probes != null)
            {
                var address = IPAddress.Parse(probes.Address);
                probeApp = Build(loggers, k => k.Listen(address, probes.Port, Http1(lo => probeListener = lo)), withApi: false);
                ProbeEndpoints.Map(probeApp, new HostHeaderFilter(address, api?.AllowedHostNames), metrics,
                    telemetry.MetricsRequireToken ? api?.Token : null, api);
                MapProbes(probeApp, readiness, exposition);
                await probeApp.StartAsync().ConfigureAwait(false);
            }
            return new HttpListeners { Api = apiApp, Probes = probeApp, ApiListener = apiListener, ProbeListener = probeListener, ApiConfig = api, Metrics = metrics };
        }
        catch
        {
            if (apiApp != null) await apiApp.DisposeAsync().ConfigureAwait(false);
            if (probeApp != null) await probeApp.DisposeAsync().ConfigureAwait(false);
            if (socketBound) ApiSocket.Remove(api!.Socket!);
            throw;
        }
    }

    private static Action<ListenOptions> Http1(Action<ListenOptions> bound) => lo =>
    {
        lo.Protocols = HttpProtocols.Http1;
        bound(lo);
    };

    private static WebApplication Build(ILoggerFactory loggers, Action<KestrelServerOptions> listen, bool withApi)
    {
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions { ApplicationName = "nvme-tcp-target" });
        builder.Services.AddSingleton(loggers);
        builder.WebHost.UseKestrelCore();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            listen(k);
        });
        if (withApi) ManagementApi.AddServices(builder.Services);
        else builder.Services.AddRouting();
        return builder.Build();
    }

    private static void MapProbes(WebApplication app, Func<ReadinessReport> readiness, PrometheusExposition exposition)
    {
        HealthEndpoints.Map(app, readiness);
        app.MapGet(TargetHost.MetricsPath, () => Results.Text(exposition.Collect(), PrometheusExposition.ContentType))
            .ExcludeFromDescription().WithName("Metrics")
            .WithSummary("Prometheus text exposition of the target's metrics (no token unless --metrics-auth token).");
    }

    public async ValueTask DisposeAsync()
    {
        if (Api != null) await Api.DisposeAsync().ConfigureAwait(false);
        if (Probes != null) await Probes.DisposeAsync().ConfigureAwait(false);
        if (ApiConfig is { IsTcp: false }) ApiSocket.Remove(ApiConfig.Socket!);
    }
}
