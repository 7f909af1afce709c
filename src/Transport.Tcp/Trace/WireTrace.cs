using System.Buffers;
using System.Net;
using System.Threading.Channels;

namespace Transport.Tcp.Trace;

/// <summary>Which connections a trace records: every criterion given must match (none given: every connection).</summary>
public sealed record WireTraceSelection(string? Subsystem = null, string? Host = null, ushort? Cntlid = null, ushort? Queue = null)
{
    /// <summary>True when nothing is selected by: a connection is traced from its first byte, before its Connect.</summary>
    public bool Everything => Subsystem is null && Host is null && Cntlid is null && Queue is null;

    public bool Matches(string subsystem, string host, ushort cntlid, ushort queue) =>
        (Subsystem is null || Subsystem == subsystem) && (Host is null || Host == host) &&
        (Cntlid is null || Cntlid == cntlid) && (Queue is null || Queue == queue);

    public override string ToString() => Everything ? "every connection" : string.Join(", ", new[]
    {
        Subsystem is null ? null : "subsystem " + Subsystem, Host is null ? null : "host " + Host,
        Cntlid is null ? null : "cntlid " + Cntlid, Queue is null ? null : "queue " + Queue,
    }.Where(s => s != null));
}

/// <summary>What a trace records, where, and its bounds.</summary>
public sealed record WireTraceOptions
{
    public const long DefaultMaxBytes = 64L * 1024 * 1024;
    public const long DefaultMaxQueuedBytes = 16L * 1024 * 1024;

    public WireTraceSelection Selection { get; init; } = new();
    /// <summary>The file is full at this size: the trace stops (reason "max-bytes").</summary>
    public long MaxBytes { get; init; } = DefaultMaxBytes;
    /// <summary>The trace stops by itself after this long (reason "duration"); null: when stopped.</summary>
    public TimeSpan? Duration { get; init; }
    /// <summary>Bytes of each PDU's data kept after its header (and header digest); null keeps everything. The data
    /// digest, after the data, goes with the data.</summary>
    public int? TruncateData { get; init; }
    /// <summary>Captured bytes waiting for the file writer at most; more is left out of the trace (counted as dropped:
    /// the I/O path never waits for the disk).</summary>
    public long MaxQueuedBytes { get; init; } = DefaultMaxQueuedBytes;
}

/// <summary>
/// One running (or finished) wire trace: connections' PDUs, recorded by <see cref="ConnectionTap"/>s on the I/O threads,
/// go through a queue bounded in bytes to one background writer that turns them into TCP packets
/// (<see cref="TcpStreamSynthesizer"/>) in a pcapng file (<see cref="PcapngWriter"/>). Recording never blocks and never
/// touches the disk: when the writer falls behind by <see cref="WireTraceOptions.MaxQueuedBytes"/>, PDUs are left out
/// (their sequence numbers still advance, so Wireshark shows a gap where they were) and counted as dropped.
/// </summary>
public sealed class WireTrace
{
    private enum Kind : byte { Open, Data, Close }

    private sealed class Record
    {
        public Kind Kind;
        public int Connection;
        public bool FromHost;
        public byte[]? Buffer;     // rented; the captured bytes
        public int Captured, Original;
        public long GapBefore;     // bytes of this direction left out just before this record
        public long TargetGap;     // Close: bytes the target sent that were left out at the end (GapBefore: the host's)
        public long Micros;
        public IPEndPoint? Host, Target;
        public string? Comment;
    }

    private readonly Channel<Record> _queue = Channel.CreateUnbounded<Record>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Stream _file;
    private readonly Lock _gate = new();
    private readonly HashSet<ConnectionTap> _taps = [];
    private readonly Task _writer;
    private readonly CancellationTokenSource _timer = new();
    private long _queuedBytes, _packets, _bytesWritten, _droppedBytes, _connections;
    private volatile string? _stopReason;
    private DateTimeOffset? _stoppedAt;

