using System.Buffers.Binary;
using System.Net;
using System.Text;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>An <see cref="IQueueTransport"/> that records what the core asks of it.</summary>
internal sealed class FakeTransport : IQueueTransport
{
    /// <summary>What the fake describes itself as unless a test says otherwise: TCP, as the tests model it.</summary>
    public static readonly TransportDescriptor Tcp = new()
    {
        Type = TransportType.Tcp,
        Requirements = DiscoveryLogEntry.TreqSqFlowControlDisableSupported,
        InCapsuleDataSize = 8192,
    };

    public TransportDescriptor Descriptor { get; init; } = Tcp;
    private readonly Lock _lock = new();
    private readonly List<NvmeRequest> _responses = [];
    private readonly List<string> _terminations = [];

    private readonly List<NvmeRequest> _submitted = [];
    private readonly List<(NvmeRequest Request, NvmeStatus Status)> _aborts = [];

    private readonly List<(ushort QueueId, int QueueSize, bool SqFlowControlDisabled)> _installs = [];

    public string PeerAddress => "fake:4420";
    public void QueueInstalled(ushort queueId, int queueSize, bool sqFlowControlDisabled)
    {
        lock (_lock)
        {
            Assert.Empty(_installs); // a connection is installed once
            Assert.False(_responses.Any(r => r.Sqe.Opcode == AdminOpcode.Fabrics && r.Sqe.FabricsType == FabricsType.Connect),
                "QueueInstalled came after the Connect response");
            _installs.Add((queueId, queueSize, sqFlowControlDisabled));
        }
    }

    /// <summary>What <see cref="QueueInstalled"/> was told, in order.</summary>
    public IReadOnlyList<(ushort QueueId, int QueueSize, bool SqFlowControlDisabled)> Installs { get { lock (_lock) return [.. _installs]; } }
    public void QueueResponse(NvmeRequest request) { lock (_lock) _responses.Add(request); }
    public void Submitted(NvmeRequest request) { lock (_lock) _submitted.Add(request); }

    public int AbortRequests(Func<NvmeRequest, bool> match, NvmeStatus status)
    {
        lock (_lock)
        {
            int n = 0;
            foreach (var r in _submitted.Except(_responses))
                if (match(r) && r.TryAbort(r.Generation)) { _aborts.Add((r, status)); n++; }
            return n;
        }
    }

    /// <summary>Requests answered early by an abort, with the status sent.</summary>
    public IReadOnlyList<(NvmeRequest Request, NvmeStatus Status)> Aborts { get { lock (_lock) return [.. _aborts]; } }
    public void Terminate(string reason) { lock (_lock) _terminations.Add(reason); }

    public IReadOnlyList<NvmeRequest> Responses { get { lock (_lock) return [.. _responses]; } }
    public IReadOnlyList<string> Terminations { get { lock (_lock) return [.. _terminations]; } }
}

/// <summary>One queue (connection) as the tests see it: submit hand-built SQEs, collect completions.</summary>
internal sealed class TestQueue(FabricQueue queue, FakeTransport transport)
{
    private ushort _nextCid = 0x100;

    public FabricQueue Queue { get; } = queue;
    public FakeTransport Transport { get; } = transport;
    public Controller? Controller => Queue.Controller;

    /// <summary>Prepare, move the data in, Execute — as a transport would. A failed Prepare is completed
    /// without data movement. Returns the request; <see cref="NvmeRequest.Status"/> holds its completion.</summary>
    public NvmeRequest Submit(SubmissionQueueEntry sqe, ReadOnlySpan<byte> data = default, bool assignCid = true)
    {
        if (assignCid) sqe.CommandId = _nextCid++;
        var req = new NvmeRequest { Sqe = sqe };
        Transport.Submitted(req);
        var status = Queue.Prepare(req);
        if (status != NvmeStatus.Success)
        {
            Queue.Complete(req, status);
            return req;
        }
        if (req.Direction == DataDirection.HostToController)
        {
            Assert.Equal(req.DataLength, data.Length);
            data.CopyTo(req.DataSpan);
        }
        Queue.Execute(req);
        return req;
    }

