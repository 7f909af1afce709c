using System.Net;
using System.Text.Json;
using Integration.Tests.Initiator;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>ANA through the management API and the CLI: the groups and their per-port states, setting a state (live, never
/// saved), moving a namespace to another group (saved), the on-demand ANA change event, and clear errors on bad input.</summary>
public sealed class ManagementAnaTests(ITestOutputHelper output)
{
    private static TargetConfig TwoPorts()
    {
        var c = Integration.Tests.InProcess.TestTarget.DefaultConfig();
        c.Ports.Add(new PortConfig { Id = 2, Address = "127.0.0.1", Port = 0 });
        c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "memory", Size = "1M", AnaGroup = 5 });
        return c;
    }

    private static JsonElement Group(JsonElement ana, uint group) =>
        ana.GetProperty("groups").EnumerateArray().Single(g => g.GetProperty("group").GetUInt32() == group);

    private static string PortState(JsonElement group, int port) =>
        group.GetProperty("ports").EnumerateArray().Single(p => p.GetProperty("port").GetInt32() == port).GetProperty("state").GetString()!;

    [Fact]
    public async Task Api_ListSetAndEvents()
    {
        await using var t = await ApiTarget.StartAsync(output, TwoPorts());
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigAnaChangeNotices)).EnsureSuccess("AEC");

        var ana = await t.Http.GetJsonAsync($"{Api.Sub()}/ana");
        Assert.Equal(0ul, ana.GetProperty("changeCount").GetUInt64());
        Assert.Equal([1u, 5u], ana.GetProperty("groups").EnumerateArray().Select(g => g.GetProperty("group").GetUInt32()));
        Assert.Equal([2u], Group(ana, 5).GetProperty("namespaces").EnumerateArray().Select(n => n.GetUInt32()));
        Assert.Equal("optimized", Group(ana, 5).GetProperty("state").GetString());
        Assert.Equal(5u, (await t.Http.GetJsonAsync($"{Api.Sub()}/namespaces/2")).GetProperty("anaGroup").GetUInt32());

        var aer = await Integration.Tests.InProcess.AsyncEvents.ParkAerAsync(host);
        var set = await t.Http.PutJsonAsync($"{Api.Sub()}/ana/5", new { state = "inaccessible" }, HttpStatusCode.OK);
        Assert.Equal(1, set.GetProperty("controllersNotified").GetInt32());
        Assert.Equal(1ul, set.GetProperty("changeCount").GetUInt64());
        Assert.Equal("inaccessible", set.GetProperty("group").GetProperty("state").GetString());
        Assert.Equal(AsyncEvent.AnaChangeDword0, (await aer.WaitAsync(Integration.Tests.InProcess.AsyncEvents.EventWait)).Dword0);
        Assert.Equal(0x0302, (await host.ReadAsync(0, 2, 0, new byte[512])).Status);
        (await host.ReadAsync(0, 1, 0, new byte[512])).EnsureSuccess("group 1");

        // One port only: the other port keeps the group's state.
        set = await t.Http.PutJsonAsync($"{Api.Sub()}/ana/5", new { state = "non-optimized", port = 2 }, HttpStatusCode.OK);
        Assert.Equal(0, set.GetProperty("controllersNotified").GetInt32()); // the host came in on port 1
        ana = await t.Http.GetJsonAsync($"{Api.Sub()}/ana");
        Assert.Equal(("inaccessible", "inaccessible", "non-optimized"), (Group(ana, 5).GetProperty("state").GetString(), PortState(Group(ana, 5), 1), PortState(Group(ana, 5), 2)));
        await t.Http.PutJsonAsync($"{Api.Sub()}/ana/5", new { state = "optimized" }, HttpStatusCode.OK);
        (await host.ReadAsync(0, 2, 0, new byte[512])).EnsureSuccess("optimized again");
        ana = await t.Http.GetJsonAsync($"{Api.Sub()}/ana");
        Assert.Equal("optimized", PortState(Group(ana, 5), 2)); // a state for every port drops the per-port one

        // The lab event: no state change, the host re-reads the log.
        await host.GetLogPageAsync(LogPageId.AsymmetricNamespaceAccess, 4096); // unmasks the notice
        aer = await Integration.Tests.InProcess.AsyncEvents.ParkAerAsync(host);
        var ev = await t.Http.PostJsonAsync($"{Api.Sub()}/events", new { type = "ana-change" }, HttpStatusCode.OK);
        Assert.Equal(1, ev.GetProperty("controllersNotified").GetInt32());
        Assert.Equal(AsyncEvent.AnaChangeDword0, (await aer.WaitAsync(Integration.Tests.InProcess.AsyncEvents.EventWait)).Dword0);
        ev = await t.Http.PostJsonAsync($"{Api.Sub()}/events", new { type = "ana-change", port = 2 }, HttpStatusCode.OK);
        Assert.Equal(0, ev.GetProperty("controllersNotified").GetInt32());

        var metrics = await t.Probes!.GetStringAsync("/metrics");
        Assert.Contains("nvmet_ana_changes_total{subsystem=\"" + ApiTarget.Nqn + "\"} 3", metrics);
    }

    [Fact]
    public async Task Api_BadInput_AreProblems()
    {
        await using var t = await ApiTarget.StartAsync(output, TwoPorts());
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/ana/0", new { state = "inaccessible" }, HttpStatusCode.BadRequest, "out of range 1..128");
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/ana/129", new { state = "inaccessible" }, HttpStatusCode.BadRequest, "out of range 1..128");
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/ana/1", new { state = "broken" }, HttpStatusCode.BadRequest,
            "'broken' is not optimized, non-optimized, inaccessible, persistent-loss, change");
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/ana/1", new { state = "inaccessible", port = 9 }, HttpStatusCode.BadRequest, "port 9 does not exist");
        await t.Http.ProblemAsync(HttpMethod.Get, $"{Api.Sub("nqn.2026-01.io.example:none")}/ana", null, HttpStatusCode.NotFound, "does not exist");
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/events", new { type = "ana-change", nsid = 1 }, HttpStatusCode.BadRequest, "takes no nsid");
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/events", new { type = "namespace-changed" }, HttpStatusCode.BadRequest, "needs nsid");
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/events", new { type = "bogus", nsid = 1 }, HttpStatusCode.BadRequest, "is not namespace-changed or ana-change");
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/namespaces/1/ana-group", new { anaGroup = 200 }, HttpStatusCode.BadRequest, "out of range");
        await t.Http.ProblemAsync(HttpMethod.Put, $"{Api.Sub()}/namespaces/9/ana-group", new { anaGroup = 2 }, HttpStatusCode.NotFound, "namespace 9");
        await t.Http.ProblemAsync(HttpMethod.Post, $"{Api.Sub()}/namespaces", new { nsid = 3, backend = "memory", size = "1M", anaGroup = 0 },
            HttpStatusCode.BadRequest, "anaGroup: ANA group 0 is out of range");
        Assert.Equal(0ul, t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.AnaChangeCount); // nothing changed
        // A bad anaGroup in the configuration file is refused at start.
        var bad = TwoPorts();
        bad.Subsystems[0].Namespaces[1].AnaGroup = 300;
        Assert.Contains(ConfigValidator.Validate(bad), e => e.Contains("anaGroup: ANA group 300 is out of range 1..128"));
    }

    [Fact]
    public async Task GroupMoveIsSaved_StatesAreNot()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-ana-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, $$"""
                { "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowAnyHost": true,
                                    "namespaces": [ { "nsid": 1, "backend": "memory", "size": "4M" } ] } ] }
                """);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                var moved = await t.Http.PutJsonAsync($"{Api.Sub()}/namespaces/1/ana-group", new { anaGroup = 3 }, HttpStatusCode.OK);
                Assert.Equal(3u, moved.GetProperty("anaGroup").GetUInt32());
                await t.Http.PutJsonAsync($"{Api.Sub()}/ana/3", new { state = "persistent-loss" }, HttpStatusCode.OK);
                Assert.Equal(2ul, (await t.Http.GetJsonAsync($"{Api.Sub()}/ana")).GetProperty("changeCount").GetUInt64());
            }
            var text = await File.ReadAllTextAsync(file);
            using (var doc = JsonDocument.Parse(text))
                Assert.Equal(3u, doc.RootElement.GetProperty("subsystems")[0].GetProperty("namespaces")[0].GetProperty("anaGroup").GetUInt32());
            Assert.DoesNotContain("persistent", text);
            // Restarted: the namespace is still in group 3, which is optimized again.
            cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                var g = Group(await t.Http.GetJsonAsync($"{Api.Sub()}/ana"), 3);
                Assert.Equal(("optimized", new uint[] { 1 }), (g.GetProperty("state").GetString(), g.GetProperty("namespaces").EnumerateArray().Select(n => n.GetUInt32()).ToArray()), new MoveComparer());
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    private sealed class MoveComparer : IEqualityComparer<(string?, uint[])>
    {
        public bool Equals((string?, uint[]) a, (string?, uint[]) b) => a.Item1 == b.Item1 && a.Item2.SequenceEqual(b.Item2);
        public int GetHashCode((string?, uint[]) x) => x.Item1?.GetHashCode() ?? 0;
    }

    [Fact]
    public async Task Cli_AnaListSetMoveAndEvent()
    {
        await using var t = await ApiTarget.StartAsync(output, TwoPorts());
        var s = t.Host.Target.FindSubsystem(ApiTarget.Nqn)!;
        var (code, stdout, stderr) = await Cli.RunAsync("ana", "set", ApiTarget.Nqn, "5", "inaccessible", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("ANA group 5 is inaccessible on every port", stdout);
        Assert.Equal(AnaState.Inaccessible, s.GetAnaState(5));
        (code, stdout, stderr) = await Cli.RunAsync("ana", "set", "5", "change", "--port", "2", "--api", t.ApiUrl); // the only subsystem
        Assert.True(code == 0, stderr);
        Assert.Equal(AnaState.Change, s.GetAnaState(2, 5));
        Assert.Equal(AnaState.Inaccessible, s.GetAnaState(1, 5));

        (code, stdout, stderr) = await Cli.RunAsync("ana", "list", ApiTarget.Nqn, "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("ANA change count 2", stdout);
        Assert.Contains("1:inaccessible 2:change", stdout);

        (code, stdout, stderr) = await Cli.RunAsync("ana", "move", "--nsid", "1", "--group", "5", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Equal(5u, s.GetNamespace(1)!.AnaGroupId);

        (code, stdout, stderr) = await Cli.RunAsync("fault", "event", "ana-change", "--api", t.ApiUrl);
        Assert.True(code == 0, stderr);
        Assert.Contains("Sent ana-change on " + ApiTarget.Nqn + " to 0 controllers", stdout);

        (code, _, stderr) = await Cli.RunAsync("ana", "set", "5", "sideways", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("state 'sideways' is not optimized, non-optimized", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "set", "x", "optimized", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("group 'x' is not an ANA group number", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "set", "5", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("give the group and the state", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "set", "200", "optimized", "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("out of range 1..128", stderr);
        (code, _, stderr) = await Cli.RunAsync("fault", "event", "ana-change", "--nsid", "1", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("takes no --nsid", stderr);

        var (helpCode, help, _) = await Cli.RunAsync("ana", "--help");
        Assert.Equal(0, helpCode);
        Assert.Contains("move", help);
        (helpCode, help, _) = await Cli.RunAsync("ana", "set", "--help");
        Assert.Equal(0, helpCode);
        Assert.Contains("persistent-loss", help);
        Assert.Contains("nvme-tcp-target ana list|set|move|owner", Target.Configuration.CommandLine.HelpText());

        // ana owner: usage mistakes, and a target without automatic failover says so (the Ceph tests move groups for real).
        (code, _, stderr) = await Cli.RunAsync("ana", "owner", "1", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("give the group and the gateway: ana owner [NQN] GROUP GATEWAY", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "owner", "one", "gw-b", "--api", t.ApiUrl);
        Assert.Equal(2, code);
        Assert.Contains("group 'one' is not an ANA group number", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "owner", "1", "gw b", "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("gateway 'gw b' is not 1..64 letters", stderr);
        (code, _, stderr) = await Cli.RunAsync("ana", "owner", "1", "gw-b", "--api", t.ApiUrl);
        Assert.Equal(1, code);
        Assert.Contains("ANA group 1 of " + ApiTarget.Nqn + " is not under automatic failover", stderr);
    }
}
