using System.Buffers;
using System.Collections.Concurrent;
using System.IO.Pipelines;
using Nvme.Core;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>What the writer tells the connection it writes for.</summary>
internal interface INvmeTcpWriterOwner
{
    /// <summary>The writer is done with <paramref name="request"/>: its response is in the output (flushed at the end
    /// of this batch), or it was answered by an abort long ago and only now finished. Writer thread.</summary>
    void Recycle(TcpRequest request);

    /// <summary>The writer stopped for <paramref name="reason"/> (a Disconnect answered, a C2HTermReq sent, a send
    /// failed): the connection closes. Writer thread.</summary>
    void WriterStopped(CloseReason reason, string text);
}

/// <summary>
/// Everything a connection sends, modelled on Kestrel's Http2FrameWriter: one writer owns the
/// <see cref="PipeWriter"/>, any thread queues <see cref="SendItem"/>s into one queue, and one loop writes them in
/// order, flushing within a batch every <see cref="FlushThreshold"/> bytes copied into its blocks (or every
/// <see cref="ExternalFlushThreshold"/> bytes in all) and once at its end. The digests and
/// HPDA negotiated by ICReq apply from the ICResp on.
/// </summary>
internal sealed class NvmeTcpWriter
{
    /// <summary>A batch flushes whenever this much has been copied into the output's blocks (measured: 24-64 KiB
    /// all do; one flush per batch gave 4 KiB QD32 reads ~15 % less).</summary>
    public const int FlushThreshold = 32 * 1024;

    /// <summary>...or when this much is unflushed in all, counting the data sent from the requests' own buffers
    /// (large reads). Those cost the writer nothing until the send, and one send per 128 KiB read (the 32 KiB rule
    /// alone) spent a send system call and a TCP push on each: batching them up to 1 MiB measured 128 KiB QD8
    /// reads +26 % (event-driven) and +22 % (polling) under spdk_nvme_perf, 4 KiB reads unchanged (bench/README.md).</summary>
    public const int ExternalFlushThreshold = 1024 * 1024;

    private readonly PipeWriter _output;
    // Data sent from the request's own buffer (no copy) when the output can: those requests are recycled only once
    // the flush that sent them has completed.
    private readonly Net.IExternalSegmentWriter? _external;
    private readonly List<TcpRequest> _recycleAfterFlush = [];
    /// <summary>C2HData payloads at least this large go out from the request's buffer (smaller ones cost less copied).</summary>
    public const int ExternalDataThreshold = 16 * 1024;
    private readonly INvmeTcpWriterOwner _owner;
    private readonly ConcurrentQueue<SendItem> _items = new();
    private readonly AsyncSignal _signal = new();
    private readonly Lock _gate = new();
    private readonly uint _maxH2CData;
    private readonly int _maxC2HData;
    private readonly bool _c2hSuccessAllowed;
    private bool _closed; // under _gate: nothing more is queued
    private volatile bool _closing;
    private volatile bool _sqFlowControlDisabled;
    // From the ICResp on (writer thread only).
    private bool _hdgst, _ddgst;
    private volatile bool _dataDigests; // _ddgst, for other threads
    private int _corruptNextDigest;     // an injected fault: the next C2HData carries a wrong DDGST
    private int _hpda;
    private long _responsesWritten;

    /// <summary>Injected fault: the next C2HData PDU gets a wrong data digest. False when data digests are off.</summary>
    public bool CorruptNextDataDigest()
    {
        if (!_dataDigests) return false;
        Volatile.Write(ref _corruptNextDigest, 1);
        return true;
    }

    public NvmeTcpWriter(PipeWriter output, TcpTransportOptions options, INvmeTcpWriterOwner owner)
    {
        _output = output;
        _external = output as Net.IExternalSegmentWriter;
        _owner = owner;
        _maxH2CData = (uint)options.MaxH2CData;
        _maxC2HData = options.MaxC2HData;
        _c2hSuccessAllowed = options.C2HSuccess;
    }

