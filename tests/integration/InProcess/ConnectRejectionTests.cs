using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class ConnectRejectionTests(ITestOutputHelper output)
{
    private const string AllowedHost = "nqn.2026-01.io.example:allowed-host";
    private const string OtherHost = "nqn.2026-01.io.example:intruder";
    private static readonly Guid HostId = new("0f4c2d1e-3a5b-4c6d-8e7f-901a2b3c4d5e");

    [Fact]
    public async Task UnknownSubsystem_InvalidParametersPointingAtSubnqn()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var q = await HostQueue.OpenAsync(target.Endpoint);
        var c = await q.ConnectAsync("nqn.2026-01.io.nvmetcptarget.test:nope", AllowedHost, HostId, 0, 31, 0xFFFF, 5000);
        Assert.Equal(0x4182, c.Status);
        Assert.Equal(0x10100u, c.Dword0);
        Assert.Empty(target.Host.Target.Controllers);
    }

    [Fact]
    public async Task HostNotAllowed_InvalidHost()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Subsystems[0].AllowAnyHost = false;
            c.Subsystems[0].AllowedHosts.Add(AllowedHost);
        });
        await using (var q = await HostQueue.OpenAsync(target.Endpoint))
        {
            var c = await q.ConnectAsync(TestTarget.Nqn, OtherHost, HostId, 0, 31, 0xFFFF, 5000);
            Assert.Equal(0x4184, c.Status);
            Assert.Empty(target.Host.Target.Controllers);
        }
        // The allowed host gets in.
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HostNqn = AllowedHost, HostId = HostId });
        (await host.KeepAliveAsync()).EnsureSuccess();
    }

    [Fact]
    public async Task SqSizeAboveMqes_InvalidParametersPointingAtSqsize()
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Limits.Mqes = 63);
        await using (var q = await HostQueue.OpenAsync(target.Endpoint))
        {
            var c = await q.ConnectAsync(TestTarget.Nqn, AllowedHost, HostId, 0, 64, 0xFFFF, 5000);
            Assert.Equal(0x4182, c.Status);
            Assert.Equal(44u, c.Dword0); // IPO: SQSIZE, in the command (IATTR 0)
            Assert.Empty(target.Host.Target.Controllers);
        }

        await using var host = await target.ConnectAsync(new NvmeTcpHostOptions { HostNqn = AllowedHost, HostId = HostId, IoSqSize = 63 });
        Assert.Equal(63ul, host.Cap & 0xFFFF);
        (await host.SetFeaturesAsync(Nvme.Core.Spec.FeatureId.NumberOfQueues, 0)).EnsureSuccess();
        foreach (ushort sqsize in new ushort[] { 64, 0 })
        {
            await using var io = await HostQueue.OpenAsync(target.Endpoint);
            var c = await io.ConnectAsync(TestTarget.Nqn, AllowedHost, HostId, 1, sqsize, host.Cntlid, 0);
            Assert.Equal(0x4182, c.Status);
            Assert.Equal(44u, c.Dword0);
        }
        // Wrong CNTLID: points at the CNTLID in the Connect data.
        await using (var io = await HostQueue.OpenAsync(target.Endpoint))
        {
            var c = await io.ConnectAsync(TestTarget.Nqn, AllowedHost, HostId, 1, 63, (ushort)(host.Cntlid + 100), 0);
            Assert.Equal(0x4182, c.Status);
            Assert.Equal(0x10010u, c.Dword0);
        }
        // QID beyond the one queue granted.
        await using (var io = await HostQueue.OpenAsync(target.Endpoint))
        {
            var c = await io.ConnectAsync(TestTarget.Nqn, AllowedHost, HostId, 2, 63, host.Cntlid, 0);
            Assert.Equal(0x4182, c.Status);
            Assert.Equal(42u, c.Dword0);
        }
        // A valid I/O queue still connects afterwards.
        await host.CreateIoQueuesAsync(1);
        var data = TestData.Random(4096, 1);
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();
    }
}
