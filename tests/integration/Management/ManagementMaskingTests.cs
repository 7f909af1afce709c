using System.Net;
using System.Text.Json;
using Integration.Tests.InProcess;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>Namespace masking and the in-band attachment privilege through the management API and the CLI: problem
/// details on errors, the refusal of hosts the subsystem does not allow, what a host removed from the allowed hosts
/// leaves behind, persistence (saved before live, back after a restart; a failed save changes nothing).</summary>
public sealed class ManagementMaskingTests(ITestOutputHelper output)
{
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:3a1f6b2c-8d4e-4f5a-9b6c-7d8e9f0a1b2c";
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:4b2a7c3d-9e5f-4a6b-8c7d-8e9f0a1b2c3d";

    private static string Ns(uint nsid) => $"{Api.Sub()}/namespaces/{nsid}";

    private static async Task<JsonElement> DeleteJsonAsync(HttpClient http, string path, HttpStatusCode expected)
    {
        using var r = await http.DeleteAsync(path);
        return await Api.ReadJsonAsync(r, expected);
    }

    private static string[] Hosts(JsonElement ns) => [.. ns.GetProperty("hosts").EnumerateArray().Select(h => h.GetString()!)];

    private static TargetConfig Closed()
    {
        var c = TestTarget.DefaultConfig();
        c.Subsystems[0].AllowAnyHost = false;
        c.Subsystems[0].AllowedHosts = [HostA];
        return c;
    }

