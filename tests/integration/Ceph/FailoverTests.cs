using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Integration.Tests.Initiator;
using Integration.Tests.InProcess;
using Nvme.Core;
using Nvme.Core.Spec;
using Target;
using Target.Cli;
using Target.Configuration;
using Target.Management;
using Xunit.Abstractions;

namespace Integration.Tests.Ceph;

/// <summary>
/// Automatic failover of ANA groups between gateways through a RADOS lock with a lease, against the real single-node
/// cluster: one gateway owns a group (optimized), the others are non-optimized; a planned move and a graceful stop hand
/// it over without fencing anyone; a gateway killed with SIGKILL loses it to a survivor once its lease runs out, and the
/// survivor blocklists the dead gateway's Ceph client; a restarted gateway comes back non-optimized; a gateway that was
/// only frozen (SIGSTOP) finds itself blocklisted when it wakes up, turns its paths inaccessible, and its writes fail
/// with a path status instead of reaching the image.
/// </summary>
[Collection(CephCollection.Name)]
public sealed class FailoverTests(CephCluster ceph, ITestOutputHelper output)
{
    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static string NewNqn() => "nqn.2026-01.io.nvmetcptarget.test:fo-" + Guid.NewGuid().ToString("N")[..8];

    private TargetConfig Gateway(string nqn, string image, string name, ushort portId, ushort cntlidMin)
    {
        var config = TestTarget.DefaultConfig();
        config.Ports[0].Id = portId;
        config.Subsystems[0].Nqn = nqn;
        config.Subsystems[0].Failover = true;
        (config.Subsystems[0].CntlidMin, config.Subsystems[0].CntlidMax) = (cntlidMin, (ushort)(cntlidMin + 99));
        config.Subsystems[0].Namespaces = [new NamespaceConfig { Nsid = 1, Backend = "rbd", Pool = CephCluster.Pool, Image = image, Size = "16M", CephConf = ceph.Conf }];
        config.Gateway = new GatewayConfig { Name = name, LeaseSeconds = 2 };
        return config;
    }

    private static AnaGroupInfo Group(TargetHost h, string nqn) => h.Manager.GetAna(nqn).Groups.Single(g => g.Group == 1);

