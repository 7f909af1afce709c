using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Transport.Tcp;
using Transport.Tcp.Pdu;

namespace Bench.LoadGen;

/// <summary>
/// A trivial NVMe/TCP "target" that answers everything at once without storage: ICResp, success for every
/// fabrics command (CNTLID 1, CSTS.RDY 1), C2HData of zeros + CapsuleResp for reads, R2T then CapsuleResp for
/// writes above the in-capsule size. Measures what the generator itself can drive.
/// </summary>
internal sealed class Sink
{
    private readonly Socket _listener;
    private readonly byte[] _zeros = new byte[1 << 20];
    private readonly Dictionary<int, uint> _zeroCrc = [];

    public Sink(IPEndPoint ep)
    {
        _listener = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        _listener.Bind(ep);
        _listener.Listen(64);
        foreach (int n in new[] { 512, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288, 1 << 20 }) _zeroCrc[n] = Crc32C.Compute(_zeros.AsSpan(0, n));
    }

    public IPEndPoint Endpoint => (IPEndPoint)_listener.LocalEndPoint!;

    public async Task RunAsync()
    {
        while (true)
        {
            Socket s;
            try { s = await _listener.AcceptAsync().ConfigureAwait(false); }
            catch (ObjectDisposedException) { return; }
            s.NoDelay = true;
            _ = Task.Run(() => ServeAsync(s));
        }
    }

    public void Stop() => _listener.Dispose();

    private async Task ServeAsync(Socket s)
    {
        var recv = new byte[4 << 20];
        var send = new byte[4 << 20];
        int start = 0, end = 0;
        bool hd = false, dd = false;
        var w = new SpanWriter(send);
        try
        {
            while (true)
            {
                if (end == recv.Length) { Buffer.BlockCopy(recv, start, recv, 0, end - start); end -= start; start = 0; }
                int n = await s.ReceiveAsync(recv.AsMemory(end), SocketFlags.None).ConfigureAwait(false);
                if (n == 0) return;
                end += n;
                int len = 0;
                while (end - start >= 8)
                {
                    int plen = (int)BinaryPrimitives.ReadUInt32LittleEndian(recv.AsSpan(start + 4));
                    if (end - start < plen)
                    {
                        if (start + plen > recv.Length) { Buffer.BlockCopy(recv, start, recv, 0, end - start); end -= start; start = 0; }
                        break;
                    }
                    var pdu = recv.AsSpan(start, plen);
                    start += plen;
                    if (len > send.Length - (1 << 19) - 256)
                    {
                        await SendAllAsync(s, send, len).ConfigureAwait(false);
                        len = 0;
                        pdu = recv.AsSpan(start - plen, plen);
                    }
                    switch ((PduType)pdu[0])
                    {
                        case PduType.ICReq:
                            {
                                var ic = MemoryMarshal.Read<InitializeConnectionPdu>(pdu);
                                hd = (ic.Digest & 1) != 0;
                                dd = (ic.Digest & 2) != 0;
                                w.Position = len;
                                PduWriter.WriteICResp(w, (byte)(ic.Digest & 3), 131072);
                                len = w.Position;
                                break;
                            }
                        case PduType.CapsuleCmd:
                            {
                                var sqe = MemoryMarshal.Read<SubmissionQueueEntry>(pdu[8..]);
                                var cqe = new CompletionQueueEntry { CommandId = sqe.CommandId, SqId = 1, Status = NvmeStatus.Success };
                                if (sqe.Opcode == AdminOpcode.Fabrics) cqe.Result = sqe.FabricsType == FabricsType.PropertyGet ? 1u : 1u; // CNTLID 1 / CSTS.RDY
                                int length = (int)sqe.Sgl.Length;
                                w.Position = len;
                                var holder = w;
                                if (sqe.Opcode == IoOpcode.Read && length > 0)
                                {
                                    WriteC2H(holder, sqe.CommandId, length, hd, dd);
                                    PduWriter.WriteCapsuleResp(holder, cqe, hd);
                                }
                                else if (sqe.Opcode == IoOpcode.Write && sqe.Sgl.Identifier == SglDescriptor.TransportDataBlock)
                                    PduWriter.WriteR2T(holder, sqe.CommandId, sqe.CommandId, 0, (uint)length, hd);
                                else PduWriter.WriteCapsuleResp(holder, cqe, hd);
                                len = w.Position;
                                break;
                            }
                        case PduType.H2CData:
                            {
                                var h = MemoryMarshal.Read<DataPdu>(pdu);
                                if ((h.Header.Flags & PduFlags.LastPdu) != 0)
                                {
                                    var cqe = new CompletionQueueEntry { CommandId = h.CommandId, SqId = 1, Status = NvmeStatus.Success };
                                    w.Position = len;
                                    PduWriter.WriteCapsuleResp(w, cqe, hd);
                                    len = w.Position;
                                }
                                break;
                            }
                        default:
                            return;
                    }
                }
                if (start == end) start = end = 0;
                if (len > 0) await SendAllAsync(s, send, len).ConfigureAwait(false);
            }
        }
        catch (SocketException) { }
        finally { s.Dispose(); }
    }

    private void WriteC2H(SpanWriter w, ushort cid, int length, bool hd, bool dd)
    {
        // Precomputed data digest of zeros (the sink does not pay for CRC; the generator still checks it).
        var data = _zeros.AsSpan(0, length);
        PduWriter.WriteC2HData(w, cid, 0, data, true, false, hd, false);
        if (dd)
        {
            // Patch the DDGST flag and PLEN, then append the digest.
            var pdu = w.Written(DataPdu.Size + (hd ? 4 : 0) + length);
            pdu[1] |= PduFlags.DataDigest;
            BinaryPrimitives.WriteUInt32LittleEndian(pdu[4..], (uint)(pdu.Length + 4));
            if (hd) BinaryPrimitives.WriteUInt32LittleEndian(pdu[DataPdu.Size..], Crc32C.Compute(pdu[..DataPdu.Size]));
            var d = w.GetSpan(4);
            BinaryPrimitives.WriteUInt32LittleEndian(d, _zeroCrc.TryGetValue(length, out uint c) ? c : Crc32C.Compute(data));
            w.Advance(4);
        }
    }

    private static async Task SendAllAsync(Socket s, byte[] buffer, int len)
    {
        int sent = 0;
        while (sent < len) sent += await s.SendAsync(buffer.AsMemory(sent, len - sent), SocketFlags.None).ConfigureAwait(false);
    }

    /// <summary>An IBufferWriter over a fixed array (PduWriter targets IBufferWriter).</summary>
    private sealed class SpanWriter : System.Buffers.IBufferWriter<byte>
    {
        private readonly byte[] _b;
        public int Position;
        public SpanWriter(byte[] b) => _b = b;
        public void Advance(int count) => Position += count;
        public Memory<byte> GetMemory(int sizeHint = 0) => _b.AsMemory(Position);
        public Span<byte> GetSpan(int sizeHint = 0) => _b.AsSpan(Position);
        public Span<byte> Written(int lastBytes) => _b.AsSpan(Position - lastBytes, lastBytes);
    }
}
