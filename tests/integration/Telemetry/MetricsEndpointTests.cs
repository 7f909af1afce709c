using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Http.Headers;
using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Integration.Tests.Management;
using Nvme.Core.Telemetry;
using Target.Telemetry;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>GET /metrics after a known amount of I/O: per-namespace commands, bytes, errors and the latency
/// histogram move by exactly what was done; the connection, controller and queue gauges match what is
/// connected; the text parses as the Prometheus exposition format.</summary>
public sealed class MetricsEndpointTests(ITestOutputHelper output)
{
    private const string Nqn = ApiTarget.Nqn;
    private const int Writes = 37, Reads = 11, Bytes = 4096;

    private static async Task<PrometheusText> ScrapeAsync(HttpClient http)
    {
        using var r = await http.GetAsync("/metrics");
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == HttpStatusCode.OK, $"{(int)r.StatusCode}: {text}");
        Assert.Equal("text/plain", r.Content.Headers.ContentType?.MediaType);
        Assert.Equal("0.0.4", r.Content.Headers.ContentType?.Parameters.Single(p => p.Name == "version").Value);
        return PrometheusText.Parse(text);
    }

    [Fact]
    public async Task Metrics_MoveByExactlyTheIoDone_AndGaugesMatchWhatIsConnected()
    {
        await using var t = await ApiTarget.StartAsync(output, token: "s3cret"); // /metrics needs no token by default
        var http = t.Probes!; // the read-only probe listener
        var before = await ScrapeAsync(http);
        string[] ns1 = [$"subsystem={Nqn}", "nsid=1"];
        Assert.Equal("counter", before.Types["nvmet_namespace_commands_total"]);
        Assert.Equal("histogram", before.Types["nvmet_namespace_command_duration_seconds"]);
        Assert.Equal("gauge", before.Types["nvmet_controllers"]);
        Assert.Equal(0, before.Value("nvmet_controllers", $"subsystem={Nqn}"));

        var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], Nqn);
        try
        {
            await host.CreateIoQueuesAsync(2);
            var data = TestData.Random(Bytes, 37);
            for (int i = 0; i < Writes; i++) (await host.WriteAsync(i % 2, 1, (ulong)i * 8, data)).EnsureSuccess("write");
            var buffer = new byte[Bytes];
            for (int i = 0; i < Reads; i++) (await host.ReadAsync(i % 2, 1, (ulong)i * 8, buffer)).EnsureSuccess("read");
            (await host.FlushAsync(0, 1)).EnsureSuccess("flush");
            // Two failures: a read past the end (counts for namespace 1) and a read of a namespace that does not exist.
            Assert.False((await host.ReadAsync(0, 1, TestTarget.NamespaceBlocks - 4, buffer)).IsSuccess);
            Assert.False((await host.ReadAsync(1, 9, 0, buffer)).IsSuccess);

            var after = await ScrapeAsync(http);
            double Delta(string name, params string[] labels) => after.Value(name, labels) - before.Value(name, labels);

            Assert.Equal(Writes, Delta("nvmet_namespace_commands_total", [.. ns1, "op=write"]));
            Assert.Equal(Reads + 1, Delta("nvmet_namespace_commands_total", [.. ns1, "op=read"]));
            Assert.Equal(1, Delta("nvmet_namespace_commands_total", [.. ns1, "op=flush"]));
            Assert.Equal(0, Delta("nvmet_namespace_commands_total", [.. ns1, "op=other"]));
            Assert.Equal(Writes * Bytes, Delta("nvmet_namespace_written_bytes_total", ns1));
            Assert.Equal(Reads * Bytes, Delta("nvmet_namespace_read_bytes_total", ns1));
            Assert.Equal(1, Delta("nvmet_namespace_errors_total", [.. ns1, "status=LbaOutOfRange"]));
            Assert.Equal(1, after.Samples.Count(s => s.Name == "nvmet_namespace_errors_total"));
            Assert.Equal(1, Delta("nvmet_command_errors_total", $"subsystem={Nqn}", "status=InvalidNamespaceOrFormat"));

            // The histogram counts every command that addressed the namespace, once.
            Assert.Equal(Writes, Delta("nvmet_namespace_command_duration_seconds_count", [.. ns1, "op=write"]));
            Assert.Equal(Reads + 1, Delta("nvmet_namespace_command_duration_seconds_count", [.. ns1, "op=read"]));
            Assert.Equal(Writes, Delta("nvmet_namespace_command_duration_seconds_bucket", [.. ns1, "op=write", "le=+Inf"]));
            Assert.True(Delta("nvmet_namespace_command_duration_seconds_sum", [.. ns1, "op=write"]) > 0);

            // One controller with an admin queue and two I/O queues: three connections.
            Assert.Equal(1, after.Value("nvmet_controllers", $"subsystem={Nqn}"));
            Assert.Equal(1, after.Value("nvmet_queues", $"subsystem={Nqn}", "type=admin"));
            Assert.Equal(2, after.Value("nvmet_queues", $"subsystem={Nqn}", "type=io"));
            Assert.Equal(3, after.Value("nvmet_tcp_connections"));
            Assert.Equal(3, Delta("nvmet_tcp_connections_accepted_total"));
            Assert.Equal(0, after.Value("nvmet_commands_inflight"));
            Assert.Equal(TestTarget.NamespaceBytes, after.Value("nvmet_namespace_size_bytes", ns1));
        }
        finally { await host.DisposeAsync(); }

        // The controller and its connections go away once the host disconnected (polled: teardown is asynchronous).
        PrometheusText last;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            last = await ScrapeAsync(http);
            if (last.Value("nvmet_controllers", $"subsystem={Nqn}") == 0 && last.Value("nvmet_tcp_connections") == 0) break;
            Assert.True(DateTime.UtcNow < deadline, "the controller and connections did not go away after the host disconnected");
            await Task.Delay(25);
        }
        Assert.Equal(0, last.Value("nvmet_queues", $"subsystem={Nqn}", "type=io"));
    }

    [Fact]
    public async Task Metrics_NeedTheToken_WhenConfiguredSo()
    {
        await using var t = await ApiTarget.StartAsync(output, token: "s3cret", telemetry: new TelemetryOptions { MetricsRequireToken = true });
        var http = t.Probes!; // the read-only probe listener
        using (var r = await http.GetAsync("/metrics")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        using (var r = await http.GetAsync("/healthz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode); // probes stay open
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
        var text = await ScrapeAsync(http);
        Assert.Contains("nvmet_tcp_connections", text.Types.Keys);
    }

    /// <summary>The recorded histogram instrument (what OTLP exports) gets one measurement per command, with the
    /// subsystem, nsid and op tags, once something listens.</summary>
    [Fact]
    public async Task CommandDurationInstrument_IsRecordedWithTags_WhileListenedTo()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var meter = t.Host.Target.Metrics.Meter;
        var seen = new List<(double Seconds, Dictionary<string, object?> Tags)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (i, l) => { if (i.Meter == meter && i.Name == CoreMetrics.CommandDurationName) l.EnableMeasurementEvents(i); },
        };
        listener.SetMeasurementEventCallback<double>((_, v, tags, _) =>
        {
            lock (seen) seen.Add((v, tags.ToArray().ToDictionary(x => x.Key, x => x.Value)));
        });
        listener.Start();
        await using (var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], Nqn))
        {
            await host.CreateIoQueuesAsync(1);
            var data = TestData.Random(Bytes, 5);
            for (int i = 0; i < 5; i++) (await host.WriteAsync(0, 1, (ulong)i * 8, data)).EnsureSuccess("write");
        }
        lock (seen)
        {
            Assert.Equal(5, seen.Count);
            Assert.All(seen, m =>
            {
                Assert.True(m.Seconds > 0);
                Assert.Equal(Nqn, m.Tags["subsystem"]);
                Assert.Equal("1", m.Tags["nsid"]);
                Assert.Equal("write", m.Tags["op"]);
            });
        }
    }
}
