using System.Diagnostics;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;
using Transport.Tcp.Pdu;
using static Transport.Tcp.Tests.NvmeTcpDataPathTests;

namespace Transport.Tcp.Tests;

/// <summary>The TCP side of the seam with the core: the transport describes itself (IOCCSZ from its options) and
/// acts on what it is told (the installed queue's in-capsule limit, a parked request that does not hold a draining
/// connection open).</summary>
public class NvmeTcpSeamTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static SubmissionQueueEntry Admin(byte opcode, ushort cid)
    {
        var s = new SubmissionQueueEntry { Opcode = opcode, Flags = 0x40, CommandId = cid };
        s.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        return s;
    }

    [Fact]
    public async Task The_io_queue_takes_the_in_capsule_size_of_the_options_once_installed_and_identify_reports_it()
    {
        using var f = new PipeFixture();
        var options = new TcpTransportOptions { InCapsuleDataSize = 4096 };
        var (admin, io) = await ConnectAsync(f, options: options);

        var identify = Admin(AdminOpcode.Identify, 0x21);
        identify.Cdw10 = 1;
        identify.Sgl.Length = 4096;
        await admin.SendAsync(Capsule(identify));
        var c2h = await admin.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HData, c2h[0]);
        var id = MemoryMarshal.Read<IdentifyController>(c2h.AsSpan(c2h[3], 4096));
        Assert.Equal((4096u + 64) / 16, id.Ioccsz);
        Resp(await admin.ReceivePduAsync(), 0x21);

        var fits = Rw(IoOpcode.Write, 0x31, 0, 8);
        fits.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        await io.SendAsync(Capsule(fits, Pattern(4096, 1)));
        Resp(await io.ReceivePduAsync(), 0x31);

        // 8 KiB in the capsule was fine before the Connect (the larger of both sizes); on this I/O queue it is not.
        var tooBig = Rw(IoOpcode.Write, 0x32, 0, 16);
        tooBig.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        await io.SendAsync(Capsule(tooBig, Pattern(8192, 2)));
        var term = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HTermReq, term[0]);
        Assert.Equal(FatalErrorStatus.DataTransferLimitExceeded, MemoryMarshal.Read<TermReqPdu>(term).Status);
        await io.ExpectClosedAsync();
        await CloseAsync(f, admin);
    }

    [Fact]
    public async Task A_draining_admin_queue_closes_after_its_io_queue_although_an_aer_is_parked()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        await admin.SendAsync(Capsule(Admin(AdminOpcode.AsyncEventRequest, 0x1F)));
        await admin.SendAsync(Capsule(Admin(AdminOpcode.KeepAlive, 0x20))); // answered after the AER was taken
        Resp(await admin.ReceivePduAsync(), 0x20);

        admin.Queue.BeginDrain();
        io.Queue.BeginDrain();
        Assert.Null(await io.ReceiveAsync());
        await io.Run.WaitAsync(Timeout);
        Assert.Null(await admin.ReceiveAsync()); // closed; the parked AER is left for the host to resend
        await admin.Run.WaitAsync(Timeout);
        Assert.Empty(f.Target.Controllers);
        Assert.Equal(CloseReason.Shutdown, io.Queue.ClosedBecause);
        Assert.Equal(CloseReason.Shutdown, admin.Queue.ClosedBecause);
    }

    // ---- close reasons ----

    [Fact]
    public async Task Each_way_a_connection_ends_has_its_close_reason()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        Assert.Null(io.Queue.ClosedBecause);
        var d = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Flags = 0x40, CommandId = 0x99, Nsid = FabricsType.Disconnect };
        d.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        await io.SendAsync(Capsule(d));
        Resp(await io.ReceivePduAsync(), 0x99);
        await io.ExpectClosedAsync();
        Assert.Equal(CloseReason.Disconnect, io.Queue.ClosedBecause);
        await admin.CloseAsync();
        Assert.Equal(CloseReason.PeerClosed, admin.Queue.ClosedBecause);

        // The host terminates the admin queue: its controller goes, and the I/O queue with it.
        (admin, io) = await ConnectAsync(f);
        var term = new byte[24];
        term[0] = (byte)PduType.H2CTermReq;
        term[2] = term[4] = 24;
        await admin.SendAsync(term);
        await admin.ExpectClosedAsync();
        await io.ExpectClosedAsync();
        Assert.Equal(CloseReason.HostTermination, admin.Queue.ClosedBecause);
        Assert.Equal(CloseReason.ControllerDestroyed, io.Queue.ClosedBecause);

        // A protocol error (a second ICReq), and a host gone in the middle of a PDU.
        var bad = new PipeHost(f.Target);
        await bad.SendAsync(CaptureVectors.ICReq);
        await bad.ReceivePduAsync();
        await bad.SendAsync(CaptureVectors.ICReq);
        Assert.Equal((byte)PduType.C2HTermReq, (await bad.ReceivePduAsync())[0]);
        await bad.ExpectClosedAsync();
        Assert.Equal(CloseReason.ProtocolError, bad.Queue.ClosedBecause);
        var half = new PipeHost(f.Target);
        await half.SendAsync(CaptureVectors.ICReq.AsSpan(0, 20).ToArray());
        await half.CloseAsync();
        Assert.Equal(CloseReason.PeerClosedMidPdu, half.Queue.ClosedBecause);
    }

    [Fact]
    public async Task The_connection_span_carries_the_close_reason_as_its_label_and_an_error_status_for_a_protocol_error()
    {
        string bad = $"pipe-bad-{Guid.NewGuid():N}", good = $"pipe-good-{Guid.NewGuid():N}";
        var stopped = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == NvmeTelemetry.ActivitySourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                if (a.GetTagItem("network.peer.address") is string p && (p == bad || p == good)) lock (stopped) stopped.Add(a);
            },
        };
        ActivitySource.AddActivityListener(listener);
        using var f = new PipeFixture();
        var b = new PipeHost(f.Target, peer: bad);
        await b.SendAsync(CaptureVectors.ICReq);
        await b.ReceivePduAsync();
        await b.SendAsync(CaptureVectors.ICReq);
        await b.ReceivePduAsync();
        await b.ExpectClosedAsync();
        var g = new PipeHost(f.Target, peer: good);
        await g.SendAsync(CaptureVectors.ICReq);
        await g.ReceivePduAsync();
        await g.CloseAsync();

        Activity[] spans;
        lock (stopped) spans = [.. stopped];
        var badSpan = Assert.Single(spans, a => (string?)a.GetTagItem("network.peer.address") == bad);
        Assert.Equal("protocol_error", badSpan.GetTagItem("nvme.close_reason"));
        Assert.Equal("protocol error: second ICReq", badSpan.GetTagItem("nvme.close_detail"));
        Assert.Equal(ActivityStatusCode.Error, badSpan.Status);
        var goodSpan = Assert.Single(spans, a => (string?)a.GetTagItem("network.peer.address") == good);
        Assert.Equal("peer_closed", goodSpan.GetTagItem("nvme.close_reason"));
        Assert.Equal("peer closed the connection", goodSpan.GetTagItem("nvme.close_detail"));
        Assert.Equal(ActivityStatusCode.Unset, goodSpan.Status);
    }

    [Fact]
    public void Every_close_reason_has_its_own_label()
    {
        var labels = Enum.GetValues<CloseReason>().Select(CloseReasons.Label).ToList();
        Assert.Equal(labels.Count, labels.Distinct().Count());
        Assert.DoesNotContain("unknown", labels);
        Assert.Equal([CloseReason.ConnectDeadline, CloseReason.PduDeadline, CloseReason.R2TDeadline], Enum.GetValues<TcpDeadline>().Select(CloseReasons.Of));
    }
}
