using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
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
/// is needed), run as the Deployment runs it — its environment, read-only root, no capabilities, the token as a
/// read-only file, the management socket's directory a tmpfs — with the Deployment's configuration whose allowed
/// hosts are the test initiator, and its ports published on 127.0.0.1 only. Then: /readyz on the probes port,
/// NVMe/TCP I/O for the allowed host and a refusal for another, the probes port refusing management, only the two
/// ports listening, the management socket (0600, the app UID) serving the client with the token and refusing it
/// without, the UID and PID 1, and a clean stop. The container and the image are removed on every exit path (there
/// is no resource reaper here). A second test starts the image with an rbd: namespace on an unreachable Ceph cluster:
/// librbd loads, and the start fails with the target's own message. Fails with the reason when Docker cannot run:
/// never skipped.
/// </summary>
public sealed class ContainerImageTests(ITestOutputHelper output)
{
    private const int AppUid = 1654;
    /// <summary>The host NQN of the test initiator: the only host the generated configuration allows.</summary>
    private const string AllowedHost = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11";
    private const string OtherHost = "nqn.2014-08.org.nvmexpress:uuid:0e5f2a61-3b9c-4d7e-8f10-2a3b4c5d6e7f";
    /// <summary>Where the test mounts the configuration, read-only as a ConfigMap mount is.</summary>
    private const string ConfigPath = "/etc/nvmet/target.json";

    private readonly Stopwatch _clock = Stopwatch.StartNew();

    private void Say(string line)
    {
        try { output.WriteLine($"[{_clock.Elapsed.TotalSeconds,6:0.0}s] {line}"); }
        catch (InvalidOperationException) { /* test finished */ }
    }