    /// <summary>Submits and asserts the command completed (not parked) with <paramref name="expected"/>.</summary>
    public NvmeRequest Expect(NvmeStatus expected, SubmissionQueueEntry sqe, ReadOnlySpan<byte> data = default)
    {
        var req = Submit(sqe, data);
        Assert.True(Transport.Responses.Contains(req), $"command 0x{sqe.Opcode:x2} was not completed");
        Assert.Equal(expected, req.Status);
        Assert.Equal(req.Sqe.CommandId, req.Cqe.CommandId);
        return req;
    }

    public NvmeRequest Ok(SubmissionQueueEntry sqe, ReadOnlySpan<byte> data = default) => Expect(NvmeStatus.Success, sqe, data);
}

/// <summary>A target with one NVM subsystem (one 4 MiB memory namespace, 512-byte blocks) and one port.
/// The keep-alive timer is off: tests call <see cref="NvmeTarget.CheckKeepAlives"/> themselves.</summary>
internal sealed class TestTarget : IDisposable
{
    public const string SubNqn = "nqn.2024-01.io.example:sub1";
    public const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:14bda89c-1d6f-4471-b495-db452b9b96ed";
    public const string OtherHostNqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-1111-2222-3333-444444444444";
    public static readonly Guid HostId = Guid.Parse("14bda89c-1d6f-4471-b495-db452b9b96ed");
    public const long NsBytes = 4 << 20;

    public TestTarget(TargetLimits? limits = null, bool allowAnyHost = true)
    {
        Target = new NvmeTarget(limits, keepAliveScanInterval: Timeout.InfiniteTimeSpan);
        Subsystem = new Subsystem(SubNqn, allowAnyHost: allowAnyHost, allowedHosts: allowAnyHost ? null : [HostNqn]);
        Store = new MemoryBlockStore(NsBytes);
        Ns = new Namespace(1, Store, 512, NamespaceIds.Derive(SubNqn, 1));
        Subsystem.AttachNamespace(Ns);
        Target.AddSubsystem(Subsystem);
        Target.AddPort(new Port(1, IPAddress.Parse("192.0.2.10"), 4420) { Transport = FakeTransport.Tcp });
    }

    public NvmeTarget Target { get; }
    public Subsystem Subsystem { get; }
    public MemoryBlockStore Store { get; }
    public Namespace Ns { get; }

    public TestQueue NewQueue(TransportDescriptor? transport = null)
    {
        var t = new FakeTransport { Descriptor = transport ?? FakeTransport.Tcp };
        return new TestQueue(Target.CreateQueue(t), t);
    }

    /// <summary>Connects an admin queue; with <paramref name="enable"/> also sets CC.EN and checks CSTS.RDY.</summary>
    public TestQueue ConnectAdmin(string subNqn = SubNqn, string hostNqn = HostNqn, uint kato = 0, bool enable = true,
        TransportDescriptor? transport = null)
    {
        var q = NewQueue(transport);
        var (sqe, data) = Cmd.Connect(0, 31, kato, 0xFFFF, subNqn, hostNqn, HostId);
        var r = q.Ok(sqe, data);
        Assert.Equal(r.Cqe.Dword0, (uint)q.Controller!.Cntlid);
        if (enable)
        {
            q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
            Assert.True(q.Controller.IsReady);
        }
        return q;
    }

    public TestQueue ConnectIo(ushort cntlid, ushort qid = 1, ushort sqsize = 127, string hostNqn = HostNqn, byte cattr = 0)
    {
        var q = NewQueue();
        var (sqe, data) = Cmd.Connect(qid, sqsize, 0, cntlid, SubNqn, hostNqn, HostId, cattr);
        q.Ok(sqe, data);
        Assert.Equal(qid, q.Queue.QueueId);
        return q;
    }

