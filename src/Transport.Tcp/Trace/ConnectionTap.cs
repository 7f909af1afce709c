using System.Buffers;
using System.Net;

namespace Transport.Tcp.Trace;

/// <summary>
/// One connection's recording for one <see cref="WireTrace"/>: what the connection receives (its receive loop) and
/// sends (its flushes) cut into PDUs and queued to the trace. A trace that selects by subsystem, host or controller
/// learns whether a new connection belongs to it only at its Connect: until then the tap is pending and keeps what it
/// records to itself (at most <see cref="MaxPendingBytes"/>: the ICReq and Connect exchange is a few hundred bytes),
/// then hands it over or forgets it. Thread-safe: the receive loop and the writer record at the same time.
/// </summary>
internal sealed class ConnectionTap
{
    public const int MaxPendingBytes = 64 * 1024;
    private static int s_nextId;

    private readonly Lock _gate = new();
    private readonly WireTrace _trace;
    private readonly IPEndPoint _host, _target;
    private readonly PduCutter _received, _sent;
    private List<(bool FromHost, byte[] Bytes, int Captured, int Original, long Micros)>? _pending;
    private int _pendingBytes;
    private long _hostGap, _targetGap; // bytes left out since the last record that made it into the queue
    private bool _detached;
    private readonly long _since = WireTrace.Now(); // a pending tap's handshake is stamped with its start

    public ConnectionTap(WireTrace trace, NvmeTcpQueue queue, IPEndPoint host, IPEndPoint target, bool pending)
    {
        _trace = trace;
        Queue = queue;
        _host = host;
        _target = target;
        Id = Interlocked.Increment(ref s_nextId);
        _received = new PduCutter((c, o) => Record(true, c, o), trace.Options.TruncateData);
        _sent = new PduCutter((c, o) => Record(false, c, o), trace.Options.TruncateData);
        if (pending) _pending = [];
    }

    public int Id { get; }
    public WireTrace Trace => _trace;
    public NvmeTcpQueue Queue { get; }
    /// <summary>Receive loop only: bytes at the start of the next read's buffer this tap has already seen; -1 until
    /// its first read (it starts at the buffer's start, which is always a PDU's start).</summary>
    public long ReceiveCarry = -1;

    public bool Pending { get { lock (_gate) return _pending != null; } }

    /// <summary>A connection traced from the start of the trace (not pending): its stream begins now.</summary>
    public void Begin(string what) => _trace.Open(Id, _host, _target, what, WireTrace.Now());

    public void Received(ReadOnlySequence<byte> bytes)
    {
        lock (_gate) if (!_detached) _received.Write(bytes);
    }

    public void Sent(List<ArraySegment<byte>> segments)
    {
        lock (_gate)
        {
            if (_detached) return;
            foreach (var s in segments) _sent.Write(s.AsSpan());
        }
    }

    /// <summary>The pending tap's connection has connected (<paramref name="matches"/>: as the trace selects): what it
    /// kept goes to the trace, or is forgotten. False when the tap is of no more use (the queue drops it).</summary>
    public bool Identified(bool matches, string what)
    {
        lock (_gate)
        {
            if (_pending is not { } kept || _detached) return !_detached;
            _pending = null;
            if (!matches)
            {
                _detached = true;
                Release(kept);
                return false;
            }
            _trace.Open(Id, _host, _target, what, _since);
            foreach (var (fromHost, bytes, captured, original, micros) in kept)
            {
                Enqueue(fromHost, bytes.AsSpan(0, captured), original, micros, ref fromHost ? ref _hostGap : ref _targetGap);
                ArrayPool<byte>.Shared.Return(bytes);
            }
            return true;
        }
    }

    /// <summary>The connection closed: the rest of each direction, then the FINs.</summary>
    public void ConnectionClosed()
    {
        lock (_gate)
        {
            if (_detached) return;
            _received.Flush();
            _sent.Flush();
            _detached = true;
            if (_pending is { } kept)
            {
                // Never connected (or not as far as the trace could tell): not part of the trace.
                Release(kept);
                _pending = null;
            }
            else _trace.Close(Id, _hostGap, _targetGap);
        }
        _trace.Unregister(this);
    }

    /// <summary>The trace stopped: nothing more is recorded; the queue lets go of the tap.</summary>
    public void Detach()
    {
        lock (_gate)
        {
            _detached = true;
            if (_pending is { } kept) Release(kept);
            _pending = null;
        }
        Queue.RemoveTap(this);
    }

    /// <summary>A PDU from one of the cutters (under the lock).</summary>
    private void Record(bool fromHost, ReadOnlySpan<byte> captured, int original)
    {
        long micros = WireTrace.Now();
        if (_pending is { } kept)
        {
            if (_pendingBytes + captured.Length > MaxPendingBytes)
            {
                // A connection that sends this much before connecting is not one a selective trace wants.
                Release(kept);
                _pending = null;
                _detached = true;
                return;
            }
            var copy = ArrayPool<byte>.Shared.Rent(Math.Max(captured.Length, 1));
            captured.CopyTo(copy);
            kept.Add((fromHost, copy, captured.Length, original, micros));
            _pendingBytes += captured.Length;
            return;
        }
        Enqueue(fromHost, captured, original, micros, ref fromHost ? ref _hostGap : ref _targetGap);
    }

    private static void Release(List<(bool FromHost, byte[] Bytes, int Captured, int Original, long Micros)> kept)
    {
        foreach (var p in kept) ArrayPool<byte>.Shared.Return(p.Bytes);
    }

    private void Enqueue(bool fromHost, ReadOnlySpan<byte> captured, int original, long micros, ref long gap)
    {
        if (_trace.TryData(Id, fromHost, captured, original, gap, micros)) gap = 0;
        else gap += original;
    }
}
