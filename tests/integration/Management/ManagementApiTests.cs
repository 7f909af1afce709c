using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>The management API over real HTTP: each endpoint's success path and its error statuses
/// (RFC 7807 problems with the operator's message), the bearer token, and the OpenAPI document.</summary>
public sealed class ManagementApiTests(ITestOutputHelper output)
{
    private const string OtherNqn = "nqn.2026-01.io.nvmetcptarget.test:other";
    private const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:0c6a4f1e-5b0d-4d7e-9a43-2f6f1d8e0b21";

    [Fact]
    public async Task Subsystems_ListCreateGetDelete_AndTheirErrors()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var list = await t.Http.GetJsonAsync("subsystems");
        var only = Assert.Single(list.EnumerateArray());
        Assert.Equal(ApiTarget.Nqn, only.GetProperty("nqn").GetString());
        Assert.True(only.GetProperty("allowAnyHost").GetBoolean());
        Assert.Equal(1u, only.GetProperty("namespaces")[0].GetProperty("nsid").GetUInt32());

        using (var created = await t.Http.PostAsJsonAsync("subsystems", new
        {
            nqn = OtherNqn, serial = "SER-1", model = "Test model",
            namespaces = new[] { new { nsid = 1, backend = "memory", size = "8M" } },
            allowedHosts = new[] { HostNqn },
        }, Api.Json))
        {
            var body = await Api.ReadJsonAsync(created, HttpStatusCode.Created);
            Assert.Equal(OtherNqn, body.GetProperty("nqn").GetString());
            Assert.Equal("SER-1", body.GetProperty("serial").GetString());
            Assert.False(body.GetProperty("allowAnyHost").GetBoolean());
            Assert.Equal(8L << 20, body.GetProperty("namespaces")[0].GetProperty("sizeBytes").GetInt64());
            Assert.Equal($"/api/v1/{Api.Sub(OtherNqn)}", created.Headers.Location?.OriginalString);
        }
        Assert.NotNull(t.Host.Target.FindSubsystem(OtherNqn));
        Assert.Equal(2, (await t.Http.GetJsonAsync("subsystems")).GetArrayLength());
        var one = await t.Http.GetJsonAsync(Api.Sub(OtherNqn));
        Assert.Equal([HostNqn], one.GetProperty("allowedHosts").EnumerateArray().Select(h => h.GetString()));

        await t.Http.ProblemAsync(HttpMethod.Post, "subsystems", new { nqn = OtherNqn }, HttpStatusCode.Conflict, $"subsystem {OtherNqn} already exists");
        await t.Http.ProblemAsync(HttpMethod.Post, "subsystems", new { nqn = "not an nqn" }, HttpStatusCode.BadRequest, "NQN 'not an nqn' is not of the form");
        await t.Http.ProblemAsync(HttpMethod.Post, "subsystems",
            new { nqn = "nqn.2026-01.io.example:x", namespaces = new[] { new { nsid = 1, backend = "memory", size = "8M", blockSize = 1000 } } },
            HttpStatusCode.BadRequest, "blockSize 1000 must be 512 or 4096");
        await t.Http.ProblemAsync(HttpMethod.Get, Api.Sub("nqn.2026-01.io.example:missing"), null, HttpStatusCode.NotFound,
            "subsystem nqn.2026-01.io.example:missing does not exist");