    [Fact]
    public async Task Api_VisibilityHostsAndAttachHosts_WithProblemDetails()
    {
        await using var t = await ApiTarget.StartAsync(output, Closed());
        var ns = await t.Http.GetJsonAsync(Ns(1));
        Assert.Equal(("auto", 0), (ns.GetProperty("visibility").GetString(), ns.GetProperty("hosts").GetArrayLength()));

        ns = await t.Http.PutJsonAsync(Ns(1) + "/visibility", new { visibility = "restricted" }, HttpStatusCode.OK);
        Assert.Equal("restricted", ns.GetProperty("visibility").GetString());
        ns = await t.Http.PostJsonAsync(Ns(1) + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
        Assert.Equal([HostA], Hosts(ns));
        Assert.Equal([HostA], (await t.Http.GetJsonAsync(Ns(1) + "/hosts")).EnumerateArray().Select(h => h.GetProperty("hostNqn").GetString()));
        Assert.True(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.GetNamespace(1)!.IsVisibleTo(HostA));
        Assert.False(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.GetNamespace(1)!.IsVisibleTo(HostB));

        // Errors: a host the subsystem does not allow, twice the same host, an unknown host, a bad mode, no namespace.
        await t.Http.ProblemAsync(HttpMethod.Post, Ns(1) + "/hosts", new { hostNqn = HostB }, HttpStatusCode.BadRequest, $"host {HostB} is not allowed on {ApiTarget.Nqn}");
        await t.Http.ProblemAsync(HttpMethod.Post, Ns(1) + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Conflict, "already listed");
        await t.Http.ProblemAsync(HttpMethod.Post, Ns(1) + "/hosts", new { hostNqn = "bogus" }, HttpStatusCode.BadRequest, "is not of the form");
        await t.Http.ProblemAsync(HttpMethod.Delete, $"{Ns(1)}/hosts/{Uri.EscapeDataString(HostB)}", null, HttpStatusCode.NotFound, "is not listed");
        await t.Http.ProblemAsync(HttpMethod.Put, Ns(1) + "/visibility", new { visibility = "some" }, HttpStatusCode.BadRequest, "is not auto or restricted");
        await t.Http.ProblemAsync(HttpMethod.Put, Ns(9) + "/visibility", new { visibility = "auto" }, HttpStatusCode.NotFound, "namespace 9 does not exist");
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/attach-hosts", new { hostNqn = HostB }, HttpStatusCode.BadRequest, "is not allowed");
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces",
            new { nsid = 3, backend = "memory", size = "1M", visibility = "restricted", hosts = new[] { HostB } }, HttpStatusCode.BadRequest, "is not allowed");

        // The attachment privilege.
        await t.Http.PostJsonAsync(Api.Sub() + "/attach-hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/attach-hosts", new { hostNqn = HostA }, HttpStatusCode.Conflict, "already holds");
        Assert.Equal([HostA], (await t.Http.GetJsonAsync(Api.Sub())).GetProperty("namespaceAttachHosts").EnumerateArray().Select(h => h.GetString()));
        Assert.True(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.MayAttachNamespaces(HostA));

        // A host removed from the allowed hosts keeps its entries (shown as not allowed); allowed again, it has them back.
        using (var r = await t.Http.DeleteAsync($"{Api.Sub()}/hosts/{Uri.EscapeDataString(HostA)}")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        ns = await t.Http.GetJsonAsync(Ns(1));
        Assert.Equal([HostA], Hosts(ns));
        Assert.Equal([HostA], ns.GetProperty("hostsNotAllowed").EnumerateArray().Select(h => h.GetString()));
        Assert.Contains(HostA, (await t.Http.GetJsonAsync(Api.Sub())).GetProperty("namespaceAttachHosts").EnumerateArray().Select(h => h.GetString()));
        await t.Http.PostJsonAsync(Api.Sub() + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
        Assert.Empty((await t.Http.GetJsonAsync(Ns(1))).GetProperty("hostsNotAllowed").EnumerateArray());

        ns = await DeleteJsonAsync(t.Http, $"{Ns(1)}/hosts/{Uri.EscapeDataString(HostA)}", HttpStatusCode.OK);
        Assert.Empty(Hosts(ns));
        await t.Http.DeleteOkAsync($"{Api.Sub()}/attach-hosts/{Uri.EscapeDataString(HostA)}");
        await t.Http.ProblemAsync(HttpMethod.Delete, $"{Api.Sub()}/attach-hosts/{Uri.EscapeDataString(HostA)}", null, HttpStatusCode.NotFound, "does not hold");
        ns = await t.Http.PutJsonAsync(Ns(1) + "/visibility", new { visibility = "auto" }, HttpStatusCode.OK);
        Assert.Equal("auto", ns.GetProperty("visibility").GetString());
    }

    [Fact]
    public async Task Cli_NsVisibility_NsHosts_NsList_SubsysSetAttachHost()
    {
        var config = TestTarget.DefaultConfig();
        config.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "memory", Size = "4M" });
        await using var t = await ApiTarget.StartAsync(output, config);
        async Task<string> Ok(params string[] args)
        {
            var (code, stdout, stderr) = await Cli.RunAsync([.. args, "--api", t.ApiUrl]);
            output.WriteLine($"$ nvme-tcp-target {string.Join(' ', args)}\n{stdout}{stderr}");
            Assert.True(code == 0, $"exit {code}: {stderr}");
            return stdout;
        }
        async Task<(int, string)> Fails(params string[] args)
        {
            var (code, stdout, stderr) = await Cli.RunAsync([.. args, "--api", t.ApiUrl]);
            output.WriteLine($"$ nvme-tcp-target {string.Join(' ', args)}\n{stdout}{stderr}");
            return (code, stderr);
        }

        Assert.Equal($"Namespace 2 of {ApiTarget.Nqn} is restricted to: none.\n", await Ok("ns", "visibility", "--nsid", "2", "restricted"));
        Assert.Equal($"Host {HostA} now sees namespace 2 of {ApiTarget.Nqn}.\n", await Ok("ns", "hosts", "add", "--nsid", "2", "--host", HostA));
        Assert.StartsWith($"Listed host {HostB} for namespace 1", await Ok("ns", "hosts", "add", "--nsid", "1", "--host", HostB));
        var table = await Ok("ns", "list");
        var rows = table.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(c => c.Length > 0).ToList();
        Assert.Equal(["NSID", "BACKEND", "SIZE", "BLOCK", "BLOCKS", "UUID", "VISIBILITY", "HOSTS", "PATH"], rows[0]);
        Assert.Equal(["restricted", HostA, "-"], rows.First(r => r[0] == "2")[^3..]);
        Assert.Contains($"all (listed: {HostB})", table);
        Assert.Equal($"Host {HostA} no longer sees namespace 2 of {ApiTarget.Nqn}.\n", await Ok("ns", "hosts", "remove", "--nsid", "2", "--host", HostA));
        Assert.Equal($"Namespace 2 of {ApiTarget.Nqn} is visible to every allowed host.\n", await Ok("ns", "visibility", "--nsid", "2", "auto"));

        Assert.Contains($"host {HostA} may now attach and detach namespaces", await Ok("subsys", "set", "--attach-host", HostA));
        Assert.Equal([HostA], t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.NamespaceAttachHosts);
        Assert.Contains($"host {HostA} no longer may attach", await Ok("subsys", "set", "--no-attach-host", HostA));
        Assert.Empty(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.NamespaceAttachHosts);

        // Errors: the API's reason with exit 1, usage errors with exit 2.
        var (code, err) = await Fails("ns", "hosts", "remove", "--nsid", "2", "--host", HostA);
        Assert.Equal((1, $"error: host {HostA} is not listed for namespace 2 of {ApiTarget.Nqn}\n"), (code, err));
        (code, err) = await Fails("ns", "visibility", "--nsid", "2", "private");
        Assert.Equal(2, code);
        Assert.Contains("'private' is not auto or restricted", err);
        (code, err) = await Fails("ns", "visibility", "--nsid", "2");
        Assert.Equal(2, code);
        Assert.Contains("give the visibility: auto or restricted", err);
        (code, err) = await Fails("ns", "hosts", "add", "--nsid", "2");
        Assert.Equal(2, code);
        Assert.Contains("--host is required", err);
        var (helpCode, help, _) = await Cli.RunAsync("ns", "--help");
        Assert.Equal(0, helpCode);
        Assert.Contains("hosts add", help);
        Assert.Contains("visibility", help);
    }

