using Nvme.Core.Spec;

namespace Nvme.Core.Model;

/// <summary>
/// Per-controller asynchronous event state (NVMe base spec 5.2): parked Async Event Requests, events waiting
/// for a request, the Changed Namespace List (log 04h) and, per notice type, the mask that holds further notices
/// of that type back until the host reads its log with RAE=0 (namespace notices: log 04h; ANA change: log 0Ch).
/// </summary>
internal sealed class AsyncEventState
{
    public const int ChangedListCapacity = 1024;

    private readonly Lock _lock = new();
    private readonly Queue<NvmeRequest> _parked = new();
    private readonly Queue<uint> _pending = new();
    private readonly SortedSet<uint> _changed = new();
    private bool _changedOverflow;
    private bool _nsNoticeMasked;
    private bool _anaNoticeMasked;
    private readonly int _limit;

    public AsyncEventState(int limit) => _limit = limit;

    /// <summary>Async Event Configuration (Set Features 0Bh).</summary>
    public uint Config;

    public int ParkedCount { get { lock (_lock) return _parked.Count; } }

    /// <summary>Parks an AER, or returns the event dword0 to complete it with at once. Returns false when
    /// the limit is exceeded.</summary>
    public bool TryPark(NvmeRequest req, out uint? completeNowWith)
    {
        lock (_lock)
        {
            if (_pending.TryDequeue(out var ev)) { completeNowWith = ev; return true; }
            completeNowWith = null;
            if (_parked.Count >= _limit) return false;
            req.IsParked = true;
            _parked.Enqueue(req);
            return true;
        }
    }

    /// <summary>Records an NSID change; returns the parked request to complete (dword0 set), if any.</summary>
    public NvmeRequest? NamespaceChanged(uint nsid)
    {
        lock (_lock)
        {
            if (!_changedOverflow)
            {
                _changed.Add(nsid);
                if (_changed.Count > ChangedListCapacity) { _changed.Clear(); _changedOverflow = true; }
            }
            if ((Config & AsyncEvent.ConfigNamespaceAttributeNotices) == 0 || _nsNoticeMasked) return null;
            _nsNoticeMasked = true;
            return CompleteOrQueue(AsyncEvent.NamespaceAttributeChangedDword0);
        }
    }

    /// <summary>An ANA change (state or group membership); returns the parked request to complete (dword0 set), if any.
    /// Masked from then on until the host reads the ANA log with RAE=0 (as the kernel target's aen_masked bit).</summary>
    public NvmeRequest? AnaChanged()
    {
        lock (_lock)
        {
            if ((Config & AsyncEvent.ConfigAnaChangeNotices) == 0 || _anaNoticeMasked) return null;
            _anaNoticeMasked = true;
            return CompleteOrQueue(AsyncEvent.AnaChangeDword0);
        }
    }

    /// <summary>The host read the ANA log: with RAE=0 the notice is unmasked and a queued one dropped (the host has read
    /// what it would report).</summary>
    public void AnaLogRead(bool retainAsyncEvent)
    {
        if (retainAsyncEvent) return;
        lock (_lock)
        {
            _anaNoticeMasked = false;
            DropPending(AsyncEvent.AnaChangeDword0);
        }
    }

    private NvmeRequest? CompleteOrQueue(uint dword0)
    {
        if (_parked.TryDequeue(out var req))
        {
            req.IsParked = false; // its completion follows now
            req.Cqe.Dword0 = dword0;
            return req;
        }
        _pending.Enqueue(dword0);
        return null;
    }

    private void DropPending(uint dword0)
    {
        if (!_pending.Contains(dword0)) return;
        var keep = _pending.Where(e => e != dword0).ToArray();
        _pending.Clear();
        foreach (var e in keep) _pending.Enqueue(e);
    }

    /// <summary>Fills the Changed Namespace List log (4096 bytes) and clears it; RAE=0 unmasks the notice.</summary>
    public void ReadChangedList(Span<byte> log, bool retainAsyncEvent)
    {
        Span<byte> page = stackalloc byte[4096];
        page.Clear();
        lock (_lock)
        {
            if (_changedOverflow) System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(page, 0xFFFFFFFF);
            else
            {
                int i = 0;
                foreach (var nsid in _changed) System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(page[(4 * i++)..], nsid);
            }
            _changed.Clear();
            _changedOverflow = false;
            if (!retainAsyncEvent)
            {
                _nsNoticeMasked = false;
                // The read clears the event: a notice still queued for the next AER would report a change
                // the host has already read.
                DropPending(AsyncEvent.NamespaceAttributeChangedDword0);
            }
        }
        page[..Math.Min(log.Length, page.Length)].CopyTo(log);
    }

    /// <summary>Removes every parked request (controller teardown); they are never completed (and stay
    /// <see cref="NvmeRequest.IsParked"/>: nothing will answer them).</summary>
    public void Clear()
    {
        lock (_lock) { _parked.Clear(); _pending.Clear(); }
    }
}
