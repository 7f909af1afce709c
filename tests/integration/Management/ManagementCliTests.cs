using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Integration.Tests.InProcess;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>The client commands of the real executable against an in-process target: tables, --json, the
/// problem detail on stderr with exit code 1, usage errors (2), an unreachable API (3).</summary>
public sealed class ManagementCliTests(ITestOutputHelper output)
{
    private const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427";

    private async Task<string> OkAsync(ApiTarget t, params string[] args)
    {
        var (code, stdout, stderr) = await Cli.RunAsync([.. args, "--api", t.ApiUrl]);
        output.WriteLine($"$ nvme-tcp-target {string.Join(' ', args)}\n{stdout}{stderr}");
        Assert.True(code == 0, $"exit {code}: {stderr}");
        Assert.Equal("", stderr);
        return stdout;
    }

    private async Task<string> FailsAsync(ApiTarget t, int expectedCode, params string[] args)
    {
        var (code, stdout, stderr) = await Cli.RunAsync([.. args, "--api", t.ApiUrl]);
        output.WriteLine($"$ nvme-tcp-target {string.Join(' ', args)}\n{stdout}{stderr}");
        Assert.Equal(expectedCode, code);
        return stderr;
    }

    private static string[] Row(string table, string first) =>
        table.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).First(c => c.Length > 0 && c[0] == first);

    [Fact]
    public async Task Ns_AddListResizeRemove_TablesJsonAndErrors()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-cli-");
        var config = TestTarget.DefaultConfig();
        config.Storage = new StorageConfig { Directories = [dir.FullName] };
        await using var t = await ApiTarget.StartAsync(output, config);
        try
        {
            Assert.StartsWith($"Added namespace 2 to {ApiTarget.Nqn}: memory, 16 MiB (32768 blocks of 512 bytes), UUID ",
                await OkAsync(t, "ns", "add", "--nqn", ApiTarget.Nqn, "--memory", "16M"));
            var image = Path.Combine(dir.FullName, "disk.img");
            Assert.Contains($"Added namespace 5 to {ApiTarget.Nqn}: file {image}, 8 MiB (2048 blocks of 4096 bytes)",
                await OkAsync(t, "ns", "add", "--nqn", ApiTarget.Nqn, "--file", image, "--size", "8M", "--nsid", "5", "--block-size", "4096"));

            var table = await OkAsync(t, "ns", "list", "--nqn", ApiTarget.Nqn);
            var lines = table.TrimEnd().Split('\n');
            Assert.Equal(4, lines.Length);
            Assert.Matches(@"^NSID +BACKEND +SIZE +BLOCK +BLOCKS +UUID +VISIBILITY +HOSTS +PATH$", lines[0]);
            Assert.Equal(lines[0].IndexOf("BACKEND", StringComparison.Ordinal), lines[3].IndexOf("file", StringComparison.Ordinal)); // aligned
            Assert.Equal(["2", "memory", "16", "MiB", "512", "32768"], Row(table, "2")[..6]);
            Assert.Equal(["5", "file", "8", "MiB", "4096", "2048"], Row(table, "5")[..6]);
            Assert.Equal(image, Row(table, "5")[^1]);

            // --nqn may be left out when the target has one subsystem.
            using (var json = JsonDocument.Parse(await OkAsync(t, "ns", "list", "--json")))
            {
                Assert.Equal([1u, 2u, 5u], json.RootElement.EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
                Assert.Equal(16L << 20, json.RootElement[1].GetProperty("sizeBytes").GetInt64());
            }

            Assert.Equal($"Resized namespace 2 of {ApiTarget.Nqn} to memory, 32 MiB (65536 blocks of 512 bytes).\n",
                await OkAsync(t, "ns", "resize", "--nsid", "2", "--size", "32M"));
            var refused = await FailsAsync(t, 1, "ns", "resize", "--nsid", "2", "--size", "8M");
            Assert.StartsWith("error: shrinking namespace 2", refused);
            Assert.Contains("\nAdd --force to shrink anyway", refused);
            using (var json = JsonDocument.Parse(await OkAsync(t, "ns", "resize", "--nqn", ApiTarget.Nqn, "--nsid", "2", "--size", "8M", "--force", "--json")))
                Assert.Equal(8L << 20, json.RootElement.GetProperty("sizeBytes").GetInt64());

            Assert.Equal($"Removed namespace 2 from {ApiTarget.Nqn}.\n", await OkAsync(t, "ns", "remove", "--nqn", ApiTarget.Nqn, "--nsid", "2"));
            Assert.Equal($"error: namespace 2 does not exist in {ApiTarget.Nqn}\n", await FailsAsync(t, 1, "ns", "remove", "--nsid", "2"));
            Assert.Equal(["1", "5"], (await OkAsync(t, "ns", "list")).Split('\n').Skip(1).Where(l => l.Length > 0).Select(l => l.Split(' ')[0]));
            Assert.Contains("NSID 5 is already in use", await FailsAsync(t, 1, "ns", "add", "--memory", "1M", "--nsid", "5"));

            // Usage errors.
            Assert.Contains("give exactly one of --memory SIZE, --file PATH, --block DEVICE or --rbd POOL/IMAGE", await FailsAsync(t, 2, "ns", "add", "--memory", "1G", "--block", "/dev/sdz"));
            Assert.Contains("--nsid is required", await FailsAsync(t, 2, "ns", "remove"));
            Assert.Contains("--nsid 'two' is not an NSID", await FailsAsync(t, 2, "ns", "remove", "--nsid", "two"));
            Assert.Contains("unknown option '--colour'", await FailsAsync(t, 2, "ns", "list", "--colour"));
            Assert.Contains("'ns frobnicate' is not a command", await FailsAsync(t, 2, "ns", "frobnicate"));
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task Subsys_Hosts_Ctrl_Commands()
    {
        await using var t = await ApiTarget.StartAsync(output);
        const string Other = "nqn.2026-01.io.example:cli";
        Assert.Equal($"Created subsystem {Other} (serial CLI-1) with 2 namespaces; no host may connect yet (add one: nvme-tcp-target hosts add --host NQN).\n",
            await OkAsync(t, "subsys", "create", "--nqn", Other, "--serial", "CLI-1", "--namespace", "memory:8M", "--namespace", "memory:4M,bs=4096"));
        var subs = await OkAsync(t, "subsys", "list");
        Assert.Matches(@"^NQN +NAMESPACES +HOSTS +CONTROLLERS +PORTS +SERIAL +MODEL\n", subs);
        Assert.Equal([Other, "2", "0", "0", "all", "CLI-1"], Row(subs, Other)[..6]);
        Assert.Equal([ApiTarget.Nqn, "1", "any"], Row(subs, ApiTarget.Nqn)[..3]);
        Assert.Contains("the target has several subsystems; choose one with --nqn", await FailsAsync(t, 2, "ns", "list"));

        Assert.Equal($"No allowed hosts: no host may connect to {Other} (add one: nvme-tcp-target hosts add --host NQN).\n",
            await OkAsync(t, "hosts", "list", "--nqn", Other));
        Assert.Equal($"Allowed host {HostNqn} on {Other}.\n", await OkAsync(t, "hosts", "add", "--nqn", Other, "--host", HostNqn));
        var hostTable = await OkAsync(t, "hosts", "list", "--nqn", Other);
        Assert.Matches(@"^HOST NQN +DHCHAP +CTRL SECRET +HASH +DHGROUP\n", hostTable);
        Assert.Equal([HostNqn, "-", "-", "auto", "auto"], Row(hostTable, HostNqn)); // no DH-HMAC-CHAP settings
        Assert.Equal(3, hostTable.Split('\n').Length);
        Assert.Contains("is already allowed", await FailsAsync(t, 1, "hosts", "add", "--nqn", Other, "--host", HostNqn));
        Assert.Equal($"Removed host {HostNqn} from {Other}; disconnected 0 controllers.\n", await OkAsync(t, "hosts", "remove", "--nqn", Other, "--host", HostNqn));
        Assert.Equal("[]", (await OkAsync(t, "hosts", "list", "--nqn", Other, "--json")).Trim());

        // Opening and closing a subsystem deliberately.
        Assert.Equal($"{Other}: any host may connect.\n", await OkAsync(t, "subsys", "set", "--nqn", Other, "--allow-any-host", "on"));
        Assert.Equal($"No allowed hosts listed; {Other} admits any host (allowAnyHost).\n", await OkAsync(t, "hosts", "list", "--nqn", Other));
        Assert.StartsWith($"Allowed host {HostNqn} on {Other}. Note: {Other} still admits any host;", await OkAsync(t, "hosts", "add", "--nqn", Other, "--host", HostNqn));
        Assert.Equal($"{Other}: 1 allowed host may connect.\n", await OkAsync(t, "subsys", "set", "--nqn", Other, "--allow-any-host", "off"));
        Assert.Contains("--allow-any-host 'maybe' must be on or off", await FailsAsync(t, 2, "subsys", "set", "--nqn", Other, "--allow-any-host", "maybe"));
        Assert.Equal($"{Other}: 1 allowed host may connect. Reachable on port(s) 1.\n", await OkAsync(t, "subsys", "set", "--nqn", Other, "--port", "1"));
        Assert.Equal([Other, "2", "1", "0", "1"], Row(await OkAsync(t, "subsys", "list"), Other)[..5]);
        Assert.Contains("port 7 does not exist", await FailsAsync(t, 1, "subsys", "set", "--nqn", Other, "--port", "7"));
        Assert.Contains("nothing to change", await FailsAsync(t, 2, "subsys", "set", "--nqn", Other));
        Assert.Equal($"{Other}: 1 allowed host may connect. Reachable on every port.\n", await OkAsync(t, "subsys", "set", "--nqn", Other, "--all-ports"));
        const string Open = "nqn.2026-01.io.example:cli-open";
        Assert.EndsWith("any host may connect.\n", await OkAsync(t, "subsys", "create", "--nqn", Open, "--allow-any-host"));
        await OkAsync(t, "subsys", "delete", "--nqn", Open);

        Assert.Equal($"Deleted subsystem {Other}.\n", await OkAsync(t, "subsys", "delete", "--nqn", Other));
        Assert.Equal($"error: subsystem {Other} does not exist\n", await FailsAsync(t, 1, "subsys", "delete", "--nqn", Other));

        Assert.Equal("No controllers (no host is connected).\n", await OkAsync(t, "ctrl", "list"));
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(2);
        var ctrls = await OkAsync(t, "ctrl", "list");
        Assert.Matches(@"^CNTLID +SUBSYSTEM +HOST NQN +IO QUEUES +KATO +PEER +CONNECTED\n", ctrls);
        var row = Row(ctrls, host.Cntlid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal([ApiTarget.Nqn, host.Options.HostNqn, "2", "30", "s"], row[1..6]);
        using var json = JsonDocument.Parse(await OkAsync(t, "ctrl", "list", "--json"));
        Assert.Equal(3, json.RootElement[0].GetProperty("queues").GetArrayLength());
    }

    [Fact]
    public async Task Token_FromOptionOrEnvironment()
    {
        await using var t = await ApiTarget.StartAsync(output, token: "cli-token");
        var (code, _, err) = await Cli.RunAsync("subsys", "list", "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("requires a bearer token", err);
        (code, var stdout, err) = await Cli.RunAsync("subsys", "list", "--api", t.ApiUrl, "--token", "cli-token");
        Assert.True(code == 0, err);
        Assert.Contains(ApiTarget.Nqn, stdout);
        (code, stdout, err) = await Cli.RunAsync(new Dictionary<string, string> { ["NVMET_API_URL"] = t.ApiUrl, ["NVMET_API_TOKEN"] = "cli-token" }, "subsys", "list");
        Assert.True(code == 0, err);
        Assert.Contains(ApiTarget.Nqn, stdout);
    }

    [Fact]
    public async Task UnreachableApi_ExitsWith3AndNamesTheUrl()
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0)) { probe.Start(); port = ((IPEndPoint)probe.LocalEndpoint).Port; }
        var (code, stdout, err) = await Cli.RunAsync("ns", "list", "--nqn", ApiTarget.Nqn, "--api", $"http://127.0.0.1:{port}");
        Assert.Equal(3, code);
        Assert.Equal("", stdout);
        Assert.Contains($"cannot reach the management API at http://127.0.0.1:{port}/", err);
        (code, _, err) = await Cli.RunAsync("ns", "list", "--api", "ftp://example");
        Assert.Equal(2, code);
        Assert.Contains("--api 'ftp://example' is not unix:PATH or a URL", err);
        (code, _, err) = await Cli.RunAsync("ns", "list", "--api", "unix:/nonexistent/api.sock");
        Assert.Equal(3, code);
        Assert.Contains("cannot reach the management API at unix:/nonexistent/api.sock: no target is listening there", err);
    }

    [Fact]
    public async Task Help_TargetListsClientCommands_CommandsDescribeTheirOptions()
    {
        var (code, stdout, _) = await Cli.RunAsync("--help");
        Assert.Equal(0, code);
        foreach (var s in new[] { "--api unix:PATH|ADDR:PORT|off", "NVMET_API", "--api-token-file FILE", "NVMET_API_TOKEN_FILE", "--api-token TOKEN",
                     "Visible to every user in `ps`", "--probes ADDR:PORT|off", "--api-socket-group GROUP", "--api-allowed-host NAME", "--allow-any-host",
                     "ns list|add|remove|resize", "subsys list|create|set|delete", "hosts list|add|remove", "ctrl list" })
            Assert.Contains(s, stdout);

        (code, stdout, _) = await Cli.RunAsync("ns", "--help");
        Assert.Equal(0, code);
        foreach (var s in new[] { "list", "add", "remove", "resize", "--api unix:PATH|URL", "NVMET_API_URL", "--token-file FILE", "--token TOKEN", "--json" })
            Assert.Contains(s, stdout);

        (code, stdout, _) = await Cli.RunAsync("ns", "add", "--help");
        Assert.Equal(0, code);
        foreach (var s in new[] { "--nqn NQN", "--memory SIZE", "--file PATH", "--size SIZE", "--block DEVICE", "--nsid N", "--block-size BYTES", "Examples:" })
            Assert.Contains(s, stdout);

        (code, _, var err) = await Cli.RunAsync("hosts");
        Assert.Equal(2, code);
        Assert.Contains("Usage: nvme-tcp-target hosts <action>", err);
    }
}

