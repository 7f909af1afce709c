using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Integration.Tests.Deploy;

/// <summary>Runs a command to completion (or kills it at the timeout) and captures its output.</summary>
internal static class Cmd
{
    public sealed record Result(int Code, string Out, string Err)
    {
        public Result Ensure(string what) => Code == 0 ? this
            : throw new InvalidOperationException($"{what} failed with exit code {Code}:\n{Tail(Err, 40)}\n{Tail(Out, 20)}");
    }

    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, Action<ProcessStartInfo>? configure = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        configure?.Invoke(psi);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new TimeoutException($"{file} {string.Join(' ', psi.ArgumentList)} did not finish within {timeout.TotalSeconds:0} s:\n{Tail(await stderr, 30)}");
        }
        return new Result(p.ExitCode, await stdout, await stderr);
    }

    public static Task<Result> Docker(params string[] args) => RunAsync("docker", args, TimeSpan.FromMinutes(5));

    public static string? Which(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Concat(["/usr/sbin", "/sbin"])
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    public static string Tail(string text, int lines)
    {
        var all = text.TrimEnd().Split('\n');
        return string.Join('\n', all.Skip(Math.Max(0, all.Length - lines)));
    }
}

/// <summary>
/// A Docker engine for the test: the running one, or a dockerd this test starts (as root) and stops again with
/// SIGTERM on dispose — and at process exit should the test host be torn down first.
/// </summary>
internal sealed class DockerEngine : IAsyncDisposable
{
    private readonly Process? _started;
    private readonly string? _log;
    private readonly Action<string> _say;

    private DockerEngine(Process? started, string? log, Action<string> say)
    {
        _started = started;
        _log = log;
        _say = say;
        if (_started != null) AppDomain.CurrentDomain.ProcessExit += OnProcessExit;
    }

    public bool StartedByTest => _started != null;

    public static async Task<DockerEngine> EnsureAsync(Action<string> say)
    {
        if (Cmd.Which("docker") is null)
            throw new InvalidOperationException("the docker CLI is not installed: apt-get install docker.io debootstrap (./test.sh installs them)");
        var info = await Cmd.RunAsync("docker", ["info", "--format", "{{.ServerVersion}} {{.Driver}}"], TimeSpan.FromSeconds(30));
        if (info.Code == 0)
        {
            say($"docker engine {info.Out.Trim()} is running; the test leaves it running");
            return new DockerEngine(null, null, say);
        }
        if (geteuid() != 0)
            throw new InvalidOperationException($"no Docker engine answers ({Cmd.Tail(info.Err, 3)}) and this test is not root, so it cannot start dockerd");
        var dockerd = Cmd.Which("dockerd") ?? throw new InvalidOperationException("dockerd is not installed: apt-get install docker.io");
        var log = Path.Combine(Path.GetTempPath(), $"nvmet-dockerd-{Environment.ProcessId}.log");
        // exec: the process we hold is dockerd itself, so SIGTERM reaches it.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" >>\"$1\" 2>&1");
        psi.ArgumentList.Add(dockerd);
        psi.ArgumentList.Add(log);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start dockerd");
        say($"started dockerd (pid {p.Id}, log {log})");
        var engine = new DockerEngine(p, log, say);
        try
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (true)
            {
                if (p.HasExited) throw new InvalidOperationException($"dockerd exited with code {p.ExitCode}:\n{Cmd.Tail(await File.ReadAllTextAsync(log), 30)}");
                var r = await Cmd.RunAsync("docker", ["info", "--format", "{{.ServerVersion}} {{.Driver}}"], TimeSpan.FromSeconds(30));
                if (r.Code == 0) { say($"docker engine {r.Out.Trim()} is up"); return engine; }
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"dockerd did not answer within 90 s:\n{Cmd.Tail(await File.ReadAllTextAsync(log), 30)}");
                await Task.Delay(500);
            }
        }
        catch
        {
            await engine.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_started is null) return;
        AppDomain.CurrentDomain.ProcessExit -= OnProcessExit;
        if (!_started.HasExited)
        {
            kill(_started.Id, 15); // SIGTERM: dockerd stops its containers and its containerd
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await _started.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException)
            {
                _say("dockerd ignored SIGTERM for 60 s; killing it");
                _started.Kill(entireProcessTree: true);
            }
        }
        _say($"stopped the dockerd the test started (exit code {_started.ExitCode})");
        _started.Dispose();
        if (_log != null) File.Delete(_log);
    }

    private void OnProcessExit(object? sender, EventArgs e)
    {
        try { if (_started is { HasExited: false }) { kill(_started.Id, 15); _started.WaitForExit(20_000); } }
        catch (InvalidOperationException) { }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [DllImport("libc")]
    private static extern uint geteuid();
}

