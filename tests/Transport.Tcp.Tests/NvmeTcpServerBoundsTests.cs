using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Transport.Tcp.Net;

namespace Transport.Tcp.Tests;

/// <summary>What the listener bounds: exclusive ports (SO_REUSEADDR, never SO_REUSEPORT), TCP keep-alive on every
/// accepted socket, and the number of connections open at once.</summary>
public sealed class NvmeTcpServerBoundsTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly PipeFixture _f = new();

    public void Dispose() => _f.Dispose();

    private NvmeTcpServer Server(TcpTransportOptions? options = null, TcpTransportMetrics? metrics = null) =>
        new(_f.Target, options ?? new TcpTransportOptions(), NullLoggerFactory.Instance, metrics);

    private static int Raw(Socket s, int optname)
    {
        Span<byte> value = stackalloc byte[4];
        s.GetRawSocketOption(NvmeTcpServer.SolSocket, optname, value);
        return BitConverter.ToInt32(value);
    }

    private static async Task<Socket> HandshakeAsync(IPEndPoint ep)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(ep);
        await s.SendAsync(CaptureVectors.ICReq);
        var buf = new byte[128];
        using var cts = new CancellationTokenSource(Wait);
        for (int got = 0; got < 128;)
        {
            int n = await s.ReceiveAsync(buf.AsMemory(got), cts.Token);
            if (n == 0) throw new IOException("closed before the ICResp");
            got += n;
        }
        return s;
    }

    /// <summary>True when the peer closes (FIN or reset) before sending anything.</summary>
    private static async Task<bool> ClosedAsync(Socket s)
    {
        using var cts = new CancellationTokenSource(Wait);
        try { return await s.ReceiveAsync(new byte[16], cts.Token) == 0; }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
    }

    /// <summary>/proc/net/tcp rows of IPv4 loopback sockets: local port, remote port, state, timer kind (tr).</summary>
    private static List<(int Local, int Remote, int State, int Timer)> Tcp4() =>
        [.. File.ReadLines("/proc/net/tcp").Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(f => (
            int.Parse(f[1][(f[1].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            int.Parse(f[2][(f[2].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
            int.Parse(f[5][..f[5].IndexOf(':')], NumberStyles.HexNumber, CultureInfo.InvariantCulture)))];

    [Fact]
    public void Dotnet_ReuseAddress_sets_SO_REUSEPORT_on_Linux_so_the_listener_sets_only_SO_REUSEADDR()
    {
        // The empirical fact behind AllowRebindAfterClose (issue 10, finding 8: two targets on one port).
        using (var dotnet = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            dotnet.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            Assert.Equal(1, Raw(dotnet, NvmeTcpServer.SoReusePort));
        }
        using var ours = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        NvmeTcpServer.AllowRebindAfterClose(ours);
        Assert.Equal(1, Raw(ours, NvmeTcpServer.SoReuseAddr));
        Assert.Equal(0, Raw(ours, NvmeTcpServer.SoReusePort));
    }

    [Fact]
    public async Task A_second_server_on_a_port_in_use_fails_and_a_new_one_binds_after_close_despite_TIME_WAIT()
    {
        var first = Server();
        var ep = first.Listen(new IPEndPoint(IPAddress.Loopback, 0), 1);
        await using (var second = Server())
        {
            var e = Assert.Throws<IOException>(() => second.Listen(ep, 1));
            Assert.Contains(ep.ToString(), e.Message);
            Assert.Contains("in use", e.Message);
        }

        // A connection the server closes first (a drain) leaves the server's end in TIME_WAIT.
        using (var client = await HandshakeAsync(ep))
        {
            first.BeginDrain();
            Assert.True(await ClosedAsync(client));
        }
        await first.StopAsync(new CancellationTokenSource(Wait).Token);
        Assert.True(await Poll.UntilAsync(() => Tcp4().Any(s => s.Local == ep.Port && s.State == 0x06), Wait), "no TIME_WAIT on the port");

        await using var restarted = Server();
        Assert.Equal(ep, restarted.Listen(ep, 1)); // as a target restarted right after a stop
        using var again = await HandshakeAsync(ep);
    }

    [Fact]
    public async Task Accepted_sockets_have_tcp_keepalive_unless_it_is_off()
    {
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            NvmeTcpServer.ConfigureAccepted(probe, new TcpTransportOptions { TcpKeepAlive = TimeSpan.FromSeconds(45) });
            Assert.Equal(1, (int)probe.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
            Assert.Equal(45, (int)probe.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
            Assert.Equal(10, (int)probe.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
            Assert.Equal(6, (int)probe.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);
        }

        // Seen from the kernel: the server's end of an idle connection runs the keep-alive timer (tr 2) or none.
        foreach (var (keepAlive, timer) in new[] { ((TimeSpan?)TimeSpan.FromSeconds(60), 2), (null, 0) })
        {
            await using var server = Server(new TcpTransportOptions { TcpKeepAlive = keepAlive });
            var ep = server.Listen(new IPEndPoint(IPAddress.Loopback, 0), 1);
            using var client = await HandshakeAsync(ep);
            int clientPort = ((IPEndPoint)client.LocalEndPoint!).Port;
            // (1, the retransmit timer, shows while the ICResp is not acknowledged yet.)
            Assert.True(await Poll.UntilAsync(() => Tcp4().Single(s => s.Local == ep.Port && s.Remote == clientPort).Timer is not 1, Wait));
            Assert.Equal(timer, Tcp4().Single(s => s.Local == ep.Port && s.Remote == clientPort).Timer);
        }
    }

    [Fact]
    public async Task Connections_beyond_the_limit_are_closed_at_accept_and_counted()
    {
        using var metrics = new TcpTransportMetrics();
        await using var server = Server(new TcpTransportOptions { MaxConnections = 2 }, metrics);
        var ep = server.Listen(new IPEndPoint(IPAddress.Loopback, 0), 1);
        using var a = await HandshakeAsync(ep);
        using var b = await HandshakeAsync(ep);
        using (var c = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            await c.ConnectAsync(ep);
            await c.SendAsync(CaptureVectors.ICReq);
            Assert.True(await ClosedAsync(c), "the third connection got an answer");
        }
        Assert.Equal(1, Interlocked.Read(ref metrics.ConnectionsRejectedAtLimit));
        Assert.Equal(2, server.ConnectionCount);

        // Once one goes, a new one is served.
        a.Shutdown(SocketShutdown.Both);
        a.Close();
        Assert.True(await Poll.UntilAsync(() => server.ConnectionCount == 1, Wait));
        using var d = await HandshakeAsync(ep);
        Assert.Equal(1, Interlocked.Read(ref metrics.ConnectionsRejectedAtLimit));
    }
}
