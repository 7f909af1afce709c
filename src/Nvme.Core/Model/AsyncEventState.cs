using Nvme.Core.Spec;

namespace Nvme.Core.Model;

/// <summary>
/// Per-controller asynchronous event state (NVMe base spec 5.2): parked Async Event Requests, events waiting
/// for a request, the Changed Namespace List (log 04h) and the notice mask that holds further namespace
/// notices back until the host reads the log with RAE=0.
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
            if (_parked.TryDequeue(out var req))
            {
                req.IsParked = false; // its completion follows now
                req.Cqe.Dword0 = AsyncEvent.NamespaceAttributeChangedDword0;
                return req;
            }
            _pending.Enqueue(AsyncEvent.NamespaceAttributeChangedDword0);
            return null;
        }
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
                // the host has already read (namespace notices are the only events queued here).
                _pending.Clear();
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
