using System.Buffers.Binary;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>NVM I/O commands on a memory namespace, driven through FabricQueue without sockets.</summary>
public class IoTests
{
    private static (TestTarget T, TestQueue Admin, TestQueue Io) Setup(TargetLimits? limits = null)
    {
        var t = new TestTarget(limits);
        var admin = t.ConnectAdmin();
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        return (t, admin, io);
    }

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void Write_then_read_round_trip()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var data = Pattern(8 * 512, 1);
        var w = io.Ok(Cmd.Write(1, 100, 8), data);
        Assert.Equal(DataDirection.HostToController, w.Direction);
        var r = io.Ok(Cmd.Read(1, 100, 8));
        Assert.Equal(DataDirection.ControllerToHost, r.Direction);
        Assert.Equal(data, r.DataSpan.ToArray());
        Assert.Equal(1, r.Cqe.SqId);

        // The bytes sit at LBA 100 * 512 in the store.
        var raw = new byte[512];
        t.Store.Read(100 * 512, raw);
        Assert.Equal(data.AsSpan(0, 512).ToArray(), raw);

        // A partial read of the middle.
        var mid = io.Ok(Cmd.Read(1, 103, 2));
        Assert.Equal(data.AsSpan(3 * 512, 1024).ToArray(), mid.DataSpan.ToArray());
        // Unwritten blocks read as zeros.
        var z = io.Ok(Cmd.Read(1, 0, 4));
        Assert.All(z.DataSpan.ToArray(), b => Assert.Equal(0, b));
        // No namespace reference is left behind.
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Write_and_read_at_the_last_lba()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        ulong last = (ulong)(TestTarget.NsBytes / 512) - 1;
        var data = Pattern(512, 2);
        io.Ok(Cmd.Write(1, last, 1), data);
        Assert.Equal(data, io.Ok(Cmd.Read(1, last, 1)).DataSpan.ToArray());
    }

    [Theory]
    [InlineData(8192ul, 1u)]          // first LBA past the end
    [InlineData(8191ul, 2u)]          // runs past the end
    [InlineData(0xFFFFFFFF_FFFFFFFFul, 1u)] // SLBA + NLB overflow
    [InlineData(0x1_0000_0000ul, 1u)]
    public void Lba_out_of_range(ulong slba, uint blocks)
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var r = io.Expect(NvmeStatus.LbaOutOfRange, Cmd.Read(1, slba, blocks));
        Assert.Equal(0x4080, (int)r.Status);
        io.Expect(NvmeStatus.LbaOutOfRange, Cmd.WriteZeroes(1, slba, blocks));
        Assert.Equal(0, t.Ns.InFlight);
        Assert.Equal(0, t.Ns.Counters.ReadCommands);
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(2u)]
    [InlineData(0xFFFFFFFFu)]
    public void Invalid_nsid(uint nsid)
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var r = io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(nsid, 0, 1));
        Assert.Equal(0x400B, (int)r.Status);
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Write(nsid, 0, 1), new byte[512]);
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.WriteZeroes(nsid, 0, 1));
        var (dsm, data) = Cmd.DeallocateRanges(nsid, (0, 1));
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, dsm, data);
    }

    [Theory]
    [InlineData(0x05, 0u)]    // Compare (not supported)
    [InlineData(0x04, 0u)]    // reserved
    [InlineData(0x0D, 0u)]    // Reservation Register
    [InlineData(0x7E, 512u)]
    [InlineData(0x03, 0u)]    // reserved, bidirectional data transfer bits
    [InlineData(0x03, 512u)]
    public void Unknown_io_opcode_is_invalid_opcode(byte opcode, uint sgl)
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var r = io.Expect(NvmeStatus.InvalidOpcode, Cmd.Raw(opcode, 1, sgl), new byte[opcode % 4 == 1 ? sgl : 0]);
        Assert.Equal(0x4001, (int)r.Status);
    }

    [Fact]
    public void Transfer_larger_than_mdts_is_invalid_field()
    {
        var (t, _, io) = Setup(new TargetLimits { Mdts = 1 }); // 8 KiB
        using var _t = t;
        io.Ok(Cmd.Read(1, 0, 16)); // exactly 8 KiB
        var r = io.Expect(NvmeStatus.InvalidField, Cmd.Read(1, 0, 17));
        Assert.Equal(0x4002, (int)r.Status);
        // NLB beyond MDTS with a small SGL is caught too.
        io.Expect(NvmeStatus.InvalidField, Cmd.Read(1, 0, 17, sglLength: 512));
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Default_mdts_is_one_mebibyte()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        io.Ok(Cmd.Read(1, 0, 2048));
        io.Expect(NvmeStatus.InvalidField, Cmd.Read(1, 0, 2049));
    }

    [Theory]
    [InlineData(4u, 1024u)]
    [InlineData(4u, 4096u)]
    [InlineData(1u, 0u)]
    public void Sgl_length_mismatch_is_data_sgl_length_invalid(uint blocks, uint sgl)
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var r = io.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.Read(1, 0, blocks, sglLength: sgl));
        Assert.Equal(0x400F, (int)r.Status);
        io.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.Write(1, 0, blocks, sglLength: sgl), new byte[sgl]);
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Write_zeroes_clears_blocks()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var data = Pattern(16 * 512, 3);
        io.Ok(Cmd.Write(1, 0, 16), data);
        io.Ok(Cmd.WriteZeroes(1, 4, 4));
        io.Ok(Cmd.WriteZeroes(1, 10, 2, deallocate: true));
        var back = io.Ok(Cmd.Read(1, 0, 16)).DataSpan.ToArray();
        var expected = (byte[])data.Clone();
        Array.Clear(expected, 4 * 512, 4 * 512);
        Array.Clear(expected, 10 * 512, 2 * 512);
        Assert.Equal(expected, back);
        Assert.Equal(2, t.Ns.Counters.OtherCommands);
    }

    [Fact]
    public void Dataset_management_deallocate_reads_back_zeros()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        int blocks = 4096; // two whole 1 MiB chunks of the memory store
        for (int lba = 0; lba < blocks; lba += 2048) io.Ok(Cmd.Write(1, (ulong)lba, 2048), Pattern(2048 * 512, lba));
        io.Ok(Cmd.Write(1, 5000, 8), Pattern(8 * 512, 9));
        long before = t.Store.AllocatedBytes;

        var (dsm, ranges) = Cmd.DeallocateRanges(1, (0, (uint)blocks), (5002, 2), (7000, 0));
        io.Ok(dsm, ranges);
        Assert.All(io.Ok(Cmd.Read(1, 0, 2048)).DataSpan.ToArray(), b => Assert.Equal(0, b));
        Assert.All(io.Ok(Cmd.Read(1, 2048, 2048)).DataSpan.ToArray(), b => Assert.Equal(0, b));
        var tail = io.Ok(Cmd.Read(1, 5000, 8)).DataSpan.ToArray();
        var expected = Pattern(8 * 512, 9);
        Array.Clear(expected, 2 * 512, 2 * 512);
        Assert.Equal(expected, tail);
        Assert.True(t.Store.AllocatedBytes < before, "whole chunks are released");
    }

    [Fact]
    public void Dataset_management_checks_ranges_before_touching_anything()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var data = Pattern(512, 4);
        io.Ok(Cmd.Write(1, 0, 1), data);
        var (dsm, ranges) = Cmd.DeallocateRanges(1, (0, 1), (8190, 10));
        io.Expect(NvmeStatus.LbaOutOfRange, dsm, ranges);
        Assert.Equal(data, io.Ok(Cmd.Read(1, 0, 1)).DataSpan.ToArray());

        // Without AD it is a hint: success, nothing changes.
        (dsm, ranges) = Cmd.DeallocateRanges(1, (0, 1));
        dsm.Cdw11 = 0;
        io.Ok(dsm, ranges);
        Assert.Equal(data, io.Ok(Cmd.Read(1, 0, 1)).DataSpan.ToArray());

        // Range list shorter than NR says.
        (dsm, ranges) = Cmd.DeallocateRanges(1, (0, 1));
        dsm.Cdw10 = 1;
        io.Expect(NvmeStatus.DataSglLengthInvalid, dsm, ranges);
    }

    [Fact]
    public void Flush_one_namespace_and_all()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var flushes = new CountingStore(1 << 20);
        t.Subsystem.AttachNamespace(new Namespace(2, flushes, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        io.Ok(Cmd.Flush(1));
        Assert.Equal(0, flushes.Flushes);
        io.Ok(Cmd.Flush(2));
        Assert.Equal(1, flushes.Flushes);
        io.Ok(Cmd.Flush(0xFFFFFFFF));
        Assert.Equal(2, flushes.Flushes);
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Flush(3));
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public void Fua_and_disabled_write_cache_flush_the_store()
    {
        var (t, admin, io) = Setup();
        using var _t = t;
        var store = new CountingStore(1 << 20);
        t.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        io.Ok(Cmd.Write(2, 0, 1), new byte[512]);
        Assert.Equal(0, store.Flushes);
        var fua = Cmd.Write(2, 0, 1);
        fua.Cdw12 |= 1u << 30;
        io.Ok(fua, new byte[512]);
        Assert.Equal(1, store.Flushes);
        admin.Ok(Cmd.SetFeatures(FeatureId.VolatileWriteCache, 0));
        io.Ok(Cmd.Write(2, 0, 1), new byte[512]);
        Assert.Equal(2, store.Flushes);
    }

    [Fact]
    public async Task Asynchronous_store_completes_later()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var store = new CountingStore(1 << 20) { Delay = true };
        t.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        var req = io.Submit(Cmd.Write(2, 1, 1), Pattern(512, 5));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while (!io.Transport.Responses.Contains(req) && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.Contains(req, io.Transport.Responses);
        Assert.Equal(NvmeStatus.Success, req.Status);
        Assert.Equal(0, t.Subsystem.GetNamespace(2)!.InFlight);

        store.Fail = true;
        req = io.Submit(Cmd.Read(2, 1, 1));
        deadline = DateTime.UtcNow.AddSeconds(5);
        while (!io.Transport.Responses.Contains(req) && DateTime.UtcNow < deadline) await Task.Delay(5);
        Assert.Equal(NvmeStatus.InternalError, req.Status);
        Assert.Equal(1, t.Subsystem.GetNamespace(2)!.Counters.Errors);
    }

    /// <summary>A store failure carrying an NVMe status (StoreIoException) is answered with that status,
    /// DNR included; any other exception is Internal Error.</summary>
    [Theory]
    [InlineData(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr, true)]
    [InlineData(NvmeStatus.CapacityExceeded, false)]
    public async Task Store_io_exception_sets_the_completion_status(NvmeStatus status, bool read)
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var store = new CountingStore(1 << 20) { Delay = true, Fail = true, Failure = new StoreIoException(status, "injected") };
        t.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        var req = read ? io.Submit(Cmd.Read(2, 1, 1)) : io.Submit(Cmd.Write(2, 1, 1), Pattern(512, 6));
        Assert.True(await Poll.UntilAsync(() => io.Transport.Responses.Contains(req), TimeSpan.FromSeconds(30)));
        Assert.Equal(status, req.Status);
        Assert.Equal(0x4000, (ushort)req.Cqe.Status & 0x4000); // Do Not Retry: the host must not resend it
        var byStatus = Assert.Single(t.Subsystem.GetNamespace(2)!.Counters.ErrorsByStatus);
        Assert.Equal(read ? "UnrecoveredReadError" : "CapacityExceeded", Telemetry.CoreMetrics.StatusLabel(byStatus.Key));
    }

    [Fact]
    public void Io_commands_count_in_namespace_counters()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        io.Ok(Cmd.Write(1, 0, 2), new byte[1024]);
        io.Ok(Cmd.Read(1, 0, 4));
        io.Expect(NvmeStatus.LbaOutOfRange, Cmd.Read(1, 1 << 20, 1));
        Assert.Equal(1, t.Ns.Counters.WriteCommands);
        Assert.Equal(1024, t.Ns.Counters.BytesWritten);
        Assert.Equal(1, t.Ns.Counters.ReadCommands);
        Assert.Equal(2048, t.Ns.Counters.BytesRead);
    }

    [Fact]
    public void Admin_opcodes_on_an_io_queue_are_invalid_opcode()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        io.Expect(NvmeStatus.InvalidOpcode, Cmd.KeepAlive());
        io.Expect(NvmeStatus.InvalidOpcode, Cmd.AsyncEventRequest());
    }

    // ------------------------------------------------------------------ namespace drain

    [Fact]
    public async Task Namespace_drain_waits_for_in_flight_io_and_refuses_new()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        // A prepared read holds the namespace (as while a transport moves its data).
        var held = new NvmeRequest { Sqe = Cmd.Read(1, 0, 1) };
        held.Sqe.CommandId = 7;
        Assert.Equal(NvmeStatus.Success, io.Queue.Prepare(held));
        Assert.Equal(1, t.Ns.InFlight);

        var detached = t.Subsystem.DetachNamespace(1);
        Assert.Same(t.Ns, detached);
        var drain = detached!.StopAndDrainAsync();
        Assert.False(drain.IsCompleted);
        Assert.False(t.Ns.IsAdmitting);
        Assert.False(t.Ns.TryAcquire(out _));
        // New I/O sees the namespace gone.
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(1, 0, 1));

        io.Queue.Execute(held);
        Assert.Equal(NvmeStatus.Success, held.Status);
        await drain.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, t.Ns.InFlight);
        // A second call returns the same completed task.
        Assert.True(detached.StopAndDrainAsync().IsCompleted);
    }

    [Fact]
    public void Namespace_stopped_while_still_attached_refuses_io()
    {
        var (t, _, io) = Setup();
        using var _t = t;
        var drain = t.Ns.StopAndDrainAsync();
        Assert.True(drain.IsCompleted);
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(1, 0, 1));
        io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Flush(1));
        Assert.Equal(0, t.Ns.InFlight);
    }

    [Fact]
    public async Task TryAcquire_and_release_directly()
    {
        var ns = new Namespace(1, new MemoryBlockStore(4096), 512, NamespaceIds.Derive(TestTarget.SubNqn, 1));
        Assert.True(ns.TryAcquire(out int e1));
        Assert.True(ns.TryAcquire(out int e2));
        var drain = ns.StopAndDrainAsync();
        ns.Release(e1);
        Assert.False(drain.IsCompleted);
        ns.Release(e2);
        await drain.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(ns.TryAcquire(out _));
        Assert.Equal(0, ns.InFlight);
    }

    /// <summary>A memory store that counts flushes, optionally completes asynchronously, optionally fails.</summary>
    private sealed class CountingStore(long length) : IBlockStore
    {
        private readonly MemoryBlockStore _inner = new(length);
        public int Flushes;
        public bool Delay;
        public bool Fail;
        public Exception Failure = new IOException("injected failure");
        public long Length => length;
        public string Description => "counting";

        private async ValueTask Maybe()
        {
            if (Delay) await Task.Yield();
            if (Fail) throw Failure;
        }

        public async ValueTask ReadAsync(long offset, Memory<byte> destination) { await Maybe(); await _inner.ReadAsync(offset, destination); }
        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source) { await Maybe(); await _inner.WriteAsync(offset, source); }
        public ValueTask FlushAsync() { Interlocked.Increment(ref Flushes); return default; }
        public ValueTask ZeroAsync(long offset, long len, bool deallocate) => _inner.ZeroAsync(offset, len, deallocate);
        public void Resize(long newLength) => throw new StoreException("not resizable");
        public void Dispose() => _inner.Dispose();
    }
}
