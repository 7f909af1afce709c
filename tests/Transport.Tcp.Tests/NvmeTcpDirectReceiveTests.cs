using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core;
using Nvme.Core.Spec;
using Transport.Tcp.Net;
using Transport.Tcp.Pdu;

namespace Transport.Tcp.Tests;

/// <summary>
/// The direct receive of write data (NvmeTcpQueue.DirectReceive) over real loopback sockets, in both socket modes:
/// an H2CData whose header arrives before most of its payload has the rest received straight into the command's
/// buffer. The host here sends each H2CData in pieces with pauses, so the target sees the header first.
/// </summary>
public sealed class NvmeTcpDirectReceiveTests : IDisposable
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly LoopbackTarget _t = new();

    public void Dispose() => _t.Dispose();

    private Task<(SocketHost Admin, SocketHost Io)> ConnectAsync(bool poll, bool digests, bool direct = true) =>
        _t.ConnectAsync(poll, digests, direct);

    private long DirectReceives => _t.Server!.Queues.Sum(q => q.DirectReceives);

    [Theory]
    [InlineData(false, false)]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(true, true)]
    public async Task A_write_sent_in_pieces_lands_whole_through_the_direct_receive(bool poll, bool digests)
    {
        var (_, io) = await ConnectAsync(poll, digests);
        const int Size = 384 * 1024; // three R2Ts of 128 KiB
        var data = NvmeTcpDataPathTests.Pattern(Size, 21);
        await io.WriteInPiecesAsync(cid: 0x50, slba: 8, data);
        Assert.True(DirectReceives >= 3, $"{DirectReceives} H2CData PDUs received directly, expected one per R2T");
        Assert.Equal(data, ReadStore(8 * 512, Size));

        // The connection goes on as before: a second write, then a read of both.
        var more = NvmeTcpDataPathTests.Pattern(Size, 22);
        await io.WriteInPiecesAsync(cid: 0x51, slba: 8 + Size / 512, more);
        Assert.Equal(more, ReadStore(8 * 512 + Size, Size));
        Assert.True(DirectReceives >= 6);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_wrong_data_digest_on_a_direct_payload_fails_only_that_write(bool poll)
    {
        var (_, io) = await ConnectAsync(poll, digests: true);
        var data = NvmeTcpDataPathTests.Pattern(128 * 1024, 23);
        await io.WriteInPiecesAsync(cid: 0x52, slba: 0, data, corruptDigest: true, expect: NvmeStatus.TransientTransportError);
        Assert.True(DirectReceives >= 1);
        Assert.Equal(new byte[data.Length], ReadStore(0, data.Length)); // nothing of it reached the namespace
        await io.WriteInPiecesAsync(cid: 0x53, slba: 0, data);
        Assert.Equal(data, ReadStore(0, data.Length));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_host_that_closes_in_the_middle_of_a_direct_payload_ends_the_connection_and_writes_nothing(bool poll)
    {
        var (admin, io) = await ConnectAsync(poll, digests: false);
        var queue = _t.Server!.Queues.Single(q => q.Core.QueueId == 1);
        var data = NvmeTcpDataPathTests.Pattern(128 * 1024, 24);
        var r2t = await io.StartWriteAsync(0x54, 0, data.Length);
        var pdu = io.H2CData(0x54, r2t.TransferTag, 0, data, last: true);
        await io.SendAsync(pdu.AsMemory(0, 4096));
        Assert.True(await Poll.UntilAsync(() => DirectReceives == 1, Wait), "the payload's rest was not received directly");
        await io.SendAsync(pdu.AsMemory(4096, 30000));
        io.Socket.Shutdown(SocketShutdown.Send);
        Assert.True(await Poll.UntilAsync(() => queue.ClosedBecause != null, Wait), "the connection did not close");
        Assert.Equal(CloseReason.PeerClosedMidPdu, queue.ClosedBecause);
        Assert.Equal(new byte[data.Length], ReadStore(0, data.Length));
        // The admin queue still answers (the controller is destroyed when it closes, not before).
        admin.Socket.Shutdown(SocketShutdown.Send);
        Assert.True(await Poll.UntilAsync(() => _t.Server!.ConnectionCount == 0 && !_t.Fixture.Target.Controllers.Any(), Wait));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Switched_off_every_payload_goes_through_the_pipe(bool poll)
    {
        var (_, io) = await ConnectAsync(poll, digests: true, direct: false);
        var data = NvmeTcpDataPathTests.Pattern(256 * 1024, 25);
        await io.WriteInPiecesAsync(cid: 0x55, slba: 0, data);
        Assert.Equal(0, DirectReceives);
        Assert.Equal(data, ReadStore(0, data.Length));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_payload_that_arrives_whole_is_not_received_directly(bool poll)
    {
        var (_, io) = await ConnectAsync(poll, digests: true);
        var data = NvmeTcpDataPathTests.Pattern(16 * 1024, 26);
        var r2t = await io.StartWriteAsync(0x56, 0, data.Length);
        await io.SendAsync(io.H2CData(0x56, r2t.TransferTag, 0, data, last: true)); // one send: under MinDirectBytes is left
        NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), 0x56);
        Assert.Equal(0, DirectReceives);
        Assert.Equal(data, ReadStore(0, data.Length));
    }

    [Fact]
    public async Task Polling_while_write_data_is_owed_the_pipe_takes_little_more_than_the_header()
    {
        var (_, io) = await ConnectAsync(poll: true, digests: true);
        var queue = _t.Server!.Queues.Single(q => q.Core.QueueId == 1);
        var data = NvmeTcpDataPathTests.Pattern(128 * 1024, 27);
        var r2t = await io.StartWriteAsync(0x57, 0, data.Length);
        await io.SendAsync(io.H2CData(0x57, r2t.TransferTag, 0, data, last: true)); // all at once
        NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), 0x57);
        Assert.Equal(data, ReadStore(0, data.Length));
        // At most ReceiveLimitAwaitingData bytes (header included) came through the pipe; the rest directly.
        Assert.InRange(queue.DirectBytes, data.Length - NvmeTcpQueue.ReceiveLimitAwaitingData + 28, data.Length);

        // No write data owed: a burst of small reads is taken in large receives as before (and answered).
        for (ushort cid = 0x60; cid < 0x70; cid++) await io.SendAsync(io.Capsule(NvmeTcpDataPathTests.Rw(0x02, cid, 0, 8)));
        for (int i = 0; i < 16; i++)
        {
            var pdu = await io.ReceivePduAsync();
            if (pdu[0] == (byte)PduType.C2HData) pdu = await io.ReceivePduAsync();
            Assert.Equal((byte)PduType.CapsuleResp, pdu[0]);
        }
    }

    private byte[] ReadStore(long offset, int length)
    {
        var b = new byte[length];
        _t.Fixture.Store.Read(offset, b);
        return b;
    }

    /// <summary>One host connection over a loopback socket, with or without header and data digests.</summary>
    internal sealed class SocketHost : IDisposable
    {
        private SocketHost(Socket socket, bool digests) => (Socket, Digests) = (socket, digests);

        public Socket Socket { get; }
        public bool Digests { get; }
        public void Dispose() => Socket.Dispose();

        /// <summary>Admin queue (Connect, CC.EN = 1) and I/O queue 1 of the fixture's subsystem.</summary>
        public static async Task<(SocketHost Admin, SocketHost Io)> ConnectAsync(IPEndPoint ep, bool digests)
        {
            var connectData = CaptureVectors.ConnectCmd.AsSpan(76, 1024).ToArray();
            var connect = MemoryMarshal.Read<SubmissionQueueEntry>(CaptureVectors.ConnectCmd.AsSpan(8));
            var admin = await OpenAsync(ep, digests);
            await admin.SendAsync(admin.Capsule(connect, connectData));
            ushort cntlid = (ushort)NvmeTcpDataPathTests.Resp(await admin.ReceivePduAsync(), connect.CommandId).Dword0;
            var ccEnable = MemoryMarshal.Read<SubmissionQueueEntry>(CaptureVectors.AdminReplay[6].AsSpan(8));
            await admin.SendAsync(admin.Capsule(ccEnable));
            NvmeTcpDataPathTests.Resp(await admin.ReceivePduAsync(), ccEnable.CommandId);

            var io = await OpenAsync(ep, digests);
            var sqe = connect;
            sqe.Cdw10 = 1u << 16; // QID 1
            sqe.Cdw11 = 127;      // SQSIZE
            BinaryPrimitives.WriteUInt16LittleEndian(connectData.AsSpan(16), cntlid);
            await io.SendAsync(io.Capsule(sqe, connectData));
            NvmeTcpDataPathTests.Resp(await io.ReceivePduAsync(), connect.CommandId);
            return (admin, io);
        }

        private static async Task<SocketHost> OpenAsync(IPEndPoint ep, bool digests)
        {
            var s = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await s.ConnectAsync(ep);
            var host = new SocketHost(s, digests);
            var ic = new byte[128];
            ic[0] = (byte)PduType.ICReq;
            ic[2] = 128;
            BinaryPrimitives.WriteUInt32LittleEndian(ic.AsSpan(4), 128);
            ic[11] = (byte)(digests ? 3 : 0);
            BinaryPrimitives.WriteUInt32LittleEndian(ic.AsSpan(12), 15); // MAXR2T
            await host.SendAsync(ic);
            var resp = await host.ReceivePduAsync();
            Assert.Equal((byte)PduType.ICResp, resp[0]);
            Assert.Equal(digests ? 3 : 0, resp[11]);
            return host;
        }

        public byte[] Capsule(SubmissionQueueEntry sqe, byte[]? data = null)
        {
            int hd = Digests ? 4 : 0, dd = Digests && data != null ? 4 : 0;
            int plen = 72 + hd + (data?.Length ?? 0) + dd;
            var b = new byte[plen];
            b[0] = (byte)PduType.CapsuleCmd;
            b[1] = (byte)((Digests ? PduFlags.HeaderDigest : 0) | (dd != 0 ? PduFlags.DataDigest : 0));
            b[2] = 72;
            b[3] = data != null ? (byte)(72 + hd) : (byte)0;
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
            if (data != null)
            {
                sqe.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
                sqe.Sgl.Address = 0;
                sqe.Sgl.Length = (uint)data.Length;
            }
            sqe.Write(b.AsSpan(8));
            if (Digests) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(72), Crc32C.Compute(b.AsSpan(0, 72)));
            if (data != null)
            {
                data.CopyTo(b, 72 + hd);
                if (dd != 0) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(plen - 4), Crc32C.Compute(data));
            }
            return b;
        }

        public byte[] H2CData(ushort cid, ushort ttag, uint offset, ReadOnlySpan<byte> data, bool last, bool corruptDigest = false)
        {
            int hd = Digests ? 4 : 0, dd = Digests ? 4 : 0;
            int plen = 24 + hd + data.Length + dd;
            var b = new byte[plen];
            b[0] = (byte)PduType.H2CData;
            b[1] = (byte)((Digests ? PduFlags.HeaderDigest | PduFlags.DataDigest : 0) | (last ? PduFlags.LastPdu : 0));
            b[2] = 24;
            b[3] = (byte)(24 + hd);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(8), cid);
            BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(10), ttag);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(12), offset);
            BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(16), (uint)data.Length);
            if (Digests) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(24), Crc32C.Compute(b.AsSpan(0, 24)));
            data.CopyTo(b.AsSpan(24 + hd));
            if (Digests) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(plen - 4), Crc32C.Compute(data) ^ (corruptDigest ? 1u : 0u));
            return b;
        }

        /// <summary>Sends a write command (data by R2T) and returns the first R2T.</summary>
        public async Task<R2TPdu> StartWriteAsync(ushort cid, ulong slba, int length)
        {
            await SendAsync(Capsule(NvmeTcpDataPathTests.Rw(0x01, cid, slba, (uint)(length / 512))));
            return ReadR2T(await ReceivePduAsync());
        }

        private static R2TPdu ReadR2T(byte[] pdu)
        {
            var r2t = MemoryMarshal.Read<R2TPdu>(pdu);
            Assert.Equal(PduType.R2T, r2t.Header.Type);
            return r2t;
        }

        /// <summary>A write whose every H2CData goes out as its header and 1000 bytes, a pause (the target handles
        /// what it has), then the rest in 16 KiB pieces with short pauses.</summary>
        public async Task WriteInPiecesAsync(ushort cid, ulong slba, byte[] data, bool corruptDigest = false, NvmeStatus expect = NvmeStatus.Success)
        {
            var r2t = await StartWriteAsync(cid, slba, data.Length);
            while (true)
            {
                Assert.Equal(cid, r2t.CommandId);
                var pdu = H2CData(cid, r2t.TransferTag, r2t.Offset, data.AsSpan((int)r2t.Offset, (int)r2t.Length),
                    last: r2t.Offset + r2t.Length == data.Length, corruptDigest);
                int first = Math.Min(pdu.Length, 24 + (Digests ? 4 : 0) + 1000);
                await SendAsync(pdu.AsMemory(0, first));
                await Task.Delay(30);
                for (int o = first; o < pdu.Length; o += 16 * 1024)
                {
                    await SendAsync(pdu.AsMemory(o, Math.Min(16 * 1024, pdu.Length - o)));
                    await Task.Delay(2);
                }
                var next = await ReceivePduAsync();
                if (next[0] == (byte)PduType.CapsuleResp)
                {
                    NvmeTcpDataPathTests.Resp(next, cid, expect);
                    return;
                }
                r2t = ReadR2T(next);
            }
        }

        public async Task SendAsync(ReadOnlyMemory<byte> bytes)
        {
            while (!bytes.IsEmpty)
            {
                int n = await Socket.SendAsync(bytes);
                bytes = bytes[n..];
            }
        }

        public async Task<byte[]> ReceivePduAsync()
        {
            var ch = await ReceiveExactlyAsync(8);
            int plen = (int)BinaryPrimitives.ReadUInt32LittleEndian(ch.AsSpan(4));
            var pdu = new byte[plen];
            ch.CopyTo(pdu, 0);
            (await ReceiveExactlyAsync(plen - 8)).CopyTo(pdu, 8);
            return pdu;
        }

        private async Task<byte[]> ReceiveExactlyAsync(int n)
        {
            var buf = new byte[n];
            using var cts = new CancellationTokenSource(Wait);
            for (int got = 0; got < n;)
            {
                int r = await Socket.ReceiveAsync(buf.AsMemory(got), cts.Token);
                if (r == 0) throw new IOException($"closed after {got} of {n} bytes");
                got += r;
            }
            return buf;
        }
    }
}

