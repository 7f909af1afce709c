using System.Runtime.InteropServices;
using System.Text.Json;
using Target.Configuration;

namespace Target.Management;

/// <summary>
/// Writes the configuration file atomically: a temporary file in the same directory, fsync, rename over the
/// old file, fsync of the directory. A crash at any point leaves either the old or the new file, never a mix.
/// </summary>
public static class ConfigStore
{
    public static void Save(string path, TargetConfig config)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        var bytes = JsonSerializer.SerializeToUtf8Bytes(config, TargetConfig.Json);
        try
        {
            using (var fs = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
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
