using System.Diagnostics.Metrics;

namespace Target.Telemetry;

/// <summary>The management plane's metrics (Meter "NvmeTcpTarget.Target"): requests refused before they reached
/// an endpoint. Touched once per refused request, never on the I/O path.</summary>
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
    }

    public Meter Meter { get; }

    public void Dispose() => Meter.Dispose();
}
