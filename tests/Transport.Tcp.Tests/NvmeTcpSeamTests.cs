using System.Runtime.InteropServices;
using Nvme.Core.Spec;
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
    }
}
