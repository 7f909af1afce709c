using Target.Configuration;
namespace Integration.Tests.Deploy;

/// <summary>deploy/Dockerfile read as text: the stages and their order (the legacy builder builds every stage
/// before the target one), the runtime settings, the image's default options (management on the socket, probes on
/// the read-only listener) and the socket's directory.</summary>
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

        // NVMe/TCP and the read-only probes listener; there is no management port.
        var exposed = ins.Where(i => i.Keyword == "EXPOSE").SelectMany(i => i.Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Equal([$"{Deployed.NvmePort}/tcp", $"{Deployed.ProbesPort}/tcp"], exposed.Order(StringComparer.Ordinal));
        Assert.Contains(ins, i => i.Keyword == "VOLUME" && i.Arguments.Contains(Deployed.DataDir, StringComparison.Ordinal));
        // Exec form: the target is PID 1 and receives docker stop's SIGTERM itself.
        Assert.Equal("[\"/app/nvme-tcp-target\"]", ins.Last(i => i.Keyword == "ENTRYPOINT").Arguments);
    }

    /// <summary>The image's defaults: NVMe/TCP and the read-only probes listener on every container address, the
    /// management API only on a Unix socket (and the client pointed at it), file namespaces only in the data volume,
    /// and no token baked in.</summary>
    [Theory]
    [InlineData("runtime")]
    [InlineData("runtime-prebuilt")]
    public void RuntimeStage_ManagementOnTheSocketOnly_ProbesOnTheReadOnlyListener(string stage)
    {
        var env = Dockerfile.Env(stage);
        Assert.Equal($"0.0.0.0:{Deployed.NvmePort}", env.GetValueOrDefault("NVMET_LISTEN"));
        Assert.Equal(Deployed.Api, env.GetValueOrDefault("NVMET_API"));
        Assert.True(Deployed.IsOffTheNetwork(env["NVMET_API"]));
        Assert.Equal(Deployed.Api, env.GetValueOrDefault("NVMET_API_URL"));            // docker exec ... nvme-tcp-target ns list
        Assert.Equal($"0.0.0.0:{Deployed.ProbesPort}", env.GetValueOrDefault("NVMET_PROBES"));
        Assert.Equal(Deployed.DataDir, env.GetValueOrDefault("NVMET_STORAGE_DIRS"));
        // A secret never belongs in an image, and a token file the image named would have to exist for it to start.
        Assert.DoesNotContain(env.Keys, k => k.Contains("TOKEN", StringComparison.Ordinal));
        Assert.DoesNotContain(Dockerfile.For(stage), i => i.Keyword == "ARG" && i.Arguments.Contains("TOKEN", StringComparison.OrdinalIgnoreCase));

        // What the target makes of that environment: without --allow-host the default subsystem, which listens on
        // every address of the container, would admit any host, so `docker run IMAGE` alone refuses to start;
        // with the hosts named it starts with the socket and the read-only probes.
        var hashed = new System.Collections.Hashtable(env);
        Assert.Contains(CommandLine.Parse([], hashed).Errors, e => e.StartsWith("the default subsystem would admit every host", StringComparison.Ordinal));
        var cl = CommandLine.Parse(["--allow-host", "nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-000000000001"], hashed);
        Assert.Empty(cl.Errors);
        Assert.Equal(Deployed.Api, "unix:" + cl.Api!.Socket);
        Assert.Equal(Deployed.ProbesPort, cl.Probes!.Port);
    }

    /// <summary>The socket's directory exists in the image, owned by the target's UID with mode 0700, so that the
    /// target can create its socket there and no other UID can reach it.</summary>
    [Fact]
    public void RuntimeBase_CreatesTheSocketDirectory_OwnedByTheAppUid_Mode0700()
    {
        var run = Assert.Single(Dockerfile.Instructions, i => i.Stage == "runtime-base" && i.Keyword == "RUN" && i.Arguments.Contains(Deployed.SocketDir, StringComparison.Ordinal));
        var commands = run.Arguments.Split("&&", StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToList();
        Assert.Contains(commands, c => c[0] == "mkdir" && c.Contains("-p") && c.Contains(Deployed.SocketDir) && c.Contains(Deployed.DataDir));
        Assert.Contains(commands, c => c[0] == "chown" && c.Contains("${APP_UID}:${APP_UID}") && c.Contains(Deployed.SocketDir));
        Assert.Contains(commands, c => c[0] == "chmod" && c[1] == "0700" && c.Skip(2).SequenceEqual([Deployed.SocketDir]));
        Assert.DoesNotContain(commands, c => c[0] == "chmod" && c.Contains(Deployed.SocketDir) && c[1] != "0700");
    }

    /// <summary>RBD namespaces load librbd and librados through P/Invoke: Debian's librbd1 (which pulls librados2) is
    /// installed in the runtime base that both runtime targets build on, as root (before USER), without recommended
    /// packages, and the package lists are removed in the same layer.</summary>
    [Theory]
    [InlineData("runtime")]
    [InlineData("runtime-prebuilt")]
    public void RuntimeStage_InstallsLibrbd1_WithoutRecommends_AndWithoutPackageLists(string stage)
    {
        var ins = Dockerfile.For(stage).ToList();
        var install = Assert.Single(ins, i => i.Keyword == "RUN" && i.Arguments.Contains("apt-get install", StringComparison.Ordinal));
        Assert.Equal("runtime-base", install.Stage);
        var commands = install.Arguments.Split("&&", StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipWhile(w => w.Contains('=')).ToArray()).ToList();
        int update = commands.FindIndex(c => c is ["apt-get", "update", ..]);
        int get = commands.FindIndex(c => c is ["apt-get", "install", ..]);
        int clean = commands.FindIndex(c => c is ["rm", "-rf", ..] && c.Contains("/var/lib/apt/lists/*"));
        Assert.True(update >= 0 && update < get, $"apt-get update must come first in the same RUN: {install.Arguments}");
        Assert.True(clean > get, $"the package lists must be removed after the install, in the same layer: {install.Arguments}");
        var packages = commands[get].Skip(2).Where(w => !w.StartsWith('-')).ToList();
        Assert.Equal(["librbd1"], packages);
        Assert.Contains("-y", commands[get]);
        Assert.Contains("--no-install-recommends", commands[get]);
        // As root: the RUN comes before the image switches to the app user.
        Assert.True(ins.IndexOf(install) < ins.FindIndex(i => i.Keyword == "USER"), "librbd1 must be installed before USER");
        // Only the runtime base installs packages: the build stage has the SDK image's own.
        Assert.DoesNotContain(Dockerfile.Instructions, i => i.Stage != "runtime-base" && i.Keyword == "RUN" && i.Arguments.Contains("apt-get", StringComparison.Ordinal));
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
