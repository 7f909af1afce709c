using Microsoft.Extensions.Logging;
using Nvme.Core.Auth;
using Nvme.Core.Spec;

namespace Nvme.Core.Model;

/// <summary>
/// A controller a host created with an admin-queue Connect (dynamic controller model): its properties
/// (CC/CSTS), features, keep-alive clock, async event state, error log and the queues bound to it.
/// </summary>
public sealed class Controller
{
    private readonly FabricQueue?[] _queues;
    private readonly Lock _lock = new();
    private readonly ErrorLogEntry[] _errorLog;
    private long _errorCount;
    private long _lastActivity;
    private int _destroyed;

    internal Controller(NvmeTarget target, Subsystem subsystem, ushort cntlid, string hostNqn, Guid hostId, uint kato, ushort portId,
        HostAccount host, TransportDescriptor transport)
    {
        Transport = transport;
        PortId = portId;
        Host = host;
        Target = target;
        Subsystem = subsystem;
        Cntlid = cntlid;
        HostNqn = hostNqn;
        HostId = hostId;
        SetKeepAliveTimeout(kato);
        _queues = new FabricQueue?[target.Limits.MaxIoQueues + 1];
        _errorLog = new ErrorLogEntry[target.Limits.ErrorLogEntries];
        AsyncEvents = new AsyncEventState(target.Limits.AsyncEventRequestLimit + 1);
        AllocatedIoQueues = target.Limits.MaxIoQueues;
        Touch();
    }

    public NvmeTarget Target { get; }
    public Subsystem Subsystem { get; }
    public ushort Cntlid { get; }
    public string HostNqn { get; }
    public Guid HostId { get; }
    public bool IsDiscovery => Subsystem.Kind == SubsystemKind.Discovery;
    /// <summary>The transport of the admin queue, as it describes itself (error log TRTYPE, IOCCSZ).</summary>
    public TransportDescriptor Transport { get; }
    /// <summary>The port the admin queue came in on (0 = not known).</summary>
    public ushort PortId { get; }
    /// <summary>What this controller's host NQN holds across the target (controllers, data buffers); shared by
    /// every controller of that host.</summary>
    public HostAccount Host { get; }
    public bool IsDestroyed => Volatile.Read(ref _destroyed) != 0;
    public DateTimeOffset CreatedAt { get; } = DateTimeOffset.UtcNow;

    /// <summary>KATO in milliseconds; 0 disables the keep-alive timer (never on a discovery controller).</summary>
    public uint KeepAliveTimeoutMs { get; private set; }

    /// <summary>What a discovery controller gets for KATO 0 (the kernel target's NVMET_DISC_KATO_MS): a host that
    /// discovers and vanishes must not hold a controller forever.</summary>
    public const uint DiscoveryKeepAliveTimeoutMs = 120_000;

    /// <summary>KATO from Connect or Set Features; 0 on a discovery controller means <see cref="DiscoveryKeepAliveTimeoutMs"/>.</summary>
    internal void SetKeepAliveTimeout(uint ms) => KeepAliveTimeoutMs = ms == 0 && IsDiscovery ? DiscoveryKeepAliveTimeoutMs : ms;
    internal AsyncEventState AsyncEvents { get; }

    // ---- properties (NVMe over Fabrics 3.5, NVMe base spec 3.1) ----
    public uint Cc { get; private set; }
    public uint Csts { get; private set; }
    public bool IsReady => (Csts & 1) != 0;

    /// <summary>CAP: MQES, CQR, TO (15 = 7.5 s), CSS bit 37 (NVM command set), MPSMIN/MAX 0 (4 KiB).</summary>
    public ulong Cap => Target.Limits.MaxQueueEntries | (1ul << 16) | (15ul << 24) | (1ul << 37);
    public const uint Version = 0x00010300; // NVMe 1.3, as the kernel target and SPDK report

    // ---- features ----
    public ushort AllocatedIoQueues { get; internal set; }
    internal bool NumberOfQueuesSet;
    public bool VolatileWriteCacheEnabled { get; internal set; } = true;

    public int IoQueueCount { get { lock (_lock) return _queues.Skip(1).Count(q => q != null); } }

    /// <summary>The queues bound right now (admin queue first).</summary>
    public IReadOnlyList<FabricQueue> Queues { get { lock (_lock) return _queues.Where(q => q != null).ToArray()!; } }

    // ---- DH-HMAC-CHAP ----
    /// <summary>The host's secrets this controller authenticates with: taken at the admin Connect, taken again when
    /// the admin queue re-authenticates (so a rotated secret applies from then on). Null = no authentication.</summary>
    internal HostAuthentication? Authentication { get; set; }
    /// <summary>The controller requires authentication and its admin queue has it: only then may I/O queues connect.</summary>
    public bool RequiresAuthentication { get; internal set; }
    public bool IsAuthenticated => !RequiresAuthentication || AdminQueue?.Auth?.Authenticated == true;

