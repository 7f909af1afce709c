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

/// <summary>Data movement over in-memory pipes beyond what the capture shows: multi-R2T writes, multi-PDU reads,
/// the C2HData SUCCESS optimisation, H2CData errors, async events from another thread.</summary>
public class NvmeTcpDataPathTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);


    internal static byte[] Capsule(SubmissionQueueEntry sqe, byte[]? data = null)
    {
        bool hasData = data is { Length: > 0 };
        int plen = 72 + 4 + (hasData ? data!.Length + 4 : 0);
        var b = new byte[plen];
        b[0] = (byte)PduType.CapsuleCmd;
        b[1] = (byte)(PduFlags.HeaderDigest | (hasData ? PduFlags.DataDigest : 0));
        b[2] = 72;
        b[3] = hasData ? (byte)76 : (byte)0;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
        sqe.Write(b.AsSpan(8));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(72), Crc32C.Compute(b.AsSpan(0, 72)));
        if (hasData)
        {
            data!.CopyTo(b, 76);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(plen - 4), Crc32C.Compute(data));
        }
        return b;
    }

    internal static byte[] H2CData(ushort cid, ushort ttag, uint offset, ReadOnlySpan<byte> data, bool last)
    {
        int plen = 28 + data.Length + 4;
        var b = new byte[plen];
        b[0] = (byte)PduType.H2CData;
        b[1] = (byte)(PduFlags.HeaderDigest | PduFlags.DataDigest | (last ? PduFlags.LastPdu : 0));
        b[2] = 24;
        b[3] = 28;
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), cid);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), ttag);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), offset);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), Crc32C.Compute(b.AsSpan(0, 24)));
        data.CopyTo(b.AsSpan(28));
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(plen - 4), Crc32C.Compute(data));
        return b;
    }

    internal static SubmissionQueueEntry Rw(byte opcode, ushort cid, ulong slba, uint blocks)
    {
        var s = new SubmissionQueueEntry { Opcode = opcode, Flags = 0x40, CommandId = cid, Nsid = 1 };
        s.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        s.Sgl.Length = blocks * 512;
        s.Cdw10 = (uint)slba;
        s.Cdw12 = blocks - 1;
        return s;
    }

    internal static CompletionQueueEntry Resp(byte[] pdu, ushort cid, NvmeStatus status = NvmeStatus.Success)
    {
        Assert.Equal((byte)PduType.CapsuleResp, pdu[0]);
        var cqe = MemoryMarshal.Read<CompletionQueueEntry>(pdu.AsSpan(8));
        Assert.Equal(cid, cqe.CommandId);
        Assert.Equal(status, cqe.Status);
        return cqe;
    }

    internal static byte[] Pattern(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }


    /// <summary>Admin queue (connected, enabled) and I/O queue 1 with the given Connect attributes, as the captured
    /// host or as <paramref name="hostNqn"/>.</summary>
    internal static async Task<(PipeHost Admin, PipeHost Io)> ConnectAsync(PipeFixture f, byte cattr = 0, string? hostNqn = null,
        TcpTransportOptions? options = null, ushort sqsize = 127, TcpTransportMetrics? metrics = null)
    {
        var data = CaptureVectors.ConnectCmd.AsSpan(76, 1024).ToArray();
        if (hostNqn != null)
        {
            data.AsSpan(512, 256).Clear();
            System.Text.Encoding.ASCII.GetBytes(hostNqn).CopyTo(data, 512);
        }
        var connect = MemoryMarshal.Read<SubmissionQueueEntry>(CaptureVectors.ConnectCmd.AsSpan(8));
        var admin = new PipeHost(f.Target, options, metrics);
        await admin.SendAsync(CaptureVectors.ICReq);
        await admin.ReceivePduAsync();
        await admin.SendAsync(hostNqn is null ? CaptureVectors.ConnectCmd : Capsule(connect, data));
        ushort cntlid = (ushort)Resp(await admin.ReceivePduAsync(), 0).Dword0;
        await admin.SendAsync(CaptureVectors.AdminReplay[6]); // Property Set CC.EN = 1
        Resp(await admin.ReceivePduAsync(), 0x2001);

        var io = new PipeHost(f.Target, options, metrics);
        await io.SendAsync(CaptureVectors.ICReq);
        await io.ReceivePduAsync();
        var sqe = connect;
        sqe.Cdw10 = 1u << 16;                    // QID 1
        sqe.Cdw11 = sqsize | ((uint)cattr << 16); // SQSIZE, CATTR
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(16), cntlid);
        await io.SendAsync(Capsule(sqe, data));
        Resp(await io.ReceivePduAsync(), 0);
        return (admin, io);
    }

    internal static async Task CloseAsync(PipeFixture f, params PipeHost[] hosts)
    {
        foreach (var h in hosts.Reverse()) await h.DrainAndCloseAsync();
        Assert.Empty(f.Target.Controllers);
    }

    [Fact]
    public async Task Write_larger_than_maxh2cdata_takes_several_r2ts_and_h2cdata_pdus()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        const int Size = 384 * 1024; // MAXH2CDATA is 128 KiB: three R2Ts
        var data = Pattern(Size, 1);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, cid, 100, Size / 512)));
        for (int window = 0; window < 3; window++)
        {
            var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
            Assert.Equal(PduType.R2T, r2t.Header.Type);
            Assert.Equal(cid, r2t.CommandId);
            Assert.Equal((uint)(window * 128 * 1024), r2t.Offset);
            Assert.Equal(128u * 1024, r2t.Length);
            // Answer each window with two H2CData PDUs; only the second is LAST.
            uint o = r2t.Offset;
            await io.SendAsync(H2CData(cid, r2t.TransferTag, o, data.AsSpan((int)o, 50000), last: false));
            await io.SendAsync(H2CData(cid, r2t.TransferTag, o + 50000, data.AsSpan((int)o + 50000, 128 * 1024 - 50000), last: true));
        }
        Resp(await io.ReceivePduAsync(), cid);
        var stored = new byte[Size];
        f.Store.Read(100 * 512, stored);
        Assert.Equal(data, stored);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Read_larger_than_maxc2hdata_comes_in_several_pdus_then_a_capsule_resp()
    {
        using var f = new PipeFixture();
        var data = Pattern(300 * 1024, 2);
        f.Store.Write(0, data);
        var (admin, io) = await ConnectAsync(f);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Read, cid, 0, 600)));
        var received = new List<byte>();
        uint[] offsets = [0, 128 * 1024, 256 * 1024];
        for (int i = 0; i < 3; i++)
        {
            var pdu = await io.ReceivePduAsync();
            var h = MemoryMarshal.Read<DataPdu>(pdu);
            Assert.Equal(PduType.C2HData, h.Header.Type);
            Assert.Equal(cid, h.CommandId);
            Assert.Equal(offsets[i], h.DataOffset);
            bool last = i == 2;
            Assert.Equal(last, (h.Header.Flags & PduFlags.LastPdu) != 0);
            Assert.Equal(0, h.Header.Flags & PduFlags.Success);
            var chunk = pdu.AsSpan(28, (int)h.DataLength);
            Assert.Equal(Crc32C.Compute(chunk), Bytes.U32(pdu, pdu.Length - 4));
            received.AddRange(chunk.ToArray());
        }
        Assert.Equal(data, received.ToArray());
        Resp(await io.ReceivePduAsync(), cid);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Sq_flow_control_disabled_read_ends_with_c2hdata_success_and_no_capsule_resp()
    {
        using var f = new PipeFixture();
        var data = Pattern(4096, 3);
        f.Store.Write(4096, data);
        var (admin, io) = await ConnectAsync(f, cattr: ConnectCommand.CattrDisableSqFlowControl);
        ushort read = io.NextCid(), flush = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Read, read, 8, 8)));
        var pdu = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HData, pdu[0]);
        Assert.Equal(PduFlags.HeaderDigest | PduFlags.DataDigest | PduFlags.LastPdu | PduFlags.Success, pdu[1]);
        Assert.Equal(data, pdu.AsSpan(28, 4096).ToArray());
        // The next thing on the wire answers the next command: no CapsuleResp for the read.
        var f1 = new SubmissionQueueEntry { Opcode = IoOpcode.Flush, Flags = 0x40, CommandId = flush, Nsid = 1 };
        f1.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        await io.SendAsync(Capsule(f1));
        Resp(await io.ReceivePduAsync(), flush);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Failed_read_gets_a_capsule_resp_and_no_data()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f, cattr: ConnectCommand.CattrDisableSqFlowControl);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Read, cid, (64 << 20) / 512, 1)));
        Resp(await io.ReceivePduAsync(), cid, NvmeStatus.LbaOutOfRange);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task H2CData_at_the_wrong_offset_is_terminated_and_nothing_is_written()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, cid, 0, 8)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
        await io.SendAsync(H2CData(cid, r2t.TransferTag, 512, Pattern(512, 4), last: false));
        var term = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HTermReq, term[0]);
        Assert.Equal((ushort)FatalErrorStatus.DataTransferOutOfRange, Bytes.U16(term, 8));
        Assert.Equal(12u, Bytes.U32(term, 10));
        Assert.Null(await io.ReceiveAsync());
        await io.Run.WaitAsync(Timeout);
        Assert.Equal(0, f.Store.AllocatedBytes);
        Assert.Equal(0, f.Subsystem.GetNamespace(1)!.InFlight); // the never-executed write released its reference
        await CloseAsync(f, admin);
    }

    [Fact]
    public async Task H2CData_beyond_the_r2t_window_is_terminated()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, cid, 0, 2)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
        await io.SendAsync(H2CData(cid, r2t.TransferTag, 0, Pattern(2048, 5), last: true));
        var term = await io.ReceivePduAsync();
        Assert.Equal((byte)PduType.C2HTermReq, term[0]);
        Assert.Equal((ushort)FatalErrorStatus.DataTransferOutOfRange, Bytes.U16(term, 8));
        await io.Run.WaitAsync(Timeout);
        Assert.Equal(0, f.Subsystem.GetNamespace(1)!.InFlight);
        await CloseAsync(f, admin);
    }

    [Fact]
    public async Task H2CData_with_a_data_digest_error_fails_the_write_only()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        ushort cid = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Write, cid, 0, 1)));
        var r2t = MemoryMarshal.Read<R2TPdu>(await io.ReceivePduAsync());
        var pdu = H2CData(cid, r2t.TransferTag, 0, Pattern(512, 6), last: true);
        pdu[100] ^= 1;
        await io.SendAsync(pdu);
        Resp(await io.ReceivePduAsync(), cid, NvmeStatus.TransientTransportError);
        Assert.Equal(0, f.Store.AllocatedBytes);
        // The connection carries on.
        ushort next = io.NextCid();
        await io.SendAsync(Capsule(Rw(IoOpcode.Read, next, 0, 1)));
        Assert.Equal((byte)PduType.C2HData, (await io.ReceivePduAsync())[0]);
        Resp(await io.ReceivePduAsync(), next);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Namespace_attach_completes_a_parked_aer_over_the_wire()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        // Set Features Async Event Configuration (bit 8), then an AER.
        var aec = new SubmissionQueueEntry { Opcode = AdminOpcode.SetFeatures, Flags = 0x40, CommandId = 0x70, Cdw10 = FeatureId.AsyncEventConfiguration, Cdw11 = 0x100 };
        aec.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        await admin.SendAsync(Capsule(aec));
        Resp(await admin.ReceivePduAsync(), 0x70);
        var aer = new SubmissionQueueEntry { Opcode = AdminOpcode.AsyncEventRequest, Flags = 0x40, CommandId = 0x1F };
        aer.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        await admin.SendAsync(Capsule(aer));

        await Task.Run(() => f.Subsystem.AttachNamespace(new Namespace(2, new MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(PipeFixture.Nqn, 2))));
        var cqe = Resp(await admin.ReceivePduAsync(), 0x1F);
        Assert.Equal(0x00040002u, cqe.Dword0);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Io_queue_disconnect_answers_then_closes()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        var d = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Flags = 0x40, CommandId = 0x99, Nsid = FabricsType.Disconnect };
        d.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        await io.SendAsync(Capsule(d));
        Resp(await io.ReceivePduAsync(), 0x99);
        Assert.Null(await io.ReceiveAsync());
        await io.Run.WaitAsync(Timeout);
        var ctrl = f.Target.Controllers.Single();
        Assert.Equal(0, ctrl.IoQueueCount);
        Assert.False(ctrl.IsDestroyed);
        await CloseAsync(f, admin);
    }

    [Fact]
    public async Task In_capsule_data_not_matching_the_sgl_fails_the_command()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        ushort cid = io.NextCid();
        var w = Rw(IoOpcode.Write, cid, 0, 1);
        w.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        await io.SendAsync(Capsule(w, Pattern(1024, 7))); // SGL says 512
        Resp(await io.ReceivePduAsync(), cid, NvmeStatus.DataSglLengthInvalid);
        Assert.Equal(0, f.Subsystem.GetNamespace(1)!.InFlight);
        Assert.Equal(0, f.Store.AllocatedBytes);
        await CloseAsync(f, admin, io);
    }

    [Fact]
    public async Task Host_termreq_closes_the_connection_silently()
    {
        using var f = new PipeFixture();
        var (admin, io) = await ConnectAsync(f);
        var term = new byte[24];
        term[0] = (byte)PduType.H2CTermReq;
        term[2] = 24;
        term[4] = 24;
        term[8] = (byte)FatalErrorStatus.HeaderDigestError;
        await admin.SendAsync(term);
        Assert.Null(await admin.ReceiveAsync());
        await admin.Run.WaitAsync(Timeout);
        // The admin queue took the controller and its I/O queue down with it.
        Assert.Null(await io.ReceiveAsync());
        await io.Run.WaitAsync(Timeout);
        Assert.Empty(f.Target.Controllers);
    }
}
