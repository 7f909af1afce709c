using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using DotNet.Testcontainers.Builders;
using DotNet.Testcontainers.Configurations;
using DotNet.Testcontainers.Containers;
using DotNet.Testcontainers.Images;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Deploy;

/// <summary>
/// The container image end to end, with a real Docker engine (started by the test when none runs, stopped again
/// afterwards) driven through Testcontainers: the target published self-contained on this machine,
/// deploy/Dockerfile's runtime-prebuilt target built on a debootstrap base (ImageFromDockerfileBuilder; no registry
/// is needed), run hardened as in the Kubernetes manifests with the Deployment's ConfigMap configuration and its
/// ports published on 127.0.0.1 only, then /readyz, NVMe/TCP I/O from the test's initiator through the published
/// port, the UID, and a clean stop. The container and the image are removed on every exit path (there is no
/// resource reaper here). Fails with the reason when Docker cannot run: never skipped.
/// </summary>
public sealed class ContainerImageTests(ITestOutputHelper output)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Say(string line)
    {
        try { output.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:0.0}s] {line}"); }
        catch (InvalidOperationException) { /* test finished */ }
    }

    [Fact]
    public async Task Image_ServesNvmeTcpAsNonRoot_AndStopsCleanly()
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var work = Directory.CreateTempSubdirectory("nvmet-deploy-");
        var context = Path.Combine(work.FullName, "context");
        var logger = TestDocker.Logger(Say);
        await using var engine = await TestDocker.StartAsync(Say);
        IFutureDockerImage? image = null;
        IContainer? container = null;
        bool passed = false;
        try
        {
            // The base (debootstrap, cached) and the self-contained publish are independent: do both at once.
            var baseImage = DebootstrapBase.EnsureAsync(Say);
            var publish = PublishAsync(Path.Combine(context, "artifacts", "publish"));
            await Task.WhenAll(baseImage, publish);

            Say($"building deploy/Dockerfile --target runtime-prebuilt on {baseImage.Result}");
            image = new ImageFromDockerfileBuilder()
                .WithName($"nvmet-deploy-test:{id}")
                .WithDockerfileDirectory(Repo.DeployDir)
                .WithDockerfile("Dockerfile")
                .WithContextDirectory(context)
                .WithTarget("runtime-prebuilt")
                .WithBuildArgument("RUNTIME_BASE", baseImage.Result)
                // Testcontainers pulls the image of every FROM it does not have, whatever the target: SDK_IMAGE
                // (the build stage, which runtime-prebuilt never reaches) would be pulled from a registry. Naming
                // the local base there keeps the build offline; the legacy builder stops at runtime-prebuilt.
                .WithBuildArgument("SDK_IMAGE", baseImage.Result)
                .WithCreateParameterModifier(p => p.ForceRemove = true) // no intermediate container left by a failed step
                .WithLogger(logger)
                .Build();
            await image.CreateAsync();

            // The configuration the Deployment's ConfigMap holds, read-only as a ConfigMap mount is.
            var json = Manifests.TargetJson("deployment.yaml");
            var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json)!;
            var nqn = config.Subsystems[0].Nqn;
            var ns = config.Subsystems[0].Namespaces[0];
            Assert.True(Sizes.TryParse(ns.Size!, out long nsBytes));
            var configFile = Path.Combine(work.FullName, "target.json");
            await File.WriteAllTextAsync(configFile, json);
            File.SetUnixFileMode(configFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            // As the manifests run it: read-only root, no capabilities, no privilege escalation, the image's user;
            // published on 127.0.0.1 only.
            container = new ContainerBuilder(image)
                .WithName($"nvmet-deploy-test-{id}")
                .WithPortBinding(NvmePort, assignRandomHostPort: true)
                .WithPortBinding(ApiPort, assignRandomHostPort: true)
                .WithBindMount(configFile, "/etc/nvmet/target.json", AccessMode.ReadOnly)
                .WithCommand("--config", "/etc/nvmet/target.json")
                .WithCreateParameterModifier(p =>
                {
                    TestDocker.BindPublishedPortsToLoopback(p);
                    var hostConfig = p.HostConfig ?? throw new InvalidOperationException("Testcontainers passed no HostConfig");
                    hostConfig.ReadonlyRootfs = true;
                    hostConfig.CapDrop = ["ALL"];
                    hostConfig.SecurityOpt = ["no-new-privileges"];
                    // docker stop: SIGTERM, then SIGKILL after 30 s (Docker's default is 10 s, as long as the target's grace).
                    p.StopTimeout = TimeSpan.FromSeconds(30);
                })
                // Started = /readyz answers 200 on the published port (a generous bound, not a timing assertion);
                // Testcontainers fails at once, with the container's log, should the container exit first.
                .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(
                    r => r.ForPort(ApiPort).ForPath("/readyz").ForStatusCode(HttpStatusCode.OK), w => w.WithTimeout(TimeSpan.FromSeconds(90))))
                .WithLogger(logger)
                .Build();
            await container.StartAsync();
            Assert.Equal(TestDocker.Loopback, container.Hostname);
            int nvmePort = container.GetMappedPublicPort(NvmePort);
            int apiPort = container.GetMappedPublicPort(ApiPort);
            Say($"container {container.Name}: /readyz 200; NVMe/TCP on 127.0.0.1:{nvmePort}, management API on 127.0.0.1:{apiPort}");

            using var http = new HttpClient { BaseAddress = new Uri($"http://{TestDocker.Loopback}:{apiPort}"), Timeout = TimeSpan.FromSeconds(10) };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
            var subsystems = await http.GetStringAsync("/api/v1/subsystems");
            Assert.Contains(nqn, subsystems);

            // NVMe/TCP through the published port: identify the namespace, write a block, read it back.
            await using (var host = await NvmeTcpHost.ConnectAsync(new IPEndPoint(IPAddress.Loopback, nvmePort), nqn))
            {
                await host.CreateIoQueuesAsync(1);
                var idns = await host.IdentifyAsync(IdentifyCns.Namespace, ns.Nsid);
                Assert.Equal((ulong)(nsBytes / ns.BlockSize), BinaryPrimitives.ReadUInt64LittleEndian(idns));
                var data = new byte[ns.BlockSize * 4];
                new Random(4420).NextBytes(data);
                (await host.WriteAsync(0, ns.Nsid, 100, data, ns.BlockSize)).EnsureSuccess("write");
                (await host.FlushAsync(0, ns.Nsid)).EnsureSuccess("flush");
                var back = new byte[data.Length];
                (await host.ReadAsync(0, ns.Nsid, 100, back, ns.BlockSize)).EnsureSuccess("read");
                Assert.Equal(data, back);
                Say($"wrote and read back {data.Length} bytes at LBA 100 of {nqn} namespace {ns.Nsid}");
            }

            // The backing file is in the image's volume, created sparse with the configured size, by a non-root process.
            Assert.Equal(nsBytes.ToString(CultureInfo.InvariantCulture), (await ExecAsync(container, "stat", "-c", "%s", ns.Path!)).Trim());
            Assert.Equal("1654", (await ExecAsync(container, "id", "-u")).Trim());
            // The same executable is the management client, on PATH: kubectl/docker exec ... nvme-tcp-target ns list.
            var list = await ExecAsync(container, "nvme-tcp-target", "ns", "list", "--api", "http://127.0.0.1:8420");
            Assert.Contains(ns.Path!, list);
            // PID 1 is the target itself (so it gets docker stop's SIGTERM), running as that user.
            var status = await ExecAsync(container, "cat", "/proc/1/status");
            Assert.Contains("Name:\tnvme-tcp-target", status);
            Assert.Matches(@"Uid:\t1654\t1654\t1654\t1654", status);

            // docker stop: SIGTERM, then SIGKILL after the 30 s stop timeout; exit code 0 means a clean shutdown in time.
            await container.StopAsync();
            var exit = await container.GetExitCodeAsync();
            var log = await LogAsync(container);
            Say("container log:\n" + Cmd.Tail(log, 20));
            Assert.Equal(0, exit);
            Assert.Contains("Stopped", log);
            passed = true;
        }
        catch when (container != null)
        {
            Say("container log:\n" + Cmd.Tail(await LogAsync(container), 40));
            throw;
        }
        finally
        {
            // Each step on its own, so that one failing does not leave the others' resources behind.
            var errors = new List<Exception>();
            async Task Step(string what, Func<Task> action)
            {
                try { await action(); }
                catch (Exception e) { errors.Add(e); Say($"cleanup: {what} failed: {e.Message}"); }
            }
            // Disposing a container removes it with its anonymous volumes (Testcontainers: force, RemoveVolumes).
            if (container != null) await Step("removing the container", async () => await container.DisposeAsync());
            // Without the resource reaper nothing else deletes the image: DeleteAsync, then dispose.
            if (image != null) await Step("deleting the image", async () => { await image.DeleteAsync(); await image.DisposeAsync(); });
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Say("removed the container, its volume and the image (the base image stays cached)");
            if (passed && errors.Count > 0) throw new AggregateException("cleaning up after the container test failed", errors);
        }
    }

    private const int NvmePort = 4420;
    private const int ApiPort = 8420;

    /// <summary>Runs a command in the container (docker exec) and returns its standard output; fails on a non-zero exit.</summary>
    private static async Task<string> ExecAsync(IContainer container, params string[] command)
    {
        var r = await container.ExecAsync(command);
        Assert.True(r.ExitCode == 0, $"{string.Join(' ', command)} in the container exited with {r.ExitCode}:\n{r.Stderr}\n{r.Stdout}");
        return r.Stdout;
    }

    private static async Task<string> LogAsync(IContainer container)
    {
        try
        {
            var (stdout, stderr) = await container.GetLogsAsync(timestampsEnabled: false);
            return stdout + stderr;
        }
        catch (Exception e) when (e is not OutOfMemoryException) { return $"(no container log: {e.Message})"; }
    }

    /// <summary>dotnet publish, self-contained for linux-x64, with its own obj/bin under artifacts/deploy-tests so that
    /// it neither disturbs nor waits for builds of the solution running at the same time.</summary>
    private async Task PublishAsync(string output)
    {
        Say("dotnet publish src/Target -c Release -r linux-x64 --self-contained");
        var sw = Stopwatch.StartNew();
        (await Cmd.RunAsync("dotnet", ["publish", Path.Combine(Repo.Root, "src", "Target", "Target.csproj"), "-c", "Release", "-r", "linux-x64", "--self-contained",
            "-p:DebugType=none", "--artifacts-path", Path.Combine(Repo.Root, "artifacts", "deploy-tests"), "-o", output, "--disable-build-servers", "-nologo"],
            TimeSpan.FromMinutes(10), psi =>
            {
                // Not the test host's MSBuild/VSTest settings: a plain command-line publish.
                foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
                    psi.Environment.Remove(key);
            })).Ensure("dotnet publish");
        Assert.True(File.Exists(Path.Combine(output, "nvme-tcp-target")), "the publish output has no nvme-tcp-target executable");
        Say($"published in {sw.Elapsed.TotalSeconds:0} s");
    }
}
