using System.Net;
using System.Net.Sockets;
using Transport.Tcp.Pdu;

namespace Integration.Tests.Initiator;

/// <summary>
/// A raw NVMe/TCP connection for malformed-input tests: send arbitrary bytes, read PDUs back (checked as far
/// as the negotiated digests allow), and see whether the target closed the socket.
/// </summary>
public sealed class RawConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PduStreamReader _reader;

    private RawConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new PduStreamReader(_stream);
    }

    public static async Task<RawConnection> OpenAsync(IPEndPoint endpoint, CancellationToken ct = default)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, ct).ConfigureAwait(false);
            return new RawConnection(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Sends ICReq and reads a valid ICResp; later PDUs are checked with the negotiated digests.</summary>
    public async Task<InitializeConnectionPdu> HandshakeAsync(bool headerDigest = false, bool dataDigest = false, TimeSpan? timeout = null)
    {
        await SendAsync(PduBuilder.ICReq(headerDigest, dataDigest)).ConfigureAwait(false);
        var pdu = await ReadPduAsync(timeout).ConfigureAwait(false) ?? throw new NvmeTcpConnectionClosedException("closed instead of ICResp");
        if (pdu.Type != PduType.ICResp) throw new NvmeTcpProtocolException($"expected ICResp, got {pdu}");
        _reader.HeaderDigest = headerDigest;
        _reader.DataDigest = dataDigest;
        return pdu.As<InitializeConnectionPdu>();
    }

    public Task SendAsync(ReadOnlyMemory<byte> bytes) => _stream.WriteAsync(bytes).AsTask();

    /// <summary>The next PDU, or null when the target closed the connection (FIN or reset) between PDUs.</summary>
    public async Task<ReceivedPduBytes?> ReadPduAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(15));
        try
        {
            return await _reader.ReadAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no PDU from the target within " + (timeout ?? TimeSpan.FromSeconds(15)));
        }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return null;
        }
    }

    /// <summary>Waits for the target to close the connection; true if it did within the timeout (extra bytes
    /// the target sent meanwhile are returned in <paramref name="extra"/>).</summary>
    public async Task<(bool Closed, int ExtraBytes)> WaitForCloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        var buffer = new byte[4096];
        int extra = 0;
        try
        {
            while (true)
            {
                int n = await _stream.ReadAsync(buffer, cts.Token).ConfigureAwait(false);
                if (n == 0) return (true, extra);
                extra += n;
            }
        }
        catch (OperationCanceledException) { return (false, extra); }
        catch (IOException) { return (true, extra); }
    }

    public async ValueTask DisposeAsync()
    {
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        await _stream.DisposeAsync().ConfigureAwait(false);
    }
}
