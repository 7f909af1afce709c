using Nvme.Core;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

public sealed partial class NvmeTcpQueue
{
    /// <summary>Core callback: answer running requests now (hot-remove with stuck I/O). Each answered request
    /// stays out of the pool, buffer included, until its real completion arrives.</summary>
    public int AbortRequests(Func<NvmeRequest, bool> match, NvmeStatus status)
    {
        int n = 0;
        int count = Volatile.Read(ref _slotCount);
        var slots = Volatile.Read(ref _slots);
        for (int i = 0; i < Math.Min(count, slots.Length); i++)
        {
            var req = Volatile.Read(ref slots[i]);
            if (req is null) continue;
            long generation = req.Generation; // read first: a request recycled after this cannot be aborted
            if (req.State != RequestState.Executing || !match(req) || !req.TryAbort(generation)) continue;
            var cqe = new CompletionQueueEntry { CommandId = req.Sqe.CommandId, SqId = _core.QueueId, SqHead = req.Cqe.SqHead, Status = status };
            lock (_closeLock)
            {
                if (_closed) continue;
                _abortResponses.Enqueue(cqe);
            }
            Interlocked.Increment(ref _answeredByAbort); // answered: no longer the host's, though it keeps its slot
            n++;
        }
        if (n > 0) _signal.Set();
        return n;
    }

    /// <summary>Core callback: a command completed (any thread).</summary>
    public void QueueResponse(NvmeRequest request) => Send((TcpRequest)request, SendKind.Response);

    private void Send(TcpRequest req, SendKind kind)
    {
        lock (_closeLock)
        {
            if (!_closed)
            {
                _sends.Enqueue((req, kind));
                if (t_batchOwner == this) _batchHasWork = true; // the receive loop signals once per batch
                else _signal.Set();
                return;
            }
        }
        // The connection is gone: nothing to send; the buffer can go back to the pool now that the command is done.
        if (kind == SendKind.Response) req.ReleaseBuffers();
    }

    /// <summary>A batch flushes whenever this much is buffered (measured: 24-64 KiB all do; one flush per
    /// batch gave 4 KiB QD32 reads ~15 % less).</summary>
    private const int FlushThreshold = 32 * 1024;

    private async Task WriterLoopAsync()
    {
        try
        {
            while (true)
            {
                // Once closing, keep draining without waiting: a TermReq or a late completion may still be queued.
                if (!_closing) await _signal.WaitAsync().ConfigureAwait(false);
                bool stop = false;
                if (_icRespDigest != 0xFF)
                {
                    PduWriter.WriteICResp(_output, _icRespDigest, (uint)_options.MaxH2CData);
                    _icRespDigest = 0xFF;
                }
                while (_abortResponses.TryDequeue(out var aborted)) PduWriter.WriteCapsuleResp(_output, aborted, _settings.HeaderDigest);
                while (_sends.TryDequeue(out var item))
                {
                    stop |= Write(item.Request, item.Kind);
                    // A large batch goes out in pieces: the host starts on the first answers while the rest
                    // are being written (a single send at the end would leave both sides idle in turn).
                    if (_output.CanGetUnflushedBytes && _output.UnflushedBytes >= FlushThreshold)
                    {
                        var partial = await _output.FlushAsync().ConfigureAwait(false);
                        if (partial.IsCompleted || partial.IsCanceled) return;
                    }
                }
                if (_termError is PduError err)
                {
                    PduWriter.WriteC2HTermReq(_output, err.Status, err.FieldOffset, ((ReadOnlySpan<byte>)_termHeader)[.._termHeaderLength]);
                    _termError = null;
                    stop = true;
                }
                var flush = await _output.FlushAsync().ConfigureAwait(false);
                if (stop)
                {
                    Close(CloseReason.Disconnect, "disconnect"); // after a TermReq the protocol error came first
                    return;
                }
                if (flush.IsCompleted || flush.IsCanceled) return;
                if (_closing && _termError is null && _sends.IsEmpty && _abortResponses.IsEmpty && _icRespDigest == 0xFF) return;
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or OperationCanceledException or ObjectDisposedException)
        {
            Close(CloseReason.SendFailed, "send failed: " + e.Message);
        }
    }

    /// <summary>Writes one queued item; returns true when the connection should close after this batch.</summary>
    private bool Write(TcpRequest req, SendKind kind)
    {
        bool hdgst = _settings.HeaderDigest, ddgst = _settings.DataDigest;
        if (kind == SendKind.R2T)
        {
            PduWriter.WriteR2T(_output, req.Sqe.CommandId, req.Tag, (uint)req.R2TOffset, (uint)req.R2TLength, hdgst);
            return false;
        }
        if (req.CompletedAfterAbort)
        {
            Return(req); // the host got its abort completion long ago; only now is the buffer free
            return false;
        }
        ref readonly var cqe = ref req.Cqe;
        if (req.Direction == DataDirection.ControllerToHost && cqe.Status == NvmeStatus.Success && req.DataLength > 0)
        {
            // C2HData SUCCESS (no CapsuleResp) is only allowed when the host disabled SQ flow control, and only
            // carries an all-zero result.
            bool success = _sqFlowControlDisabled && _options.C2HSuccess && cqe.Result == 0;
            var data = req.DataSpan;
            int chunk = _options.MaxC2HData;
            for (int offset = 0; offset < data.Length; offset += chunk)
            {
                int n = Math.Min(chunk, data.Length - offset);
                bool last = offset + n == data.Length;
                PduWriter.WriteC2HData(_output, cqe.CommandId, (uint)offset, data.Slice(offset, n), last, last && success, hdgst, ddgst, _hpda);
            }
            if (!success) PduWriter.WriteCapsuleResp(_output, cqe, hdgst);
        }
        else PduWriter.WriteCapsuleResp(_output, cqe, hdgst);
        bool close = req.CloseAfterResponse; // Disconnect: this response is the last thing sent
        // Counted before the flush that lets the host see the answer (and send the next command in its place).
        Volatile.Write(ref _answersWritten, _answersWritten + 1);
        Return(req);
        return close;
    }

    /// <summary>A command that never executed, on a connection that is gone: give its namespace reference back
    /// (the response is dropped, and its buffer released, by <see cref="Send"/>).</summary>
    private void CompleteUnexecuted(TcpRequest req)
    {
        req.State = RequestState.Executing;
        _core.Complete(req, NvmeStatus.AbortSqDeleted);
    }

    /// <summary>After the loops ended: release what no in-flight command still uses.</summary>
    private void Shutdown()
    {
        lock (_closeLock) _closed = true;
        while (_sends.TryDequeue(out var item))
            if (item.Kind == SendKind.Response) item.Request.ReleaseBuffers();
        for (int i = 0; i < _slotCount; i++)
        {
            var req = _slots[i]!;
            switch (req.State)
            {
                case RequestState.Free:
                    req.ReleaseBuffers();
                    break;
                case RequestState.AwaitingBuffer:
                    // Still waiting for a data buffer: never executed; give the namespace reference back. If the
                    // pool granted it meanwhile, BufferGranted sees the connection closed and does this itself.
                    if (_target.DataBuffers.CancelWait(req)) CompleteUnexecuted(req);
                    break;
                case RequestState.AwaitingData:
                    CompleteUnexecuted(req);
                    break;
                // Executing: the store may still be using the buffer; it is released when the command completes.
            }
        }
    }
}
