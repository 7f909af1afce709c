using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Integration.Tests.Program;

/// <summary>
/// The real executable running in the background on a free loopback port with <c>--api off</c>, its output
/// collected. Dispose it on every exit path: the process is killed if it still runs.
/// </summary>
internal sealed class LiveTarget : IAsyncDisposable
{
    private readonly StringBuilder _log = new();

    private LiveTarget(Process process, int port)
    {
        Process = process;
        Port = port;
    }

    public Process Process { get; }
    public int Port { get; }
    public IPEndPoint Endpoint => new(IPAddress.Loopback, Port);
    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>A port nothing listens on right now (bound and released; a race with other processes is unlikely).</summary>
    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Starts the target on <paramref name="port"/> (a free one when null) and waits until it listens,
    /// or until it exits (then the returned target's process has exited; see <see cref="Log"/>).</summary>
    public static async Task<LiveTarget> StartAsync(int? port, params string[] extraArgs)
    {
        int p = port ?? FreePort();
        string[] args = ["--listen", $"127.0.0.1:{p}", "--api", "off", "--probes", "off", .. extraArgs];
        var process = System.Diagnostics.Process.Start(TargetProcess.StartInfo(null, args))!;
        var t = new LiveTarget(process, p);
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (t._log) t._log.AppendLine(e.Data);
            if (e.Data.Contains("Listening for NVMe/TCP", StringComparison.Ordinal)) listening.TrySetResult();
        };
        process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (t._log) t._log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await Task.WhenAny(listening.Task, process.WaitForExitAsync()).WaitAsync(TimeSpan.FromSeconds(60));
            if (!listening.Task.IsCompleted && !process.HasExited) throw new TimeoutException("the target neither listened nor exited within 60 s:\n" + t.Log);
            return t;
        }
        catch
        {
            await t.DisposeAsync();
            throw;
        }
    }

    /// <summary>Resident set size of the process (VmRSS in /proc/PID/status), in bytes.</summary>
    public long RssBytes()
    {
        foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("no VmRSS line");
    }

    /// <summary>Waits for the process to exit on its own; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await Process.WaitForExitAsync(cts.Token);
        Process.WaitForExit(); // flushes the redirected output
        return Process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                await Process.WaitForExitAsync(cts.Token);
            }
        }
        catch (InvalidOperationException) { /* never started or already reaped */ }
        finally { Process.Dispose(); }
    }
}

/// <summary>/proc/net/tcp(6): what the kernel holds for loopback TCP sockets of this machine.</summary>
internal static class ProcNetTcp
{
    /// <summary>(local port, remote port, state, rx_queue) of every IPv4 and IPv6 TCP socket.</summary>
    public static IEnumerable<(int Local, int Remote, int State, long RxQueue)> Sockets()
    {
        foreach (var file in new[] { "/proc/net/tcp", "/proc/net/tcp6" })
        {
            if (!File.Exists(file)) continue;
            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length < 5) continue;
                int local = int.Parse(f[1][(f[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                int remote = int.Parse(f[2][(f[2].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                int state = int.Parse(f[3], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                long rx = long.Parse(f[4][(f[4].IndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                yield return (local, remote, state, rx);
            }
        }
    }

    public const int Established = 0x01, TimeWait = 0x06, Listen = 0x0A;
}
