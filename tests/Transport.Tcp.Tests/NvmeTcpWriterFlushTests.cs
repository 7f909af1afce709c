using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Transport.Tcp.Net;
using Transport.Tcp.Pdu;
using static Transport.Tcp.Tests.NvmeTcpDirectReceiveTests;

namespace Transport.Tcp.Tests;

/// <summary>
/// The writer's flush policy over real loopback sockets, in both socket modes: the data of large reads, sent from the
/// commands' own buffers, does not count towards the 32 KiB that flush a batch (what is copied into blocks does), so a
/// batch of 128 KiB reads goes out in sends of about 1 MiB instead of one send per read.
/// </summary>
public sealed class NvmeTcpWriterFlushTests : IDisposable
{
    private const int Reads = 16, Size = 128 * 1024;
    private readonly LoopbackTarget _t = new();

    public void Dispose() => _t.Dispose();

    /// <summary>Counts the sends of one connection's output and the bytes they carried.</summary>
    private sealed class SendCounter : ISendObserver
    {
        public int Sends;
        public long Bytes;
        public void Sent(List<ArraySegment<byte>> segments)
        {
            Interlocked.Increment(ref Sends);
            long n = 0;
            foreach (var s in segments) n += s.Count;
            Interlocked.Add(ref Bytes, n);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_batch_of_large_reads_goes_out_in_sends_of_about_1_MiB(bool poll)
    {
        var (_, io) = await _t.ConnectAsync(poll, digests: false);
        var data = NvmeTcpDataPathTests.Pattern(Reads * Size, 31);
        _t.Fixture.Store.Write(0, data);

        var queue = _t.Server!.Queues.Single(q => q.Core.QueueId == 1);
        var counter = new SendCounter();
        ((IObservableSend)queue.Output).Observer = counter;

        // All reads in one send: the target receives them as one batch and answers them in one writer run.
        var capsules = new List<byte>();
        for (int i = 0; i < Reads; i++)
            capsules.AddRange(io.Capsule(NvmeTcpDataPathTests.Rw(0x02, (ushort)(0x100 + i), (ulong)(i * Size / 512), Size / 512)));
        await io.SendAsync(capsules.ToArray());

        var got = new byte[Reads * Size];
        for (int answered = 0; answered < Reads;)
        {
            var pdu = await io.ReceivePduAsync();
            if (pdu[0] == (byte)PduType.C2HData)
            {
                int cid = BinaryPrimitives.ReadUInt16LittleEndian(pdu.AsSpan(8)) - 0x100;
                int offset = (int)BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(12));
                int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(pdu.AsSpan(16));
                pdu.AsSpan(pdu[3], length).CopyTo(got.AsSpan(cid * Size + offset));
                continue;
            }
            Assert.Equal((byte)PduType.CapsuleResp, pdu[0]);
            var cqe = MemoryMarshal.Read<CompletionQueueEntry>(pdu.AsSpan(8));
            Assert.InRange(cqe.CommandId, 0x100, 0x100 + Reads - 1);
            Assert.Equal(NvmeStatus.Success, cqe.Status);
            answered++;
        }
        Assert.Equal(data, got);

        long perRead = 24 + Size + CapsuleResponsePdu.Size; // C2HData header, its data, the CapsuleResp
        Assert.Equal(Reads * perRead, Interlocked.Read(ref counter.Bytes));
        // One send per read under the 32 KiB rule alone (16); about 1 MiB per send now: 2 for the batch, a few more
        // if the capsules came in more than one receive.
        Assert.True(counter.Sends <= 4, $"{counter.Sends} sends for {Reads} reads of 128 KiB answered in one batch");
    }
}
