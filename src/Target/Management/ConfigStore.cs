using System.Runtime.InteropServices;
using System.Text.Json;
using Target.Configuration;

namespace Target.Management;

/// <summary>
/// Writes the configuration file atomically: a temporary file in the same directory, fsync, rename over the
/// old file, fsync of the directory. A crash at any point leaves either the old or the new file, never a mix.
/// The new file keeps the old one's mode and owner (a 0600 file holding the API token stays 0600); a file the
/// target creates is 0600. The temporary file is created with that mode, so it is never readable wider.
/// </summary>
public static class ConfigStore
{
    public static void Save(string path, TargetConfig config)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(config, TargetConfig.Json);
        var mode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        uint uid = uint.MaxValue, gid = uint.MaxValue;
        if (File.Exists(full))
        {
            mode = File.GetUnixFileMode(full);
            if (Unix.TryStat(full, out uint u, out uint g, out _)) (uid, gid) = (u, g);
        }
        try
        {
            File.Delete(temp); // a leftover of a crash; CreateNew below must create it with our mode
            using (var fs = new FileStream(temp, new FileStreamOptions
                   { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, UnixCreateMode = mode }))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.SetUnixFileMode(temp, mode); // the umask may have taken bits
            if (uid != uint.MaxValue && Unix.TryStat(temp, out uint tu, out uint tg, out _) && (tu, tg) != (uid, gid)
                && Unix.Chown(temp, uid, gid) is int err && err != 0)
                throw new IOException($"cannot keep the owner {uid}:{gid} of '{full}' (errno {err})");
            File.Move(temp, full, overwrite: true);
            FsyncDirectory(dir);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { }
            throw;
        }
    }

    private static void FsyncDirectory(string dir)
    {
        int fd = Native.open(dir, 0 /* O_RDONLY */);
        if (fd < 0) return; // best effort: the rename itself is atomic
        try { Native.fsync(fd); }
        finally { Native.close(fd); }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)] public static extern int open([MarshalAs(UnmanagedType.LPStr)] string path, int flags);
        [DllImport("libc", SetLastError = true)] public static extern int fsync(int fd);
        [DllImport("libc", SetLastError = true)] public static extern int close(int fd);
    }
}
