using System.Collections.Concurrent;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Nvme.Core.Telemetry;

namespace Nvme.Core.Model;

/// <summary>
/// One namespace: an NSID, a block size, a backing store and stable identifiers. It counts in-flight requests
/// so that removal can stop admitting new I/O and wait for the old to finish before the store is released.
/// </summary>
public sealed class Namespace
{
    // In-flight requests, counted per epoch: a forced shrink flips the epoch and waits for the old one to
    // empty, i.e. for every request admitted against the old size (see WaitForEarlierRequestsAsync).
    private readonly int[] _inflight = new int[2];
    private int _epoch;
    private volatile bool _admitting = true;
    private TaskCompletionSource? _drained;

    public Namespace(uint nsid, IBlockStore store, int blockSize, NamespaceIds ids)
    {
        if (nsid == 0 || nsid >= 0xFFFFFFFF) throw new ArgumentOutOfRangeException(nameof(nsid), "NSID must be 1..0xFFFFFFFE");
        if (blockSize is not (512 or 4096)) throw new ArgumentOutOfRangeException(nameof(blockSize), "block size must be 512 or 4096");
        Nsid = nsid;
        Store = store;
        BlockSize = blockSize;
        BlockShift = blockSize == 512 ? 9 : 12;
        _blockCount = (ulong)(store.Length >> BlockShift);
        if (_blockCount == 0) throw new ArgumentException($"backing store ({store.Length} bytes) is smaller than one block", nameof(store));
        Ids = ids;
        NsidLabel = nsid.ToString(CultureInfo.InvariantCulture);
    }

    public uint Nsid { get; }
    /// <summary>The NSID as text, made once for metric labels (no allocation when recording).</summary>
    public string NsidLabel { get; }
    public IBlockStore Store { get; }
    public int BlockSize { get; }
    public int BlockShift { get; }
    private ulong _blockCount;

    /// <summary>NSZE: the size in logical blocks (changes on resize; read lock-free on the I/O path).</summary>
    public ulong BlockCount => Volatile.Read(ref _blockCount);
    internal void SetBlockCount(ulong blocks) => Volatile.Write(ref _blockCount, blocks);
    public NamespaceIds Ids { get; }
    public NamespaceCounters Counters { get; } = new();

    private NamespaceVisibility _visibility = NamespaceVisibility.Auto;

    /// <summary>Which hosts have this namespace in their controllers' active lists (read lock-free on the I/O path).
    /// Set it before attaching; while attached, <see cref="Subsystem.SetNamespaceVisibilityAsync"/> changes it with
    /// the events and the drain.</summary>
    public NamespaceVisibility Visibility
    {
        get => Volatile.Read(ref _visibility);
        set => Volatile.Write(ref _visibility, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Whether controllers of <paramref name="hostNqn"/> see this namespace (masking).</summary>
    public bool IsVisibleTo(string hostNqn) => Visibility.Allows(hostNqn);

    private uint _anaGroupId = Subsystem.DefaultAnaGroup;

    /// <summary>ANAGRPID: the ANA group the namespace belongs to (1..<see cref="Subsystem.MaxAnaGroups"/>). Set it before
    /// attaching; while attached, <see cref="Subsystem.SetNamespaceAnaGroup"/> moves it and tells the hosts.</summary>
    public uint AnaGroupId
    {
        get => Volatile.Read(ref _anaGroupId);
        set => Volatile.Write(ref _anaGroupId, Subsystem.ValidateAnaGroup(value) is string bad ? throw new ArgumentOutOfRangeException(nameof(value), bad) : value);
    }

    private volatile bool _writeProtected;

    /// <summary>A simulated write protection (a test lab's fault, never saved): Identify Namespace reports NSATTR bit 0 and
    /// commands that would change data are answered Namespace is Write Protected. Set through
    /// <see cref="Subsystem.SetWriteProtected"/>, which tells the hosts.</summary>
    public bool WriteProtected { get => _writeProtected; internal set => _writeProtected = value; }

    /// <summary>Requests that hold this namespace right now.</summary>
    public int InFlight => Volatile.Read(ref _inflight[0]) + Volatile.Read(ref _inflight[1]);
    public bool IsAdmitting => _admitting;

    /// <summary>Takes an in-flight reference in the current epoch; false once the namespace stopped admitting
    /// I/O. Pass <paramref name="epoch"/> back to <see cref="Release"/>.</summary>
    public bool TryAcquire(out int epoch)
    {
        while (true)
        {
            epoch = Volatile.Read(ref _epoch);
            Interlocked.Increment(ref _inflight[epoch]);
            if (Volatile.Read(ref _epoch) == epoch) break;
            Interlocked.Decrement(ref _inflight[epoch]); // the epoch flipped under us: count in the new one
        }
        if (_admitting) return true;
        Release(epoch);
        return false;
    }

    public void Release(int epoch)
    {
        Interlocked.Decrement(ref _inflight[epoch]);
        if (!_admitting && InFlight == 0) Volatile.Read(ref _drained)?.TrySetResult();
    }

    /// <summary>Waits until every request admitted before this call has released (new ones keep flowing).
    /// Callers serialise (the management gate does); used by a forced shrink after the new size is in place, and by
    /// masking after a host lost the namespace (its requests check the mask after they took their reference).</summary>
    internal async Task<bool> WaitForEarlierRequestsAsync(TimeSpan timeout)
    {
        int old = Volatile.Read(ref _epoch);
        Interlocked.Exchange(ref _epoch, 1 - old);
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (Volatile.Read(ref _inflight[old]) != 0)
        {
            if (Environment.TickCount64 > deadline) return false;
            await Task.Delay(1).ConfigureAwait(false);
        }
        return true;
    }

    /// <summary>Stops admitting new requests and completes when every in-flight one has released.</summary>
    public Task StopAndDrainAsync()
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.CompareExchange(ref _drained, tcs, null);
        _admitting = false;
        // Full fence: the store above must be visible before _inflight is read, or a concurrent TryAcquire
        // (increment, then read _admitting) and this method can both miss each other's write (store-load
        // reordering) and the namespace counts as drained while that request runs.
        Interlocked.MemoryBarrier();
        if (InFlight == 0) _drained!.TrySetResult();
        return _drained!.Task;
    }
}

/// <summary>Per-namespace I/O counters, read by the SMART log and metrics. The command counts and bytes are
/// successful commands (SMART semantics); <see cref="Latency"/> and the errors by status cover every command that
/// addressed the namespace, whatever its status.</summary>
public sealed class NamespaceCounters
{
    public long ReadCommands;
    public long WriteCommands;
    public long BytesRead;
    public long BytesWritten;
    public long OtherCommands;
    public long Errors;