    [Fact]
    public async Task TwoGateways_OneOwnsTheGroup_PlannedMoveAndGracefulStopHandItOver()
    {
        using var logs = Integration.Tests.LinuxHost.LinuxTarget.Logs(output.WriteLine);
        string nqn = NewNqn(), image = "fo-" + Guid.NewGuid().ToString("N")[..8];
        await using var a = await TargetHost.StartAsync(Gateway(nqn, image, "gw-a", 1, 1), logs);
        var ga = Group(a, nqn);
        Assert.True(ga.Managed);
        Assert.Equal("optimized", ga.State);
        Assert.Equal(("gw-a", true), (ga.Owner!.Gateway, ga.Owner.Self));
        TargetHost? b = await TargetHost.StartAsync(Gateway(nqn, image, "gw-b", 2, 100), logs);
        try
        {
            // B starts non-optimized (it was so before its port listened) and sees A as the owner.
            var gb = Group(b, nqn);
            Assert.Equal("non-optimized", gb.State);
            Assert.Equal(("gw-a", false), (gb.Owner!.Gateway, gb.Owner.Self));
            Assert.True(await Poll.UntilAsync(() => Group(a, nqn).Gateways is ["gw-a", "gw-b"], TimeSpan.FromSeconds(10)), "A never saw both gateways alive");

            // A host on B: the ANA log says non-optimized, and I/O works (a non-optimized path is accessible).
            await using (var host = await NvmeTcpHost.ConnectAsync(b.Endpoints[0], nqn))
            {
                await host.CreateIoQueuesAsync(1);
                var log = await host.GetLogPageAsync(Nvme.Core.Spec.LogPageId.AsymmetricNamespaceAccess, 4096);
                var d = System.Runtime.InteropServices.MemoryMarshal.Read<Nvme.Core.Spec.AnaGroupDescriptor>(log.AsSpan(Nvme.Core.Spec.AnaLogHeader.Size));
                Assert.Equal((1u, (byte)Nvme.Core.Model.AnaState.NonOptimized), (d.GroupId, (byte)(d.State & 0x0f)));
                var data = new byte[4096];
                new Random(7).NextBytes(data);
                (await host.WriteAsync(0, 1, 8, data)).EnsureSuccess("write through the non-optimized gateway");
            }

            // The operator cannot set a managed group's state; a planned move hands it over instead.
            var refused = await Assert.ThrowsAsync<ManagementException>(() => b.Manager.SetAnaStateAsync(nqn, 1, "optimized", null));
            Assert.Equal(ManagementError.Conflict, refused.Kind);
            Assert.Contains("under automatic failover", refused.Message);
            var unknown = await Assert.ThrowsAsync<ManagementException>(() => b.Manager.SetAnaOwnerAsync(nqn, 1, "gw-x"));
            Assert.Contains("gateway 'gw-x' does not serve ANA group 1", unknown.Message);
            var moved = await a.Manager.SetAnaOwnerAsync(nqn, 1, "gw-b"); // asked on the old owner
            Assert.Equal("gw-b", moved.Owner!.Gateway);
            Assert.Equal("non-optimized", Group(a, nqn).State);
            Assert.True(await Poll.UntilAsync(() => Group(b, nqn).State == "optimized", TimeSpan.FromSeconds(5)));
            var back = await a.Manager.SetAnaOwnerAsync(nqn, 1, "gw-a"); // asked on the new owner's peer for itself
            Assert.True(back.Owner!.Self);
            Assert.Equal("optimized", Group(a, nqn).State);
            Assert.True(await Poll.UntilAsync(() => Group(b, nqn).State == "non-optimized", TimeSpan.FromSeconds(5)));
            Assert.Equal("non-optimized", Group(b, nqn).State);

            // A graceful stop releases the group: B takes it over within a tick, not after a lease.
            var sw = Stopwatch.StartNew();
            await a.StopAsync();
            Assert.True(await Poll.UntilAsync(() => Group(b, nqn).State == "optimized", TimeSpan.FromSeconds(10)), "B never took the group over after A stopped");
            output.WriteLine($"after A's graceful stop B was optimized within {sw.ElapsedMilliseconds} ms (lease 2 s)");
            Assert.True(Group(b, nqn).Owner!.Self);
            // Took over twice (the move to it, the stop of A), owns one group.
            var metrics = b.Metrics.Collect();
            Assert.Contains("nvmet_ana_takeovers_total 2", metrics);
            Assert.Contains("nvmet_ana_groups_owned 1", metrics);

            // The image several gateways write has no exclusive-lock (librbd would move a lock on every change of writer).
            var (code, info) = await ceph.ToolAsync("rbd", "--conf", ceph.Conf, "info", $"{CephCluster.Pool}/{image}");
            Assert.True(code == 0, info);
            var features = info.Split('\n').Single(l => l.TrimStart().StartsWith("features:", StringComparison.Ordinal));
            Assert.Contains("layering", features);
            Assert.DoesNotContain("exclusive-lock", features);
        }
        finally
        {
            if (b != null) await b.DisposeAsync();
        }
    }

    // ------------------------------------------------------------------ gateways as processes

    private Task<GatewayProcess> StartProcessAsync(string nqn, string image, string name, int port, string cntlids) =>
        GatewayProcess.StartAsync(name, port, new Dictionary<string, string> { ["CEPH_CONF"] = ceph.Conf },
            "--listen", $"127.0.0.1:{port}", "--nqn", nqn, "--namespace", $"rbd:{CephCluster.Pool}/{image}:16M", "--allow-any-host",
            "--failover", "--gateway-name", name, "--failover-lease", "2", "--cntlid-range", cntlids);

