using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>Connections come and go without leaving controllers, queues or memory behind.</summary>
public sealed class LeakTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ManyConnectDisconnectCycles_LeaveNoControllersQueuesOrHeapGrowth()
    {
        await using var target = await TestTarget.StartAsync();
        async Task Cycle(int n)
        {
            for (int i = 0; i < n; i++)
            {
                await using var host = await target.ConnectWithIoAsync(ioQueues: 2);
                var data = new byte[8192];
                Random.Shared.NextBytes(data);
                Assert.Equal(0, (await host.WriteAsync(0, 1, (ulong)i * 16, data)).Status);
            }
            for (int i = 0; i < 100 && (target.Host.Target.Controllers.Count > 0 || target.Host.Target.QueueCount > 0); i++)
                await Task.Delay(50);
        }

        await Cycle(20); // warm up: JIT, pools, the memory namespace's first chunk
        long before = GC.GetTotalMemory(forceFullCollection: true);
        await Cycle(100);
        long after = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"heap before {before / 1024} KiB, after 100 more cycles (300 connections) {after / 1024} KiB");

        Assert.Empty(target.Host.Target.Controllers);
        Assert.Equal(0, target.Host.Target.QueueCount);
        Assert.True(after - before < 2 << 20, $"heap grew by {(after - before) / 1024} KiB over 100 connect/disconnect cycles");
    }
}
