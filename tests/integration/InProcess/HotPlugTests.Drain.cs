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

/// <summary>Hot-remove drains in-flight I/O, aborts stragglers and survives remove/re-add cycles.</summary>
public sealed partial class HotPlugTests
{
    // ------------------------------------------------------------------ remove drains in-flight I/O

    [Fact]
    public async Task Remove_DrainsInFlightWrite_RefusesNewIo_DisposesStoreOnlyAfterTheWriteCompleted()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(2);
        await EnableNoticesAsync(host);
        var sub = target.Host.Target.FindSubsystem(Nqn)!;
        var store = new GatedBlockStore(8 << 20);
        var added = await ParkAerAsync(host);
        sub.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(Nqn, 2)));
        await ExpectNoticeAsync(added, "attach of the gated namespace");
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));

        var data = TestData.Random(16384, 31);
        store.Hold = true;
        var write = host.WriteAsync(0, 2, 64, data);
        await store.WriteEntered.Task.WaitAsync(EventWait);
        var ns = sub.GetNamespace(2)!;
        Assert.Equal(1, ns.InFlight);

        var aer = await ParkAerAsync(host);
        var remove = target.Host.Manager.RemoveNamespaceAsync(Nqn, 2);
        Assert.True(await Poll.UntilAsync(() => !ns.IsAdmitting, EventWait), "remove did not stop admitting I/O");

        // Draining: new I/O to the namespace is refused, other namespaces are not affected, nothing was
        // detached or released yet, and hosts are not told before the detach.
        Assert.Equal(StatusInvalidNamespace, (await host.WriteAsync(1, 2, 0, new byte[4096])).Status);
        Assert.Equal(StatusInvalidNamespace, (await host.ReadAsync(1, 2, 64, new byte[4096])).Status);
        await WriteReadAsync(host, 1, 1, 0, 8192, seed: 32);
        Assert.False(remove.IsCompleted, "remove finished with a write in flight");
        Assert.False(store.Disposed, "store released with a write in flight");
        Assert.Same(ns, sub.GetNamespace(2));
        await AssertNotCompletedAsync(aer, "event sent before the in-flight write drained");
        Assert.False(write.IsCompleted);

        store.Release();
        (await write.WaitAsync(EventWait)).EnsureSuccess("the write that was in flight at the remove");
        await remove.WaitAsync(EventWait);
        await ExpectNoticeAsync(aer, "hot-remove after drain");
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));
        Assert.True(store.Disposed, "store not released after the drain");
        Assert.Equal(0, store.DisposedWhileActive);
        Assert.Equal(0, store.UsedAfterDispose);
        Assert.True(store.DisposedSeq > store.LastWriteDoneSeq, "store released before the in-flight write finished");
        Assert.Null(sub.GetNamespace(2));
        Assert.Equal(0, ns.InFlight);
        Assert.Equal(StatusInvalidNamespace, (await host.WriteAsync(0, 2, 0, new byte[4096])).Status);
    }

    [Fact]
    public async Task Remove_DrainTimeout_AbortsTheStuckWrite_ReleasesStoreOnlyWhenItReturns_ReAddMeanwhile()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(2);
        await EnableNoticesAsync(host);
        var sub = target.Host.Target.FindSubsystem(Nqn)!;
        // A second manager over the same target, with a short drain timeout (the host's one waits 10 s).
        var manager = new TargetManager(target.Host.Target, target.Config, null, NullLogger.Instance) { DrainTimeout = TimeSpan.FromMilliseconds(300) };
        var store = new GatedBlockStore(8 << 20) { Hold = true };
        var added = await ParkAerAsync(host);
        sub.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(Nqn, 2)));
        await ExpectNoticeAsync(added, "attach of the gated namespace");
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));

        var write = host.WriteAsync(0, 2, 0, TestData.Random(4096, 41));
        await store.WriteEntered.Task.WaitAsync(EventWait);
        var ns = sub.GetNamespace(2)!;
        var aer = await ParkAerAsync(host);
        await manager.RemoveNamespaceAsync(Nqn, 2).WaitAsync(EventWait); // returns at the drain timeout
        // The stuck write is answered at the timeout (Abort Requested) although the store still holds it.
        var answered = await write.WaitAsync(EventWait);
        Assert.Equal(StatusAbortRequested, answered.Status);
        await ExpectNoticeAsync(aer, "hot-remove after the drain timeout");
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));
        Assert.Null(sub.GetNamespace(2));
        Assert.Equal(1, ns.InFlight);
        Assert.False(store.Disposed, "store released while a write still uses it");
        Assert.Equal(StatusInvalidNamespace, (await host.ReadAsync(1, 2, 0, new byte[4096])).Status);

        // The NSID can be used again at once; the old store still belongs to the old write.
        aer = await ParkAerAsync(host);
        await target.Host.Manager.AddNamespaceAsync(Nqn, Memory(2, "4M"));
        await ExpectNoticeAsync(aer, "re-add while the old namespace still drains");
        var fresh = new byte[4096];
        (await host.ReadAsync(1, 2, 0, fresh)).EnsureSuccess();
        Assert.True(fresh.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the re-added namespace shows data of the removed one");
        await WriteReadAsync(host, 1, 2, 8, 4096, seed: 42);

        // The store returns: only now is it released, silently (the host had its answer), and the queue the
        // write came from keeps working.
        store.Release();
        Assert.True(await Poll.UntilAsync(() => store.Disposed, EventWait), "old store never released after its last write");
        Assert.Equal(0, ns.InFlight);
        Assert.Equal(0, store.DisposedWhileActive);
        Assert.Equal(0, store.UsedAfterDispose);
        Assert.True(store.DisposedSeq > store.LastWriteDoneSeq);
        await WriteReadAsync(host, 0, 1, 64, 4096, seed: 43);
        await WriteReadAsync(host, 0, 2, 64, 4096, seed: 44);
        var back = new byte[4096];
        (await host.ReadAsync(1, 2, 0, back)).EnsureSuccess();
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0, "the old write landed in the re-added namespace");
        Assert.Null(host.Io(0).Failure);
    }

    [Fact]
    public async Task RemoveAndReAddSameNsid_20Cycles_IoWorksAfterEachReAdd_WhileIoHammersIt()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        var sub = target.Host.Target.FindSubsystem(Nqn)!;
        await using var host = await target.ConnectWithIoAsync(4);
        await EnableNoticesAsync(host);
        await m.AddNamespaceAsync(Nqn, Memory(2, "8M"));
        var load = IoLoad.Start(host, nsid: 1, queues: 2, workersPerQueue: 1, regionBlocks: 16384);

        // Hammer NSID 2 from queue 3: every command must either succeed or fail with Invalid Namespace.
        using var stop = new CancellationTokenSource();
        var unexpected = new ConcurrentQueue<string>();
        long hammered = 0, refused = 0;
        var hammer = Task.Run(async () =>
        {
            var buf = new byte[4096];
            var rnd = new Random(51);
            while (!stop.IsCancellationRequested)
            {
                var c = rnd.Next(2) == 0 ? await host.WriteAsync(3, 2, (ulong)rnd.Next(0, 16000), buf) : await host.ReadAsync(3, 2, (ulong)rnd.Next(0, 16000), buf);
                Interlocked.Increment(ref hammered);
                if (c.Status == StatusInvalidNamespace) Interlocked.Increment(ref refused);
                else if (!c.IsSuccess) unexpected.Enqueue(c.ToString());
            }
        });
        try
        {
            for (int cycle = 0; cycle < 20; cycle++)
            {
                var old = sub.GetNamespace(2)!;
                await m.RemoveNamespaceAsync(Nqn, 2);
                Assert.Null(sub.GetNamespace(2));
                Assert.Equal(0, old.InFlight);
                Assert.Equal(0L, ((MemoryBlockStore)old.Store).AllocatedBytes); // released
                Assert.Equal(StatusInvalidNamespace, (await host.ReadAsync(cycle % 3, 2, 0, new byte[512])).Status);

                await m.AddNamespaceAsync(Nqn, Memory(2, "8M"));
                int q = cycle % 3;
                var zeros = new byte[4096];
                (await host.ReadAsync(q, 2, 1000, zeros)).EnsureSuccess($"cycle {cycle}: read after re-add");
                Assert.True(zeros.AsSpan().IndexOfAnyExcept((byte)0) < 0, $"cycle {cycle}: re-added namespace is not blank");
                await WriteReadAsync(host, q, 2, 1000, 4096, seed: 600 + cycle);
            }
            Assert.Equal(Nsids(1u, 2u), await ActiveNsidsAsync(host));
            Assert.Single(target.Config.Subsystems.Single(s => s.Nqn == Nqn).Namespaces, n => n.Nsid == 2);
            Assert.Equal(Nsids(1u, 2u), m.ListNamespaces(Nqn).Select(n => n.Nsid).ToArray());
        }
        finally
        {
            stop.Cancel();
            await hammer.WaitAsync(EventWait);
            await load.StopAsync();
        }
        output.WriteLine($"NSID 2 hammer: {hammered} commands, {refused} refused with Invalid Namespace; NSID 1 load: {load.Ops} verified pairs");
        Assert.Empty(unexpected);
        Assert.True(hammered > 20, $"the hammer sent only {hammered} commands");
        load.AssertClean();
        // The changed list holds NSID 2 once however many times it changed.
        Assert.Equal(Nsids(2u), await ChangedListAsync(host));
    }

    /// <summary>
    /// The admission race of a remove at the core: a request's TryAcquire (increment, then read "admitting")
    /// against StopAndDrainAsync (clear "admitting", then read the count). Without a full fence between the
    /// store and the load on the drain side, both can miss each other (x86 store-load reordering): the
    /// namespace counts as drained, and its store is released, while that request runs.
    /// </summary>
    [Fact]
    public void DrainRace_TryAcquireAgainstStopAndDrain_DrainNeverCompletesUnderAHeldRequest()
    {
        var store = new MemoryBlockStore(4096);
        var ids = NamespaceIds.Derive(Nqn, 1);
        const int MaxIterations = 400_000;
        var budget = TimeSpan.FromSeconds(3); // a loaded machine gets fewer races, never a long test
        Namespace? ns = null;
        Task? drained = null;
        int go = 0, drainedAt = 0, contended = 0, violations = 0, iterations = 0;
        var drainer = new Thread(() =>
        {
            for (int i = 1; ; i++)
            {
                var wait = new SpinWait();
                int g;
                while ((g = Volatile.Read(ref go)) != i)
                {
                    if (g < 0) return;
                    wait.SpinOnce(sleep1Threshold: -1);
                }
                drained = Volatile.Read(ref ns)!.StopAndDrainAsync();
                Volatile.Write(ref drainedAt, i);
            }
        }) { IsBackground = true };
        drainer.Start();
        var rnd = new Random(77);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 1; i <= MaxIterations && clock.Elapsed < budget; i++)
        {
            var n = new Namespace(1, store, 512, ids);
            Volatile.Write(ref ns, n);
            Volatile.Write(ref go, i);
            Thread.SpinWait(rnd.Next(0, 64)); // lands the acquire anywhere around the drain
            bool acquired = n.TryAcquire(out int epoch);
            var wait = new SpinWait();
            while (Volatile.Read(ref drainedAt) != i) wait.SpinOnce(sleep1Threshold: -1);
            if (acquired)
            {
                contended++;
                if (drained!.IsCompleted) violations++;
                n.Release(epoch);
            }
            Assert.True(drained!.IsCompleted, "drain did not complete once the request released");
            iterations = i;
        }
        Volatile.Write(ref go, -1);
        Assert.True(drainer.Join(TimeSpan.FromSeconds(10)));
        output.WriteLine($"{iterations} races in {clock.ElapsedMilliseconds} ms; the request won {contended} times; drain completed under a held request {violations} times");
        Assert.Equal(0, violations);
    }

    /// <summary>
    /// A forced shrink waits for writes already admitted past the new end before the store lets the space go:
    /// a write whose range was checked before the shrink (here it waits for its R2T data) must not land in
    /// released space and re-create it. After a later grow that region reads as zeros.
    /// </summary>
    [Fact]
    public async Task ForcedShrink_WriteAdmittedPastTheNewEnd_DoesNotSurviveALaterGrow()
    {
        await using var target = await TestTarget.StartAsync(output);
        var m = target.Host.Manager;
        await using var host = await target.ConnectWithIoAsync(2);
        await m.AddNamespaceAsync(Nqn, Memory(2, "8M"));
        using var r2tSeen = new ManualResetEventSlim();
        using var proceed = new ManualResetEventSlim();
        host.Io(0).R2TInterceptor = _ => { r2tSeen.Set(); proceed.Wait(TimeSpan.FromSeconds(20)); return false; };

        var data = TestData.Random(16384, 71); // larger than the in-capsule limit: the target asks for it with R2T
        var write = host.WriteAsync(0, 2, 12288, data); // 6 MiB: inside 8M, outside 4M
        Assert.True(r2tSeen.Wait(EventWait), "no R2T");
        var shrink = m.ResizeNamespaceAsync(Nqn, 2, "4M", force: true);
        await Task.Delay(200);
        Assert.False(shrink.IsCompleted, "the shrink released the space while a write admitted against the old size was in flight");
        proceed.Set();
        var c = await write.WaitAsync(EventWait);
        await shrink.WaitAsync(EventWait);
        output.WriteLine($"write admitted before the shrink completed first: {c}");

        await m.ResizeNamespaceAsync(Nqn, 2, "8M", force: false);
        var back = new byte[16384];
        (await host.ReadAsync(1, 2, 12288, back)).EnsureSuccess();
        Assert.True(back.AsSpan().IndexOfAnyExcept((byte)0) < 0, "space cut off by the forced shrink and grown again shows a write that completed after the shrink");
    }
}
