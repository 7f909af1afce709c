using System.Buffers.Binary;
using System.Collections.Concurrent;
using Integration.Tests.Initiator;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Target.Configuration;
using Target.Management;
using Xunit.Abstractions;
using Xunit.Sdk;

using Nvme.Testing;

using static Integration.Tests.InProcess.AsyncEvents;

namespace Integration.Tests.InProcess;

/// <summary>
/// Namespace hot-add, hot-remove and resize while hosts are connected (driven through the target's
/// <see cref="TargetManager"/>, or the core model where the manager cannot express the case): the Namespace
/// Attribute Changed event, the Changed Namespace List (log 04h) with its RAE masking, Identify, I/O status
/// for removed namespaces, the drain on remove, and I/O on other namespaces that must never notice.
/// </summary>
public sealed partial class HotPlugTests(ITestOutputHelper output)
{
    private const string Nqn = TestTarget.Nqn;
    private const ushort StatusInvalidNamespace = 0x400B; // DNR | Invalid Namespace or Format
    private const ushort StatusLbaOutOfRange = 0x4080;    // DNR | LBA Out of Range
    private const ushort StatusAbortRequested = 0x0007;   // Command Abort Requested (retryable)

    // ------------------------------------------------------------------ add / remove / resize under load

    [Fact]
    public async Task AddResizeRemove_WhileVerifiedIoRunsOnNs1_EventsLogIdentifyAndIo()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        await using var host = await target.ConnectWithIoAsync(4);
        await EnableNoticesAsync(host);
        var load = IoLoad.Start(host, nsid: 1, queues: 4, workersPerQueue: 2, regionBlocks: 16384);
        try
        {
            await load.WaitForOpsAsync(200);

            // ---- hot-add
            var aer = await ParkAerAsync(host);
            var added = await m.AddNamespaceAsync(Nqn, new NamespaceConfig { Nsid = 2, Backend = "memory", Size = "16M" });
            Assert.Equal(2u, added.Nsid);
            await ExpectNoticeAsync(aer, "hot-add of NSID 2");
            // RAE=1: the log is read and cleared, the notice stays masked.
            Assert.Equal(Nsids(2u), await ChangedListAsync(host, retainAsyncEvent: true));
            Assert.Equal(Nsids(1u, 2u), await ActiveNsidsAsync(host));
            Assert.Equal(16UL << 11, await NszeAsync(host, 2));
            await WriteReadAsync(host, 0, 2, (16UL << 11) - 8, 4096, seed: 21); // the last 4 KiB of the namespace
            Assert.Equal(StatusLbaOutOfRange, (await host.ReadAsync(0, 2, 16UL << 11, new byte[512])).Status);

            // ---- masked: grows while the notice is masked complete no AER but still land in the log
            aer = await ParkAerAsync(host);
            await m.ResizeNamespaceAsync(Nqn, 2, "24M", force: false);
            await AssertNotCompletedAsync(aer, "AER completed although the notice is masked (log read with RAE=1)");
            Assert.Equal(Nsids(2u), await ChangedListAsync(host, retainAsyncEvent: true)); // RAE=1 again: still masked
            await m.ResizeNamespaceAsync(Nqn, 2, "32M", force: false);
            await AssertNotCompletedAsync(aer, "AER completed although the notice is still masked (second RAE=1 read)");
            Assert.Equal(Nsids(2u), await ChangedListAsync(host, retainAsyncEvent: false)); // RAE=0 unmasks
            Assert.Empty(await ChangedListAsync(host, retainAsyncEvent: true));       // read clears the list

            // ---- grown: Identify shows the new size, the space past the old end takes I/O and reads zeros
            Assert.Equal(32UL << 11, await NszeAsync(host, 2));
            var tail = new byte[8192];
            (await host.ReadAsync(1, 2, 16UL << 11, tail)).EnsureSuccess("read just past the old end after the grow");
            Assert.True(tail.AsSpan().IndexOfAnyExcept((byte)0) < 0, "grown space does not read as zeros");
            await WriteReadAsync(host, 1, 2, (32UL << 11) - 16, 8192, seed: 22);
            await ReadExpectAsync(host, 2, 2, (16UL << 11) - 8, TestData.Random(4096, 21), "data before the old end after the grow");

            // ---- shrink without force: refused, nothing changes, no event
            var refused = await Assert.ThrowsAsync<ManagementException>(() => m.ResizeNamespaceAsync(Nqn, 2, "8M", force: false));
            Assert.Equal(ManagementError.Conflict, refused.Kind);
            Assert.Equal(32UL << 11, await NszeAsync(host, 2));
            await AssertNotCompletedAsync(aer, "a refused shrink sent an event");
            Assert.Empty(await ChangedListAsync(host, retainAsyncEvent: true));

            // ---- shrink with force: the parked AER completes (unmasked by the RAE=0 read above)
            await m.ResizeNamespaceAsync(Nqn, 2, "8M", force: true);
            await ExpectNoticeAsync(aer, "forced shrink of NSID 2");
            Assert.Equal(Nsids(2u), await ChangedListAsync(host));
            Assert.Equal(8UL << 11, await NszeAsync(host, 2));
            Assert.Equal(StatusLbaOutOfRange, (await host.ReadAsync(2, 2, 8UL << 11, new byte[512])).Status);
            Assert.Equal(StatusLbaOutOfRange, (await host.WriteAsync(2, 2, (16UL << 11) - 8, new byte[4096])).Status);
            await WriteReadAsync(host, 2, 2, (8UL << 11) - 8, 4096, seed: 23);

            // ---- hot-remove
            aer = await ParkAerAsync(host);
            await m.RemoveNamespaceAsync(Nqn, 2);
            await ExpectNoticeAsync(aer, "hot-remove of NSID 2");
            Assert.Equal(Nsids(2u), await ChangedListAsync(host));
            Assert.Equal(Nsids(1u), await ActiveNsidsAsync(host));
            var gone = await host.IdentifyAsync(IdentifyCns.Namespace, 2);
            Assert.True(gone.AsSpan().IndexOfAnyExcept((byte)0) < 0, "Identify Namespace of a removed NSID is not all zeros");
            Assert.Equal(StatusInvalidNamespace, (await host.ReadAsync(3, 2, 0, new byte[4096])).Status);
            Assert.Equal(StatusInvalidNamespace, (await host.WriteAsync(3, 2, 0, new byte[4096])).Status);
            Assert.Equal(StatusInvalidNamespace, (await host.FlushAsync(3, 2)).Status);
            Assert.Equal(StatusInvalidNamespace, (await host.WriteZeroesAsync(3, 2, 0, 8)).Status);
            var notFound = await Assert.ThrowsAsync<ManagementException>(() => m.RemoveNamespaceAsync(Nqn, 2));
            Assert.Equal(ManagementError.NotFound, notFound.Kind);

            // ---- grow the namespace the load runs on, under the load
            aer = await ParkAerAsync(host);
            await m.ResizeNamespaceAsync(Nqn, 1, "96M", force: false);
            await ExpectNoticeAsync(aer, "grow of NSID 1");
            Assert.Equal(Nsids(1u), await ChangedListAsync(host));
            Assert.Equal(96UL << 11, await NszeAsync(host, 1));
            await WriteReadAsync(host, 0, 1, (96UL << 11) - 8, 4096, seed: 24);

            long before = load.Ops;
            await load.WaitForOpsAsync(before + 200);
        }
        finally
        {
            await load.StopAsync();
        }
        output.WriteLine($"background load on NSID 1: {load.Ops} verified write+read pairs on 4 queues, {load.Errors} errors");
        load.AssertClean();
        Assert.Equal(0, target.Host.Target.FindSubsystem(Nqn)!.GetNamespace(1)!.Counters.Errors);
    }

    // ------------------------------------------------------------------ event queueing, masking, dedupe, overflow

    [Fact]
    public async Task EventWithoutParkedAer_IsQueued_ManyChangesGiveOneAer_LogListsEachNsidOnce()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        await using var host = await target.ConnectWithIoAsync(1);
        await EnableNoticesAsync(host);

        // No AER outstanding: the event waits, and the next AER completes at once.
        await m.AddNamespaceAsync(Nqn, Memory(2, "4M"));
        var first = host.AsyncEventRequestAsync(AerTimeout);
        await ExpectNoticeAsync(first, "queued event (no AER was parked at the change)");
        // Only one event was queued: the next AER parks.
        var second = await ParkAerAsync(host);
        await AssertNotCompletedAsync(second, "a second AER completed for one change");
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));

        // Many changes before the host reads the log: one AER, each NSID listed once, ascending.
        var third = await ParkAerAsync(host);
        await m.AddNamespaceAsync(Nqn, Memory(5, "4M"));
        await m.ResizeNamespaceAsync(Nqn, 2, "8M", force: false);
        await m.AddNamespaceAsync(Nqn, Memory(3, "4M"));
        await m.RemoveNamespaceAsync(Nqn, 5);
        await m.ResizeNamespaceAsync(Nqn, 3, "8M", force: false);
        await m.AddNamespaceAsync(Nqn, Memory(5, "4M"));
        await m.ResizeNamespaceAsync(Nqn, 2, "12M", force: false);
        await m.ResizeNamespaceAsync(Nqn, 1, "80M", force: false);
        await ExpectNoticeAsync(second, "first of many changes");
        await AssertNotCompletedAsync(third, "more than one AER for changes made before the log was read");
        Assert.Equal(Nsids(1u, 2u, 3u, 5u), await ChangedListAsync(host));
        Assert.Equal(Nsids(1u, 2u, 3u, 5u), await ActiveNsidsAsync(host));

        // Unmasked again: the next change completes the AER that stayed parked.
        await m.RemoveNamespaceAsync(Nqn, 3);
        await ExpectNoticeAsync(third, "change after the RAE=0 read");
        Assert.Equal(Nsids(3u), await ChangedListAsync(host));

        // A controller that did not enable the notice gets no AER, but the log still records the change.
        await using var quiet = await target.ConnectAsync(new NvmeTcpHostOptions
        {
            HostNqn = "nqn.2014-08.org.nvmexpress:uuid:0b0e2f51-8a35-4c1d-9f0e-3c2d1b0a9f8e",
            HostId = new Guid("0b0e2f51-8a35-4c1d-9f0e-3c2d1b0a9f8e"),
        });
        var quietAer = await ParkAerAsync(quiet);
        var loudAer = await ParkAerAsync(host);
        await m.AddNamespaceAsync(Nqn, Memory(3, "4M"));
        await ExpectNoticeAsync(loudAer, "re-add of NSID 3");
        await AssertNotCompletedAsync(quietAer, "AER completed on a controller that did not enable namespace attribute notices");
        Assert.Equal(Nsids(3u), await ChangedListAsync(quiet));
        Assert.Equal(Nsids(3u), await ChangedListAsync(host));
    }

    [Fact]
    public async Task QueuedEvent_RetainedByRae1Read_ClearedByRae0Read()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        await using var host = await target.ConnectWithIoAsync(1);
        await EnableNoticesAsync(host);

        // Read with RAE=1 while the notice waits for an AER: the event is retained and still reported.
        await m.AddNamespaceAsync(Nqn, Memory(2, "4M"));
        Assert.Equal(Nsids(2u), await ChangedListAsync(host, retainAsyncEvent: true));
        await ExpectNoticeAsync(host.AsyncEventRequestAsync(AerTimeout), "event retained by an RAE=1 read");
        Assert.Empty(await ChangedListAsync(host)); // RAE=0: cleared and unmasked

        // Read with RAE=0 while the notice waits: the read clears it, so the next AER waits for a new change.
        await m.AddNamespaceAsync(Nqn, Memory(3, "4M"));
        Assert.Equal(Nsids(3u), await ChangedListAsync(host));
        var aer = await ParkAerAsync(host);
        await AssertNotCompletedAsync(aer, "AER completed for a change the host had already read with RAE=0");
        await m.AddNamespaceAsync(Nqn, Memory(4, "4M"));
        await ExpectNoticeAsync(aer, "change after the cleared one");
        Assert.Equal(Nsids(4u), await ChangedListAsync(host));
    }

    [Fact]
    public async Task ChangedNamespaceList_1024Entries_ThenMoreThan1024BecomesFFFFFFFF()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        await EnableNoticesAsync(host);
        var sub = target.Host.Target.FindSubsystem(Nqn)!;

        // The manager keeps NSIDs within NN; the core model takes any, which is what this needs.
        void Churn(uint from, uint to)
        {
            for (uint nsid = from; nsid <= to; nsid++)
            {
                var ns = new Namespace(nsid, new MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(Nqn, nsid));
                sub.AttachNamespace(ns);
                Assert.Same(ns, sub.DetachNamespace(nsid));
                ns.Store.Dispose();
            }
        }

        // Exactly 1024 distinct NSIDs (each attached and detached: two changes each) fill the list.
        var aer = await ParkAerAsync(host);
        Churn(2, 1025);
        await ExpectNoticeAsync(aer, "1024 changed NSIDs");
        var page = await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096);
        for (int i = 0; i < 1024; i++) Assert.Equal((uint)(i + 2), BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(4 * i)));

        // 1025 distinct NSIDs: the first entry is FFFFFFFFh, the rest zero.
        aer = await ParkAerAsync(host);
        Churn(2, 1026);
        await ExpectNoticeAsync(aer, "1025 changed NSIDs");
        await AssertNotCompletedAsync(await ParkAerAsync(host), "more than one AER for 2050 changes"); // stays parked until disposal
        page = await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096);
        Assert.Equal(0xFFFFFFFFu, BinaryPrimitives.ReadUInt32LittleEndian(page));
        Assert.True(page.AsSpan(4).IndexOfAnyExcept((byte)0) < 0, "entries after FFFFFFFFh are not zero");

        // The overflow is cleared by the read: the next change is listed normally.
        Churn(7, 7);
        Assert.Equal(Nsids(7u), await ChangedListAsync(host));
        Assert.Equal(Nsids(1u), await ActiveNsidsAsync(host));
    }

    // ------------------------------------------------------------------ two hosts

    [Fact]
    public async Task TwoHosts_BothGetEachEvent_AndSeeTheChange()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        await using var a = await target.ConnectWithIoAsync(2);
        await using var b = await target.ConnectWithIoAsync(2, new NvmeTcpHostOptions
        {
            HostNqn = "nqn.2014-08.org.nvmexpress:uuid:4f1e6c2a-77b3-4d0c-a8e1-2b9c5d3e7f60",
            HostId = new Guid("4f1e6c2a-77b3-4d0c-a8e1-2b9c5d3e7f60"),
        });
        Assert.NotEqual(a.Cntlid, b.Cntlid);
        NvmeTcpHost[] hosts = [a, b];
        foreach (var h in hosts) await EnableNoticesAsync(h);

        // add
        var aers = await Task.WhenAll(hosts.Select(ParkAerAsync));
        await m.AddNamespaceAsync(Nqn, Memory(2, "16M"));
        for (int i = 0; i < 2; i++)
        {
            await ExpectNoticeAsync(aers[i], $"host {i}: hot-add");
            Assert.Equal(Nsids(2u), await ChangedListAsync(hosts[i]));
            Assert.Equal(Nsids(1u, 2u), await ActiveNsidsAsync(hosts[i]));
            Assert.Equal(16UL << 11, await NszeAsync(hosts[i], 2));
        }
        var shared = TestData.Random(8192, 61);
        (await a.WriteAsync(0, 2, 100, shared)).EnsureSuccess();
        await ReadExpectAsync(b, 1, 2, 100, shared, "host B reads what host A wrote to the new namespace");

        // resize
        aers = await Task.WhenAll(hosts.Select(ParkAerAsync));
        await m.ResizeNamespaceAsync(Nqn, 2, "48M", force: false);
        for (int i = 0; i < 2; i++)
        {
            await ExpectNoticeAsync(aers[i], $"host {i}: grow");
            Assert.Equal(Nsids(2u), await ChangedListAsync(hosts[i]));
            Assert.Equal(48UL << 11, await NszeAsync(hosts[i], 2));
        }
        await WriteReadAsync(b, 0, 2, (48UL << 11) - 8, 4096, seed: 62);

        // remove
        aers = await Task.WhenAll(hosts.Select(ParkAerAsync));
        await m.RemoveNamespaceAsync(Nqn, 2);
        for (int i = 0; i < 2; i++)
        {
            await ExpectNoticeAsync(aers[i], $"host {i}: hot-remove");
            Assert.Equal(Nsids(2u), await ChangedListAsync(hosts[i]));
            Assert.Equal(Nsids(1u), await ActiveNsidsAsync(hosts[i]));
            Assert.Equal(StatusInvalidNamespace, (await hosts[i].ReadAsync(1, 2, 100, new byte[8192])).Status);
        }

        // A host that disconnected is not an obstacle for the next change.
        await b.DisposeAsync();
        Assert.True(await Poll.UntilAsync(() => target.Host.Target.FindSubsystem(Nqn)!.Controllers.Count == 1, EventWait));
        var last = await ParkAerAsync(a);
        await m.AddNamespaceAsync(Nqn, Memory(2, "16M"));
        await ExpectNoticeAsync(last, "host A: re-add after host B left");
        Assert.Equal(Nsids(2u), await ChangedListAsync(a));
    }

    // ------------------------------------------------------------------ helpers

    private static uint[] Nsids(params uint[] nsids) => nsids;

    private static NamespaceConfig Memory(uint nsid, string size) => new() { Nsid = nsid, Backend = "memory", Size = size, BlockSize = 512 };

    private static async Task EnableNoticesAsync(NvmeTcpHost host) =>
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices)).EnsureSuccess("Set Features 0Bh");

    /// <summary>The Changed Namespace List: the NSIDs before the first zero (and nothing after it).</summary>
    private static async Task<uint[]> ChangedListAsync(NvmeTcpHost host, bool retainAsyncEvent = false)
    {
        var page = await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096, retainAsyncEvent: retainAsyncEvent);
        return NsidList(page);
    }

    private static async Task<uint[]> ActiveNsidsAsync(NvmeTcpHost host) => NsidList(await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 0));

    private static uint[] NsidList(byte[] page)
    {
        var list = new List<uint>();
        int i = 0;
        for (; i < page.Length / 4; i++)
        {
            uint v = BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(4 * i));
            if (v == 0) break;
            list.Add(v);
        }
        Assert.True(page.AsSpan(4 * i).IndexOfAnyExcept((byte)0) < 0, "non-zero entries after the end of an NSID list");
        return [.. list];
    }

    private static async Task<ulong> NszeAsync(NvmeTcpHost host, uint nsid)
    {
        var id = await host.IdentifyAsync(IdentifyCns.Namespace, nsid);
        ulong nsze = BinaryPrimitives.ReadUInt64LittleEndian(id), ncap = BinaryPrimitives.ReadUInt64LittleEndian(id.AsSpan(8));
        Assert.Equal(nsze, ncap);
        return nsze;
    }

    private static async Task WriteReadAsync(NvmeTcpHost host, int queue, uint nsid, ulong slba, int bytes, int seed)
    {
        var data = TestData.Random(bytes, seed);
        (await host.WriteAsync(queue, nsid, slba, data)).EnsureSuccess($"write NSID {nsid} LBA {slba}");
        await ReadExpectAsync(host, queue, nsid, slba, data, $"read back NSID {nsid} LBA {slba}");
    }

    private static async Task ReadExpectAsync(NvmeTcpHost host, int queue, uint nsid, ulong slba, byte[] expected, string what)
    {
        var back = new byte[expected.Length];
        (await host.ReadAsync(queue, nsid, slba, back)).EnsureSuccess(what);
        Assert.True(expected.AsSpan().SequenceEqual(back), what + ": data differs");
    }

    /// <summary>Verified I/O in the background: each worker owns a region of the namespace and loops
    /// write-random-data, read-back, compare. Any non-success status or mismatch is an error.</summary>
    private sealed class IoLoad
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Task> _workers = [];
        private readonly ConcurrentQueue<string> _failures = new();
        private long _ops, _errors;

        public long Ops => Interlocked.Read(ref _ops);
        public long Errors => Interlocked.Read(ref _errors);

        public static IoLoad Start(NvmeTcpHost host, uint nsid, int queues, int workersPerQueue, ulong regionBlocks)
        {
            var load = new IoLoad();
            int w = 0;
            for (int q = 0; q < queues; q++)
                for (int k = 0; k < workersPerQueue; k++, w++)
                {
                    int queue = q, worker = w;
                    load._workers.Add(Task.Run(() => load.RunAsync(host, queue, nsid, (ulong)worker * regionBlocks, regionBlocks, worker)));
                }
            return load;
        }

        private async Task RunAsync(NvmeTcpHost host, int queue, uint nsid, ulong start, ulong blocks, int seed)
        {
            var rnd = new Random(1000 + seed);
            int[] sizes = [4096, 8192, 16384, 65536, 512 * 3];
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    int bytes = sizes[rnd.Next(sizes.Length)];
                    ulong slba = start + (ulong)rnd.NextInt64(0, (long)blocks - bytes / 512);
                    var data = new byte[bytes];
                    rnd.NextBytes(data);
                    var w = await host.WriteAsync(queue, nsid, slba, data);
                    var back = new byte[bytes];
                    var r = w.IsSuccess ? await host.ReadAsync(queue, nsid, slba, back) : w;
                    if (!w.IsSuccess || !r.IsSuccess) Fail($"queue {queue} LBA {slba}: write {w}, read {r}");
                    else if (!data.AsSpan().SequenceEqual(back)) Fail($"queue {queue} LBA {slba} +{bytes}: data read back differs");
                    Interlocked.Increment(ref _ops);
                }
                catch (Exception e)
                {
                    Fail($"queue {queue}: {e.GetType().Name}: {e.Message}");
                    await Task.Delay(50);
                }
            }
        }

        private void Fail(string what)
        {
            Interlocked.Increment(ref _errors);
            if (_failures.Count < 20) _failures.Enqueue(what);
        }

        public async Task WaitForOpsAsync(long count)
        {
            Assert.True(await Poll.UntilAsync(() => Ops >= count || Errors > 0, TimeSpan.FromSeconds(30)), $"background I/O made only {Ops} operations");
            AssertClean();
        }

        public async Task StopAsync()
        {
            _stop.Cancel();
            await Task.WhenAll(_workers).WaitAsync(TimeSpan.FromSeconds(30));
        }

        public void AssertClean() =>
            Assert.True(Errors == 0, $"{Errors} background I/O errors:\n" + string.Join("\n", _failures));
    }
}
