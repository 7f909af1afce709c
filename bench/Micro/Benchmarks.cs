using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using BenchmarkDotNet.Attributes;
using Nvme.Core;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Transport.Tcp;
using Transport.Tcp.Pdu;

namespace Bench.Micro;

/// <summary>PduReader.TryRead on a 4 KiB read CapsuleCmd (72-byte header, no data), contiguous or split over
/// three segments as a socket read can deliver it; with and without header digest.</summary>
[MemoryDiagnoser]
public class PduParseBenchmarks
{
    private ReadOnlySequence<byte> _single, _multi, _singleDigest, _capsule4k;
    private PduReaderSettings _plain, _digest, _inCapsule;

    [GlobalSetup]
    public void Setup()
    {
        _single = new ReadOnlySequence<byte>(Pdus.Capsule(Pdus.Rw(IoOpcode.Read, 7, 100, 8), default, false, false));
        _singleDigest = new ReadOnlySequence<byte>(Pdus.Capsule(Pdus.Rw(IoOpcode.Read, 7, 100, 8), default, true, false));
        _multi = Segments.Split(Pdus.Capsule(Pdus.Rw(IoOpcode.Read, 7, 100, 8), default, false, false), 5, 40);
        var w = Pdus.Rw(IoOpcode.Write, 7, 100, 8);
        w.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        _capsule4k = new ReadOnlySequence<byte>(Pdus.Capsule(w, new byte[4096], true, true));
        _plain = new PduReaderSettings { MaxInCapsuleData = 8192, MaxH2CData = 131072 };
        _digest = _plain with { HeaderDigest = true };
        _inCapsule = _plain with { HeaderDigest = true, DataDigest = true };
    }

    [Benchmark(Baseline = true)]
    public PduType CapsuleCmd_SingleSegment()
    {
        var b = _single;
        PduReader.TryRead(ref b, _plain, out var pdu, out _);
        return pdu.Type;
    }

    [Benchmark]
    public PduType CapsuleCmd_MultiSegment()
    {
        var b = _multi;
        PduReader.TryRead(ref b, _plain, out var pdu, out _);
        return pdu.Type;
    }

    [Benchmark]
    public PduType CapsuleCmd_HeaderDigest()
    {
        var b = _singleDigest;
        PduReader.TryRead(ref b, _digest, out var pdu, out _);
        return pdu.Type;
    }

    [Benchmark]
    public bool CapsuleCmd_4KiBInCapsule_BothDigests()
    {
        var b = _capsule4k;
        PduReader.TryRead(ref b, _inCapsule, out var pdu, out _);
        return pdu.DataDigestError;
    }
}

[MemoryDiagnoser]
public class Crc32CBenchmarks
{
    private byte[] _data = [];

    [Params(4096, 131072)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[Size];
        new Random(1).NextBytes(_data);
    }

    [Benchmark]
    public uint Compute() => Crc32C.Compute(_data);
}

/// <summary>FabricQueue.Prepare + Execute of a 4 KiB Read/Write on a memory namespace; the transport is a
/// null one that only recycles the request (what NvmeTcpQueue's writer does, minus the PDU).</summary>
[MemoryDiagnoser]
public class DispatchBenchmarks
{
    private InProcessCore _core = null!;
    private NvmeRequest _req = null!;
    private SubmissionQueueEntry _read, _write;
    private ulong _lba;

    [Params(4096, 131072)]
    public int Size { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _core = new InProcessCore();
        _req = new NvmeRequest();
        _read = Pdus.Rw(IoOpcode.Read, 1, 0, (uint)(Size / 512));
        _write = Pdus.Rw(IoOpcode.Write, 1, 0, (uint)(Size / 512));
    }

    [GlobalCleanup]
    public void Cleanup() => _core.Dispose();

    private void Run(in SubmissionQueueEntry sqe)
    {
        var req = _req;
        req.Sqe = sqe;
        _lba = (_lba + 2048) & ((1 << 20) - 1); // walk 512 MiB of the namespace in 1 MiB steps
        req.Sqe.Cdw10 = (uint)_lba;
        var status = _core.Io.Prepare(req);
        if (status != NvmeStatus.Success) throw new InvalidOperationException(status.ToString());
        _ = req.DataSpan; // the transport touches the buffer (receives H2C data / sends C2H data)
        _core.Io.Execute(req); // completes synchronously for memory; the null transport calls Reset
    }

    [Benchmark]
    public void Read() => Run(_read);

    [Benchmark]
    public void Write() => Run(_write);
}

/// <summary>The 4 KiB Read dispatch of <see cref="DispatchBenchmarks"/> on a core that a subclass sets up first (faults,
/// ANA states): the cost of that state on the I/O path.</summary>
[MemoryDiagnoser]
public abstract class ReadDispatchBenchmarkBase
{
    private InProcessCore _core = null!;
    private NvmeRequest _req = null!;
    private SubmissionQueueEntry _read;

