using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;
using static Transport.Tcp.Tests.NvmeTcpDataPathTests;

namespace Transport.Tcp.Tests;

/// <summary>The three receive deadlines over pipes (set to a fraction of a second here): a PDU fed one byte at a
/// time is closed at its cumulative deadline, a connection must Connect in time after accept, and the data for an
/// R2T must come in time or the command fails and its buffer goes back.</summary>
public class NvmeTcpDeadlineTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    [Fact]
    public async Task A_pdu_fed_one_byte_at_a_time_is_closed_at_its_cumulative_deadline()
    {
        using var f = new PipeFixture();
        using var metrics = new TcpTransportMetrics();
        var options = new TcpTransportOptions { PduTimeout = TimeSpan.FromMilliseconds(600) };
        var (admin, io) = await ConnectAsync(f, options: options, metrics: metrics);
        var pdu = CaptureVectors.PropertyGetCapCmd;
        // One byte every 50 ms: each well within the 600 ms deadline, the whole PDU (76 bytes) far beyond it.
        int sent = 0;
        for (; sent < pdu.Length && !admin.Run.IsCompleted; sent++)
        {
            await admin.ToTarget.WriteAsync(pdu.AsMemory(sent, 1));
            await Task.Delay(50);
        }
        await admin.Run.WaitAsync(Wait);
        Assert.True(sent < pdu.Length, $"the target took the whole PDU ({sent} bytes) instead of closing at the deadline");
        Assert.Equal(1, metrics.DeadlinesExpired(TcpDeadline.Pdu));
        Assert.Equal(1, Interlocked.Read(ref metrics.Stalls));
        await io.ExpectClosedAsync(); // the admin queue took its controller down
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task A_connection_that_sent_its_icreq_but_never_connects_is_closed()
    {
        using var f = new PipeFixture();
        using var metrics = new TcpTransportMetrics();
        var options = new TcpTransportOptions { ConnectTimeout = TimeSpan.FromMilliseconds(300) };
        var c = new PipeHost(f.Target, options, metrics);
        await c.SendAsync(CaptureVectors.ICReq);
        Assert.Equal((byte)PduType.ICResp, (await c.ReceivePduAsync())[0]);
        await c.ExpectClosedAsync(); // silent after the ICReq: the connect deadline ends it
        Assert.Equal(1, metrics.DeadlinesExpired(TcpDeadline.Connect));

        // A refused Connect does not count: the connection still has to connect in time.
        var d = new PipeHost(f.Target, options, metrics);
        await d.SendAsync(CaptureVectors.ICReq);
        await d.ReceivePduAsync();
        var sqe = MemoryMarshal.Read<SubmissionQueueEntry>(CaptureVectors.ConnectCmd.AsSpan(8));
        var data = CaptureVectors.ConnectCmd.AsSpan(76, 1024).ToArray();
        data.AsSpan(256, 256).Clear();
        "nqn.2024-01.io.example:nosuch"u8.CopyTo(data.AsSpan(256));
        await d.SendAsync(Capsule(sqe, data));
        Resp(await d.ReceivePduAsync(), 0, NvmeStatus.ConnectInvalidParameters);
        await d.ExpectClosedAsync();
        Assert.Equal(2, metrics.DeadlinesExpired(TcpDeadline.Connect));
        Assert.Equal(0, metrics.DeadlinesExpired(TcpDeadline.Pdu));
    }

    [Fact]
    public async Task Data_that_never_comes_after_an_r2t_fails_the_command_frees_its_buffer_and_closes_the_connection()
    {
        const int Size = 128 * 1024;
        using var f = new PipeFixture(new TargetLimits { Mdts = 5, DataBufferBudget = Size });
        using var metrics = new TcpTransportMetrics();
        var options = new TcpTransportOptions { R2TTimeout = TimeSpan.FromMilliseconds(500) };
        var (admin, io) = await ConnectAsync(f, options: options, metrics: metrics);
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, 0x50, 0, Size / 512)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
        Assert.Equal(1, f.Target.DataBuffers.InUse);
        // Half the data, then nothing: the deadline is for the whole R2T window.
        await io.SendAsync(H2CData(0x50, r2t.TransferTag, 0, new byte[Size / 2], last: false));

        await io.ExpectClosedAsync();
        Assert.Equal(1, metrics.DeadlinesExpired(TcpDeadline.R2T));
        Assert.Equal(0, Interlocked.Read(ref metrics.Stalls)); // an r2t deadline is not a stall
        Assert.Equal(0, f.Target.DataBuffers.InUse);          // the buffer went back...
        Assert.Equal(Size, f.Target.DataBuffers.CreatedBytes); // ...to the pool, for the next command
        var ns = f.Subsystem.GetNamespace(1)!;
        Assert.Equal(0, ns.InFlight);
        Assert.Contains(ns.Counters.ErrorsByStatus, e => e.Key == NvmeStatus.AbortSqDeleted && e.Value == 1); // the write failed
        var stored = new byte[Size / 2];
        f.Store.Read(0, stored);
        Assert.All(stored, b => Assert.Equal(0, b)); // and was never executed

        // The admin queue (another connection) is untouched.
        Assert.False(admin.Run.IsCompleted);
        Assert.Single(f.Target.Controllers);
        await admin.DrainAndCloseAsync();
    }
}
