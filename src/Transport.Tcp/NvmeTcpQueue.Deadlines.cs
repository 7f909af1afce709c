namespace Transport.Tcp;

/// <summary>Which deadline a connection missed (the deadline label of nvmet_tcp_deadlines_expired_total).</summary>
public enum TcpDeadline { Connect, Pdu, R2T }

public sealed partial class NvmeTcpQueue
{
    // The deadlines cost the I/O path a timestamp per R2T and per receive that ends inside a PDU; a timer per
    // connection compares them with the clock a few times per deadline, so no timer is re-armed per read.
    private Timer? _watchdog;
    private long _acceptedAt;
    /// <summary>When the first byte of the PDU still incomplete arrived (Environment.TickCount64); 0: none.</summary>
    private long _pduStartedAt;
    private int _expired;

    private static bool IsOn(TimeSpan t) => t > TimeSpan.Zero && t != Timeout.InfiniteTimeSpan;

    private void StartWatchdog()
    {
        _acceptedAt = Environment.TickCount64;
        var shortest = new[] { _options.ConnectTimeout, _options.PduTimeout, _options.R2TTimeout }.Where(IsOn).DefaultIfEmpty(TimeSpan.Zero).Min();
        if (shortest == TimeSpan.Zero) return;
        // A deadline is seen at most a quarter of itself late (at most 1 s).
        var period = TimeSpan.FromMilliseconds(Math.Clamp(shortest.TotalMilliseconds / 4, 10, 1000));
        _watchdog = new Timer(static s => ((NvmeTcpQueue)s!).CheckDeadlines(), this, period, period);
    }

    /// <summary>Receive loop, after a batch: the PDU left incomplete in <paramref name="remaining"/> started now,
    /// unless it is the one that was incomplete before (no PDU completed in between).</summary>
    private void TrackPartialPdu(long remaining, bool completedAny)
    {
        if (remaining == 0) Volatile.Write(ref _pduStartedAt, 0);
        else if (completedAny || Volatile.Read(ref _pduStartedAt) == 0) Volatile.Write(ref _pduStartedAt, Math.Max(1, Environment.TickCount64));
    }

    /// <summary>Timer thread.</summary>
    private void CheckDeadlines()
    {
        if (_closing) return;
        long now = Environment.TickCount64;
        if (IsOn(_options.ConnectTimeout) && !_installed && now - _acceptedAt >= (long)_options.ConnectTimeout.TotalMilliseconds)
        {
            Expire(TcpDeadline.Connect, _options.ConnectTimeout, _icDone ? "no successful Connect after the ICReq" : "no ICReq");
            return;
        }
        long started = Volatile.Read(ref _pduStartedAt);
        if (IsOn(_options.PduTimeout) && started != 0 && now - started >= (long)_options.PduTimeout.TotalMilliseconds)
        {
            Expire(TcpDeadline.Pdu, _options.PduTimeout, "a PDU started but did not complete");
            return;
        }
        if (!IsOn(_options.R2TTimeout)) return;
        long r2tLimit = (long)_options.R2TTimeout.TotalMilliseconds;
        int count = Volatile.Read(ref _slotCount);
        var slots = Volatile.Read(ref _slots);
        for (int i = 0; i < Math.Min(count, slots.Length); i++)
        {
            if (Volatile.Read(ref slots[i]) is not { } req || req.State != RequestState.AwaitingData) continue;
            if (now - Volatile.Read(ref req.R2TSentAt) < r2tLimit) continue;
            Expire(TcpDeadline.R2T, _options.R2TTimeout, $"no data for the R2T of command {req.Sqe.CommandId} ({req.R2TLength} bytes at offset {req.R2TOffset})");
            return;
        }
    }

    /// <summary>Closes the connection for a missed deadline (once). Commands still waiting for data fail as the
    /// connection goes (their buffers go back to the pool); the host retries them after reconnecting.</summary>
    private void Expire(TcpDeadline deadline, TimeSpan limit, string what)
    {
        if (Interlocked.Exchange(ref _expired, 1) != 0) return;
        _log.DeadlineExpired(PeerAddress, HostNqn, _core.QueueId, deadline.ToString().ToLowerInvariant(), limit.TotalSeconds, what);
        _metrics.DeadlineExpired(deadline);
        Close(CloseReasons.Of(deadline), $"missed the {deadline.ToString().ToLowerInvariant()} deadline: {what}");
    }
}