    /// <summary>The host disabled SQ flow control (told when the queue is installed, before any read is queued):
    /// a successful read may then end with C2HData SUCCESS instead of a CapsuleResp.</summary>
    public bool SqFlowControlDisabled { set => _sqFlowControlDisabled = value; }

    /// <summary>Where the PDUs go (the socket writer, whose sends a wire trace observes).</summary>
    public PipeWriter Output => _output;

    /// <summary>Responses written so far (their CapsuleResp or last C2HData is in the output); one writer: this loop.</summary>
    public long ResponsesWritten => Volatile.Read(ref _responsesWritten);

    /// <summary>Queues <paramref name="item"/> (any thread) without waking the loop; false once <see cref="Close"/> ran.</summary>
    public bool TryEnqueue(in SendItem item)
    {
        lock (_gate)
        {
            if (_closed) return false;
            _items.Enqueue(item);
            return true;
        }
    }

    /// <summary>True once <see cref="Close"/> ran: whatever is queued now is never sent.</summary>
    public bool IsClosed { get { lock (_gate) return _closed; } }

    /// <summary>Wakes the loop on the thread pool (any thread, locks allowed).</summary>
    public void Wake() => _signal.Set();

    /// <summary>Runs a waiting loop on this thread before returning: only for a caller that holds no lock (the
    /// receive loop at the end of a batch).</summary>
    public void WakeInline() => _signal.SetInline();

    /// <summary>From now on the loop does not wait: it writes what is queued and ends (the caller wakes it).</summary>
    public void BeginClose() => _closing = true;

