using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Transport.Tcp.Trace;

/// <summary>
/// Turns one connection's byte streams (host to target, target to host) into IPv4 or IPv6 TCP packets a dissector
/// accepts as a real conversation: a three-way handshake first (a trace may start on a connection already open, and
/// Wireshark's TCP analysis wants to see the start), then data segments of at most <see cref="MaxSegmentPayload"/>
/// bytes with sequence numbers that follow each direction's stream offset and acknowledgements of all the other side
/// sent so far, then a FIN from each side. IPv4 header checksums are correct; the TCP checksum is correct when the
/// whole payload is captured and 0 when it was truncated (it cannot be computed then; Wireshark does not check it by
/// default). Packets are handed to a callback as (captured bytes, original length on the wire).
/// </summary>
public sealed class TcpStreamSynthesizer
{
    /// <summary>Largest payload of one synthesized segment: an IPv4 total length (IP + TCP headers + payload) must fit
    /// 16 bits, and so must an IPv6 payload length.</summary>
    public const int MaxSegmentPayload = 65535 - 20 - 20;

    public const byte Fin = 0x01, Syn = 0x02, Psh = 0x08, Ack = 0x10;

    public delegate void PacketSink(ReadOnlySpan<byte> captured, int originalLength);

    private readonly IPEndPoint _host, _target;
    private readonly bool _v6;
    private readonly uint _hostIsn, _targetIsn;
    private readonly byte[] _frame = new byte[40 + 20 + MaxSegmentPayload];
    private long _hostSent, _targetSent; // stream offsets: bytes each side sent so far
    private ushort _ipId;
    private bool _hostFin, _targetFin;

    public TcpStreamSynthesizer(IPEndPoint host, IPEndPoint target, uint hostIsn = 0x1000_0000, uint targetIsn = 0x2000_0000)
    {
        // A dual-mode listener reports IPv4 peers as ::ffff:a.b.c.d: traced as the IPv4 they are.
        _host = Normalise(host);
        _target = Normalise(target);
        _v6 = _host.AddressFamily == AddressFamily.InterNetworkV6;
        if (_target.AddressFamily != _host.AddressFamily) throw new ArgumentException("host and target addresses of different families");
        _hostIsn = hostIsn;
        _targetIsn = targetIsn;
    }

    private static IPEndPoint Normalise(IPEndPoint e) => e.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(e.Address.MapToIPv4(), e.Port) : e;

    public int HeaderLength => (_v6 ? 40 : 20) + 20;

    /// <summary>SYN (host), SYN-ACK (target), ACK (host): the sequence numbers start after them at ISN + 1.</summary>
    public void Handshake(PacketSink sink)
    {
        Emit(sink, fromHost: true, _hostIsn, 0, Syn, default, 0);
        Emit(sink, fromHost: false, _targetIsn, _hostIsn + 1, (byte)(Syn | Ack), default, 0);
        Emit(sink, fromHost: true, _hostIsn + 1, _targetIsn + 1, Ack, default, 0);
    }

    /// <summary>Sequence number of the next byte <paramref name="fromHost"/>'s side sends.</summary>
    public uint NextSeq(bool fromHost) => fromHost ? _hostIsn + 1 + (uint)_hostSent : _targetIsn + 1 + (uint)_targetSent;

    /// <summary>Data of one side: <paramref name="captured"/> is the start of <paramref name="originalLength"/> bytes
    /// that were on the wire (all of them unless truncated). Cut into segments; bytes not captured still advance the
    /// sequence numbers, so the segments after them line up.</summary>
    public void Data(PacketSink sink, bool fromHost, ReadOnlySpan<byte> captured, int originalLength)
    {
        if (captured.Length > originalLength) throw new ArgumentOutOfRangeException(nameof(originalLength));
        int done = 0;
        while (done < originalLength)
        {
            int n = Math.Min(MaxSegmentPayload, originalLength - done);
            int have = Math.Clamp(captured.Length - done, 0, n);
            Emit(sink, fromHost, NextSeq(fromHost), NextSeq(!fromHost), (byte)(Psh | Ack), captured.Slice(Math.Min(done, captured.Length), have), n);
            if (fromHost) _hostSent += n; else _targetSent += n;
            done += n;
        }
    }

