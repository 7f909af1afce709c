using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Nvme.Core.Spec;
using Transport.Tcp;
using Transport.Tcp.Pdu;

namespace Bench.LoadGen;

internal sealed class Options
{
    public System.Net.IPEndPoint Target = new(System.Net.IPAddress.Loopback, 4420);
    public string Nqn = "nqn.2026-01.io.nvmetcptarget:default";
    public int Connections = 1;
    public int QueueDepth = 32;
    public int BlockSize = 4096;
    public bool Random = true;
    public int ReadPercent = 100;
    public double Duration = 5, Warmup = 2;
    public bool Digests;
    public bool DisableSqFlow;
    public bool Verify;
    public long Size = 1L << 30;
    public int InCapsule = 8192;
    public uint Nsid = 1;
    public string? Json;
    public string? Label;
    public bool Sink, InProcess;
}

/// <summary>
/// One I/O queue on one thread: a fixed pool of command slots (CID = slot index); the ready slots are drained
/// into one buffer and written with one send; each receive is parsed for responses, whose latency is recorded
/// and whose slots are resubmitted, then everything ready is sent again. No task or allocation per command.
/// </summary>
internal sealed class IoConnection
{
    private const int KindCommand = 0, KindH2C = 1;
    private readonly Options _o;
    private readonly Socket _s;
    private readonly int _index;
    private readonly Slot[] _slots;
    private readonly Queue<int> _ready = new(); // only the connection's thread touches it (Start runs before it)
    private readonly byte[] _send;
    private readonly byte[] _recv;
    private readonly long _units; // block-size units this connection may address
    private readonly uint[] _written; // verify: seed last written per unit (0 = never)
    private readonly bool[] _busy;
    private readonly int _lbaShift = 9;
    private readonly int _maxH2C;
    private ulong _rng;
    private long _seqCursor;
    private uint _seedCounter;
    private volatile bool _stopping;
    private int _inflight;
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static readonly bool Debug = Environment.GetEnvironmentVariable("LOADGEN_DEBUG") == "1";
    private int _dbg;
    public Histogram Latency { get; } = new();
    public long MeasureStart = long.MaxValue, MeasureEnd = long.MaxValue;
    public long Reads, Writes, BytesMoved, Errors, VerifyFailures, DigestErrors;
    public string? Failure;

    private sealed class Slot
    {
        public ushort Cid;
        public bool IsWrite;
        public long Unit;
        public long Start;
        public uint Seed;
        public int H2COffset, H2CLength;
        public ushort TransferTag;
        public byte[] Data = [];
        public uint DataCrc;
    }

    public IoConnection(Options o, Socket s, int index, int maxH2C)
    {
        _o = o;
        _s = s;
        _index = index;
        _maxH2C = maxH2C;
        _rng = 0x9E3779B97F4A7C15UL * (ulong)(index + 1);
        _slots = new Slot[o.QueueDepth];
        var pattern = new byte[o.BlockSize];
        new Random(index).NextBytes(pattern);
        for (int i = 0; i < _slots.Length; i++)
        {
            _slots[i] = new Slot { Cid = (ushort)i, Data = (byte[])pattern.Clone() };
            _slots[i].DataCrc = Crc32C.Compute(_slots[i].Data);
        }
        int per = CapsuleCommandPdu.Size + 8 + Math.Max(o.BlockSize, 0) + DataPdu.Size;
        _send = new byte[Math.Max(per * Math.Min(o.QueueDepth, 64), 1 << 20)];
        _recv = new byte[Math.Max(4 * (o.BlockSize + 64), 1 << 20)];
        // Connections share the namespace: connection c addresses units c, c + N, c + 2N ... (no overlap, so verify
        // never races with another connection).
        _units = o.Size / o.BlockSize / o.Connections;
        if (_units < o.QueueDepth) throw new ArgumentException("--size too small for this block size, queue depth and connection count");
        if (o.Verify)
        {
            _written = new uint[_units];
            _busy = new bool[_units];
        }
        else
        {
            _written = [];
            _busy = [];
        }
    }

    private ulong NextRandom()
    {
        ulong x = _rng; // xorshift64*
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        _rng = x;
        return x * 0x2545F4914F6CDD1DUL;
    }

    private long UnitToLba(long unit) => (unit * _o.Connections + _index) * (_o.BlockSize >> _lbaShift);

