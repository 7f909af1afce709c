using System.Collections.Concurrent;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Transport.Tcp.Net;

/// <summary>The polling mode's settings (<c>--poll</c>): how many reactor threads, on which CPUs, and how long a
/// reactor with no traffic keeps spinning before it blocks in poll(2).</summary>
public sealed record PollingOptions
{
    /// <summary>Reactor threads; connections are spread over them round-robin.</summary>
    public int Reactors { get; init; } = 1;
    /// <summary>CPU of each reactor (reactor i runs on Cpus[i % Cpus.Count]); empty: no pinning.</summary>
    public IReadOnlyList<int> Cpus { get; init; } = [];
    /// <summary>A reactor that saw no data on any of its connections for this long stops spinning and waits in
    /// poll(2) until one becomes readable (it spins again from the first byte on).</summary>
    public TimeSpan IdleTime { get; init; } = TimeSpan.FromMilliseconds(10);
}

/// <summary>
/// A reactor of the polling mode: one dedicated thread that owns connections and busy-polls their non-blocking
/// sockets. A receive lands in the connection's pipe and, with inline schedulers, runs the queue's receive loop,
/// the commands (memory namespaces complete inline) and the writer's gathered send on this same thread: no epoll
/// wake-up and no thread hand-off between a command's arrival and its answer, which is where SPDK's QD1 latency
/// comes from. The price is a core kept busy while traffic flows; after <see cref="PollingOptions.IdleTime"/>
/// without data the reactor blocks in poll(2), so an idle target costs nothing.
/// </summary>
internal sealed class PollingReactor : IDisposable
{
    private readonly ConcurrentQueue<PolledInput> _incoming = new();
    private readonly List<PolledInput> _inputs = [];
    private readonly List<Socket> _readable = [];
    private readonly ManualResetEventSlim _wake = new(false);
    private readonly Thread _thread;
    private readonly int? _cpu;
    private readonly long _idleTicks;
    private volatile bool _stopped;
    private readonly Lock _timeLock = new();
    private readonly long _started = Stopwatch.GetTimestamp();
    private long _blockedTicks, _waitingSince;

    public PollingReactor(int index, PollingOptions options)
    {
        Index = index;
        _cpu = options.Cpus.Count > 0 ? options.Cpus[index % options.Cpus.Count] : null;
        _idleTicks = (long)(options.IdleTime.TotalSeconds * Stopwatch.Frequency);
        _thread = new Thread(Run) { IsBackground = true, Name = $"NVMe/TCP reactor {index}" };
        _thread.Start();
    }

    public int Index { get; }

    /// <summary>Seconds this reactor's thread has spent polling rather than blocked in poll(2) since it started:
    /// with traffic flowing, the CPU the polling mode costs (monotonic).</summary>
    public double BusySeconds
    {
        get
        {
            lock (_timeLock)
            {
                long now = Stopwatch.GetTimestamp();
                long blocked = _blockedTicks + (_waitingSince != 0 ? now - _waitingSince : 0);
                return (double)(now - _started - blocked) / Stopwatch.Frequency;
            }
        }
    }

    /// <summary>Connections this reactor serves right now.</summary>
    public int Count => Volatile.Read(ref _count);
    private int _count;

    public void Add(PolledInput input)
    {
        Interlocked.Increment(ref _count);
        _incoming.Enqueue(input);
        _wake.Set();
    }

    private void Run()
    {
        if (_cpu is int cpu) PinToCpu(cpu);
        long lastData = Stopwatch.GetTimestamp();
        while (!_stopped)
        {
            while (_incoming.TryDequeue(out var added)) _inputs.Add(added);
            bool data = false;
            for (int i = _inputs.Count - 1; i >= 0; i--)
            {
                switch (_inputs[i].Poll())
                {
                    case PollResult.Data:
                        data = true;
                        break;
                    case PollResult.Done:
                        _inputs.RemoveAt(i);
                        Interlocked.Decrement(ref _count);
                        break;
                }
            }
            if (data) { lastData = Stopwatch.GetTimestamp(); continue; }
            if (Stopwatch.GetTimestamp() - lastData < _idleTicks) continue; // keep spinning: the next PDU is near
            // Idle: block. Spin again only when woken by a readable socket or a new connection, not by the timeout.
            lock (_timeLock) _waitingSince = Stopwatch.GetTimestamp();
            bool woken = WaitForData();
            lock (_timeLock)
            {
                _blockedTicks += Stopwatch.GetTimestamp() - _waitingSince;
                _waitingSince = 0;
            }
            if (woken) lastData = Stopwatch.GetTimestamp();
        }
    }