    internal WireTrace(int id, string path, Stream file, WireTraceOptions options, Action<WireTrace>? stopped)
    {
        if (options.MaxBytes < 1024) throw new ArgumentOutOfRangeException(nameof(options), "a trace's maxBytes must be at least 1 KiB");
        Id = id;
        Path = path;
        Options = options;
        _file = file;
        StartedAt = DateTimeOffset.UtcNow;
        _writer = Task.Run(() => WriteLoopAsync(stopped));
        if (options.Duration is { } d)
            _ = Task.Delay(d, _timer.Token).ContinueWith(t => { if (!t.IsCanceled) Stop("duration"); }, TaskScheduler.Default);
    }

    public int Id { get; }
    public string Path { get; }
    public WireTraceOptions Options { get; }
    public DateTimeOffset StartedAt { get; }
    public DateTimeOffset? StoppedAt { get { lock (_gate) return _stoppedAt; } }
    /// <summary>Null while running; then why it stopped: stopped, duration, max-bytes, shutdown, or "error: ...".</summary>
    public string? StopReason => _stopReason;
    public bool Running => _stopReason is null;
    /// <summary>Connections recorded so far.</summary>
    public long Connections => Interlocked.Read(ref _connections);
    /// <summary>Packets in the file.</summary>
    public long Packets => Interlocked.Read(ref _packets);
    /// <summary>The file's size so far.</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);
    /// <summary>Bytes on the wire left out because the writer fell behind (not counting truncated data).</summary>
    public long DroppedBytes => Interlocked.Read(ref _droppedBytes);
    /// <summary>Completes once the file is closed.</summary>
    public Task Completion => _writer;

    /// <summary>Stops recording (idempotent; the first reason stays). The file is complete once <see cref="Completion"/> is.</summary>
    public void Stop(string reason)
    {
        ConnectionTap[] taps;
        lock (_gate)
        {
            if (_stopReason != null) return;
            _stopReason = reason;
            _stoppedAt = DateTimeOffset.UtcNow;
            taps = [.. _taps];
            _taps.Clear();
        }
        _timer.Cancel();
        foreach (var t in taps) t.Detach();
        _queue.Writer.TryComplete();
    }

    // ------------------------------------------------------------------ recording (I/O threads, under the tap's lock)

    internal bool Register(ConnectionTap tap)
    {
        lock (_gate)
        {
            if (_stopReason != null) return false;
            _taps.Add(tap);
            return true;
        }
    }

    internal void Unregister(ConnectionTap tap)
    {
        lock (_gate) _taps.Remove(tap);
    }

    /// <summary>A connection's stream starts (its handshake is stamped <paramref name="micros"/>: no later than its first PDU).</summary>
    internal void Open(int connection, IPEndPoint host, IPEndPoint target, string comment, long micros)
    {
        Interlocked.Increment(ref _connections);
        _queue.Writer.TryWrite(new Record { Kind = Kind.Open, Connection = connection, Host = host, Target = target, Comment = comment, Micros = micros });
    }

    /// <summary>Queues one PDU's record; false when the queue is full (the caller counts the bytes as a gap).</summary>
    internal bool TryData(int connection, bool fromHost, ReadOnlySpan<byte> captured, int original, long gapBefore, long micros)
    {
        if (Interlocked.Add(ref _queuedBytes, captured.Length) > Options.MaxQueuedBytes)
        {
            Interlocked.Add(ref _queuedBytes, -captured.Length);
            Interlocked.Add(ref _droppedBytes, original);
            return false;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(captured.Length, 1));
        captured.CopyTo(buffer);
        var r = new Record { Kind = Kind.Data, Connection = connection, FromHost = fromHost, Buffer = buffer, Captured = captured.Length,
            Original = original, GapBefore = gapBefore, Micros = micros };
        if (_queue.Writer.TryWrite(r)) return true;
        Interlocked.Add(ref _queuedBytes, -captured.Length); // stopped meanwhile
        ArrayPool<byte>.Shared.Return(buffer);
        return true; // not dropped: the trace is over
    }

