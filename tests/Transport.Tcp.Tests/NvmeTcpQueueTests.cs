using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>NvmeTcpQueue over in-memory pipes: the captured Linux host traffic replayed, and protocol errors.</summary>
public class NvmeTcpQueueTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);



    private static CompletionQueueEntry ExpectCapsuleResp(byte[] pdu, ushort cid, NvmeStatus status = NvmeStatus.Success)
    {
        Assert.Equal((byte)PduType.CapsuleResp, pdu[0]);
        Assert.Equal(PduFlags.HeaderDigest, pdu[1]);
        Assert.Equal(28, pdu.Length);
        Assert.Equal(Crc32C.Compute(pdu.AsSpan(0, 24)), Bytes.U32(pdu, 24));
        var cqe = MemoryMarshal.Read<CompletionQueueEntry>(pdu.AsSpan(8));
        Assert.Equal(cid, cqe.CommandId);
        Assert.Equal(status, cqe.Status);
        return cqe;
    }

    /// <summary>Checks a C2HData PDU (digests on, no SUCCESS flag as the host did not disable SQ flow control) and
    /// returns its data.</summary>
    private static byte[] ExpectC2HData(byte[] pdu, ushort cid, int length)
    {
        Assert.Equal((byte)PduType.C2HData, pdu[0]);
        Assert.Equal(PduFlags.HeaderDigest | PduFlags.DataDigest | PduFlags.LastPdu, pdu[1]);
        Assert.Equal(24, pdu[2]);
        Assert.Equal(28, pdu[3]);
        Assert.Equal(28 + length + 4, pdu.Length);
        Assert.Equal(Crc32C.Compute(pdu.AsSpan(0, 24)), Bytes.U32(pdu, 24));
        var h = MemoryMarshal.Read<DataPdu>(pdu);
        Assert.Equal(cid, h.CommandId);
        Assert.Equal(0u, h.DataOffset);
        Assert.Equal((uint)length, h.DataLength);
        var data = pdu.AsSpan(28, length).ToArray();
        Assert.Equal(Crc32C.Compute(data), Bytes.U32(pdu, pdu.Length - 4));
        return data;
    }

    private static (ushort Fes, uint Fei, byte[] Data) ExpectTermReq(byte[] pdu)
    {
        Assert.Equal((byte)PduType.C2HTermReq, pdu[0]);
        Assert.Equal(0, pdu[1]);
        Assert.Equal(24, pdu[2]);
        Assert.Equal(0, pdu[3]);
        Assert.Equal((uint)pdu.Length, Bytes.U32(pdu, 4));
        Assert.InRange(pdu.Length, 24, 24 + 128);
        return (Bytes.U16(pdu, 8), Bytes.U32(pdu, 10), pdu.AsSpan(24).ToArray());
    }

    /// <summary>ICReq + admin Connect from the capture: a controller exists afterwards.</summary>
    private static async Task ConnectAdminAsync(PipeHost c, PipeFixture f)
    {
        await c.SendAsync(CaptureVectors.ICReq);
        Assert.Equal(CaptureVectors.ICResp, await c.ReceivePduAsync());
        await c.SendAsync(CaptureVectors.ConnectCmd);
        var cqe = ExpectCapsuleResp(await c.ReceivePduAsync(), 0);
        Assert.Single(f.Target.Controllers);
        Assert.Equal(f.Target.Controllers.First().Cntlid, (ushort)cqe.Dword0);
    }

    // ------------------------------------------------------------------ replay of the captured host

    private static byte[] WithSqid(byte[] capsuleResp, ushort sqid)
    {
        var copy = (byte[])capsuleResp.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(copy.AsSpan(8 + 10), sqid);
        return Bytes.WithHeaderDigest(copy);
    }

    [Fact]
    public async Task Replay_of_the_linux_admin_and_io_queues()
    {
        using var f = new PipeFixture();
        var admin = new PipeHost(f.Target);
        var host = CaptureVectors.AdminReplay;

        // ICReq -> the same ICResp SPDK sent; Connect -> the same CapsuleResp (CNTLID 1, SQHD 1).
        await admin.SendAsync(host[0]);
        Assert.Equal(CaptureVectors.ICResp, await admin.ReceivePduAsync());
        await admin.SendAsync(host[1]);
        Assert.Equal(CaptureVectors.ConnectResp, await admin.ReceivePduAsync());

        // Property Get CAP.
        await admin.SendAsync(host[2]);
        var cap = ExpectCapsuleResp(await admin.ReceivePduAsync(), 1).Result;
        Assert.Equal(127ul, cap & 0xFFFF);
        Assert.Equal(1ul, (cap >> 37) & 1);
        // Property Set CC (EN=0), Get CC, Get CAP, Set CC (EN=1), Get CSTS, Get VS: byte-identical to SPDK where the
        // values are the same.
        await admin.SendAsync(host[3]);
        Assert.Equal(CaptureVectors.PropertySetCcResp, await admin.ReceivePduAsync());
        await admin.SendAsync(host[4]);
        Assert.Equal(0x00460000ul, ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x1001).Result);
        await admin.SendAsync(host[5]);
        ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x2000);
        await admin.SendAsync(host[6]);
        Assert.Equal(CaptureVectors.PropertySetCcEnableResp, await admin.ReceivePduAsync());
        await admin.SendAsync(host[7]);
        Assert.Equal(CaptureVectors.PropertyGetCstsResp, await admin.ReceivePduAsync());
        await admin.SendAsync(host[8]);
        Assert.Equal(CaptureVectors.PropertyGetVsResp, await admin.ReceivePduAsync());

        // Identify Controller: C2HData then CapsuleResp.
        await admin.SendAsync(host[9]);
        var id = ExpectC2HData(await admin.ReceivePduAsync(), 0x12, 4096);
        ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x12);
        Assert.Equal(1, Bytes.U16(id, 78)); // CNTLID
        Assert.Equal(PipeFixture.Nqn, SpecText.ReadNulTerminated(id.AsSpan(768, 256)));
        // Get Log Page 05 and 02.
        await admin.SendAsync(host[10]);
        var effects = ExpectC2HData(await admin.ReceivePduAsync(), 0x13, 4096);
        ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x13);
        Assert.Equal(1u, Bytes.U32(effects, AdminOpcode.Identify * 4));
        await admin.SendAsync(host[11]);
        ExpectC2HData(await admin.ReceivePduAsync(), 0x14, 512);
        ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x14);
        // Set Features Number of Queues (2): granted.
        await admin.SendAsync(host[12]);
        Assert.Equal(0x00010001u, ExpectCapsuleResp(await admin.ReceivePduAsync(), 0x15).Dword0);

        // The I/O queue 2 connection.
        var io = new PipeHost(f.Target);
        var ioHost = CaptureVectors.IoReplay;
        await io.SendAsync(ioHost[0]);
        Assert.Equal(CaptureVectors.IoICResp, await io.ReceivePduAsync());
        await io.SendAsync(ioHost[1]);
        // SPDK reports SQID 0 in every I/O queue completion; we report the queue the command came in on (2), as the
        // Linux target does. Everything else is identical.
        Assert.Equal(WithSqid(CaptureVectors.IoConnectResp, 2), await io.ReceivePduAsync());
        Assert.Equal(1, f.Target.Controllers.Single().IoQueueCount);
        // Read 8 blocks of a fresh namespace: zeros.
        await io.SendAsync(ioHost[2]);
        Assert.All(ExpectC2HData(await io.ReceivePduAsync(), 0x31, 4096), b => Assert.Equal(0, b));
        ExpectCapsuleResp(await io.ReceivePduAsync(), 0x31);
        // In-capsule write of LBA 0: the same CapsuleResp as SPDK (SQHD 3).
        await io.SendAsync(ioHost[3]);
        Assert.Equal(WithSqid(CaptureVectors.WriteResp, 2), await io.ReceivePduAsync());
        // Read LBA 0 back: SPDK's C2HData, except that without sqhd_disabled we send LAST without SUCCESS
        // and a CapsuleResp.
        await io.SendAsync(ioHost[4]);
        var c2h = await io.ReceivePduAsync();
        var expected = (byte[])CaptureVectors.C2HDataSuccess.Clone();
        expected[1] = PduFlags.HeaderDigest | PduFlags.DataDigest | PduFlags.LastPdu;
        Assert.Equal(Bytes.WithHeaderDigest(expected), c2h);
        Assert.Equal(4, ExpectCapsuleResp(await io.ReceivePduAsync(), 0x33).SqHead);
        // 8 KiB write through R2T / H2CData.
        await io.SendAsync(ioHost[5]);
        var r2tPdu = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.R2T, r2tPdu[0]);
        Assert.Equal(28, r2tPdu.Length);
        Assert.Equal(Crc32C.Compute(r2tPdu.AsSpan(0, 24)), Bytes.U32(r2tPdu, 24));
        var r2t = MemoryMarshal.Read<R2TPdu>(r2tPdu);
        Assert.Equal(0x35, r2t.CommandId);
        Assert.Equal(0u, r2t.Offset);
        Assert.Equal(8192u, r2t.Length);
        var h2c = (byte[])ioHost[6].Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(h2c.AsSpan(10), r2t.TransferTag); // answer with our TTAG
        await io.SendAsync(Bytes.WithHeaderDigest(h2c), chunk: 1000);
        ExpectCapsuleResp(await io.ReceivePduAsync(), 0x35);
        var stored = new byte[8192];
        f.Store.Read(0, stored);
        Assert.Equal(h2c.AsSpan(28, 8192).ToArray(), stored);

        // The host goes away: I/O queue first, then admin. Nothing is left behind.
        await io.CloseAsync();
        Assert.Equal(0, f.Target.Controllers.Single().IoQueueCount);
        await admin.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task All_host_pdus_in_one_write_are_answered_in_order()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(Bytes.Concat(CaptureVectors.AdminReplay));
        var cids = new List<ushort>();
        Assert.Equal(CaptureVectors.ICResp, await c.ReceivePduAsync());
        while (cids.Count < 12)
        {
            var pdu = await c.ReceivePduAsync();
            if (pdu[0] == (byte)PduType.CapsuleResp) cids.Add(ExpectCapsuleResp(pdu, Bytes.U16(pdu, 20)).CommandId);
            else Assert.Equal((byte)PduType.C2HData, pdu[0]);
        }
        Assert.Equal([0, 1, 0x1000, 0x1001, 0x2000, 0x2001, 0x3000, 0x3001, 0x12, 0x13, 0x14, 0x15], cids);
        await c.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task ICReq_without_digests()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(CaptureVectors.DiscoveryICReq);
        var resp = await c.ReceivePduAsync();
        Assert.Equal(128, resp.Length);
        Assert.Equal((byte)PduType.ICResp, resp[0]);
        Assert.Equal(0, resp[11]); // no digests
        Assert.Equal(128u * 1024, Bytes.U32(resp, 12));
        await c.SendAsync(CaptureVectors.DiscoveryConnect);
        var cqe = await c.ReceivePduAsync();
        Assert.Equal(24, cqe.Length);
        Assert.Equal(0, cqe[1]);
        Assert.True(f.Target.Controllers.Single().IsDiscovery);
        await c.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    // ------------------------------------------------------------------ protocol errors

    [Fact]
    public async Task Capsule_before_ICReq_is_a_pdu_sequence_error()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(CaptureVectors.DiscoveryConnect);
        var (fes, _, data) = ExpectTermReq(await c.ReceivePduAsync());
        Assert.Equal((ushort)FatalErrorStatus.PduSequenceError, fes);
        Assert.Equal(CaptureVectors.DiscoveryConnect.AsSpan(0, 72).ToArray(), data); // the offending header
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Capsule_with_digest_flags_before_ICReq_is_terminated()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(CaptureVectors.ConnectCmd);
        ExpectTermReq(await c.ReceivePduAsync());
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Second_ICReq_is_a_pdu_sequence_error()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        await c.SendAsync(CaptureVectors.ICReq);
        var (fes, _, data) = ExpectTermReq(await c.ReceivePduAsync());
        Assert.Equal((ushort)FatalErrorStatus.PduSequenceError, fes);
        Assert.Equal(CaptureVectors.ICReq, data);
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task H2CData_for_an_unknown_ttag_is_terminated()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        await c.SendAsync(CaptureVectors.H2CData); // TTAG 6: nothing awaits data
        var (fes, fei, data) = ExpectTermReq(await c.ReceivePduAsync());
        Assert.Equal((ushort)FatalErrorStatus.InvalidPduHeaderField, fes);
        Assert.Equal(10u, fei); // TTAG
        Assert.Equal(CaptureVectors.H2CData.AsSpan(0, 24).ToArray(), data);
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Header_digest_error_is_terminated()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        var bad = (byte[])CaptureVectors.PropertyGetCapCmd.Clone();
        bad[74] ^= 1;
        await c.SendAsync(bad);
        var (fes, _, _) = ExpectTermReq(await c.ReceivePduAsync());
        Assert.Equal((ushort)FatalErrorStatus.HeaderDigestError, fes);
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Oversized_capsule_is_terminated_before_its_body_arrives()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        var header = new byte[8] { 0x04, 0x03, 72, 76, 0, 0, 0, 0 };
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(4), 1u << 30);
        await c.SendAsync(header);
        var (fes, fei, _) = ExpectTermReq(await c.ReceivePduAsync());
        Assert.Equal((ushort)FatalErrorStatus.DataTransferLimitExceeded, fes);
        Assert.Equal(4u, fei);
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Data_digest_error_fails_the_command_and_keeps_the_connection()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await c.SendAsync(CaptureVectors.ICReq);
        await c.ReceivePduAsync();
        var bad = (byte[])CaptureVectors.ConnectCmd.Clone();
        bad[600] ^= 0x40;
        await c.SendAsync(bad);
        ExpectCapsuleResp(await c.ReceivePduAsync(), 0, NvmeStatus.TransientTransportError);
        Assert.Empty(f.Target.Controllers);
        // The connection is still usable: the intact Connect succeeds.
        await c.SendAsync(CaptureVectors.ConnectCmd);
        ExpectCapsuleResp(await c.ReceivePduAsync(), 0);
        Assert.Single(f.Target.Controllers);
        await c.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Stalled_half_pdu_closes_the_connection()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target, new TcpTransportOptions { PduTimeout = TimeSpan.FromMilliseconds(200) });
        await ConnectAdminAsync(c, f);
        await c.SendAsync(CaptureVectors.PropertyGetCapCmd.AsSpan(0, 40).ToArray());
        var started = DateTime.UtcNow;
        await c.ExpectClosedAsync();
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(8));
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Idle_connection_between_pdus_is_not_a_stall()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target, new TcpTransportOptions { PduTimeout = TimeSpan.FromMilliseconds(100) });
        await ConnectAdminAsync(c, f);
        await Task.Delay(400);
        Assert.False(c.Run.IsCompleted);
        await c.SendAsync(CaptureVectors.PropertyGetCapCmd);
        ExpectCapsuleResp(await c.ReceivePduAsync(), 1);
        await c.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task No_ICReq_in_time_closes_the_connection()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target, new TcpTransportOptions { ConnectTimeout = TimeSpan.FromMilliseconds(200) });
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Peer_closing_mid_pdu_ends_the_connection()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        await c.SendAsync(CaptureVectors.PropertyGetCapCmd.AsSpan(0, 30).ToArray());
        await c.CloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Controller_teardown_terminates_the_connection()
    {
        using var f = new PipeFixture();
        var c = new PipeHost(f.Target);
        await ConnectAdminAsync(c, f);
        f.Target.Controllers.Single().Destroy("test");
        await c.ExpectClosedAsync();
        Assert.Empty(f.Target.Controllers);
    }
}
