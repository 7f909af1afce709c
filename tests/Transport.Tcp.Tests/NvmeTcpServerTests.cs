using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging.Abstractions;
using Transport.Tcp.Net;

namespace Transport.Tcp.Tests;

/// <summary>The socket listener: binding, serving over real loopback sockets, buffer reuse, drain and stop.</summary>
public sealed class NvmeTcpServerTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly PipeFixture _f = new();
    private readonly NvmeTcpServer _server;

    public NvmeTcpServerTests() => _server = new NvmeTcpServer(_f.Target, new TcpTransportOptions(), NullLoggerFactory.Instance);

    public void Dispose()
    {
        _server.DisposeAsync().AsTask().Wait(Wait);
        _f.Dispose();
    }

    private async Task<Socket> ConnectAsync(IPEndPoint ep)
    {
        var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await s.ConnectAsync(ep);
        return s;
    }

    private static async Task<byte[]> ReceiveExactlyAsync(Socket s, int n)
    {
        var buf = new byte[n];
        using var cts = new CancellationTokenSource(Wait);
        int got = 0;
        while (got < n)
        {
            int r = await s.ReceiveAsync(buf.AsMemory(got), cts.Token);
            if (r == 0) throw new IOException($"closed after {got} of {n} bytes");
            got += r;
        }
        return buf;
    }

    /// <summary>Receives until the peer closes or resets; returns the bytes seen first.</summary>
    private static async Task<int> ReceiveUntilClosedAsync(Socket s)
    {
        var buf = new byte[4096];
        using var cts = new CancellationTokenSource(Wait);
        int total = 0;
        try
        {
            while (true)
            {
                int r = await s.ReceiveAsync(buf, cts.Token);
                if (r == 0) return total;
                total += r;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return total; }
    }

    [Fact]
    public async Task Port_zero_reports_the_bound_port_and_serves_ICReq_and_Connect()
    {
        var ep = _server.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        Assert.NotEqual(0, ep.Port);
        using var s = await ConnectAsync(ep);
        await s.SendAsync(CaptureVectors.ICReq);
        var icresp = await ReceiveExactlyAsync(s, 128);
        Assert.Equal(0x01, icresp[0]); // ICResp
        Assert.Equal(128u, BitConverter.ToUInt32(icresp, 4)); // PLEN
        await s.SendAsync(CaptureVectors.ConnectCmd);
        Assert.Equal(CaptureVectors.ConnectResp, await ReceiveExactlyAsync(s, CaptureVectors.ConnectResp.Length));
        Assert.Equal(1, _server.ConnectionCount);
        Assert.Single(_f.Target.Controllers);
        s.Shutdown(SocketShutdown.Send);
        Assert.Equal(0, await ReceiveUntilClosedAsync(s));
        Assert.True(await Poll.UntilAsync(() => _server.ConnectionCount == 0, TimeSpan.FromSeconds(10)), "condition not reached in time");
        Assert.True(await Poll.UntilAsync(() => !_f.Target.Controllers.Any(), TimeSpan.FromSeconds(10)), "condition not reached in time");
    }

    [Fact]
    public void A_port_in_use_is_an_IOException_that_names_the_endpoint()
    {
        using var taken = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        taken.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        taken.Listen();
        var ep = (IPEndPoint)taken.LocalEndPoint!;
        var e = Assert.Throws<IOException>(() => _server.Listen(ep));
        Assert.Contains(ep.ToString(), e.Message);
    }

    [Fact]
    public async Task A_malformed_first_PDU_gets_a_C2HTermReq_then_the_connection_closes()
    {
        var ep = _server.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        using var s = await ConnectAsync(ep);
        var bogus = new byte[8] { 0x04, 0, 8, 0, 8, 0, 0, 0 }; // CapsuleCmd before ICReq
        await s.SendAsync(bogus);
        var term = await ReceiveExactlyAsync(s, 8);
        Assert.Equal(0x03, term[0]); // C2HTermReq
        await ReceiveUntilClosedAsync(s);
        Assert.True(await Poll.UntilAsync(() => _server.ConnectionCount == 0, TimeSpan.FromSeconds(10)), "condition not reached in time");
    }

    [Fact]
    public async Task Buffers_are_reused_across_connections()
    {
        var ep = _server.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        for (int i = 0; i < 40; i++)
        {
            using var s = await ConnectAsync(ep);
            await s.SendAsync(CaptureVectors.ICReq);
            await ReceiveExactlyAsync(s, 128);
            s.Shutdown(SocketShutdown.Send);
            await ReceiveUntilClosedAsync(s);
        }
        Assert.True(await Poll.UntilAsync(() => _server.ConnectionCount == 0, TimeSpan.FromSeconds(10)), "condition not reached in time");
        // One receive and one send block per live connection at most; 40 sequential connections reuse them.
        Assert.InRange(_server.BufferBlocks, 1, 8);
    }

    [Fact]
    public async Task Drain_closes_idle_connections_and_stops_accepting()
    {
        var ep = _server.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        using var s = await ConnectAsync(ep);
        await s.SendAsync(CaptureVectors.ICReq);
        await ReceiveExactlyAsync(s, 128);
        Assert.Equal(1, _server.BeginDrain());
        Assert.Equal(0, await ReceiveUntilClosedAsync(s));
        Assert.True(await Poll.UntilAsync(() => _server.ConnectionCount == 0, TimeSpan.FromSeconds(10)), "condition not reached in time");
        using var late = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await Assert.ThrowsAsync<SocketException>(async () => await late.ConnectAsync(ep));
    }

    [Fact]
    public async Task Stop_after_the_grace_resets_connections_that_did_not_finish()
    {
        var ep = _server.Listen(new IPEndPoint(IPAddress.Loopback, 0));
        using var s = await ConnectAsync(ep);
        await s.SendAsync(CaptureVectors.ICReq);
        await ReceiveExactlyAsync(s, 128);
        await s.SendAsync(CaptureVectors.ConnectCmd);
        await ReceiveExactlyAsync(s, CaptureVectors.ConnectResp.Length);
        // Half a PDU: the connection is busy, nothing drains it.
        await s.SendAsync(CaptureVectors.ConnectCmd.AsMemory(0, 30));
        Assert.True(await Poll.UntilAsync(() => _server.ConnectionCount == 1, TimeSpan.FromSeconds(10)), "condition not reached in time");
        await _server.StopAsync(new CancellationToken(true));
        Assert.Equal(0, _server.ConnectionCount);
        await ReceiveUntilClosedAsync(s);
    }
}
