using Nvme.Core.Model;

namespace Nvme.Core;

/// <summary>Told when a buffer <see cref="DataBufferPool.TryRent"/> could not give at once is attached.</summary>
public interface IDataBufferWaiter
{
    /// <summary>Any thread, no lock held: <paramref name="request"/> now has its buffer.</summary>
    void BufferGranted(NvmeRequest request);
}

/// <summary>
/// The target's large data buffers (more than <see cref="SmallLimit"/> bytes, admin and I/O queues alike), under
/// one byte budget. Buffers come in power-of-two sizes, are pinned and reused; created bytes never exceed the
/// budget (free buffers of another size are dropped to make room). No host NQN may hold more than its share of
/// the budget (<see cref="TargetLimits.HostBufferShare"/>), so one host that never sends the data for its R2Ts
/// cannot starve the others.
/// <para>
/// A request that cannot have a buffer waits in its host's FIFO. Hosts whose first waiter fits their share are
/// served round-robin, one buffer each in turn, as buffers come back; while one of them waits for the budget,
/// newcomers do not overtake it (so a large command is never starved by small ones). A host at its share is left
/// out of that round until one of its own buffers comes back: it waits, the others do not. The queues are linked
/// through the requests and the host accounts themselves, so waiting allocates nothing.
/// </para>
/// Small buffers (in-capsule data, most admin pages) use the shared ArrayPool.
/// </summary>
public sealed class DataBufferPool
{
    /// <summary>Buffers up to this size are not budgeted (a 4 KiB command never waits).</summary>
    public const int SmallLimit = 16 * 1024;
    private const int MinClassShift = 15; // 32 KiB

    private readonly Lock _lock = new();
    private readonly Stack<byte[]>[] _free;
    private readonly long _budget;
    private readonly long _hostShare;
    // Requests of no host (no controller: tests, tools) share one account without a share limit.
    private readonly HostAccount _unattributed = new("", unlimited: true);
    // Hosts with a waiter that fits their share, in round-robin order (linked through the accounts).
    private HostAccount? _roundHead, _roundTail;
    private long _created;
    private long _inUseBytes;
    private int _inUse;
    private int _waiting;
    private long _shareWaits;

    public DataBufferPool(TargetLimits limits)
    {
        int maxShift = ClassShift(limits.MaxTransferBytes);
        _free = new Stack<byte[]>[maxShift - MinClassShift + 1];
        for (int i = 0; i < _free.Length; i++) _free[i] = new Stack<byte[]>();
        _budget = Math.Max(limits.DataBufferBudget, 1L << maxShift);
        // A host may always hold one largest buffer, or its largest command could never run.
        _hostShare = Math.Max(_budget * Math.Clamp(limits.HostBufferShare, 1, 100) / 100, 1L << maxShift);
    }

    /// <summary>Bytes all buffers may take together.</summary>
    public long Budget => _budget;
    /// <summary>Bytes of buffers one host NQN may hold at once.</summary>
    public long HostShare => _hostShare;
    /// <summary>Bytes of buffers in existence (in use or free), at most the budget.</summary>
    public long CreatedBytes { get { lock (_lock) return _created; } }
    /// <summary>Bytes of buffers attached to requests right now.</summary>
    public long InUseBytes { get { lock (_lock) return _inUseBytes; } }
    /// <summary>Buffers attached to requests right now.</summary>
    public int InUse => Volatile.Read(ref _inUse);
    /// <summary>Requests waiting for a buffer.</summary>
    public int Waiting => Volatile.Read(ref _waiting);
    /// <summary>Requests that had to wait because their host held its share of the budget.</summary>
    public long ShareWaits => Interlocked.Read(ref _shareWaits);

    private static int ClassShift(int size) => Math.Max(MinClassShift, 32 - System.Numerics.BitOperations.LeadingZeroCount((uint)size - 1));
    private static long ClassSize(NvmeRequest r) => 1L << ClassShift(r.DataLength);

    /// <summary>Attaches a buffer of at least <see cref="NvmeRequest.DataLength"/> bytes to <paramref name="request"/>,
    /// charged to the host of its queue's controller, or queues it: then <paramref name="waiter"/> is told once it
    /// has one. False means: wait.</summary>
    public bool TryRent(NvmeRequest request, IDataBufferWaiter waiter) => TryRent(request, waiter, request.Queue?.Controller?.Host);

    /// <summary>As <see cref="TryRent(NvmeRequest, IDataBufferWaiter)"/>, charged to <paramref name="host"/> (null:
    /// no host, no share limit).</summary>
    public bool TryRent(NvmeRequest request, IDataBufferWaiter waiter, HostAccount? host)
    {
        host ??= _unattributed;
        long size = ClassSize(request);
        byte[]? buffer = null;
        lock (_lock)
        {
            bool atShare = !Fits(host, size);
            // FIFO within a host; no overtaking of a host that waits for the budget itself.
            if (!atShare && host.WaitHead is null && _roundHead is null) buffer = Take(ClassShift(request.DataLength));
            if (buffer is null)
            {
                if (atShare) _shareWaits++;
                Enqueue(host, request, waiter);
                return false;
            }
            Charge(host, buffer);
        }
        request.AttachPooledBuffer(buffer, this, host);
        return true;
    }

