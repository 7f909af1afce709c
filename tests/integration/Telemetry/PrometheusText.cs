using System.Globalization;
using System.Text.RegularExpressions;

namespace Integration.Tests.Telemetry;

/// <summary>A small, strict parser of the Prometheus text exposition format (0.0.4): every sample belongs to a
/// family declared by "# HELP" and "# TYPE" lines before it, names and labels are well formed, values parse,
/// and histograms have cumulative buckets ending in +Inf equal to _count. Throws on anything else.</summary>
internal sealed partial class PrometheusText
{
    public sealed record Sample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

    public Dictionary<string, string> Types { get; } = [];
    public Dictionary<string, string> Help { get; } = [];
    public List<Sample> Samples { get; } = [];

    [GeneratedRegex(@"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"\G([a-zA-Z_][a-zA-Z0-9_]*)=""((?:[^""\\\n]|\\[\\""n])*)""(,|$)")]
    private static partial Regex LabelPair();

    public static PrometheusText Parse(string text)
    {
        var p = new PrometheusText();
        var lines = text.Split('\n');
        Assert.Equal("", lines[^1]); // ends with a line feed
        foreach (var line in lines[..^1])
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                var rest = line[7..];
                int sp = rest.IndexOf(' ');
                Assert.True(sp > 0, $"HELP without text: {line}");
                var name = rest[..sp];
                Assert.Matches(MetricName(), name);
                Assert.False(p.Help.ContainsKey(name), $"second HELP for {name}");
                Assert.False(p.Samples.Any(s => Family(s.Name, p.Types) == name), $"HELP for {name} after its samples");
                p.Help[name] = rest[(sp + 1)..];
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line[7..].Split(' ');
                Assert.Equal(2, parts.Length);
                Assert.Matches(MetricName(), parts[0]);
                Assert.Contains(parts[1], new[] { "counter", "gauge", "histogram", "summary", "untyped" });
                Assert.False(p.Types.ContainsKey(parts[0]), $"second TYPE for {parts[0]}");
                p.Types[parts[0]] = parts[1];
                continue;
            }
            Assert.False(line.StartsWith('#'), $"unexpected comment: {line}");
            Assert.False(string.IsNullOrWhiteSpace(line), "empty line");
            p.Samples.Add(ParseSample(line, p.Types));
        }
        foreach (var name in p.Types.Keys) Assert.True(p.Help.ContainsKey(name), $"{name} has TYPE but no HELP");
        p.CheckHistograms();
        return p;
    }

    private static Sample ParseSample(string line, Dictionary<string, string> types)
    {
        int brace = line.IndexOf('{');
        int space = line.LastIndexOf(' ');
        Assert.True(space > 0, $"sample without value: {line}");
        string name;
        var labels = new Dictionary<string, string>();
        if (brace > 0 && brace < space)
        {
            name = line[..brace];
            int close = line.LastIndexOf('}');
            Assert.True(close == space - 1, $"malformed labels: {line}");
            var body = line[(brace + 1)..close];
            int at = 0;
            while (at < body.Length)
            {
                var m = LabelPair().Match(body, at);
                Assert.True(m.Success, $"malformed label at {at} in {line}");
                Assert.True(labels.TryAdd(m.Groups[1].Value, Unescape(m.Groups[2].Value)), $"duplicate label in {line}");
                at = m.Index + m.Length;
            }
        }
        else name = line[..space];
        Assert.Matches(MetricName(), name);
        var family = Family(name, types);
        Assert.True(types.ContainsKey(family), $"sample {name} before (or without) a TYPE line for {family}");
        var text = line[(space + 1)..];
        double value = text switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture),
        };
        if (types[family] == "counter") Assert.True(value >= 0, $"negative counter: {line}");
        return new Sample(name, labels, value);
    }

    /// <summary>The family a sample belongs to: histogram samples carry a _bucket, _sum or _count suffix.</summary>
    private static string Family(string name, Dictionary<string, string> types)
    {
        foreach (var suffix in new[] { "_bucket", "_sum", "_count" })
            if (name.EndsWith(suffix, StringComparison.Ordinal) && types.TryGetValue(name[..^suffix.Length], out var t) && t == "histogram")
                return name[..^suffix.Length];
        return name;
    }

    private static string Unescape(string v) => v.Replace("\\n", "\n").Replace("\\\"", "\"").Replace("\\\\", "\\");

    private void CheckHistograms()
    {
        foreach (var (family, type) in Types.Where(t => t.Value == "histogram"))
        {
            var series = Samples.Where(s => s.Name == family + "_bucket")
                .GroupBy(s => Key(s.Labels.Where(l => l.Key != "le")));
            foreach (var g in series)
            {
                var buckets = g.Select(s => (Le: s.Labels["le"] == "+Inf" ? double.PositiveInfinity : double.Parse(s.Labels["le"], CultureInfo.InvariantCulture), s.Value)).ToList();
                for (int i = 1; i < buckets.Count; i++)
                {
                    Assert.True(buckets[i].Le > buckets[i - 1].Le, $"{family}: le not increasing");
                    Assert.True(buckets[i].Value >= buckets[i - 1].Value, $"{family}: buckets not cumulative");
                }
                Assert.Equal(double.PositiveInfinity, buckets[^1].Le);
                var count = Samples.Single(s => s.Name == family + "_count" && Key(s.Labels) == g.Key);
                Assert.Equal(buckets[^1].Value, count.Value);
                Assert.Single(Samples, s => s.Name == family + "_sum" && Key(s.Labels) == g.Key);
            }
        }
    }

    private static string Key(IEnumerable<KeyValuePair<string, string>> labels) =>
        string.Join(",", labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}"));

    /// <summary>The value of the one sample named <paramref name="name"/> whose labels include all of
    /// <paramref name="labels"/> ("key=value"); 0 when there is none (a counter not yet seen).</summary>
    public double Value(string name, params string[] labels)
    {
        var matches = Samples.Where(s => s.Name == name && labels.All(l =>
        {
            int eq = l.IndexOf('=');
            return s.Labels.TryGetValue(l[..eq], out var v) && v == l[(eq + 1)..];
        })).ToList();
        Assert.True(matches.Count <= 1, $"{matches.Count} samples of {name} match {string.Join(",", labels)}");
        return matches.Count == 0 ? 0 : matches[0].Value;
    }
}
