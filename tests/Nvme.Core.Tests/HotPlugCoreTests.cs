using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Nvme.Testing;

namespace Nvme.Core.Tests;

/// <summary>Hot-remove and resize at the core level, without sockets.</summary>
public class HotPlugCoreTests
{
    private static (TestTarget T, TestQueue Admin, TestQueue Io) Connected()
    {
        var t = new TestTarget();
        var admin = t.ConnectAdmin();
        admin.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices));
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        return (t, admin, io);
    }

    [Fact]
    public async Task Remove_waits_for_in_flight_io_refuses_new_io_and_releases_the_store_last()
    {
        var (t, admin, io) = Connected();
        using var _ = t;
        var store = new GatedBlockStore(1 << 20) { Hold = true };
        t.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        // The attach event was queued (no AER parked): collect it and read the log, which unmasks the notice.
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, admin.Ok(Cmd.AsyncEventRequest()).Cqe.Dword0);
        admin.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096));
        var aer = admin.Submit(Cmd.AsyncEventRequest());

        var inflight = io.Submit(Cmd.Write(2, 0, 8), new byte[8 * 512]);
        Assert.DoesNotContain(inflight, io.Transport.Responses);

        var removal = t.Subsystem.RemoveNamespaceAsync(2, TimeSpan.FromSeconds(30));
        // Draining: new I/O is refused at once, the namespace is still listed, the store still open.
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));
        Assert.False(removal.IsCompleted);
        Assert.False(store.Disposed);
        Assert.DoesNotContain(aer, admin.Transport.Responses);

        store.Release();
        Assert.True(await removal.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(NvmeStatus.Success, inflight.Status); // the in-flight write finished normally
        Assert.True(store.Disposed);
        Assert.Equal(0, store.DisposedWhileActive); // never released under a running request
        Assert.Equal(0, store.UsedAfterDispose);
        Assert.Null(t.Subsystem.GetNamespace(2));
        Assert.Contains(aer, admin.Transport.Responses);
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, aer.Cqe.Dword0);
        var log = admin.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        Assert.Equal(2u, BitConverter.ToUInt32(log, 0));
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));
        var id = admin.Ok(Cmd.Identify(IdentifyCns.Namespace, 2)).DataSpan.ToArray();
        Assert.All(id, b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Remove_with_a_stuck_request_aborts_it_detaches_and_releases_the_store_when_it_finishes()
    {
        var (t, _, io) = Connected();
        using var __ = t;
        var store = new GatedBlockStore(1 << 20) { Hold = true };
        t.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        var stuck = io.Submit(Cmd.Write(2, 0, 1), new byte[512]);
        var other = io.Submit(Cmd.Write(1, 0, 1), new byte[512]); // another namespace: untouched

        Assert.False(await t.Subsystem.RemoveNamespaceAsync(2, TimeSpan.FromMilliseconds(200)));
        // The host got a clean abort for the stuck command at the timeout...
        var abort = Assert.Single(io.Transport.Aborts);
        Assert.Same(stuck, abort.Request);
        Assert.Equal(NvmeStatus.AbortRequested, abort.Status);
        Assert.Equal(NvmeStatus.Success, other.Status);
        Assert.Null(t.Subsystem.GetNamespace(2)); // ...the namespace is detached for every host...
        Assert.False(store.Disposed);              // ...but the store is never released under a running request

        store.Release();
        for (int i = 0; i < 200 && !store.Disposed; i++) await Task.Delay(25);
        Assert.True(store.Disposed);
        Assert.Equal(0, store.DisposedWhileActive); // never released under a running request
        Assert.Equal(0, store.UsedAfterDispose);
        // The real completion came later and is only a recycle signal for the transport: nothing more is sent.
        Assert.True(stuck.CompletedAfterAbort);
    }

    [Fact]
    public void Remove_and_readd_the_same_nsid_repeatedly()
    {
        var (t, _, io) = Connected();
        using var __ = t;
        for (int cycle = 0; cycle < 20; cycle++)
        {
            var ns = new Namespace(2, new MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(TestTarget.SubNqn, 2));
            t.Subsystem.AttachNamespace(ns);
            var data = new byte[512];
            data[0] = (byte)cycle;
            io.Ok(Cmd.Write(2, 5, 1), data);
            Assert.Equal((byte)cycle, io.Ok(Cmd.Read(2, 5, 1)).DataSpan[0]);
            Assert.True(t.Subsystem.RemoveNamespaceAsync(2, TimeSpan.FromSeconds(5)).GetAwaiter().GetResult());
            io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 5, 1));
        }
    }

    [Fact]
    public async Task Grow_is_live_shrink_needs_force_and_both_raise_the_event()
    {
        var (t, admin, io) = Connected();
        using var _ = t;
        ulong before = t.Ns.BlockCount;
        var aer = admin.Submit(Cmd.AsyncEventRequest());
        io.Expect(NvmeStatus.LbaOutOfRange, Cmd.Read(1, before, 1));

        await t.Subsystem.ResizeNamespaceAsync(1, TestTarget.NsBytes * 2, allowShrink: false);
        Assert.Equal(before * 2, t.Ns.BlockCount);
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, aer.Cqe.Dword0);
        var id = admin.Ok(Cmd.Identify(IdentifyCns.Namespace, 1)).DataSpan.ToArray();
        Assert.Equal(before * 2, BitConverter.ToUInt64(id, 0)); // NSZE
        // The new space is usable and reads as zeros until written.
        Assert.All(io.Ok(Cmd.Read(1, before, 8)).DataSpan.ToArray(), b => Assert.Equal(0, b));
        var data = Enumerable.Range(0, 512).Select(i => (byte)i).ToArray();
        io.Ok(Cmd.Write(1, before * 2 - 1, 1), data);
        Assert.Equal(data, io.Ok(Cmd.Read(1, before * 2 - 1, 1)).DataSpan.ToArray());

        await Assert.ThrowsAsync<InvalidOperationException>(() => t.Subsystem.ResizeNamespaceAsync(1, TestTarget.NsBytes, allowShrink: false));
        Assert.Equal(before * 2, t.Ns.BlockCount);
        await Assert.ThrowsAsync<ArgumentException>(() => t.Subsystem.ResizeNamespaceAsync(1, TestTarget.NsBytes + 100, allowShrink: true));

        await t.Subsystem.ResizeNamespaceAsync(1, TestTarget.NsBytes, allowShrink: true);
        Assert.Equal(before, t.Ns.BlockCount);
        io.Expect(NvmeStatus.LbaOutOfRange, Cmd.Read(1, before, 1));
        // Growing again exposes zeros, not the data written past the old end before the shrink.
        await t.Subsystem.ResizeNamespaceAsync(1, TestTarget.NsBytes * 2, allowShrink: false);
        Assert.All(io.Ok(Cmd.Read(1, before * 2 - 1, 1)).DataSpan.ToArray(), b => Assert.Equal(0, b));
        var log = admin.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        Assert.Equal(1u, BitConverter.ToUInt32(log, 0));
        Assert.Equal(0u, BitConverter.ToUInt32(log, 4)); // deduplicated: one entry for all resizes
    }

    [Fact]
    public void File_store_grows_and_shrinks_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-resize-");
        try
        {
            var path = Path.Combine(dir.FullName, "ns.img");
            using var store = FileBlockStore.OpenFile(path, 1 << 20);
            store.Resize(3 << 20);
            Assert.Equal(3 << 20, store.Length);
            Assert.Equal(3 << 20, new FileInfo(path).Length);
            store.Resize(2 << 20);
            Assert.Equal(2 << 20, new FileInfo(path).Length);
            Assert.Throws<StoreException>(() => store.Resize(0));
        }
        finally { dir.Delete(true); }
    }
}
