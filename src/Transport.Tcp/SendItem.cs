using Nvme.Core.Spec;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>What a <see cref="SendItem"/> asks the writer to send.</summary>
internal enum SendKind : byte
{
    /// <summary>ICResp; its digests and HPDA apply to every later PDU.</summary>
    ICResp,
    /// <summary>R2T for the request's current window.</summary>
    R2T,
    /// <summary>A completed request: C2HData (reads) and CapsuleResp, or nothing but recycling after an abort.</summary>
    Response,
    /// <summary>A CapsuleResp for a request answered early (its own completion comes later and sends nothing).</summary>
    AbortResponse,
    /// <summary>C2HTermReq: the last PDU of the connection.</summary>
    TermReq,
}

/// <summary>
/// One thing for the connection's writer to send, in the order it was queued (Kestrel's Http2FrameWriter writes
/// frames in the order they are asked for). Small and unmanaged but for two references, so queueing one
/// allocates nothing.
/// </summary>
internal readonly struct SendItem
{
    private SendItem(SendKind kind, TcpRequest? request = null, in CompletionQueueEntry cqe = default, byte digest = 0, byte hpda = 0,
        bool closeAfter = false, TermRequest? term = null)
    {
        Kind = kind;
        Request = request;
        Cqe = cqe;
        Digest = digest;
        Hpda = hpda;
        CloseAfter = closeAfter;
        Term = term;
    }

    public SendKind Kind { get; }
    /// <summary><see cref="SendKind.R2T"/>, <see cref="SendKind.Response"/>.</summary>
    public TcpRequest? Request { get; }
    /// <summary><see cref="SendKind.AbortResponse"/>.</summary>
    public CompletionQueueEntry Cqe { get; }
    /// <summary><see cref="SendKind.ICResp"/>: DGST, bit 0 header digest, bit 1 data digest.</summary>
    public byte Digest { get; }
    /// <summary><see cref="SendKind.ICResp"/>: the host's HPDA (C2HData is padded to it).</summary>
    public byte Hpda { get; }
    /// <summary><see cref="SendKind.Response"/>: the core asked to close the connection once this response is out.</summary>
    public bool CloseAfter { get; }
    /// <summary><see cref="SendKind.TermReq"/>.</summary>
    public TermRequest? Term { get; }

    public static SendItem ICResp(byte digest, byte hpda) => new(SendKind.ICResp, digest: digest, hpda: hpda);
    public static SendItem R2T(TcpRequest request) => new(SendKind.R2T, request);
    public static SendItem Response(TcpRequest request) => new(SendKind.Response, request, closeAfter: request.CloseAfterResponse);
    public static SendItem Response(TcpRequest request, bool closeAfter) => new(SendKind.Response, request, closeAfter: closeAfter);
    public static SendItem AbortResponse(in CompletionQueueEntry cqe) => new(SendKind.AbortResponse, cqe: cqe);

    /// <summary>A C2HTermReq for <paramref name="error"/>, quoting (up to 128 bytes of) the PDU header in error.</summary>
    public static SendItem TermReq(PduError error, ReadOnlySpan<byte> offendingHeader) =>
        new(SendKind.TermReq, term: new TermRequest(error.Status, error.FieldOffset,
            offendingHeader[..Math.Min(offendingHeader.Length, TermReqPdu.MaxDataLength)].ToArray()));
}

/// <summary>A C2HTermReq's fields (one per connection at most, on the error path: a heap object is fine).</summary>
internal sealed record TermRequest(FatalErrorStatus Status, uint FieldOffset, byte[] OffendingHeader);
