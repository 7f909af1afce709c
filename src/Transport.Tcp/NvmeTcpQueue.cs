using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>
/// One NVMe/TCP connection = one NVMe queue, over any <see cref="IDuplexPipe"/>. The receive loop frames
/// PDUs and hands commands to the core; commands run concurrently; every byte sent goes through the
/// connection's <see cref="NvmeTcpWriter"/>, which the receive loop wakes once at the end of each batch.
/// </summary>
public sealed partial class NvmeTcpQueue : IQueueTransport, IDataBufferWaiter, INvmeTcpWriterOwner
{
    [ThreadStatic] private static NvmeTcpQueue? t_batchOwner;

    private readonly NvmeTarget _target;
    private readonly PipeReader _input;
    private readonly NvmeTcpWriter _writer;
    private readonly TcpTransportOptions _options;
    private readonly ILogger _log;
    private readonly Action? _abort;
    private readonly TcpTransportMetrics _metrics;
    private readonly FabricQueue _core;
    private TcpRequest?[] _slots;
    private readonly ConcurrentQueue<TcpRequest> _free = new();
    private PduReaderSettings _settings;
    private int _slotCount;
    private bool _icDone;
    private bool _batchHasWork;
    // Told by the core when the Connect succeeds (QueueInstalled).
    private int _queueSize;
    private volatile bool _installed;
    private CloseInfo? _close;
    private bool _fatal;

    public NvmeTcpQueue(NvmeTarget target, IDuplexPipe transport, TcpTransportOptions options, ILogger logger, string peerAddress, Action? abort = null,
        TcpTransportMetrics? metrics = null, ushort portId = 0)
    {
        _metrics = metrics ?? TcpTransportMetrics.Detached;
        _target = target;
        _input = transport.Input;
        _options = options;
        _writer = new NvmeTcpWriter(transport.Output, options, this);
        _log = logger;
        _abort = abort;
        PeerAddress = peerAddress;
        Descriptor = options.Describe();
        _core = target.CreateQueue(this);
        _core.PortId = portId;
        // A queue holds at most MQES + 1 commands (see Outstanding); a slot goes back before its answer is flushed,
        // so only requests answered early by an abort need more (TryRent grows the array for them).
        _slots = new TcpRequest?[target.Limits.MaxQueueEntries + 1];
        _settings = new PduReaderSettings
        {
            MaxInCapsuleData = Math.Max(options.AdminInCapsuleDataSize, options.InCapsuleDataSize),
            MaxH2CData = options.MaxH2CData,
        };
    }

    public string PeerAddress { get; }
    /// <summary>NVMe/TCP as the core sees it (TRTYPE, TREQ, IOCCSZ).</summary>
    public TransportDescriptor Descriptor { get; }
    public FabricQueue Core => _core;
    /// <summary>Where this connection's PDUs go (tests observe its sends).</summary>
    internal System.IO.Pipelines.PipeWriter Output => _writer.Output;
    private string HostNqn => _core.Controller?.HostNqn ?? "-";

