using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Integration.Tests.Initiator;

/// <summary>Options of one NVMe/TCP host connection (and of every queue an <see cref="NvmeTcpHost"/> opens).</summary>
public sealed record HostQueueOptions
{
    public bool HeaderDigest { get; init; }
    public bool DataDigest { get; init; }
    /// <summary>ICReq HPDA (0's based dwords): C2HData must start its data on a multiple of (HPDA + 1) x 4 bytes.
    /// Linux sends 0; SPDK's initiator can be set to other values.</summary>
    public byte Hpda { get; init; }
    /// <summary>Build SGLs and CIDs the way SPDK's initiator does (lib/nvme/nvme_tcp.c nvme_tcp_req_init): every
    /// command whose direction is host-to-controller (opcode bits 1:0 = 01, fabrics: FCTYPE) and whose payload fits
    /// goes in-capsule with a Data Block (offset) descriptor — zero-length ones included, such as Set Features;
    /// the CID is the lowest free slot, reused as soon as its command completed. Linux (the default) uses a
    /// Transport Data Block descriptor of length 0 for commands without data and cycles through the CIDs.</summary>
    public bool SpdkStyle { get; init; }
    /// <summary>Default timeout of one command (a generous bound so a broken target fails a test instead of hanging it).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(20);
    /// <summary>How long to wait for the ICResp (the Linux host waits 10 s).</summary>
    public TimeSpan ICRespTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// One NVMe/TCP connection = one NVMe queue pair, on a real socket. Many commands may be in flight: each has
/// its own CID; a receive loop dispatches CapsuleResp, C2HData and R2T by CID and answers R2Ts with H2CData.
/// Anything the target does wrong fails every pending command with <see cref="NvmeTcpProtocolException"/>
/// and closes the connection.
/// </summary>
public sealed class HostQueue : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PduStreamReader _reader;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly ConcurrentDictionary<ushort, Pending> _pending = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private SemaphoreSlim _depth = new(1, 1);
    private Task? _receiveLoop;
    private int _nextCid;
    private volatile Exception? _failure;
    private MemoryStream? _corked;
    private int _maxPending;
    private int _disposed;

