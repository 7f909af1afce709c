using System.Collections.Concurrent;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Nvme.Core;

namespace Transport.Tcp;

/// <summary>Kestrel connection handler: every accepted TCP connection becomes one <see cref="NvmeTcpQueue"/>.</summary>
public sealed class NvmeTcpConnectionHandler : ConnectionHandler
{
    private readonly NvmeTarget _target;
    private readonly TcpTransportOptions _options;
    private readonly ILogger _log;
    private readonly TcpTransportMetrics? _metrics;
    private readonly ConcurrentDictionary<NvmeTcpQueue, byte> _live = new();
    private volatile bool _draining;

    public NvmeTcpConnectionHandler(NvmeTarget target, TcpTransportOptions options, ILoggerFactory loggers, TcpTransportMetrics? metrics = null)
    {
        _target = target;
        _options = options;
        _log = loggers.CreateLogger("Transport.Tcp");
        _metrics = metrics;
    }

    /// <summary>Connections being served right now.</summary>
    public int ConnectionCount => _live.Count;

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var peer = connection.RemoteEndPoint?.ToString() ?? connection.ConnectionId;
        var queue = new NvmeTcpQueue(_target, connection.Transport, _options, _log, peer, connection.Abort, _metrics);
        _live.TryAdd(queue, 0);
        try
        {
            if (_draining) queue.BeginDrain(); // accepted while the listener was being closed
            await queue.RunAsync().ConfigureAwait(false);
        }
        finally { _live.TryRemove(queue, out _); }
    }

    /// <summary>Graceful shutdown: every connection, and any accepted from now on, stops taking new commands,
    /// finishes what it has and closes (see <see cref="NvmeTcpQueue.BeginDrain"/>). Returns the connections
    /// draining.</summary>
    public int BeginDrain()
    {
        _draining = true;
        foreach (var q in _live.Keys) q.BeginDrain();
        return _live.Count;
    }
}
