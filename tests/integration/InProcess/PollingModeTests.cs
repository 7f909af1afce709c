using Integration.Tests.Initiator;
using Integration.Tests.Management;
using Target.Configuration;
using Transport.Tcp;
using Transport.Tcp.Net;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>The polling mode (<c>--poll</c>): reactor threads that own connections and busy-poll non-blocking
/// sockets serve the same protocol as the event-driven default: every data path, digests, file namespaces whose
/// I/O completes on other threads, connections spread over reactors, idle back-off and wake-up, malformed input
/// and vanished hosts, and the drain at shutdown.</summary>
public sealed class PollingModeTests(ITestOutputHelper output)
{
    private static TcpTransportOptions Polling(int reactors = 1, TimeSpan? idle = null) =>
        new() { Polling = new PollingOptions { Reactors = reactors, IdleTime = idle ?? TimeSpan.FromMilliseconds(10) } };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryDataPath_ReadsBackWhatWasWritten(bool digests)
    {
        await using var target = await TestTarget.StartAsync(output, transport: Polling());
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HeaderDigest = digests, DataDigest = digests });
        Assert.Equal([2], target.Host.ReactorConnections); // the admin and the I/O connection, on the one reactor
        ulong lba = 0;
        int seed = digests ? 300 : 200;
        foreach (int size in new[] { 512, 4096, 8192, 16384, 128 * 1024, 128 * 1024 + 4096, 1 << 20 })
        {
            var data = TestData.Random(size, seed++);
            var w = (await host.WriteAsync(0, 1, lba, data)).EnsureSuccess($"write {size}");
            Assert.Equal(size <= 8192, w.InCapsule);
            var back = new byte[size];
            var r = (await host.ReadAsync(0, 1, lba, back)).EnsureSuccess($"read {size}");
            Assert.Equal((size + 128 * 1024 - 1) / (128 * 1024), r.C2HDataCount);
            Assert.True(data.AsSpan().SequenceEqual(back), $"{size} bytes at LBA {lba} differ");
            lba += (ulong)(size / 512) + 8;
        }
    }

    [Fact]
    public async Task TheAdminAndIoConnections_LiveOnTheReactors_AndLeaveThemWhenClosed()
    {
        await using var target = await TestTarget.StartAsync(output, transport: Polling(reactors: 2));
        Assert.Equal([0, 0], target.Host.ReactorConnections);
        var host = await target.ConnectWithIoAsync(3);
        try
        {
            // Four connections (admin + 3 I/O), spread to the least loaded reactor each time.
            Assert.Equal([2, 2], target.Host.ReactorConnections);
            var writes = Enumerable.Range(0, 3).Select(async q =>
            {
                for (int i = 0; i < 50; i++)
                {
                    var data = TestData.Random(4096, q * 1000 + i);
                    ulong lba = (ulong)(q * 10_000 + i * 8);
                    (await host.WriteAsync(q, 1, lba, data)).EnsureSuccess();
                    var back = new byte[4096];
                    (await host.ReadAsync(q, 1, lba, back)).EnsureSuccess();
                    Assert.Equal(data, back);
                }
            });
            await Task.WhenAll(writes);

            // The metrics show the spread and the time the reactors spent polling, which only grows.
            var text = target.Host.Metrics.Collect();
            Assert.Contains("nvmet_tcp_reactor_connections{reactor=\"0\"} 2\n", text);
            Assert.Contains("nvmet_tcp_reactor_connections{reactor=\"1\"} 2\n", text);
            double busy0 = Sample(text, "nvmet_tcp_reactor_busy_seconds_total{reactor=\"0\"}");
            Assert.True(busy0 > 0, $"reactor 0 busy {busy0} s after serving I/O");
            await Task.Delay(50);
            double again = Sample(target.Host.Metrics.Collect(), "nvmet_tcp_reactor_busy_seconds_total{reactor=\"0\"}");
            Assert.True(again >= busy0, $"busy time went back from {busy0} to {again}");
        }
        finally { await host.DisposeAsync(); }
        Assert.True(await Poll.UntilAsync(() => target.Host.ReactorConnections.Sum() == 0, TimeSpan.FromSeconds(10)),
            $"reactors still hold {string.Join(",", target.Host.ReactorConnections)} connections");
        Assert.True(await Poll.UntilAsync(() => target.Host.ConnectionCount == 0, TimeSpan.FromSeconds(10)));
    }

    private static double Sample(string exposition, string series)
    {
        var line = exposition.Split('\n').Single(l => l.StartsWith(series + " ", StringComparison.Ordinal));
        return double.Parse(line[(series.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task TheEventDrivenDefault_HasNoReactors()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        Assert.Empty(target.Host.ReactorConnections);
        Assert.DoesNotContain("nvmet_tcp_reactor_connections{", target.Host.Metrics.Collect());
    }

    [Fact]
    public async Task AFileNamespace_CompletesOnOtherThreads_AndDeepQueuesAllAnswer()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-poll-");
        try
        {
            await using var target = await TestTarget.StartAsync(output, c =>
            {
                c.Storage = new StorageConfig { Directories = [dir.FullName] };
                c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "file", Path = Path.Combine(dir.FullName, "ns2.img"), Size = "16M" });
            }, Polling());
            await using var host = await target.ConnectWithIoAsync(1);
            // 64 commands at once (writes of 4 KiB and 64 KiB): the file's completions arrive on pool threads while
            // the reactor keeps receiving; each must be answered and land where it was written.
            var sizes = Enumerable.Range(0, 64).Select(i => i % 2 == 0 ? 4096 : 65536).ToArray();
            var blobs = sizes.Select((s, i) => TestData.Random(s, 500 + i)).ToArray();
            await Task.WhenAll(blobs.Select((b, i) => host.WriteAsync(0, 2, (ulong)i * 128, b).ContinueWith(t => t.Result.EnsureSuccess())));
            var backs = sizes.Select(s => new byte[s]).ToArray();
            await Task.WhenAll(backs.Select((b, i) => host.ReadAsync(0, 2, (ulong)i * 128, b).ContinueWith(t => t.Result.EnsureSuccess())));
            for (int i = 0; i < blobs.Length; i++) Assert.True(blobs[i].AsSpan().SequenceEqual(backs[i]), $"command {i} read back different data");
            (await host.FlushAsync(0, 2)).EnsureSuccess();
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task AnIdleReactor_BlocksAndWakesUpOnTheNextCommand()
    {
        // Idle after 1 ms: the reactor is blocked in poll(2) long before each command below arrives.
        await using var target = await TestTarget.StartAsync(output, transport: Polling(idle: TimeSpan.FromMilliseconds(1)));
        await using var host = await target.ConnectWithIoAsync(1);
        for (int i = 0; i < 5; i++)
        {
            await Task.Delay(150);
            var data = TestData.Random(4096, 900 + i);
            (await host.WriteAsync(0, 1, (ulong)i * 8, data)).EnsureSuccess();
            var back = new byte[4096];
            (await host.ReadAsync(0, 1, (ulong)i * 8, back)).EnsureSuccess();
            Assert.Equal(data, back);
        }
        // A new connection to an idle reactor is served too.
        await Task.Delay(150);
        await using var second = await target.ConnectWithIoAsync(1);
        (await second.FlushAsync(0, 1)).EnsureSuccess();
    }

    [Fact]
    public async Task MalformedInputAndAVanishedHost_CloseOnlyTheirConnections()
    {
        await using var target = await TestTarget.StartAsync(output, transport: Polling());
        await using var good = await target.ConnectWithIoAsync(1);

        await using var bad = await RawConnection.OpenAsync(target.Endpoint);
        await bad.HandshakeAsync();
        await bad.SendAsync(new byte[] { 0x7F, 0, 8, 0, 8, 0, 0, 0 }); // PDU type 0x7F does not exist
        Assert.True((await bad.WaitForCloseAsync(TimeSpan.FromSeconds(15))).Closed, "a connection that sent an unknown PDU type stayed open");

        var gone = await target.ConnectWithIoAsync(1);
        await gone.DisposeAsync(); // sockets closed without Disconnect
        Assert.True(await Poll.UntilAsync(() => target.Host.Target.Controllers.Count() == 1, TimeSpan.FromSeconds(15)),
            "the vanished host's controller was not torn down");

        var data = TestData.Random(128 * 1024, 77);
        (await good.WriteAsync(0, 1, 0, data)).EnsureSuccess();
        var back = new byte[data.Length];
        (await good.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);
        Assert.Equal(2, target.Host.ReactorConnections.Sum());
    }

    [Fact]
    public async Task Shutdown_DrainsThePolledConnections()
    {
        var target = await TestTarget.StartAsync(output, transport: Polling());
        try
        {
            await using var host = await target.ConnectWithIoAsync(1);
            var data = TestData.Random(65536, 5);
            (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();
            var stop = target.StopAsync();
            Assert.Same(stop, await Task.WhenAny(stop, Task.Delay(TimeSpan.FromSeconds(20))));
            await stop;
            Assert.Equal(0, target.Host.ConnectionCount);
            Assert.Equal(0, target.Host.ReactorConnections.Sum());
            Assert.Same(host.Io().Closed, await Task.WhenAny(host.Io().Closed, Task.Delay(TimeSpan.FromSeconds(10))));
        }
        finally { await target.DisposeAsync(); }
    }
}
