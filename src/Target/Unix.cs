using System.Runtime.InteropServices;

namespace Target;

/// <summary>The few POSIX calls the host process needs that .NET does not offer: who we run as, file owners,
/// and the umask around a Unix socket bind.</summary>
internal static partial class Unix
{
    public static uint EffectiveUserId => geteuid();
    public static bool IsRoot => geteuid() == 0;

    /// <summary>Owner, group and st_mode (type and permission bits) of a file, following symbolic links.</summary>
    public static bool TryStat(string path, out uint uid, out uint gid, out uint mode)
    {
        uid = gid = mode = 0;
        // statx: one layout on every architecture (struct stat differs between x86-64 and arm64).
        Span<byte> buf = stackalloc byte[256];
        const int AT_FDCWD = -100, STATX_TYPE = 0x1, STATX_MODE = 0x2, STATX_UID = 0x8, STATX_GID = 0x10;
        if (statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_MODE | STATX_UID | STATX_GID, ref MemoryMarshal.GetReference(buf)) != 0) return false;
        uid = BitConverter.ToUInt32(buf[20..]); // struct statx: stx_uid at 20, stx_gid at 24, stx_mode (u16) at 28
        gid = BitConverter.ToUInt32(buf[24..]);
        mode = BitConverter.ToUInt16(buf[28..]);
        return true;
    }

    public const uint FileTypeMask = 0xF000, SocketType = 0xC000, DirectoryType = 0x4000;

    /// <summary>chown(2); returns errno (0 on success).</summary>
    public static int Chown(string path, uint uid, uint gid) => chown(path, uid, gid) == 0 ? 0 : Marshal.GetLastPInvokeError();

    /// <summary>Sets the process umask and returns the previous one.</summary>
    public static uint SetUmask(uint mask) => umask(mask);

    /// <summary>A group by name or number: /etc/group first (no NSS dependency in containers), then getgrnam.</summary>
    public static bool TryGetGroupId(string group, out uint gid)
    {
        if (uint.TryParse(group, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out gid)) return true;
        try
        {
            foreach (var line in File.ReadLines("/etc/group"))
            {
                var f = line.Split(':');
                if (f.Length >= 3 && f[0] == group && uint.TryParse(f[2], System.Globalization.CultureInfo.InvariantCulture, out gid)) return true;
            }
        }
        catch (IOException) { }
        var p = getgrnam(group);
        if (p == IntPtr.Zero) return false;
        gid = (uint)Marshal.ReadInt32(p, 2 * IntPtr.Size); // struct group { char *gr_name; char *gr_passwd; gid_t gr_gid; ... }
        return true;
    }

    [LibraryImport("libc")] private static partial uint geteuid();
    [LibraryImport("libc")] private static partial uint umask(uint mask);
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)] private static partial int chown(string path, uint uid, uint gid);
    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8)] private static partial IntPtr getgrnam(string name);
    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statx(int dirfd, string path, int flags, uint mask, ref byte buffer);
}
