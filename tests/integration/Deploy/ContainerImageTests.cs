using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Deploy;

/// <summary>
/// The container image end to end, with a real Docker engine (started by the test when none runs, stopped again
/// afterwards): the target published self-contained on this machine, deploy/Dockerfile's runtime-prebuilt target
/// built on a debootstrap base (no registry is needed), run hardened as in the Kubernetes manifests with the
/// Deployment's ConfigMap configuration, then /readyz, NVMe/TCP I/O from the test's initiator through the
/// published port, the UID, and a clean docker stop. Fails with the reason when Docker cannot run: never skipped.
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
        var image = $"nvmet-deploy-test:{id}";
        var container = $"nvmet-deploy-test-{id}";
        var work = Directory.CreateTempSubdirectory("nvmet-deploy-");
        var context = Path.Combine(work.FullName, "context");
        await using var engine = await DockerEngine.EnsureAsync(Say);
        try
        {
            // The base (debootstrap, cached) and the self-contained publish are independent: do both at once.
            var baseImage = DebootstrapBase.EnsureAsync(Say);
            var publish = PublishAsync(Path.Combine(context, "artifacts", "publish"));
            await Task.WhenAll(baseImage, publish);

            Say($"docker build --target runtime-prebuilt on {baseImage.Result}");
            (await Cmd.RunAsync("docker", ["build", "--force-rm", "-f", Repo.Dockerfile, "--target", "runtime-prebuilt", "--build-arg", $"RUNTIME_BASE={baseImage.Result}",
                "-t", image, context], TimeSpan.FromMinutes(5))).Ensure("docker build");
            var size = long.Parse((await Cmd.Docker("image", "inspect", "--format", "{{.Size}}", image)).Ensure("docker image inspect").Out.Trim(), CultureInfo.InvariantCulture);
            Say($"image {image}: {size / 1e6:0} MB");

            // The configuration the Deployment's ConfigMap holds, read-only as a ConfigMap mount is.
            var json = Manifests.TargetJson("deployment.yaml");
            var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json)!;
            var nqn = config.Subsystems[0].Nqn;
            var ns = config.Subsystems[0].Namespaces[0];
            Assert.True(Sizes.TryParse(ns.Size!, out long nsBytes));
            var configFile = Path.Combine(work.FullName, "target.json");
            await File.WriteAllTextAsync(configFile, json);
            File.SetUnixFileMode(configFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            // As the manifests run it: read-only root, no capabilities, no privilege escalation, the image's user.
            (await Cmd.Docker("run", "-d", "--name", container, "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "-p", "127.0.0.1::4420", "-p", "127.0.0.1::8420", "-v", $"{configFile}:/etc/nvmet/target.json:ro",
                image, "--config", "/etc/nvmet/target.json")).Ensure("docker run");
            int nvmePort = await HostPortAsync(container, 4420);
            int apiPort = await HostPortAsync(container, 8420);
            Say($"container {container}: NVMe/TCP on 127.0.0.1:{nvmePort}, management API on 127.0.0.1:{apiPort}");

            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{apiPort}"), Timeout = TimeSpan.FromSeconds(10) };
            await WaitReadyAsync(http, container);
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
            Assert.Equal(nsBytes.ToString(CultureInfo.InvariantCulture),
                (await Cmd.Docker("exec", container, "stat", "-c", "%s", ns.Path!)).Ensure("docker exec stat").Out.Trim());
            var uid = (await Cmd.Docker("exec", container, "id", "-u")).Ensure("docker exec id").Out.Trim();
            Assert.NotEqual("0", uid);
            Assert.Equal("1654", uid);
            Assert.Equal("1654:1654", (await Cmd.Docker("inspect", "--format", "{{.Config.User}}", container)).Ensure("docker inspect").Out.Trim());
            // The same executable is the management client, on PATH: kubectl/docker exec ... nvme-tcp-target ns list.
            var list = (await Cmd.Docker("exec", container, "nvme-tcp-target", "ns", "list", "--api", "http://127.0.0.1:8420")).Ensure("nvme-tcp-target ns list").Out;
            Assert.Contains(ns.Path!, list);
            // PID 1 is the target itself (so it gets docker stop's SIGTERM), running as that user.
            var status = (await Cmd.Docker("exec", container, "cat", "/proc/1/status")).Ensure("docker exec cat").Out;
            Assert.Contains("Name:\tnvme-tcp-target", status);
            Assert.Matches(@"Uid:\t1654\t1654\t1654\t1654", status);

            // docker stop: SIGTERM, then SIGKILL after the 30 s grace period; exit code 0 means a clean shutdown in time.
            (await Cmd.Docker("stop", "--time", "30", container)).Ensure("docker stop");
            var exit = (await Cmd.Docker("inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", container)).Ensure("docker inspect").Out.Trim();
            var logs = await Cmd.Docker("logs", container);
            Say("container log:\n" + Cmd.Tail(logs.Out + logs.Err, 20));
            Assert.Equal("0 false", exit);
            Assert.Contains("Stopped", logs.Out + logs.Err);
        }
        catch
        {
            var logs = await Cmd.Docker("logs", container);
            if (logs.Code == 0) Say("container log:\n" + Cmd.Tail(logs.Out + logs.Err, 40));
            throw;
        }
        finally
        {
            await Cmd.Docker("rm", "-f", "-v", container);
            await Cmd.Docker("rmi", "-f", image);
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Say("removed the container, its volume and the image (the base image stays cached)");
        }
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

    private static async Task<int> HostPortAsync(string container, int port)
    {
        var mapping = (await Cmd.Docker("port", container, $"{port}/tcp")).Ensure("docker port").Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)[0].Trim();
        return int.Parse(mapping[(mapping.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
    }

    /// <summary>Polls /readyz until 200 (a generous bound, not a timing assertion); fails early when the container exits.</summary>
    private async Task WaitReadyAsync(HttpClient http, string container)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        string last = "no answer";
        while (true)
        {
            try
            {
                using var r = await http.GetAsync("/readyz");
                if (r.StatusCode == HttpStatusCode.OK) { Say("/readyz: 200"); return; }
                last = $"{(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}";
            }
            catch (HttpRequestException e) { last = e.Message; }
            catch (TaskCanceledException e) { last = e.Message; }
            var state = (await Cmd.Docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", container)).Out.Trim();
            if (state.StartsWith("false", StringComparison.Ordinal)) Assert.Fail($"the container exited ({state}) before /readyz answered 200");
            if (DateTime.UtcNow > deadline) Assert.Fail($"/readyz did not answer 200 within 90 s; last: {last}");
            await Task.Delay(250);
        }
    }
}
