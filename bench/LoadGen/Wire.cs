using System.Buffers.Binary;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Nvme.Core.Spec;
using Transport.Tcp;
using Transport.Tcp.Pdu;

namespace Bench.LoadGen;

/// <summary>Minimal host-side connection setup (blocking, before the measurement): ICReq/ICResp, Fabrics
/// Connect, Property Set CC.EN. Adapted from tests/integration/Initiator, reduced to what the generator needs.</summary>
internal static class Wire
{
    public const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:5b0c6c1e-1f1d-4a55-9d38-6a8f1f0b0001";
    public static readonly Guid HostId = new("5b0c6c1e-1f1d-4a55-9d38-6a8f1f0b0001");
    public const uint CcEnable = 1u | (6u << 16) | (4u << 20);

    public static Socket Open(System.Net.IPEndPoint ep)
    {
        var s = new Socket(ep.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        s.Connect(ep);
        return s;
    }

    /// <summary>ICReq/ICResp; returns MAXH2CDATA.</summary>
    public static int Initialize(Socket s, bool hdgst, bool ddgst)
    {
        var ic = new InitializeConnectionPdu
        {
            Header = new CommonHeader { Type = PduType.ICReq, HeaderLength = InitializeConnectionPdu.Size, PduLength = InitializeConnectionPdu.Size },
            Digest = (byte)((hdgst ? 1 : 0) | (ddgst ? 2 : 0)),
        };
        var b = new byte[InitializeConnectionPdu.Size];
        MemoryMarshal.Write(b, in ic);
        s.Send(b);
        var resp = ReadPdu(s);
        if ((PduType)resp[0] != PduType.ICResp) throw new IOException($"expected ICResp, got PDU type {resp[0]}");
        return (int)MemoryMarshal.Read<InitializeConnectionPdu>(resp).Limit;
    }

    public static byte[] ReadPdu(Socket s)
    {
        var ch = new byte[8];
        ReadExactly(s, ch);
        int plen = (int)BinaryPrimitives.ReadUInt32LittleEndian(ch.AsSpan(4));
        var pdu = new byte[plen];
        ch.CopyTo(pdu, 0);
        ReadExactly(s, pdu.AsSpan(8));
        return pdu;
    }

    private static void ReadExactly(Socket s, Span<byte> b)
    {
        while (!b.IsEmpty)
        {
            int n = s.Receive(b);
            if (n == 0) throw new IOException("target closed the connection during setup");
            b = b[n..];
        }
    }

    /// <summary>Builds a CapsuleCmd (header, HDGST, in-capsule data, DDGST) into <paramref name="dest"/>; returns its length.</summary>
    public static int WriteCapsule(Span<byte> dest, in SubmissionQueueEntry sqe, ReadOnlySpan<byte> data, bool hdgst, bool ddgst)
    {
        int hd = hdgst ? 4 : 0, dd = ddgst && !data.IsEmpty ? 4 : 0;
        int plen = CapsuleCommandPdu.Size + hd + data.Length + dd;
        var p = new CapsuleCommandPdu
        {
            Header = new CommonHeader
            {
                Type = PduType.CapsuleCmd,
                Flags = (byte)((hdgst ? PduFlags.HeaderDigest : 0) | (dd != 0 ? PduFlags.DataDigest : 0)),
                HeaderLength = CapsuleCommandPdu.Size,
                DataOffset = data.IsEmpty ? (byte)0 : (byte)(CapsuleCommandPdu.Size + hd),
                PduLength = (uint)plen,
            },
            Command = sqe,
        };
        MemoryMarshal.Write(dest, in p);
        if (hdgst) BinaryPrimitives.WriteUInt32LittleEndian(dest[CapsuleCommandPdu.Size..], Crc32C.Compute(dest[..CapsuleCommandPdu.Size]));
        data.CopyTo(dest[(CapsuleCommandPdu.Size + hd)..]);
        if (dd != 0) BinaryPrimitives.WriteUInt32LittleEndian(dest[(plen - 4)..], Crc32C.Compute(data));
        return plen;
    }

    /// <summary>Sends one admin/fabrics command and waits for its CapsuleResp (setup only; nothing else in flight).</summary>
    public static CompletionQueueEntry Submit(Socket s, SubmissionQueueEntry sqe, ReadOnlySpan<byte> data, bool hdgst, bool ddgst)
    {
        sqe.Sgl = new SglDescriptor { Length = (uint)data.Length, Identifier = data.IsEmpty ? SglDescriptor.TransportDataBlock : SglDescriptor.InCapsuleOffset };
        var b = new byte[CapsuleCommandPdu.Size + 8 + data.Length];
        int n = WriteCapsule(b, sqe, data, hdgst, ddgst);
        s.Send(b.AsSpan(0, n));
        while (true)
        {
            var pdu = ReadPdu(s);
            if ((PduType)pdu[0] == PduType.CapsuleResp) return MemoryMarshal.Read<CompletionQueueEntry>(pdu.AsSpan(8));
            if ((PduType)pdu[0] == PduType.C2HTermReq) throw new IOException("target sent C2HTermReq during setup");
        }
    }

    public static CompletionQueueEntry Connect(Socket s, string subNqn, ushort qid, ushort sqsize, ushort cntlid, bool hdgst, bool ddgst, bool disableSqFlow = false)
    {
        var data = new byte[ConnectData.Size];
        HostId.TryWriteBytes(data.AsSpan(0, 16), bigEndian: true, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(ConnectData.CntlidOffset), cntlid);
        Encoding.UTF8.GetBytes(subNqn).CopyTo(data, ConnectData.SubNqnOffset);
        Encoding.UTF8.GetBytes(HostNqn).CopyTo(data, ConnectData.HostNqnOffset);
        var sqe = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.Connect, CommandId = 0, Cdw10 = (uint)qid << 16,
            Cdw11 = sqsize | (disableSqFlow ? (uint)ConnectCommand.CattrDisableSqFlowControl << 16 : 0), Cdw12 = 0 };
        var c = Submit(s, sqe, data, hdgst, ddgst);
        if (c.Status != NvmeStatus.Success) throw new IOException($"Connect QID {qid} failed: {c.Status}");
        return c;
    }

    public static void Enable(Socket admin, bool hdgst, bool ddgst)
    {
        var set = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.PropertySet, CommandId = 1, Cdw11 = PropertyOffset.Cc, Cdw12 = CcEnable };
        var c = Submit(admin, set, default, hdgst, ddgst);
        if (c.Status != NvmeStatus.Success) throw new IOException($"Property Set CC failed: {c.Status}");
        for (int i = 0; i < 500; i++)
        {
            var get = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.PropertyGet, CommandId = 2, Cdw11 = PropertyOffset.Csts };
            var r = Submit(admin, get, default, hdgst, ddgst);
            if ((r.Result & 1) != 0) return;
            Thread.Sleep(10);
        }
        throw new IOException("CSTS.RDY did not become 1");
    }
}