    [Fact]
    public async Task Image_RunsHardened_ServesAllowedHostsOnly_ManagementOnlyOnTheSocket_AndStopsCleanly()
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var work = Directory.CreateTempSubdirectory("nvmet-deploy-"); // 0700: nobody else on the machine reads the token below
        var context = Path.Combine(work.FullName, "context");
        var logger = TestDocker.Logger(Say);
        await using var engine = await TestDocker.StartAsync(Say);
        IFutureDockerImage? image = null;
        IContainer? container = null;
        bool passed = false;
        try
        {
            image = await BuildImageAsync(id, context, logger);

            // The Deployment's configuration, its placeholder host replaced by the test initiator's host NQN.
            var deployment = Manifests.Load("deployment.yaml").Single(o => o.Kind == "Deployment");
            var manifest = Manifests.TargetContainer(deployment.PodSpec);
            var json = AllowOnly(Manifests.TargetJson("deployment.yaml"), AllowedHost);
            var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json)!;
            var nqn = config.Subsystems[0].Nqn;
            var ns = config.Subsystems[0].Namespaces[0];
            Assert.True(Sizes.TryParse(ns.Size!, out long nsBytes));
            var configFile = Path.Combine(work.FullName, "target.json");
            await File.WriteAllTextAsync(configFile, json);
            File.SetUnixFileMode(configFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            // The token, as the secret volume provides it. World-readable so that the container's UID can read the
            // bind-mounted file; the directory it is in (0700) keeps other users of this machine out.
            var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
            var tokenFile = Path.Combine(work.FullName, "api-token");
            await File.WriteAllTextAsync(tokenFile, token + "\n");
            File.SetUnixFileMode(tokenFile, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            // The Deployment's environment, as the kubelet gives it (the Pod IP: the address the test reaches it on).
            var env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var e in manifest["env"].Items)
                env[e["name"].S] = e["value"].Exists ? e["value"].S : TestDocker.Loopback;
            Assert.Equal(Deployed.Api, env["NVMET_API"]);
            Assert.Equal(Deployed.TokenFile, env["NVMET_API_TOKEN_FILE"]);

            // As the Deployment runs it: read-only root, no capabilities, no privilege escalation, the image's user,
            // the token file read-only, the socket's directory a tmpfs owned by the app UID (an in-memory emptyDir
            // there); published on 127.0.0.1 only.
            container = new ContainerBuilder(image)
                .WithName($"nvmet-deploy-test-{id}")
                .WithEnvironment(env)
                .WithPortBinding(Deployed.NvmePort, assignRandomHostPort: true)
                .WithPortBinding(Deployed.ProbesPort, assignRandomHostPort: true)
                .WithBindMount(configFile, ConfigPath, AccessMode.ReadOnly)
                .WithBindMount(tokenFile, Deployed.TokenFile, AccessMode.ReadOnly)
                .WithCommand("--config", ConfigPath)
                .WithCreateParameterModifier(p =>
                {
                    TestDocker.BindPublishedPortsToLoopback(p);
                    var hostConfig = p.HostConfig ?? throw new InvalidOperationException("Testcontainers passed no HostConfig");
                    hostConfig.ReadonlyRootfs = true;
                    hostConfig.CapDrop = ["ALL"];
                    hostConfig.SecurityOpt = ["no-new-privileges"];
                    hostConfig.Tmpfs = new Dictionary<string, string> { [Deployed.SocketDir] = $"uid={AppUid},gid={AppUid},mode=0700,size=1m" };
                    // docker stop: SIGTERM, then SIGKILL after 30 s (the Pod's terminationGracePeriodSeconds).
                    p.StopTimeout = TimeSpan.FromSeconds(30);
                })
                // Started = /readyz answers 200 on the published probes port (a generous bound, not a timing
                // assertion); Testcontainers fails at once, with the container's log, should the container exit first.
                .WithWaitStrategy(Wait.ForUnixContainer().UntilHttpRequestIsSucceeded(
                    r => r.ForPort(Deployed.ProbesPort).ForPath("/readyz").ForStatusCode(HttpStatusCode.OK), w => w.WithTimeout(TimeSpan.FromSeconds(90))))
                .WithLogger(logger)
                .Build();
            await container.StartAsync();
            Assert.Equal(TestDocker.Loopback, container.Hostname);
            int nvmePort = container.GetMappedPublicPort(Deployed.NvmePort);
            int probesPort = container.GetMappedPublicPort(Deployed.ProbesPort);
            Say($"container {container.Name}: /readyz 200; NVMe/TCP on 127.0.0.1:{nvmePort}, probes on 127.0.0.1:{probesPort}");

            // The probes port: the three read-only endpoints, and no management at all (no token helps there).
            using var http = new HttpClient { BaseAddress = new Uri($"http://{TestDocker.Loopback}:{probesPort}"), Timeout = TimeSpan.FromSeconds(10) };
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);
            using (var metrics = await http.GetAsync("/metrics"))
            {
                Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
                Assert.Contains("nvmet_namespace_size_bytes", await metrics.Content.ReadAsStringAsync());
            }
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/v1/subsystems")).StatusCode);
            using (var get = new HttpRequestMessage(HttpMethod.Get, "/api/v1/subsystems"))
            {
                get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                Assert.Equal(HttpStatusCode.NotFound, (await http.SendAsync(get)).StatusCode);
            }
            using (var post = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/subsystems/{nqn}/namespaces"))
            {
                post.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                post.Content = new StringContent("""{"backend":"memory","size":"1M"}""", Encoding.UTF8, "application/json");
                var status = (await http.SendAsync(post)).StatusCode;
                Assert.True(status is HttpStatusCode.NotFound or HttpStatusCode.MethodNotAllowed, $"POST on the probes port answered {(int)status}");
            }
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/openapi/v1.json")).StatusCode);

            // Nothing else listens on TCP inside the container: NVMe/TCP and the probes port, no management port.
            var listening = ListeningPorts(await ExecAsync(container, "cat", "/proc/net/tcp", "/proc/net/tcp6"));
            Assert.Equal([Deployed.NvmePort, Deployed.ProbesPort], listening.Order());

            // NVMe/TCP through the published port, for the allowed host: identify the namespace, write, read back.
            var endpoint = new IPEndPoint(IPAddress.Loopback, nvmePort);
            await using (var host = await NvmeTcpHost.ConnectAsync(endpoint, nqn, new NvmeTcpHostOptions { HostNqn = AllowedHost }))
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
                Say($"wrote and read back {data.Length} bytes at LBA 100 of {nqn} namespace {ns.Nsid} as {AllowedHost}");
            }
            // Fail-closed: a host the configuration does not name is refused (Connect Invalid Host, DNR).
            await using (var q = await HostQueue.OpenAsync(endpoint))
            {
                var c = await q.ConnectAsync(nqn, OtherHost, Guid.NewGuid(), 0, 31, 0xFFFF, 5000);
                Assert.Equal(0x4184, c.Status);
            }

