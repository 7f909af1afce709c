using System.Net;
using System.Text.Json;
using Integration.Tests.InProcess;
using Integration.Tests.Management;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Telemetry;

/// <summary>GET /healthz and /readyz on the read-only probe listener (and on the management socket): no token needed,
/// 200 while serving, 503 with a JSON reason when a namespace's store is closed, not ready once stopped.</summary>
public sealed class HealthEndpointTests(ITestOutputHelper output)
{
    [Fact]
    public async Task HealthzAndReadyz_Answer200_WithoutTheApiToken()
    {
        await using var t = await ApiTarget.StartAsync(output, token: "s3cret");
        var anonymous = t.Probes!; // the read-only probe listener

        using (var r = await anonymous.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
            Assert.Equal("alive", JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        }
        using (var r = await anonymous.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("ready", JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        }
        // The probe listener serves nothing else; on the management socket the probes need no token either, the API does.
        using (var r = await anonymous.GetAsync("/api/v1/subsystems")) await Api.AssertProblemAsync(r, HttpStatusCode.NotFound, "read-only probe listener");
        using var socket = ApiTarget.UnixHttp(t.Host.ApiSocketPath!, "");
        using (var r = await socket.GetAsync("/healthz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await socket.GetAsync("/api/v1/subsystems")) Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
    }

    [Fact]
    public async Task Readyz_Is503WithTheReason_WhenANamespaceStoreIsClosed()
    {
        var dir = Directory.CreateTempSubdirectory("nvmet-readyz-");
        try
        {
            var config = TestTarget.DefaultConfig();
            config.Storage = new StorageConfig { Directories = [dir.FullName] };
            config.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "file", Path = Path.Combine(dir.FullName, "ns2.img"), Size = "8M" });
            await using var t = await ApiTarget.StartAsync(output, config);
            var http = t.Probes!; // the read-only probe listener
            using (var r = await http.GetAsync("/readyz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode);

            // The store goes away under the namespace (as if its device failed and was closed).
            t.Host.Target.FindSubsystem(ApiTarget.Nqn)!.GetNamespace(2)!.Store.Dispose();

            using (var r = await http.GetAsync("/readyz"))
            {
                var body = await r.Content.ReadAsStringAsync();
                Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
                Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
                var json = JsonDocument.Parse(body).RootElement;
                Assert.Equal("not ready", json.GetProperty("status").GetString());
                var reason = json.GetProperty("reason").GetString()!;
                Assert.Contains($"namespace 2 of {ApiTarget.Nqn}", reason);
                Assert.Contains("is closed", reason);
                Assert.Single(json.GetProperty("reasons").EnumerateArray());
            }
            using (var r = await http.GetAsync("/healthz")) Assert.Equal(HttpStatusCode.OK, r.StatusCode); // alive, just not ready
        }
        finally { dir.Delete(recursive: true); }
    }

    [Fact]
    public async Task Readiness_IsFalse_OnceTheTargetStopped()
    {
        await using var t = await ApiTarget.StartAsync(output);
        Assert.True(t.Host.Readiness.Ready);
        await t.Host.StopAsync();
        var report = t.Host.Readiness;
        Assert.False(report.Ready);
        Assert.Contains(report.Reasons, r => r.StartsWith("stopped", StringComparison.Ordinal));
    }
}