    [Fact]
    public async Task Masking_IsSavedBeforeItIsLive_BackAfterRestart_AndAFailedSaveChangesNothing()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-mask-");
        bool mounted = false;
        try
        {
            // A file system of its own, remounted read-only later (root ignores file modes), as SafeByDefaultTests does.
            (await Deploy.Cmd.RunAsync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", dir.FullName], TimeSpan.FromSeconds(30)))
                .Ensure("mount -t tmpfs (the test needs root and mount)");
            mounted = true;
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, $$"""
                { "ports": [ { "port": 0 } ],
                  "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowedHosts": [ "{{HostA}}", "{{HostB}}" ],
                                    "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" }, { "nsid": 2, "backend": "memory", "size": "4M" } ] } ] }
                """);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                await t.Http.PutJsonAsync(Ns(2) + "/visibility", new { visibility = "restricted" }, HttpStatusCode.OK);
                await t.Http.PostJsonAsync(Ns(2) + "/hosts", new { hostNqn = HostA }, HttpStatusCode.Created);
                await t.Http.PostJsonAsync(Api.Sub() + "/attach-hosts", new { hostNqn = HostB }, HttpStatusCode.Created);
                using (var doc = JsonDocument.Parse(await File.ReadAllTextAsync(file)))
                {
                    var sub = doc.RootElement.GetProperty("subsystems")[0];
                    var ns2 = sub.GetProperty("namespaces")[1];
                    Assert.Equal("restricted", ns2.GetProperty("visibility").GetString());
                    Assert.Equal([HostA], ns2.GetProperty("hosts").EnumerateArray().Select(h => h.GetString()));
                    Assert.False(sub.GetProperty("namespaces")[0].TryGetProperty("visibility", out _)); // auto: not written
                    Assert.Equal([HostB], sub.GetProperty("namespaceAttachHosts").EnumerateArray().Select(h => h.GetString()));
                }

                // Read-only: every save fails, so nothing changes (the mask and the privilege stay as they were).
                var before = await File.ReadAllTextAsync(file);
                (await Deploy.Cmd.RunAsync("mount", ["-o", "remount,ro", dir.FullName], TimeSpan.FromSeconds(30))).Ensure("remount read-only");
                const string NotSaved = "nothing was changed: the configuration file";
                await t.Http.ProblemAsync(HttpMethod.Delete, $"{Ns(2)}/hosts/{Uri.EscapeDataString(HostA)}", null, HttpStatusCode.InternalServerError, NotSaved);
                await t.Http.ProblemAsync(HttpMethod.Put, Ns(2) + "/visibility", new { visibility = "auto" }, HttpStatusCode.InternalServerError, NotSaved);
                await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/attach-hosts", new { hostNqn = HostA }, HttpStatusCode.InternalServerError, NotSaved);
                await t.Http.ProblemAsync(HttpMethod.Delete, $"{Api.Sub()}/attach-hosts/{Uri.EscapeDataString(HostB)}", null, HttpStatusCode.InternalServerError, NotSaved);
                var live = t.Host.Target.FindSubsystem(ApiTarget.Nqn)!;
                Assert.True(live.GetNamespace(2)!.Visibility.Restricted);
                Assert.Equal([HostA], live.GetNamespace(2)!.Visibility.Hosts);
                Assert.False(live.MayAttachNamespaces(HostA));
                Assert.True(live.MayAttachNamespaces(HostB));
                Assert.Equal([HostA], Hosts(await t.Http.GetJsonAsync(Ns(2))));
                Assert.Equal(before, await File.ReadAllTextAsync(file));
            }

            var again = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(again.Errors);
            Assert.Empty(ConfigValidator.Validate(again.Config));
            await using (var t = await ApiTarget.StartAsync(output, again.Config, again.ConfigPath))
            {
                var ns = await t.Http.GetJsonAsync(Ns(2));
                Assert.Equal("restricted", ns.GetProperty("visibility").GetString());
                Assert.Equal([HostA], Hosts(ns));
                var live = t.Host.Target.FindSubsystem(ApiTarget.Nqn)!;
                Assert.True(live.GetNamespace(2)!.IsVisibleTo(HostA));
                Assert.False(live.GetNamespace(2)!.IsVisibleTo(HostB));
                Assert.True(live.MayAttachNamespaces(HostB));
            }
        }
        finally
        {
            if (mounted) await Deploy.Cmd.RunAsync("umount", ["-l", dir.FullName], TimeSpan.FromSeconds(30));
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Config_VisibilityAndHostLists_AreValidated()
    {
        var c = TestTarget.DefaultConfig();
        c.Subsystems[0].Namespaces[0].Visibility = "hidden";
        c.Subsystems[0].Namespaces[0].Hosts = [HostA, HostA, "bogus"];
        c.Subsystems[0].NamespaceAttachHosts = ["bogus"];
        var errors = ConfigValidator.Validate(c);
        Assert.Contains(errors, e => e.Contains("visibility 'hidden' is not auto or restricted"));
        Assert.Contains(errors, e => e.Contains($"hosts: {HostA} is listed twice"));
        Assert.Contains(errors, e => e.Contains("hosts: NQN 'bogus'"));
        Assert.Contains(errors, e => e.Contains("namespaceAttachHosts: NQN 'bogus'"));
    }
}
