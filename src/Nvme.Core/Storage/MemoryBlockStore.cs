namespace Nvme.Core.Storage;

/// <summary>
/// RAM-backed store, allocated lazily in 1 MiB chunks: a 1 GiB namespace costs nothing until written, and
/// unwritten chunks read as zeros. Chunk allocation is lock-free; everything completes synchronously.
/// </summary>
public sealed class MemoryBlockStore : IBlockStore
{
    private const int ChunkShift = 20;
    private const int ChunkSize = 1 << ChunkShift;
    private readonly byte[]?[] _chunks;

    public MemoryBlockStore(long length)
    {
        if (length <= 0) throw new ArgumentOutOfRangeException(nameof(length), "size must be positive");
        Length = length;
        _chunks = new byte[]?[(length + ChunkSize - 1) >> ChunkShift];
    }

    public long Length { get; }
    public string Description => $"memory {Length} bytes";

    /// <summary>Bytes of RAM currently allocated.</summary>
    public long AllocatedBytes
    {
        get
        {
            long n = 0;
            foreach (var c in _chunks) if (c != null) n += ChunkSize;
            return n;
        }
    }

    public ValueTask ReadAsync(long offset, Memory<byte> destination)
    {
        Read(offset, destination.Span);
        return default;
    }

    public void Read(long offset, Span<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int inChunk = (int)(offset & (ChunkSize - 1));
            int n = Math.Min(destination.Length, ChunkSize - inChunk);
            var chunk = Volatile.Read(ref _chunks[offset >> ChunkShift]);
            if (chunk is null) destination[..n].Clear();
            else chunk.AsSpan(inChunk, n).CopyTo(destination);
            destination = destination[n..];
            offset += n;
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
    {
        Write(offset, source.Span);
        return default;
    }

    public void Write(long offset, ReadOnlySpan<byte> source)
    {
        while (!source.IsEmpty)
        {
            int inChunk = (int)(offset & (ChunkSize - 1));
            int n = Math.Min(source.Length, ChunkSize - inChunk);
            source[..n].CopyTo(GetOrAddChunk(offset >> ChunkShift).AsSpan(inChunk, n));
            source = source[n..];
            offset += n;
        }
    }

    public ValueTask FlushAsync() => default;

    public ValueTask ZeroAsync(long offset, long length, bool deallocate)
    {
        while (length > 0)
        {
            int inChunk = (int)(offset & (ChunkSize - 1));
            int n = (int)Math.Min(length, ChunkSize - inChunk);
            long index = offset >> ChunkShift;
            if (n == ChunkSize && deallocate) Volatile.Write(ref _chunks[index], null);
            else Volatile.Read(ref _chunks[index])?.AsSpan(inChunk, n).Clear();
            offset += n;
            length -= n;
        }
        return default;
    }

    private byte[] GetOrAddChunk(long index)
    {
        var chunk = Volatile.Read(ref _chunks[index]);
        if (chunk != null) return chunk;
        var fresh = GC.AllocateUninitializedArray<byte>(ChunkSize, pinned: false);
        Array.Clear(fresh);
        return Interlocked.CompareExchange(ref _chunks[index], fresh, null) ?? fresh;
    }

    public void Dispose() => Array.Clear(_chunks);
}
