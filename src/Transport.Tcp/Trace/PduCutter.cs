using System.Buffers;
using System.Buffers.Binary;

namespace Transport.Tcp.Trace;

/// <summary>
/// Cuts one direction of a connection's byte stream, handed over in pieces of any size, into its PDUs (the common
/// header's PLEN says where each ends), so that a trace holds one record per PDU. With <see cref="TruncateData"/> set a
/// record keeps the PDU's header (and header digest, up to PDO) and at most that many bytes after it; the bytes left
/// out still count in the record's original length, so the stream's sequence numbers stay right. A stream that
/// stops making sense (PLEN shorter than a common header, or absurdly long) is passed on as it comes, untruncated:
/// the trace then shows the bytes that confused the target. Not thread-safe: one direction, one caller at a time.
/// </summary>
public sealed class PduCutter
{
    /// <summary>The common header: type, flags, HLEN, PDO, PLEN.</summary>
    public const int CommonHeaderSize = 8;
    /// <summary>PLEN above this is taken for garbage, not a PDU (MaxH2CData and MaxC2HData are far below it).</summary>
    public const int MaxPduLength = 16 * 1024 * 1024;

    public delegate void RecordSink(ReadOnlySpan<byte> captured, int originalLength);

    private readonly RecordSink _sink;
    private readonly byte[] _header = new byte[CommonHeaderSize];
    private int _headerHave;
    private byte[] _pdu = [];  // the captured part of the PDU being cut (rented)
    private int _pduHave;      // bytes of it in _pdu
    private int _keep;         // bytes of the PDU kept in the trace
    private int _length;       // PLEN of the PDU being cut; 0 between PDUs
    private int _seen;         // bytes of it seen so far
    private bool _raw;

    public PduCutter(RecordSink sink, int? truncateData)
    {
        if (truncateData < 0) throw new ArgumentOutOfRangeException(nameof(truncateData));
        _sink = sink;
        TruncateData = truncateData;
    }

    /// <summary>Data bytes kept per PDU after its header; null keeps all.</summary>
    public int? TruncateData { get; }

    /// <summary>True once the stream stopped parsing as PDUs (from then on pieces pass as they come).</summary>
    public bool Raw => _raw;

    public void Write(ReadOnlySequence<byte> bytes)
    {
        foreach (var segment in bytes) Write(segment.Span);
    }

    public void Write(ReadOnlySpan<byte> bytes)
    {
        while (!bytes.IsEmpty)
        {
            if (_raw)
            {
                _sink(bytes, bytes.Length);
                return;
            }
            if (_length == 0)
            {
                int n = Math.Min(CommonHeaderSize - _headerHave, bytes.Length);
                bytes[..n].CopyTo(_header.AsSpan(_headerHave));
                _headerHave += n;
                bytes = bytes[n..];
                if (_headerHave < CommonHeaderSize) return;
                if (!Begin()) continue; // raw from here: the header goes out as it is, then the rest
            }
            int take = Math.Min(_length - _seen, bytes.Length);
            int kept = Math.Clamp(_keep - _seen, 0, take);
            bytes[..kept].CopyTo(_pdu.AsSpan(_pduHave));
            _pduHave += kept;
            _seen += take;
            bytes = bytes[take..];
            if (_seen == _length) End();
        }
    }

    /// <summary>The common header is complete: sizes the PDU, or turns the stream raw when it cannot be one.</summary>
    private bool Begin()
    {
        _headerHave = 0;
        uint plen = BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(4));
        if (plen < CommonHeaderSize || plen > MaxPduLength)
        {
            _raw = true;
            _sink(_header, CommonHeaderSize);
            return false;
        }
        _length = (int)plen;
        int pdo = _header[3], hlen = _header[2];
        // What comes before the data: up to PDO when there is data, the whole PDU when there is none.
        int head = pdo != 0 ? pdo : _length;
        head = Math.Max(head, Math.Min(hlen, _length));
        _keep = TruncateData is int t ? (int)Math.Min((long)head + t, _length) : _length;
        if (_pdu.Length < _keep)
        {
            if (_pdu.Length > 0) ArrayPool<byte>.Shared.Return(_pdu);
            _pdu = ArrayPool<byte>.Shared.Rent(Math.Max(_keep, 256));
        }
        _header.CopyTo(_pdu, 0);
        _pduHave = Math.Min(CommonHeaderSize, _keep);
        _seen = CommonHeaderSize;
        if (_seen == _length) End();
        return true;
    }

    private void End()
    {
        _sink(_pdu.AsSpan(0, _pduHave), _length);
        _length = 0;
        _seen = 0;
        _pduHave = 0;
    }

    /// <summary>Bytes of a PDU begun but not finished (the connection ended in its middle): they go out as they are,
    /// with the length seen so far.</summary>
    public void Flush()
    {
        if (_length != 0)
        {
            _sink(_pdu.AsSpan(0, _pduHave), _seen);
            _length = 0;
            _seen = 0;
            _pduHave = 0;
        }
        if (_headerHave > 0)
        {
            _sink(_header.AsSpan(0, _headerHave), _headerHave);
            _headerHave = 0;
        }
        if (_pdu.Length > 0) ArrayPool<byte>.Shared.Return(_pdu);
        _pdu = [];
    }
}
