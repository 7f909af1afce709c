using Microsoft.Extensions.Logging;

namespace Transport.Tcp.Trace;

/// <summary>
/// A server's wire traces: starts them on the connections open now and on every connection accepted while they run
/// (I/O queues a host connects later included), lists and stops them. At most <see cref="MaxRunning"/> run at once;
/// the last <see cref="MaxKept"/> finished ones stay listed.
/// </summary>
public sealed class WireTracer
{
    public const int MaxRunning = 4;
    public const int MaxKept = 32;

    private readonly Func<IEnumerable<NvmeTcpQueue>> _connections;
    private readonly ILogger _log;
    private readonly Lock _gate = new();
    private readonly List<WireTrace> _traces = [];
    private WireTrace[] _running = [];
    private int _nextId;
    private long _finishedWritten, _finishedDropped, _started;

    internal WireTracer(Func<IEnumerable<NvmeTcpQueue>> connections, ILogger log)
    {
        _connections = connections;
        _log = log;
    }

    /// <summary>Traces, oldest first (running and the last finished ones).</summary>
    public IReadOnlyList<WireTrace> List() { lock (_gate) return [.. _traces]; }

    public WireTrace? Find(int id) { lock (_gate) return _traces.FirstOrDefault(t => t.Id == id); }

    /// <summary>Traces running now.</summary>
    public int Running => Volatile.Read(ref _running).Length;

    /// <summary>Traces started so far.</summary>
    public long Started => Interlocked.Read(ref _started);

    /// <summary>Bytes written into trace files so far (running traces included).</summary>
    public long BytesWritten => Interlocked.Read(ref _finishedWritten) + Volatile.Read(ref _running).Sum(t => t.BytesWritten);

    /// <summary>Bytes on the wire left out of traces because their writer fell behind (running traces included).</summary>
    public long BytesDropped => Interlocked.Read(ref _finishedDropped) + Volatile.Read(ref _running).Sum(t => t.DroppedBytes);

    /// <summary>Starts a trace into <paramref name="file"/> (owned from now on; <paramref name="path"/> is only its
    /// name in lists and logs). Throws <see cref="InvalidOperationException"/> when <see cref="MaxRunning"/> run.</summary>
    public WireTrace Start(WireTraceOptions options, string path, Stream file)
    {
        WireTrace trace;
        lock (_gate)
        {
            if (_running.Length >= MaxRunning)
                throw new InvalidOperationException($"{MaxRunning} wire traces are running, the most at once; stop one first");
            trace = new WireTrace(++_nextId, path, file, options, Stopped);
            _traces.Add(trace);
            if (_traces.Count > MaxKept + MaxRunning && _traces.FindIndex(t => !t.Running) is int old and >= 0) _traces.RemoveAt(old);
            Volatile.Write(ref _running, [.. _running, trace]);
        }
        _log.TraceStarted(trace.Id, options.Selection.ToString(), path, options.MaxBytes,
            options.TruncateData is int t ? $"{t} bytes" : "not truncated", options.Duration is { } d ? $"{d.TotalSeconds:0.#} s" : "until stopped");
        Interlocked.Increment(ref _started);
        foreach (var q in _connections()) Attach(trace, q);
        return trace;
    }

    /// <summary>A new connection (before its first byte): every running trace taps it.</summary>
    internal void Accepted(NvmeTcpQueue queue)
    {
        foreach (var t in Volatile.Read(ref _running)) Attach(t, queue);
    }

    private static void Attach(WireTrace trace, NvmeTcpQueue queue)
    {
        if (queue.Endpoints is not { } ends) return;
        var selection = trace.Options.Selection;
        var id = queue.Identity;
        if (id is { } i && !selection.Matches(i.Subsystem, i.Host, i.Cntlid, i.Queue)) return;
        // Selective and not connected yet: whether it belongs is known at its Connect.
        bool pending = id is null && !selection.Everything;
        var tap = new ConnectionTap(trace, queue, ends.Host, ends.Target, pending);
        if (!trace.Register(tap)) return;
        if (!pending) tap.Begin(queue.Describe(id));
        queue.AddTap(tap);
        // The Connect may have been handled between the look at Identity and AddTap: then nobody identifies the tap.
        if (pending && queue.Identity is { } late && !tap.Identified(selection.Matches(late.Subsystem, late.Host, late.Cntlid, late.Queue), queue.Describe(late)))
            queue.RemoveTap(tap);
    }

    /// <summary>Stops a trace; null when there is no such trace.</summary>
    public WireTrace? Stop(int id, string reason = "stopped")
    {
        var t = Find(id);
        t?.Stop(reason);
        return t;
    }

    /// <summary>Drops a finished trace from the list (its file is the caller's business).</summary>
    public bool Forget(int id)
    {
        lock (_gate) return _traces.RemoveAll(t => t.Id == id && !t.Running) > 0;
    }

    /// <summary>Stops every running trace and waits (briefly) for their files to close.</summary>
    public async Task StopAllAsync(string reason)
    {
        var running = Volatile.Read(ref _running);
        foreach (var t in running) t.Stop(reason);
        await Task.WhenAny(Task.WhenAll(running.Select(t => t.Completion)), Task.Delay(TimeSpan.FromSeconds(5))).ConfigureAwait(false);
    }

    private void Stopped(WireTrace trace)
    {
        lock (_gate)
        {
            Volatile.Write(ref _running, [.. _running.Where(t => t != trace)]);
            Interlocked.Add(ref _finishedWritten, trace.BytesWritten);
            Interlocked.Add(ref _finishedDropped, trace.DroppedBytes);
        }
        _log.TraceStopped(trace.Id, trace.StopReason ?? "stopped", trace.Path, trace.Connections, trace.Packets, trace.BytesWritten, trace.DroppedBytes);
    }
}
