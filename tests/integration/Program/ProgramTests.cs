using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Integration.Tests.Initiator;
using Integration.Tests.LinuxHost;
using Nvme.Core.Spec;

namespace Integration.Tests.Program;

/// <summary>The real executable: --help, start-up validation (exit code 2 with one message per mistake),
/// the default start with its nvme connect hint, a host connecting, and a clean SIGTERM shutdown.</summary>
public sealed partial class ProgramTests
{
    private static Process Start(params string[] args) => TargetProcess.Start(args);
    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => TargetProcess.RunAsync(args);

    [Fact]
    public async Task Help_DocumentsEveryOption()
    {
        var (code, output, _) = await RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var option in new[] { "--config", "--listen", "--advertise", "--nqn", "--namespace", "--allow-host", "--mqes", "--mdts",
                     "--in-capsule", "--max-h2c-data", "--io-queues", "--data-buffer-budget", "--c2h-success", "--log-level", "--help", "--version", "NVMET_LISTEN" })
            Assert.Contains(option, output);
    }

    [Theory]
    [InlineData(new[] { "--nqn", "not-an-nqn" }, "NQN 'not-an-nqn' is not of the form")]
    [InlineData(new[] { "--namespace", "memory:lots" }, "size 'lots' is not a size")]
    [InlineData(new[] { "--namespace", "tape:/dev/st0" }, "backend 'tape' is not memory, file, block or rbd")]
    [InlineData(new[] { "--namespace", "file:/nonexistent/dir/x.img" }, "file namespace '/nonexistent/dir/x.img' is outside the storage directories")]
    [InlineData(new[] { "--config", "/nonexistent/target.json" }, "configuration file '/nonexistent/target.json' does not exist")]
    [InlineData(new[] { "--mdts", "40" }, "limits.mdts 40 is outside")]
    [InlineData(new[] { "--data-buffer-budget", "10k" }, "limits.dataBufferBudget '10k' is not a size of at least 1M")]
    [InlineData(new[] { "--bogus" }, "unknown option '--bogus'")]
    [InlineData(new[] { "--listen", "localhost" }, "--listen 'localhost' is not ADDR:PORT")]
    public async Task BadInput_ExitsWithCode2AndAClearMessage(string[] args, string message)
    {
        var (code, _, err) = await RunAsync(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public async Task ConfigFile_EveryMistakeIsReported()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, """
                {
                  "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "subsystems": [
                    { "nqn": "nqn.2026-01.io.example:a",
                      "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" },
                                      { "nsid": 1, "backend": "memory", "size": "16M" },
                                      { "nsid": 2, "backend": "memory", "size": "16M", "blockSize": 1000 } ] },
                    { "nqn": "bad nqn", "allowedHosts": [ "also bad" ] }
                  ]
                }
                """);
            var (code, _, err) = await RunAsync("--config", file);
            Assert.Equal(2, code);
            Assert.Contains("NSID 1 is used by 2 namespaces", err);
            Assert.Contains("blockSize 1000 must be 512 or 4096", err);
            Assert.Contains("NQN 'bad nqn' is not of the form", err);
            Assert.Contains("allowed host: NQN 'also bad'", err);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public async Task PortInUse_ExitsWithCode2()
    {
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        int port = ((IPEndPoint)blocker.LocalEndpoint).Port;
        var (code, _, err) = await RunAsync("--listen", $"127.0.0.1:{port}", "--namespace", "memory:16M", "--api", "off", "--probes", "off");
        Assert.Equal(2, code);
        Assert.Contains($"cannot listen on 127.0.0.1:{port}", err);
    }

    /// <summary>The default start, as README's first command gives it (only the NVMe/TCP port is moved, so that the
    /// test does not depend on 4420 being free): the connect hint, the management API on root's default Unix socket
    /// (0600 in a 0700 directory) with the CLI reaching it, the read-only probes on 127.0.0.1:8420, a host served,
    /// and a clean SIGTERM that removes the socket again.</summary>
    [Fact]
    public async Task DefaultStart_PrintsConnectCommand_ServesAHost_StopsCleanlyOnSigterm()
    {
        const string Socket = "/run/nvme-tcp-target/api.sock";
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        using var p = Start("--listen", $"127.0.0.1:{port}");
        var log = new StringBuilder();
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var apiLine = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            if (e.Data.Contains("nvme connect -t tcp")) ready.TrySetResult(e.Data);
            if (e.Data.Contains("Target[307]")) apiLine.TrySetResult(e.Data); // the probes line comes after the API's
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            var line = await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Contains($"nvme connect -t tcp -a 127.0.0.1 -s {port} -n nqn.2026-01.io.nvmetcptarget:default", line);
            await apiLine.Task.WaitAsync(TimeSpan.FromSeconds(30));
            lock (log)
            {
                Assert.Contains($"Management API on the Unix socket {Socket} (mode 0600: only this user; no token)", log.ToString());
                Assert.Contains("Probes (read-only): http://127.0.0.1:8420/healthz", log.ToString());
                Assert.Contains("admits any host NQN (it is reachable on loopback only)", log.ToString());
            }
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Socket));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(Socket)!));
            var (code, stdout, stderr) = await RunAsync("ns", "list"); // the CLI's default is the same socket
            Assert.True(code == 0, stderr);
            Assert.Contains("memory", stdout);
            using (var http = new HttpClient())
                Assert.Equal("{\"status\":\"ready\"}", await http.GetStringAsync("http://127.0.0.1:8420/readyz"));

            await using (var host = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), "nqn.2026-01.io.nvmetcptarget:default"))
            {
                var ns = await host.IdentifyAsync(IdentifyCns.Namespace, 1);
                Assert.Equal(1UL << 21, BitConverter.ToUInt64(ns, 0)); // 1 GiB of 512-byte blocks
            }

            using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) await kill.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
            Assert.Equal(0, p.ExitCode);
            lock (log) Assert.Contains("Stopped", log.ToString());
            Assert.False(File.Exists(Socket), "the socket is removed at shutdown");
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
        }
    }
}
