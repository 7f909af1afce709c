using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>What SPDK's initiator (spdk_nvme_perf, spdk_nvme_identify) does differently from Linux, driven by the
/// test initiator's switches over TCP: an empty Host NQN, a data alignment (HPDA) in its ICReq.</summary>
public sealed class SpdkInteropTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData((byte)31, false)]
    [InlineData((byte)31, true)]
    [InlineData((byte)3, true)]
    public async Task Hpda_IsHonoured_ReadsOfEverySizeArriveAligned(byte hpda, bool digests)
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { Hpda = hpda, HeaderDigest = digests, DataDigest = digests });
        foreach (int size in new[] { 512, 4096, 128 * 1024, 1024 * 1024 })
        {
            var data = TestData.Random(size, size);
            (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess("write");
            var back = new byte[size];
            (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess("read"); // the reader checks PDO against HPDA and that the PAD is zero
            Assert.Equal(data, back);
        }
        // Admin data (Identify) comes as C2HData too.
        var id = await host.IdentifyAsync(IdentifyCns.Controller);
        Assert.Equal(4096, id.Length);
    }

    [Fact]
    public async Task EmptyHostNqn_ConnectsWhereAnyHostMay_AndDoesIo()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
            c.Subsystems.Add(new Target.Configuration.SubsystemConfig
            {
                Nqn = "nqn.2026-01.io.nvmetcptarget.test:listed",
                AllowedHosts = ["nqn.2026-01.io.example:someone"],
                Namespaces = [new Target.Configuration.NamespaceConfig { Nsid = 1, Size = "1M" }],
            }));
        var nameless = new NvmeTcpHostOptions { HostNqn = "", HostId = Guid.NewGuid() };
        await using (var host = await target.ConnectWithIoAsync(1, nameless))
        {
            var data = TestData.Random(4096, 3);
            (await host.WriteAsync(0, 1, 8, data)).EnsureSuccess("write");
            var back = new byte[4096];
            (await host.ReadAsync(0, 1, 8, back)).EnsureSuccess("read");
            Assert.Equal(data, back);
            Assert.Equal("", Assert.Single(target.Host.Target.Controllers).HostNqn);
        }
        // Never a match for an allowed-host list.
        await using var q = await HostQueue.OpenAsync(target.Endpoint);
        var c = await q.ConnectAsync("nqn.2026-01.io.nvmetcptarget.test:listed", "", nameless.HostId, 0, 31, 0xFFFF, 5000);
        Assert.Equal(0x4184, c.Status); // Connect Invalid Host
    }
}