    private HostQueue(Socket socket, HostQueueOptions options)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new PduStreamReader(_stream) { HeaderDigest = false, DataDigest = false };
        Options = options;
    }

    public HostQueueOptions Options { get; }
    public bool HeaderDigest => Options.HeaderDigest;
    public bool DataDigest => Options.DataDigest;
    /// <summary>MAXH2CDATA from the ICResp.</summary>
    public int MaxH2CData { get; private set; }
    /// <summary>QID once Connect succeeded.</summary>
    public ushort QueueId { get; private set; }
    public ushort ControllerId { get; private set; }
    public int QueueSize { get; private set; }
    public bool SqFlowControlDisabled { get; private set; }
    public bool IsConnected { get; private set; }
    /// <summary>Largest write that goes in the capsule; larger writes wait for R2T. Set by the host from IOCCSZ
    /// (I/O queues) or 8 KiB (admin queue, like Linux).</summary>
    public int InCapsuleDataLimit { get; set; }
    public int PendingCount => _pending.Count;
    /// <summary>Most commands that were outstanding at the same time.</summary>
    public int MaxPendingObserved => Volatile.Read(ref _maxPending);
    /// <summary>Completes when the receive loop ended (the target closed the connection, or we failed it).</summary>
    public Task Closed => _closed.Task;
    /// <summary>Why the connection ended (null while it is up or after a clean close by the target).</summary>
    public Exception? Failure => _failure;
    /// <summary>Test hook, called on the receive loop for every valid R2T; return true to leave it unanswered
    /// (the test then sends its own H2CData with <see cref="SendAsync"/>).</summary>
    public Func<R2TPdu, bool>? R2TInterceptor { get; set; }
    /// <summary>The C2HTermReq the target sent, if any.</summary>
    public NvmeTcpTermReqException? TermReq { get; private set; }

    /// <summary>Opens the TCP connection and exchanges ICReq/ICResp, validating the ICResp as Linux does.</summary>
    public static async Task<HostQueue> OpenAsync(IPEndPoint endpoint, HostQueueOptions? options = null, CancellationToken ct = default)
    {
        options ??= new HostQueueOptions();
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try { await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false); }
        catch
        {
            socket.Dispose();
            throw;
        }
        var q = new HostQueue(socket, options);
        try
        {
            await q._stream.WriteAsync(PduBuilder.ICReq(options.HeaderDigest, options.DataDigest, options.Hpda), ct).ConfigureAwait(false);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(options.ICRespTimeout);
            ReceivedPduBytes? resp;
            try { resp = await q._reader.ReadAsync(timeout.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested) { throw new TimeoutException("no ICResp within " + options.ICRespTimeout); }
            if (resp is null) throw new NvmeTcpConnectionClosedException("the target closed the connection instead of sending ICResp");
            if (resp.Type == PduType.C2HTermReq)
            {
                var t = resp.As<TermReqPdu>();
                throw new NvmeTcpTermReqException(t.Status, t.ErrorInformation);
            }
            if (resp.Type != PduType.ICResp) throw new NvmeTcpProtocolException($"expected ICResp, got {resp}");
            var ic = resp.As<InitializeConnectionPdu>();
            byte wanted = (byte)((options.HeaderDigest ? 1 : 0) | (options.DataDigest ? 2 : 0));
            if (resp.PduLength != InitializeConnectionPdu.Size) throw new NvmeTcpProtocolException($"ICResp PLEN {resp.PduLength}, expected 128");
            if (ic.Pfv != 0) throw new NvmeTcpProtocolException($"ICResp PFV {ic.Pfv}, expected 0");
            if (ic.Digest != wanted) throw new NvmeTcpProtocolException($"ICResp digest 0x{ic.Digest:x}, asked for 0x{wanted:x}");
            if (ic.DataAlignment != 0) throw new NvmeTcpProtocolException($"ICResp CPDA {ic.DataAlignment}, expected 0");
            if (ic.Limit % 4 != 0 || ic.Limit < 4096 || ic.Limit > int.MaxValue) throw new NvmeTcpProtocolException($"ICResp MAXH2CDATA {ic.Limit} invalid");
            q.MaxH2CData = (int)ic.Limit;
            q._reader.HeaderDigest = options.HeaderDigest;
            q._reader.DataDigest = options.DataDigest;
            q._reader.Hpda = options.Hpda;
            q._receiveLoop = Task.Run(q.ReceiveLoopAsync, CancellationToken.None);
            return q;
        }
        catch
        {
            await q.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    // ------------------------------------------------------------------ Fabrics Connect

    /// <summary>Fabrics Connect (NVMe over Fabrics 3.3). Returns the completion (dword0 = CNTLID on success).
    /// On success the queue depth becomes SQSIZE (0's based), the number of commands we keep in flight.</summary>
    public async Task<NvmeCompletion> ConnectAsync(string subNqn, string hostNqn, Guid hostId, ushort qid, ushort sqsize,
        ushort cntlid, uint katoMs, bool disableSqFlowControl = false, CancellationToken ct = default)
    {
        var data = new byte[ConnectData.Size];
        hostId.TryWriteBytes(data.AsSpan(0, 16), bigEndian: true, out _);
        BitConverter.TryWriteBytes(data.AsSpan(ConnectData.CntlidOffset, 2), cntlid);
        Encoding.UTF8.GetBytes(subNqn).CopyTo(data, ConnectData.SubNqnOffset);
        Encoding.UTF8.GetBytes(hostNqn).CopyTo(data, ConnectData.HostNqnOffset);
        var sqe = Sqe.Fabrics(FabricsType.Connect);
        sqe.Cdw10 = (uint)qid << 16; // RECFMT 0
        sqe.Cdw11 = sqsize | ((uint)(disableSqFlowControl ? ConnectCommand.CattrDisableSqFlowControl : 0) << 16);
        sqe.Cdw12 = katoMs;
        var c = await SubmitAsync(sqe, hostData: data, inCapsule: true, ct: ct).ConfigureAwait(false);
        if (c.IsSuccess)
        {
            QueueId = qid;
            ControllerId = (ushort)c.Dword0;
            QueueSize = sqsize + 1;
            SqFlowControlDisabled = disableSqFlowControl;
            IsConnected = true;
            _depth = new SemaphoreSlim(Math.Max(1, (int)sqsize), Math.Max(1, (int)sqsize));
        }
        return c;
    }

    /// <summary>Fabrics Disconnect (I/O queues): the target answers, then closes the connection.</summary>
    public Task<NvmeCompletion> DisconnectAsync(CancellationToken ct = default) =>
        SubmitAsync(Sqe.Fabrics(FabricsType.Disconnect), ct: ct);

    // ------------------------------------------------------------------ submission

    /// <summary>
    /// Sends one command and waits for its completion. <paramref name="hostData"/> is written to the
    /// controller (in the capsule when it fits <see cref="InCapsuleDataLimit"/> or <paramref name="inCapsule"/>
    /// says so, otherwise after R2T); <paramref name="controllerData"/> receives C2HData. The SGL and the CID
    /// are filled in here unless <paramref name="keepSgl"/> is set.
    /// </summary>
    public async Task<NvmeCompletion> SubmitAsync(SubmissionQueueEntry sqe, ReadOnlyMemory<byte> hostData = default,
        Memory<byte> controllerData = default, bool? inCapsule = null, bool keepSgl = false, TimeSpan? timeout = null,
        CancellationToken ct = default)
    {
        if (!hostData.IsEmpty && !controllerData.IsEmpty) throw new ArgumentException("bidirectional transfers are not supported");
        ThrowIfFailed();
        var depth = _depth;
        if (!await depth.WaitAsync(timeout ?? Options.CommandTimeout, ct).ConfigureAwait(false))
            throw new TimeoutException("no free submission queue slot");
        Pending? p = null;
        try
        {
            bool capsule = !hostData.IsEmpty && (inCapsule ?? hostData.Length <= InCapsuleDataLimit);
            byte xfer = sqe.Opcode == AdminOpcode.Fabrics ? (byte)sqe.Nsid : sqe.Opcode; // FCTYPE sits in the NSID dword
            bool inCapsuleDescriptor = capsule || (Options.SpdkStyle && hostData.IsEmpty && controllerData.IsEmpty && (xfer & 3) == 1);
            ushort cid = Options.SpdkStyle ? AllocateLowestCid() : AllocateCid();
            sqe.CommandId = cid;
            if (!keepSgl)
            {
                int length = hostData.Length + controllerData.Length;
                sqe.Sgl = new SglDescriptor
                {
                    Address = 0,
                    Length = (uint)length,
                    Identifier = inCapsuleDescriptor ? SglDescriptor.InCapsuleOffset : SglDescriptor.TransportDataBlock,
                };
            }
            p = new Pending(cid, sqe, hostData, controllerData, capsule, depth);
            _pending[cid] = p;
            int now = _pending.Count, max;
            while (now > (max = Volatile.Read(ref _maxPending)) && Interlocked.CompareExchange(ref _maxPending, now, max) != max) { }
            var pdu = PduBuilder.CapsuleCmd(sqe, capsule ? hostData.Span : default, HeaderDigest, DataDigest);
            await SendAsync(pdu, ct).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // The slot goes back exactly once: through the pending command (whoever removes it fails it), or
            // here if the command was never registered.
            if (p is null) depth.Release();
            else if (_pending.TryRemove(p.Cid, out _)) p.Fail(e);
            throw;
        }
        try
        {
            return await p.Task.WaitAsync(timeout ?? Options.CommandTimeout, ct).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"command opcode 0x{sqe.Opcode:x2} CID {sqe.CommandId} got no completion within {timeout ?? Options.CommandTimeout}");
        }
    }

    /// <summary>SPDK: the CID is the request's slot, the lowest free one.</summary>
    private ushort AllocateLowestCid()
    {
        lock (_pending)
            for (ushort cid = 0; cid < 0xFFFF; cid++)
                if (!_pending.ContainsKey(cid)) return cid;
        throw new InvalidOperationException("no free CID");
    }

    private ushort AllocateCid()
    {
        // Round-robin over the whole 16-bit space: a CID is reused only long after it completed, so a stray
        // response for an old command shows up as an unknown CID instead of completing a new one.
        for (int i = 0; i < 65536; i++)
        {
            ushort cid = (ushort)Interlocked.Increment(ref _nextCid);
            if (cid != 0xFFFF && !_pending.ContainsKey(cid)) return cid;
        }
        throw new InvalidOperationException("no free CID");
    }

    /// <summary>Holds every PDU back until <see cref="UncorkAsync"/>, which sends them in one write: the target
    /// then sees all those commands at once (a deterministic way to have many in flight).</summary>
    public void Cork()
    {
        _sendLock.Wait();
        try { _corked ??= new MemoryStream(); }
        finally { _sendLock.Release(); }
    }

    public async Task UncorkAsync(CancellationToken ct = default)
    {
        await _sendLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var held = _corked;
            _corked = null;
            if (held != null) await _stream.WriteAsync(held.GetBuffer().AsMemory(0, (int)held.Length), ct).ConfigureAwait(false);
        }
        finally { _sendLock.Release(); }
    }

    /// <summary>Writes bytes to the socket under the send lock (whole PDUs only).</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct = default)
    {
        await _sendLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_corked != null) _corked.Write(bytes.Span);
            else await _stream.WriteAsync(bytes, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
        {
            throw new NvmeTcpConnectionClosedException("send failed: " + e.Message, _failure ?? e);
        }
        finally { _sendLock.Release(); }
    }

    private void ThrowIfFailed()
    {
        if (_failure is { } f) throw new NvmeTcpConnectionClosedException("the connection failed: " + f.Message, f);
        if (_closed.Task.IsCompleted) throw new NvmeTcpConnectionClosedException("the target closed the connection");
    }

    // ------------------------------------------------------------------ receive

    private async Task ReceiveLoopAsync()
    {
        Exception? failure = null;
        try
        {
            while (true)
            {
                var pdu = await _reader.ReadAsync().ConfigureAwait(false);
                if (pdu is null) break;
                Dispatch(pdu);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or EndOfStreamException)
        {
            if (Volatile.Read(ref _disposed) == 0) failure = new NvmeTcpConnectionClosedException("receive failed: " + e.Message, e);
        }
        catch (NvmeTcpProtocolException e)
        {
            failure = e;
        }
        catch (Exception e)
        {
            failure = new NvmeTcpProtocolException("internal initiator error: " + e.Message, e);
        }
        if (failure != null) _failure ??= failure;
        var reason = failure ?? new NvmeTcpConnectionClosedException("the target closed the connection");
        foreach (var cid in _pending.Keys)
            if (_pending.TryRemove(cid, out var p)) p.Fail(reason);
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        _socket.Close();
        _closed.TrySetResult();
    }

    private void Dispatch(ReceivedPduBytes pdu)
    {
        switch (pdu.Type)
        {
            case PduType.CapsuleResp:
                {
                    var cqe = pdu.As<CapsuleResponsePdu>().Response;
                    if (!_pending.TryRemove(cqe.CommandId, out var p))
                        throw new NvmeTcpProtocolException($"CapsuleResp for CID {cqe.CommandId}, which is not outstanding");
                    if ((cqe.StatusAndPhase & 1) != 0) throw new NvmeTcpProtocolException($"CapsuleResp CID {cqe.CommandId}: phase bit set");
                    ushort status = (ushort)(cqe.StatusAndPhase >> 1);
                    if (status == 0 && p.Received != p.ControllerData.Length)
                        throw new NvmeTcpProtocolException($"CID {cqe.CommandId}: successful completion after {p.Received} of {p.ControllerData.Length} data bytes");
                    if (status == 0 && !p.InCapsule && p.Sent != p.HostData.Length)
                        throw new NvmeTcpProtocolException($"CID {cqe.CommandId}: successful completion after {p.Sent} of {p.HostData.Length} bytes were requested by R2T");
                    if (IsConnected)
                    {
                        if (cqe.SqId != QueueId) throw new NvmeTcpProtocolException($"CID {cqe.CommandId}: SQID {cqe.SqId} on queue {QueueId}");
                        if (!SqFlowControlDisabled && cqe.SqHead >= QueueSize) throw new NvmeTcpProtocolException($"CID {cqe.CommandId}: SQHD {cqe.SqHead} >= queue size {QueueSize}");
                    }
                    p.Complete(new NvmeCompletion
                    {
                        CommandId = cqe.CommandId, Status = status, Dword0 = cqe.Dword0, Dword1 = cqe.Dword1, SqHead = cqe.SqHead,
                        SqId = cqe.SqId, InCapsule = p.InCapsule, R2TCount = p.R2TCount, H2CDataCount = p.H2CDataCount, C2HDataCount = p.C2HDataCount,
                    });
                    break;
                }
            case PduType.C2HData:
                {
                    var h = pdu.As<DataPdu>();
                    if (!_pending.TryGetValue(h.CommandId, out var p))
                        throw new NvmeTcpProtocolException($"got bad c2hdata.command_id {h.CommandId}");
                    if (p.ControllerData.IsEmpty) throw new NvmeTcpProtocolException($"C2HData for CID {h.CommandId}, which reads no data");
                    if (h.DataLength != pdu.Data.Length) throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: DATAL {h.DataLength} but {pdu.Data.Length} bytes");
                    if (h.DataOffset != p.Received) throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: DATAO {h.DataOffset}, expected {p.Received}");
                    if ((long)h.DataOffset + h.DataLength > p.ControllerData.Length)
                        throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: [{h.DataOffset}, +{h.DataLength}) beyond the {p.ControllerData.Length}-byte buffer");
                    pdu.Data.CopyTo(p.ControllerData.Span[(int)h.DataOffset..]);
                    p.Received += (int)h.DataLength;
                    p.C2HDataCount++;
                    bool last = (pdu.Flags & PduFlags.LastPdu) != 0, success = (pdu.Flags & PduFlags.Success) != 0;
                    if (last && p.Received != p.ControllerData.Length)
                        throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: LAST_PDU after {p.Received} of {p.ControllerData.Length} bytes");
                    if (success)
                    {
                        if (!last) throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: SUCCESS set but not last PDU");
                        if (!SqFlowControlDisabled) throw new NvmeTcpProtocolException($"C2HData CID {h.CommandId}: SUCCESS flag while SQ flow control is enabled");
                        _pending.TryRemove(h.CommandId, out _);
                        p.Complete(new NvmeCompletion
                        {
                            CommandId = h.CommandId, Status = 0, SqId = QueueId, ViaC2HSuccess = true,
                            InCapsule = p.InCapsule, R2TCount = p.R2TCount, H2CDataCount = p.H2CDataCount, C2HDataCount = p.C2HDataCount,
                        });
                    }
                    break;
                }
            case PduType.R2T:
                {
                    var r = pdu.As<R2TPdu>();
                    if (!_pending.TryGetValue(r.CommandId, out var p))
                        throw new NvmeTcpProtocolException($"R2T for CID {r.CommandId}, which is not outstanding");
                    if (p.HostData.IsEmpty || p.InCapsule) throw new NvmeTcpProtocolException($"R2T for CID {r.CommandId}, which has no data left to send");
                    if (r.Length == 0) throw new NvmeTcpProtocolException($"R2T CID {r.CommandId}: zero length");
                    if ((long)r.Offset + r.Length > p.HostData.Length) throw new NvmeTcpProtocolException($"r2t len exceeded data len ({r.Offset}+{r.Length} > {p.HostData.Length})");
                    if (r.Offset != p.Sent) throw new NvmeTcpProtocolException($"unexpected r2t offset {r.Offset} (sent {p.Sent})");
                    p.R2TCount++;
                    if (R2TInterceptor?.Invoke(r) == true) break; // the test answers (or not) by itself
                    p.Sent += (int)r.Length;
                    // Answer outside the receive loop so a slow send never stops us reading.
                    _ = AnswerR2TAsync(p, r.TransferTag, (int)r.Offset, (int)r.Length);
                    break;
                }
            case PduType.C2HTermReq:
                {
                    var t = pdu.As<TermReqPdu>();
                    TermReq = new NvmeTcpTermReqException(t.Status, t.ErrorInformation);
                    throw TermReq;
                }
            default:
                throw new NvmeTcpProtocolException($"unexpected {pdu} after connection setup");
        }
    }

    private async Task AnswerR2TAsync(Pending p, ushort ttag, int offset, int length)
    {
        try
        {
            int end = offset + length;
            while (offset < end)
            {
                int n = Math.Min(MaxH2CData, end - offset);
                var pdu = PduBuilder.H2CData(p.Cid, ttag, (uint)offset, p.HostData.Span.Slice(offset, n), offset + n == end, HeaderDigest, DataDigest);
                Interlocked.Increment(ref p.H2CDataCount);
                await SendAsync(pdu).ConfigureAwait(false);
                offset += n;
            }
        }
        catch (Exception e)
        {
            if (_pending.TryRemove(p.Cid, out _)) p.Fail(e);
        }
    }

    /// <summary>Closes the socket (no Disconnect command: the target must cope, as with a host that vanished).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        _socket.Close();
        if (_receiveLoop != null) await _receiveLoop.ConfigureAwait(false);
        await _stream.DisposeAsync().ConfigureAwait(false);
    }

    private sealed class Pending
    {
        private readonly TaskCompletionSource<NvmeCompletion> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly SemaphoreSlim _depth;
        private int _done;

        public Pending(ushort cid, SubmissionQueueEntry sqe, ReadOnlyMemory<byte> hostData, Memory<byte> controllerData, bool inCapsule, SemaphoreSlim depth)
        {
            Cid = cid;
            Sqe = sqe;
            HostData = hostData;
            ControllerData = controllerData;
            InCapsule = inCapsule;
            _depth = depth;
            Sent = inCapsule ? hostData.Length : 0;
        }

        public ushort Cid { get; }
        public SubmissionQueueEntry Sqe { get; }
        public ReadOnlyMemory<byte> HostData { get; }
        public Memory<byte> ControllerData { get; }
        public bool InCapsule { get; }
        public int Received, Sent, R2TCount, H2CDataCount, C2HDataCount;
        public Task<NvmeCompletion> Task => _tcs.Task;

        public void Complete(NvmeCompletion c)
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            _depth.Release();
            _tcs.TrySetResult(c);
        }

        public void Fail(Exception e)
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            _depth.Release();
            _tcs.TrySetException(e is NvmeTcpProtocolException or NvmeTcpConnectionClosedException ? e : new NvmeTcpConnectionClosedException(e.Message, e));
        }
    }
}