/// <summary>The real executable as a target: --api/--api-token wiring, the start-up log line, a client talking
/// to it, and an API port already in use.</summary>
public sealed class ManagementProgramTests(ITestOutputHelper output)
{
    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Executable_ServesTheApiOnTheGivenAddress_WithItsToken()
    {
        int nvmePort = FreePort(), apiPort = FreePort();
        var psi = TargetProcess.StartInfo(new Dictionary<string, string> { ["NVMET_API_TOKEN"] = "exe-token" },
            "--listen", $"127.0.0.1:{nvmePort}", "--namespace", "memory:16M", "--api", $"127.0.0.1:{apiPort}", "--probes", "off");
        using var p = System.Diagnostics.Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        var ready = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (log) log.AppendLine(e.Data);
            if (e.Data.Contains("Management API on")) ready.TrySetResult(e.Data);
        };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        try
        {
            var line = await ready.Task.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.Contains($"Management API on http://127.0.0.1:{apiPort}/api/v1 (bearer token required)", line);

            var env = new Dictionary<string, string> { ["NVMET_API_URL"] = $"http://127.0.0.1:{apiPort}", ["NVMET_API_TOKEN"] = "exe-token" };
            var (code, stdout, stderr) = await Cli.RunAsync(env, "ns", "add", "--memory", "8M");
            Assert.True(code == 0, stderr);
            Assert.StartsWith($"Added namespace 2 to {CommandLine.DefaultNqn}", stdout);
            (code, _, stderr) = await Cli.RunAsync("ns", "list", "--api", $"127.0.0.1:{apiPort}");
            Assert.Equal(1, code);
            Assert.Contains("requires a bearer token", stderr);

            // A second target cannot take the same API port: exit code 2 naming it.
            var (code2, _, err2) = await Cli.RunAsync(new Dictionary<string, string> { ["NVMET_API_TOKEN"] = "other" },
                "--listen", $"127.0.0.1:{FreePort()}", "--api", $"127.0.0.1:{apiPort}", "--probes", "off");
            Assert.Equal(2, code2);
            Assert.Contains($"error: Failed to bind to address http://127.0.0.1:{apiPort}: address already in use.", err2);
            Assert.DoesNotContain("   at ", err2); // one clear line, no stack trace

            using (var kill = System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])) await kill.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await p.WaitForExitAsync(cts.Token);
            Assert.Equal(0, p.ExitCode);
        }
        finally
        {
            if (!p.HasExited) p.Kill(true);
            lock (log) output.WriteLine(log.ToString());
        }
    }
}
