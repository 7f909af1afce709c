using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Target.Configuration;
using Target.Management;
using Target.Telemetry;

namespace Target.Http;

/// <summary>
/// The gate of the read-only probe listener: GET (or HEAD) /healthz, /readyz and /metrics pass, anything else is
/// a 404 or 405 problem that says where management lives. Host headers are checked as on the API (a web page
/// must not read /metrics through DNS rebinding); /metrics needs the API token only with --metrics-auth token.
/// </summary>
internal static class ProbeEndpoints
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static void Map(WebApplication app, HostHeaderFilter hosts, ManagementMetrics metrics, string? metricsToken, ApiConfig? api)
    {
        string where = api is null ? "the management API is off" : api.IsTcp
            ? $"the management API is on http://{api.Address}:{api.Port}{ManagementApi.Prefix}" : $"the management API is on the Unix socket {api.Socket}";
        app.Use(async (ctx, next) =>
        {
            var path = ctx.Request.Path;
            if (!hosts.IsAllowed(ctx.Request.Host))
            {
                Interlocked.Increment(ref metrics.RejectedHostHeader);
                await ManagementApi.WriteProblemAsync(ctx, StatusCodes.Status403Forbidden, ManagementApi.HostRefusal(ctx.Request.Host, hosts), Json).ConfigureAwait(false);
                return;
            }
            bool known = path == HealthEndpoints.LivenessPath || path == HealthEndpoints.ReadinessPath || path == TargetHost.MetricsPath;
            if (!known)
            {
                await ManagementApi.WriteProblemAsync(ctx, StatusCodes.Status404NotFound,
                    $"this is the read-only probe listener: it serves only GET {HealthEndpoints.LivenessPath}, {HealthEndpoints.ReadinessPath} and {TargetHost.MetricsPath}; {where}",
                    Json).ConfigureAwait(false);
                return;
            }
            if (!HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method))
            {
                await ManagementApi.WriteProblemAsync(ctx, StatusCodes.Status405MethodNotAllowed,
                    $"{ctx.Request.Method} is not allowed on {path}: the probe listener is read-only", Json).ConfigureAwait(false);
                return;
            }
            if (metricsToken != null && path == TargetHost.MetricsPath && !ManagementApi.HasToken(ctx.Request, metricsToken))
            {
                Interlocked.Increment(ref metrics.RejectedToken);
                ctx.Response.Headers.WWWAuthenticate = "Bearer";
                await ManagementApi.WriteProblemAsync(ctx, StatusCodes.Status401Unauthorized,
                    "/metrics needs the API bearer token on this target (--metrics-auth token): send \"Authorization: Bearer TOKEN\"", Json).ConfigureAwait(false);
                return;
            }
            await next(ctx).ConfigureAwait(false);
        });
    }
}
