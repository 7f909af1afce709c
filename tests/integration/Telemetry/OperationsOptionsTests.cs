using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Integration.Tests.Telemetry;

/// <summary>The real executable's operations options: --help documents them, bad values exit 2 with one clear
/// message, --log-format json writes one JSON object per line with the event ids; and the systemd unit.</summary>
public sealed class OperationsOptionsTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static ProcessStartInfo Psi(params string[] args) => TargetProcess.StartInfo(null, args);
    private static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => TargetProcess.RunAsync(args);

    [Fact]
    public async Task Help_DocumentsTheOperationsOptionsAndEndpoints()
    {
        var (code, output, _) = await RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var text in new[] { "--log-format", "--shutdown-grace", "--otlp-endpoint", "--otlp-protocol", "--trace-io-sample-rate", "--metrics-auth",
                     "NVMET_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_METRIC_EXPORT_INTERVAL", "NVMET_SHUTDOWN_GRACE", "/metrics", "/healthz", "/readyz" })
            Assert.Contains(text, output);
    }

    [Theory]
    [InlineData(new[] { "--shutdown-grace", "soon" }, "--shutdown-grace 'soon' is not a number of seconds")]
    [InlineData(new[] { "--log-format", "xml" }, "--log-format 'xml' must be simple or json")]
    [InlineData(new[] { "--otlp-endpoint", "collector:4318" }, "--otlp-endpoint 'collector:4318' is not an http:// or https:// URL")]
    [InlineData(new[] { "--otlp-protocol", "udp" }, "--otlp-protocol 'udp' must be http/protobuf or grpc")]
    [InlineData(new[] { "--trace-io-sample-rate", "2" }, "--trace-io-sample-rate '2' must be a number from 0 to 1")]
    [InlineData(new[] { "--metrics-auth", "maybe" }, "--metrics-auth 'maybe' must be none or token")]
    public async Task BadValues_ExitWithCode2AndAClearMessage(string[] args, string message)
    {
        var (code, _, err) = await RunAsync(args);
        Assert.Equal(2, code);
        Assert.Contains(message, err);
    }

    [Fact]
    public async Task JsonLogFormat_WritesOneJsonObjectPerLine_WithEventIds()
    {
        using var p = Process.Start(Psi("--log-format", "json", "--listen", "127.0.0.1:0", "--api", "off", "--probes", "off", "--namespace", "memory:16M"))!;
        var lines = new List<string>();
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { exited.TrySetResult(); return; }
            lock (lines) lines.Add(e.Data);
            if (e.Data.Contains("nvme connect -t tcp")) ready.TrySetResult();
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (lines) output.WriteLine("stderr: " + e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString()])) await kill.WaitForExitAsync();
            using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30))) await p.WaitForExitAsync(cts.Token);
            await exited.Task.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
            lock (lines) foreach (var l in lines) output.WriteLine(l);
        }

        List<JsonElement> entries;
        lock (lines) entries = lines.Select(l => JsonDocument.Parse(l).RootElement.Clone()).ToList(); // every line is JSON
        var hint = Assert.Single(entries, e => e.GetProperty("EventId").GetInt32() == 302);
        Assert.Equal("Target", hint.GetProperty("Category").GetString());
        Assert.Equal("Information", hint.GetProperty("LogLevel").GetString());
        Assert.StartsWith("Connect from Linux: nvme connect -t tcp -a 127.0.0.1", hint.GetProperty("Message").GetString());
        Assert.Equal("nqn.2026-01.io.nvmetcptarget:default", hint.GetProperty("State").GetProperty("Nqn").GetString());
        Assert.Contains(entries, e => e.GetProperty("EventId").GetInt32() == 311); // shutdown steps are logged
        Assert.Equal(318, entries[^1].GetProperty("EventId").GetInt32());            // "Stopped" last
    }

    [Fact]
    public async Task SystemdUnit_IsHardened_AndVerifies()
    {
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "NvmeTcpTarget.sln"))) root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("repository root not found");
        var unit = await File.ReadAllTextAsync(Path.Combine(root, "deploy", "systemd", "nvme-tcp-target.service"));
        var settings = unit.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#') && l.Contains('='))
            .Select(l => (Key: l[..l.IndexOf('=')], Value: l[(l.IndexOf('=') + 1)..])).ToList();
        string One(string key) => Assert.Single(settings, s => s.Key == key).Value;
        Assert.Contains(One("Type"), new[] { "simple", "exec" });
        Assert.Equal("on-failure", One("Restart"));
        Assert.Equal("yes", One("NoNewPrivileges"));
        Assert.Equal("strict", One("ProtectSystem"));
        Assert.Equal("yes", One("PrivateTmp"));
        Assert.Equal("yes", One("ProtectHome"));
        Assert.Contains("/etc/nvme-tcp-target", One("ReadWritePaths")); // target.json is rewritten on live changes
        Assert.EndsWith("--config /etc/nvme-tcp-target/target.json", One("ExecStart"));
        Assert.DoesNotContain("--api", One("ExecStart"));                // the environment file may move it
        Assert.DoesNotContain(settings, s => s.Key == "MemoryDenyWriteExecute"); // the JIT needs W^X off

        // Environment=KEY=VALUE lines, one variable each.
        var env = settings.Where(s => s.Key == "Environment").Select(s => s.Value.Trim('"'))
            .ToDictionary(v => v[..v.IndexOf('=')], v => v[(v.IndexOf('=') + 1)..]);
        // The management API on a Unix socket in the runtime directory, which systemd creates owner-only at start
        // (and removes at stop): only the service user and root reach it, so it needs no token. Never TCP.
        Assert.Equal("nvme-tcp-target", One("RuntimeDirectory"));
        Assert.Equal("0700", One("RuntimeDirectoryMode"));
        Assert.Equal("unix:/run/nvme-tcp-target/api.sock", env.GetValueOrDefault("NVMET_API"));
        Assert.Contains("AF_UNIX", One("RestrictAddressFamilies").Split(' '));
        Assert.DoesNotContain(env.Keys, k => k.StartsWith("NVMET_API_TOKEN", StringComparison.Ordinal)); // no secret in the unit
        // The state directory is the storage directory: file namespaces only there.
        Assert.Equal("nvme-tcp-target", One("StateDirectory"));
        Assert.Equal("/var/lib/nvme-tcp-target", env.GetValueOrDefault("NVMET_STORAGE_DIRS"));
        Assert.Equal("/var/lib/nvme-tcp-target", One("WorkingDirectory"));
        // The probes stay on their loopback default unless the environment file moves them.
        Assert.False(env.ContainsKey("NVMET_PROBES"));
        // Optional; its settings override the Environment= lines (systemd.exec).
        Assert.StartsWith("-/etc/nvme-tcp-target/", One("EnvironmentFile"));

        // systemd-analyze verify, with ExecStart pointing at the built program (the installed path does not exist here).
        if (!File.Exists("/usr/bin/systemd-analyze")) return;
        var dir = Directory.CreateTempSubdirectory("nvmet-unit-");
        try
        {
            var exe = Path.Combine(AppContext.BaseDirectory, "nvme-tcp-target");
            var local = Path.Combine(dir.FullName, "nvme-tcp-target.service");
            await File.WriteAllTextAsync(local, unit.Replace("/usr/lib/nvme-tcp-target/nvme-tcp-target", File.Exists(exe) ? exe : "/bin/true"));
            var psi = new ProcessStartInfo("systemd-analyze", ["verify", local]) { RedirectStandardError = true, RedirectStandardOutput = true };
            using var p = Process.Start(psi)!;
            var err = await p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, $"systemd-analyze verify: {err}");
        }
        finally { dir.Delete(recursive: true); }
    }
}
