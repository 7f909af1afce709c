using System.Net;
using System.Text.Json;
using Integration.Tests.Initiator;
using Nvme.Core.Auth;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>DH-HMAC-CHAP settings per host through the configuration file (allowedHosts entries as objects), the
/// API's host endpoints and the CLI: secrets are validated, saved 0600, never shown back.</summary>
public sealed class HostAuthenticationApiTests(ITestOutputHelper output)
{
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:8b2c3d4e-5f6a-4b7c-9d8e-0f1a2b3c4d5e";
    private const string Plain = "nqn.2014-08.org.nvmexpress:uuid:9c3d4e5f-6a7b-4c8d-8e9f-1a2b3c4d5e6f";
    private static readonly DhchapSecret KeyA = DhchapSecret.Generate(32, 1);
    private static readonly DhchapSecret CtrlA = DhchapSecret.Generate(32, 0);
    private static readonly DhchapSecret KeyB = DhchapSecret.Generate(48, 2);

    private static string Secretless(string s) => s.Replace(KeyA.Representation, "").Replace(CtrlA.Representation, "").Replace(KeyB.Representation, "");

    [Fact]
    public async Task ConfigObjects_ApiAddRotateRemove_SavedMode0600_NeverShown()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-auth-");
        try
        {
            var file = Path.Combine(dir.FullName, "target.json");
            await File.WriteAllTextAsync(file, $$"""
                {
                  "ports": [ { "id": 1, "address": "127.0.0.1", "port": 0 } ],
                  "subsystems": [
                    { "nqn": "{{ApiTarget.Nqn}}", "allowAnyHost": false,
                      "allowedHosts": [ "{{Plain}}", { "nqn": "{{HostA}}", "dhchapSecret": "{{KeyA.Representation}}",
                                                       "dhchapCtrlSecret": "{{CtrlA.Representation}}", "dhchapHash": "sha384", "dhchapDhgroup": "ffdhe2048" } ],
                      "namespaces": [ { "nsid": 1, "backend": "memory", "size": "16M" } ] }
                  ]
                }
                """);
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            var cl = CommandLine.Parse(["--config", file], new Dictionary<string, string>());
            Assert.Empty(cl.Errors);
            Assert.Empty(ConfigValidator.Validate(cl.Config));
            Assert.Equal(new[] { Plain, HostA }, cl.Config.Subsystems[0].AllowedHosts);

            await using (var t = await ApiTarget.StartAsync(output, cl.Config, cl.ConfigPath))
            {
                var ep = t.Host.Endpoints[0];
                // The host authenticates bidirectionally with what the file says; the plain host does not authenticate.
                await using (var a = await NvmeTcpHost.ConnectAsync(ep, ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostA, DhchapSecret = KeyA, DhchapCtrlSecret = CtrlA }))
                    Assert.Equal((DhchapHash.Sha384, DhGroupId.Ffdhe2048), a.LastAuthentication!.Value);
                await using (var p = await NvmeTcpHost.ConnectAsync(ep, ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = Plain, HostId = Guid.NewGuid() }))
                    Assert.False(p.AuthenticationRequested);

                // The list says what is set, never the secrets.
                var raw = await (await t.Http.GetAsync(Api.Sub() + "/hosts")).Content.ReadAsStringAsync();
                Assert.Equal(raw, Secretless(raw));
                var list = JsonDocument.Parse(raw).RootElement;
                var a0 = list.EnumerateArray().Single(h => h.GetProperty("hostNqn").GetString() == HostA);
                Assert.True(a0.GetProperty("dhchapSecretSet").GetBoolean());
                Assert.True(a0.GetProperty("dhchapCtrlSecretSet").GetBoolean());
                Assert.Equal("sha384", a0.GetProperty("dhchapHash").GetString());
                Assert.False(list.EnumerateArray().Single(h => h.GetProperty("hostNqn").GetString() == Plain).GetProperty("dhchapSecretSet").GetBoolean());

