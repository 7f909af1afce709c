using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Transport.Tcp.Net;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>
/// Direct receive of write data: once an H2CData PDU's header has arrived and most of its payload has not, the rest
/// of the payload is received from the socket straight into the command's buffer instead of into the input pipe's
/// blocks and copied from there (SPDK's target reads payloads into the request's buffer the same way). One
/// user-space copy fewer per written byte: at 128 KiB that copy was the largest single cost of a write.
/// <para>Who reads the socket while a payload is received directly: in the event-driven mode the receive loop itself
/// (the only reader of its socket); in the polling mode the connection's reactor, which asks
/// <see cref="IDirectReceiveSink.TryReceiveDirect"/> before it receives into the pipe. Either way the switch is made
/// only when every byte received so far has been consumed, so the socket's next byte is the payload's next byte.</para>
/// <para>Not used while a wire trace taps the connection (it must see every byte) or a drop countdown runs.</para>
/// </summary>
public sealed partial class NvmeTcpQueue : IDirectReceiveSink
{
    /// <summary>A payload whose rest is shorter than this goes through the pipe (a direct receive is one more recv).</summary>
    internal const int MinDirectBytes = 16 * 1024;

    /// <summary>Polling mode: while the host owes write data, a receive into the pipe takes at most this much: an
    /// H2CData's header and the start of its payload, the rest then comes directly (a full 64 KiB block would take half
    /// the payload through the pipe). Capsules still come many per receive. (The event-driven input reads through a
    /// stream pipe reader in 64 KiB blocks: the same limit there measured no better, see bench/README.md.)</summary>
    internal const int ReceiveLimitAwaitingData = 4096;

    private IDirectInput? _directInput;
    private int _awaitingData; // commands that sent an R2T and wait for its H2CData
    private CancellationTokenSource? _directCancel; // event-driven: Close ends a direct receive the loop waits in
    private readonly Lock _directGate = new();      // polling: the reactor's receive against Shutdown's release of buffers
    private TcpRequest? _directReq;
    private int _directOffset, _directLeft, _directLength, _digestLeft;
    private uint _directCrc;
    private readonly byte[] _directDigest = new byte[4];

    /// <summary>H2CData PDUs whose payload came (mostly) straight into the command's buffer (receive loop's counter).</summary>
    internal long DirectReceives { get; private set; }

    /// <summary>Payload bytes received straight into commands' buffers.</summary>
    internal long DirectBytes { get; private set; }

    /// <summary>The socket under the input, offered by the server before <see cref="RunAsync"/>; null: everything
    /// goes through the pipe.</summary>
    internal IDirectInput? DirectInput
    {
        set
        {
            _directInput = value;
            if (value is null) return;
            if (!value.ReactorReceives) _directCancel = new CancellationTokenSource();
            value.Attach(this);
        }
    }

    private bool DirectActive => _directReq != null;

    private enum DirectStart { No, Started, Fatal }

    /// <summary>Receive loop, when the batch ends in an incomplete PDU: switches to a direct receive if it is an
    /// H2CData whose header is here, whose command awaits it, and most of whose payload is still to come. The bytes of
    /// it already here are copied and consumed.</summary>
    private DirectStart TryBeginDirect(ref ReadOnlySequence<byte> buffer)
    {
        if (_directInput is not { CanBegin: true } || _closing || Volatile.Read(ref _taps) != null || Volatile.Read(ref _dropAfterPdus) != 0)
            return DirectStart.No;
        if (buffer.Length < DataPdu.Size || buffer.FirstSpan[0] != (byte)PduType.H2CData) return DirectStart.No;
        var r = PduReader.TryReadHeader(buffer, _settings, out var pdu, out var layout, out var error);
        if (r != PduReadResult.Complete) return DirectStart.No; // an error: TryRead reports it once the PDU is complete, as before
        long have = buffer.Length - layout.DataStart; // < DataLength + DataDigestLength: the PDU is incomplete
        if (layout.DataLength - have < MinDirectBytes) return DirectStart.No;
        var h = pdu.As<DataPdu>();
        if (!CheckH2CData(h, layout.DataLength, pdu.Header, out var req)) return DirectStart.Fatal;

        var data = buffer.Slice(layout.DataStart);
        data.CopyTo(req.DataSpan[(int)h.DataOffset..]);
        _directCrc = ~0u;
        if (layout.DataDigestLength != 0)
            foreach (var segment in data) _directCrc = Crc32C.Append(_directCrc, segment.Span);
        _directOffset = (int)h.DataOffset + (int)have;
        _directLeft = layout.DataLength - (int)have;
        _directLength = layout.DataLength;
        _digestLeft = layout.DataDigestLength;
        buffer = buffer.Slice(buffer.End);
        lock (_directGate) _directReq = req;
        DirectReceives++;
        return DirectStart.Started;
    }

