using System.Runtime.InteropServices;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>Hot-remove with a stuck request, over the wire: the host gets an abort completion at the drain
/// timeout, nothing more when the store finally returns, and the connection keeps working.</summary>
public class NvmeTcpAbortTests
{
    private sealed class GatedStore(long length) : IBlockStore
    {
        private readonly MemoryBlockStore _inner = new(length);
        public TaskCompletionSource Gate { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Disposed;
        public long Length => _inner.Length;
        public string Description => "gated";
        public ValueTask ReadAsync(long offset, Memory<byte> destination) => _inner.ReadAsync(offset, destination);
        public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
        {
            await Gate.Task;
            if (Disposed) throw new ObjectDisposedException("store used after release");
            await _inner.WriteAsync(offset, source);
        }
        public ValueTask FlushAsync() => default;
        public ValueTask ZeroAsync(long offset, long length, bool deallocate) => _inner.ZeroAsync(offset, length, deallocate);
        public void Resize(long newLength) => _inner.Resize(newLength);
        public void Dispose() => Disposed = true;
    }

    [Fact]
    public async Task Stuck_write_is_answered_with_an_abort_at_the_drain_timeout_and_never_twice()
    {
        using var f = new NvmeTcpDataPathTests.Fixture();
        var store = new GatedStore(1 << 20);
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

        store.Gate.SetResult(); // the stuck write finally returns: no second completion for CID 0x77
        for (int i = 0; i < 200 && !store.Disposed; i++) await Task.Delay(25);
        Assert.True(store.Disposed);

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
