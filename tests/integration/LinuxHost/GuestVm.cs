using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Integration.Tests.LinuxHost;

/// <summary>
/// Boots a Debian guest kernel (<see cref="GuestKernel"/>: 6.1 or 6.12) under QEMU
/// (tests/integration/guest/run-guest.sh) with a test script and collects its console. QEMU is killed on
/// every exit path: timeout, dispose, test-runner abort.
/// </summary>
public sealed partial class GuestVm : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _console = new();
    private readonly Lock _lock = new();
    private readonly List<(Regex Pattern, TaskCompletionSource<string> Seen)> _waiters = [];
    private readonly string _scriptPath;

    private GuestVm(Process process, string scriptPath)
    {
        _process = process;
        _scriptPath = scriptPath;
    }

    public static string GuestDir => Path.Combine(RepoRoot, "tests", "integration", "guest");

    public static string RepoRoot
    {
        get
        {
            var dir = AppContext.BaseDirectory;
            while (dir != null && !File.Exists(Path.Combine(dir, "NvmeTcpTarget.sln"))) dir = Path.GetDirectoryName(dir);
            return dir ?? throw new InvalidOperationException("cannot find the repository root (NvmeTcpTarget.sln)");
        }
    }

    /// <summary>The host NQN baked into the guest initramfs (/etc/nvme/hostnqn).</summary>
    public const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:7b4d9a6e-1c2f-4e8a-9d3b-5a6c7e8f9012";

    public string Console { get { lock (_lock) return _console.ToString(); } }
    public int ProcessId => _process.Id;

    /// <summary>Starts the guest with <paramref name="script"/> as /test.sh, on <paramref name="kernel"/>
    /// (run-guest.sh has prepare.sh build or find that kernel's cached image).</summary>
    public static GuestVm Start(string script, TimeSpan timeout, int smp = 2, int memoryMiB = 1024, GuestKernel kernel = GuestKernel.Linux61)
    {
        var scriptPath = Path.Combine(Path.GetTempPath(), $"guest-{Guid.NewGuid():N}.sh");
        File.WriteAllText(scriptPath, script.Replace("\r\n", "\n"));
        var psi = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { Path.Combine(GuestDir, "run-guest.sh"), "--script", scriptPath, "--timeout", ((int)timeout.TotalSeconds).ToString(),
                     "--smp", smp.ToString(), "--mem", memoryMiB.ToString(), "--append", "guest.loglevel=4",
                     "--console", Path.ChangeExtension(scriptPath, ".console.log"), "--kernel", kernel.Series() })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("cannot start run-guest.sh");
        var vm = new GuestVm(p, scriptPath);
        p.OutputDataReceived += (_, e) => vm.OnLine(e.Data);
        p.ErrorDataReceived += (_, e) => vm.OnLine(e.Data is null ? null : "[run-guest] " + e.Data);
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => vm.Kill();
        return vm;
    }

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_lock)
        {
            _console.AppendLine(line);
            foreach (var (pattern, seen) in _waiters)
                if (pattern.IsMatch(line)) seen.TrySetResult(line);
        }
    }

    /// <summary>Waits until a console line matches <paramref name="pattern"/>.</summary>
    public async Task<string> WaitForLineAsync(string pattern, TimeSpan timeout)
    {
        var tcs = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var regex = new Regex(pattern);
        lock (_lock)
        {
            foreach (var line in _console.ToString().Split('\n'))
                if (regex.IsMatch(line)) return line;
            _waiters.Add((regex, tcs));
        }
        var exited = _process.WaitForExitAsync();
        var done = await Task.WhenAny(tcs.Task, exited, Task.Delay(timeout));
        if (done == tcs.Task) return await tcs.Task;
        throw new TimeoutException($"guest console never showed /{pattern}/ ({(done == exited ? "guest exited" : "timeout")})\n{Console}");
    }

    /// <summary>Waits for the guest to power off; returns run-guest.sh's exit code (the script's own).</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { Kill(); throw new TimeoutException($"guest did not finish in {timeout}\n{Console}"); }
        _process.WaitForExit(); // flush the output events
        return _process.ExitCode;
    }

    /// <summary>Freezes the whole VM (SIGSTOP to QEMU): its TCP connections stay open but go silent, as
    /// with a host that hung or lost power behind a switch.</summary>
    public void Freeze()
    {
        var pids = QemuPids().ToList();
        if (pids.Count == 0) throw new InvalidOperationException("no QEMU process found to freeze");
        using var kill = Process.Start("kill", ["-STOP", .. pids.Select(p => p.ToString())])!;
        kill.WaitForExit();
    }

    /// <summary>QEMU processes started (indirectly) by this guest's run-guest.sh.</summary>
    private IEnumerable<int> QemuPids()
    {
        var parent = new Dictionary<int, int>();
        var comm = new Dictionary<int, string>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int close = stat.LastIndexOf(')');
                comm[pid] = stat[(stat.IndexOf('(') + 1)..close];
                parent[pid] = int.Parse(stat[(close + 2)..].Split(' ')[1]);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        }
        int root = _process.Id;
        bool Descends(int pid)
        {
            for (int i = 0; i < 64 && parent.TryGetValue(pid, out var pp); i++, pid = pp)
                if (pp == root) return true;
            return false;
        }
        return comm.Where(kv => kv.Value.StartsWith("qemu-system", StringComparison.Ordinal) && Descends(kv.Key)).Select(kv => kv.Key).ToList();
    }

    public void Kill()
    {
        List<int> qemu = [];
        try { qemu = QemuPids().ToList(); } catch (InvalidOperationException) { }
        foreach (var pid in qemu)
            try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { } catch (InvalidOperationException) { }
        try { if (!_process.HasExited) _process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        try { await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)); } catch (TimeoutException) { }
        _process.Dispose();
        try { File.Delete(_scriptPath); File.Delete(Path.ChangeExtension(_scriptPath, ".console.log")); } catch (IOException) { }
    }

    /// <summary>Sections a guest script printed between "@@BEGIN name@@" and "@@END name rc=N@@".</summary>
    public static Dictionary<string, (string Output, int Rc)> Sections(string console)
    {
        var result = new Dictionary<string, (string, int)>();
        foreach (Match m in SectionRegex().Matches(console.Replace("\r", "")))
            result[m.Groups[1].Value] = (m.Groups[2].Value, int.Parse(m.Groups[3].Value));
        return result;
    }

    // A kernel message may land on the console right after a BEGIN marker, before its newline (seen with a host retrying a
    // dead path every second): the rest of that line is not part of the section.
    [GeneratedRegex(@"@@BEGIN (\S+)@@[^\n]*\n(.*?)@@END \1 rc=(\d+)@@", RegexOptions.Singleline)]
    private static partial Regex SectionRegex();
}