    /// <summary>Where the socket's next bytes go: the payload's rest, then its data digest.</summary>
    private Memory<byte> DirectTarget(TcpRequest req) => _directLeft > 0
        ? req.Data.Slice(_directOffset, _directLeft)
        : _directDigest.AsMemory(4 - _digestLeft, _digestLeft);

    /// <summary><paramref name="n"/> bytes arrived at <see cref="DirectTarget"/> (> 0). When the PDU is complete its
    /// data digest is checked and it is handled as any H2CData (the next R2T, or the command runs), as a batch: its
    /// answers go out at the end, on this thread.</summary>
    private void DirectReceived(TcpRequest req, int n)
    {
        if (_directLeft > 0)
        {
            if (_settings.DataDigest) _directCrc = Crc32C.Append(_directCrc, req.DataSpan.Slice(_directOffset, n));
            _directOffset += n;
            _directLeft -= n;
            DirectBytes += n;
            if (_directLeft > 0 || _digestLeft > 0) return;
        }
        else
        {
            _digestLeft -= n;
            if (_digestLeft > 0) return;
        }

        _directReq = null;
        Volatile.Write(ref _pduStartedAt, 0); // the PDU is complete: the pdu deadline no longer runs
        if (_settings.DataDigest) req.DataDigestError |= ~_directCrc != BinaryPrimitives.ReadUInt32LittleEndian(_directDigest);
        t_batchOwner = this;
        try
        {
            H2CDataReceived(req, _directLength);
            if (_dropAfterPdus != 0) DropCountdown();
        }
        finally
        {
            EndBatch();
        }
    }

    int IDirectReceiveSink.ReceiveLimit => Volatile.Read(ref _awaitingData) > 0 ? ReceiveLimitAwaitingData : int.MaxValue;

    /// <summary>Reactor thread (polling mode): if a payload is being received directly, receive what the socket has
    /// of it (never blocks). False: nothing to receive directly, use the pipe.</summary>
    bool IDirectReceiveSink.TryReceiveDirect(Socket socket, out int received, out SocketError error)
    {
        received = 0;
        error = SocketError.Success;
        if (_directReq is null) return false;
        lock (_directGate)
        {
            if (_directReq is not { } req) return false; // Shutdown took it: the pipe's reader is gone too
            received = socket.Receive(DirectTarget(req).Span, SocketFlags.None, out error);
            if (error == SocketError.Success && received > 0) DirectReceived(req, received);
            return true;
        }
    }

    /// <summary>Receive loop (event-driven mode): receives the payload's rest and its digest. False when the
    /// connection ended meanwhile (the close reason is set).</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))] // no allocation when it waits for the socket
    private async ValueTask<bool> ReceiveDirectAsync()
    {
        var socket = _directInput!.Socket;
        while (_directReq is { } req)
        {
            int n;
            try
            {
                n = await socket.ReceiveAsync(DirectTarget(req), SocketFlags.None, _directCancel!.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { return false; } // Close set the reason
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                SetCloseReason(CloseReason.ConnectionLost, "connection lost: " + e.Message);
                return false;
            }
            if (n == 0)
            {
                SetCloseReason(PeerClosedMidPdu);
                return false;
            }
            DirectReceived(req, n);
        }
        return true;
    }

    /// <summary>Shutdown: a payload being received directly is abandoned before its command's buffer is released.</summary>
    private void EndDirect()
    {
        if (_directInput is null) return;
        lock (_directGate) _directReq = null;
    }

    /// <summary>Close: a direct receive the event-driven loop waits in ends now.</summary>
    private void CancelDirect()
    {
        try { _directCancel?.Cancel(); }
        catch (ObjectDisposedException) { }
    }
}
