using Nvme.Core;

namespace Transport.Tcp;

internal enum RequestState : byte { Free, AwaitingBuffer, AwaitingData, Executing }

/// <summary>A pooled request of one connection. <see cref="Tag"/> is its slot, used as the R2T transfer tag.</summary>
internal sealed class TcpRequest : NvmeRequest
{
    public TcpRequest(ushort tag) => Tag = tag;

    public ushort Tag { get; }
    public RequestState State;
    /// <summary>Current R2T window and how much of it has arrived.</summary>
    public int R2TOffset, R2TLength, Received;
    /// <summary>When the current R2T was queued (Environment.TickCount64), for the r2t deadline.</summary>
    public long R2TSentAt;
    public bool DataDigestError;

    public override void Reset()
    {
        base.Reset();
        State = RequestState.Free;
        R2TOffset = R2TLength = Received = 0;
        DataDigestError = false;
    }
}
