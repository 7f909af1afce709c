using System.Net;
using Integration.Tests.InProcess;
using Integration.Tests.Telemetry;
using Nvme.Core.Model;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>The total limit on memory namespaces: adding, creating or growing past it is refused with the
/// numbers (400), shrinking and what fits are fine, and /metrics shows the sum and the limit.</summary>
public sealed class MemoryNamespaceLimitTests(ITestOutputHelper output)
{
    [Fact]
    public async Task HotAdd_CreateAndGrow_PastTheLimit_AreRefused()
    {
        var config = TestTarget.DefaultConfig(); // one 64 MiB memory namespace
        config.Limits.MemoryNamespaces = "100M";
        await using var t = await ApiTarget.StartAsync(output, config);
        var ns = Api.Sub() + "/namespaces";
        const string how = "(limits.memoryNamespaces or --memory-namespaces SIZE; default 3/4 of the available memory); " +
            "use a file namespace, remove or shrink a memory namespace, or raise the limit";

        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "memory", size = "64M" }, HttpStatusCode.BadRequest,
            "memory namespaces would take 128 MiB of RAM together (64 MiB already), more than the limit of 100 MiB " + how);
        await t.Http.PostJsonAsync(ns, new { nsid = 2, backend = "memory", size = "32M" }, HttpStatusCode.Created); // 96 MiB: fits
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { size = "48M" }, HttpStatusCode.BadRequest,
            "memory namespaces would take 112 MiB of RAM together (96 MiB already), more than the limit of 100 MiB");
        await t.Http.ProblemAsync(HttpMethod.Post, "subsystems",
            new { nqn = "nqn.2026-01.io.example:more", allowAnyHost = true, namespaces = new[] { new { nsid = 1, backend = "memory", size = "8M" } } },
            HttpStatusCode.BadRequest, "more than the limit of 100 MiB");
        Assert.Null(t.Host.Target.FindSubsystem("nqn.2026-01.io.example:more"));
        await t.Http.PostJsonAsync(ns + "/2/resize", new { size = "36M" }, HttpStatusCode.OK); // 100 MiB: exactly the limit
        await t.Http.PostJsonAsync(ns + "/2/resize", new { size = "16M", force = true }, HttpStatusCode.OK); // shrinking is always fine
        Assert.Equal((64L + 16) << 20, t.Host.Target.MemoryNamespaceBytes);
        // A zero size is named as such, not "not a size".
        await t.Http.ProblemAsync(HttpMethod.Post, ns, new { backend = "memory", size = "0" }, HttpStatusCode.BadRequest, "size must be greater than zero");
        await t.Http.ProblemAsync(HttpMethod.Post, ns + "/2/resize", new { size = "0M", force = true }, HttpStatusCode.BadRequest, "size must be greater than zero");

        var http = t.Probes!;
        var metrics = PrometheusText.Parse(await http.GetStringAsync("/metrics"));
        Assert.Equal("gauge", metrics.Types["nvmet_memory_namespaces_bytes"]);
        Assert.Equal("gauge", metrics.Types["nvmet_memory_namespaces_limit_bytes"]);
        Assert.Equal((64L + 16) << 20, metrics.Value("nvmet_memory_namespaces_bytes"));
        Assert.Equal(100L << 20, metrics.Value("nvmet_memory_namespaces_limit_bytes"));
    }

    [Fact]
    public void Default_IsThreeQuartersOfTheAvailableMemory_AndZeroAllowsNone()
    {
        Assert.Equal(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 4 * 3, new TargetLimits().MemoryNamespaceLimit);
        var cl = CommandLine.Parse(["--memory-namespaces", "0", "--namespace", "memory:1M"], new Dictionary<string, string>());
        Assert.Contains("memory namespaces would take 1 MiB of RAM together, more than the limit of 0 bytes", Assert.Single(ConfigValidator.Validate(cl.Config)));
        Assert.Equal("2G", CommandLine.Parse([], new Dictionary<string, string> { ["NVMET_MEMORY_NAMESPACES"] = "2G" }).Config.Limits.MemoryNamespaces);
    }
}
