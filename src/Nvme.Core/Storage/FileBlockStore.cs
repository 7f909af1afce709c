using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using Nvme.Core.Spec;

namespace Nvme.Core.Storage;

/// <summary>
/// A regular file or a block device, read and written with positional I/O (RandomAccess). A missing file
/// is created (mode 0600) sparse at the requested size, or fully allocated when asked to preallocate; an
/// existing file or device is used as it is. What was opened is checked after the open (a regular file for
/// <see cref="OpenFile"/>, a block device for <see cref="OpenBlockDevice"/>) and its real place is
/// <see cref="RealPath"/>, so a caller with rules about paths checks what it got, not what it asked for.
/// Flush is fsync. Deallocate punches a hole (fallocate) where the file system supports it and writes zeros
/// otherwise. I/O failures are <see cref="StoreIoException"/>s carrying the NVMe status to answer: a read past
/// the end of a file that shrank under the target is an Unrecovered Read Error (never zeros), ENOSPC is
/// Capacity Exceeded.
/// </summary>
public sealed class FileBlockStore : IBlockStore
{
    /// <summary>Zeros for Write Zeroes where no hole can be punched (never written to).</summary>
    private static readonly byte[] Zeros = new byte[1 << 20];

    private readonly SafeFileHandle _handle;
    private readonly bool _isBlockDevice;
    private int _punchUnsupported;
    private long _length;

    private FileBlockStore(SafeFileHandle handle, string path, string realPath, long length, bool isBlockDevice, bool created, bool preallocate)
    {
        _handle = handle;
        Path = path;
        RealPath = realPath;
        _length = length;
        _isBlockDevice = isBlockDevice;
        Created = created;
        Preallocated = preallocate;
    }

    /// <summary>The path it was opened by.</summary>
    public string Path { get; }
    /// <summary>Where the open descriptor really is (/proc/self/fd), read right after the open.</summary>
    public string RealPath { get; }
    /// <summary>This open created the file.</summary>
    public bool Created { get; }
    /// <summary>Space is allocated at creation and on every grow (posix_fallocate), so a full disk shows then.</summary>
    public bool Preallocated { get; }
    public bool IsBlockDevice => _isBlockDevice;
    public long Length => Volatile.Read(ref _length);
    public bool IsOpen => !_handle.IsClosed;
    public string Description => _isBlockDevice ? $"block device {Path}" : $"file {Path}";

    /// <summary>
    /// Opens a regular file, or creates it (mode 0600, O_EXCL) at <paramref name="createSize"/> when it is missing
    /// and a size is given: sparse, or allocated in full with <paramref name="preallocate"/> (a file that cannot
    /// be allocated is deleted again). An existing file smaller than <paramref name="createSize"/> is refused.
    /// Throws <see cref="StoreException"/> with a message for the operator.
    /// </summary>
    public static FileBlockStore OpenFile(string path, long? createSize = null, bool preallocate = false, bool readOnly = false)
    {
        var (handle, created) = OpenDescriptor(path, createSize is not null, readOnly);
        try
        {
            var kind = UnixFile.KindOf(handle, out long fileLength);
            if (kind != UnixFileKind.Regular)
                throw new StoreException(kind == UnixFileKind.BlockDevice
                    ? $"backing file '{path}' is a block device, not a regular file (use the block backend for devices)"
                    : $"backing file '{path}' is {UnixFile.Describe(kind)}, not a regular file");
            ClearNonBlocking(handle);
            long length;
            if (created)
            {
                long size = createSize!.Value;
                if (size <= 0) throw new StoreException($"size {size} for backing file '{path}' is not positive");
                if (preallocate) Preallocate(handle, path, 0, size, $"the file was not created");
                else RandomAccess.SetLength(handle, size);
                length = size;
            }
            else
            {
                if (createSize is long wanted && fileLength < wanted)
                    throw new StoreException($"backing file '{path}' is {fileLength} bytes, smaller than the configured size {wanted}");
                length = createSize ?? fileLength;
            }
            if (length <= 0) throw new StoreException($"backing file '{path}' is empty");
            return new FileBlockStore(handle, path, UnixFile.PathOf(handle), length, isBlockDevice: false, created, preallocate);
        }
        catch (Exception e)
        {
            string? where = created ? SafePathOf(handle) : null;
            handle.Dispose();
            if (where != null) TryDelete(where); // nothing half-made is left behind
            if (e is IOException) throw new StoreException($"cannot set up backing file '{path}': {e.Message}", e);
            throw;
        }
    }

