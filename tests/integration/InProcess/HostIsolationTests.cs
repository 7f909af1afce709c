using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Transport.Tcp;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>
/// Issue 10, finding 4: host X sends 64 x 1 MiB writes and never sends the data after the R2Ts. Before the bounds
/// X held the whole data buffer budget and host Y's 64 KiB read on another subsystem got no answer until X went
/// away; now X holds at most its share (half the budget), Y is served meanwhile, and X's commands fail at the r2t
/// deadline (its connection is closed, its buffers go back).
/// </summary>
public sealed class HostIsolationTests(ITestOutputHelper output)
{
    private const string SubY = "nqn.2026-01.io.nvmetcptarget.test:sub-y";
    private const int Mib = 1 << 20;

    [Fact]
    public async Task HostNeverSendingR2TData_DoesNotStarveAnotherHost_AndFailsAtTheR2TDeadline()
    {
        var transport = new TcpTransportOptions { R2TTimeout = TimeSpan.FromSeconds(3) };
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Subsystems[0].AllowAnyHost = true;
            c.Subsystems.Add(new SubsystemConfig { Nqn = SubY, AllowAnyHost = true, Namespaces = [new NamespaceConfig { Nsid = 1, Size = "16M" }] });
        }, transport);
        var pool = target.Host.Target.DataBuffers;
        var metrics = target.Host.TransportMetrics;

        // Host X: its command timeout is far beyond the r2t deadline, so only the target can fail these commands.
        await using var x = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions
        {
            HostNqn = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001",
            HostId = Guid.NewGuid(),
            CommandTimeout = TimeSpan.FromSeconds(120),
        });
        int r2ts = 0;
        x.Io().R2TInterceptor = _ => { Interlocked.Increment(ref r2ts); return true; }; // never answered
        var data = new byte[Mib];
        var writes = Enumerable.Range(0, 64).Select(i => x.WriteAsync(0, 1, (ulong)i * 2048, data)).ToList();
        // X gets R2Ts for its share of the 64 MiB budget (32 x 1 MiB); the other 32 wait for X's own buffers.
        Assert.True(await Poll.UntilAsync(() => Volatile.Read(ref r2ts) == 32 && pool.Waiting == 32, TimeSpan.FromSeconds(30)),
            $"X has {r2ts} R2Ts and {pool.Waiting} commands waiting");
        Assert.True(pool.ShareWaits >= 32);

        // Host Y, another subsystem: its 64 KiB write and read (budgeted buffers) are served meanwhile.
        await using var y = await NvmeTcpHost.ConnectAsync(target.Endpoint, SubY, new NvmeTcpHostOptions
        {
            HostNqn = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002",
            HostId = Guid.NewGuid(),
        });
        await y.CreateIoQueuesAsync(1);
        var pattern = TestData.Random(64 * 1024, 3);
        (await y.WriteAsync(0, 1, 0, pattern)).EnsureSuccess();
        var back = new byte[pattern.Length];
        (await y.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(pattern, back);
        // ...while X's commands were all still pending and its connection open: Y did not wait for the deadline.
        Assert.Equal(0, metrics.DeadlinesExpired(TcpDeadline.R2T));
        Assert.All(writes, w => Assert.False(w.IsCompleted));

        // X's commands fail: the target closes X's I/O connection at the r2t deadline.
        var all = Task.WhenAll(writes);
        await Assert.ThrowsAnyAsync<Exception>(() => all.WaitAsync(TimeSpan.FromSeconds(60)));
        Assert.All(writes, w => Assert.True(w.IsFaulted, $"an X write ended {w.Status}"));
        Assert.IsType<NvmeTcpConnectionClosedException>(writes[0].Exception!.InnerException);
        Assert.Equal(1, metrics.DeadlinesExpired(TcpDeadline.R2T));
        Assert.True(await Poll.UntilAsync(() => pool.InUse == 0 && pool.Waiting == 0, TimeSpan.FromSeconds(10)),
            $"{pool.InUse} buffers in use, {pool.Waiting} waiting after X's connection closed");

        // Y carries on, X's admin queue too.
        (await y.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        (await x.KeepAliveAsync()).EnsureSuccess();
    }
}
