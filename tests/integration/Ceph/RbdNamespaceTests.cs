using System.Buffers.Binary;
using System.Net;
using Integration.Tests.Initiator;
using Integration.Tests.Management;
using Nvme.Core.Storage;
using Nvme.Core.Storage.Rbd;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Ceph;

/// <summary>Namespaces on Ceph RBD images (librbd's asynchronous C API) against a real single-node cluster: what a host
/// writes through the target is what `rbd export` reads, zeroes and deallocation reach the image, resizes through the
/// API resize the image, a resize by someone else (`rbd resize`) reaches the namespace, and each way of getting it
/// wrong (no pool, no image, a refused key, an unreachable cluster) says so.</summary>
[Collection(CephCollection.Name)]
public sealed class RbdNamespaceTests(CephCluster ceph, ITestOutputHelper output)
{
    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    private TargetConfig Config(string image, string size)
    {
        var config = Integration.Tests.InProcess.TestTarget.DefaultConfig();
        config.Subsystems[0].Namespaces[0] = new NamespaceConfig
        {
            Nsid = 1, Backend = "rbd", Pool = CephCluster.Pool, Image = image, Size = size, CephConf = ceph.Conf, BlockSize = 512,
        };
        return config;
    }

    private async Task<byte[]> ExportAsync(string image)
    {
        var file = Path.Combine(Path.GetTempPath(), $"rbd-export-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            var (code, text) = await ceph.ToolAsync("rbd", "--conf", ceph.Conf, "export", $"{CephCluster.Pool}/{image}", file);
            Assert.True(code == 0, "rbd export: " + text);
            return await File.ReadAllBytesAsync(file);
        }
        finally { File.Delete(file); }
    }

    private static ulong Nsze(byte[] identifyNamespace) => BinaryPrimitives.ReadUInt64LittleEndian(identifyNamespace);

