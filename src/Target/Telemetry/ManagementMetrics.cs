using System.Diagnostics.Metrics;

namespace Target.Telemetry;

/// <summary>The management plane's metrics (Meter "NvmeTcpTarget.Target"): requests refused before they reached
/// an endpoint (touched once per refused request, never on the I/O path), and automatic failover's takeovers and owned
/// ANA groups (read when collected).</summary>
public sealed class ManagementMetrics : IDisposable
{
    public const string MeterName = "NvmeTcpTarget.Target";

    internal long RejectedToken;
    internal long RejectedHostHeader;

    public ManagementMetrics()
    {
        Meter = new Meter(MeterName);
        Meter.CreateObservableCounter("nvmet.api.requests.rejected", () => new[]
            {
                new Measurement<long>(Interlocked.Read(ref RejectedToken), new KeyValuePair<string, object?>("reason", "token")),
                new Measurement<long>(Interlocked.Read(ref RejectedHostHeader), new KeyValuePair<string, object?>("reason", "host_header")),
            }, "{request}", "HTTP requests refused on the management API or probe listener: a missing or wrong bearer token (token), " +
            "a Host header that names no address of the target (host_header, e.g. a DNS rebinding attempt)");
        Meter.CreateObservableCounter("nvmet.ana.takeovers", () => Failover?.Takeovers ?? 0, "{takeover}",
            "Automatic failover: ANA groups this gateway took over (from a dead, stopped or handing-over owner)");
        Meter.CreateObservableGauge("nvmet.ana.groups.owned", () => Failover?.OwnedGroups ?? 0, "{group}",
            "Automatic failover: ANA groups this gateway owns now (optimized here)");
    }

    public Meter Meter { get; }

    /// <summary>Automatic failover whose takeovers and owned groups are reported (null: none yet).</summary>
    public Management.AnaFailover? Failover { get; set; }

    public void Dispose() => Meter.Dispose();
}