/// <summary>
/// The base image for the test image: Debian bookworm from debootstrap --variant=minbase plus libssl3 (the
/// self-contained target needs glibc, libstdc++, libgcc and OpenSSL; no ICU with invariant globalization),
/// imported with docker import. Cached as an image tag derived from the recipe: built once per machine (about a
/// minute), reused by every later run; `docker rmi` it to refresh.
/// </summary>
internal static class DebootstrapBase
{
    private const string Suite = "bookworm";
    private const string Include = "libssl3";
    private const int RecipeVersion = 1;

    private static string Mirror => Environment.GetEnvironmentVariable("NVMET_DEBIAN_MIRROR") is { Length: > 0 } m ? m : "http://deb.debian.org/debian";

    public static string Tag
    {
        get
        {
            var recipe = $"{RecipeVersion} {Suite} minbase {Include} {Mirror}";
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(recipe)))[..10];
            return $"nvmet-test-base:{Suite}-minbase-{hash}";
        }
    }

    public static async Task<string> EnsureAsync(Action<string> say)
    {
        var tag = Tag;
        if (await ExistsAsync(tag)) { say($"base image {tag} is cached"); return tag; }
        // One builder at a time on this machine (another test run may be building the same tag).
        using var gate = await LockAsync(Path.Combine(Path.GetTempPath(), "nvmet-test-base.lock"));
        if (await ExistsAsync(tag)) { say($"base image {tag} was built meanwhile"); return tag; }
        if (Cmd.Which("debootstrap") is null) throw new InvalidOperationException("debootstrap is not installed: apt-get install debootstrap (./test.sh installs it)");

        var work = Path.Combine("/var/tmp", $"nvmet-base-{Guid.NewGuid():N}");
        var root = Path.Combine(work, "root");
        Directory.CreateDirectory(work);
        var sw = Stopwatch.StartNew();
        try
        {
            say($"debootstrap --variant=minbase --include={Include} {Suite} from {Mirror} (a minute or two, once per machine)");
            (await Cmd.RunAsync("debootstrap", ["--variant=minbase", $"--include={Include}", Suite, root, Mirror], TimeSpan.FromMinutes(12)))
                .Ensure("debootstrap");
            // What a container never needs: package lists and archives, documentation, translations.
            (await Cmd.RunAsync("/bin/bash", ["-c", "cd \"$0\" && rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* usr/share/doc usr/share/man usr/share/locale usr/share/info", root],
                TimeSpan.FromMinutes(2))).Ensure("trimming the base");
            (await Cmd.RunAsync("/bin/bash", ["-c", "set -o pipefail; tar -C \"$0\" -c . | docker import --change \"LABEL io.nvmetcptarget.test-base=$2\" - \"$1\"", root, tag, $"debootstrap-{Suite}-minbase-{Include}-{DateTime.UtcNow:yyyy-MM-dd}"],
                TimeSpan.FromMinutes(5))).Ensure("docker import");
            say($"base image {tag} built in {sw.Elapsed.TotalSeconds:0} s");
            return tag;
        }
        finally { await RemoveTreeAsync(work); }
    }

    private static async Task<bool> ExistsAsync(string tag) => (await Cmd.Docker("image", "inspect", "--format", "{{.Id}}", tag)).Code == 0;

    /// <summary>Deletes a debootstrap tree safely: a failed debootstrap can leave /proc or /sys mounted inside it.</summary>
    private static async Task RemoveTreeAsync(string dir)
    {
        if (!Directory.Exists(dir)) return;
        var mounts = File.ReadAllLines("/proc/mounts").Select(l => l.Split(' ')[1]).Where(m => m.StartsWith(dir + "/", StringComparison.Ordinal))
            .OrderByDescending(m => m.Length).ToList();
        foreach (var m in mounts) await Cmd.RunAsync("umount", ["-l", m], TimeSpan.FromSeconds(30));
        await Cmd.RunAsync("rm", ["-rf", "--one-file-system", dir], TimeSpan.FromMinutes(2));
    }

    private static async Task<FileStream> LockAsync(string path)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(15);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline) { await Task.Delay(1000); }
        }
    }
}
