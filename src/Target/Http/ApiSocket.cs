using System.Net.Sockets;

namespace Target.Http;

/// <summary>
/// The management API's Unix domain socket: only the target's user may connect (mode 0600), or also one group
/// (0660) when configured. The directory holding it must not let another user swap the socket (owned by us or
/// root, not writable by others unless sticky); a missing directory is created 0700 (0750 with a group). A stale
/// socket left by a crashed target is replaced; one another live process answers on is a start-up error.
/// </summary>
internal static class ApiSocket
{
    /// <summary>Checks and prepares the path before the bind. Throws <see cref="IOException"/> with the reason.</summary>
    public static void Prepare(string path, string? group)
    {
        var dir = Path.GetDirectoryName(path) ?? "/";
        uint gid = 0;
        if (group != null && !Unix.TryGetGroupId(group, out gid)) throw new IOException($"socket group '{group}' does not exist");
        if (!Directory.Exists(dir))
        {
            var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
            if (group != null) mode |= UnixFileMode.GroupRead | UnixFileMode.GroupExecute;
            try
            {
                Directory.CreateDirectory(dir, mode);
                File.SetUnixFileMode(dir, mode); // the umask may have taken bits
                if (group != null && Unix.Chown(dir, uint.MaxValue, gid) is int err && err != 0)
                    throw new IOException($"cannot give the socket directory '{dir}' to group '{group}' (errno {err})");
            }
            catch (UnauthorizedAccessException e) { throw new IOException($"cannot create the socket directory '{dir}': {e.Message}", e); }
        }
        if (!Unix.TryStat(dir, out uint owner, out _, out uint dirMode)) throw new IOException($"cannot stat the socket directory '{dir}'");
        if (owner != Unix.EffectiveUserId && owner != 0)
            throw new IOException($"the socket directory '{dir}' belongs to uid {owner}, who could replace the socket: use a directory of your own (--api unix:PATH)");
        const uint GroupOrOtherWrite = 0x10 | 0x2, Sticky = 0x200;
        if ((dirMode & GroupOrOtherWrite) != 0 && (dirMode & Sticky) == 0)
            throw new IOException($"the socket directory '{dir}' is writable by other users, who could replace the socket: use a directory only you can write (--api unix:PATH)");
        if (group != null && (dirMode & 0x8) == 0 && (dirMode & 0x1) == 0)
            throw new IOException($"group '{group}' cannot enter the socket directory '{dir}' (mode {Convert.ToString(dirMode & 0xFFF, 8)}): chmod g+x it or use another directory");

        if (!Unix.TryStat(path, out _, out _, out uint existing)) return;
        if ((existing & Unix.FileTypeMask) != Unix.SocketType)
            throw new IOException($"'{path}' exists and is not a socket: remove it or choose another path with --api unix:PATH");
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            throw new IOException($"another process serves '{path}' (another nvme-tcp-target?): stop it, or give this target its own socket with --api unix:PATH");
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused)
        {
            File.Delete(path); // left behind by a target that did not stop cleanly
        }
    }

    /// <summary>Umask for the bind: the socket is created 0600 (or 0660), never briefly wider.</summary>
    public static uint BindUmask(string? group) => group is null ? 0x7Fu /* 0177 */ : 0x4Fu /* 0117 */;

    /// <summary>After the bind: the final mode and group (also correct should the umask not have applied).</summary>
    public static void Secure(string path, string? group)
    {
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (group != null)
        {
            mode |= UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
            if (Unix.TryGetGroupId(group, out uint gid) && Unix.Chown(path, uint.MaxValue, gid) is int err && err != 0)
                throw new IOException($"cannot give the API socket '{path}' to group '{group}' (errno {err})");
        }
        File.SetUnixFileMode(path, mode);
    }

    /// <summary>At shutdown: removes the socket file if it is still a socket.</summary>
    public static void Remove(string path)
    {
        try
        {
            if (Unix.TryStat(path, out _, out _, out uint mode) && (mode & Unix.FileTypeMask) == Unix.SocketType) File.Delete(path);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