            // The management socket: in the tmpfs, a socket owned by the app UID, mode 0600, in a 0700 directory.
            var socketPath = Deployed.Api["unix:".Length..];
            Assert.Equal($"socket 600 {AppUid}:{AppUid}", (await ExecAsync(container, "stat", "-c", "%F %a %u:%g", socketPath)).Trim());
            Assert.Equal($"700 {AppUid}:{AppUid}", (await ExecAsync(container, "stat", "-c", "%a %u:%g", Deployed.SocketDir)).Trim());
            // The client with the token file (docker exec / kubectl exec), explicitly...
            var subsystems = await ExecAsync(container, "/app/nvme-tcp-target", "subsys", "list", "--api", Deployed.Api, "--token-file", Deployed.TokenFile);
            Assert.Contains(nqn, subsystems);
            // ... and with the image's and the Deployment's environment alone (NVMET_API_URL, NVMET_API_TOKEN_FILE).
            var list = await ExecAsync(container, "nvme-tcp-target", "ns", "list");
            Assert.Contains(ns.Path!, list);
            // Without the token the socket refuses (exit code 1: the target refused), even to the target's own UID.
            var refused = await container.ExecAsync(["env", "-u", "NVMET_API_TOKEN_FILE", "-u", "NVMET_API_TOKEN", "/app/nvme-tcp-target", "subsys", "list", "--api", Deployed.Api]);
            Assert.True(refused.ExitCode == 1, $"subsys list without the token exited {refused.ExitCode}:\n{refused.Stderr}\n{refused.Stdout}");
            Assert.DoesNotContain(nqn, refused.Stdout);

            // The backing file is in the image's volume, created sparse with the configured size, by a non-root process.
            Assert.Equal(nsBytes.ToString(CultureInfo.InvariantCulture), (await ExecAsync(container, "stat", "-c", "%s", ns.Path!)).Trim());
            Assert.Equal(AppUid.ToString(CultureInfo.InvariantCulture), (await ExecAsync(container, "id", "-u")).Trim());
            // PID 1 is the target itself (so it gets docker stop's SIGTERM), running as that user.
            var status1 = await ExecAsync(container, "cat", "/proc/1/status");
            Assert.Contains("Name:\tnvme-tcp-target", status1);
            Assert.Matches($@"Uid:\t{AppUid}\t{AppUid}\t{AppUid}\t{AppUid}", status1);

            // docker stop: SIGTERM, then SIGKILL after the 30 s stop timeout; exit code 0 means a clean shutdown in time.
            await container.StopAsync();
            var exit = await container.GetExitCodeAsync();
            var log = await LogAsync(container);
            Say("container log:\n" + Cmd.Tail(log, 25));
            Assert.Equal(0, exit);
            Assert.Contains("Stopped", log);
            Assert.DoesNotContain(token, log); // the token is never logged
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

