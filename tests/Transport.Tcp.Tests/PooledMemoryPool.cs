using System.Buffers;
using System.IO.Pipelines;

namespace Transport.Tcp.Tests;

/// <summary>
/// A MemoryPool that reuses its blocks and their owner objects, like Kestrel's pinned block pool. The
/// default pipe pool allocates an owner object per segment, which would hide the target's own allocations.
/// </summary>
internal sealed class PooledMemoryPool : MemoryPool<byte>
{
    private const int BlockSize = 4096;
    private readonly Stack<Owner> _free = new(); // array-backed: pushing allocates nothing
    private readonly Lock _lock = new();

    // Inline schedulers: the default thread-pool scheduler allocates a work item per wake-up (Kestrel's own
    // IOQueue scheduler does not), which would also be counted against the target.
    public static readonly PipeOptions PipeOptions = new(pool: new PooledMemoryPool(), readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline, minimumSegmentSize: BlockSize, useSynchronizationContext: false);

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        if (minBufferSize > BlockSize) throw new ArgumentOutOfRangeException(nameof(minBufferSize));
        lock (_lock) return _free.TryPop(out var owner) ? owner : new Owner(this);
    }

    protected override void Dispose(bool disposing) { }

    private sealed class Owner(PooledMemoryPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _block = new byte[BlockSize];
        public Memory<byte> Memory => _block;
        public void Dispose()
        {
            lock (pool._lock) pool._free.Push(this);
        }
    }
}
