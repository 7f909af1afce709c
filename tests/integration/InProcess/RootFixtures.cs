using System.Diagnostics;

namespace Integration.Tests.InProcess;

/// <summary>
/// What only root can set up for a test: a loop block device and a tiny tmpfs. Each undoes itself on Dispose
/// (detach, unmount, delete). Without root they fail the test with a message saying so — never a silent pass
/// (./test.sh and .ci/run run as root).
/// </summary>
internal static class Root
{
    /// <summary>Runs a command to completion; a non-zero exit fails the test with its stderr.</summary>
    public static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"this test needs '{file}' (util-linux / mount) and root: {e.Message}", e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"'{file} {string.Join(' ', args)}' failed with exit code {p.ExitCode}: {stderr.Trim()} " +
                    $"(this test needs root{(Environment.IsPrivilegedProcess ? "" : ", and runs unprivileged")}: run it as root, as ./test.sh does)");
            return stdout.Result;
        }
    }
}

/// <summary>A loop block device (losetup) over a sparse file in a temp directory of its own.</summary>
internal sealed class LoopDevice : IDisposable
{
    private readonly DirectoryInfo _dir;

    private LoopDevice(DirectoryInfo dir, string device)
    {
        _dir = dir;
        Device = device;
    }

    /// <summary>/dev/loopN.</summary>
    public string Device { get; }

    public static LoopDevice Create(long size)
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-loop-");
        try
        {
            var image = Path.Combine(dir.FullName, "loop.img");
            using (var h = File.OpenHandle(image, FileMode.CreateNew, FileAccess.ReadWrite)) RandomAccess.SetLength(h, size);
            return new LoopDevice(dir, Root.Run("losetup", "--find", "--show", image).Trim());
        }
        catch
        {
            dir.Delete(recursive: true);
            throw;
        }
    }

    public void Dispose()
    {
        try { Root.Run("losetup", "-d", Device); }
        finally { _dir.Delete(recursive: true); }
    }
}

/// <summary>A tmpfs of a given size mounted on a fresh temp directory: a file system that fills up.</summary>
internal sealed class TmpfsMount : IDisposable
{
    private TmpfsMount(string path) => Path = path;

    public string Path { get; }

    public static TmpfsMount Create(string size)
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-tmpfs-");
        try { Root.Run("mount", "-t", "tmpfs", "-o", $"size={size},mode=0700", "tmpfs", dir.FullName); }
        catch
        {
            dir.Delete();
            throw;
        }
        return new TmpfsMount(dir.FullName);
    }

    public void Dispose()
    {
        try { Root.Run("umount", Path); }
        catch (InvalidOperationException)
        {
            Root.Run("umount", "-l", Path); // still busy (a store left open by a failed test): detach it anyway
        }
        Directory.Delete(Path);
    }
}
