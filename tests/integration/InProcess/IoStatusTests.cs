using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class IoStatusTests(ITestOutputHelper output)
{
    [Fact]
    public async Task InvalidIo_GetsTheRightStatusAndTheQueueKeepsWorking()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        var io = host.Io();
        ulong nsze = TestTarget.NamespaceBlocks;

        // LBA out of range: starting beyond the end, and running over the end.
        Assert.Equal(0x4080, (await host.ReadAsync(0, 1, nsze, new byte[512])).Status);
        Assert.Equal(0x4080, (await host.ReadAsync(0, 1, nsze - 1, new byte[1024])).Status);
        Assert.Equal(0x4080, (await host.WriteAsync(0, 1, nsze - 2, new byte[4096])).Status);            // in-capsule
        Assert.Equal(0x4080, (await host.WriteAsync(0, 1, nsze - 2, new byte[65536])).Status);           // would need R2T
        Assert.Equal(0x4080, (await host.WriteZeroesAsync(0, 1, nsze, 1)).Status);
        Assert.Equal(0x4080, (await host.ReadAsync(0, 1, ulong.MaxValue - 1, new byte[1024])).Status);  // LBA overflow

        // Invalid namespace.
        Assert.Equal(0x400B, (await host.ReadAsync(0, 2, 0, new byte[512])).Status);
        Assert.Equal(0x400B, (await host.WriteAsync(0, 0, 0, new byte[512])).Status);
        Assert.Equal(0x400B, (await host.ReadAsync(0, 0xFFFFFFFF, 0, new byte[512])).Status);
        Assert.Equal(0x400B, (await host.FlushAsync(0, 5)).Status);

        // Unknown opcode.
        Assert.Equal(0x4001, (await io.SubmitAsync(new SubmissionQueueEntry { Opcode = 0x7C, Nsid = 1 })).Status);
        Assert.Equal(0x4001, (await io.SubmitAsync(new SubmissionQueueEntry { Opcode = AdminOpcode.Identify, Nsid = 1 }, controllerData: new byte[4096])).Status);

        // Transfer larger than MDTS (1 MiB), for a read and for a write that would use R2T.
        int mdts = host.MaxTransferBytes!.Value;
        Assert.Equal(1 << 20, mdts);
        var tooBigRead = await host.ReadAsync(0, 1, 0, new byte[mdts + 512]);
        Assert.Equal(0x4002, tooBigRead.Status);
        Assert.Equal(0, tooBigRead.C2HDataCount);
        var tooBigWrite = await host.WriteAsync(0, 1, 0, new byte[mdts + 512]);
        Assert.Equal(0x4002, tooBigWrite.Status);
        Assert.Equal(0, tooBigWrite.R2TCount);

        // SGL length that does not match NLB.
        var sqe = Sqe.ReadWrite(IoOpcode.Read, 1, 0, 8);
        sqe.Sgl = new SglDescriptor { Length = 512, Identifier = SglDescriptor.TransportDataBlock };
        var mismatch = await io.SubmitAsync(sqe, controllerData: new byte[512], keepSgl: true);
        Assert.Equal(0x400F, mismatch.Status);

        // The queue still works, and the error log holds the last failure.
        var data = TestData.Random(16384, 3);
        (await host.WriteAsync(0, 1, nsze - 32, data)).EnsureSuccess();
        var back = new byte[data.Length];
        (await host.ReadAsync(0, 1, nsze - 32, back)).EnsureSuccess();
        Assert.Equal(data, back);

        var log = await host.GetLogPageAsync(LogPageId.Error, ErrorLogEntry.Size, nsid: 0xFFFFFFFF);
        var newest = MemoryMarshal.Read<ErrorLogEntry>(log);
        Assert.Equal(mismatch.CommandId, newest.CommandId);
        Assert.Equal(1, newest.SqId);
        Assert.Equal(0x400F, newest.Status >> 1);
        Assert.Equal(15ul, newest.ErrorCount); // every failure above, one entry each
    }

    [Fact]
    public async Task IoBeforeEnable_AndAdminBeforeEnable_AreRejected()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectAsync(new NvmeTcpHostOptions { Enable = false });
        // Admin commands other than fabrics ones need CSTS.RDY.
        var id = await host.IdentifyRawAsync(IdentifyCns.Controller, 0, new byte[4096]);
        Assert.Equal(0x400C, id.Status);
        // I/O queue Connect before the controller is ready.
        await using var q = await HostQueue.OpenAsync(target.Endpoint);
        var c = await q.ConnectAsync(TestTarget.Nqn, host.Options.HostNqn, host.Options.HostId, 1, 31, host.Cntlid, 0);
        Assert.NotEqual(0, c.Status);
        // Enabling afterwards works.
        await host.EnableAsync();
        await host.CreateIoQueuesAsync(1);
        (await host.FlushAsync(0, 1)).EnsureSuccess();
    }
}
