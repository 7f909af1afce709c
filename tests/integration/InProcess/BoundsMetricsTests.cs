using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>The bounds' metrics in the Prometheus exposition, with the names and labels README documents.</summary>
public sealed class BoundsMetricsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task BoundsMetrics_AreExposedWithTheirLabels_AndCount()
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Subsystems[0].AllowAnyHost = true);
        var text = target.Host.Metrics.Collect();
        foreach (var sample in new[]
                 {
                     "nvmet_tcp_connections_rejected_total{reason=\"limit\"} 0",
                     "nvmet_tcp_deadlines_expired_total{deadline=\"connect\"} 0",
                     "nvmet_tcp_deadlines_expired_total{deadline=\"pdu\"} 0",
                     "nvmet_tcp_deadlines_expired_total{deadline=\"r2t\"} 0",
                     "nvmet_connects_rejected_total{reason=\"unknown_subsystem\"} 0",
                     "nvmet_connects_rejected_total{reason=\"port\"} 0",
                     "nvmet_connects_rejected_total{reason=\"host_not_allowed\"} 0",
                     "nvmet_connects_rejected_total{reason=\"controller_limit\"} 0",
                     "nvmet_connects_rejected_total{reason=\"invalid\"} 0",
                     "nvmet_data_buffer_bytes{state=\"in_use\"} 0",
                     "nvmet_data_buffer_bytes{state=\"created\"} 0",
                     "nvmet_data_buffer_budget_bytes 67108864",
                     "nvmet_data_buffer_share_waits_total 0",
                 })
            Assert.Contains(sample + "\n", text);
        Assert.Contains("# TYPE nvmet_data_buffer_bytes gauge", text);
        Assert.Contains("# TYPE nvmet_tcp_deadlines_expired_total counter", text);

        await using (var q = await HostQueue.OpenAsync(target.Endpoint))
            Assert.Equal(0x4182, (await q.ConnectAsync("nqn.2026-01.io.example:nosuch", "nqn.2026-01.io.example:h", Guid.NewGuid(), 0, 31, 0xFFFF, 0)).Status);
        await using (var host = await target.ConnectWithIoAsync(1))
            (await host.WriteAsync(0, 1, 0, new byte[64 * 1024])).EnsureSuccess();
        text = target.Host.Metrics.Collect();
        Assert.Contains("nvmet_connects_rejected_total{reason=\"unknown_subsystem\"} 1\n", text);
        Assert.Contains("nvmet_data_buffer_bytes{state=\"created\"} 65536\n", text); // the 64 KiB write's buffer, kept for reuse
    }
}
