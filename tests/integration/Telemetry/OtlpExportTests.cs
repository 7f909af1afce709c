using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Integration.Tests.Initiator;
using Integration.Tests.InProcess;
using Integration.Tests.Management;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Target.Telemetry;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>OTLP/HTTP (protobuf) export to a tiny collector started by the test: metrics arrive at /v1/metrics
/// while the target runs, and the connection and admin command spans at /v1/traces (at the latest when the
/// target stops, which flushes the exporters).</summary>
public sealed class OtlpExportTests(ITestOutputHelper output)
{
    private sealed record Request(string Path, string? ContentType, byte[] Body)
    {
        /// <summary>Protobuf keeps strings as UTF-8 bytes: metric and span names can be found in the body.</summary>
        public bool Mentions(string text) => Body.AsSpan().IndexOf(Encoding.UTF8.GetBytes(text)) >= 0;
    }

    [Fact]
    public async Task MetricsAndTraces_ArriveAtTheConfiguredOtlpEndpoint()
    {
        var received = new ConcurrentQueue<Request>();
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0));
        await using var collector = builder.Build();
        collector.Run(async ctx =>
        {
            using var body = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(body);
            received.Enqueue(new Request(ctx.Request.Path, ctx.Request.ContentType, body.ToArray()));
            ctx.Response.StatusCode = StatusCodes.Status200OK;
            ctx.Response.ContentType = "application/x-protobuf"; // an empty Export*ServiceResponse
        });
        await collector.StartAsync();
        var endpoint = collector.Urls.Single();
        output.WriteLine($"collector at {endpoint}");

        var t = await ApiTarget.StartAsync(output, telemetry: new TelemetryOptions
        {
            OtlpEndpoint = endpoint,
            OtlpExportInterval = TimeSpan.FromMilliseconds(250),
        });
        try
        {
            await using (var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn))
            {
                await host.CreateIoQueuesAsync(1);
                var data = TestData.Random(4096, 1);
                for (int i = 0; i < 5; i++) (await host.WriteAsync(0, 1, (ulong)i * 8, data)).EnsureSuccess("write");
            }
            // Periodic export: a push that carries the per-namespace counters (polled, generous bound).
            Assert.True(await Poll.UntilAsync(() => received.Any(r => r.Path == "/v1/metrics" && r.Mentions("nvmet.namespace.commands")),
                TimeSpan.FromSeconds(20)), "no OTLP metrics push mentioning nvmet.namespace.commands arrived");
        }
        finally { await t.DisposeAsync(); } // stops the exporters: the pending spans are pushed now

        var metrics = received.Where(r => r.Path == "/v1/metrics").ToList();
        Assert.All(metrics, r => Assert.Equal("application/x-protobuf", r.ContentType));
        Assert.Contains(metrics, r => r.Mentions("nvmet.namespace.command.duration") && r.Mentions("nvmet.tcp.connections") && r.Mentions("nvme-tcp-target"));
        var traces = received.Where(r => r.Path == "/v1/traces").ToList();
        Assert.Contains(traces, r => r.Mentions("NVMe Connect"));
        Assert.Contains(traces, r => r.Mentions("NVMe Identify"));
        Assert.Contains(traces, r => r.Mentions("NVMe/TCP connection"));
        Assert.DoesNotContain(traces, r => r.Mentions("NVMe Write")); // I/O is not traced by default
        Assert.DoesNotContain(received, r => r.Path is not ("/v1/metrics" or "/v1/traces"));
    }
}
