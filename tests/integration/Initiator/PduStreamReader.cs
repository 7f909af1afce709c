using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Transport.Tcp.Pdu;

namespace Integration.Tests.Initiator;

/// <summary>A controller-to-host PDU as received: the header (HLEN bytes) and the data (digests stripped
/// after they were verified).</summary>
public sealed class ReceivedPduBytes
{
    public required PduType Type { get; init; }
    public required byte Flags { get; init; }
    public required byte HeaderLength { get; init; }
    public required byte DataOffset { get; init; }
    public required uint PduLength { get; init; }
    public required byte[] Header { get; init; }
    public required byte[] Data { get; init; }

    public T As<T>() where T : unmanaged => MemoryMarshal.Read<T>(Header);
    public override string ToString() => $"{Type} flags 0x{Flags:x2} hlen {HeaderLength} pdo {DataOffset} plen {PduLength}";
}

/// <summary>
/// Reads PDUs from a stream and checks them as the Linux host does: HLEN for the type, digest flags equal to
/// what was negotiated, PDO (CPDA 0), PLEN consistent with the header, the header digest and data digest.
/// Any violation throws <see cref="NvmeTcpProtocolException"/>.
/// </summary>
public sealed class PduStreamReader
{
    /// <summary>Largest PLEN we accept (the target's C2HData PDUs are at most 128 KiB of data by default).</summary>
    public const int MaxPduLength = 16 << 20;

    private readonly Stream _stream;
    private readonly byte[] _ch = new byte[CommonHeader.Size];

    public PduStreamReader(Stream stream) => _stream = stream;

    public bool HeaderDigest { get; set; }
    public bool DataDigest { get; set; }
    /// <summary>The HPDA this host asked for: C2HData's PDO must honour it.</summary>
    public byte Hpda { get; set; }

    /// <summary>The next PDU, or null when the peer closed the connection cleanly between PDUs.</summary>
    public async Task<ReceivedPduBytes?> ReadAsync(CancellationToken ct = default)
    {
        int got = 0;
        while (got < CommonHeader.Size)
        {
            int n = await _stream.ReadAsync(_ch.AsMemory(got), ct).ConfigureAwait(false);
            if (n == 0)
            {
                if (got == 0) return null;
                throw new NvmeTcpProtocolException($"connection closed after {got} bytes of a PDU common header");
            }
            got += n;
        }
        var type = (PduType)_ch[0];
        byte flags = _ch[1], hlen = _ch[2], pdo = _ch[3];
        uint plen = BinaryPrimitives.ReadUInt32LittleEndian(_ch.AsSpan(4));
        int expectedHlen = type switch
        {
            PduType.ICResp => InitializeConnectionPdu.Size,
            PduType.CapsuleResp => CapsuleResponsePdu.Size,
            PduType.C2HData => DataPdu.Size,
            PduType.R2T => R2TPdu.Size,
            PduType.C2HTermReq => TermReqPdu.Size,
            _ => throw new NvmeTcpProtocolException($"unsupported pdu type 0x{(byte)type:x2} from the target"),
        };
        if (hlen != expectedHlen) throw new NvmeTcpProtocolException($"{type}: HLEN {hlen}, expected {expectedHlen}");
        if (plen < hlen || plen > MaxPduLength) throw new NvmeTcpProtocolException($"{type}: PLEN {plen} out of range");

        bool noDigests = type is PduType.ICResp or PduType.C2HTermReq;
        bool hdgst = HeaderDigest && !noDigests;
        if (!noDigests && ((flags & PduFlags.HeaderDigest) != 0) != hdgst)
            throw new NvmeTcpProtocolException($"{type}: HDGSTF flag is {(flags & PduFlags.HeaderDigest) != 0}, negotiated {hdgst}");
        int hd = hdgst ? 4 : 0;
        var rest = new byte[plen - CommonHeader.Size];
        await _stream.ReadExactlyAsync(rest, ct).ConfigureAwait(false);
        var all = new byte[plen];
        _ch.CopyTo(all, 0);
        rest.CopyTo(all, CommonHeader.Size);
        var header = all.AsSpan(0, hlen).ToArray();
        if (plen < hlen + hd) throw new NvmeTcpProtocolException($"{type}: PLEN {plen} has no room for the header digest");
        if (hdgst)
        {
            uint expected = SoftwareCrc32C.Compute(header);
            uint received = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(hlen));
            if (expected != received) throw new NvmeTcpProtocolException($"{type}: header digest error (0x{received:x8}, expected 0x{expected:x8})");
        }

        byte[] data;
        if (type is PduType.C2HData)
        {
            bool ddgst = DataDigest;
            if (((flags & PduFlags.DataDigest) != 0) != ddgst)
                throw new NvmeTcpProtocolException($"C2HData: DDGSTF flag is {(flags & PduFlags.DataDigest) != 0}, negotiated {ddgst}");
            int alignment = (Hpda + 1) * 4;
            int expectedPdo = (hlen + hd + alignment - 1) / alignment * alignment; // the smallest offset HPDA allows
            if (pdo != expectedPdo) throw new NvmeTcpProtocolException($"C2HData: PDO {pdo}, expected {expectedPdo} (HPDA {Hpda})");
            if (all.AsSpan(hlen + hd, pdo - hlen - hd).IndexOfAnyExcept((byte)0) >= 0) throw new NvmeTcpProtocolException("C2HData: PAD is not zero");
            int dd = ddgst ? 4 : 0;
            long dataLength = plen - pdo - dd;
            if (dataLength <= 0) throw new NvmeTcpProtocolException($"C2HData: PLEN {plen} carries no data");
            data = all.AsSpan(pdo, (int)dataLength).ToArray();
            if (ddgst)
            {
                uint expected = SoftwareCrc32C.Compute(data);
                uint received = BinaryPrimitives.ReadUInt32LittleEndian(all.AsSpan(pdo + (int)dataLength));
                if (expected != received) throw new NvmeTcpProtocolException($"C2HData: data digest error (0x{received:x8}, expected 0x{expected:x8})");
            }
        }
        else if (type is PduType.C2HTermReq)
        {
            if (plen > hlen + TermReqPdu.MaxDataLength) throw new NvmeTcpProtocolException($"C2HTermReq: PLEN {plen} above {hlen + TermReqPdu.MaxDataLength}");
            data = all.AsSpan(hlen).ToArray();
        }
        else
        {
            if (plen != hlen + hd) throw new NvmeTcpProtocolException($"{type}: PLEN {plen}, expected {hlen + hd} (no data)");
            if ((flags & PduFlags.DataDigest) != 0) throw new NvmeTcpProtocolException($"{type}: DDGSTF set on a PDU without data");
            data = [];
        }
        return new ReceivedPduBytes { Type = type, Flags = flags, HeaderLength = hlen, DataOffset = pdo, PduLength = plen, Header = header, Data = data };
    }
}
