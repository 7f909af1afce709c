using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Nvme.Core;

namespace Transport.Tcp.Net;

/// <summary>
/// The NVMe/TCP listener: accepts TCP connections on any number of endpoints and runs each as one
/// <see cref="NvmeTcpQueue"/> over the socket itself. A receive reads as much as the socket has (up to a
/// 64 KiB block) straight into pooled memory, and the queue's writer sends each batch of PDUs with as few
/// sends as the blocks allow, from the thread that completed the work: no intermediate pipe thread between
/// the socket and the queue.
/// </summary>
public sealed class NvmeTcpServer : IAsyncDisposable
{
    /// <summary>Receive and send block size: a receive takes up to this much, a send gathers up to this much.</summary>
    public const int BlockSize = 64 * 1024;

    private readonly NvmeTarget _target;
    private readonly TcpTransportOptions _options;
    private readonly ILogger _log;
    private readonly TcpTransportMetrics _metrics;
    private readonly BlockMemoryPool _pool = new(BlockSize);
    private readonly List<(Socket Socket, Task Accepting)> _listeners = new();
    private readonly ConcurrentDictionary<Connection, byte> _live = new();
    private volatile bool _draining;
    private int _open;
    private long _lastRefusalLog = long.MinValue / 2;
    private long _refusalsNotLogged;
    private volatile bool _stopped;
    private readonly PollingReactor[] _reactors;

    public NvmeTcpServer(NvmeTarget target, TcpTransportOptions options, ILoggerFactory loggers, TcpTransportMetrics? metrics = null)
    {
        _target = target;
        _options = options;
        _log = loggers.CreateLogger("Transport.Tcp");
        _metrics = metrics ?? TcpTransportMetrics.Detached;
        Descriptor = options.Describe();
        _reactors = options.Polling is { } polling
            ? [.. Enumerable.Range(0, Math.Max(1, polling.Reactors)).Select(i => new PollingReactor(i, polling))]
            : [];
        if (_reactors.Length > 0 && metrics != null) _metrics.Reactors = _reactors; // not on the shared Detached instance
        Traces = new Trace.WireTracer(() => Queues, _log);
        if (metrics != null) _metrics.Tracer = Traces;
    }

    /// <summary>Wire traces (pcapng) of this server's connections.</summary>
    public Trace.WireTracer Traces { get; }

    /// <summary>Connections per reactor thread (empty in the event-driven default).</summary>
    public IReadOnlyList<int> ReactorConnections => [.. _reactors.Select(r => r.Count)];

    /// <summary>How this transport describes itself to the core; give it to the <see cref="Nvme.Core.Model.Port"/>s it serves.</summary>
    public TransportDescriptor Descriptor { get; }

    /// <summary>The queues of the connections being served right now.</summary>
    internal IEnumerable<NvmeTcpQueue> Queues => _live.Keys.Select(c => c.Queue).OfType<NvmeTcpQueue>();

    /// <summary>Connections being served right now.</summary>
    public int ConnectionCount => _live.Count;

    /// <summary>Socket buffer blocks created so far (each <see cref="BlockSize"/> bytes, pinned, reused).</summary>
    public long BufferBlocks => _pool.BlockCount;

