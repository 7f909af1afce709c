using System.Diagnostics;
using Target.Cli;
using Target.Management;

namespace Integration.Tests.Ceph;

/// <summary>A gateway as its own process (the built nvme-tcp-target.dll), with its management API on a Unix socket of
/// its own and no probe listener (several run at once): started until it listens, killed (also when it was frozen) on
/// every exit path.</summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    private GatewayProcess(string name, int port, string socket, Process process)
    {
        Name = name;
        Port = port;
        Process = process;
        Log = new ProcessLog(process);
        Api = new ApiClient(new Uri("http://localhost/"), null, socketPath: socket);
    }

    public string Name { get; }
    public int Port { get; }
    public Process Process { get; }
    public ProcessLog Log { get; }
    public ApiClient Api { get; }

    /// <summary>Starts the target with <paramref name="args"/> plus its own API socket and --probes off; returns once it
    /// listens for NVMe/TCP (throws with its output if it exits or takes longer than 60 s).</summary>
    public static async Task<GatewayProcess> StartAsync(string name, int port, IReadOnlyDictionary<string, string>? environment, params string[] args)
    {
        string socket = Path.Combine(Path.GetTempPath(), $"gw-{Environment.ProcessId}-{name}-{Guid.NewGuid().ToString("N")[..6]}.sock");
        var psi = TargetProcess.StartInfo(environment, [.. args, "--api", "unix:" + socket, "--probes", "off"]);
        var g = new GatewayProcess(name, port, socket, Process.Start(psi)!);
        var sw = Stopwatch.StartNew();
        while (!g.Log.Text.Contains("Listening for NVMe/TCP", StringComparison.Ordinal) || !File.Exists(socket))
        {
            if (g.Process.HasExited || sw.Elapsed > TimeSpan.FromSeconds(60))
            {
                await g.DisposeAsync();
                throw new InvalidOperationException($"gateway {name} did not start:\n{g.Log.Text}");
            }
            await Task.Delay(50);
        }
        return g;
    }

    /// <summary>ANA group <paramref name="group"/> of <paramref name="nqn"/> as this gateway's API shows it.</summary>
    public async Task<AnaGroupInfo> GroupAsync(string nqn, uint group = 1) =>
        (await Api.GetAsync<AnaInfo>($"subsystems/{ApiClient.Segment(nqn)}/ana")).Value.Groups.Single(g => g.Group == group);

    /// <summary>SIGKILL: nothing is released, connections reset.</summary>
    public async Task KillAsync()
    {
        if (!Process.HasExited) Process.Kill();
        await Process.WaitForExitAsync();
    }

    /// <summary>SIGSTOP / SIGCONT: a gateway that is frozen, then wakes up as if nothing happened.</summary>
    public void Freeze() => Signal(19);
    public void Thaw() => Signal(18);

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    private void Signal(int signal)
    {
        if (Kill(Process.Id, signal) != 0) throw new InvalidOperationException($"kill({Process.Id}, {signal}) failed");
    }

    /// <summary>SIGTERM and waits for the graceful stop (which releases the gateway's ANA groups); false if it took longer than 20 s.</summary>
    public async Task<bool> StopAsync()
    {
        if (Process.HasExited) return true;
        _ = Kill(Process.Id, 18);
        _ = Kill(Process.Id, 15);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try { await Process.WaitForExitAsync(cts.Token); return true; }
        catch (OperationCanceledException) { return false; }
    }

    /// <summary>Stops gracefully (SIGTERM, so later tests find the group's lease released), killing it after 20 s.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (!Process.HasExited)
        {
            try { Process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            _ = Kill(Process.Id, 18); // a stopped process dies only once continued
        }
        await Process.WaitForExitAsync();
        Process.Dispose();
    }
}
