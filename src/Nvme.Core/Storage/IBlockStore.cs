namespace Nvme.Core.Storage;

/// <summary>
/// A byte-addressed backing store for one namespace. Offsets and lengths are always whole logical blocks
/// inside <see cref="Length"/> (the core checks ranges before calling). Memory stores complete inline;
/// file and block-device stores may complete asynchronously.
/// </summary>
public interface IBlockStore : IDisposable
{
    /// <summary>Usable size in bytes.</summary>
    long Length { get; }

    /// <summary>Human readable description for logs ("memory 1 GiB", "file /var/lib/x.img").</summary>
    string Description { get; }

    /// <summary>False once the store was closed (disposed): readiness checks report it.</summary>
    bool IsOpen => true;

    /// <summary>Why the open store cannot serve right now (e.g. its cluster is unreachable), for readiness checks;
    /// null when it can.</summary>
    string? Problem => null;

    ValueTask ReadAsync(long offset, Memory<byte> destination);
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source);

    /// <summary>Makes every completed write durable (fsync for files; nothing for memory).</summary>
    ValueTask FlushAsync();

    /// <summary>Zeroes a range; reads of it return zeros afterwards. <paramref name="deallocate"/> lets the
    /// store release the space (punch a hole) instead of writing zeros.</summary>
    ValueTask ZeroAsync(long offset, long length, bool deallocate);

    /// <summary>Changes the usable size. Growing is safe while I/O runs; when shrinking, the caller first makes
    /// sure nothing addresses the range cut off. Throws <see cref="StoreException"/> when not possible.</summary>
    void Resize(long newLength);
}
