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
}