    public void Dispose() => Target.Dispose();
}

/// <summary>Hand-built submission queue entries.</summary>
internal static class Cmd
{
    /// <summary>CC: EN=1, CSS=0, MPS=0, IOSQES=6, IOCQES=4 (what the Linux host writes).</summary>
    public const uint CcEnable = 0x00460001;

    private static SubmissionQueueEntry Sqe(byte opcode, uint nsid = 0)
    {
        var s = new SubmissionQueueEntry { Opcode = opcode, Flags = 0x40, Nsid = nsid };
        s.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        return s;
    }

    private static SubmissionQueueEntry WithData(this SubmissionQueueEntry s, uint length, byte identifier = SglDescriptor.TransportDataBlock)
    {
        s.Sgl.Length = length;
        s.Sgl.Identifier = identifier;
        return s;
    }

    public static (SubmissionQueueEntry Sqe, byte[] Data) Connect(ushort qid, ushort sqsize, uint kato, ushort cntlid,
        string subNqn, string hostNqn, Guid hostId, byte cattr = 0)
    {
        var sqe = Sqe(AdminOpcode.Fabrics, FabricsType.Connect).WithData(ConnectData.Size, SglDescriptor.InCapsuleOffset);
        sqe.Cdw10 = (uint)qid << 16;
        sqe.Cdw11 = sqsize | ((uint)cattr << 16);
        sqe.Cdw12 = kato;
        var data = new byte[ConnectData.Size];
        hostId.TryWriteBytes(data, bigEndian: true, out _);
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(16), cntlid);
        Encoding.ASCII.GetBytes(subNqn).CopyTo(data, 256);
        Encoding.ASCII.GetBytes(hostNqn).CopyTo(data, 512);
        return (sqe, data);
    }

    public static SubmissionQueueEntry PropertyGet(uint offset, bool eightBytes = false)
    {
        var s = Sqe(AdminOpcode.Fabrics, FabricsType.PropertyGet);
        s.Cdw10 = eightBytes ? 1u : 0u;
        s.Cdw11 = offset;
        return s;
    }

    public static SubmissionQueueEntry PropertySet(uint offset, uint value)
    {
        var s = Sqe(AdminOpcode.Fabrics, FabricsType.PropertySet);
        s.Cdw11 = offset;
        s.Cdw12 = value;
        return s;
    }

    public static SubmissionQueueEntry Disconnect() => Sqe(AdminOpcode.Fabrics, FabricsType.Disconnect);

    public static SubmissionQueueEntry Identify(byte cns, uint nsid = 0, byte csi = 0, uint length = 4096)
    {
        var s = Sqe(AdminOpcode.Identify, nsid).WithData(length);
        s.Cdw10 = cns;
        s.Cdw11 = (uint)csi << 24;
        return s;
    }

    public static SubmissionQueueEntry GetLogPage(byte lid, uint length, ulong offset = 0, bool rae = false, uint nsid = 0xFFFFFFFF)
    {
        var s = Sqe(AdminOpcode.GetLogPage, nsid).WithData(length);
        uint numd = length / 4 - 1;
        s.Cdw10 = lid | (rae ? 1u << 15 : 0) | ((numd & 0xFFFF) << 16);
        s.Cdw11 = numd >> 16;
        s.Cdw12 = (uint)offset;
        s.Cdw13 = (uint)(offset >> 32);
        return s;
    }

    public static SubmissionQueueEntry SetFeatures(byte fid, uint value, bool save = false)
    {
        var s = Sqe(AdminOpcode.SetFeatures);
        s.Cdw10 = fid | (save ? 0x8000_0000u : 0);
        s.Cdw11 = value;
        return s;
    }

    public static SubmissionQueueEntry GetFeatures(byte fid, uint sel = 0, uint cdw11 = 0, uint length = 0)
    {
        var s = Sqe(AdminOpcode.GetFeatures);
        if (length != 0) s = s.WithData(length);
        s.Cdw10 = fid | (sel << 8);
        s.Cdw11 = cdw11;
        return s;
    }

    public static SubmissionQueueEntry AsyncEventRequest() => Sqe(AdminOpcode.AsyncEventRequest);
    public static SubmissionQueueEntry KeepAlive() => Sqe(AdminOpcode.KeepAlive);

    public static SubmissionQueueEntry Abort(ushort sqid, ushort cid)
    {
        var s = Sqe(AdminOpcode.Abort);
        s.Cdw10 = sqid | ((uint)cid << 16);
        return s;
    }

    /// <summary>Read or Write: <paramref name="blocks"/> is the real count (converted to 0's based NLB).</summary>
    public static SubmissionQueueEntry Rw(byte opcode, uint nsid, ulong slba, uint blocks, uint? sglLength = null, int blockSize = 512)
    {
        var s = Sqe(opcode, nsid).WithData(sglLength ?? blocks * (uint)blockSize);
        s.Cdw10 = (uint)slba;
        s.Cdw11 = (uint)(slba >> 32);
        s.Cdw12 = (blocks - 1) & 0xFFFF;
        return s;
    }

    public static SubmissionQueueEntry Read(uint nsid, ulong slba, uint blocks, uint? sglLength = null) => Rw(IoOpcode.Read, nsid, slba, blocks, sglLength);
    public static SubmissionQueueEntry Write(uint nsid, ulong slba, uint blocks, uint? sglLength = null) => Rw(IoOpcode.Write, nsid, slba, blocks, sglLength);

    public static SubmissionQueueEntry WriteZeroes(uint nsid, ulong slba, uint blocks, bool deallocate = false)
    {
        var s = Sqe(IoOpcode.WriteZeroes, nsid);
        s.Cdw10 = (uint)slba;
        s.Cdw11 = (uint)(slba >> 32);
        s.Cdw12 = ((blocks - 1) & 0xFFFF) | (deallocate ? 1u << 25 : 0);
        return s;
    }

    public static (SubmissionQueueEntry Sqe, byte[] Data) DeallocateRanges(uint nsid, params (ulong Slba, uint Blocks)[] ranges)
    {
        var s = Sqe(IoOpcode.DatasetManagement, nsid).WithData((uint)(ranges.Length * 16));
        s.Cdw10 = (uint)(ranges.Length - 1);
        s.Cdw11 = 1u << 2; // AD
        var data = new byte[ranges.Length * 16];
        for (int i = 0; i < ranges.Length; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(i * 16 + 4), ranges[i].Blocks);
            BinaryPrimitives.WriteUInt64LittleEndian(data.AsSpan(i * 16 + 8), ranges[i].Slba);
        }
        return (s, data);
    }

    public static SubmissionQueueEntry Flush(uint nsid) => Sqe(IoOpcode.Flush, nsid);

    /// <summary>Namespace Attachment: SEL 0 attach / 1 detach, the controller list as its 4096-byte data.</summary>
    public static (SubmissionQueueEntry Sqe, byte[] Data) NamespaceAttachment(uint nsid, bool detach, params ushort[] cntlids)
    {
        var s = Sqe(AdminOpcode.NamespaceAttachment, nsid).WithData(4096, SglDescriptor.InCapsuleOffset);
        s.Cdw10 = detach ? 1u : 0u;
        var data = new byte[4096];
        BinaryPrimitives.WriteUInt16LittleEndian(data, (ushort)cntlids.Length);
        for (int i = 0; i < cntlids.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(2 + 2 * i), cntlids[i]);
        return (s, data);
    }

    public static SubmissionQueueEntry Raw(byte opcode, uint nsid = 0, uint sglLength = 0) => Sqe(opcode, nsid).WithData(sglLength);
}