    /// <summary>Opens a block device (anything else is refused after the open); its size comes from BLKGETSIZE64.</summary>
    public static FileBlockStore OpenBlockDevice(string path, bool readOnly = false)
    {
        var (handle, _) = OpenDescriptor(path, create: false, readOnly, what: "block device");
        try
        {
            var kind = UnixFile.KindOf(handle, out _);
            if (kind != UnixFileKind.BlockDevice)
                throw new StoreException($"'{path}' is {UnixFile.Describe(kind)}, not a block device");
            ClearNonBlocking(handle);
            const ulong BLKGETSIZE64 = 0x80081272;
            if (Native.ioctl((int)handle.DangerousGetHandle(), BLKGETSIZE64, out long size) != 0)
                throw new StoreException($"cannot read the size of block device '{path}': {UnixFile.ErrorText(Marshal.GetLastPInvokeError())}");
            if (size <= 0) throw new StoreException($"block device '{path}' is empty");
            return new FileBlockStore(handle, path, UnixFile.PathOf(handle), size, isBlockDevice: true, created: false, preallocate: false);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>open(2) with O_CLOEXEC and O_NONBLOCK (a FIFO swapped in for the file must not hang the open; the
    /// flag is cleared once the descriptor is known to be a file or device). Creation is O_CREAT|O_EXCL, mode
    /// 0600: it never follows a symbolic link planted at the name, and nobody else may read what hosts write.</summary>
    private static (SafeFileHandle Handle, bool Created) OpenDescriptor(string path, bool create, bool readOnly, string what = "backing file")
    {
        const int O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0x40, O_EXCL = 0x80, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
        int flags = (readOnly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC;
        int fd = Native.open(path, flags, 0);
        bool created = false;
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != UnixFile.ENOENT) throw new StoreException($"cannot open {what} '{path}': {UnixFile.ErrorText(errno)}");
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (dir != null && !Directory.Exists(dir)) throw new StoreException($"directory '{dir}' for {what} '{path}' does not exist");
            if (!create) throw new StoreException(what == "backing file" ? $"backing file '{path}' does not exist (give a size to create it)" : $"{what} '{path}' does not exist");
            fd = Native.open(path, flags | O_CREAT | O_EXCL, 0x180 /* 0600 */);
            if (fd < 0) throw new StoreException($"cannot create backing file '{path}': {UnixFile.ErrorText(Marshal.GetLastPInvokeError())}");
            created = true;
        }
        return (new SafeFileHandle(fd, ownsHandle: true), created);
    }

    private static void ClearNonBlocking(SafeFileHandle handle)
    {
        const int F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0x800;
        int fd = (int)handle.DangerousGetHandle();
        int flags = Native.fcntl(fd, F_GETFL, 0);
        if (flags < 0 || Native.fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
            throw new IOException($"fcntl failed: {UnixFile.ErrorText(Marshal.GetLastPInvokeError())}");
    }

    /// <summary>posix_fallocate: the range is allocated (and the file at least that long) or ENOSPC says now that
    /// the disk cannot hold it. The message tells how much room there is.</summary>
    private static void Preallocate(SafeFileHandle handle, string path, long offset, long length, string consequence)
    {
        int err = Native.posix_fallocate((int)handle.DangerousGetHandle(), offset, length);
        if (err == 0) return;
        string free = "";
        try { free = $"; the file system has {FormatBytes(new DriveInfo(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!).AvailableFreeSpace)} free"; }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { }
        throw new StoreException($"cannot preallocate {FormatBytes(length)} for backing file '{path}': {UnixFile.ErrorText(err)}{free}; {consequence}");
    }

    private static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.#} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.#} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.#} KiB",
        _ => $"{bytes} bytes",
    };

    private static string? SafePathOf(SafeFileHandle handle)
    {
        try { return UnixFile.PathOf(handle); }
        catch (IOException) { return null; }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>Closes the store and deletes the file when this open created it: for a caller that refuses what
    /// it got (e.g. a file created outside where it was asked for, because a directory was swapped meanwhile).</summary>
    public void DisposeAndDeleteIfCreated()
    {
        string? where = Created ? SafePathOf(_handle) : null;
        Dispose();
        if (where != null) TryDelete(where);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ReadAsync(long offset, Memory<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n;
            try { n = await RandomAccess.ReadAsync(_handle, destination, offset).ConfigureAwait(false); }
            catch (IOException e) { throw StoreIoException.From(e, $"read at offset {offset}", Description); }
            // The file shrank under the target (truncated by someone else): the data is gone. Answer a media
            // error, as the kernel's file backend fails a short read; zeros would be silent corruption.
            if (n == 0) throw PastEnd(offset, destination.Length);
            destination = destination[n..];
            offset += n;
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private StoreIoException PastEnd(long offset, int length)
    {
        long now = -1;
        try { now = RandomAccess.GetLength(_handle); } catch (IOException) { }
        return new StoreIoException(NvmeStatus.UnrecoveredReadError | NvmeStatus.Dnr,
            $"read of {length} bytes at offset {offset} is past the end of {Description}: the file is {now} bytes now, " +
            $"shorter than the namespace ({Length} bytes); it was truncated under the target");
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source)
    {
        try { await RandomAccess.WriteAsync(_handle, source, offset).ConfigureAwait(false); }
        catch (IOException e) { throw StoreIoException.From(e, $"write of {source.Length} bytes at offset {offset}", Description); }
    }

    public ValueTask FlushAsync()
    {
        if (Native.fsync((int)_handle.DangerousGetHandle()) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return ValueTask.FromException(new StoreIoException(StoreIoException.StatusFor(errno),
                $"fsync of {Description} failed: {UnixFile.ErrorText(errno)}", errno));
        }
        return default;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public async ValueTask ZeroAsync(long offset, long length, bool deallocate)
    {
        if (deallocate && !_isBlockDevice && Volatile.Read(ref _punchUnsupported) == 0)
        {
            const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
            if (Native.fallocate((int)_handle.DangerousGetHandle(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0)
                return;
            // Only a file system without hole punching stops us trying; anything else falls back to zeros this time.
            if (Marshal.GetLastPInvokeError() == UnixFile.EOPNOTSUPP) Volatile.Write(ref _punchUnsupported, 1);
        }
        while (length > 0)
        {
            int n = (int)Math.Min(length, Zeros.Length);
            try { await RandomAccess.WriteAsync(_handle, Zeros.AsMemory(0, n), offset).ConfigureAwait(false); }
            catch (IOException e) { throw StoreIoException.From(e, $"writing zeros ({n} bytes at offset {offset})", Description); }
            offset += n;
            length -= n;
        }
    }

    public void Resize(long newLength)
    {
        if (_isBlockDevice) throw new StoreException($"'{Path}' is a block device: resize the device itself");
        if (newLength <= 0) throw new StoreException($"size {newLength} is not positive");
        try
        {
            long fileLength = RandomAccess.GetLength(_handle);
            if (newLength > fileLength && Preallocated)
            {
                try { Preallocate(_handle, Path, fileLength, newLength - fileLength, "the namespace keeps its size"); }
                catch (StoreException)
                {
                    RandomAccess.SetLength(_handle, fileLength); // drop what a partial allocation may have added
                    throw;
                }
            }
            else if (newLength > fileLength || newLength < Length) RandomAccess.SetLength(_handle, newLength);
        }
        catch (IOException e)
        {
            throw new StoreException($"cannot resize '{Path}' to {newLength} bytes: {e.Message}", e);
        }
        Volatile.Write(ref _length, newLength);
    }

    public void Dispose() => _handle.Dispose();

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

        [DllImport("libc", SetLastError = true)]
        public static extern int fcntl(int fd, int cmd, int arg);

        [DllImport("libc", SetLastError = true)]
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fallocate(int fd, int mode, long offset, long len);

        /// <summary>Returns the error number itself (not -1 and errno).</summary>
        [DllImport("libc")]
        public static extern int posix_fallocate(int fd, long offset, long len);

        [DllImport("libc", SetLastError = true)]
        public static extern int ioctl(int fd, ulong request, out long value);
    }
}

/// <summary>A backing store could not be opened or used; the message is meant for the operator.</summary>
public class StoreException : Exception
{
    public StoreException(string message, Exception? inner = null) : base(message, inner) { }
}
