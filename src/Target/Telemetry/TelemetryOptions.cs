namespace Target.Telemetry;

/// <summary>Telemetry settings from the command line and environment (see <see cref="Configuration.CommandLine"/>).</summary>
public sealed class TelemetryOptions
{
    public const string HttpProtobuf = "http/protobuf";
    public const string Grpc = "grpc";

    /// <summary>OTLP collector base URL (http://collector:4318 for http/protobuf, http://collector:4317 for grpc);
    /// null: no OTLP export (GET /metrics works regardless).</summary>
    public string? OtlpEndpoint { get; set; }

    /// <summary><see cref="HttpProtobuf"/> (default; /v1/metrics and /v1/traces are appended to the endpoint) or <see cref="Grpc"/>.</summary>
    public string OtlpProtocol { get; set; } = HttpProtobuf;

    /// <summary>How often metrics are pushed (OTEL_METRIC_EXPORT_INTERVAL; default 60 s). A last push happens at shutdown.</summary>
    public TimeSpan? OtlpExportInterval { get; set; }

    /// <summary>Fraction 0..1 of I/O commands traced (default 0); admin commands and connections are always traced
    /// when OTLP is on.</summary>
    public double TraceIoSampleRate { get; set; }

    /// <summary>True: GET /metrics needs the API bearer token like the API does (--metrics-auth token). Default false.</summary>
    public bool MetricsRequireToken { get; set; }
}