    /// <summary>Takes a request out of the waiting list (its queue is closing); false when it was granted already.</summary>
    public bool CancelWait(NvmeRequest request)
    {
        NvmeRequest? granted;
        lock (_lock)
        {
            var host = request.WaitHost;
            if (host is null) return false;
            Unlink(host, request);
            // It may have been the one holding up the round (the budget) or its host's line (the share).
            UpdateRound(host);
            granted = Dispatch();
        }
        Grant(granted);
        return true;
    }

    internal void Return(byte[] buffer, HostAccount host)
    {
        NvmeRequest? granted;
        lock (_lock)
        {
            _free[ClassShift(buffer.Length) - MinClassShift].Push(buffer);
            _inUse--;
            _inUseBytes -= buffer.Length;
            host.BufferBytesHeld -= buffer.Length;
            UpdateRound(host); // the host may be back under its share
            granted = Dispatch();
        }
        Grant(granted);
    }

    // ------------------------------------------------------------------ under the lock

    private bool Fits(HostAccount host, long size) => host.Unlimited || host.BufferBytesHeld + size <= _hostShare;

    private void Charge(HostAccount host, byte[] buffer)
    {
        _inUse++;
        _inUseBytes += buffer.Length;
        host.BufferBytesHeld += buffer.Length;
    }

    private void Enqueue(HostAccount host, NvmeRequest request, IDataBufferWaiter waiter)
    {
        request.Waiter = waiter;
        request.WaitHost = host;
        request.WaitPrev = host.WaitTail;
        request.WaitNext = null;
        if (host.WaitTail is null) host.WaitHead = request; else host.WaitTail.WaitNext = request;
        host.WaitTail = request;
        _waiting++;
        UpdateRound(host);
    }

    private void Unlink(HostAccount host, NvmeRequest request)
    {
        if (request.WaitPrev is null) host.WaitHead = request.WaitNext; else request.WaitPrev.WaitNext = request.WaitNext;
        if (request.WaitNext is null) host.WaitTail = request.WaitPrev; else request.WaitNext.WaitPrev = request.WaitPrev;
        request.WaitPrev = request.WaitNext = null;
        request.WaitHost = null;
        _waiting--;
    }

    /// <summary>Puts <paramref name="host"/> in the round (at the end) when its first waiter fits its share, takes
    /// it out when nothing of it can be served.</summary>
    private void UpdateRound(HostAccount host)
    {
        bool belongs = host.WaitHead is { } head && Fits(host, ClassSize(head));
        if (belongs == host.InRound) return;
        if (!belongs)
        {
            RemoveFromRound(host);
            return;
        }
        host.RoundPrev = _roundTail;
        host.RoundNext = null;
        if (_roundTail is null) _roundHead = host; else _roundTail.RoundNext = host;
        _roundTail = host;
        host.InRound = true;
    }

    private void RemoveFromRound(HostAccount host)
    {
        if (!host.InRound) return;
        if (host.RoundPrev is null) _roundHead = host.RoundNext; else host.RoundPrev.RoundNext = host.RoundNext;
        if (host.RoundNext is null) _roundTail = host.RoundPrev; else host.RoundNext.RoundPrev = host.RoundPrev;
        host.RoundPrev = host.RoundNext = null;
        host.InRound = false;
    }

    /// <summary>Serves the round: the first host's first waiter gets a buffer if the budget allows, and the host goes
    /// to the end of the round; stops at the first that the budget cannot serve. Returns the granted requests, linked
    /// through <see cref="NvmeRequest.WaitNext"/>, buffers in <see cref="NvmeRequest.GrantedBuffer"/>.</summary>
    private NvmeRequest? Dispatch()
    {
        NvmeRequest? first = null, last = null;
        while (_roundHead is { } host)
        {
            var request = host.WaitHead!;
            var buffer = Take(ClassShift(request.DataLength));
            if (buffer is null) break;
            Unlink(host, request); // no longer waiting: CancelWait now says "granted already"
            request.GrantedBuffer = buffer;
            request.GrantedHost = host;
            Charge(host, buffer);
            RemoveFromRound(host);
            UpdateRound(host); // back at the end of the round if its next waiter fits its share
            if (last is null) first = request; else last.WaitNext = request;
            last = request;
        }
        return first;
    }

    /// <summary>Under the lock: a free buffer of the class, or a new one if the budget allows (dropping free
    /// buffers of other classes to make room); null when the budget is spent.</summary>
    private byte[]? Take(int shift)
    {
        var stack = _free[shift - MinClassShift];
        if (stack.TryPop(out var b)) return b;
        long size = 1L << shift;
        for (int i = 0; i < _free.Length && _created + size > _budget; i++)
            while (_created + size > _budget && _free[i].TryPop(out var drop)) _created -= drop.Length;
        if (_created + size > _budget) return null;
        _created += size;
        return GC.AllocateUninitializedArray<byte>((int)size, pinned: true);
    }

    // ------------------------------------------------------------------ outside the lock

    /// <summary>Attaches the buffers and tells the waiters (no lock held: a waiter may run the command at once).</summary>
    private void Grant(NvmeRequest? granted)
    {
        while (granted is { } r)
        {
            granted = r.WaitNext;
            var (buffer, host, waiter) = (r.GrantedBuffer!, r.GrantedHost!, r.Waiter!);
            r.WaitNext = null;
            r.Waiter = null;
            r.GrantedBuffer = null;
            r.GrantedHost = null;
            r.AttachPooledBuffer(buffer, this, host);
            waiter.BufferGranted(r);
        }
    }
}
