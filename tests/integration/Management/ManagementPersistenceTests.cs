using System.Net;
using System.Text.Json;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>Changes made through the API while the target runs from a configuration file are written back to
/// it (atomically) and are there again after a restart, with the same NSID and the same identifiers.</summary>
public sealed class ManagementPersistenceTests(ITestOutputHelper output)
{
    private const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:5f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";

    private static CommandLine Parse(string configFile, Dictionary<string, string>? env = null)
    {
        var cl = CommandLine.Parse(["--config", configFile], env ?? []);
        Assert.Empty(cl.Errors);
        Assert.Empty(ConfigValidator.Validate(cl.Config));
        return cl;
    }

    [Fact]
    public async Task ApiChanges_AreSavedToTheConfigFile_AndBackAfterRestart()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-mgmt-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            var image = Path.Combine(dir.FullName, "ns2.img");
            await File.WriteAllTextAsync(file, $$"""
                {
                  // written by hand; the target rewrites it on every change
                  "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "api": { "address": "127.0.0.1", "port": 0 },
                  "storage": { "directories": [ "." ] },
                  "subsystems": [
                    { "nqn": "{{ApiTarget.Nqn}}", "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" } ] }
                  ]
                }
                """);

            // The token comes from the environment: it is used, but it is not written into the file.
            var cl = Parse(file, new() { ["NVMET_API_TOKEN"] = "env-token" });
            Assert.Equal(("127.0.0.1", 0, "env-token"), (cl.Api!.Address, cl.Api.Port, cl.Api.Token));
            JsonElement added;
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath, cl.Api))
            {
                added = await t.Http.PostJsonAsync(Api.Sub() + "/namespaces",
                    new { nsid = 3, backend = "file", path = image, size = "8M", blockSize = 4096 }, HttpStatusCode.Created);
                await t.Http.PostJsonAsync(Api.Sub() + "/hosts", new { hostNqn = HostNqn }, HttpStatusCode.Created);
                await t.Http.PostJsonAsync(Api.Sub() + "/namespaces/3/resize", new { size = "12M" }, HttpStatusCode.OK);
                await t.Http.PostJsonAsync(Api.Sub() + "/namespaces", new { nsid = 4, backend = "memory", size = "4M" }, HttpStatusCode.Created);
                await t.Http.DeleteOkAsync(Api.Sub() + "/namespaces/4");
            }
            Assert.Equal(12L << 20, new FileInfo(image).Length);

            // The file is valid JSON holding the changes, and nothing else is left in the directory.
            var text = await File.ReadAllTextAsync(file);
            using (var doc = JsonDocument.Parse(text))
            {
                var sub = doc.RootElement.GetProperty("subsystems")[0];
                Assert.Equal([1u, 3u], sub.GetProperty("namespaces").EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
                Assert.Equal([HostNqn], sub.GetProperty("allowedHosts").EnumerateArray().Select(h => h.GetString()));
                Assert.Equal(0, doc.RootElement.GetProperty("api").GetProperty("port").GetInt32());
            }
            Assert.DoesNotContain("env-token", text);
            Assert.Equal(["ns2.img", "target.json"], dir.GetFiles().Select(f => f.Name).Order());

            // A TCP API needs its token again: it was not written into the file.
            Assert.Contains(CommandLine.Parse(["--config", file], new Dictionary<string, string>()).Errors, e => e.Contains("needs a token"));
            var again = Parse(file, new() { ["NVMET_API_TOKEN"] = "env-token" });
            await using (var t = await ApiTarget.StartAsync(output, again.Config, again.ConfigPath, again.Api))
            {
                var ns = await t.Http.GetJsonAsync(Api.Sub() + "/namespaces/3");
                Assert.Equal("file", ns.GetProperty("backend").GetString());
                Assert.Equal(image, ns.GetProperty("path").GetString());
                Assert.Equal(4096, ns.GetProperty("blockSize").GetInt32());
                Assert.Equal(12L << 20, ns.GetProperty("sizeBytes").GetInt64());
                foreach (var id in new[] { "uuid", "nguid", "eui64" })
                    Assert.Equal(added.GetProperty(id).GetString(), ns.GetProperty(id).GetString());
                Assert.Equal([1u, 3u], (await t.Http.GetJsonAsync(Api.Sub() + "/namespaces")).EnumerateArray().Select(n => n.GetProperty("nsid").GetUInt32()));
                Assert.Equal([HostNqn], (await t.Http.GetJsonAsync(Api.Sub() + "/hosts")).EnumerateArray().Select(h => h.GetProperty("hostNqn").GetString()));
                Assert.False(t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.AllowAnyHost);

                // A subsystem created at run time is saved too, and deleting it removes it from the file.
                await t.Http.PostJsonAsync("subsystems", new { nqn = "nqn.2026-01.io.example:second" }, HttpStatusCode.Created);
                Assert.Contains("nqn.2026-01.io.example:second", await File.ReadAllTextAsync(file));
                await t.Http.DeleteOkAsync(Api.Sub("nqn.2026-01.io.example:second"));
                Assert.DoesNotContain("nqn.2026-01.io.example:second", await File.ReadAllTextAsync(file));
            }
            Assert.Equal(["ns2.img", "target.json"], dir.GetFiles().Select(f => f.Name).Order());
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task RefusedChange_LeavesTheFileAlone()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-mgmt-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, $$"""
                { "ports": [ { "port": 0 } ], "storage": { "directories": [ "." ] },
                  "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" } ] } ] }
                """);
            var before = await File.ReadAllTextAsync(file);
            var cl = Parse(file);
            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces", new { nsid = 1, backend = "memory", size = "8M" },
                    HttpStatusCode.Conflict, "NSID 1 is already in use");
                await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/namespaces", new { backend = "file", path = Path.Combine(dir.FullName, "missing.img") },
                    HttpStatusCode.BadRequest, "does not exist");
            }
            Assert.Equal(before, await File.ReadAllTextAsync(file));
            Assert.Equal(["target.json"], dir.GetFiles().Select(f => f.Name));
        }
        finally { dir.Delete(recursive: true); }
    }
}