    internal void Close(int connection, long hostGap, long targetGap) =>
        _queue.Writer.TryWrite(new Record { Kind = Kind.Close, Connection = connection, GapBefore = hostGap, TargetGap = targetGap, Micros = Now() });

    internal static long Now() => (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;

    // ------------------------------------------------------------------ the file writer (one background task)

    private async Task WriteLoopAsync(Action<WireTrace>? stopped)
    {
        var connections = new Dictionary<int, TcpStreamSynthesizer>();
        var pcap = new PcapngWriter(_file);
        long micros = 0;
        string? comment = null; // the next packet's (a connection's SYN names the connection)
        TcpStreamSynthesizer.PacketSink sink = (captured, original) =>
        {
            pcap.WritePacket(captured, original, micros, comment);
            comment = null;
            Interlocked.Increment(ref _packets);
        };
        try
        {
            pcap.WriteHeader($"NvmeTcpTarget wire trace {Id}: {Options.Selection}" + (Options.TruncateData is int t ? $", PDU data truncated to {t} bytes" : ""));
            Interlocked.Exchange(ref _bytesWritten, pcap.BytesWritten);
            await foreach (var r in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
            {
                try
                {
                    if (_stopReason != null) continue; // stopped: what is still queued is left out
                    micros = r.Micros;
                    // What the record adds to the file at most: per packet IP and TCP headers (60 with IPv6) and the
                    // block's 32 bytes of framing, plus the captured bytes.
                    const int perPacket = 60 + 32;
                    long next = r.Kind == Kind.Data
                        ? r.Captured + perPacket * (1 + (long)(r.Original - 1) / TcpStreamSynthesizer.MaxSegmentPayload)
                        : 3 * perPacket + 8 + 3 * (r.Comment?.Length ?? 0); // UTF-8: at most 3 bytes a UTF-16 unit
                    if (pcap.BytesWritten + next > Options.MaxBytes)
                    {
                        Stop("max-bytes");
                        continue;
                    }
                    switch (r.Kind)
                    {
                        case Kind.Open:
                            var s = new TcpStreamSynthesizer(r.Host!, r.Target!);
                            connections[r.Connection] = s;
                            comment = r.Comment;
                            s.Handshake(sink);
                            break;
                        case Kind.Data when connections.TryGetValue(r.Connection, out var d):
                            if (r.GapBefore > 0) d.Skip(r.FromHost, r.GapBefore);
                            d.Data(sink, r.FromHost, r.Buffer.AsSpan(0, r.Captured), r.Original);
                            break;
                        case Kind.Close when connections.Remove(r.Connection, out var c):
                            c.Skip(true, r.GapBefore);
                            c.Skip(false, r.TargetGap);
                            c.Close(sink, fromHost: false);
                            c.Close(sink, fromHost: true);
                            break;
                    }
                    Interlocked.Exchange(ref _bytesWritten, pcap.BytesWritten);
                }
                finally
                {
                    if (r.Buffer != null)
                    {
                        Interlocked.Add(ref _queuedBytes, -r.Captured);
                        ArrayPool<byte>.Shared.Return(r.Buffer);
                    }
                }
            }
            pcap.Flush();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ObjectDisposedException)
        {
            Stop("error: " + e.Message);
            while (_queue.Reader.TryRead(out var r))
                if (r.Buffer != null) ArrayPool<byte>.Shared.Return(r.Buffer);
        }
        finally
        {
            try { await _file.DisposeAsync().ConfigureAwait(false); }
            catch (IOException) { }
            Interlocked.Exchange(ref _bytesWritten, pcap.BytesWritten);
            stopped?.Invoke(this);
        }
    }
}
