using System.Runtime.InteropServices;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Nvme.Testing;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>Hot-remove with a stuck request, over the wire: the host gets an abort completion at the drain
/// timeout, nothing more when the store finally returns, and the connection keeps working.</summary>
public class NvmeTcpAbortTests
{
    [Fact]
    public async Task Stuck_write_is_answered_with_an_abort_at_the_drain_timeout_and_never_twice()
    {
        using var f = new PipeFixture();
        var store = new GatedBlockStore(1 << 20) { Hold = true };
        f.Subsystem.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(f.Subsystem.Nqn, 2)));
        var (admin, io) = await NvmeTcpDataPathTests.ConnectAsync(f);

        var write = NvmeTcpDataPathTests.Rw(IoOpcode.Write, 0x77, 0, 8);
        write.Nsid = 2;
        write.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        await io.SendAsync(NvmeTcpDataPathTests.Capsule(write, new byte[4096]));

        Assert.False(await f.Subsystem.RemoveNamespaceAsync(2, TimeSpan.FromMilliseconds(200)));
        var abort = NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), 0x77, NvmeStatus.AbortRequested);
        Assert.Equal(1, abort.SqId);
        Assert.False(store.Disposed);

        store.Release(); // the stuck write finally returns: no second completion for CID 0x77
        for (int i = 0; i < 200 && !store.Disposed; i++) await Task.Delay(25);
        Assert.True(store.Disposed);
        Assert.Equal(0, store.DisposedWhileActive); // never released under a running request
        Assert.Equal(0, store.UsedAfterDispose);

        // The queue is healthy and the next PDU is the answer to the next command, not a late 0x77.
        var read = NvmeTcpDataPathTests.Rw(IoOpcode.Read, 0x78, 0, 1);
        await io.SendAsync(NvmeTcpDataPathTests.Capsule(read));
        var pdu = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HData, pdu[0]);
        Assert.Equal(0x78, MemoryMarshal.Read<DataPdu>(pdu).CommandId);
        NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), 0x78);

        // The request slot went back to the pool after the late completion: 200 more commands still fit.
        for (ushort cid = 0x100; cid < 0x100 + 200; cid++)
        {
            await io.SendAsync(NvmeTcpDataPathTests.Capsule(NvmeTcpDataPathTests.Rw(IoOpcode.Flush, cid, 0, 1) with { Sgl = default }));
            NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), cid);
        }
        await NvmeTcpDataPathTests.CloseAsync(f, admin, io);
    }
}