    /// <summary>Puts the state to measure in place (after the core is built, before the first command).</summary>
    protected abstract void Configure(InProcessCore core);

    [GlobalSetup]
    public void Setup()
    {
        _core = new InProcessCore();
        _req = new NvmeRequest();
        _read = Pdus.Rw(IoOpcode.Read, 1, 0, 8);
        Configure(_core);
    }

    [GlobalCleanup]
    public void Cleanup() => _core.Dispose();

    [Benchmark]
    public void Read()
    {
        var req = _req;
        req.Sqe = _read;
        var status = _core.Io.Prepare(req);
        if (status != NvmeStatus.Success) throw new InvalidOperationException(status.ToString());
        _ = req.DataSpan;
        _core.Io.Execute(req);
    }
}

/// <summary>The dispatch with faults: none set (the I/O path's cost is one null check; compare with
/// DispatchBenchmarks.Read and with a build before fault injection), and one set that matches nothing this command has
/// (another namespace: each command pays the match).</summary>
public class FaultDispatchBenchmarks : ReadDispatchBenchmarkBase
{
    [Params("none", "other-namespace")]
    public string Faults { get; set; } = "none";

    protected override void Configure(InProcessCore core)
    {
        if (Faults != "none")
            core.Target.Faults.Add(new Nvme.Core.Faults.FaultSpec
            {
                SubsystemNqn = InProcessCore.Nqn, Nsid = 2, Action = Nvme.Core.Faults.FaultAction.Error, Status = NvmeStatus.UnrecoveredReadError,
            });
    }
}

/// <summary>The dispatch with every ANA group optimized (the I/O path reads one flag) and with another group
/// inaccessible (the flag is up: each command looks its own group's state up, finds it optimized, and runs).</summary>
public class AnaDispatchBenchmarks : ReadDispatchBenchmarkBase
{
    [Params("optimized", "other-group-inaccessible")]
    public string Ana { get; set; } = "optimized";

    protected override void Configure(InProcessCore core)
    {
        if (Ana != "optimized") core.Target.FindSubsystem(InProcessCore.Nqn)!.SetAnaState(2, AnaState.Inaccessible);
    }
}

/// <summary>Controller-to-host PDUs written into a null IBufferWriter (one reused buffer).</summary>
[MemoryDiagnoser]
public class PduWriteBenchmarks
{
    private readonly NullBufferWriter _w = new();
    private readonly byte[] _data4k = new byte[4096];
    private readonly byte[] _data128k = new byte[131072];
    private CompletionQueueEntry _cqe = new() { CommandId = 5, Status = NvmeStatus.Success };

    [Params(false, true)]
    public bool Digests { get; set; }

    [Benchmark(Baseline = true)]
    public void CapsuleResp()
    {
        PduWriter.WriteCapsuleResp(_w, _cqe, Digests);
        _w.Reset();
    }

    [Benchmark]
    public void C2HData_4KiB()
    {
        PduWriter.WriteC2HData(_w, 5, 0, _data4k, true, true, Digests, Digests);
        _w.Reset();
    }

    [Benchmark]
    public void C2HData_128KiB()
    {
        PduWriter.WriteC2HData(_w, 5, 0, _data128k, true, true, Digests, Digests);
        _w.Reset();
    }
}

public sealed class NullBufferWriter : IBufferWriter<byte>
{
    private readonly byte[] _buffer = new byte[256 * 1024];
    private int _pos;
    public void Advance(int count) => _pos += count;
    public Memory<byte> GetMemory(int sizeHint = 0) => _buffer.AsMemory(_pos);
    public Span<byte> GetSpan(int sizeHint = 0) => _buffer.AsSpan(_pos);
    public void Reset() => _pos = 0;
}

/// <summary>A target with one 1 GiB memory namespace, an enabled controller and I/O queue 1, driven through
/// FabricQueue with a transport that just recycles requests.</summary>
public sealed class InProcessCore : IDisposable
{
    public const string Nqn = "nqn.2026-01.io.nvmetcptarget:bench";
    private const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-0000-0000-000000000001";
    private readonly NvmeTarget _target;