    private void Prepare(Slot slot)
    {
        slot.IsWrite = _o.ReadPercent < 100 && (_o.ReadPercent == 0 || (int)(NextRandom() % 100) >= _o.ReadPercent);
        while (true)
        {
            slot.Unit = _o.Random ? (long)(NextRandom() % (ulong)_units) : _seqCursor++ % _units;
            if (!_o.Verify || !_busy[slot.Unit]) break;
        }
        if (_o.Verify)
        {
            _busy[slot.Unit] = true;
            if (slot.IsWrite)
            {
                slot.Seed = ++_seedCounter == 0 ? ++_seedCounter : _seedCounter;
                Fill(slot.Data, UnitToLba(slot.Unit), slot.Seed);
                slot.DataCrc = Crc32C.Compute(slot.Data);
            }
        }
    }

    /// <summary>Verify pattern: every 8-byte word depends on its LBA, its position and the write's seed.</summary>
    private static void Fill(Span<byte> data, long lba, uint seed)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        for (int i = 0; i < words.Length; i++) words[i] = Mix((ulong)lba + (ulong)(i >> 6), seed, i);
    }

    private static ulong Mix(ulong lba, uint seed, int i) => (lba * 0x9E3779B97F4A7C15UL) ^ ((ulong)seed << 32) ^ (uint)i ^ 0xA5A5_0000_0000_0000UL;

    private bool CheckPattern(ReadOnlySpan<byte> data, int offset, long lba, uint seed)
    {
        var words = MemoryMarshal.Cast<byte, ulong>(data);
        int first = offset / 8;
        for (int i = 0; i < words.Length; i++)
        {
            int w = first + i;
            ulong expected = seed == 0 ? 0 : Mix((ulong)lba + (ulong)(w >> 6), seed, w);
            if (words[i] != expected) return false;
        }
        return true;
    }

    public void Start()
    {
        foreach (var slot in _slots)
        {
            Prepare(slot);
            slot.Start = Stopwatch.GetTimestamp();
            _ready.Enqueue(slot.Cid);
        }
        _inflight = _slots.Length;
        new Thread(Run) { IsBackground = true, Name = $"loadgen connection {_index}" }.Start();
    }

    /// <summary>Stops submitting; completes when every outstanding command has completed.</summary>
    public Task StopAsync()
    {
        _stopping = true;
        return _drained.Task;
    }

    public void Close()
    {
        _stopping = true;
        try { _s.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
        _s.Dispose();
    }

    private void Fail(string why)
    {
        Failure ??= why;
        _stopping = true;
        _drained.TrySetResult();
        try { _s.Shutdown(SocketShutdown.Both); } catch (SocketException) { } catch (ObjectDisposedException) { }
    }

    // ------------------------------------------------------------------ send

    /// <summary>The connection's one thread: send what is ready, receive, handle, repeat. Blocking socket calls and
    /// no hand-off between threads (a send loop and a receive loop on the thread pool spent most of their CPU
    /// waking each other up). A send blocks only while the target's receive window is full, and the target
    /// always keeps reading.</summary>
    private void Run()
    {
        try
        {
            SendReady();
            ReceiveLoop();
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or InvalidOperationException)
        {
            if (!_stopping || _inflight > 0) Fail(e.Message);
        }
    }

    /// <summary>Sends every ready command and H2CData, batched into as few sends as the buffer allows.</summary>
    private void SendReady()
    {
        bool hd = _o.Digests, dd = _o.Digests;
        int hdl = hd ? 4 : 0;
        int carried = -1;
        while (Failure is null)
        {
            int len = 0;
            while (true)
            {
                if (carried < 0)
                {
                    if (!_ready.TryDequeue(out int next)) break;
                    carried = next;
                }
                int item = carried;
                var slot = _slots[item & 0xFFFF];
                int need = CapsuleCommandPdu.Size + 8 + DataPdu.Size + (slot.IsWrite ? _o.BlockSize : 0);
                if (len + need > _send.Length)
                {
                    if (len == 0) throw new InvalidOperationException("send buffer too small");
                    break; // send what we have; the item stays carried to the next batch
                }
                carried = -1;
                var dest = _send.AsSpan(len);
                if ((item >> 16) == KindH2C)
                {
                    // H2CData answering an R2T: header, HDGST, data slice, DDGST.
                    int plen = DataPdu.Size + hdl + slot.H2CLength + (dd ? 4 : 0);
                    var h = new DataPdu
                    {
                        Header = new CommonHeader
                        {
                            Type = PduType.H2CData,
                            Flags = (byte)(PduFlags.LastPdu | (hd ? PduFlags.HeaderDigest : 0) | (dd ? PduFlags.DataDigest : 0)),
                            HeaderLength = DataPdu.Size,
                            DataOffset = (byte)(DataPdu.Size + hdl),
                            PduLength = (uint)plen,
                        },
                        CommandId = slot.Cid,
                        TransferTag = slot.TransferTag,
                        DataOffset = (uint)slot.H2COffset,
                        DataLength = (uint)slot.H2CLength,
                    };
                    MemoryMarshal.Write(dest, in h);
                    if (hd) BinaryPrimitives.WriteUInt32LittleEndian(dest[DataPdu.Size..], Crc32C.Compute(dest[..DataPdu.Size]));
                    var data = slot.Data.AsSpan(slot.H2COffset, slot.H2CLength);
                    data.CopyTo(dest[(DataPdu.Size + hdl)..]);
                    if (dd)
                    {
                        uint crc = slot.H2COffset == 0 && slot.H2CLength == slot.Data.Length ? slot.DataCrc : Crc32C.Compute(data);
                        BinaryPrimitives.WriteUInt32LittleEndian(dest[(plen - 4)..], crc);
                    }
                    len += plen;
                    continue;
                }
                var sqe = new SubmissionQueueEntry
                {
                    Opcode = slot.IsWrite ? IoOpcode.Write : IoOpcode.Read,
                    Flags = 0x40,
                    CommandId = slot.Cid,
                    Nsid = _o.Nsid,
                };
                long lba = UnitToLba(slot.Unit);
                sqe.Cdw10 = (uint)lba;
                sqe.Cdw11 = (uint)(lba >> 32);
                sqe.Cdw12 = (uint)(_o.BlockSize >> _lbaShift) - 1;
                bool inCapsule = slot.IsWrite && _o.BlockSize <= _o.InCapsule;
                sqe.Sgl = new SglDescriptor { Length = (uint)_o.BlockSize, Identifier = inCapsule ? SglDescriptor.InCapsuleOffset : SglDescriptor.TransportDataBlock };
                // The capsule (with HDGST) is built in place; in-capsule data reuses the slot's precomputed DDGST.
                int n = Wire.WriteCapsule(dest, sqe, default, hd, false);
                if (inCapsule)
                {
                    dest[1] |= dd ? PduFlags.DataDigest : (byte)0;
                    dest[3] = (byte)(CapsuleCommandPdu.Size + hdl);
                    int plen = n + _o.BlockSize + (dd ? 4 : 0);
                    BinaryPrimitives.WriteUInt32LittleEndian(dest[4..], (uint)plen);
                    if (hd) BinaryPrimitives.WriteUInt32LittleEndian(dest[CapsuleCommandPdu.Size..], Crc32C.Compute(dest[..CapsuleCommandPdu.Size]));
                    slot.Data.CopyTo(dest[n..]);
                    if (dd) BinaryPrimitives.WriteUInt32LittleEndian(dest[(plen - 4)..], slot.DataCrc);
                    n = plen;
                }
                len += n;
            }
            if (len > 0)
            {
                if (Debug && _dbg++ < 10) Console.Error.WriteLine($"send {len} bytes: {Convert.ToHexString(_send, 0, Math.Min(len, 80))}");
                int sent = 0;
                while (sent < len) sent += _s.Send(_send, sent, len - sent, SocketFlags.None);
            }
            if (carried < 0) return;
        }
    }

    // ------------------------------------------------------------------ receive

    private void ReceiveLoop()
    {
        int start = 0, end = 0;
        while (Failure is null)
        {
            if (end == _recv.Length)
            {
                Buffer.BlockCopy(_recv, start, _recv, 0, end - start);
                end -= start;
                start = 0;
            }
            int n = _s.Receive(_recv, end, _recv.Length - end, SocketFlags.None);
            if (n == 0) { Fail("target closed the connection"); return; }
            end += n;
            bool resubmitted = false;
            while (end - start >= 8)
            {
                int plen = (int)BinaryPrimitives.ReadUInt32LittleEndian(_recv.AsSpan(start + 4));
                if (plen > _recv.Length) { Fail($"PDU of {plen} bytes exceeds the receive buffer"); return; }
                if (end - start < plen)
                {
                    if (start + plen > _recv.Length)
                    {
                        Buffer.BlockCopy(_recv, start, _recv, 0, end - start);
                        end -= start;
                        start = 0;
                    }
                    break;
                }
                resubmitted |= Handle(_recv.AsSpan(start, plen));
                start += plen;
                if (Failure != null) return;
            }
            if (start == end) start = end = 0;
            if (resubmitted) SendReady();
        }
    }

    /// <summary>Handles one complete PDU; true when something was queued for sending.</summary>
    private bool Handle(ReadOnlySpan<byte> pdu)
    {
        int hdl = _o.Digests ? 4 : 0;
        if (Debug && _dbg++ < 20) Console.Error.WriteLine($"recv {(PduType)pdu[0]} {pdu.Length}");
        switch ((PduType)pdu[0])
        {
            case PduType.CapsuleResp:
                {
                    var cqe = MemoryMarshal.Read<CompletionQueueEntry>(pdu[8..]);
                    if (cqe.CommandId >= _slots.Length) { Fail($"completion for unknown CID {cqe.CommandId}"); return false; }
                    return Complete(_slots[cqe.CommandId], cqe.Status);
                }
            case PduType.C2HData:
                {
                    var h = MemoryMarshal.Read<DataPdu>(pdu);
                    if (h.CommandId >= _slots.Length) { Fail($"C2HData for unknown CID {h.CommandId}"); return false; }
                    var slot = _slots[h.CommandId];
                    var data = pdu.Slice(h.Header.DataOffset, (int)h.DataLength);
                    if ((h.Header.Flags & PduFlags.DataDigest) != 0 &&
                        Crc32C.Compute(data) != BinaryPrimitives.ReadUInt32LittleEndian(pdu[(h.Header.DataOffset + (int)h.DataLength)..]))
                        DigestErrors++;
                    if (_o.Verify && !CheckPattern(data, (int)h.DataOffset, UnitToLba(slot.Unit), _written[slot.Unit]))
                        VerifyFailures++;
                    if ((h.Header.Flags & PduFlags.Success) != 0) return Complete(slot, NvmeStatus.Success);
                    return false;
                }
            case PduType.R2T:
                {
                    var r = MemoryMarshal.Read<R2TPdu>(pdu);
                    if (r.CommandId >= _slots.Length) { Fail($"R2T for unknown CID {r.CommandId}"); return false; }
                    var slot = _slots[r.CommandId];
                    slot.TransferTag = r.TransferTag;
                    slot.H2COffset = (int)r.Offset;
                    slot.H2CLength = (int)r.Length;
                    _ready.Enqueue(slot.Cid | (KindH2C << 16));
                    _ = hdl;
                    return true;
                }
            case PduType.C2HTermReq:
                Fail($"target sent C2HTermReq (FES {BinaryPrimitives.ReadUInt16LittleEndian(pdu[8..])})");
                return false;
            default:
                Fail($"unexpected PDU type {pdu[0]}");
                return false;
        }
    }

    private bool Complete(Slot slot, NvmeStatus status)
    {
        long now = Stopwatch.GetTimestamp();
        if (slot.Start >= MeasureStart && now <= MeasureEnd)
        {
            Latency.Record((long)((now - slot.Start) * (1e9 / Stopwatch.Frequency)));
            if (status != NvmeStatus.Success) Errors++;
            else
            {
                if (slot.IsWrite) Writes++; else Reads++;
                BytesMoved += _o.BlockSize;
            }
        }
        else if (status != NvmeStatus.Success) Errors++;
        if (_o.Verify)
        {
            if (slot.IsWrite && status == NvmeStatus.Success) _written[slot.Unit] = slot.Seed;
            _busy[slot.Unit] = false;
        }
        if (_stopping)
        {
            if (--_inflight == 0) _drained.TrySetResult();
            return false;
        }
        Prepare(slot);
        slot.Start = Stopwatch.GetTimestamp();
        _ready.Enqueue(slot.Cid);
        return true;
    }
}