    /// <summary>Runs the connection until the peer goes away, a protocol error, or <see cref="Terminate"/>.</summary>
    public async Task RunAsync()
    {
        _log.ConnectionAccepted(PeerAddress);
        Interlocked.Increment(ref _metrics.ConnectionsAccepted);
        Interlocked.Increment(ref _metrics.ConnectionsActive);
        // One trace span per connection (when a tracer listens); admin commands become its children.
        using var activity = NvmeTelemetry.Source.StartActivity("NVMe/TCP connection", ActivityKind.Server);
        activity?.SetTag("network.peer.address", PeerAddress);
        var writer = Task.Run(_writer.RunAsync);
        try
        {
            StartWatchdog();
            await ReaderLoopAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _log.InternalError(e, PeerAddress);
            SetCloseReason(CloseReason.InternalError, "internal error: " + e.Message);
        }
        finally
        {
            _closing = true;
            _watchdog?.Dispose();
            _writer.BeginClose();
            _writer.Wake();
            bool writerDone = false;
            try { await writer.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false); writerDone = true; }
            catch (Exception) { /* the writer logs its own failures; a stuck peer is aborted below */ }
            _core.Close();
            Shutdown();
            var close = Volatile.Read(ref _close) ?? PeerClosed;
            _log.ConnectionClosed(PeerAddress, HostNqn, _core.QueueId, close.Text);
            Interlocked.Decrement(ref _metrics.ConnectionsActive);
            if (activity is { IsAllDataRequested: true })
            {
                activity.SetTag("nvme.host_nqn", HostNqn);
                activity.SetTag("nvme.qid", _core.QueueId);
                if (_core.Controller is { } c)
                {
                    activity.SetTag("nvme.subsystem", c.Subsystem.Nqn);
                    activity.SetTag("nvme.cntlid", c.Cntlid);
                }
                activity.SetTag("nvme.close_reason", CloseReasons.Label(close.Reason));
                activity.SetTag("nvme.close_detail", close.Text);
                if (_fatal || close.Reason == CloseReason.ProtocolError) activity.SetStatus(ActivityStatusCode.Error, close.Text);
            }
            // Only a stuck peer is aborted (first: completing the output may otherwise wait on its full socket):
            // the socket is reset and output not yet sent is dropped. Otherwise completing the output sends the
            // rest (a C2HTermReq, the Disconnect response) and the caller closes with a FIN.
            if (!writerDone) _abort?.Invoke();
            await _input.CompleteAsync().ConfigureAwait(false);
            await _writer.CompleteAsync().ConfigureAwait(false);
            CloseTaps();
        }
    }

    private volatile bool _closing;

    /// <summary>Why the connection closed (the first reason it got), or null while it is open.</summary>
    public CloseReason? ClosedBecause => Volatile.Read(ref _close)?.Reason;

    private static readonly CloseInfo PeerClosed = new(CloseReason.PeerClosed, "peer closed the connection");
    private static readonly CloseInfo PeerClosedMidPdu = new(CloseReason.PeerClosedMidPdu, "peer closed the connection in the middle of a PDU");

    /// <summary>Records why the connection closes, unless a reason came first (any thread).</summary>
    private void SetCloseReason(CloseReason reason, string text) => SetCloseReason(new CloseInfo(reason, text));

    private void SetCloseReason(CloseInfo info)
    {
        if (Volatile.Read(ref _close) is null) Interlocked.CompareExchange(ref _close, info, null);
    }

    /// <summary>Core callback (any thread): the queue's controller was destroyed for <paramref name="reason"/>.</summary>
    public void Terminate(string reason) => Close(CloseReason.ControllerDestroyed, reason);

    /// <summary>Thread-safe, idempotent: closes the connection; <paramref name="text"/> is the log's words for it.</summary>
    internal void Close(CloseReason reason, string text)
    {
        SetCloseReason(reason, text);
        _closing = true;
        _writer.BeginClose(); // what is queued still goes out (a TermReq, the last answers)
        _writer.Wake();
        _input.CancelPendingRead();
        CancelDirect();
    }

    // ------------------------------------------------------------------ receive

    private async Task ReaderLoopAsync()
    {
        while (!_closing)
        {
            ReadResult result;
            if (_directReq != null && _directCancel != null)
            {
                if (!await ReceiveDirectAsync().ConfigureAwait(false)) return;
                continue;
            }
            if (Volatile.Read(ref _pauseUntilMs) != 0) await PauseIfAskedAsync().ConfigureAwait(false);
            try
            {
                result = await _input.ReadAsync().ConfigureAwait(false);
            }
            catch (IOException e)
            {
                SetCloseReason(CloseReason.ConnectionLost, "connection lost: " + (e.InnerException?.Message ?? e.Message));
                return;
            }
            if (result.IsCanceled) return; // Close (a missed deadline among others) set the reason
            var buffer = result.Buffer;
            long received = buffer.Length;
            var taps = Volatile.Read(ref _taps);
            if (taps != null) TapReceived(taps, buffer);
            bool keepGoing = ProcessBatch(ref buffer);
            if (taps != null) TapCarry(taps, buffer.Length);
            _input.AdvanceTo(buffer.Start, buffer.End);
            TrackPartialPdu(DirectActive ? 1 : buffer.Length, buffer.Length < received);
            if (!keepGoing) return;
            if (result.IsCompleted)
            {
                SetCloseReason(buffer.IsEmpty && !DirectActive ? PeerClosed : PeerClosedMidPdu);
                return;
            }
        }
    }

    /// <summary>Handles every complete PDU in the buffer; responses completed meanwhile go out in one batch.</summary>
    private bool ProcessBatch(ref ReadOnlySequence<byte> buffer)
    {
        t_batchOwner = this;
        try
        {
            while (true)
            {
                var r = PduReader.TryRead(ref buffer, _settings, out var pdu, out var error);
                if (r == PduReadResult.Incomplete)
                    return _directInput is null || buffer.IsEmpty || TryBeginDirect(ref buffer) != DirectStart.Fatal;
                if (r == PduReadResult.Error)
                {
                    Span<byte> header = stackalloc byte[(int)Math.Min(buffer.Length, TermReqPdu.MaxDataLength)];
                    buffer.Slice(0, header.Length).CopyTo(header);
                    int hlen = header.Length >= 3 ? Math.Min(header[2], header.Length) : header.Length;
                    return Fatal(error, header[..hlen]);
                }
                if (!Handle(ref pdu)) return false;
                if (_dropAfterPdus != 0 && DropCountdown()) return false;
            }
        }
        finally
        {
            EndBatch();
        }
    }

    /// <summary>A receive batch ends: the answers it produced go out now, on this thread, before the next receive.</summary>
    private void EndBatch()
    {
        t_batchOwner = null;
        if (_batchHasWork)
        {
            _batchHasWork = false;
            _writer.WakeInline();
        }
    }

    private bool Handle(ref ReceivedPdu pdu)
    {
        if (!_icDone && pdu.Type != PduType.ICReq)
            return Fatal(new PduError(FatalErrorStatus.PduSequenceError, 0, $"{pdu.Type} before ICReq"), pdu.Header);
        switch (pdu.Type)
        {
            case PduType.ICReq: return HandleICReq(ref pdu);
            case PduType.CapsuleCmd: return HandleCapsule(ref pdu);
            case PduType.H2CData: return HandleH2CData(ref pdu);
            case PduType.H2CTermReq:
                {
                    var t = pdu.As<TermReqPdu>();
                    _log.HostTerminated(PeerAddress, HostNqn, (int)t.Status);
                    Interlocked.Increment(ref _metrics.HostTerminations);
                    SetCloseReason(CloseReason.HostTermination, $"host sent H2CTermReq (FES {(int)t.Status})");
                    return false;
                }
            default:
                return Fatal(new PduError(FatalErrorStatus.InvalidPduHeaderField, 0, $"{pdu.Type} is not a host-to-controller PDU"), pdu.Header);
        }
    }

    private bool HandleICReq(ref ReceivedPdu pdu)
    {
        if (_icDone) return Fatal(new PduError(FatalErrorStatus.PduSequenceError, 0, "second ICReq"), pdu.Header);
        var ic = pdu.As<InitializeConnectionPdu>();
        if (ic.Pfv != 0) return Fatal(new PduError(FatalErrorStatus.InvalidPduHeaderField, 8, $"unsupported PDU format version {ic.Pfv}"), pdu.Header);
        if (ic.DataAlignment > 31) return Fatal(new PduError(FatalErrorStatus.InvalidPduHeaderField, 10, $"HPDA {ic.DataAlignment} out of range"), pdu.Header);
        _icDone = true;
        _settings.HeaderDigest = (ic.Digest & 1) != 0;
        _settings.DataDigest = (ic.Digest & 2) != 0;
        // HPDA is honoured: C2HData is padded to it (SPDK's target does the same; kernel nvmet refuses HPDA > 0).
        Send(SendItem.ICResp((byte)(ic.Digest & 3), ic.DataAlignment));
        return true;
    }

    private bool HandleCapsule(ref ReceivedPdu pdu)
    {
        if (_draining)
        {
            // Shutting down: a new command is not taken. It gets no answer; the host retries it once it has
            // reconnected (to this target restarted, or another path), exactly as after a lost connection.
            _ignoredWhileDraining++;
            return true;
        }
        // The host may have as many commands outstanding as the queue it negotiated holds (Connect SQSIZE + 1; one,
        // the Connect, before that); more is a protocol error, as the kernel target treats running out of commands.
        int allowed = _queueSize > 0 ? _queueSize : 1;
        if (Outstanding >= allowed)
            return Fatal(new PduError(FatalErrorStatus.PduSequenceError, 0, $"more than {allowed} commands outstanding (the queue size)"), pdu.Header);
        if (!TryRent(out var req))
            return Fatal(new PduError(FatalErrorStatus.PduSequenceError, 0, $"more than {MaxSlots} commands held"), pdu.Header);
        _commandsTaken++;
        req.Sqe = MemoryMarshal.Read<SubmissionQueueEntry>(pdu.Header[CommonHeader.Size..]);
        var status = _core.Prepare(req);
        if (status == NvmeStatus.Success) status = CheckSgl(req, pdu.Data.Length);
        if (status != NvmeStatus.Success)
        {
            _core.Complete(req, status);
            return true;
        }
        if (req.DataLength > DataBufferPool.SmallLimit && pdu.Data.IsEmpty && !_target.DataBuffers.TryRent(req, this))
        {
            // The data buffer budget (or this host's share of it) is spent: the command waits for a buffer
            // (BufferGranted), then sends its R2T or runs its read. Admin commands too: memory stays bounded
            // whatever the connections x queue depth.
            req.State = RequestState.AwaitingBuffer;
            Interlocked.Increment(ref _metrics.BufferWaits);
            return true;
        }
        if (req.Direction == DataDirection.HostToController)
        {
            if (pdu.Data.IsEmpty)
            {
                RequestData(req, 0);
                return true;
            }
            pdu.Data.CopyTo(req.DataSpan);
            if (pdu.DataDigestError)
            {
                _log.DataDigestError(PeerAddress, HostNqn, req.Sqe.CommandId);
                Interlocked.Increment(ref _metrics.DataDigestErrors);
                _core.Complete(req, NvmeStatus.TransientTransportError);
                return true;
            }
        }
        req.State = RequestState.Executing;
        _core.Execute(req);
        return true;
    }

    /// <summary>Core callback, during the execution of a successful Connect (on the receive loop: Connect data is
    /// never large enough to wait for a buffer): the queue's size bounds the commands outstanding, and the
    /// in-capsule limit of its kind (IOCCSZ on an I/O queue) applies from the next PDU on.</summary>
    public void QueueInstalled(ushort queueId, int queueSize, bool sqFlowControlDisabled)
    {
        _queueSize = queueSize;
        _writer.SqFlowControlDisabled = sqFlowControlDisabled;
        _settings.MaxInCapsuleData = queueId == 0 ? _options.AdminInCapsuleDataSize : _options.InCapsuleDataSize;
        _installed = true;
        if (Volatile.Read(ref _taps) != null) IdentifyTaps();
    }

    /// <summary>Transport-level SGL checks (NVMe/TCP transport spec 3.3.1): in-capsule data uses a Data Block
    /// descriptor with subtype Offset, everything else a Transport Data Block descriptor.</summary>
    private NvmeStatus CheckSgl(TcpRequest req, long inCapsuleLength)
    {
        var sgl = req.Sqe.Sgl;
        // A zero-length SGL describes no data whatever its type (kernel nvmet-tcp maps nothing for it): SPDK's host
        // sends a zero-length in-capsule descriptor on host-to-controller opcodes without data (Set Features).
        if (sgl.Length == 0 && inCapsuleLength == 0) return NvmeStatus.Success;
        if (sgl.Identifier == SglDescriptor.InCapsuleOffset)
        {
            if (req.Direction != DataDirection.HostToController) return NvmeStatus.SglDescriptorTypeInvalid;
            if (sgl.Address != 0) return NvmeStatus.SglOffsetInvalid;
            if (inCapsuleLength != sgl.Length) return NvmeStatus.DataSglLengthInvalid;
            return NvmeStatus.Success;
        }
        if (inCapsuleLength != 0) return NvmeStatus.DataSglLengthInvalid; // data in the capsule the SGL does not describe
        if (sgl.Identifier != SglDescriptor.TransportDataBlock && req.Direction != DataDirection.None)
            return NvmeStatus.SglDescriptorTypeInvalid;
        return NvmeStatus.Success;
    }

    /// <summary>Data buffer pool callback (any thread): a waiting command has its buffer now.</summary>
    void IDataBufferWaiter.BufferGranted(NvmeRequest request)
    {
        var req = (TcpRequest)request;
        if (_writer.IsClosed)
        {
            // The connection went away meanwhile (Shutdown could not cancel the wait: this grant won the race).
            CompleteUnexecuted(req);
            return;
        }
        if (req.Direction == DataDirection.HostToController) RequestData(req, 0);
        else
        {
            req.State = RequestState.Executing;
            _core.Execute(req);
        }
    }

    private void RequestData(TcpRequest req, int offset)
    {
        if (req.State != RequestState.AwaitingData) Interlocked.Increment(ref _awaitingData);
        req.State = RequestState.AwaitingData;
        req.R2TOffset = offset;
        req.R2TLength = Math.Min(req.DataLength - offset, _options.MaxH2CData);
        req.Received = 0;
        Volatile.Write(ref req.R2TSentAt, Environment.TickCount64); // the r2t deadline runs from here
        Send(SendItem.R2T(req));
    }

    private bool HandleH2CData(ref ReceivedPdu pdu)
    {
        var h = pdu.As<DataPdu>();
        if (!CheckH2CData(h, pdu.Data.Length, pdu.Header, out var req)) return false;
        pdu.Data.CopyTo(req.DataSpan[(int)h.DataOffset..]);
        req.DataDigestError |= pdu.DataDigestError;
        H2CDataReceived(req, (int)h.DataLength);
        return true;
    }

    /// <summary>An H2CData header against the command it names: the transfer tag awaits data, at this offset, within
    /// the R2T's window; <paramref name="dataLength"/> is what PLEN says the PDU carries. False: fatal, the connection ends.</summary>
    private bool CheckH2CData(in DataPdu h, long dataLength, ReadOnlySpan<byte> header, out TcpRequest req)
    {
        req = (h.TransferTag < _slotCount ? _slots[h.TransferTag] : null)!;
        if (req is null || req.State != RequestState.AwaitingData || req.Sqe.CommandId != h.CommandId)
            return Fatal(new PduError(FatalErrorStatus.InvalidPduHeaderField, 10, $"H2CData for CID {h.CommandId} TTAG {h.TransferTag}, which awaits no data"), header);
        long expected = req.R2TOffset + req.Received;
        if (h.DataOffset != expected)
            return Fatal(new PduError(FatalErrorStatus.DataTransferOutOfRange, 12, $"H2CData offset {h.DataOffset}, expected {expected}"), header);
        if (h.DataLength != dataLength)
            return Fatal(new PduError(FatalErrorStatus.InvalidPduHeaderField, 16, $"H2CData DATAL {h.DataLength} but {dataLength} bytes of data"), header);
        if ((long)h.DataOffset + h.DataLength > req.R2TOffset + req.R2TLength)
            return Fatal(new PduError(FatalErrorStatus.DataTransferOutOfRange, 16, $"H2CData [{h.DataOffset}, +{h.DataLength}) beyond the R2T window [{req.R2TOffset}, +{req.R2TLength})"), header);
        return true;
    }

    /// <summary>An H2CData PDU's payload is in the command's buffer: the next R2T, or the command runs once all is there.</summary>
    private void H2CDataReceived(TcpRequest req, int length)
    {
        req.Received += length;
        if (req.Received < req.R2TLength) return;

        int next = req.R2TOffset + req.R2TLength;
        if (next < req.DataLength)
        {
            RequestData(req, next);
            return;
        }
        Interlocked.Decrement(ref _awaitingData);
        req.State = RequestState.Executing;
        if (req.DataDigestError)
        {
            _log.DataDigestError(PeerAddress, HostNqn, req.Sqe.CommandId);
            Interlocked.Increment(ref _metrics.DataDigestErrors);
            _core.Complete(req, NvmeStatus.TransientTransportError);
        }
        else _core.Execute(req);
    }

    private bool Fatal(PduError error, ReadOnlySpan<byte> offendingHeader)
    {
        _log.ProtocolError(PeerAddress, HostNqn, _core.QueueId, error.Message, error.Status.ToString());
        _metrics.ProtocolError(error.Status);
        SetCloseReason(CloseReason.ProtocolError, "protocol error: " + error.Message);
        _fatal = true;
        Send(SendItem.TermReq(error, offendingHeader)); // the last PDU: the batch's end wakes the writer
        _closing = true;
        _writer.BeginClose();
        return false;
    }

    // ------------------------------------------------------------------ request pool

    // Commands the host has outstanding = taken - answered. Each counter has one writer (the receive loop, the
    // writer loop, the aborts), so the I/O path pays no atomic operation for the bound.
    private long _commandsTaken;
    private long _answeredByAbort;

    private int Outstanding => (int)(_commandsTaken - _writer.ResponsesWritten - Interlocked.Read(ref _answeredByAbort));

    /// <summary>Slots are transfer tags (16 bits).</summary>
    private const int MaxSlots = ushort.MaxValue;

    private bool TryRent(out TcpRequest req)
    {
        if (_free.TryDequeue(out req!)) return true;
        var slots = _slots;
        if (_slotCount == slots.Length)
        {
            // Only requests answered early by an abort (their store has not returned) take slots beyond the queue
            // size; the host may use the queue entries they answered. Rare: the copy is no steady-state cost.
            if (slots.Length >= MaxSlots) return false;
            var grown = new TcpRequest?[Math.Min(slots.Length * 2, MaxSlots)];
            Array.Copy(slots, grown, _slotCount);
            Volatile.Write(ref _slots, slots = grown);
        }
        req = new TcpRequest((ushort)_slotCount);
        slots[_slotCount] = req;
        Volatile.Write(ref _slotCount, _slotCount + 1);
        return true;
    }

    private void Return(TcpRequest req)
    {
        req.Reset();
        _free.Enqueue(req);
    }
}
