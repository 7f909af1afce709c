using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Integration.Tests.Initiator;
using Integration.Tests.InProcess;
using Microsoft.Extensions.Logging.Abstractions;
using Nvme.Core.Model;
using Nvme.Testing;
using Integration.Tests.Telemetry;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>
/// The management plane is for its owner only, host access fails closed, and the answer always matches what is
/// live: each test is one of the exploits of issue 10, which must now fail. Unprivileged users are simulated with
/// `runuser -u nobody` (the suite runs as root, as CI does).
/// </summary>
public sealed class SafeByDefaultTests(ITestOutputHelper output)
{
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:0a0a0a0a-1111-4222-8333-444444444444";
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:0b0b0b0b-1111-4222-8333-444444444444";
    private static readonly NvmeTcpHostOptions AsA = new() { HostNqn = HostA, HostId = new("0a0a0a0a-1111-4222-8333-444444444444") };
    private static readonly NvmeTcpHostOptions AsB = new() { HostNqn = HostB, HostId = new("0b0b0b0b-1111-4222-8333-444444444444") };

    /// <summary>The CLI of the built executable, run as the unprivileged user nobody.</summary>
    private static async Task<(int Code, string Out, string Err)> AsNobodyAsync(params string[] args)
    {
        if (Environment.UserName != "root" || !File.Exists("/usr/sbin/runuser"))
            throw new InvalidOperationException("these tests run as root with runuser (util-linux), as CI does");
        var r = await Deploy.Cmd.RunAsync("/usr/sbin/runuser",
            ["-u", "nobody", "--", "env", "DOTNET_CLI_HOME=/tmp", "DOTNET_NOLOGO=1", "dotnet", TargetProcess.Dll, .. args], TimeSpan.FromSeconds(60));
        return (r.Code, r.Out, r.Err);
    }

