using System.Collections;
using Target.Configuration;

namespace Integration.Tests.Deploy;

/// <summary>deploy/Dockerfile read as text: the stages and their order (the legacy builder builds every stage
/// before the target one), the runtime settings, and the image's default options through the target's parser.</summary>
public sealed class DockerfileTests
{
    private static readonly DockerfileModel Dockerfile = DockerfileModel.Load(Repo.Dockerfile);

    [Fact]
    public void Stages_SdkBuildByDefault_PrebuiltWithoutTheSdk()
    {
        Assert.Equal(["runtime-base", "runtime-prebuilt", "build", "runtime"], Dockerfile.Stages);
        // The default target (the last stage) builds in the SDK image and copies the publish output.
        Assert.Contains(Dockerfile.Instructions, i => i.Stage == "build" && i.Keyword == "FROM" && i.Arguments.StartsWith("${SDK_IMAGE}", StringComparison.Ordinal));
        var publish = Assert.Single(Dockerfile.Instructions, i => i.Stage == "build" && i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish", StringComparison.Ordinal));
        Assert.Contains("src/Target", publish.Arguments);
        Assert.Contains("-c Release", publish.Arguments);
        Assert.Contains("--self-contained", publish.Arguments);
        Assert.Contains(Dockerfile.Instructions, i => i.Stage == "runtime" && i.Keyword == "COPY" && i.Arguments.Contains("--from=build", StringComparison.Ordinal));
        // runtime-prebuilt needs nothing but RUNTIME_BASE and the context: no stage of it pulls the SDK.
        Assert.DoesNotContain("build", Dockerfile.Lineage("runtime-prebuilt"));
        Assert.Contains(Dockerfile.Instructions, i => i.Stage == "runtime-prebuilt" && i.Keyword == "COPY" && i.Arguments.Contains("${PUBLISH_DIR}", StringComparison.Ordinal));
        Assert.Equal("mcr.microsoft.com/dotnet/runtime-deps:10.0", Dockerfile.GlobalArgs["RUNTIME_BASE"]);
        Assert.Contains(Dockerfile.Instructions, i => i.Stage == "runtime-base" && i.Keyword == "FROM" && i.Arguments.StartsWith("${RUNTIME_BASE}", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("runtime")]
    [InlineData("runtime-prebuilt")]
    public void RuntimeStage_NonRootPortsVolumeEntrypoint(string stage)
    {
        var ins = Dockerfile.For(stage).ToList();
        var user = ins.Last(i => i.Keyword == "USER").Arguments;
        var args = Dockerfile.StageArgs(stage);
        var resolved = user.Replace("${APP_UID}", args["APP_UID"], StringComparison.Ordinal);
        Assert.Matches(@"^[0-9]+(:[0-9]+)?$", resolved);
        Assert.NotEqual("0", resolved.Split(':')[0]);

        var exposed = ins.Where(i => i.Keyword == "EXPOSE").SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Contains("4420/tcp", exposed);
        Assert.Contains("8420/tcp", exposed);
        Assert.Contains(ins, i => i.Keyword == "VOLUME" && i.Arguments.Contains("/var/lib/nvmet", StringComparison.Ordinal));
        // Exec form: the target is PID 1 and receives docker stop's SIGTERM itself.
        Assert.Equal("[\"/app/nvme-tcp-target\"]", ins.Last(i => i.Keyword == "ENTRYPOINT").Arguments);

        // The image's defaults, as the target parses them: NVMe/TCP and the management API on every address.
        var env = new Hashtable();
        foreach (var (k, v) in Dockerfile.Env(stage)) env[k] = v;
        var cl = CommandLine.Parse([], env);
        Assert.Empty(cl.Errors);
        var port = Assert.Single(cl.Config.Ports);
        Assert.Equal(("0.0.0.0", 4420), (port.Address, port.Port));
        Assert.NotNull(cl.Api);
        Assert.Equal(("0.0.0.0", ApiConfig.DefaultPort), (cl.Api.Address, cl.Api.Port));
    }

    [Fact]
    public void DockerIgnore_SendsOnlyWhatTheBuildNeeds()
    {
        var lines = File.ReadAllLines(Path.Combine(Repo.Root, ".dockerignore")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        Assert.Equal("*", lines[0]);
        foreach (var needed in new[] { "!src/", "!Directory.Build.props", "!Directory.Packages.props", "!artifacts/publish/" })
            Assert.Contains(needed, lines);
        Assert.Contains("**/bin/", lines);
        Assert.Contains("**/obj/", lines);
    }
}
