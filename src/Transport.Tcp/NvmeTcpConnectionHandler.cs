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

    public NvmeTcpConnectionHandler(NvmeTarget target, TcpTransportOptions options, ILoggerFactory loggers)
    {
        _target = target;
        _options = options;
        _log = loggers.CreateLogger("Transport.Tcp");
    }

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var peer = connection.RemoteEndPoint?.ToString() ?? connection.ConnectionId;
        var queue = new NvmeTcpQueue(_target, connection.Transport, _options, _log, peer, connection.Abort);
        await queue.RunAsync().ConfigureAwait(false);
    }
}
