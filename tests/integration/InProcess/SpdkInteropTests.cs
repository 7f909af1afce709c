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

    /// <summary>SPDK's bring-up of a controller (traced with SPDK v24.01's debug spdk_nvme_identify and
    /// spdk_nvme_perf): KATO 10 s on every queue's Connect, zero-length Set Features sent with an in-capsule
    /// descriptor, one AER per AERL + 1, Get Features KATO, Number of Queues asked as 1024, Get Features 1/2/4/5/7,
    /// the log pages identify reads, the discovery log read in three steps, keep-alive every KATO/2 whatever the
    /// traffic, and CIDs reused as soon as their command completed.</summary>
    [Fact]
    public async Task SpdkBringUp_AndIo_SucceedStepByStep()
    {
        await using var target = await TestTarget.StartAsync(output);
        var spdk = new NvmeTcpHostOptions { HostNqn = "", HostId = Guid.NewGuid(), SpdkStyle = true, KeepAliveTimeoutMs = 10_000 };

        // The discovery controller: the log in three steps (header, everything, the generation counter again).
        await using (var d = await NvmeTcpHost.ConnectAsync(target.Endpoint, WellKnown.DiscoveryNqn, spdk))
        {
            var header = await d.GetLogPageAsync(LogPageId.Discovery, 1024, nsid: 0);
            ulong genctr = BitConverter.ToUInt64(header, 0), records = BitConverter.ToUInt64(header, 8);
            Assert.Equal(2ul, records); // itself and the subsystem (which admits any host)
            var all = await d.GetLogPageAsync(LogPageId.Discovery, 1024 + (int)records * 1024, nsid: 0);
            var again = await d.GetLogPageAsync(LogPageId.Discovery, 8, nsid: 0);
            Assert.Equal(genctr, BitConverter.ToUInt64(again, 0));
            Assert.Equal(genctr, BitConverter.ToUInt64(all, 0));
            (await d.KeepAliveAsync()).EnsureSuccess("keep-alive on the discovery controller");
        }

        await using var host = await NvmeTcpHost.ConnectAsync(target.Endpoint, TestTarget.Nqn, spdk);
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices | 0xFF)).EnsureSuccess("AEC");
        var aers = Enumerable.Range(0, host.IdentifyController.Aerl + 1).Select(_ => host.AsyncEventRequestAsync(TimeSpan.FromSeconds(60))).ToList();
        Assert.Equal(10_000u, (await host.GetFeaturesAsync(FeatureId.KeepAliveTimer)).EnsureSuccess("KATO").Dword0);
        var queues = (await host.SetFeaturesAsync(FeatureId.NumberOfQueues, 1023u | (1023u << 16))).EnsureSuccess("Number of Queues");
        Assert.True((queues.Dword0 & 0xFFFF) >= 3, "at least 4 I/O queues granted");
        foreach (var fid in new[] { FeatureId.Arbitration, FeatureId.PowerManagement, FeatureId.TemperatureThreshold, FeatureId.NumberOfQueues })
            (await host.GetFeaturesAsync(fid)).EnsureSuccess($"Get Features 0x{fid:x2}");
        (await host.Admin.SubmitAsync(Sqe.GetFeatures(FeatureId.ErrorRecovery) with { Nsid = 1 })).EnsureSuccess("Get Features Error Recovery");
        await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList);
        await host.IdentifyAsync(IdentifyCns.Namespace, 1);
        await host.IdentifyAsync(IdentifyCns.NamespaceDescriptorList, 1);
        await host.GetLogPageAsync(LogPageId.Error, 4096);
        await host.GetLogPageAsync(LogPageId.SmartHealth, 512);
        await host.GetLogPageAsync(LogPageId.FirmwareSlot, 512);
        await host.GetLogPageAsync(LogPageId.CommandsSupportedAndEffects, 4096);
        (await host.KeepAliveAsync()).EnsureSuccess("keep-alive");

        // Four I/O queues, each connected with the admin queue's KATO; the slot-numbered CIDs come back at once.
        await host.CreateIoQueuesAsync(4);
        for (int q = 0; q < 4; q++)
            for (int i = 0; i < 50; i++)
            {
                var data = TestData.Random(4096, q * 100 + i);
                (await host.WriteAsync(q, 1, (ulong)(q * 400 + i * 8), data)).EnsureSuccess("write");
                var back = new byte[4096];
                (await host.ReadAsync(q, 1, (ulong)(q * 400 + i * 8), back)).EnsureSuccess("read");
                Assert.Equal(data, back);
            }
        Assert.All(aers, a => Assert.False(a.IsCompleted, "no event happened, so every AER stays parked"));
        // Nothing of this was an error for the target.
        Assert.All(target.Host.Target.Controllers, c => Assert.Equal(0, c.ErrorCount));
    }
}
