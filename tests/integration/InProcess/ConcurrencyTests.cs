using Integration.Tests.Initiator;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class ConcurrencyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(false, false)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task SixtyFourInFlight_MixedReadsAndWrites_OneQueue(bool disableSqFlowControl, bool digests)
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions
        {
            DisableSqFlowControl = disableSqFlowControl, HeaderDigest = digests, DataDigest = digests,
        });
        int[] sizes = [512, 4096, 8192, 16384, 65536, 131072 + 512, 4096 * 3, 1024];
        const int Ranges = 64;
        const ulong Stride = 2048; // blocks: 1 MiB per range, far more than any size used
        byte[][] data = new byte[Ranges][];
        for (int i = 0; i < Ranges; i++) data[i] = TestData.Random(sizes[i % sizes.Length], 5000 + i);

        // Phase 1: the even ranges, written one by one.
        for (int i = 0; i < Ranges; i += 2)
            (await host.WriteAsync(0, 1, (ulong)i * Stride, data[i])).EnsureSuccess();

        // Phase 2: 64 commands in flight at once: read the even ranges back while the odd ones are written.
        // Corked: all 64 capsules reach the target in one write, so they are all in flight together.
        host.Io().Cork();
        var tasks = new List<Task<(int Index, NvmeCompletion C, byte[]? Read)>>();
        for (int i = 0; i < Ranges; i++)
        {
            int idx = i;
            if (i % 2 == 0)
            {
                var buf = new byte[data[i].Length];
                tasks.Add(host.ReadAsync(0, 1, (ulong)i * Stride, buf).ContinueWith(t => (idx, t.Result, (byte[]?)buf), TaskScheduler.Default));
            }
            else tasks.Add(host.WriteAsync(0, 1, (ulong)i * Stride, data[i]).ContinueWith(t => (idx, t.Result, (byte[]?)null), TaskScheduler.Default));
        }
        Assert.Equal(Ranges, host.Io().PendingCount);
        await host.Io().UncorkAsync();
        var results = await Task.WhenAll(tasks);
        foreach (var (index, c, read) in results)
        {
            c.EnsureSuccess($"command {index}");
            if (read != null)
            {
                Assert.True(data[index].AsSpan().SequenceEqual(read), $"range {index} differs");
                Assert.Equal(disableSqFlowControl, c.ViaC2HSuccess);
            }
        }

        // Phase 3: everything read back concurrently.
        var reads = Enumerable.Range(0, Ranges).Select(async i =>
        {
            var buf = new byte[data[i].Length];
            (await host.ReadAsync(0, 1, (ulong)i * Stride, buf)).EnsureSuccess($"read {i}");
            return (i, buf);
        }).ToList();
        foreach (var (i, buf) in await Task.WhenAll(reads))
            Assert.True(data[i].AsSpan().SequenceEqual(buf), $"range {i} differs after phase 3");
        Assert.Equal(0, host.Io().PendingCount);
        Assert.Equal(Ranges, host.Io().MaxPendingObserved);
    }

    [Fact]
    public async Task SeveralQueuesInParallel()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(4, new NvmeTcpHostOptions { HeaderDigest = true });
        var work = Enumerable.Range(0, 4).Select(async q =>
        {
            for (int j = 0; j < 16; j++)
            {
                ulong lba = (ulong)(q * 16 + j) * 512;
                var data = TestData.Random(32 * 1024, q * 100 + j);
                (await host.WriteAsync(q, 1, lba, data)).EnsureSuccess();
                var back = new byte[data.Length];
                (await host.ReadAsync((q + 1) % 4, 1, lba, back)).EnsureSuccess();
                Assert.True(data.AsSpan().SequenceEqual(back));
            }
        });
        await Task.WhenAll(work);
    }
}