    /// <summary>Binds <paramref name="endpoint"/> and starts accepting; returns the bound endpoint (the real port
    /// when port 0 was asked for). Throws <see cref="IOException"/> when the address cannot be bound. Its
    /// connections reach only the subsystems bound to <paramref name="portId"/> (<see cref="Nvme.Core.Model.Subsystem.PortIds"/>).</summary>
    public IPEndPoint Listen(IPEndPoint endpoint, ushort portId)
    {
        ObjectDisposedException.ThrowIf(_stopped, this);
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (endpoint.AddressFamily == AddressFamily.InterNetworkV6 && endpoint.Address.Equals(IPAddress.IPv6Any)) socket.DualMode = true;
            AllowRebindAfterClose(socket);
            socket.Bind(endpoint);
            socket.Listen(512);
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new IOException(e.SocketErrorCode == SocketError.AddressAlreadyInUse
                ? $"cannot listen on {endpoint}: the address is in use (another process, another target perhaps, listens there); stop it or choose another port"
                : $"cannot listen on {endpoint}: {e.Message}", e);
        }
        var bound = (IPEndPoint)socket.LocalEndPoint!;
        lock (_listeners) _listeners.Add((socket, AcceptLoopAsync(socket, portId)));
        return bound;
    }

    /// <summary>
    /// SO_REUSEADDR only: a restarted target binds its port at once although connections of the previous run are in
    /// TIME_WAIT, while a second live listener on the port still fails. Not <see cref="SocketOptionName.ReuseAddress"/>:
    /// on Linux .NET sets SO_REUSEPORT with it (see the server tests), which lets a second process bind the same port
    /// and the kernel spread new connections over both targets.
    /// </summary>
    internal static void AllowRebindAfterClose(Socket socket)
    {
        if (!OperatingSystem.IsLinux()) return;
        Span<byte> on = stackalloc byte[4];
        BitConverter.TryWriteBytes(on, 1);
        socket.SetRawSocketOption(SolSocket, SoReuseAddr, on);
    }

    internal const int SolSocket = 1, SoReuseAddr = 2, SoReusePort = 15; // Linux <asm-generic/socket.h>

    /// <summary>Settings of every accepted socket: no Nagle delay; TCP keep-alive (idle time from the options, then
    /// a probe every 10 s, 6 probes), so a host that vanished without a FIN is noticed.</summary>
    internal static void ConfigureAccepted(Socket socket, TcpTransportOptions options)
    {
        socket.NoDelay = true;
        if (options.TcpKeepAlive is not { } idle) return;
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, Math.Max(1, (int)idle.TotalSeconds));
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 10);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 6);
    }

    /// <summary>Listens for a port whose id is not known (0): its connections reach only subsystems open to every port.</summary>
    public IPEndPoint Listen(IPEndPoint endpoint) => Listen(endpoint, 0);

    private async Task AcceptLoopAsync(Socket listener, ushort portId)
    {
        await Task.Yield();
        while (true)
        {
            Socket socket;
            try { socket = await listener.AcceptAsync().ConfigureAwait(false); }
            catch (ObjectDisposedException) { return; }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.OperationAborted) { return; }
            catch (SocketException e)
            {
                // Out of file descriptors and the like: say so, breathe, keep accepting.
                _log.AcceptFailed(e.SocketErrorCode.ToString(), e.Message);
                await Task.Delay(100).ConfigureAwait(false);
                continue;
            }
            if (Interlocked.Increment(ref _open) > _options.MaxConnections)
            {
                Interlocked.Decrement(ref _open);
                Refuse(socket);
                continue;
            }
            _ = ServeAsync(socket, portId);
        }
    }

    /// <summary>Over the connection limit: close at once (no byte read), count it, and say so at most every 10 s.</summary>
    private void Refuse(Socket socket)
    {
        Interlocked.Increment(ref _metrics.ConnectionsRejectedAtLimit);
        string peer = "?";
        try { peer = socket.RemoteEndPoint?.ToString() ?? "?"; }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        socket.Dispose();
        long now = Environment.TickCount64, last = Interlocked.Read(ref _lastRefusalLog);
        if (now - last >= 10_000 && Interlocked.CompareExchange(ref _lastRefusalLog, now, last) == last)
            _log.ConnectionRefusedAtLimit(peer, _options.MaxConnections, Interlocked.Exchange(ref _refusalsNotLogged, 0));
        else Interlocked.Increment(ref _refusalsNotLogged);
    }

    private async Task ServeAsync(Socket socket, ushort portId)
    {
        var connection = new Connection(socket, _pool, _reactors.Length == 0 ? null : _reactors.MinBy(r => r.Count));
        _live.TryAdd(connection, 0);
        try
        {
            ConfigureAccepted(socket, _options);
            var peer = socket.RemoteEndPoint?.ToString() ?? "?";
            var queue = new NvmeTcpQueue(_target, connection, _options, _log, peer, connection.Abort, _metrics, portId);
            if (socket.RemoteEndPoint is IPEndPoint remote && socket.LocalEndPoint is IPEndPoint local) queue.Endpoints = (remote, local);
            if (Traces.Running > 0) Traces.Accepted(queue);
            if (_options.DirectDataReceive) queue.DirectInput = connection;
            connection.Queue = queue;
            if (_draining) queue.BeginDrain(); // accepted while the listener was being closed
            await queue.RunAsync().ConfigureAwait(false);
            connection.Close();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The peer vanished between accept and the first read: nothing to serve.
            connection.Abort();
        }
        finally
        {
            _live.TryRemove(connection, out _);
            Interlocked.Decrement(ref _open);
        }
    }

    /// <summary>Graceful shutdown: stop accepting; every connection stops taking new commands, finishes what
    /// it has and closes (see <see cref="NvmeTcpQueue.BeginDrain"/>). Returns the connections draining.</summary>
    public int BeginDrain()
    {
        _draining = true;
        CloseListeners();
        foreach (var c in _live.Keys) c.Queue?.BeginDrain();
        return _live.Count;
    }

    /// <summary>Waits until every connection has closed or <paramref name="cancellation"/> fires; then aborts
    /// those left (their sockets are reset) and waits for them to end.</summary>
    public async Task StopAsync(CancellationToken cancellation)
    {
        _stopped = true;
        CloseListeners();
        try
        {
            while (!_live.IsEmpty) await Task.Delay(20, cancellation).ConfigureAwait(false);
        }
        catch (OperationCanceledException) { }
        foreach (var c in _live.Keys) c.Abort();
        for (int i = 0; i < 250 && !_live.IsEmpty; i++) await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
    }

    private void CloseListeners()
    {
        lock (_listeners)
        {
            foreach (var (socket, _) in _listeners) socket.Dispose();
            _listeners.Clear();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(new CancellationToken(true)).ConfigureAwait(false);
        await Traces.StopAllAsync("shutdown").ConfigureAwait(false);
        foreach (var r in _reactors) r.Dispose();
    }

    /// <summary>One accepted socket as a duplex pipe: reads go straight to the socket into pooled 64 KiB blocks;
    /// writes are buffered in pooled blocks and sent at each flush.</summary>
    private sealed class Connection : IDuplexPipe, IDirectInput
    {
        private readonly Socket _socket;
        private readonly PolledInput? _polled;
        private readonly NetworkStream? _stream; // the event-driven input reads through it; the polling mode has none
        private int _closed;

        public Connection(Socket socket, BlockMemoryPool pool, PollingReactor? reactor)
        {
            _socket = socket;
            if (reactor is null)
            {
                _stream = new NetworkStream(socket, ownsSocket: false);
                Input = PipeReader.Create(_stream, new StreamPipeReaderOptions(pool, bufferSize: BlockSize, minimumReadSize: 4096, leaveOpen: true));
            }
            else
            {
                // The polling mode: the reactor receives from the non-blocking socket into a pipe and runs the queue.
                socket.Blocking = false;
                var input = _polled = new PolledInput(socket, pool);
                Input = input.Reader;
                reactor.Add(input);
            }
            Output = new SocketPipeWriter(socket, pool); // one gathered send per flush
        }

        public PipeReader Input { get; }
        public PipeWriter Output { get; }
        public NvmeTcpQueue? Queue { get; set; }

        Socket IDirectInput.Socket => _socket;
        bool IDirectInput.ReactorReceives => _polled != null;
        bool IDirectInput.CanBegin => _polled is null || _polled.FlushingOnThisThread;
        void IDirectInput.Attach(IDirectReceiveSink sink)
        {
            if (_polled != null) _polled.Sink = sink;
        }

        /// <summary>After the queue ended (its pipes completed, everything flushed): FIN, then close.</summary>
        public void Close()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            try { _socket.Shutdown(SocketShutdown.Both); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            _stream?.Dispose();
            _socket.Dispose();
        }

        /// <summary>A stuck or unwanted peer: reset the connection, dropping anything not yet sent. Any thread.</summary>
        public void Abort()
        {
            if (Interlocked.Exchange(ref _closed, 1) != 0) return;
            try { _socket.LingerState = new LingerOption(true, 0); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
            _stream?.Dispose();
            _socket.Dispose();
        }
    }
}
