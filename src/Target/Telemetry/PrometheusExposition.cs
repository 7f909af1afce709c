using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;
using Nvme.Core;
using Nvme.Core.Telemetry;

namespace Target.Telemetry;

/// <summary>
/// Renders the target's metrics in the Prometheus text exposition format (version 0.0.4) for GET /metrics.
/// Counters and gauges come from the observable instruments of the target's two meters ("NvmeTcpTarget.Core",
/// "NvmeTcpTarget.Transport"), read through a <see cref="MeterListener"/> at scrape time; the latency histogram
/// comes straight from the namespaces' lock-free buckets (nothing is recorded per I/O for it).
/// Names: dots become underscores, unit "By" adds _bytes, "s" adds _seconds, counters end in _total.
/// </summary>
public sealed class PrometheusExposition
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    private readonly NvmeTarget _target;
    private readonly Meter[] _meters;
    private readonly Lock _lock = new();

    public PrometheusExposition(NvmeTarget target, params Meter?[] meters)
    {
        _target = target;
        _meters = [target.Metrics.Meter, .. meters.OfType<Meter>()];
    }

    private sealed class Family(string name, string help, string type)
    {
        public readonly string Name = name, Help = help, Type = type;
        public readonly List<(string Labels, string Value)> Samples = [];
    }

    /// <summary>The exposition text; one scrape at a time (a scrape reads a few thousand numbers at most).</summary>
    public string Collect()
    {
        lock (_lock)
        {
            var families = new Dictionary<Instrument, Family>();
            using (var listener = new MeterListener())
            {
                listener.InstrumentPublished = (instrument, l) =>
                {
                    if (!instrument.IsObservable || Array.IndexOf(_meters, instrument.Meter) < 0) return;
                    var type = instrument.GetType();
                    bool counter = type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ObservableCounter<>);
                    var family = new Family(PrometheusName(instrument.Name, instrument.Unit, counter), instrument.Description ?? instrument.Name,
                        counter ? "counter" : "gauge");
                    families[instrument] = family;
                    l.EnableMeasurementEvents(instrument, family);
                };
                listener.SetMeasurementEventCallback<long>((_, value, tags, state) =>
                    ((Family)state!).Samples.Add((Labels(tags), value.ToString(CultureInfo.InvariantCulture))));
                listener.SetMeasurementEventCallback<int>((_, value, tags, state) =>
                    ((Family)state!).Samples.Add((Labels(tags), value.ToString(CultureInfo.InvariantCulture))));
                listener.SetMeasurementEventCallback<double>((_, value, tags, state) =>
                    ((Family)state!).Samples.Add((Labels(tags), Number(value))));
                listener.Start();
                listener.RecordObservableInstruments();
            }

            var text = new StringBuilder(8192);
            foreach (var f in families.Values.OrderBy(f => f.Name, StringComparer.Ordinal))
            {
                Header(text, f.Name, f.Help, f.Type);
                foreach (var (labels, value) in f.Samples)
                    text.Append(f.Name).Append(labels.Length > 0 ? "{" + labels + "}" : "").Append(' ').Append(value).Append('\n');
            }
            WriteLatencyHistogram(text);
            return text.ToString();
        }
    }

    private void WriteLatencyHistogram(StringBuilder text)
    {
        string name = PrometheusName(CoreMetrics.CommandDurationName, "s", counter: false);
        Header(text, name, CoreMetrics.CommandDurationDescription, "histogram");
        var bounds = LatencyHistogram.BoundsSeconds;
        Span<long> buckets = stackalloc long[bounds.Length + 1];
        foreach (var s in _target.Subsystems)
            foreach (var ns in s.Namespaces)
                for (int op = 0; op < IoOps.Count; op++)
                {
                    string labels = $"subsystem=\"{Escape(s.Nqn)}\",nsid=\"{ns.NsidLabel}\",op=\"{IoOps.Label((IoOp)op)}\"";
                    double sum = ns.Counters.Latency[op].Snapshot(buckets);
                    long cumulative = 0;
                    for (int i = 0; i < buckets.Length; i++)
                    {
                        cumulative += buckets[i];
                        string le = i < bounds.Length ? bounds[i].ToString("0.##########", CultureInfo.InvariantCulture) : "+Inf";
                        text.Append(name).Append("_bucket{").Append(labels).Append(",le=\"").Append(le).Append("\"} ")
                            .Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                    }
                    text.Append(name).Append("_sum{").Append(labels).Append("} ").Append(Number(sum)).Append('\n');
                    text.Append(name).Append("_count{").Append(labels).Append("} ").Append(cumulative.ToString(CultureInfo.InvariantCulture)).Append('\n');
                }
    }

    private static void Header(StringBuilder text, string name, string help, string type)
    {
        text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
        text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    /// <summary>nvmet.namespace.read + By + counter = nvmet_namespace_read_bytes_total.</summary>
    public static string PrometheusName(string instrument, string? unit, bool counter)
    {
        var name = instrument.Replace('.', '_');
        if (unit == "By" && !name.EndsWith("_bytes", StringComparison.Ordinal)) name += "_bytes";
        if (unit == "s" && !name.EndsWith("_seconds", StringComparison.Ordinal)) name += "_seconds";
        if (counter) name += "_total";
        return name;
    }

    private static string Labels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        var b = new StringBuilder();
        foreach (var t in tags)
        {
            if (b.Length > 0) b.Append(',');
            b.Append(t.Key.Replace('.', '_')).Append("=\"").Append(Escape(Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "")).Append('"');
        }
        return b.ToString();
    }

    private static string Escape(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Number(double v) =>
        double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);
}
