using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Integration.Tests.InProcess;
using Xunit.Abstractions;

namespace Integration.Tests.Program;

/// <summary>
/// README's first command, stopped the way a terminal or a supervisor stops it: SIGTERM to the whole process
/// group of `dotnet run`. dotnet run forwards the signal to the target, which therefore sees it twice; that must
/// still be one graceful stop (flush, exit 0), not the "second signal" that exits at once with 130.
/// </summary>
public sealed class DotnetRunSignalTests(ITestOutputHelper output)
{
    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "NvmeTcpTarget.sln"))) return dir.FullName;
        throw new InvalidOperationException("the repository (NvmeTcpTarget.sln) is not above " + AppContext.BaseDirectory);
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [Fact]
    public async Task SigtermToDotnetRunsProcessGroup_FlushesAndExits0()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-dotnet-run-");
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var image = Path.Combine(dir.FullName, "disk.img");
        // setsid: dotnet run leads a process group of its own, as in a terminal; the group id is its pid.
        var psi = new ProcessStartInfo("setsid") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "dotnet", "run", "--no-build", "-c", "Release", "--project", Path.Combine(RepositoryRoot(), "src", "Target"), "--",
                     "--listen", $"127.0.0.1:{port}", "--api", "off", "--probes", "off", "--storage-dir", dir.FullName, "--namespace", $"file:{image}:16M" })
            psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("NVMET_", StringComparison.Ordinal)).ToList()) psi.Environment.Remove(key);
        using var p = Process.Start(psi)!;
        var log = new ProcessLog(p);
        try
        {
            await log.WaitForAsync("nvme connect -t tcp", TimeSpan.FromSeconds(120));
            var data = TestData.Random(64 * 1024, 5);
            await using (var host = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), "nqn.2026-01.io.nvmetcptarget:default"))
            {
                await host.CreateIoQueuesAsync(1);
                (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();
            }
            Assert.Equal(0, kill(-p.Id, 15)); // SIGTERM to the process group: dotnet run and the target both get it
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await p.WaitForExitAsync(cts.Token);
            var text = log.Text;
            Assert.True(p.ExitCode == 0, $"exit code {p.ExitCode}:\n{text}");
            Assert.Contains($"Shutdown: flushed and closed namespace 1 of nqn.2026-01.io.nvmetcptarget:default (file {image})", text);
            Assert.Contains("Stopped", text);
            var onDisk = new byte[data.Length];
            await using (var f = File.OpenRead(image)) await f.ReadExactlyAsync(onDisk);
            Assert.Equal(data, onDisk);
        }
        finally
        {
            if (!p.HasExited) kill(-p.Id, 9);
            output.WriteLine(log.Text);
            dir.Delete(recursive: true);
        }
    }
}
