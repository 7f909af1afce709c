using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Nvme.Core;

namespace Target.Telemetry;

/// <summary>Where the target is in its life: readiness is only reported while it runs.</summary>
public enum LifecyclePhase { Starting, Running, Stopping, Stopped }

/// <summary>The answer of GET /readyz: ready, or the reasons it is not.</summary>
public sealed record ReadinessReport(bool Ready, IReadOnlyList<string> Reasons)
{
    /// <summary>Ready when the target runs (every NVMe/TCP listener bound) and every namespace's store is open.</summary>
    public static ReadinessReport Check(LifecyclePhase phase, NvmeTarget target)
    {
        var reasons = new List<string>();
        switch (phase)
        {
            case LifecyclePhase.Starting: reasons.Add("starting: the NVMe/TCP listeners are not bound yet"); break;
            case LifecyclePhase.Stopping: reasons.Add("shutting down: no new connections are accepted"); break;
            case LifecyclePhase.Stopped: reasons.Add("stopped"); break;
        }
        foreach (var s in target.Subsystems)
            foreach (var ns in s.Namespaces)
                if (!ns.Store.IsOpen) reasons.Add($"namespace {ns.Nsid} of {s.Nqn}: its backing store ({ns.Store.Description}) is closed");
                else if (ns.Store.Problem is string problem) reasons.Add($"namespace {ns.Nsid} of {s.Nqn}: {problem}");
        return new ReadinessReport(reasons.Count == 0, reasons);
    }
}

/// <summary>
/// GET /healthz (the process is alive and serves HTTP: always 200) and GET /readyz (200 only when the NVMe/TCP
/// listeners are bound and every namespace's store is open, otherwise 503 with the reasons), on the management
/// listener. Neither needs the API token: probes (systemd, Docker, Kubernetes) carry no credentials, and the
/// answers reveal nothing beyond namespace numbers and subsystem NQNs in a 503 reason.
/// </summary>
public static class HealthEndpoints
{
    public const string LivenessPath = "/healthz";
    public const string ReadinessPath = "/readyz";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static void Map(WebApplication app, Func<ReadinessReport> readiness)
    {
        app.MapGet(LivenessPath, () => Results.Json(new { status = "alive" }, Json))
            .ExcludeFromDescription().WithName("Liveness").WithSummary("200 while the process runs (no token needed).");
        app.MapGet(ReadinessPath, () =>
            {
                var r = readiness();
                return r.Ready
                    ? Results.Json(new { status = "ready" }, Json)
                    : Results.Json(new { status = "not ready", reason = string.Join("; ", r.Reasons), reasons = r.Reasons }, Json,
                        statusCode: StatusCodes.Status503ServiceUnavailable);
            })
            .ExcludeFromDescription().WithName("Readiness")
            .WithSummary("200 when the NVMe/TCP listeners are bound and every namespace's store is open; 503 with the reasons otherwise (no token needed).");
    }
}

/// <summary>The phase, shared by the host and the readiness endpoint (which exists before the host object does).</summary>
internal sealed class Lifecycle
{
    private volatile int _phase;
    public LifecyclePhase Phase { get => (LifecyclePhase)_phase; set => _phase = (int)value; }
}
