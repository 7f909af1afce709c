using System.Runtime.InteropServices;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Testing;
using Transport.Tcp.Pdu;
using static Transport.Tcp.Tests.NvmeTcpDataPathTests;

namespace Transport.Tcp.Tests;

/// <summary>A host may have as many commands outstanding as its queue holds (Connect SQSIZE + 1; before Connect,
/// one): one more ends the connection with a C2HTermReq. Requests answered early by an abort do not count.</summary>
public class NvmeTcpQueueDepthTests
{
    private static TermReqPdu ExpectTermReq(byte[] pdu)
    {
        Assert.Equal((byte)PduType.C2HTermReq, pdu[0]);
        return MemoryMarshal.Read<TermReqPdu>(pdu);
    }

    [Fact]
    public async Task Before_connect_one_command_may_be_outstanding()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(CaptureVectors.ICReq);
        await c.ReceivePduAsync();
        // Two commands in one write: the first is still unanswered when the second arrives.
        await c.SendAsync(Bytes.Concat(CaptureVectors.PropertyGetCapCmd, CaptureVectors.PropertyGetCapCmd));
        Resp(await c.ReceivePduAsync(), 1, NvmeStatus.CommandSequenceError); // nothing but Connect before Connect
        Assert.Equal(FatalErrorStatus.PduSequenceError, ExpectTermReq(await c.ReceivePduAsync()).Status);
        await c.ExpectClosedAsync();
    }

    [Fact]
    public async Task A_queue_of_128_entries_takes_128_commands_and_not_one_more()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f, sqsize: 127);
        var burst = new List<byte[]>();
        for (ushort cid = 0; cid < 129; cid++) burst.Add(Capsule(Rw(IoOpcode.Write, cid, cid * 8u, 8))); // each waits for its data
        await io.SendAsync(Bytes.Concat([.. burst]));
        int r2ts = 0;
        byte[] pdu;
        while ((pdu = await io.ReceivePduAsync())[0] == (byte)PduType.R2T) r2ts++;
        Assert.Equal(128, r2ts);
        Assert.Equal(FatalErrorStatus.PduSequenceError, ExpectTermReq(pdu).Status);
        await io.ExpectClosedAsync();
        Assert.Equal(0, f.Subsystem.Namespaces.Single().InFlight); // the 128 that never got data gave their references back
        await admin.DrainAndCloseAsync();
    }

    [Fact]
    public async Task Requests_answered_by_an_abort_do_not_count_against_the_host()
    {
        using var f = new PipeFixture();
        var store = new GatedBlockStore(1 << 20) { Hold = true };
        f.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(f.Subsystem.Nqn, 2)));
        var (admin, io) = await ConnectAsync(f, sqsize: 3); // 4 entries

        byte[] StuckWrite(ushort cid)
        {
            var w = Rw(IoOpcode.Write, cid, cid * 8u, 8);
            w.Nsid = 2;
            w.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
            return Capsule(w, new byte[4096]);
        }

        for (ushort cid = 0x10; cid < 0x14; cid++) await io.SendAsync(StuckWrite(cid));
        Assert.True(await Poll.UntilAsync(() => store.WriteEntered.Task.IsCompleted && f.Subsystem.GetNamespace(2)!.InFlight == 4, TimeSpan.FromSeconds(10)));
        Assert.Equal(4, io.Queue.AbortRequests(_ => true, NvmeStatus.AbortRequested)); // as a hot-remove at its drain timeout
        for (ushort cid = 0x10; cid < 0x14; cid++) Resp(await io.ReceivePduAsync(), cid, NvmeStatus.AbortRequested);

        // The host has nothing outstanding now: four more commands fit (the aborted four still hold their slots).
        for (ushort cid = 0x20; cid < 0x24; cid++) await io.SendAsync(StuckWrite(cid));
        Assert.True(await Poll.UntilAsync(() => f.Subsystem.GetNamespace(2)!.InFlight == 8, TimeSpan.FromSeconds(10)));
        Assert.False(io.Run.IsCompleted);
        // And the bound still holds: a fifth outstanding command is one too many.
        await io.SendAsync(StuckWrite(0x30));
        Assert.Equal(FatalErrorStatus.PduSequenceError, ExpectTermReq(await io.ReceivePduAsync()).Status);

        store.Release();
        await io.ExpectClosedAsync();
        Assert.True(await Poll.UntilAsync(() => f.Subsystem.GetNamespace(2)!.InFlight == 0, TimeSpan.FromSeconds(10)));
        await admin.DrainAndCloseAsync();
    }
}
