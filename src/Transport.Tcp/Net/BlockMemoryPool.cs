using System.Buffers;
using System.Collections.Concurrent;

namespace Transport.Tcp.Net;

/// <summary>
/// The socket buffers' pool: fixed-size blocks, each with its owner object, reused forever (the shared
/// MemoryPool allocates an owner per rent, which on the I/O path would be an allocation per receive). The
/// pool grows to the peak number of blocks in use at once and keeps them; <see cref="Rent"/> of more than
/// <see cref="MaxBufferSize"/> throws (the pipes fall back to ArrayPool for such sizes themselves).
/// </summary>
public sealed class BlockMemoryPool : MemoryPool<byte>
{
    private readonly ConcurrentQueue<Block> _free = new();
    private readonly int _blockSize;
    private long _blocks;

    public BlockMemoryPool(int blockSize) => _blockSize = blockSize;

    public override int MaxBufferSize => _blockSize;

    /// <summary>Blocks created so far (in use or free).</summary>
    public long BlockCount => Interlocked.Read(ref _blocks);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, _blockSize);
        if (_free.TryDequeue(out var block)) return block;
        Interlocked.Increment(ref _blocks);
        return new Block(this);
    }

    protected override void Dispose(bool disposing) { }

    private sealed class Block(BlockMemoryPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(pool._blockSize, pinned: true);
        public Memory<byte> Memory => _array;
        public void Dispose() => pool._free.Enqueue(this);
    }
}