    public InProcessCore()
    {
        _target = new NvmeTarget(keepAliveScanInterval: Timeout.InfiniteTimeSpan);
        var sub = new Subsystem(Nqn, allowAnyHost: true);
        sub.AttachNamespace(new Namespace(1, new MemoryBlockStore(1L << 30), 512, NamespaceIds.Derive(Nqn, 1)));
        _target.AddSubsystem(sub);
        var admin = _target.CreateQueue(new NullTransport());
        var r = new NvmeRequest();
        ushort cntlid = (ushort)Run(admin, r, Connect(0, 31, 0xFFFF, r)).Result;
        var set = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.PropertySet, Cdw11 = PropertyOffset.Cc, Cdw12 = 1u | (6u << 16) | (4u << 20) };
        Run(admin, r, set);
        Io = _target.CreateQueue(new NullTransport());
        Run(Io, r, Connect(1, 127, cntlid, r));
    }

    public FabricQueue Io { get; }
    public NvmeTarget Target => _target;

    private static SubmissionQueueEntry Connect(ushort qid, ushort sqsize, ushort cntlid, NvmeRequest r)
    {
        var s = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.Connect, Cdw10 = (uint)qid << 16, Cdw11 = sqsize, Cdw12 = qid == 0 ? 30000u : 0 };
        s.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        s.Sgl.Length = ConnectData.Size;
        r.Cqe.Result = cntlid; // carried to the data below
        return s;
    }

    private static CompletionQueueEntry Run(FabricQueue q, NvmeRequest r, SubmissionQueueEntry sqe)
    {
        ushort cntlid = (ushort)r.Cqe.Result;
        r.Sqe = sqe;
        var status = q.Prepare(r);
        if (status == NvmeStatus.Success && r.Direction == DataDirection.HostToController)
        {
            var d = r.DataSpan;
            d.Clear();
            Guid.Parse("00000000-0000-0000-0000-000000000001").TryWriteBytes(d[..16], bigEndian: true, out _);
            BinaryPrimitives.WriteUInt16LittleEndian(d[ConnectData.CntlidOffset..], cntlid);
            Encoding.UTF8.GetBytes(Nqn).CopyTo(d[ConnectData.SubNqnOffset..]);
            Encoding.UTF8.GetBytes(HostNqn).CopyTo(d[ConnectData.HostNqnOffset..]);
        }
        if (status != NvmeStatus.Success) throw new InvalidOperationException($"setup command failed in Prepare: {status}");
        var cqeHolder = r;
        q.Execute(r); // NullTransport resets r; the CQE is captured there
        var cqe = NullTransport.Last;
        if (cqe.Status != NvmeStatus.Success) throw new InvalidOperationException($"setup command failed: {cqe.Status}");
        _ = cqeHolder;
        return cqe;
    }

    public void Dispose() => _target.Dispose();

    private sealed class NullTransport : IQueueTransport
    {
        [ThreadStatic] public static CompletionQueueEntry Last;
        public TransportDescriptor Descriptor { get; } = new() { Type = TransportType.Tcp, InCapsuleDataSize = 8192 };
        public void QueueResponse(NvmeRequest request)
        {
            Last = request.Cqe;
            request.Reset();
        }
        public void Terminate(string reason) { }
        public void QueueInstalled(ushort queueId, int queueSize, bool sqFlowControlDisabled) { }
        public int AbortRequests(Func<NvmeRequest, bool> match, NvmeStatus status) => 0;
        public string PeerAddress => "null";
    }
}

public static class Pdus
{
    public static SubmissionQueueEntry Rw(byte opcode, ushort cid, ulong slba, uint blocks)
    {
        var s = new SubmissionQueueEntry { Opcode = opcode, Flags = 0x40, CommandId = cid, Nsid = 1, Cdw10 = (uint)slba, Cdw11 = (uint)(slba >> 32), Cdw12 = blocks - 1 };
        s.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        s.Sgl.Length = blocks * 512;
        return s;
    }

    public static byte[] Capsule(SubmissionQueueEntry sqe, ReadOnlySpan<byte> data, bool hdgst, bool ddgst)
    {
        int hd = hdgst ? 4 : 0, dd = ddgst && !data.IsEmpty ? 4 : 0;
        int plen = 72 + hd + data.Length + dd;
        var b = new byte[plen];
        b[0] = (byte)PduType.CapsuleCmd;
        b[1] = (byte)((hdgst ? PduFlags.HeaderDigest : 0) | (dd != 0 ? PduFlags.DataDigest : 0));
        b[2] = 72;
        b[3] = data.IsEmpty ? (byte)0 : (byte)(72 + hd);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), (uint)plen);
        MemoryMarshal.Write(b.AsSpan(8), in sqe);
        if (hdgst) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(72), Crc32C.Compute(b.AsSpan(0, 72)));
        data.CopyTo(b.AsSpan(72 + hd));
        if (dd != 0) BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(plen - 4), Crc32C.Compute(data));
        return b;
    }
}

/// <summary>A ReadOnlySequence over several segments, split at the given offsets.</summary>
public static class Segments
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex) { Memory = memory; RunningIndex = runningIndex; }
        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var s = new Segment(memory, RunningIndex + Memory.Length);
            Next = s;
            return s;
        }
    }

    public static ReadOnlySequence<byte> Split(byte[] bytes, params int[] cuts)
    {
        var first = new Segment(bytes.AsMemory(0, cuts[0]), 0);
        var last = first;
        for (int i = 0; i < cuts.Length; i++)
        {
            int end = i + 1 < cuts.Length ? cuts[i + 1] : bytes.Length;
            last = last.Append(bytes.AsMemory(cuts[i], end - cuts[i]));
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
