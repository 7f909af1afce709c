using System.Buffers;
using System.IO.Pipelines;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>The connection's writer alone over a <see cref="Pipe"/>: items go out in the order they were queued
/// (ICResp first, its digests applying from then on), nothing follows a C2HTermReq, a Disconnect's batch still goes
/// out before the close, and the flush policy (every 32 KiB within a batch, once at its end).</summary>
public class NvmeTcpWriterTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    /// <summary>A PipeWriter that records how many bytes each flush sent, and can fail.</summary>
    private sealed class RecordingWriter(PipeWriter inner) : PipeWriter
    {
        public readonly List<long> Flushes = [];
        public readonly SemaphoreSlim Flushed = new(0);
        public bool Fail;

        public override void Advance(int bytes) => inner.Advance(bytes);
        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        public override void CancelPendingFlush() => inner.CancelPendingFlush();
        public override void Complete(Exception? exception = null) => inner.Complete(exception);
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;
        public override long UnflushedBytes => inner.UnflushedBytes;

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            if (Fail) throw new IOException("broken pipe");
            lock (Flushes) Flushes.Add(inner.UnflushedBytes);
            var r = inner.FlushAsync(cancellationToken);
            Flushed.Release();
            return r;
        }
    }

    private sealed class Owner : INvmeTcpWriterOwner
    {
        public readonly List<TcpRequest> Recycled = [];
        public (CloseReason Reason, string Text)? Stopped;
        public void Recycle(TcpRequest request) => Recycled.Add(request);
        public void WriterStopped(CloseReason reason, string text) => Stopped = (reason, text);
    }

    private sealed class Harness
    {
        private readonly Pipe _pipe = new(new PipeOptions(pauseWriterThreshold: 0));
        public Harness(TcpTransportOptions? options = null)
        {
            Output = new RecordingWriter(_pipe.Writer);
            Writer = new NvmeTcpWriter(Output, options ?? new TcpTransportOptions(), Owner);
        }
        public RecordingWriter Output { get; }
        public Owner Owner { get; } = new();
        public NvmeTcpWriter Writer { get; }

        public void Enqueue(params SendItem[] items)
        {
            foreach (var i in items) Assert.True(Writer.TryEnqueue(i));
        }

        /// <summary>Everything flushed so far.</summary>
        public byte[] Sent()
        {
            if (!_pipe.Reader.TryRead(out var r)) return [];
            var bytes = r.Buffer.ToArray();
            _pipe.Reader.AdvanceTo(r.Buffer.End);
            return bytes;
        }
    }

    private static TcpRequest Answered(ushort tag, ushort cid, NvmeStatus status = NvmeStatus.Success)
    {
        var r = new TcpRequest(tag);
        r.Sqe.CommandId = cid;
        r.Cqe = new CompletionQueueEntry { CommandId = cid, SqId = 1, SqHead = tag, Status = status };
        return r;
    }

    [Fact]
    public async Task Items_go_out_in_queue_order_with_the_icresp_digests_and_nothing_after_a_termreq()
    {
        var h = new Harness();
        var r2t = Answered(5, 0x10);
        r2t.R2TOffset = 8192;
        r2t.R2TLength = 4096;
        var done = Answered(6, 0x11);
        var aborted = new CompletionQueueEntry { CommandId = 0x12, SqId = 1, SqHead = 7, Status = NvmeStatus.AbortRequested };
        var late = Answered(7, 0x13);
        byte[] offending = [0x06, 0x03, 24, 28, 0, 0, 0, 0];
        var error = new PduError(FatalErrorStatus.InvalidPduHeaderField, 10, "test");
        h.Enqueue(SendItem.ICResp(digest: 3, hpda: 0), SendItem.R2T(r2t), SendItem.Response(done), SendItem.AbortResponse(aborted),
            SendItem.TermReq(error, offending), SendItem.Response(late));
        h.Writer.Wake();
        await h.Writer.RunAsync().WaitAsync(Bound); // a TermReq ends the loop

        var expected = new ArrayBufferWriter<byte>();
        PduWriter.WriteICResp(expected, 3, 128 * 1024);
        PduWriter.WriteR2T(expected, 0x10, 5, 8192, 4096, hdgst: true);
        PduWriter.WriteCapsuleResp(expected, done.Cqe, hdgst: true);
        PduWriter.WriteCapsuleResp(expected, aborted, hdgst: true);
        PduWriter.WriteC2HTermReq(expected, error.Status, error.FieldOffset, offending);
        Assert.Equal(expected.WrittenSpan.ToArray(), h.Sent());
        Assert.Equal([done], h.Owner.Recycled); // the late response was never written: not recycled, not counted
        Assert.Equal(1, h.Writer.ResponsesWritten);
        Assert.Equal(CloseReason.ProtocolError, h.Owner.Stopped?.Reason);

        h.Writer.Close();
        Assert.True(h.Writer.IsClosed);
        Assert.False(h.Writer.TryEnqueue(SendItem.Response(Answered(8, 0x14))));
    }

    [Fact]
    public async Task A_disconnect_response_lets_the_rest_of_its_batch_out_then_stops_the_writer()
    {
        var h = new Harness();
        TcpRequest a = Answered(1, 1), disconnect = Answered(2, 2), b = Answered(3, 3);
        h.Enqueue(SendItem.Response(a), SendItem.Response(disconnect, closeAfter: true), SendItem.Response(b));
        h.Writer.Wake();
        await h.Writer.RunAsync().WaitAsync(Bound);

        var expected = new ArrayBufferWriter<byte>();
        foreach (var r in new[] { a, disconnect, b }) PduWriter.WriteCapsuleResp(expected, r.Cqe, hdgst: false);
        Assert.Equal(expected.WrittenSpan.ToArray(), h.Sent());
        Assert.Equal([a, disconnect, b], h.Owner.Recycled);
        Assert.Equal((CloseReason.Disconnect, "disconnect"), h.Owner.Stopped);
        Assert.Equal([3L * CapsuleResponsePdu.Size], h.Output.Flushes); // one flush for the batch, then the close
    }

    [Fact]
    public async Task A_large_batch_is_flushed_every_32_KiB_and_once_at_its_end()
    {
        var h = new Harness();
        const int N = 3000; // 72000 bytes of 24-byte CapsuleResps
        for (int i = 0; i < N; i++) h.Enqueue(SendItem.Response(Answered((ushort)i, (ushort)i)));
        h.Writer.BeginClose(); // write what is queued, then end
        await h.Writer.RunAsync().WaitAsync(Bound);

        int perFlush = (NvmeTcpWriter.FlushThreshold + CapsuleResponsePdu.Size - 1) / CapsuleResponsePdu.Size; // the first past 32 KiB
        long piece = (long)perFlush * CapsuleResponsePdu.Size;
        Assert.Equal([piece, piece, (long)N * CapsuleResponsePdu.Size - 2 * piece], h.Output.Flushes);
        Assert.Equal(N * CapsuleResponsePdu.Size, h.Sent().Length);
        Assert.Equal(N, h.Writer.ResponsesWritten);
        Assert.Null(h.Owner.Stopped); // ended because it was closing, not stopped by an item
    }

    [Fact]
    public async Task Each_wake_up_writes_what_is_queued_with_one_flush()
    {
        var h = new Harness();
        var run = h.Writer.RunAsync();
        for (int i = 0; i < 10; i++) h.Enqueue(SendItem.Response(Answered((ushort)i, (ushort)i)));
        h.Writer.Wake();
        Assert.True(await h.Output.Flushed.WaitAsync(Bound));
        for (int i = 10; i < 15; i++) h.Enqueue(SendItem.Response(Answered((ushort)i, (ushort)i)));
        h.Writer.Wake();
        Assert.True(await h.Output.Flushed.WaitAsync(Bound));
        h.Writer.BeginClose();
        h.Writer.Wake();
        await run.WaitAsync(Bound);
        // Two batches, one flush each; closing flushes once more (nothing left by then).
        Assert.Equal([10L * CapsuleResponsePdu.Size, 5L * CapsuleResponsePdu.Size, 0], h.Output.Flushes);
        Assert.Equal(15 * CapsuleResponsePdu.Size, h.Sent().Length);
    }

    [Fact]
    public async Task A_failed_send_stops_the_writer_with_its_reason()
    {
        var h = new Harness();
        h.Output.Fail = true;
        h.Enqueue(SendItem.Response(Answered(1, 1)));
        h.Writer.Wake();
        await h.Writer.RunAsync().WaitAsync(Bound);
        Assert.Equal((CloseReason.SendFailed, "send failed: broken pipe"), h.Owner.Stopped);
    }

    [Fact]
    public async Task Options_set_the_icresp_maxh2cdata()
    {
        var h = new Harness(new TcpTransportOptions { MaxH2CData = 16384 });
        h.Enqueue(SendItem.ICResp(0, 0));
        h.Writer.BeginClose();
        await h.Writer.RunAsync().WaitAsync(Bound);
        var expected = new ArrayBufferWriter<byte>();
        PduWriter.WriteICResp(expected, 0, 16384);
        Assert.Equal(expected.WrittenSpan.ToArray(), h.Sent());
    }
}