    [Fact]
    public async Task RbdNamespace_DataEqualsRbdExport_ZeroesAndResizesReachTheImage()
    {
        string image = "data-" + Guid.NewGuid().ToString("N")[..8];
        await using var t = await ApiTarget.StartAsync(output, Config(image, "32M"));
        Assert.Contains($"rbd {CephCluster.Pool}/{image}", t.Host.Target.Subsystems.Single(s => s.Nqn == ApiTarget.Nqn).GetNamespace(1)!.Store.Description);
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        var a = Pattern(128 * 1024, 1);
        var b = Pattern(4096, 2);
        (await host.WriteAsync(0, 1, 0, a)).EnsureSuccess("write at 0");
        (await host.WriteAsync(0, 1, 65536 - 8, b)).EnsureSuccess("write across 32 MiB's middle");
        (await host.FlushAsync(0, 1)).EnsureSuccess("flush");
        var back = new byte[a.Length];
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess("read");
        Assert.Equal(a, back);

        var exported = await ExportAsync(image);
        Assert.Equal(32L << 20, exported.Length);
        Assert.Equal(a, exported[..a.Length]);
        Assert.Equal(b, exported.AsSpan((65536 - 8) * 512, b.Length).ToArray());

        // After a flush a write is on the OSDs when it completes, with no flush of its own: librbd's writeback cache is off
        // (with it, the write would sit in this process, and another gateway or `rbd export` would read the old data).
        // The connection's librbd settings: no writeback cache, discards that zero partial objects.
        var rbdStore = (RbdBlockStore)t.Host.Target.Subsystems.Single(s => s.Nqn == ApiTarget.Nqn).GetNamespace(1)!.Store;
        Assert.Equal("false", rbdStore.ClusterOption("rbd_cache"));
        Assert.Equal("false", rbdStore.ClusterOption("rbd_skip_partial_discard"));
        Assert.Null(rbdStore.ClusterOption("no_such_option"));
        // Read at once by another Ceph client (its own connection: other options), before any cache could have written back.
        using (var other = RbdBlockStore.Open(new RbdClusterOptions(ceph.Conf, "admin", ceph.AdminKeyring), CephCluster.Pool, image))
        {
            var c1 = Pattern(4096, 3);
            (await host.WriteAsync(0, 1, 200, c1)).EnsureSuccess("write after the flush");
            var seen = new byte[4096];
            await other.ReadAsync(200 * 512, seen);
            Assert.Equal(c1, seen);
        }
        var c = Pattern(4096, 3);

        // Write Zeroes and a deallocation reach the image.
        (await host.WriteZeroesAsync(0, 1, 0, 8)).EnsureSuccess("write zeroes");
        (await host.DeallocateAsync(0, 1, [(64, 64)])).EnsureSuccess("deallocate");
        exported = await ExportAsync(image);
        Assert.All(exported[..4096], x => Assert.Equal(0, x));
        Assert.All(exported.AsSpan(64 * 512, 64 * 512).ToArray(), x => Assert.Equal(0, x));
        Assert.Equal(c, exported.AsSpan(200 * 512, c.Length).ToArray());
        Assert.Equal(a[4096..(64 * 512)], exported[4096..(64 * 512)]);

        // Resize through the API: the image follows.
        await t.Http.PostJsonAsync(Api.Sub() + "/namespaces/1/resize", new { size = "64M" }, HttpStatusCode.OK);
        var (code, info) = await ceph.ToolAsync("rbd", "--conf", ceph.Conf, "info", $"{CephCluster.Pool}/{image}");
        Assert.True(code == 0, info);
        Assert.Contains("size 64 MiB", info);
        Assert.Equal((ulong)(64 << 20) / 512, Nsze(await host.IdentifyAsync(0, 1)));

        // Resized by someone else: the namespace follows, larger and smaller.
        (code, info) = await ceph.ToolAsync("rbd", "--conf", ceph.Conf, "resize", "--size", "96M", $"{CephCluster.Pool}/{image}");
        Assert.True(code == 0, info);
        var ns = t.Host.Target.Subsystems.Single(s => s.Nqn == ApiTarget.Nqn).GetNamespace(1)!;
        Assert.True(await Poll.UntilAsync(() => ns.BlockCount == (96UL << 20) / 512, TimeSpan.FromSeconds(30)), $"namespace at {ns.BlockCount} blocks");
        Assert.Equal((ulong)(96 << 20) / 512, Nsze(await host.IdentifyAsync(0, 1)));
        (code, info) = await ceph.ToolAsync("rbd", "--conf", ceph.Conf, "resize", "--allow-shrink", "--size", "48M", $"{CephCluster.Pool}/{image}");
        Assert.True(code == 0, info);
        Assert.True(await Poll.UntilAsync(() => ns.BlockCount == (48UL << 20) / 512, TimeSpan.FromSeconds(30)), $"namespace at {ns.BlockCount} blocks");
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess("read after the shrink");
        Assert.Equal(a[4096..(64 * 512)], back[4096..(64 * 512)]);
        var past = new byte[4096];
        Assert.NotEqual(0, (await host.ReadAsync(0, 1, (48UL << 20) / 512, past)).Status & 0x7FF); // beyond the new end: LBA out of range
    }