    /// <summary>Completed commands by <see cref="IoOp"/> (index): their count and latency, receipt to completion.</summary>
    public LatencyHistogram[] Latency { get; } = [new(), new(), new(), new()];

    private readonly ConcurrentDictionary<NvmeStatus, StrongBox<long>> _errorsByStatus = new();

    /// <summary>Lock-free, and allocation-free except the first time a status is seen.</summary>
    internal void RecordCompletion(IoOp op, NvmeStatus status, long ticks)
    {
        Latency[(int)op].Record(ticks);
        if (status != NvmeStatus.Success)
            Interlocked.Increment(ref _errorsByStatus.GetOrAdd(status, static _ => new StrongBox<long>()).Value);
    }

    /// <summary>Failed commands by completion status.</summary>
    public IEnumerable<KeyValuePair<NvmeStatus, long>> ErrorsByStatus =>
        _errorsByStatus.Select(e => KeyValuePair.Create(e.Key, Interlocked.Read(ref e.Value.Value)));
}

/// <summary>
/// NGUID, EUI-64 and UUID of a namespace, derived with SHA-256 from a seed: the namespace's configured UUID
/// when it has one (namespaces added at run time get a fresh one, persisted), otherwise the subsystem NQN and
/// NSID. Either way they are identical across restarts, distinct between namespaces, and a different backing
/// store re-added under a removed NSID does not masquerade as the old one.
/// </summary>
public sealed record NamespaceIds(Guid Uuid, byte[] Nguid, byte[] Eui64)
{
    public static NamespaceIds Derive(string subsystemNqn, uint nsid, Guid? uuid = null)
    {
        var seed = uuid is Guid u0 ? $"uuid\0{u0:D}" : $"{subsystemNqn}\0{nsid}";
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(seed));
        var u = hash.AsSpan(0, 16).ToArray();
        u[6] = (byte)((u[6] & 0x0F) | 0x40);  // RFC 4122 version 4 layout (random-looking, name derived)
        u[8] = (byte)((u[8] & 0x3F) | 0x80);  // RFC 4122 variant
        var nguid = hash.AsSpan(16, 16).ToArray();
        var eui = hash.AsSpan(8, 8).ToArray();
        eui[0] = (byte)((eui[0] | 0x02) & 0xFE); // locally administered, unicast: no IEEE OUI is claimed
        return new NamespaceIds(uuid ?? new Guid(u, bigEndian: true), nguid, eui);
    }
}
