using Nvme.Core;
using Nvme.Core.Spec;

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
            if (!_writer.TryEnqueue(SendItem.AbortResponse(cqe))) continue; // the connection is gone
            Interlocked.Increment(ref _answeredByAbort); // answered: no longer the host's, though it keeps its slot
            n++;
        }
        if (n > 0) _writer.Wake();
        return n;
    }

    /// <summary>Core callback: a command completed (any thread). The writer closes the connection after it when the
    /// core says so (<see cref="NvmeRequest.CloseAfterResponse"/>).</summary>
    public void QueueResponse(NvmeRequest request) => Send(SendItem.Response((TcpRequest)request));

    /// <summary>Hands an item to the writer. Inside a receive batch the batch's end wakes it once, inline; from any
    /// other thread it is woken now.</summary>
    private void Send(in SendItem item)
    {
        if (!_writer.TryEnqueue(item))
        {
            // The connection is gone: nothing to send; the buffer can go back to the pool now that the command is done.
            if (item.Kind == SendKind.Response) item.Request!.ReleaseBuffers();
            return;
        }
        if (t_batchOwner == this) _batchHasWork = true;
        else _writer.Wake();
    }

    /// <summary>Writer callback: the response is in the output; the request goes back to the pool.</summary>
    void INvmeTcpWriterOwner.Recycle(TcpRequest request) => Return(request);

    /// <summary>Writer callback: a Disconnect was answered, a C2HTermReq sent or a send failed.</summary>
    void INvmeTcpWriterOwner.WriterStopped(CloseReason reason, string text) => Close(reason, text);

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
        _writer.Close();
        EndDirect(); // before the buffers go: a reactor may be receiving into one
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