    // ---- keep-alive ----
    /// <summary>Any command counts as keep-alive traffic (CTRATT TBKAS).</summary>
    internal void Touch() => Volatile.Write(ref _lastActivity, Environment.TickCount64);
    internal bool KeepAliveExpired(long now) =>
        KeepAliveTimeoutMs != 0 && now - Volatile.Read(ref _lastActivity) > KeepAliveTimeoutMs;

    // ---- queues ----
    internal FabricQueue? AdminQueue { get { lock (_lock) return _queues[0]; } }

    internal NvmeStatus BindQueue(ushort qid, FabricQueue q)
    {
        lock (_lock)
        {
            if (IsDestroyed) return NvmeStatus.CommandSequenceError;
            if (_queues[qid] != null) return NvmeStatus.CommandSequenceError;
            _queues[qid] = q;
            return NvmeStatus.Success;
        }
    }

    internal void UnbindQueue(ushort qid, FabricQueue q)
    {
        bool destroy;
        lock (_lock)
        {
            if (_queues[qid] == q) _queues[qid] = null;
            destroy = qid == 0;
        }
        if (destroy) Destroy("admin queue closed");
    }

    /// <summary>Tears the controller down: frees its CNTLID and closes every queue bound to it.</summary>
    public void Destroy(string reason)
    {
        if (Interlocked.Exchange(ref _destroyed, 1) != 0) return;
        Subsystem.RemoveController(this);
        Target.ReleaseHostController(Host);
        AsyncEvents.Clear();
        FabricQueue?[] queues;
        lock (_lock) { queues = (FabricQueue?[])_queues.Clone(); }
        Target.Log.ControllerDestroyed(Cntlid, Subsystem.Nqn, HostNqn, reason);
        Target.OnControllerDestroyed(this);
        foreach (var q in queues) q?.Transport.Terminate(reason);
    }

    // ---- property access ----
    internal void SetCc(uint value)
    {
        uint old = Cc;
        Cc = value;
        bool wasEnabled = (old & 1) != 0, enable = (value & 1) != 0;
        if (enable && !wasEnabled)
        {
            uint iosqes = (value >> 16) & 0xF, iocqes = (value >> 20) & 0xF, mps = (value >> 7) & 0xF, css = (value >> 4) & 0x7;
            if (iosqes != 6 || iocqes != 4 || mps != 0 || css != 0) Csts |= 2; // CFS: controller fatal status
            else Csts = (Csts & ~0xEu) | 1u; // ready; clears CFS left by an earlier bad enable, and SHST
        }
        else if (!enable && wasEnabled)
        {
            Csts &= ~1u; // controller reset
        }
        uint shn = (value >> 14) & 3;
        if (shn != 0) Csts = (Csts & ~0xCu) | (2u << 2); // SHST = shutdown processing complete
        else if ((old >> 14 & 3) != 0) Csts &= ~0xCu;
    }

    // ---- async events ----
    internal void NotifyNamespaceChanged(uint nsid)
    {
        if (IsDestroyed) return;
        var req = AsyncEvents.NamespaceChanged(nsid);
        if (req != null) req.Queue?.CompleteParked(req);
    }

    internal void NotifyAnaChanged()
    {
        if (IsDestroyed || IsDiscovery) return;
        var req = AsyncEvents.AnaChanged();
        if (req != null) req.Queue?.CompleteParked(req);
    }

    // ---- error log ----
    internal void RecordError(NvmeRequest req, ushort qid)
    {
        lock (_lock)
        {
            long n = ++_errorCount;
            ref var e = ref _errorLog[(n - 1) % _errorLog.Length];
            e = default;
            e.ErrorCount = (ulong)n;
            e.SqId = qid;
            e.CommandId = req.Sqe.CommandId;
            e.Status = req.Cqe.StatusAndPhase;
            e.ParameterErrorLocation = 0xFFFF;
            e.Nsid = req.Sqe.Nsid;
            e.TransportType = (byte)Transport.Type;
        }
    }

    public long ErrorCount { get { lock (_lock) return _errorCount; } }

    /// <summary>Error log entries, newest first.</summary>
    internal void ReadErrorLog(Span<byte> dest)
    {
        lock (_lock)
        {
            int count = (int)Math.Min(_errorCount, _errorLog.Length);
            for (int i = 0; i < count && (i + 1) * ErrorLogEntry.Size <= dest.Length; i++)
            {
                long idx = (_errorCount - 1 - i) % _errorLog.Length;
                System.Runtime.InteropServices.MemoryMarshal.Write(dest[(i * ErrorLogEntry.Size)..], in _errorLog[idx]);
            }
        }
    }
}