    /// <summary>Idle: blocks until a socket is readable or a connection is added (true), or until
    /// <see cref="IdleWait"/> passed (false: the reactor looks at its connections once and waits again, which is how
    /// it notices closes, resumed back-pressure and connections added while it waited on sockets).</summary>
    private bool WaitForData()
    {
        if (_inputs.Count == 0)
        {
            bool woken = _wake.Wait(IdleWait);
            _wake.Reset();
            return woken;
        }
        _readable.Clear();
        foreach (var input in _inputs) if (input.CanPoll) _readable.Add(input.Socket);
        if (_readable.Count == 0) { Thread.Sleep(1); return false; } // all paused by back-pressure: their queues drain elsewhere
        try { Socket.Select(_readable, null, null, (int)IdleWait.TotalMicroseconds); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { return true; } // a socket closed meanwhile: poll finds out
        return _readable.Count > 0 || !_incoming.IsEmpty;
    }

    /// <summary>The longest a blocked reactor waits before it looks at its connections again.</summary>
    internal static readonly TimeSpan IdleWait = TimeSpan.FromMilliseconds(10);

    public void Dispose()
    {
        _stopped = true;
        _wake.Set();
        _thread.Join(TimeSpan.FromSeconds(5));
        _wake.Dispose();
    }

    private static void PinToCpu(int cpu)
    {
        Span<ulong> mask = stackalloc ulong[16]; // 1024 CPUs
        mask.Clear();
        mask[cpu / 64] |= 1UL << (cpu % 64);
        _ = sched_setaffinity(0, mask.Length * 8, ref MemoryMarshal.GetReference(mask)); // 0: the calling thread
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int sched_setaffinity(int pid, nint cpusetsize, ref ulong mask);
}

internal enum PollResult { Idle, Data, Done }

/// <summary>
/// A connection's input in the polling mode: its reactor receives from the non-blocking socket straight into the
/// pipe's pooled blocks and flushes, which runs the queue's receive loop inline. When the queue has not consumed
/// <see cref="PauseThreshold"/> bytes (its commands wait for file I/O or buffers) the flush is pending and the
/// socket is not read until it completes: the same back-pressure as the event-driven reader.
/// </summary>
internal sealed class PolledInput
{
    [ThreadStatic] private static PolledInput? t_flushing;
    public const int PauseThreshold = 1 << 20;
    private readonly Pipe _pipe;
    private ValueTask<FlushResult> _pendingFlush;
    private bool _flushPending;
    private bool _done;

    public PolledInput(Socket socket, BlockMemoryPool pool)
    {
        Socket = socket;
        _pipe = new Pipe(new PipeOptions(pool, readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: PauseThreshold, resumeWriterThreshold: PauseThreshold / 2, minimumSegmentSize: pool.MaxBufferSize,
            useSynchronizationContext: false));
    }

    public Socket Socket { get; }
    public PipeReader Reader => _pipe.Reader;

    /// <summary>The queue, when it may receive H2CData payloads directly (asked before every receive into the pipe).</summary>
    public IDirectReceiveSink? Sink { get; set; }

    /// <summary>True while this reactor thread flushes this input's pipe (and so runs its queue's receive loop inline).</summary>
    public bool FlushingOnThisThread => t_flushing == this;

    /// <summary>False while back-pressure holds the socket (nothing to wait for in poll(2)).</summary>
    public bool CanPoll => !_done && !_flushPending;

    /// <summary>The reactor's turn: receive what the socket has (never blocks) and hand it to the queue.</summary>
    public PollResult Poll()
    {
        if (_done) return PollResult.Done;
        if (_flushPending)
        {
            if (!_pendingFlush.IsCompleted) return PollResult.Idle;
            _flushPending = false;
            if (Finish(_pendingFlush)) return PollResult.Done;
        }
        int n;
        SocketError error;
        try
        {
            if (Sink is { } sink && sink.TryReceiveDirect(Socket, out n, out error))
            {
                // A payload went straight into its command's buffer (and, when it completed, the command ran).
                if (error == SocketError.WouldBlock) return PollResult.Idle;
                if (error != SocketError.Success) return End(new IOException("connection lost", new SocketException((int)error)));
                return n == 0 ? End(null) : PollResult.Data;
            }
            var memory = _pipe.Writer.GetMemory(1);
            if (Sink is { ReceiveLimit: var limit } && limit < memory.Length) memory = memory[..limit];
            n = Socket.Receive(memory.Span, SocketFlags.None, out error);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return End(null); // closed by the queue (Close/Abort) or the reader went away
        }
        if (error == SocketError.WouldBlock) return PollResult.Idle;
        if (error != SocketError.Success) return End(new IOException("connection lost", new SocketException((int)error)));
        if (n == 0) return End(null); // FIN
        _pipe.Writer.Advance(n);
        ValueTask<FlushResult> flush;
        t_flushing = this;
        try { flush = _pipe.Writer.FlushAsync(); } // runs the queue's receive loop on this thread (inline scheduler)
        finally { t_flushing = null; }
        if (flush.IsCompleted) return Finish(flush) ? PollResult.Done : PollResult.Data;
        _pendingFlush = flush;
        _flushPending = true;
        return PollResult.Data;
    }

    /// <summary>Consumes a completed flush; true when the queue stopped reading (the connection is ending).</summary>
    private bool Finish(ValueTask<FlushResult> flush)
    {
        var r = flush.GetAwaiter().GetResult();
        if (!r.IsCompleted && !r.IsCanceled) return false;
        End(null);
        return true;
    }

    private PollResult End(Exception? error)
    {
        if (!_done)
        {
            _done = true;
            _pipe.Writer.Complete(error);
        }
        return PollResult.Done;
    }
}
