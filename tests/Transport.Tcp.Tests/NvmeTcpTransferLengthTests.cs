using Nvme.Core.Spec;
using static Transport.Tcp.Tests.NvmeTcpDataPathTests;

namespace Transport.Tcp.Tests;

/// <summary>Transfer lengths seen from the wire: a zero-length SGL of any kind is "no data" (SPDK's host), and a
/// Get Log Page whose SGL disagrees with NUMD is refused without an R2T or C2HData.</summary>
public class NvmeTcpTransferLengthTests
{
    [Fact]
    public async Task Zero_length_in_capsule_sgl_on_set_features_is_accepted()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        var sqe = new SubmissionQueueEntry { Opcode = AdminOpcode.SetFeatures, CommandId = 0x77, Cdw10 = FeatureId.KeepAliveTimer, Cdw11 = 15000 };
        sqe.Sgl.Identifier = SglDescriptor.InCapsuleOffset; // length 0, no data in the capsule
        await admin.SendAsync(Capsule(sqe));
        Resp(await admin.ReceivePduAsync(), 0x77);
        Assert.Equal(15000u, f.Target.Controllers.Single().KeepAliveTimeoutMs);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Get_log_page_with_an_sgl_longer_than_numd_is_answered_at_once_without_data()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        var sqe = new SubmissionQueueEntry { Opcode = AdminOpcode.GetLogPage, CommandId = 0x78, Nsid = 0xFFFFFFFF, Cdw10 = LogPageId.SmartHealth };
        sqe.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        sqe.Sgl.Length = 1 << 20; // NUMD 0: 4 bytes
        await admin.SendAsync(Capsule(sqe));
        var pdu = await admin.ReceivePduAsync(); // the CapsuleResp, no C2HData before it
        Resp(pdu, 0x78, NvmeStatus.DataSglLengthInvalid);
        Assert.Equal(0, f.Target.DataBuffers.CreatedBytes);
        await CloseAsync(f, admin, io);
    }
}
