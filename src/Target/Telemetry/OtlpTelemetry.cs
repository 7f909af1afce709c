using Microsoft.Extensions.Logging;
using Nvme.Core.Telemetry;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Transport.Tcp;

namespace Target.Telemetry;

/// <summary>
/// OTLP export of the target's meters and traces, built with the SDK's own builders (no hosting integration).
/// Disposing it pushes what is left and stops the exporters.
/// </summary>
internal sealed class OtlpTelemetry : IDisposable
{
    private readonly MeterProvider _meters;
    private readonly TracerProvider _traces;

    private OtlpTelemetry(MeterProvider meters, TracerProvider traces)
    {
        _meters = meters;
        _traces = traces;
    }

    public static OtlpTelemetry Start(TelemetryOptions options)
    {
        var baseUri = new Uri(options.OtlpEndpoint!);
        bool http = options.OtlpProtocol != TelemetryOptions.Grpc;
        Uri Signal(string path) => http ? new Uri(baseUri.ToString().TrimEnd('/') + path) : baseUri;
        void Exporter(OtlpExporterOptions o, string path)
        {
            o.Protocol = http ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
            o.Endpoint = Signal(path);
        }
        void Resource(ResourceBuilder r)
        {
            if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_SERVICE_NAME")))
                r.AddService("nvme-tcp-target", serviceVersion: typeof(OtlpTelemetry).Assembly.GetName().Version?.ToString());
        }

        var meters = Sdk.CreateMeterProviderBuilder()
            .ConfigureResource(Resource)
            .AddMeter(CoreMetrics.MeterName, TcpTransportMetrics.MeterName, ManagementMetrics.MeterName)
            .AddOtlpExporter((o, reader) =>
            {
                Exporter(o, "/v1/metrics");
                if (options.OtlpExportInterval is { } every)
                    reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = (int)Math.Max(100, every.TotalMilliseconds);
            })
            .Build();
        var traces = Sdk.CreateTracerProviderBuilder()
            .ConfigureResource(Resource)
            .AddSource(NvmeTelemetry.ActivitySourceName)
            .AddOtlpExporter(o => Exporter(o, "/v1/traces"))
            .Build();
        return new OtlpTelemetry(meters, traces);
    }

    public void Dispose()
    {
        _traces.Dispose();
        _meters.Dispose();
    }
}