/// <summary>The fixture's target behind a real loopback listener (event-driven or one polling reactor), and the host
/// connections a test opened through it: an admin and an I/O queue, both kept open (and referenced) until the test
/// ends, since the I/O queue ends with its controller.</summary>
internal sealed class LoopbackTarget : IDisposable
{
    private readonly List<NvmeTcpDirectReceiveTests.SocketHost> _hosts = [];

    public PipeFixture Fixture { get; } = new();
    public NvmeTcpServer? Server { get; private set; }

    public async Task<(NvmeTcpDirectReceiveTests.SocketHost Admin, NvmeTcpDirectReceiveTests.SocketHost Io)> ConnectAsync(bool poll, bool digests, bool direct = true)
    {
        var options = new TcpTransportOptions
        {
            DirectDataReceive = direct,
            Polling = poll ? new PollingOptions { Reactors = 1, IdleTime = TimeSpan.FromMilliseconds(1) } : null,
        };
        Server = new NvmeTcpServer(Fixture.Target, options, NullLoggerFactory.Instance);
        var hosts = await NvmeTcpDirectReceiveTests.SocketHost.ConnectAsync(Server.Listen(new IPEndPoint(IPAddress.Loopback, 0)), digests);
        _hosts.Add(hosts.Admin);
        _hosts.Add(hosts.Io);
        return hosts;
    }

    public void Dispose()
    {
        foreach (var h in _hosts) h.Dispose();
        Server?.DisposeAsync().AsTask().Wait(TimeSpan.FromSeconds(10));
        Fixture.Dispose();
    }
}
