using System.Security.Cryptography;
using System.Text;
using Nvme.Core.Storage;

namespace Nvme.Core.Model;

/// <summary>
/// One namespace: an NSID, a block size, a backing store and stable identifiers. It counts in-flight requests
/// so that removal can stop admitting new I/O and wait for the old to finish before the store is released.
/// </summary>
public sealed class Namespace
{
    private int _inflight;
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
    }

    public uint Nsid { get; }
    public IBlockStore Store { get; }
    public int BlockSize { get; }
    public int BlockShift { get; }
    private ulong _blockCount;

    /// <summary>NSZE: the size in logical blocks (changes on resize; read lock-free on the I/O path).</summary>
    public ulong BlockCount => Volatile.Read(ref _blockCount);
    internal void SetBlockCount(ulong blocks) => Volatile.Write(ref _blockCount, blocks);
    public NamespaceIds Ids { get; }
    public NamespaceCounters Counters { get; } = new();

    /// <summary>Requests that hold this namespace right now.</summary>
    public int InFlight => Volatile.Read(ref _inflight);
    public bool IsAdmitting => _admitting;

    /// <summary>Takes an in-flight reference; false once the namespace stopped admitting I/O.</summary>
    public bool TryAcquire()
    {
        Interlocked.Increment(ref _inflight);
        if (_admitting) return true;
        Release();
        return false;
    }

    public void Release()
    {
        if (Interlocked.Decrement(ref _inflight) == 0 && !_admitting)
            Volatile.Read(ref _drained)?.TrySetResult();
    }

    /// <summary>Stops admitting new requests and completes when every in-flight one has released.</summary>
    public Task StopAndDrainAsync()
    {
        var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Interlocked.CompareExchange(ref _drained, tcs, null);
        _admitting = false;
        if (Volatile.Read(ref _inflight) == 0) _drained!.TrySetResult();
        return _drained!.Task;
    }
}

/// <summary>Per-namespace I/O counters, read by the SMART log and metrics.</summary>
public sealed class NamespaceCounters
{
    public long ReadCommands;
    public long WriteCommands;
    public long BytesRead;
    public long BytesWritten;
    public long OtherCommands;
    public long Errors;
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
