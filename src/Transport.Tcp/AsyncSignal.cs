using System.Threading.Tasks.Sources;

namespace Transport.Tcp;

/// <summary>
/// An allocation-free auto-reset signal with one waiter (the connection's writer loop). Many threads may
/// <see cref="Set"/>; sets that happen while nobody waits collapse into one wake-up, which is what batches
/// responses into one flush.
/// </summary>
internal sealed class AsyncSignal : IValueTaskSource, IThreadPoolWorkItem
{
    private const int Idle = 0, Signaled = 1, Waiting = 2;
    // The waiter resumes on a thread-pool thread (never inside the caller of Set, which may hold locks), queued
    // through this object itself: IThreadPoolWorkItem, so a wake-up allocates nothing.
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = false };
    private int _state;

    public void Set()
    {
        if (Release()) ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>Like <see cref="Set"/>, but a waiting waiter runs now, on this thread, before this returns. Only
    /// for a caller that holds no lock and may do the waiter's work itself (the receive loop at a batch end).</summary>
    public void SetInline()
    {
        if (Release()) _core.SetResult(true);
    }

    /// <summary>Signals; true when a waiter was waiting and is now the caller's to resume.</summary>
    private bool Release()
    {
        while (true)
        {
            int s = Volatile.Read(ref _state);
            if (s == Signaled) return false;
            if (s == Idle)
            {
                if (Interlocked.CompareExchange(ref _state, Signaled, Idle) == Idle) return false;
            }
            else if (Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting) return true;
        }
    }

    public ValueTask WaitAsync()
    {
        if (Interlocked.CompareExchange(ref _state, Idle, Signaled) == Signaled) return default;
        _core.Reset();
        if (Interlocked.CompareExchange(ref _state, Waiting, Idle) != Idle)
        {
            Volatile.Write(ref _state, Idle); // set in between: consume it
            return default;
        }
        return new ValueTask(this, _core.Version);
    }

    void IThreadPoolWorkItem.Execute() => _core.SetResult(true);

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);
    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