    private static DirectoryInfo SocketDir(UnixFileMode mode)
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-sock-");
        File.SetUnixFileMode(dir.FullName, mode);
        return dir;
    }

    private const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Rx = UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    [Fact]
    public async Task ApiSocket_RefusesOtherUsers_UnlessTheirGroupIsLetIn()
    {
        // A directory others may enter, so that only the socket's own mode keeps nobody out.
        var dir = SocketDir(Rwx | Rx);
        try
        {
            var socket = Path.Combine(dir.FullName, "api.sock");
            await using (var t = await ApiTarget.StartAsync(output, api: new ApiConfig { Socket = socket }))
            {
                Assert.Equal(socket, t.Host.ApiSocketPath);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));
                var (code, stdout, err) = await AsNobodyAsync("subsys", "list", "--api", "unix:" + socket);
                output.WriteLine(err);
                Assert.Equal(3, code);
                Assert.Equal("", stdout);
                Assert.Contains("permission denied: the socket admits only the target's user", err);
                // Nor can nobody create a namespace on /etc/shadow: it cannot reach the API at all.
                (code, _, err) = await AsNobodyAsync("ns", "add", "--file", "/etc/shadow", "--api", "unix:" + socket);
                Assert.Equal(3, code);
                Assert.Single(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.Namespaces);
            }
            Assert.False(File.Exists(socket), "the socket is removed when the target stops");

            // --api-socket-group: 0660, owned by that group; nobody (group nogroup) may use it now.
            await using (var t = await ApiTarget.StartAsync(output, api: new ApiConfig { Socket = socket, SocketGroup = "nogroup" }))
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite, File.GetUnixFileMode(socket));
                var (code, stdout, err) = await AsNobodyAsync("subsys", "list", "--api", "unix:" + socket);
                Assert.True(code == 0, err);
                Assert.Contains(ApiTarget.Nqn, stdout);
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task ApiSocket_UnsafeOrTakenPaths_AreRefused_AStaleSocketIsReplaced()
    {
        var dir = SocketDir(Rwx);
        try
        {
            var socket = Path.Combine(dir.FullName, "api.sock");
            // A socket left behind by a target that was killed (SIGKILL: no clean-up): replaced by the next one.
            using (var killed = TargetProcess.Start("--listen", "127.0.0.1:0", "--api", "unix:" + socket, "--probes", "off"))
            {
                try { Assert.True(await Poll.UntilAsync(() => File.Exists(socket), TimeSpan.FromSeconds(60)), "the first target never bound its socket"); }
                finally { killed.Kill(); }
                await killed.WaitForExitAsync();
            }
            Assert.True(File.Exists(socket), "SIGKILL left the socket behind");
            await using (var t = await ApiTarget.StartAsync(output, api: new ApiConfig { Socket = socket }))
            {
                (await t.Http.GetJsonAsync("subsystems")).EnumerateArray().Single();
                // A second target on the same socket: exit code 2, and the first keeps its socket.
                var (code, _, err) = await TargetProcess.RunAsync("--listen", "127.0.0.1:0", "--api", "unix:" + socket, "--probes", "off");
                Assert.Equal(2, code);
                Assert.Contains($"another process serves '{socket}'", err);
                (await t.Http.GetJsonAsync("subsystems")).EnumerateArray().Single();
            }

            await File.WriteAllTextAsync(socket, "not a socket");
            var (code2, _, err2) = await TargetProcess.RunAsync("--listen", "127.0.0.1:0", "--api", "unix:" + socket, "--probes", "off");
            Assert.Equal(2, code2);
            Assert.Contains("exists and is not a socket", err2);
            File.Delete(socket);

            // A directory every user may write (not sticky): another user could swap the socket.
            File.SetUnixFileMode(dir.FullName, Rwx | Rx | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite);
            (code2, _, err2) = await TargetProcess.RunAsync("--listen", "127.0.0.1:0", "--api", "unix:" + socket, "--probes", "off");
            Assert.Equal(2, code2);
            Assert.Contains("is writable by other users", err2);
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task TcpApi_WithoutAToken_DoesNotStart()
    {
        var (code, _, err) = await TargetProcess.RunAsync("--listen", "127.0.0.1:0", "--api", "127.0.0.1:0", "--probes", "off");
        Assert.Equal(2, code);
        Assert.Contains("error: the management API on TCP 127.0.0.1:0 needs a token", err);
        Assert.Contains("--api-token-file FILE", err);
        await Assert.ThrowsAsync<ArgumentException>(() => Target.TargetHost.StartAsync(TestTarget.DefaultConfig(), NullLoggerFactory.Instance,
            api: new ApiConfig { Address = "127.0.0.1", Port = 0 }));
    }

    [Fact]
    public async Task HostHeader_OfAForeignName_IsRefused_OnTheApiAndTheProbes()
    {
        var tokenDir = Directory.CreateTempSubdirectory("nvmet-token-");
        try
        {
            var api = new ApiConfig { Address = "127.0.0.1", Port = 0, Token = "tcp-token", AllowedHostNames = ["nvmet.lab.example"] };
            await using var t = await ApiTarget.StartAsync(output, api: api);
            async Task<HttpStatusCode> Get(HttpClient http, string path, string? host)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                if (host != null) request.Headers.Host = host;
                using var r = await http.SendAsync(request);
                if (r.StatusCode == HttpStatusCode.Forbidden) await Api.AssertProblemAsync(r, HttpStatusCode.Forbidden, "names no address of this target");
                return r.StatusCode;
            }
            int port = t.Host.ApiEndpoint!.Port;
            Assert.Equal(HttpStatusCode.Forbidden, await Get(t.Http, "subsystems", "evil.example"));        // DNS rebinding
            Assert.Equal(HttpStatusCode.Forbidden, await Get(t.Http, "subsystems", $"evil.example:{port}"));
            Assert.Equal(HttpStatusCode.OK, await Get(t.Http, "subsystems", null));                          // 127.0.0.1:PORT
            Assert.Equal(HttpStatusCode.OK, await Get(t.Http, "subsystems", $"localhost:{port}"));
            Assert.Equal(HttpStatusCode.OK, await Get(t.Http, "subsystems", "nvmet.lab.example"));          // configured
            Assert.Equal(HttpStatusCode.Forbidden, await Get(t.Probes!, "/metrics", "evil.example"));
            Assert.Equal(HttpStatusCode.OK, await Get(t.Probes!, "/metrics", null));

            // Refused before any endpoint ran: nothing was created by the rebinding attempt.
            using (var post = new HttpRequestMessage(HttpMethod.Post, Api.Sub() + "/namespaces") { Content = JsonContent.Create(new { backend = "memory", size = "1M" }) })
            {
                post.Headers.Host = "evil.example";
                using var r = await t.Http.SendAsync(post);
                Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
            }
            Assert.Single(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.Namespaces);
            var metrics = PrometheusText.Parse(await t.Probes!.GetStringAsync("/metrics"));
            Assert.Equal(4, metrics.Value("nvmet_api_requests_rejected_total", "reason=host_header"));
        }
        finally { tokenDir.Delete(recursive: true); }
    }

    [Fact]
    public async Task ProbeListener_IsReadOnly()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var probes = t.Probes!;
        using (var r = await probes.GetAsync("/api/v1/subsystems"))
            await Api.AssertProblemAsync(r, HttpStatusCode.NotFound, $"the management API is on the Unix socket {t.Host.ApiSocketPath}");
        using (var r = await probes.DeleteAsync("/api/v1/subsystems/" + Uri.EscapeDataString(ApiTarget.Nqn)))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        using (var r = await probes.PostAsJsonAsync(Api.Sub() + "/namespaces", new { backend = "memory", size = "1M" }))
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        foreach (var path in new[] { "/metrics", "/healthz", "/readyz" })
        {
            using var r = await probes.PostAsync(path, new StringContent("{}"));
            await Api.AssertProblemAsync(r, HttpStatusCode.MethodNotAllowed, "the probe listener is read-only");
        }
        using (var r = await probes.GetAsync("/openapi/v1.json")) Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.NotNull(t.Host.Target.FindSubsystem(ApiTarget.Nqn));
        Assert.Single(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.Namespaces);
    }

    private static string Config(string dir, bool? allowAnyHost, params string[] hosts) => $$"""
        {
          "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
          "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", {{(allowAnyHost is bool b ? $"\"allowAnyHost\": {(b ? "true" : "false")}," : "")}}
            "allowedHosts": [ {{string.Join(", ", hosts.Select(h => $"\"{h}\""))}} ],
            "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" } ] } ]
        }
        """;

    private static async Task<ushort> ConnectStatusAsync(IPEndPoint endpoint, NvmeTcpHostOptions who)
    {
        await using var q = await HostQueue.OpenAsync(endpoint);
        return (await q.ConnectAsync(ApiTarget.Nqn, who.HostNqn, who.HostId, 0, 31, 0xFFFF, 5000)).Status;
    }

    private const ushort ConnectInvalidHost = 0x4184;

    [Fact]
    public async Task RemovingTheLastHost_DisconnectsIt_AndLeavesTheSubsystemClosed_AlsoAfterARestart()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-hosts-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, Config(dir.FullName, false, HostA));
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                var endpoint = t.Host.Endpoints[0];
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(endpoint, AsB));
                await using var a = await NvmeTcpHost.ConnectAsync(endpoint, ApiTarget.Nqn, AsA);
                await a.CreateIoQueuesAsync(1);
                (await a.WriteAsync(0, 1, 0, TestData.Random(4096, 7))).EnsureSuccess();

                using (var r = await t.Http.DeleteAsync($"{Api.Sub()}/hosts/{Uri.EscapeDataString(HostA)}"))
                    Assert.Equal(1, (await Api.ReadJsonAsync(r, HttpStatusCode.OK)).GetProperty("disconnectedControllers").GetInt32());
                // The removed host's controller is gone and its connections closed (as SPDK does)...
                Assert.Empty(t.Host.Target.Controllers);
                await a.Admin.Closed.WaitAsync(TimeSpan.FromSeconds(20));
                await a.IoQueues[0].Closed.WaitAsync(TimeSpan.FromSeconds(20));
                // ...and the subsystem did not fall open: neither it nor any other host gets back in.
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(endpoint, AsA));
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(endpoint, AsB));
                var sub = await t.Http.GetJsonAsync(Api.Sub());
                Assert.False(sub.GetProperty("allowAnyHost").GetBoolean());
                Assert.Equal(0, sub.GetProperty("allowedHosts").GetArrayLength());
            }
            using (var doc = JsonDocument.Parse(await File.ReadAllTextAsync(file)))
            {
                var saved = doc.RootElement.GetProperty("subsystems")[0];
                Assert.False(saved.GetProperty("allowAnyHost").GetBoolean());
                Assert.Equal(0, saved.GetProperty("allowedHosts").GetArrayLength());
            }
            var again = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            await using (var t = await ApiTarget.StartAsync(output, again.Config, again.ConfigPath))
            {
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(t.Host.Endpoints[0], AsA));
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(t.Host.Endpoints[0], AsB));
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task ClosingASubsystem_DisconnectsHostsNotListed_AnOldEmptyListMeansNobody()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-hosts-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, Config(dir.FullName, true, []));
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                await using var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, AsA);
                await using var b = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, AsB);
                await t.Http.PostJsonAsync(Api.Sub() + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
                Assert.Equal(2, t.Host.Target.Controllers.Count); // still open to any host: nobody is cut off
                using (var r = await t.Http.PatchAsJsonAsync(Api.Sub(), new { allowAnyHost = false }, Api.Json))
                    Assert.Equal(1, (await Api.ReadJsonAsync(r, HttpStatusCode.OK)).GetProperty("controllers").GetInt32());
                await b.Admin.Closed.WaitAsync(TimeSpan.FromSeconds(20));
                (await a.KeepAliveAsync()).EnsureSuccess();
                Assert.Equal(HostA, Assert.Single(t.Host.Target.Controllers).HostNqn);
            }

            // A configuration written before allowAnyHost existed, with an empty list: it starts, warns, admits nobody.
            await File.WriteAllTextAsync(file, Config(dir.FullName, null, []));
            cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            var warning = Assert.Single(ConfigValidator.Warnings(cl.Config));
            Assert.Contains($"subsystem {ApiTarget.Nqn} has no allowed hosts and no \"allowAnyHost\": no host can connect", warning);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
                Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(t.Host.Endpoints[0], AsA));
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void DefaultSubsystem_IsOpenOnLoopbackOnly_ElsewhereTheOperatorDecides()
    {
        var none = new Dictionary<string, string>();
        Assert.True(CommandLine.Parse([], none).Config.Subsystems[0].AllowAnyHost);
        var exposed = CommandLine.Parse(["--listen", "0.0.0.0:4420"], none);
        Assert.Contains(exposed.Errors, e => e.StartsWith("the default subsystem would admit every host that reaches 0.0.0.0:4420", StringComparison.Ordinal));
        var open = CommandLine.Parse(["--listen", "0.0.0.0:4420", "--allow-any-host"], none);
        Assert.Empty(open.Errors);
        Assert.True(open.Config.Subsystems[0].AllowAnyHost);
        var listed = CommandLine.Parse(["--listen", "0.0.0.0:4420", "--allow-host", HostA], none);
        Assert.Empty(listed.Errors);
        Assert.False(listed.Config.Subsystems[0].AllowAnyHost);
        Assert.Equal([HostA], listed.Config.Subsystems[0].AllowedHosts);
        Assert.True(CommandLine.Parse(["--listen", "0.0.0.0:4420"], new Dictionary<string, string> { ["NVMET_ALLOW_ANY_HOST"] = "1" }).Config.Subsystems[0].AllowAnyHost);
        Assert.Contains(CommandLine.Parse(["--allow-any-host", "--allow-host", HostA], none).Errors, e => e.Contains("contradict"));
    }

    [Fact]
    public async Task ConfigFile_KeepsItsModeAndOwner_WhenRewritten()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-mode-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, Config(dir.FullName, true, []));
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                await t.Http.PostJsonAsync(Api.Sub() + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
                Assert.Contains(HostA, await File.ReadAllTextAsync(file));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));

                // A file that belongs to another user and group, 0640: both stay (the target runs as root here).
                Assert.Equal(0, Chown(file, 65534, 65534));
                File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
                await t.Http.PostJsonAsync(Api.Sub() + "/hosts", new { hostNqn = HostB }, HttpStatusCode.Created);
                Assert.Contains(HostB, await File.ReadAllTextAsync(file));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(file));
                Assert.Equal((65534u, 65534u), Owner(file));
            }
            Assert.Equal(["target.json"], dir.GetFiles().Select(f => f.Name)); // no temporary file left
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task ChangeOnAReadOnlyConfig_IsRefused_AndNothingChanges()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-ro-");
        bool mounted = false;
        try
        {
            // A file system of its own, remounted read-only once the target runs (as root ignores file modes).
            (await Deploy.Cmd.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir.FullName], TimeSpan.FromSeconds(30)))
                .Ensure("mount -t tmpfs (the test needs root and mount)");
            mounted = true;
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, Config(dir.FullName, false, HostA));
            var before = await File.ReadAllTextAsync(file);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            await using var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath);
            await using var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, AsA);
            await a.CreateIoQueuesAsync(1);
            (await Deploy.Cmd.RunAsync("mount", ["-o", "remount,ro", dir.FullName], TimeSpan.FromSeconds(30))).Ensure("remount read-only");

            const string NotSaved = "nothing was changed: the configuration file";
            await t.Http.ProblemAsync(HttpMethod.Delete, $"{Api.Sub()}/hosts/{Uri.EscapeDataString(HostA)}", null, HttpStatusCode.InternalServerError, NotSaved);
            await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces", new { backend = "memory", size = "4M" }, HttpStatusCode.InternalServerError, NotSaved);
            await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces/1/resize", new { size = "32M" }, HttpStatusCode.InternalServerError, NotSaved);
            await t.Http.ProblemAsync(HttpMethod.Patch, Api.Sub(), new { allowAnyHost = true }, HttpStatusCode.InternalServerError, NotSaved);
            await t.Http.ProblemAsync(HttpMethod.Delete, Api.Sub() + "/namespaces/1", null, HttpStatusCode.InternalServerError, NotSaved);

            // What is live is what the file says: the host is still allowed and connected, the namespace is there
            // at its old size, no other namespace appeared, the subsystem is still closed to other hosts.
            var sub = await t.Http.GetJsonAsync(Api.Sub());
            Assert.Equal([HostA], sub.GetProperty("allowedHosts").EnumerateArray().Select(h => h.GetString()));
            Assert.False(sub.GetProperty("allowAnyHost").GetBoolean());
            var ns = Assert.Single(sub.GetProperty("namespaces").EnumerateArray());
            Assert.Equal(16L << 20, ns.GetProperty("sizeBytes").GetInt64());
            (await a.WriteAsync(0, 1, 0, TestData.Random(4096, 9))).EnsureSuccess();
            Assert.Equal(ConnectInvalidHost, await ConnectStatusAsync(t.Host.Endpoints[0], AsB));
            var data = await a.IdentifyAsync(Nvme.Core.Spec.IdentifyCns.Namespace, 1);
            Assert.Equal((16UL << 20) / 512, BitConverter.ToUInt64(data, 0)); // NSZE unchanged
            Assert.Equal(before, await File.ReadAllTextAsync(file));
        }
        finally
        {
            if (mounted) await Deploy.Cmd.RunAsync("umount", ["-l", dir.FullName], TimeSpan.FromSeconds(30));
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task ChangesToDifferentSubsystems_DoNotWaitForEachOther()
    {
        const string Other = "nqn.2026-01.io.example:other";
        await using var t = await ApiTarget.StartAsync(output);
        var sub = t.Host.Target.FindSubsystem(ApiTarget.Nqn)!;
        await using var host = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn);
        await host.CreateIoQueuesAsync(1);
        var store = new GatedBlockStore(8 << 20) { Hold = true };
        sub.AttachNamespace(new Namespace(2, store, 512, NamespaceIds.Derive(ApiTarget.Nqn, 2)));
        var stuck = host.WriteAsync(0, 2, 0, TestData.Random(4096, 3));
        await store.WriteEntered.Task.WaitAsync(TimeSpan.FromSeconds(20));
        try
        {
            // The removal waits for the stuck write (up to the drain timeout); meanwhile another subsystem changes.
            var removal = t.Http.DeleteAsync(Api.Sub() + "/namespaces/2");
            Assert.True(await Poll.UntilAsync(() => !sub.GetNamespace(2)!.IsAdmitting, TimeSpan.FromSeconds(20)), "the removal never started");
            await t.Http.PostJsonAsync("subsystems", new { nqn = Other, namespaces = new[] { new { nsid = 1, backend = "memory", size = "4M" } } }, HttpStatusCode.Created);
            await t.Http.PostJsonAsync(Api.Sub(Other) + "/namespaces", new { backend = "memory", size = "4M" }, HttpStatusCode.Created);
            await t.Http.PostJsonAsync(Api.Sub(Other) + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
            Assert.False(removal.IsCompleted, "the other subsystem's changes should not have needed the stuck removal to finish");
            store.Release();
            using var removed = await removal.WaitAsync(TimeSpan.FromSeconds(30));
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
            (await stuck.WaitAsync(TimeSpan.FromSeconds(20))).EnsureSuccess();
        }
        finally { store.Release(); }
    }

    [Fact]
    public async Task SubsystemsBoundToPorts_AreReachableOnlyThere_AndTheBindingIsSaved()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-ports-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, $$"""
                { "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 }, { "id": 2, "address": "127.0.0.1", "port": 0 } ],
                  "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowAnyHost": true, "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" } ] } ] }
                """);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                IPEndPoint one = t.Host.Endpoints[0], two = t.Host.Endpoints[1];
                await using var viaOne = await NvmeTcpHost.ConnectAsync(one, ApiTarget.Nqn, AsA);
                using (var r = await t.Http.PatchAsJsonAsync(Api.Sub(), new { ports = new[] { 2 } }, Api.Json))
                {
                    var sub = await Api.ReadJsonAsync(r, HttpStatusCode.OK);
                    Assert.Equal([2], sub.GetProperty("ports").EnumerateArray().Select(p => p.GetInt32()));
                }
                // The controller that came in on port 1 is gone; port 1 answers as for an unknown subsystem.
                await viaOne.Admin.Closed.WaitAsync(TimeSpan.FromSeconds(20));
                await using (var q = await HostQueue.OpenAsync(one))
                {
                    var c = await q.ConnectAsync(ApiTarget.Nqn, HostB, AsB.HostId, 0, 31, 0xFFFF, 5000);
                    Assert.Equal(0x4182, c.Status);
                    Assert.Equal(0x10100u, c.Dword0); // IATTR data, IPO at SUBNQN
                }
                await using (var viaTwo = await NvmeTcpHost.ConnectAsync(two, ApiTarget.Nqn, AsB)) (await viaTwo.KeepAliveAsync()).EnsureSuccess();
                await t.Http.ProblemAsync(HttpMethod.Patch, Api.Sub(), new { ports = new[] { 9 } }, HttpStatusCode.BadRequest, "port 9 does not exist");
                await t.Http.ProblemAsync(HttpMethod.Patch, Api.Sub(), new { ports = new[] { 1 }, allPorts = true }, HttpStatusCode.BadRequest, "not both");
            }
            using (var doc = JsonDocument.Parse(await File.ReadAllTextAsync(file)))
                Assert.Equal([2], doc.RootElement.GetProperty("subsystems")[0].GetProperty("ports").EnumerateArray().Select(p => p.GetInt32()));
            // A configuration naming a port that does not exist does not start.
            await File.WriteAllTextAsync(file, $$"""
                { "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowAnyHost": true, "ports": [ 3 ] } ] }
                """);
            Assert.Contains(ConfigValidator.Validate(CommandLine.Parse(["--config", file], new Dictionary<string, string>()).Config),
                e => e.Contains("port 3 does not exist"));
        }
        finally { dir.Delete(recursive: true); }
    }

    [System.Runtime.InteropServices.DllImport("libc", SetLastError = true)]
    private static extern int chown(string path, uint owner, uint group);

    private static int Chown(string path, uint uid, uint gid) => chown(path, uid, gid);

    private static (uint, uint) Owner(string path)
    {
        var r = Deploy.Cmd.RunAsync("stat", ["-c", "%u %g", path], TimeSpan.FromSeconds(10)).GetAwaiter().GetResult().Ensure("stat");
        var f = r.Out.Trim().Split(' ');
        return (uint.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture), uint.Parse(f[1], System.Globalization.CultureInfo.InvariantCulture));
    }
}
