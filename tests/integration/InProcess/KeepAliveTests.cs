using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class KeepAliveTests(ITestOutputHelper output)
{
    [Fact]
    public async Task SilentHost_ControllerExpiresAndConnectionsClose()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { KeepAliveTimeoutMs = 1000 });
        var model = target.Host.Target;
        Assert.Contains(model.Controllers, c => c.Cntlid == host.Cntlid);

        // Send nothing. Generous upper bound: KATO is 1 s, the target scans every 250 ms.
        Assert.True(await Poll.UntilAsync(() => model.Controllers.Count == 0, TimeSpan.FromSeconds(15)),
            "controller still present long after its keep-alive timeout");
        var closed = Task.WhenAll(host.Admin.Closed, host.Io().Closed);
        Assert.Same(closed, await Task.WhenAny(closed, Task.Delay(TimeSpan.FromSeconds(15))));
        Assert.True(host.Admin.Failure is null, $"admin connection failed: {host.Admin.Failure}"); // a clean close, not a protocol error
        await Assert.ThrowsAsync<NvmeTcpConnectionClosedException>(() => host.KeepAliveAsync());

        // The target still accepts new hosts.
        await using var again = await target.ConnectWithIoAsync(1);
        (await again.KeepAliveAsync()).EnsureSuccess();
    }
}
