using Nvme.Core;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>Connection faults a test lab injects (see <see cref="IConnectionFaults"/>). Off, they cost the receive loop
/// one read of a field per PDU and one per batch.</summary>
public sealed partial class NvmeTcpQueue : IConnectionFaults
{
    private int _dropAfterPdus;   // > 0: PDUs to receive before the connection is cut
    private long _pauseUntilMs;   // != 0: the receive loop waits until this Environment.TickCount64

    public void DropAfterPdus(int pdus)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(pdus);
        if (pdus == 0) { DropNow("dropped"); return; }
        _log.FaultInjected(PeerAddress, HostNqn, _core.QueueId, $"connection to be dropped after {pdus} more PDU(s)");
        Volatile.Write(ref _dropAfterPdus, pdus);
    }

    /// <summary>Receive loop, after each PDU: true when the countdown reached 0 and the connection is cut.</summary>
    private bool DropCountdown()
    {
        if (Interlocked.Decrement(ref _dropAfterPdus) != 0) return false;
        DropNow("dropped after the PDU count");
        return true;
    }

    private void DropNow(string what)
    {
        _log.FaultInjected(PeerAddress, HostNqn, _core.QueueId, what);
        Interlocked.Increment(ref _metrics.FaultsInjected);
        Close(CloseReason.FaultInjected, "injected fault: connection " + what);
        _abort?.Invoke(); // a reset, as a cable pull or a crash looks to the host: queued answers are lost
    }

    public void SendTerminationRequest()
    {
        _log.FaultInjected(PeerAddress, HostNqn, _core.QueueId, "C2HTermReq sent");
        Interlocked.Increment(ref _metrics.FaultsInjected);
        const string why = "injected fault: C2HTermReq sent";
        SetCloseReason(CloseReason.FaultInjected, why); // before the writer, stopping after the TermReq, names a reason
        // FES 02h (PDU Sequence Error) with no offending header: the host treats it like any fatal transport error.
        Send(SendItem.TermReq(new PduError(FatalErrorStatus.PduSequenceError, 0, "injected"), []));
        Close(CloseReason.FaultInjected, why); // what is queued (the TermReq) still goes out
    }

    public void PauseReceive(TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(duration), "a pause must be longer than 0");
        _log.FaultInjected(PeerAddress, HostNqn, _core.QueueId, $"receiving paused for {duration.TotalMilliseconds:0} ms");
        Interlocked.Increment(ref _metrics.FaultsInjected);
        Volatile.Write(ref _pauseUntilMs, Environment.TickCount64 + (long)Math.Ceiling(duration.TotalMilliseconds));
    }

    /// <summary>Receive loop, before a read: waits out a pause (ends early when the connection closes).</summary>
    private async Task PauseIfAskedAsync()
    {
        while (!_closing)
        {
            long left = Volatile.Read(ref _pauseUntilMs) - Environment.TickCount64;
            if (left <= 0) break;
            await Task.Delay((int)Math.Min(left, 50)).ConfigureAwait(false);
        }
        Volatile.Write(ref _pauseUntilMs, 0);
    }

    public bool CorruptNextDataDigest()
    {
        if (!_writer.CorruptNextDataDigest()) return false;
        _log.FaultInjected(PeerAddress, HostNqn, _core.QueueId, "the next C2HData gets a wrong data digest");
        Interlocked.Increment(ref _metrics.FaultsInjected);
        return true;
    }
}