    /// <summary>
    /// librbd loads in the image: the target started as the gateways start (an rbd: namespace, $CEPH_CONF naming the
    /// cluster), with no network at all (--network none) and a ceph.conf whose only monitor is 127.0.0.1:1 inside the
    /// container, where nothing listens, fails with its own "unreachable" message after librados gave up waiting for a
    /// monitor (the connect timeout, 10 s) — not with "apt-get install librbd1", which is what it says when librados
    /// or librbd cannot be loaded — and exits non-zero (2: the namespace cannot be opened, a configuration error).
    /// Then as deploy/kubernetes/gateways.yaml runs it: the StatefulSet's init script renders gateway 0's configuration
    /// in the image, and the target started from it with the StatefulSet's args and environment fails the same way.
    /// </summary>
    [Fact]
    public async Task Image_LoadsLibrbd_AnRbdNamespaceOnAnUnreachableClusterFailsTheStartWithTheTargetsMessage()
    {
        var id = Guid.NewGuid().ToString("N")[..10];
        var work = Directory.CreateTempSubdirectory("nvmet-deploy-rbd-");
        var context = Path.Combine(work.FullName, "context");
        var name = $"nvmet-deploy-rbd-test-{id}";
        var volume = name + "-data";
        await using var engine = await TestDocker.StartAsync(Say);
        IFutureDockerImage? image = null;
        try
        {
            image = await BuildImageAsync(id, context, TestDocker.Logger(Say));
            // Only a monitor nobody serves; no cephx (there is no key to read: the connection attempt is what fails).
            var cephConf = Path.Combine(work.FullName, "ceph.conf");
            await File.WriteAllTextAsync(cephConf, "[global]\nmon_host = 127.0.0.1:1\nauth_client_required = none\n");
            File.SetUnixFileMode(cephConf, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            var sw = Stopwatch.StartNew();
            // Hardened as the gateways run (read-only root, no capabilities, the socket's tmpfs), no network at all.
            var run = await Cmd.RunAsync("docker", ["run", "--rm", "--name", name, "--network", "none",
                "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                "--tmpfs", $"{Deployed.SocketDir}:uid={AppUid},gid={AppUid},mode=0700,size=1m",
                "-v", $"{cephConf}:/etc/nvmet-ceph/ceph.conf:ro", "-e", "CEPH_CONF=/etc/nvmet-ceph/ceph.conf",
                image.FullName, "--namespace", "rbd:rbd/x:16M", "--allow-host", AllowedHost], TimeSpan.FromMinutes(2));
            sw.Stop();
            var said = run.Err + run.Out;
            Say($"docker run exited {run.Code} after {sw.Elapsed.TotalSeconds:0.0} s:\n{Cmd.Tail(said, 10)}");
            Assert.DoesNotContain("apt-get install librbd1", said);    // librados and librbd were found and loaded
            Assert.DoesNotContain("Unable to load shared library", said);
            // ... naming the configuration librados read: the one $CEPH_CONF names
            Assert.Matches(@"the Ceph cluster of /etc/nvmet-ceph/ceph.conf \(\$CEPH_CONF\) is unreachable \(no monitor answered within [0-9]+ s\)", said);
            Assert.True(run.Code != 0, $"the target exited {run.Code} with an unreachable cluster");
            Assert.Equal(2, run.Code);
            Assert.DoesNotContain("Listening for NVMe/TCP", said);     // it never served anything
            // librados waited for a monitor (the connect timeout) instead of failing at once, and not much longer.
            Assert.InRange(sw.Elapsed.TotalSeconds, 5, 60);

            // The same as gateways.yaml runs it: the StatefulSet's init container script in the image (its shell, getent
            // and sed) writes gateway 0's configuration into the data volume — the Services' ClusterIPs come from
            // --add-host here, loopback addresses never contacted — and the target started with it and the
            // StatefulSet's environment reads it and fails at Ceph, naming the ceph.conf of the mounted secret.
            (await Cmd.Docker("volume", "create", volume)).Ensure("docker volume create");
            var set = GatewaySet.StatefulSet();
            var pod = $"{set.Name}-0";
            var templateDir = Directory.CreateDirectory(Path.Combine(work.FullName, "configmap")).FullName;
            var init = GatewaySet.InitContainer();
            var initEnv = Manifests.EffectiveEnv(init, podName: pod);
            var templatePath = initEnv["TEMPLATE"];
            await File.WriteAllTextAsync(Path.Combine(templateDir, Path.GetFileName(templatePath)), GatewaySet.Template());
            var cephDir = Directory.CreateDirectory(Path.Combine(work.FullName, "ceph-secret")).FullName;
            File.Copy(cephConf, Path.Combine(cephDir, "ceph.conf"));
            await File.WriteAllTextAsync(Path.Combine(cephDir, "keyring"), "[client.nvmet-gateway]\n\tkey = AQAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==\n");
            foreach (var d in new[] { templateDir, cephDir })
            {
                File.SetUnixFileMode(d, (UnixFileMode)0b111_101_101);
                foreach (var f in Directory.GetFiles(d)) File.SetUnixFileMode(f, (UnixFileMode)0b110_100_100);
            }
            var tokenFile = Path.Combine(work.FullName, "api-token");
            await File.WriteAllTextAsync(tokenFile, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24)) + "\n");
            File.SetUnixFileMode(tokenFile, (UnixFileMode)0b100_100_100);
            var hardened = new List<string> { "--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges" };
            foreach (var (service, address) in GatewaySet.ServiceAddresses()) hardened.AddRange(["--add-host", $"{service}:{address}"]);
            string[] Env(IEnumerable<Y> items, Dictionary<string, string> values) =>
                [.. items.Select(e => e["name"].S).SelectMany(k => new[] { "-e", $"{k}={values[k]}" })];

            var rendered = await Cmd.RunAsync("docker", ["run", "--rm", "--name", name + "-init", .. hardened,
                "-v", $"{volume}:{Deployed.DataDir}", "-v", $"{templateDir}:{Path.GetDirectoryName(templatePath)}:ro",
                .. Env(init["env"].Items, initEnv), "--entrypoint", "/bin/sh", image.FullName, "-c", GatewaySet.Script()], TimeSpan.FromMinutes(2));
            Say($"gateway-config exited {rendered.Code}: {rendered.Out.Trim()}{rendered.Err.Trim()}");
            Assert.True(rendered.Code == 0, $"the init container's script failed in the image: {rendered.Err}");
            Assert.Contains($"{pod}: port 1 advertised as {GatewaySet.ServiceAddresses()[pod]}, CNTLIDs 1-999", rendered.Out);
            var configPath = initEnv["CONFIG"];
            var json = await Cmd.RunAsync("docker", ["run", "--rm", "--network", "none", "-v", $"{volume}:{Deployed.DataDir}", "--entrypoint", "cat", image.FullName, configPath], TimeSpan.FromMinutes(1));
            var gateway = JsonSerializer.Deserialize<TargetConfig>(json.Ensure("reading the rendered configuration").Out, TargetConfig.Json)!;
            Assert.Equal(pod, gateway.Gateway?.Name);
            Assert.Equal(((ushort)1, (ushort)999), (gateway.Subsystems[0].CntlidMin, gateway.Subsystems[0].CntlidMax));

            var target = Manifests.TargetContainer(set.PodSpec);
            var targetEnv = Manifests.EffectiveEnv(target, podName: pod);
            var args = target["args"].Items.Select(a => a.S).ToArray();
            Assert.Equal(["--config", configPath], args);
            sw.Restart();
            var started = await Cmd.RunAsync("docker", ["run", "--rm", "--name", name + "-gateway", .. hardened,
                "--tmpfs", $"{Deployed.SocketDir}:uid={AppUid},gid={AppUid},mode=0700,size=1m",
                "-v", $"{volume}:{Deployed.DataDir}", "-v", $"{cephDir}:/etc/nvmet-ceph:ro", "-v", $"{tokenFile}:{Deployed.TokenFile}:ro",
                .. Env(target["env"].Items, targetEnv), image.FullName, .. args], TimeSpan.FromMinutes(2));
            sw.Stop();
            said = started.Err + started.Out;
            Say($"the gateway exited {started.Code} after {sw.Elapsed.TotalSeconds:0.0} s:\n{Cmd.Tail(said, 10)}");
            Assert.DoesNotContain("apt-get install librbd1", said);
            Assert.Contains("the Ceph cluster of /etc/nvmet-ceph/ceph.conf is unreachable (no monitor answered within", said);
            Assert.Equal(2, started.Code);
        }
        finally
        {
            foreach (var c in new[] { name, name + "-init", name + "-gateway" })
                await Cmd.RunAsync("docker", ["rm", "-f", c], TimeSpan.FromMinutes(1)); // only after a timeout is one still there
            await Cmd.RunAsync("docker", ["volume", "rm", "-f", volume], TimeSpan.FromMinutes(1));
            if (image != null) { await image.DeleteAsync(); await image.DisposeAsync(); }
            try { work.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            Say("removed the container and the image (the base image stays cached)");
        }
    }