                // Add a host with a secret: the answer does not echo it.
                using (var r = await t.Http.PostAsync(Api.Sub() + "/hosts", JsonContent(new { hostNqn = HostB, dhchapSecret = KeyB.Representation })))
                {
                    var body = await r.Content.ReadAsStringAsync();
                    Assert.Equal(HttpStatusCode.Created, r.StatusCode);
                    Assert.DoesNotContain(KeyB.Representation, body);
                    Assert.Contains("\"dhchapSecretSet\":true", body);
                }
                await using (var b = await NvmeTcpHost.ConnectAsync(ep, ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostB, HostId = Guid.NewGuid(), DhchapSecret = KeyB }))
                    Assert.True(b.AuthenticationRequested);

                // Bad secrets: 400 with the reason, not the text.
                const string mangled = "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:";
                await t.Http.ProblemAsync(HttpMethod.Post, Api.Sub() + "/hosts", new { hostNqn = Plain.Replace("9c3d", "0000"), dhchapSecret = mangled },
                    HttpStatusCode.BadRequest, "CRC-32 does not match");
                await t.Http.ProblemAsync(HttpMethod.Put, Api.Sub() + "/hosts/" + Uri.EscapeDataString(HostB), new { dhchapSecret = KeyB.Representation, dhchapDhgroup = "ffdhe1024" },
                    HttpStatusCode.BadRequest, "dhchapDhgroup 'ffdhe1024'");
                await t.Http.ProblemAsync(HttpMethod.Put, Api.Sub() + "/hosts/" + Uri.EscapeDataString(HostB), new { dhchapCtrlSecret = CtrlA.Representation },
                    HttpStatusCode.BadRequest, "need a dhchapSecret");

                // Rotate B's secret: the old one no longer connects, the new one does.
                var newB = DhchapSecret.Generate(64, 3);
                using (var r = await t.Http.PutAsync(Api.Sub() + "/hosts/" + Uri.EscapeDataString(HostB), JsonContent(new { dhchapSecret = newB.Representation })))
                {
                    Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                    Assert.DoesNotContain(newB.Representation, await r.Content.ReadAsStringAsync());
                }
                await Assert.ThrowsAsync<NvmeAuthenticationException>(() =>
                    NvmeTcpHost.ConnectAsync(ep, ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostB, HostId = Guid.NewGuid(), DhchapSecret = KeyB }));
                await using (var b = await NvmeTcpHost.ConnectAsync(ep, ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostB, HostId = Guid.NewGuid(), DhchapSecret = newB }))
                    Assert.True(b.AuthenticationRequested);

                // The file holds the objects (secrets included: it is the target's own), stays 0600, and still parses.
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                var saved = await File.ReadAllTextAsync(file);
                Assert.Contains($"\"{Plain}\"", saved); // a host without settings stays a plain string
                var again = JsonSerializer.Deserialize<TargetConfig>(saved, TargetConfig.Json)!;
                Assert.Equal(newB.Representation, again.Subsystems[0].AllowedHosts.Auth[HostB].DhchapSecret);
                Assert.Equal("ffdhe2048", again.Subsystems[0].AllowedHosts.Auth[HostA].DhchapDhgroup);

                // Removing the host removes its settings from the file.
                using (var r = await t.Http.DeleteAsync(Api.Sub() + "/hosts/" + Uri.EscapeDataString(HostB)))
                    Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                var after = JsonSerializer.Deserialize<TargetConfig>(await File.ReadAllTextAsync(file), TargetConfig.Json)!;
                Assert.DoesNotContain(HostB, after.Subsystems[0].AllowedHosts);
                Assert.False(after.Subsystems[0].AllowedHosts.Auth.ContainsKey(HostB));
            }
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public void ConfigValidation_NamesTheHostAndTheProblem_WithoutTheSecret()
    {
        const string bad = "DHHC-1:02:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
        var json = $$"""
            { "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowedHosts": [ { "nqn": "{{HostA}}", "dhchapSecret": "{{bad}}", "dhchapHash": "md5" } ] } ] }
            """;
        var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json)!;
        var errors = ConfigValidator.Validate(config);
        Assert.Contains(errors, e => e.Contains(HostA) && e.Contains("must hold a 48-byte key"));
        Assert.Contains(errors, e => e.Contains("dhchapHash 'md5'"));
        Assert.All(errors, e => Assert.DoesNotContain(bad, e));
        var unknown = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<TargetConfig>(
            $$"""{ "subsystems": [ { "nqn": "{{ApiTarget.Nqn}}", "allowedHosts": [ { "nqn": "{{HostA}}", "secret": "x" } ] } ] }""", TargetConfig.Json));
        Assert.Contains("unknown field 'secret'", unknown.Message);
    }

    [Fact]
    public async Task Cli_HostsAddWithSecret_ListShowsOnlyThatOneIsSet_BadSecretIsAUsageError()
    {
        await using var t = await ApiTarget.StartAsync(output);
        var (code, stdout, stderr) = await Cli.RunAsync("hosts", "add", "--host", HostA, "--dhchap-secret", KeyA.Representation,
            "--dhchap-ctrl-secret", CtrlA.Representation, "--dhchap-dhgroup", "ffdhe3072", "--api", t.ApiUrl);
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        (code, stdout, stderr) = await Cli.RunAsync("hosts", "list", "--api", t.ApiUrl);
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Equal(stdout, Secretless(stdout));
        var row = stdout.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).First(c => c.Length > 0 && c[0] == HostA);
        Assert.Equal([HostA, "secret", "set", "set", "auto", "ffdhe3072"], row);
        await using (var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn,
            new NvmeTcpHostOptions { HostNqn = HostA, DhchapSecret = KeyA, DhchapCtrlSecret = CtrlA }))
            Assert.Equal(DhGroupId.Ffdhe3072, a.LastAuthentication!.Value.DhGroup);

        (code, _, stderr) = await Cli.RunAsync("hosts", "add", "--host", HostB, "--dhchap-secret", "DHHC-1:01:bm90IGEga2V5:", "--api", t.ApiUrl);
        output.WriteLine(stderr);
        Assert.Equal(2, code);
        Assert.Contains("--dhchap-secret", stderr);
        Assert.DoesNotContain("bm90IGEga2V5", stderr);

        // Rotation from the CLI.
        var newA = DhchapSecret.Generate(32, 1);
        (code, stdout, stderr) = await Cli.RunAsync("hosts", "set", "--host", HostA, "--dhchap-secret", newA.Representation, "--api", t.ApiUrl);
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.DoesNotContain(newA.Representation, stdout);
        await using (var a = await NvmeTcpHost.ConnectAsync(t.Host.Endpoints[0], ApiTarget.Nqn, new NvmeTcpHostOptions { HostNqn = HostA, DhchapSecret = newA }))
            Assert.True(a.AuthenticationRequested);
    }

    private static StringContent JsonContent(object body) =>
        new(JsonSerializer.Serialize(body, Api.Json), System.Text.Encoding.UTF8, "application/json");
}