    [Fact]
    public async Task SigkillTheOwner_SurvivorTakesOverAndBlocklistsIt_Restarted_ComesBackNonOptimized_FrozenOwnerIsFenced()
    {
        string nqn = NewNqn(), image = "fo-" + Guid.NewGuid().ToString("N")[..8];
        int pa = FreePort(), pb = FreePort();
        GatewayProcess? a = await StartProcessAsync(nqn, image, "gw-a", pa, "1-99");
        GatewayProcess? b = null;
        try
        {
            b = await StartProcessAsync(nqn, image, "gw-b", pb, "100-199");
            var owner = await a.GroupAsync(nqn);
            Assert.Equal(("optimized", "gw-a"), (owner.State, owner.Owner!.Gateway));
            Assert.Equal("non-optimized", (await b.GroupAsync(nqn)).State);
            string deadAddress = owner.Owner.Address;
            Assert.Matches(@"^\d+\.\d+\.\d+\.\d+:\d+/\d+$", deadAddress);

            // SIGKILL: nothing is released; B takes over once A's lease (2 s) has run out, and blocklists A.
            var sw = Stopwatch.StartNew();
            await a.KillAsync();
            Assert.True(await Poll.UntilAsync(async () => (await b.GroupAsync(nqn)).State == "optimized", TimeSpan.FromSeconds(20)), "B never took over");
            output.WriteLine($"B optimized {sw.ElapsedMilliseconds} ms after A was killed (lease 2 s)");
            Assert.True(sw.Elapsed >= TimeSpan.FromSeconds(1), "B took over before A's lease could have run out");
            Assert.True(b.Log.Text.Contains("took ANA group 1 over from gw-a; the previous owner gw-a"), b.Log.Text);
            var (code, blocklist) = await ceph.ToolAsync("ceph", "--conf", ceph.Conf, "osd", "blocklist", "ls");
            Assert.True(code == 0, blocklist);
            Assert.Contains(deadAddress, blocklist);
            await a.DisposeAsync();
            output.WriteLine($"---- killed gw-a:\n{a.Log.Text}");

            // Restarted, A is a new Ceph client: not blocklisted, and non-optimized (B owns the group).
            a = await StartProcessAsync(nqn, image, "gw-a", pa, "1-99");
            var restarted = await a.GroupAsync(nqn);
            Assert.Equal(("non-optimized", "gw-b"), (restarted.State, restarted.Owner!.Gateway));
            Assert.NotEqual(deadAddress, (await a.GroupAsync(nqn)).Owner!.Address);

            // Data written through B (the owner) reads back through A.
            var data = new byte[8192];
            new Random(11).NextBytes(data);
            await using (var hb = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, pb), nqn))
            {
                await hb.CreateIoQueuesAsync(1);
                (await hb.WriteAsync(0, 1, 64, data)).EnsureSuccess("write through B");
            }
            await using (var ha = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, pa), nqn))
            {
                await ha.CreateIoQueuesAsync(1);
                var back = new byte[data.Length];
                (await ha.ReadAsync(0, 1, 64, back)).EnsureSuccess("read through A");
                Assert.Equal(data, back);
            }

            // A frozen owner (SIGSTOP) is fenced: B takes over and blocklists it; woken up, B's writes fail with a path status.
            await using var zombieHost = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, pb), nqn, new NvmeTcpHostOptions { KeepAliveTimeoutMs = 0 });
            await zombieHost.CreateIoQueuesAsync(1);
            b.Freeze();
            try
            {
                Assert.True(await Poll.UntilAsync(async () => (await a.GroupAsync(nqn)).State == "optimized", TimeSpan.FromSeconds(20)), "A never took over from the frozen B");
            }
            finally { b.Thaw(); }
            Assert.True(await Poll.UntilAsync(async () => (await b.GroupAsync(nqn)).State == "inaccessible", TimeSpan.FromSeconds(20)),
                "the fenced gateway did not turn its paths inaccessible");
            Assert.True(b.Log.Text.Contains("is blocklisted by the Ceph cluster"), b.Log.Text);
            var late = await zombieHost.WriteAsync(0, 1, 64, new byte[4096]);
            Assert.Equal(NvmeStatus.AnaInaccessible, (NvmeStatus)late.Status);
            // What A wrote is what is there: the zombie's write did not land.
            await using (var ha = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, pa), nqn))
            {
                await ha.CreateIoQueuesAsync(1);
                var back = new byte[data.Length];
                (await ha.ReadAsync(0, 1, 64, back)).EnsureSuccess("read through A after the fence");
                Assert.Equal(data, back);
            }
        }
        finally
        {
            foreach (var g in new[] { a, b })
            {
                if (g == null) continue;
                await g.DisposeAsync();
                output.WriteLine($"---- {g.Name}:\n{g.Log.Text}");
            }
        }
    }
}