    /// <summary>deploy/Dockerfile's runtime-prebuilt target on the debootstrap base (cached) with the target published
    /// on this machine (no registry is needed); the image's name is unique to the test, which deletes it.</summary>
    private async Task<IFutureDockerImage> BuildImageAsync(string id, string context, Microsoft.Extensions.Logging.ILogger logger)
    {
        // The base (debootstrap, cached) and the self-contained publish are independent: do both at once.
        var baseImage = DebootstrapBase.EnsureAsync(Say);
        var publish = PublishAsync(Path.Combine(context, "artifacts", "publish"));
        await Task.WhenAll(baseImage, publish);

        Say($"building deploy/Dockerfile --target runtime-prebuilt on {baseImage.Result}");
        var sw = Stopwatch.StartNew();
        var image = new ImageFromDockerfileBuilder()
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
        try { await image.CreateAsync(); }
        catch { await image.DisposeAsync(); throw; }
        var size = await Cmd.Docker("image", "inspect", "--format", "{{.Size}}", image.FullName);
        Say($"image {image.FullName} built in {sw.Elapsed.TotalSeconds:0} s, {size.Out.Trim()} bytes");
        return image;
    }

    /// <summary>The configuration with every subsystem's allowedHosts replaced by <paramref name="hostNqn"/> alone
    /// (the manifests carry a placeholder there).</summary>
    private static string AllowOnly(string json, string hostNqn)
    {
        var root = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!;
        foreach (var s in root["subsystems"]!.AsArray())
        {
            Assert.NotNull(s!["allowedHosts"]); // the manifests' subsystems name their hosts (ManifestTests)
            s["allowedHosts"] = new JsonArray(hostNqn);
        }
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>The local ports in state LISTEN (0A) of /proc/net/tcp and tcp6 ("sl local_address rem_address st ...",
    /// addresses as HEX_IP:HEX_PORT).</summary>
    private static HashSet<int> ListeningPorts(string procNetTcp)
    {
        var ports = new HashSet<int>();
        foreach (var line in procNetTcp.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 4 || f[0] == "sl" || f[3] != "0A") continue;
            ports.Add(int.Parse(f[1][(f[1].LastIndexOf(':') + 1)..], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        }
        return ports;
    }

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