    [Fact]
    public async Task RbdNamespace_SurvivesARestart_AndOpensAnExistingImageAtItsSize()
    {
        string image = "restart-" + Guid.NewGuid().ToString("N")[..8];
        var data = Pattern(64 * 1024, 3);
        await using (var t = await ApiTarget.StartAsync(output, Config(image, "16M")))
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            (await host.WriteAsync(0, 1, 100, data)).EnsureSuccess("write");
        }
        await using (var t = await ApiTarget.StartAsync(output, Config(image, "8M"))) // a smaller create size: the image's own size wins
        await using (var host = await t.ConnectAsync())
        {
            await host.CreateIoQueuesAsync(1);
            Assert.Equal((ulong)(16 << 20) / 512, Nsze(await host.IdentifyAsync(0, 1)));
            var back = new byte[data.Length];
            (await host.ReadAsync(0, 1, 100, back)).EnsureSuccess("read after the restart");
            Assert.Equal(data, back);
        }
    }

    [Fact]
    public async Task Readyz_ReportsAnUnreachableCluster_AndRecovers()
    {
        RbdCluster.ProbeInterval = TimeSpan.FromSeconds(1);
        string image = "ready-" + Guid.NewGuid().ToString("N")[..8];
        await using var t = await ApiTarget.StartAsync(output, Config(image, "8M"));
        async Task<(HttpStatusCode, string)> ReadyAsync()
        {
            using var r = await t.Probes!.GetAsync("readyz");
            return (r.StatusCode, await r.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.OK, (await ReadyAsync()).Item1);
        var monPid = int.Parse((await File.ReadAllTextAsync(Path.Combine(ceph.Directory, "run", "mon.a.pid"))).Trim());
        System.Diagnostics.Process.GetProcessById(monPid).Kill();
        try
        {
            (HttpStatusCode Code, string Body) ready = default;
            Assert.True(await Poll.UntilAsync(() => (ready = ReadyAsync().GetAwaiter().GetResult()).Code == HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(60)),
                "/readyz stayed ready with the monitor gone");
            Assert.Contains("does not answer", ready.Body);
            Assert.Contains($"rbd {CephCluster.Pool}/{image}", t.Host.Target.Subsystems.Single(s => s.Nqn == ApiTarget.Nqn).GetNamespace(1)!.Store.Description);
        }
        finally
        {
            var (code, text) = await ceph.ToolAsync("ceph-mon", "-i", "a");
            Assert.True(code == 0, "restarting the monitor: " + text);
        }
        Assert.True(await Poll.UntilAsync(() => ReadyAsync().GetAwaiter().GetResult().Item1 == HttpStatusCode.OK, TimeSpan.FromSeconds(60)),
            "/readyz did not recover with the monitor back");
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        var data = Pattern(4096, 9);
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess("write after the monitor came back");
    }

    [Fact]
    public async Task RbdErrors_SayWhatIsWrong()
    {
        var cluster = new RbdClusterOptions(ceph.Conf);
        var e = Assert.Throws<StoreException>(() => RbdBlockStore.Open(cluster, "nopool", "x", 1 << 20));
        Assert.Contains("Ceph pool 'nopool' does not exist", e.Message);
        e = Assert.Throws<StoreException>(() => RbdBlockStore.Open(cluster, CephCluster.Pool, "missing-" + Guid.NewGuid().ToString("N")[..8]));
        Assert.Contains("does not exist (give a size to create it)", e.Message);

        // A keyring whose key for client.admin is not the cluster's.
        var bad = Path.Combine(ceph.Directory, "wrong.keyring");
        await File.WriteAllTextAsync(bad, "[client.admin]\n\tkey = AQBSdFNmAAAAABAAbTSw7ttKE0vv8VwLlNmRQg==\n");
        e = Assert.Throws<StoreException>(() => RbdBlockStore.Open(cluster with { Keyring = bad }, CephCluster.Pool, "x", 1 << 20));
        Assert.Contains("refused client.admin's authentication", e.Message);

        // A cluster nobody answers for.
        var lonely = Path.Combine(ceph.Directory, "unreachable.conf");
        await File.WriteAllTextAsync(lonely, "[global]\nmon_host = 127.0.0.1:9\nauth_client_required = none\n");
        e = Assert.Throws<StoreException>(() => RbdBlockStore.Open(new RbdClusterOptions(lonely) { ConnectTimeout = TimeSpan.FromSeconds(2) }, CephCluster.Pool, "x", 1 << 20));
        Assert.Contains("unreachable", e.Message);

        // Through the API: 400 with the reason, nothing added.
        await using var t = await ApiTarget.StartAsync(output);
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces",
            new { nsid = 2, backend = "rbd", pool = "nopool", image = "x", size = "1M", cephConf = ceph.Conf }, HttpStatusCode.BadRequest, "Ceph pool 'nopool' does not exist");
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces",
            new { nsid = 2, backend = "rbd", image = "x" }, HttpStatusCode.BadRequest, "needs a pool and an image");
        Assert.Null(t.Host.Target.Subsystems.Single(s => s.Nqn == ApiTarget.Nqn).GetNamespace(2));
    }
}
