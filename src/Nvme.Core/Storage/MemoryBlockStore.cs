namespace Nvme.Core.Storage;

/// <summary>
/// RAM-backed store, allocated lazily in 1 MiB chunks: a 1 GiB namespace costs nothing until written, and
/// unwritten chunks read as zeros. Chunks hang off a two-level directory whose pages never move, so the store
/// can grow while I/O runs (no copy, no lock). Everything completes synchronously.
/// </summary>
public sealed class MemoryBlockStore : IBlockStore
{
    private const int ChunkShift = 20;
    private const int ChunkSize = 1 << ChunkShift;
    private const int PageShift = 10;                 // 1024 chunks (1 GiB) per directory page
    private const int PageSize = 1 << PageShift;
    /// <summary>Largest size a memory namespace can have or grow to (16 TiB).</summary>
    public const long MaxLength = (long)PageSize * PageSize * 16 * ChunkSize;

    private readonly byte[]?[]?[] _directory = new byte[]?[]?[MaxLength >> (ChunkShift + PageShift)];
    private long _length;

    public MemoryBlockStore(long length)
    {
        if (length <= 0 || length > MaxLength) throw new ArgumentOutOfRangeException(nameof(length), $"size must be 1..{MaxLength} bytes");
        _length = length;
    }

    public long Length => Volatile.Read(ref _length);
    public string Description => $"memory {Length} bytes";

    /// <summary>Bytes of RAM currently allocated.</summary>
    public long AllocatedBytes
    {
        get
        {
            long n = 0;
            foreach (var page in _directory)
                if (page != null) foreach (var c in page) if (c != null) n += ChunkSize;
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
            var chunk = GetChunk(offset >> ChunkShift);
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
            var page = Volatile.Read(ref _directory[index >> PageShift]);
            if (page != null)
            {
                ref var slot = ref page[index & (PageSize - 1)];
                if (n == ChunkSize && deallocate) Volatile.Write(ref slot, null);
                else Volatile.Read(ref slot)?.AsSpan(inChunk, n).Clear();
            }
            offset += n;
            length -= n;
        }
        return default;
    }

    /// <summary>Grows (new space reads as zeros) or shrinks (the cut-off data is released). The caller makes
    /// sure no I/O addresses the range being cut off.</summary>
    public void Resize(long newLength)
    {
        if (newLength <= 0 || newLength > MaxLength) throw new StoreException($"a memory namespace must be 1..{MaxLength} bytes, not {newLength}");
        long old = Length;
        if (newLength < old)
        {
            // Zero the tail of the last kept chunk so a later grow reads zeros there, then drop whole chunks.
            long keepChunks = (newLength + ChunkSize - 1) >> ChunkShift;
            long tail = (keepChunks << ChunkShift) - newLength;
            if (tail > 0) ZeroAsync(newLength, tail, deallocate: false);
            for (long i = keepChunks; i < (old + ChunkSize - 1) >> ChunkShift; i++)
            {
                var page = _directory[i >> PageShift];
                if (page != null) Volatile.Write(ref page[i & (PageSize - 1)], null);
            }
        }
        Volatile.Write(ref _length, newLength);
    }

    private byte[]? GetChunk(long index)
    {
        var page = Volatile.Read(ref _directory[index >> PageShift]);
        return page is null ? null : Volatile.Read(ref page[index & (PageSize - 1)]);
    }

    private byte[] GetOrAddChunk(long index)
    {
        ref var pageSlot = ref _directory[index >> PageShift];
        var page = Volatile.Read(ref pageSlot);
        if (page is null)
        {
            var freshPage = new byte[]?[PageSize];
            page = Interlocked.CompareExchange(ref pageSlot, freshPage, null) ?? freshPage;
        }
        ref var slot = ref page[index & (PageSize - 1)];
        var chunk = Volatile.Read(ref slot);
        if (chunk != null) return chunk;
        var fresh = new byte[ChunkSize];
        return Interlocked.CompareExchange(ref slot, fresh, null) ?? fresh;
    }

    private volatile bool _disposed;
    public bool IsOpen => !_disposed;

    public void Dispose()
    {
        _disposed = true;
        Array.Clear(_directory);
    }
}
