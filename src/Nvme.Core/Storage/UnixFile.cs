using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Nvme.Core.Storage;

/// <summary>What a path or an open descriptor is (the S_IFMT bits of its mode).</summary>
public enum UnixFileKind { Missing, Regular, Directory, BlockDevice, CharacterDevice, Fifo, Socket, SymbolicLink }

/// <summary>
/// The few facts about files that .NET does not expose on Linux: the real path of a name (realpath(3): every
/// symbolic link, intermediate ones included, and every "." and ".." resolved by the kernel, not lexically),
/// the kind of a file (statx(2): a block device is not a regular file), and the path of an open descriptor
/// (/proc/self/fd). The storage policy and <see cref="FileBlockStore"/> use them; they decide nothing.
/// </summary>
public static class UnixFile
{
    public const int ENOENT = 2, EACCES = 13, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, ENOSPC = 28, ELOOP = 40, EOPNOTSUPP = 95, EDQUOT = 122;

    /// <summary>The kernel's real path of <paramref name="path"/>, or null with <paramref name="errno"/>
    /// (ENOENT: the path or one of its directories does not exist).</summary>
    public static string? RealPath(string path, out int errno)
    {
        errno = 0;
        IntPtr p = Native.realpath(path, IntPtr.Zero);
        if (p == IntPtr.Zero)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        try { return Marshal.PtrToStringUTF8(p); }
        finally { Native.free(p); }
    }

    /// <summary>The kind of <paramref name="path"/>; with <paramref name="followLinks"/> false a symbolic link is
    /// reported as such (lstat). <see cref="UnixFileKind.Missing"/> with errno ENOENT when it does not exist.</summary>
    public static UnixFileKind KindOf(string path, bool followLinks, out int errno)
    {
        const int AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100;
        return Stat(AT_FDCWD, path, followLinks ? 0 : AT_SYMLINK_NOFOLLOW, out errno, out _);
    }

    /// <summary>The kind and size (st_size) of an open descriptor.</summary>
    public static UnixFileKind KindOf(SafeFileHandle handle, out long size)
    {
        const int AT_EMPTY_PATH = 0x1000;
        var kind = Stat((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, out int errno, out size);
        if (kind == UnixFileKind.Missing) throw new IOException($"statx of an open file failed: {ErrorText(errno)}", errno);
        return kind;
    }

    /// <summary>Where an open descriptor really is: what /proc/self/fd/N links to (a renamed file shows its new
    /// name, a file reached through a swapped symbolic link its real place).</summary>
    public static string PathOf(SafeFileHandle handle) =>
        new FileInfo($"/proc/self/fd/{(int)handle.DangerousGetHandle()}").LinkTarget
        ?? throw new IOException("/proc/self/fd does not say where an open file is (is /proc mounted?)");

    /// <summary>"a block device", "a directory", ... for messages.</summary>
    public static string Describe(UnixFileKind kind) => kind switch
    {
        UnixFileKind.Regular => "a regular file",
        UnixFileKind.Directory => "a directory",
        UnixFileKind.BlockDevice => "a block device",
        UnixFileKind.CharacterDevice => "a character device",
        UnixFileKind.Fifo => "a FIFO",
        UnixFileKind.Socket => "a socket",
        UnixFileKind.SymbolicLink => "a symbolic link",
        _ => "missing",
    };

    /// <summary>strerror(errno), e.g. "No space left on device".</summary>
    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);

    private static UnixFileKind Stat(int dirfd, string path, int flags, out int errno, out long size)
    {
        const uint STATX_TYPE = 0x1, STATX_SIZE = 0x200;
        errno = 0;
        size = 0;
        if (Native.statx(dirfd, path, flags, STATX_TYPE | STATX_SIZE, out var st) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return UnixFileKind.Missing;
        }
        size = (long)st.Size;
        return (st.Mode & 0xF000) switch
        {
            0x8000 => UnixFileKind.Regular,
            0x4000 => UnixFileKind.Directory,
            0x6000 => UnixFileKind.BlockDevice,
            0x2000 => UnixFileKind.CharacterDevice,
            0x1000 => UnixFileKind.Fifo,
            0xC000 => UnixFileKind.Socket,
            _ => UnixFileKind.SymbolicLink, // 0xA000; statx reports nothing else
        };
    }

    /// <summary>struct statx (include/uapi/linux/stat.h): the same 256-byte layout on every architecture,
    /// unlike struct stat. Only the fields read here are declared.</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    internal struct StatxBuffer
    {
        [FieldOffset(0)] public uint Mask;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(40)] public ulong Size;
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        public static extern IntPtr realpath([MarshalAs(UnmanagedType.LPUTF8Str)] string path, IntPtr resolved);

        [DllImport("libc")]
        public static extern void free(IntPtr p);

        [DllImport("libc", SetLastError = true)]
        public static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, out StatxBuffer buffer);
    }
}