    /// <summary>Bytes of one side that are not in the trace at all (left out when the trace fell behind): the
    /// sequence numbers move past them, so Wireshark shows a gap ("previous segment not captured") where they were.</summary>
    public void Skip(bool fromHost, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (fromHost) _hostSent += bytes; else _targetSent += bytes;
    }

    /// <summary>The side's FIN (once); the other side's acknowledgement comes with its own FIN or data.</summary>
    public void Close(PacketSink sink, bool fromHost)
    {
        ref bool sent = ref fromHost ? ref _hostFin : ref _targetFin;
        if (sent) return;
        sent = true;
        Emit(sink, fromHost, NextSeq(fromHost), NextSeq(!fromHost), (byte)(Fin | Ack), default, 0);
        if (fromHost) _hostSent++; else _targetSent++; // a FIN takes one sequence number
    }

    private void Emit(PacketSink sink, bool fromHost, uint seq, uint ack, byte flags, ReadOnlySpan<byte> payload, int payloadLength)
    {
        var src = fromHost ? _host : _target;
        var dst = fromHost ? _target : _host;
        int ipLen = _v6 ? 40 : 20;
        var f = _frame.AsSpan(0, ipLen + 20 + payload.Length);
        int tcpLength = 20 + payloadLength;
        if (_v6)
        {
            BinaryPrimitives.WriteUInt32BigEndian(f, 0x6000_0000);
            BinaryPrimitives.WriteUInt16BigEndian(f[4..], (ushort)tcpLength);
            f[6] = 6;   // next header: TCP
            f[7] = 64;  // hop limit
            src.Address.TryWriteBytes(f[8..24], out _);
            dst.Address.TryWriteBytes(f[24..40], out _);
        }
        else
        {
            f[0] = 0x45; // version 4, 5 words of header
            f[1] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f[2..], (ushort)(20 + tcpLength));
            BinaryPrimitives.WriteUInt16BigEndian(f[4..], _ipId++);
            BinaryPrimitives.WriteUInt16BigEndian(f[6..], 0x4000); // don't fragment
            f[8] = 64;  // TTL
            f[9] = 6;   // TCP
            f[10] = f[11] = 0;
            src.Address.TryWriteBytes(f[12..16], out _);
            dst.Address.TryWriteBytes(f[16..20], out _);
            BinaryPrimitives.WriteUInt16BigEndian(f[10..], InternetChecksum(f[..20], 0));
        }
        var t = f[ipLen..];
        BinaryPrimitives.WriteUInt16BigEndian(t, (ushort)src.Port);
        BinaryPrimitives.WriteUInt16BigEndian(t[2..], (ushort)dst.Port);
        BinaryPrimitives.WriteUInt32BigEndian(t[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(t[8..], (flags & Ack) != 0 ? ack : 0);
        t[12] = 5 << 4; // data offset: 5 words, no options
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t[14..], 65535); // window
        t[16] = t[17] = t[18] = t[19] = 0;
        payload.CopyTo(t[20..]);
        if (payload.Length == payloadLength)
        {
            // Pseudo-header: addresses, protocol, TCP length (RFC 793 / RFC 8200 8.1).
            uint sum = 6 + (uint)tcpLength;
            sum = Sum(f.Slice(_v6 ? 8 : 12, _v6 ? 32 : 8), sum);
            BinaryPrimitives.WriteUInt16BigEndian(t[16..], InternetChecksum(t[..(20 + payload.Length)], sum));
        }
        sink(f, ipLen + 20 + payloadLength);
    }

    private static uint Sum(ReadOnlySpan<byte> data, uint sum)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) sum += (uint)(data[i] << 8 | data[i + 1]);
        if (i < data.Length) sum += (uint)(data[i] << 8);
        while (sum >> 16 != 0) sum = (sum & 0xFFFF) + (sum >> 16);
        return sum;
    }

    /// <summary>The Internet checksum (RFC 1071) of <paramref name="data"/> plus <paramref name="initial"/>.</summary>
    public static ushort InternetChecksum(ReadOnlySpan<byte> data, uint initial)
    {
        uint s = Sum(data, initial);
        ushort r = (ushort)~s;
        return r;
    }
}
