using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;
using static Transport.Tcp.Tests.NvmeTcpDataPathTests;

namespace Transport.Tcp.Tests;

/// <summary>The data buffer budget seen from the wire: a command that finds it spent waits for a buffer (no R2T,
/// no read) and goes on when one comes back; a connection closing meanwhile leaves nothing behind.</summary>
public class DataBufferBudgetTests
{
    private const int Size = 128 * 1024;
    // MDTS 5 = 128 KiB per command; the budget is one such buffer.
    private static readonly TargetLimits OneBuffer = new() { Mdts = 5, DataBufferBudget = Size };

    [Fact]
    public async Task A_write_waits_for_the_budget_and_gets_its_R2T_when_the_first_write_completes()
    {
        using var f = new PipeFixture(OneBuffer);
        var (admin, io) = await ConnectAsync(f);
        var a = Pattern(Size, 1);
        var b = Pattern(Size, 2);
        ushort c1 = io.NextCid(), c2 = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, c1, 0, Size / 512)), Capsule(Rw(IoOpcode.Write, c2, 1024, Size / 512)));
        var r1 = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
        Assert.Equal(c1, r1.CommandId);
        Assert.True(await Poll.UntilAsync(() => f.Target.DataBuffers.Waiting == 1, TimeSpan.FromSeconds(10)), "condition not reached in time"); // c2: no buffer, so no R2T yet
        Assert.Equal(1, f.Target.DataBuffers.InUse);

        await io.SendAsync(H2CData(c1, r1.TransferTag, 0, a, last: true));
        Resp(await io.ReceivePduAsync(), c1);
        var r2 = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync()); // c1's buffer went to c2
        Assert.Equal(PduType.R2T, r2.Header.Type);
        Assert.Equal(c2, r2.CommandId);
        Assert.Equal((uint)Size, r2.Length);
        await io.SendAsync(H2CData(c2, r2.TransferTag, 0, b, last: true));
        Resp(await io.ReceivePduAsync(), c2);

        var stored = new byte[Size];
        f.Store.Read(0, stored);
        Assert.Equal(a, stored);
        f.Store.Read(1024 * 512, stored);
        Assert.Equal(b, stored);
        Assert.Equal(Size, f.Target.DataBuffers.CreatedBytes); // never more than the budget
        Assert.Equal(0, f.Target.DataBuffers.Waiting);
        await CloseAsync(f, admin, io);
        Assert.Equal(0, f.Target.DataBuffers.InUse);
    }

    [Fact]
    public async Task A_read_waits_for_the_budget_and_runs_when_a_buffer_comes_back()
    {
        using var f = new PipeFixture(OneBuffer);
        var data = Pattern(Size, 3);
        f.Store.Write(8192 * 512, data);
        var (admin, io) = await ConnectAsync(f);
        ushort w = io.NextCid(), r = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, w, 0, Size / 512)), Capsule(Rw(IoOpcode.Read, r, 8192, Size / 512)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync()); // the write holds the only buffer
        Assert.True(await Poll.UntilAsync(() => f.Target.DataBuffers.Waiting == 1, TimeSpan.FromSeconds(10)), "condition not reached in time");
        await io.SendAsync(H2CData(w, r2t.TransferTag, 0, Pattern(Size, 4), last: true));
        Resp(await io.ReceivePduAsync(), w);
        var pdu = await io.ReceivePduAsync();
        var h = MemoryMarshal.Read<DataPdu>(pdu);
        Assert.Equal(PduType.C2HData, h.Header.Type);
        Assert.Equal(r, h.CommandId);
        Assert.Equal(data, pdu.AsSpan(h.Header.DataOffset, (int)h.DataLength).ToArray());
        Resp(await io.ReceivePduAsync(), r);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Closing_while_a_command_waits_releases_its_namespace_reference_and_its_place_in_line()
    {
        using var f = new PipeFixture(OneBuffer);
        var (admin, io) = await ConnectAsync(f);
        ushort c1 = io.NextCid(), c2 = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, c1, 0, Size / 512)), Capsule(Rw(IoOpcode.Write, c2, 1024, Size / 512)));
        await io.ReceivePduAsync(); // c1's R2T
        Assert.True(await Poll.UntilAsync(() => f.Target.DataBuffers.Waiting == 1, TimeSpan.FromSeconds(10)), "condition not reached in time");
        var ns = f.Subsystem.Namespaces.Single();
        Assert.Equal(2, ns.InFlight);
        await io.DrainAndCloseAsync(); // neither write ever got its data
        Assert.Equal(0, f.Target.DataBuffers.Waiting);
        Assert.Equal(0, f.Target.DataBuffers.InUse);
        Assert.Equal(0, ns.InFlight);
        await admin.DrainAndCloseAsync();
    }

    [Fact]
    public async Task Admin_queue_data_counts_in_the_budget()
    {
        using var f = new PipeFixture(OneBuffer);
        var (admin, io) = await ConnectAsync(f);
        ushort w = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, w, 0, Size / 512)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync()); // the write holds the whole budget

        // A 128 KiB Get Log Page on the admin queue needs a budgeted buffer too: it waits, nothing is sent.
        var log = new SubmissionQueueEntry { Opcode = AdminOpcode.GetLogPage, CommandId = 0x99, Nsid = 0xFFFFFFFF };
        log.Cdw10 = LogPageId.CommandsSupportedAndEffects | ((uint)(Size / 4 - 1) << 16);
        log.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        log.Sgl.Length = Size;
        await admin.SendAsync(Capsule(log));
        Assert.True(await Poll.UntilAsync(() => f.Target.DataBuffers.Waiting == 1, TimeSpan.FromSeconds(10)), "the admin command did not wait for the budget");
        Assert.Equal(Size, f.Target.DataBuffers.CreatedBytes);

        await io.SendAsync(H2CData(w, r2t.TransferTag, 0, Pattern(Size, 9), last: true));
        Resp(await io.ReceivePduAsync(), w);
        var c2h = await admin.ReceivePduAsync(); // the log page, in the buffer the write gave back
        Assert.Equal((byte)PduType.C2HData, c2h[0]);
        Resp(await admin.ReceivePduAsync(), 0x99);
        Assert.Equal(Size, f.Target.DataBuffers.CreatedBytes);
        await CloseAsync(f, admin, io);
        Assert.Equal(0, f.Target.DataBuffers.InUse);
    }

    [Fact]
    public async Task A_host_at_its_share_waits_while_another_host_is_served()
    {
        // Budget: two 128 KiB buffers; a host may hold one of them.
        using var f = new PipeFixture(new TargetLimits { Mdts = 5, DataBufferBudget = 2 * Size, HostBufferShare = 50 });
        var (xAdmin, x) = await ConnectAsync(f, hostNqn: "nqn.2014-08.org.nvmexpress:uuid:0000000a-0000-0000-0000-000000000000");
        var (yAdmin, y) = await ConnectAsync(f, hostNqn: "nqn.2014-08.org.nvmexpress:uuid:0000000b-0000-0000-0000-000000000000");
        ushort x1 = x.NextCid(), x2 = x.NextCid();
        await x.SendAsync(Capsule(Rw(IoOpcode.Write, x1, 0, Size / 512)), Capsule(Rw(IoOpcode.Write, x2, 1024, Size / 512)));
        var r1 = MemoryMarshal.Read<R2TPdu>(await x.ReceivePduAsync());
        Assert.Equal(x1, r1.CommandId);
        Assert.True(await Poll.UntilAsync(() => f.Target.DataBuffers.Waiting == 1, TimeSpan.FromSeconds(10)), "x2 did not wait");
        Assert.Equal(1, f.Target.DataBuffers.ShareWaits); // x2 waits for its host's share, not for the budget

        // Y reads meanwhile: the budget has room, X's waiting command does not hold Y up.
        var data = Pattern(Size, 4);
        f.Store.Write(4096 * 512, data);
        ushort yr = y.NextCid();
        await y.SendAsync(Capsule(Rw(IoOpcode.Read, yr, 4096, Size / 512)));
        var pdu = await y.ReceivePduAsync();
        var h = MemoryMarshal.Read<DataPdu>(pdu);
        Assert.Equal(PduType.C2HData, h.Header.Type);
        Assert.Equal(data, pdu.AsSpan(h.Header.DataOffset, (int)h.DataLength).ToArray());
        Resp(await y.ReceivePduAsync(), yr);

        // X's first write completes: its buffer goes to x2, which gets its R2T.
        await x.SendAsync(H2CData(x1, r1.TransferTag, 0, Pattern(Size, 1), last: true));
        Resp(await x.ReceivePduAsync(), x1);
        var r2 = MemoryMarshal.Read<R2TPdu>(await x.ReceivePduAsync());
        Assert.Equal(x2, r2.CommandId);
        await x.SendAsync(H2CData(x2, r2.TransferTag, 0, Pattern(Size, 2), last: true));
        Resp(await x.ReceivePduAsync(), x2);
        Assert.Equal(0, f.Target.DataBuffers.Waiting);
        await CloseAsync(f, xAdmin, x, yAdmin, y);
    }
}