        await t.Http.DeleteOkAsync(Api.Sub(OtherNqn));
        Assert.Null(t.Host.Target.FindSubsystem(OtherNqn));
        await t.Http.ProblemAsync(HttpMethod.Delete, Api.Sub(OtherNqn), null, HttpStatusCode.NotFound, $"subsystem {OtherNqn} does not exist");
        // The discovery subsystem is not an NVM subsystem to manage.
        await t.Http.ProblemAsync(HttpMethod.Delete, Api.Sub("nqn.2014-08.org.nvmexpress.discovery"), null, HttpStatusCode.NotFound, "does not exist");
    }

    [Fact]
    public async Task Namespaces_AddGetListResizeRemove_AndTheirErrors()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var ns = Api.Sub() + "/namespaces";

        using (var r = await t.Http.PostAsJsonAsync(ns, new { backend = "memory", size = "16M" }, Api.Json))
        {
            var added = await Api.ReadJsonAsync(r, HttpStatusCode.Created);
            Assert.Equal(2u, added.GetProperty("nsid").GetUInt32()); // absent NSID: the lowest free one
            Assert.Equal("memory", added.GetProperty("backend").GetString());
            Assert.Equal(16L << 20, added.GetProperty("sizeBytes").GetInt64());
            Assert.Equal(32768UL, added.GetProperty("blocks").GetUInt64());
            Assert.Equal(32, added.GetProperty("nguid").GetString()!.Length);
            Assert.Equal($"/api/v1/{ns}/2", r.Headers.Location?.OriginalString);
        }
        var four = await t.Http.PostJsonAsync(ns, new { nsid = 4, backend = "memory", size = 8 << 20, blockSize = 4096 }, HttpStatusCode.Created);
        Assert.Equal(2048UL, four.GetProperty("blocks").GetUInt64()); // a size as a number of bytes works too
        Assert.Equal([1u, 2u, 4u], (await t.Http.GetJsonAsync(ns)).EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
        Assert.Equal(4096, (await t.Http.GetJsonAsync(ns + "/4")).GetProperty("blockSize").GetInt32());

        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { nsid = 2, backend = "memory", size = "8M" }, HttpStatusCode.Conflict, "NSID 2 is already in use");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "memory", size = "lots" }, HttpStatusCode.BadRequest, "size 'lots' is not a size");
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "file", path = "/nonexistent/dir/x.img" }, HttpStatusCode.Forbidden,
            "file namespace '/nonexistent/dir/x.img' is outside the storage directories");
        await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub(OtherNqn) + "/namespaces", new { backend = "memory", size = "8M" }, HttpStatusCode.NotFound,
            $"subsystem {OtherNqn} does not exist");
        await t.Http.ProblemAsync(HttpMethod.Get, ns + "/9", null, HttpStatusCode.NotFound, "namespace 9 does not exist");
        await t.Http.ProblemAsync(HttpMethod.Get, ns + "/abc", null, HttpStatusCode.BadRequest, "NSID in the path must be a number");

        var grown = await t.Http.PostJsonAsync(ns + "/2/resize", new { size = "32M" }, HttpStatusCode.OK);
        Assert.Equal(32L << 20, grown.GetProperty("sizeBytes").GetInt64());
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { size = "8M" }, HttpStatusCode.Conflict, "force");
        var shrunk = await t.Http.PostJsonAsync(ns + "/2/resize", new { size = "8M", force = true }, HttpStatusCode.OK);
        Assert.Equal(8L << 20, shrunk.GetProperty("sizeBytes").GetInt64());
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { size = "huge" }, HttpStatusCode.BadRequest, "size 'huge' is not a size");
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/4/resize", new { size = "1001K" }, HttpStatusCode.BadRequest, "not a multiple of the block size 4096");
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/9/resize", new { size = "8M" }, HttpStatusCode.NotFound, "namespace 9 does not exist");
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { force = true }, HttpStatusCode.BadRequest, "size");

        await t.Http.DeleteOkAsync(ns + "/2");
        Assert.Null(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.GetNamespace(2));
        await t.Http.ProblemAsync(HttpMethod.Delete, ns + "/2", null, HttpStatusCode.NotFound, "namespace 2 does not exist");
        Assert.Equal([1u, 4u], (await t.Http.GetJsonAsync(ns)).EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
    }

    [Fact]
    public async Task Hosts_AddListRemove_AndTheirErrors()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var hosts = Api.Sub() + "/hosts";
        Assert.Equal(0, (await t.Http.GetJsonAsync(hosts)).GetArrayLength());

        using (var r = await t.Http.PostAsJsonAsync(hosts, new { hostNqn = HostNqn }, Api.Json))
        {
            Assert.Equal(HostNqn, (await Api.ReadJsonAsync(r, HttpStatusCode.Created)).GetProperty("hostNqn").GetString());
            Assert.Equal($"/api/v1/{hosts}/{Uri.EscapeDataString(HostNqn)}", r.Headers.Location?.OriginalString);
        }
        Assert.Equal([HostNqn], (await t.Http.GetJsonAsync(hosts)).EnumerateArray().Select(h => h.GetProperty("hostNqn").GetString()));
        // The list and allowAnyHost are separate (as in kernel nvmet and SPDK): the subsystem still admits any host...
        Assert.True((await t.Http.GetJsonAsync(Api.Sub())).GetProperty("allowAnyHost").GetBoolean());
        Assert.True(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.AllowAnyHost);
        // ...until it is closed to all but the list.
        using (var r = await t.Http.PatchAsJsonAsync(Api.Sub(), new { allowAnyHost = false }, Api.Json))
            Assert.False((await Api.ReadJsonAsync(r, HttpStatusCode.OK)).GetProperty("allowAnyHost").GetBoolean());
        Assert.False(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.AllowAnyHost);
        await t.Http.ProblemAsync(HttpMethod.Patch, Api.Sub(), new { }, HttpStatusCode.BadRequest, "nothing to change");
        await t.Http.ProblemAsync(HttpMethod.Patch, Api.Sub(OtherNqn), new { allowAnyHost = true }, HttpStatusCode.NotFound, $"subsystem {OtherNqn} does not exist");

        await t.Http.ProblemAsync(HttpMethod.Post, hosts, new { hostNqn = HostNqn }, HttpStatusCode.Conflict, "is already allowed");
        await t.Http.ProblemAsync(HttpMethod.Post, hosts, new { hostNqn = "bogus" }, HttpStatusCode.BadRequest, "NQN 'bogus' is not of the form");
        await t.Http.ProblemAsync(HttpMethod.Post, hosts, new { }, HttpStatusCode.BadRequest, "hostNqn");
        await t.Http.ProblemAsync(HttpMethod.Get, Api.Sub(OtherNqn) + "/hosts", null, HttpStatusCode.NotFound, $"subsystem {OtherNqn} does not exist");

        using (var r = await t.Http.DeleteAsync($"{hosts}/{Uri.EscapeDataString(HostNqn)}"))
        {
            var removed = await Api.ReadJsonAsync(r, HttpStatusCode.OK);
            Assert.Equal(HostNqn, removed.GetProperty("hostNqn").GetString());
            Assert.Equal(0, removed.GetProperty("disconnectedControllers").GetInt32());
        }
        Assert.Equal(0, (await t.Http.GetJsonAsync(hosts)).GetArrayLength());
        // The last host gone: the subsystem admits nobody (it does not fall open).
        Assert.False((await t.Http.GetJsonAsync(Api.Sub())).GetProperty("allowAnyHost").GetBoolean());
        await t.Http.ProblemAsync(HttpMethod.Delete, $"{hosts}/{Uri.EscapeDataString(HostNqn)}", null, HttpStatusCode.NotFound, "is not in the allowed list");
    }

    [Fact]
    public async Task Controllers_ListsAConnectedHostWithItsQueues()
    {
        await using var t = await ApiTarget.StartAsync(output);
        Assert.Equal(0, (await t.Http.GetJsonAsync("controllers")).GetArrayLength());
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(2);
        var c = Assert.Single((await t.Http.GetJsonAsync("controllers")).EnumerateArray());
        Assert.Equal(host.Cntlid, c.GetProperty("cntlid").GetUInt16());
        Assert.Equal(ApiTarget.Nqn, c.GetProperty("subsystem").GetString());
        Assert.Equal(host.Options.HostNqn, c.GetProperty("hostNqn").GetString());
        Assert.Equal(host.Options.HostId, c.GetProperty("hostId").GetGuid());
        Assert.False(c.GetProperty("discovery").GetBoolean());
        Assert.Equal(2, c.GetProperty("ioQueues").GetInt32());
        var queues = c.GetProperty("queues").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], queues.Select(q => q.GetProperty("qid").GetInt32()));
        Assert.All(queues, q => Assert.StartsWith("127.0.0.1:", q.GetProperty("peer").GetString()));
        Assert.Equal(1, (await t.Http.GetJsonAsync(Api.Sub())).GetProperty("controllers").GetInt32());
    }

    [Fact]
    public async Task BadRequests_AreProblemsWithTheReason()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var ns = Api.Sub() + "/namespaces";

        using (var r = await t.Http.PostAsync(ns, new StringContent("{\"backend\": \"memory\", \"size\": ", Encoding.UTF8, "application/json")))
            await Api.AssertProblemAsync(r, HttpStatusCode.BadRequest, "the request body is not valid");
        using (var r = await t.Http.PostAsync(ns, new StringContent("{\"backend\": \"memory\", \"sise\": \"1G\"}", Encoding.UTF8, "application/json")))
            await Api.AssertProblemAsync(r, HttpStatusCode.BadRequest, "'sise'");
        using (var r = await t.Http.PostAsync(ns, null))
            await Api.AssertProblemAsync(r, HttpStatusCode.BadRequest, "needs a JSON request body");
        using (var r = await t.Http.PostAsync(ns, new StringContent("backend=memory", Encoding.UTF8, "text/plain")))
            await Api.AssertProblemAsync(r, HttpStatusCode.UnsupportedMediaType, "must be JSON");
        using (var r = await t.Http.GetAsync("nothing/here"))
            await Api.AssertProblemAsync(r, HttpStatusCode.NotFound, "there is no endpoint /api/v1/nothing/here");
        using (var r = await t.Http.PutAsync("controllers", Body(new { })))
            await Api.AssertProblemAsync(r, HttpStatusCode.MethodNotAllowed, "PUT is not allowed on /api/v1/controllers");
    }

    private static StringContent Body(object o) => new(JsonSerializer.Serialize(o), Encoding.UTF8, "application/json");

    [Fact]
    public async Task Token_IsRequiredOnEveryRequest_AndAccepted()
    {
        await using var t = await ApiTarget.StartAsync(output, token: "s3cret-token");
        Assert.Single((await t.Http.GetJsonAsync("subsystems")).EnumerateArray());
        await t.Http.PostJsonAsync(Api.Sub() + "/namespaces", new { backend = "memory", size = "8M" }, HttpStatusCode.Created);

        using var anonymous = ApiTarget.UnixHttp(t.Host.ApiSocketPath!);
        foreach (var path in new[] { "subsystems", "controllers", "/openapi/v1.json", "nothing/here" })
        {
            using var r = await anonymous.GetAsync(path);
            await Api.AssertProblemAsync(r, HttpStatusCode.Unauthorized, "requires a bearer token");
            Assert.Equal("Bearer", r.Headers.WwwAuthenticate.Single().Scheme);
        }
        using (var r = await anonymous.DeleteAsync(Api.Sub() + "/namespaces/1"))
            await Api.AssertProblemAsync(r, HttpStatusCode.Unauthorized, "requires a bearer token");
        Assert.NotNull(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.GetNamespace(1));

        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret-tokem");
        using (var r = await anonymous.GetAsync("subsystems"))
            await Api.AssertProblemAsync(r, HttpStatusCode.Unauthorized, "the bearer token is wrong");
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", "s3cret-token");
        using (var r = await anonymous.GetAsync("subsystems"))
            await Api.AssertProblemAsync(r, HttpStatusCode.Unauthorized, "the bearer token is wrong");
    }

    [Fact]
    public async Task OpenApiDocument_ListsEveryEndpoint()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var doc = await t.Http.GetJsonAsync("/openapi/v1.json");
        Assert.StartsWith("3.", doc.GetProperty("openapi").GetString());
        Assert.Equal("nvme-tcp-target management API", doc.GetProperty("info").GetProperty("title").GetString());
        var paths = doc.GetProperty("paths");
        var expected = new (string Path, string[] Methods)[]
        {
            ("/api/v1/subsystems", ["get", "post"]),
            ("/api/v1/subsystems/{nqn}", ["get", "patch", "delete"]),
            ("/api/v1/subsystems/{nqn}/namespaces", ["get", "post"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}", ["get", "delete"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/resize", ["post"]),
            ("/api/v1/subsystems/{nqn}/hosts", ["get", "post"]),
            ("/api/v1/subsystems/{nqn}/hosts/{hostNqn}", ["delete", "put"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/visibility", ["put"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/hosts", ["get", "post"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/hosts/{hostNqn}", ["delete"]),
            ("/api/v1/subsystems/{nqn}/attach-hosts", ["get", "post"]),
            ("/api/v1/subsystems/{nqn}/attach-hosts/{hostNqn}", ["delete"]),
            ("/api/v1/controllers", ["get"]),
            ("/api/v1/faults", ["get", "post", "delete"]),
            ("/api/v1/faults/{id}", ["get", "delete"]),
            ("/api/v1/faults/connections", ["post"]),
            ("/api/v1/subsystems/{nqn}/events", ["post"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/write-protect", ["put"]),
            ("/api/v1/traces", ["get", "post"]),
            ("/api/v1/traces/{id}", ["get", "delete"]),
            ("/api/v1/traces/{id}/stop", ["post"]),
            ("/api/v1/traces/{id}/file", ["get"]),
            ("/api/v1/subsystems/{nqn}/ana", ["get"]),
            ("/api/v1/subsystems/{nqn}/ana/{group}", ["put"]),
            ("/api/v1/subsystems/{nqn}/ana/{group}/owner", ["post"]),
            ("/api/v1/subsystems/{nqn}/namespaces/{nsid}/ana-group", ["put"]),
        };
        Assert.Equal(expected.Select(e => e.Path).Order(), paths.EnumerateObject().Select(p => p.Name).Order());
        foreach (var (path, methods) in expected)
            Assert.Equal(methods.Order(), paths.GetProperty(path).EnumerateObject().Select(m => m.Name).Where(m => m != "parameters").Order());
        var add = paths.GetProperty("/api/v1/subsystems/{nqn}/namespaces").GetProperty("post");
        Assert.True(add.GetProperty("responses").TryGetProperty("201", out _));
        Assert.True(add.GetProperty("responses").TryGetProperty("409", out _));
        Assert.True(doc.GetProperty("components").GetProperty("schemas").TryGetProperty("NamespaceConfig", out _));
    }

    [Fact]
    public async Task ApiOff_NoListener()
    {
        var loggers = Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance;
        await using var host = await Target.TargetHost.StartAsync(InProcess.TestTarget.DefaultConfig(), loggers, api: null);
        Assert.Null(host.ApiEndpoint);
        Assert.Null(host.ApiSocketPath);
        Assert.Null(host.ProbesEndpoint);
        Assert.Single(host.Endpoints);
    }

    [Fact]
    public void CommandLine_ApiSettings_DefaultsFileEnvironmentAndOptions()
    {
        var none = new Dictionary<string, string>();
        var d = CommandLine.Parse([], none);
        Assert.Empty(d.Errors);
        // The default: a Unix socket (root's path here: the tests run as root), no token; probes on 127.0.0.1:8420.
        Assert.False(d.Api!.IsTcp);
        Assert.Equal(("/run/nvme-tcp-target/api.sock", (string?)null), (d.Api.Socket, d.Api.Token));
        Assert.Equal(("127.0.0.1", 8420), (d.Probes!.Address, d.Probes.Port));
        Assert.Null(CommandLine.Parse(["--api", "off"], none).Api);
        Assert.Null(CommandLine.Parse([], new Dictionary<string, string> { ["NVMET_API"] = "off" }).Api);
        Assert.Null(CommandLine.Parse(["--probes", "off"], none).Probes);
        var probes = CommandLine.Parse([], new Dictionary<string, string> { ["NVMET_PROBES"] = "0.0.0.0:9420" }).Probes!;
        Assert.Equal(("0.0.0.0", 9420), (probes.Address, probes.Port));
        Assert.Equal("/tmp/x/api.sock", CommandLine.Parse(["--api", "unix:/tmp/x/api.sock"], none).Api!.Socket);
        Assert.Equal("/tmp/y.sock", CommandLine.Parse(["--api", "/tmp/y.sock"], none).Api!.Socket);

        // TCP needs a token: from the environment, the command line or a file.
        var env = CommandLine.Parse([], new Dictionary<string, string> { ["NVMET_API"] = "0.0.0.0:9000", ["NVMET_API_TOKEN"] = "t1" });
        Assert.Empty(env.Errors);
        Assert.Equal(("0.0.0.0", 9000, "t1"), (env.Api!.Address, env.Api.Port!.Value, env.Api.Token));
        var cli = CommandLine.Parse(["--api", "[::1]:0", "--api-token", "t2"], new Dictionary<string, string> { ["NVMET_API"] = "off", ["NVMET_API_TOKEN"] = "t1" });
        Assert.Equal(("::1", 0, "t2"), (cli.Api!.Address, cli.Api.Port!.Value, cli.Api.Token));
        var noToken = CommandLine.Parse(["--api", "127.0.0.1:9000"], none);
        Assert.Contains(noToken.Errors, e => e.StartsWith("the management API on TCP 127.0.0.1:9000 needs a token", StringComparison.Ordinal));
        Assert.Contains(CommandLine.Parse(["--api", "127.0.0.1:9000", "--api-token", "a", "--api-token-file", "/x"], none).Errors, e => e.Contains("both given"));
        Assert.Contains(CommandLine.Parse(["--api", "127.0.0.1:9000", "--api-token", "two words"], none).Errors, e => e.Contains("printable ASCII without spaces"));
        Assert.Contains(CommandLine.Parse(["--api", "127.0.0.1:9000", "--api-token-file", "/nonexistent/token"], none).Errors,
            e => e.StartsWith("api: cannot read the token file '/nonexistent/token'", StringComparison.Ordinal));
        Assert.Contains(CommandLine.Parse(["--api", "unix:relative.sock"], none).Errors, e => e.Contains("must be absolute"));
        Assert.Contains(CommandLine.Parse(["--api-socket-group", "no-such-group-here"], none).Errors, e => e.Contains("socket group 'no-such-group-here' does not exist"));

        Assert.Contains("--api 'localhost' is not unix:PATH, ADDR:PORT or off", CommandLine.Parse(["--api", "localhost"], none).Errors);
        Assert.Contains("api: 'host' is not an IP address", CommandLine.Parse(["--api", "host:80", "--api-token", "t"], none).Errors);
        Assert.Contains("api: TCP port 70000 is outside 0..65535", CommandLine.Parse(["--api", "127.0.0.1:70000", "--api-token", "t"], none).Errors);
        Assert.Contains("--probes 'nowhere' is not ADDR:PORT or off", CommandLine.Parse(["--probes", "nowhere"], none).Errors);
        Assert.Equal(["a.example", "b.example"], CommandLine.Parse([], new Dictionary<string, string> { ["NVMET_API_ALLOWED_HOSTS"] = "a.example,b.example" }).Api!.AllowedHostNames);

        var dir = Directory.CreateTempSubdirectory("nvmet-cl-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            var tokenFile = Path.Combine(dir.FullName, "token");
            File.WriteAllText(tokenFile, "from-file\nsecond line is ignored\n");
            File.WriteAllText(file, $$"""{ "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ], "api": { "address": "127.0.0.2", "port": 9001, "tokenFile": "{{tokenFile}}" } }""");
            var fromFile = CommandLine.Parse(["--config", file], none);
            Assert.Empty(fromFile.Errors);
            Assert.Equal(("127.0.0.2", 9001, "from-file"), (fromFile.Api!.Address, fromFile.Api.Port!.Value, fromFile.Api.Token));
            var overridden = CommandLine.Parse(["--config", file, "--api-token", "ct"], none);
            Assert.Equal("ct", overridden.Api!.Token);
            Assert.Equal(tokenFile, overridden.Config.Api!.TokenFile); // the file's own settings are what gets written back
            Assert.Null(overridden.Config.Api.Token);
            File.WriteAllText(file, """{ "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ], "api": { "address": "127.0.0.2", "port": 9001 } }""");
            Assert.Contains(CommandLine.Parse(["--config", file], none).Errors, e => e.Contains("needs a token"));
            File.WriteAllText(file, """{ "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ], "api": { "socket": "/tmp/s/api.sock", "socketGroup": "nogroup" }, "probes": { "port": 9999 } }""");
            var socket = CommandLine.Parse(["--config", file], none);
            Assert.Empty(socket.Errors);
            Assert.Equal(("/tmp/s/api.sock", "nogroup", 9999), (socket.Api!.Socket, socket.Api.SocketGroup, socket.Probes!.Port));
            File.WriteAllText(file, """{ "subsystems": [ { "nqn": "nqn.2026-01.io.example:a" } ], "api": { "enabled": false }, "probes": { "enabled": false } }""");
            var off = CommandLine.Parse(["--config", file], none);
            Assert.Null(off.Api);
            Assert.Null(off.Probes);
        }
        finally { dir.Delete(recursive: true); }
    }
}
