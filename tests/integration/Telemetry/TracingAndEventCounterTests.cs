using System.Diagnostics;
using System.Net;
using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Integration.Tests.Management;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;
using Target.Telemetry;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>Traces (an Activity per connection and per admin command; I/O only when sampled) and the target-wide
/// event counters (async events sent, keep-alive expiries) as /metrics shows them.</summary>
public sealed class TracingAndEventCounterTests(ITestOutputHelper output)
{
    private sealed class Recorder : IDisposable
    {
        private readonly ActivityListener _listener;
        public readonly List<Activity> Stopped = [];

        public Recorder()
        {
            _listener = new ActivityListener
            {
                ShouldListenTo = s => s.Name == NvmeTelemetry.ActivitySourceName,
                Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
                ActivityStopped = a => { lock (Stopped) Stopped.Add(a); },
            };
            ActivitySource.AddActivityListener(_listener);
        }

        public List<Activity> Snapshot() { lock (Stopped) return [.. Stopped]; }
        public void Dispose() => _listener.Dispose();
    }

    private static async Task WriteFiveAsync(ApiTarget t)
    {
        await using var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn);
        await host.CreateIoQueuesAsync(1);
        var data = TestData.Random(4096, 9);
        for (int i = 0; i < 5; i++) (await host.WriteAsync(0, 1, (ulong)i * 8, data)).EnsureSuccess("write");
    }

    [Fact]
    public async Task ConnectionsAndAdminCommandsAreTraced_IoOnlyWhenSampled()
    {
        using var recorder = new Recorder();
        await using (var t = await ApiTarget.StartAsync(output)) // default: --trace-io-sample-rate 0
        {
            await WriteFiveAsync(t);
            Assert.True(await Poll.UntilAsync(() => recorder.Snapshot().Count(a => a.DisplayName == "NVMe/TCP connection") == 2, TimeSpan.FromSeconds(10)));
        }
        var spans = recorder.Snapshot();
        Assert.DoesNotContain(spans, a => a.DisplayName == "NVMe Write");
        var connections = spans.Where(a => a.DisplayName == "NVMe/TCP connection").ToList();
        var connects = spans.Where(a => a.DisplayName == "NVMe Connect").ToList();
        Assert.Equal(2, connects.Count); // admin queue and I/O queue
        // Each Connect is a child of its connection's span, and carries the outcome.
        Assert.All(connects, c => Assert.Contains(connections, k => k.SpanId == c.ParentSpanId && k.TraceId == c.TraceId));
        Assert.All(connects, c => Assert.Equal("Success", c.GetTagItem("nvme.status")));
        Assert.Contains(spans, a => a.DisplayName == "NVMe Identify" && (string?)a.GetTagItem("nvme.subsystem") == ApiTarget.Nqn);
        Assert.Contains(connections, k => (string?)k.GetTagItem("nvme.subsystem") == ApiTarget.Nqn && (ushort?)k.GetTagItem("nvme.qid") == 1);

        recorder.Stopped.Clear();
        await using (var t = await ApiTarget.StartAsync(output, telemetry: new TelemetryOptions { TraceIoSampleRate = 1 }))
            await WriteFiveAsync(t);
        var writes = recorder.Snapshot().Where(a => a.DisplayName == "NVMe Write").ToList();
        Assert.Equal(5, writes.Count);
        Assert.All(writes, w => Assert.Equal(1u, w.GetTagItem("nvme.nsid")));
    }

    [Fact]
    public async Task AsyncEventsAndKeepAliveExpiries_AreCounted()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var scrape = t.Probes!; // the read-only probe listener
        async Task<PrometheusText> Metrics() => PrometheusText.Parse(await scrape.GetStringAsync("/metrics"));

        // One namespace-changed event to a host with a parked Async Event Request.
        await using (var host = await t.ConnectAsync())
        {
            (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices)).EnsureSuccess();
            var aer = host.AsyncEventRequestAsync(TimeSpan.FromSeconds(20));
            (await host.KeepAliveAsync()).EnsureSuccess(); // the AER is parked before the change
            await t.Http.PostJsonAsync(Api.Sub() + "/namespaces", new { nsid = 2, backend = "memory", size = "4M" }, HttpStatusCode.Created);
            (await aer).EnsureSuccess("AER");
        }
        Assert.Equal(1, (await Metrics()).Value("nvmet_async_events_sent_total"));

        // A host that goes silent past its 1 s keep-alive timeout.
        var silent = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { KeepAliveTimeoutMs = 1000 });
        try
        {
            Assert.True(await Poll.UntilAsync(() => t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.Controllers.Count == 0,
                TimeSpan.FromSeconds(15)), "the silent host's controller was not destroyed");
            Assert.Equal(1, (await Metrics()).Value("nvmet_keep_alive_expired_total"));
        }
        finally { await silent.DisposeAsync(); }
    }
}