    /// <summary>Writes queued items until the output completes, the connection closes, or an item stops it.</summary>
    public async Task RunAsync()
    {
        try
        {
            while (true)
            {
                // Once closing, keep draining without waiting: a TermReq or a late completion may still be queued.
                if (!_closing) await _signal.WaitAsync().ConfigureAwait(false);
                var stop = Outcome.Continue;
                while (stop != Outcome.StopNow && _items.TryDequeue(out var item))
                {
                    var outcome = Write(in item);
                    if (outcome > stop) stop = outcome;
                    // A large batch goes out in pieces: the host starts on the first answers while the rest
                    // are being written (a single send at the end would leave both sides idle in turn).
                    if (_output.CanGetUnflushedBytes && FlushDue(_output.UnflushedBytes))
                    {
                        var partial = await _output.FlushAsync().ConfigureAwait(false);
                        RecycleSent();
                        if (partial.IsCompleted || partial.IsCanceled) return;
                    }
                }
                var flush = await _output.FlushAsync().ConfigureAwait(false);
                RecycleSent();
                if (stop == Outcome.StopNow)
                {
                    _owner.WriterStopped(CloseReason.ProtocolError, "protocol error");
                    return;
                }
                if (stop == Outcome.CloseAfterBatch)
                {
                    _owner.WriterStopped(CloseReason.Disconnect, "disconnect");
                    return;
                }
                if (flush.IsCompleted || flush.IsCanceled) return;
                if (_closing && _items.IsEmpty) return;
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            _owner.WriterStopped(CloseReason.SendFailed, "send failed: " + e.Message);
        }
        finally { RecycleSent(); } // a failed flush is over too: the socket no longer reads those buffers
    }

    /// <summary>Within a batch: enough copied into blocks (<see cref="FlushThreshold"/>), or enough in all
    /// (<see cref="ExternalFlushThreshold"/>).</summary>
    private bool FlushDue(long unflushed) =>
        unflushed - (_external?.ExternalUnflushedBytes ?? 0) >= FlushThreshold || unflushed >= ExternalFlushThreshold;

    private void RecycleSent()
    {
        foreach (var req in _recycleAfterFlush) _owner.Recycle(req);
        _recycleAfterFlush.Clear();
    }

    /// <summary>Ordered by strength: a batch ends with the strongest outcome of its items.</summary>
    private enum Outcome { Continue, CloseAfterBatch, StopNow }

    private Outcome Write(in SendItem item)
    {
        switch (item.Kind)
        {
            case SendKind.ICResp:
                PduWriter.WriteICResp(_output, item.Digest, _maxH2CData);
                _hdgst = (item.Digest & 1) != 0;
                _ddgst = (item.Digest & 2) != 0;
                _dataDigests = _ddgst;
                _hpda = item.Hpda;
                return Outcome.Continue;
            case SendKind.R2T:
                {
                    var req = item.Request!;
                    PduWriter.WriteR2T(_output, req.Sqe.CommandId, req.Tag, (uint)req.R2TOffset, (uint)req.R2TLength, _hdgst);
                    return Outcome.Continue;
                }
            case SendKind.Response:
                return WriteResponse(item.Request!, item.CloseAfter);
            case SendKind.AbortResponse:
                PduWriter.WriteCapsuleResp(_output, item.Cqe, _hdgst);
                return Outcome.Continue;
            case SendKind.TermReq:
                {
                    var t = item.Term!;
                    PduWriter.WriteC2HTermReq(_output, t.Status, t.FieldOffset, t.OffendingHeader);
                    return Outcome.StopNow; // nothing may follow a C2HTermReq
                }
            default:
                throw new InvalidOperationException($"unknown send item {item.Kind}");
        }
    }

    private Outcome WriteResponse(TcpRequest req, bool closeAfter)
    {
        if (req.CompletedAfterAbort)
        {
            _owner.Recycle(req); // the host got its abort completion long ago; only now is the buffer free
            return Outcome.Continue;
        }
        ref readonly var cqe = ref req.Cqe;
        bool external = false;
        if (req.Direction == DataDirection.ControllerToHost && cqe.Status == NvmeStatus.Success && req.DataLength > 0)
        {
            // C2HData SUCCESS (no CapsuleResp) is only allowed when the host disabled SQ flow control, and only
            // carries an all-zero result.
            bool success = _sqFlowControlDisabled && _c2hSuccessAllowed && cqe.Result == 0;
            var data = req.Data;
            external = _external != null && data.Length >= ExternalDataThreshold;
            for (int offset = 0; offset < data.Length; offset += _maxC2HData)
            {
                int n = Math.Min(_maxC2HData, data.Length - offset);
                bool last = offset + n == data.Length;
                var chunk = data.Slice(offset, n);
                bool corrupt = _ddgst && Volatile.Read(ref _corruptNextDigest) != 0 && Interlocked.Exchange(ref _corruptNextDigest, 0) == 1;
                if (external || corrupt)
                {
                    PduWriter.WriteC2HDataHeader(_output, cqe.CommandId, (uint)offset, n, last, last && success, _hdgst, _ddgst, _hpda);
                    if (external) _external!.AppendExternal(chunk);
                    else _output.Write(chunk.Span);
                    if (_ddgst) PduWriter.WriteDataDigest(_output, chunk.Span, wrong: corrupt);
                }
                else PduWriter.WriteC2HData(_output, cqe.CommandId, (uint)offset, chunk.Span, last, last && success, _hdgst, _ddgst, _hpda);
            }
            if (!success) PduWriter.WriteCapsuleResp(_output, cqe, _hdgst);
        }
        else PduWriter.WriteCapsuleResp(_output, cqe, _hdgst);
        // Counted before the flush that lets the host see the answer (and send the next command in its place).
        Volatile.Write(ref _responsesWritten, _responsesWritten + 1);
        if (external) _recycleAfterFlush.Add(req); // its buffer is on the wire until the flush completes
        else _owner.Recycle(req);
        // Disconnect: the rest of this batch still goes out (as it always did), then the connection closes.
        return closeAfter ? Outcome.CloseAfterBatch : Outcome.Continue;
    }

    /// <summary>After the loop ended: nothing more is queued; responses never sent give their buffers back (the
    /// commands are done).</summary>
    public void Close()
    {
        lock (_gate) _closed = true;
        while (_items.TryDequeue(out var item))
            if (item.Kind == SendKind.Response) item.Request!.ReleaseBuffers();
    }

    /// <summary>Completes the output: what is buffered goes out (the last responses, a C2HTermReq), then FIN.</summary>
    public async Task CompleteAsync()
    {
        try { await _output.CompleteAsync().ConfigureAwait(false); }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException) { /* the peer is gone */ }
    }
}
