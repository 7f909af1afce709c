using System.IO.Pipelines;
using Transport.Tcp.Net;

namespace Transport.Tcp.Tests;

/// <summary>
/// Pipe options for the in-memory host: the socket listener's pool (blocks and their owner objects reused; the
/// default pipe pool allocates an owner object per segment, which would hide the target's own allocations) and
/// inline schedulers (the default thread-pool scheduler allocates a work item per wake-up, which would also be
/// counted against the target).
/// </summary>
internal static class PooledMemoryPool
{
    private const int BlockSize = 4096;

    public static readonly PipeOptions PipeOptions = new(pool: new BlockMemoryPool(BlockSize), readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.Inline, minimumSegmentSize: BlockSize, useSynchronizationContext: false);
}
