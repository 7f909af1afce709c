using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nvme.Core.Storage;

/// <summary>
/// A regular file or a block device, read and written with positional I/O (RandomAccess). A missing file
/// is created sparse at the requested size; an existing file or device is used as it is. Flush is fsync.
/// Deallocate punches a hole (fallocate) where the file system supports it and writes zeros otherwise.
/// </summary>
public sealed class FileBlockStore : IBlockStore
{
    private readonly SafeFileHandle _handle;
    private readonly bool _isBlockDevice;
    private int _punchUnsupported;

    private FileBlockStore(SafeFileHandle handle, string path, long length, bool isBlockDevice)
    {
        _handle = handle;
        Path = path;
        _length = length;
        _isBlockDevice = isBlockDevice;
    }

    public string Path { get; }
    private long _length;
    public long Length => Volatile.Read(ref _length);
    public bool IsOpen => !_handle.IsClosed;
    public string Description => _isBlockDevice ? $"block device {Path}" : $"file {Path}";

    /// <summary>Opens (or creates sparse, when <paramref name="createSize"/> is given and the file is
    /// missing) a file or block device. Throws <see cref="StoreException"/> with a clear message.</summary>
    public static FileBlockStore Open(string path, long? createSize, bool readOnly = false)
    {
        bool exists = File.Exists(path);
        if (!exists && createSize is null)
            throw new StoreException($"backing file '{path}' does not exist (give a size to create it)");
        if (!exists)
        {
            var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
            if (dir != null && !Directory.Exists(dir))
                throw new StoreException($"directory '{dir}' for backing file '{path}' does not exist");
        }
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, exists ? FileMode.Open : FileMode.CreateNew,
                readOnly ? FileAccess.Read : FileAccess.ReadWrite, FileShare.ReadWrite, FileOptions.None);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StoreException($"cannot open backing file '{path}': {e.Message}", e);
        }
        try
        {
            // A block device reports length 0 through stat; its size comes from the BLKGETSIZE64 ioctl.
            long deviceSize = 0;
            bool isBlock = exists && RandomAccess.GetLength(handle) == 0 && TryBlockDeviceSize(handle, out deviceSize);
            long length;
            if (isBlock) length = deviceSize;
            else
            {
                if (!exists) RandomAccess.SetLength(handle, createSize!.Value);
                else if (createSize is long wanted && RandomAccess.GetLength(handle) < wanted)
                    throw new StoreException($"backing file '{path}' is {RandomAccess.GetLength(handle)} bytes, smaller than the configured size {wanted}");
                length = createSize ?? RandomAccess.GetLength(handle);
            }
            if (length <= 0) throw new StoreException($"backing file '{path}' is empty");
            return new FileBlockStore(handle, path, length, isBlock);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public async ValueTask ReadAsync(long offset, Memory<byte> destination)
    {
        while (!destination.IsEmpty)
        {
            int n = await RandomAccess.ReadAsync(_handle, destination, offset).ConfigureAwait(false);
            if (n == 0) { destination.Span.Clear(); return; } // past EOF of a file that shrank: zeros
            destination = destination[n..];
            offset += n;
        }
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> source) =>
        RandomAccess.WriteAsync(_handle, source, offset);

    public ValueTask FlushAsync()
    {
        if (Native.fsync(_handle.DangerousGetHandle().ToInt32()) != 0)
            throw new IOException($"fsync of '{Path}' failed: errno {Marshal.GetLastPInvokeError()}");
        return default;
    }

    public async ValueTask ZeroAsync(long offset, long length, bool deallocate)
    {
        if (deallocate && !_isBlockDevice && Volatile.Read(ref _punchUnsupported) == 0)
        {
            const int FALLOC_FL_KEEP_SIZE = 1, FALLOC_FL_PUNCH_HOLE = 2;
            if (Native.fallocate(_handle.DangerousGetHandle().ToInt32(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) == 0)
                return;
            Volatile.Write(ref _punchUnsupported, 1);
        }
        var zeros = new byte[(int)Math.Min(length, 1 << 20)];
        while (length > 0)
        {
            int n = (int)Math.Min(length, zeros.Length);
            await RandomAccess.WriteAsync(_handle, zeros.AsMemory(0, n), offset).ConfigureAwait(false);
            offset += n;
            length -= n;
        }
    }

    private static bool TryBlockDeviceSize(SafeFileHandle handle, out long size)
    {
        const ulong BLKGETSIZE64 = 0x80081272;
        return Native.ioctl(handle.DangerousGetHandle().ToInt32(), BLKGETSIZE64, out size) == 0 && size > 0;
    }

    public void Resize(long newLength)
    {
        if (_isBlockDevice) throw new StoreException($"'{Path}' is a block device: resize the device itself");
        if (newLength <= 0) throw new StoreException($"size {newLength} is not positive");
        try
        {
            if (newLength > RandomAccess.GetLength(_handle) || newLength < Length) RandomAccess.SetLength(_handle, newLength);
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
        public static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        public static extern int fallocate(int fd, int mode, long offset, long len);

        [DllImport("libc", SetLastError = true)]
        public static extern int ioctl(int fd, ulong request, out long value);
    }
}

/// <summary>A backing store could not be opened or used; the message is meant for the operator.</summary>
public sealed class StoreException : Exception
{
    public StoreException(string message, Exception? inner = null) : base(message, inner) { }
}
