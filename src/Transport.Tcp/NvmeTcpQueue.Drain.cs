namespace Transport.Tcp;

public sealed partial class NvmeTcpQueue
{
    private volatile bool _draining;
    private int _ignoredWhileDraining;

    /// <summary>True once <see cref="BeginDrain"/> was called.</summary>
    public bool IsDraining => _draining;

    /// <summary>
    /// Graceful shutdown of this connection: new commands are no longer taken (the host retries them after it
    /// reconnects); commands already received run to completion (write data still arriving through R2T/H2CData
    /// is accepted) and their responses are sent; then the connection closes. An admin queue stays until its
    /// controller has no I/O queue left, so that closing it (which destroys the controller) cuts no I/O short.
    /// Parked Asynchronous Event Requests do not hold the connection open. Thread-safe, idempotent.
    /// </summary>
    public void BeginDrain()
    {
        if (_draining) return;
        _draining = true;
        _ = WatchDrainAsync();
    }

    private async Task WatchDrainAsync()
    {
        while (!_closing)
        {
            if (IsQuiescent())
            {
                _log.Drained(PeerAddress, HostNqn, _core.QueueId, Volatile.Read(ref _ignoredWhileDraining));
                Close(CloseReason.Shutdown, "target shutting down");
                return;
            }
            await Task.Delay(20).ConfigureAwait(false);
        }
    }

    /// <summary>Nothing left to answer: every request slot is free, or holds a request the core parked (an Async
    /// Event Request, answered only when an event comes), and the core says no I/O queue depends on this one.</summary>
    private bool IsQuiescent()
    {
        int count = Volatile.Read(ref _slotCount);
        var slots = Volatile.Read(ref _slots);
        for (int i = 0; i < Math.Min(count, slots.Length); i++)
        {
            var req = Volatile.Read(ref slots[i]);
            if (req is null) continue;
            var state = req.State;
            if (state == RequestState.Free) continue;
            if (state == RequestState.Executing && req.IsParked) continue;
            return false;
        }
        return !_core.HoldsIoQueues;
    }
}
