using System.Globalization;
using System.Text.Json;
using Target.Configuration;

namespace Integration.Tests.Deploy;

/// <summary>deploy/kubernetes/*.yaml parsed with YamlDotNet, field by field: the kinds; the target container's image,
/// ports, environment (the image's ENV, then the container's env) and probes; management only on a Unix socket in an
/// in-memory emptyDir, shared with another container only where the example needs it; the token as a required,
/// mounted secret; no service-account token; the ConfigMaps' configuration through the target's validator and
/// fail-closed hosts; hardening and resources; the Service; the NetworkPolicies guarding every target Pod.</summary>
public sealed partial class ManifestTests
{
    private const string TargetImage = "nvme-tcp-target";
    private const string PodIp = "10.244.1.17";

    /// <summary>Every file with a workload that runs the target.</summary>
    public static TheoryData<string> PodFiles => new() { "sidecar.yaml", "deployment.yaml", GatewaySet.FileName };
    /// <summary>The files whose ConfigMap holds the target's configuration as it is (target.json); gateways.yaml holds a
    /// template its init container fills in per gateway (ManifestTests.Gateways.cs).</summary>
    public static TheoryData<string> ConfigFiles => new() { "sidecar.yaml", "deployment.yaml" };

    /// <summary>The containers each example gives the management socket to: the target everywhere, and the
    /// application in the sidecar example, which manages its own namespaces (sidecar.yaml says why).</summary>
    private static readonly Dictionary<string, string[]> SocketSharedWith = new()
    {
        ["deployment.yaml"] = ["nvme-tcp-target"],
        ["sidecar.yaml"] = ["nvme-tcp-target", "app"],
        [GatewaySet.FileName] = ["nvme-tcp-target"],
    };

    private static Y PodSpecOf(string file) => Manifests.Load(file).Single(o => o.Kind is "Pod" or "Deployment" or "StatefulSet").PodSpec;

    [Fact]
    public void EveryDocument_HasTheExpectedKinds()
    {
        var all = Manifests.LoadAll();
        foreach (var o in all)
        {
            Assert.False(string.IsNullOrEmpty(o.Root["apiVersion"].Text), $"{o}: apiVersion");
            Assert.False(string.IsNullOrEmpty(o.Kind), $"{o}: kind");
            Assert.False(string.IsNullOrEmpty(o.Name), $"{o}: metadata.name");
        }
        string Kinds(string file) => string.Join(",", all.Where(o => o.File == file).Select(o => o.Kind));
        Assert.Equal("ConfigMap,Pod", Kinds("sidecar.yaml"));
        Assert.Equal("ConfigMap,PersistentVolumeClaim,Deployment", Kinds("deployment.yaml"));
        Assert.Equal("Service", Kinds("service.yaml"));
        Assert.Equal("NetworkPolicy,NetworkPolicy", Kinds("networkpolicy.yaml"));
        Assert.Equal("CephBlockPool,CephClient,ConfigMap,Service,Service,Service,StatefulSet,PodDisruptionBudget,NetworkPolicy", Kinds(GatewaySet.FileName));
        Assert.Equal(["deployment.yaml", GatewaySet.FileName, "networkpolicy.yaml", "service.yaml", "sidecar.yaml"], all.Select(o => o.File).Distinct().Order(StringComparer.Ordinal));
        foreach (var dup in all.GroupBy(o => (o.Kind, o.Name)).Where(g => g.Count() > 1))
            Assert.Fail($"{dup.Key.Kind}/{dup.Key.Name} is defined more than once");
    }

    [Theory]
    [MemberData(nameof(ConfigFiles))]
    public void ConfigMap_HoldsAConfigurationTheTargetAccepts(string file)
    {
        var json = Manifests.TargetJson(file);
        var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json);
        Assert.NotNull(config);
        Assert.Empty(ConfigValidator.Validate(config));
        Assert.NotEmpty(config.Subsystems);
        foreach (var ns in config.Subsystems.SelectMany(s => s.Namespaces))
        {
            // File namespaces live in the data volume (the storage directory), with a size so that the target creates
            // them on first start.
            Assert.Equal("file", ns.Backend);
            Assert.StartsWith(Deployed.DataDir + "/", ns.Path);
            Assert.NotNull(ns.Size);
        }
        // The file puts no management listener on TCP (the socket comes from the environment).
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (doc.RootElement.TryGetProperty("api", out var api))
        {
            Assert.False(api.TryGetProperty("address", out _), $"{file}: target.json puts the management API on a TCP address");
            Assert.False(api.TryGetProperty("port", out _), $"{file}: target.json puts the management API on a TCP port");
            Assert.False(api.TryGetProperty("token", out _), $"{file}: a token in a ConfigMap is readable by everyone who may read ConfigMaps");
        }
    }

    /// <summary>Every subsystem names the hosts that may connect; "anyone" is never the result of an empty list. An
    /// example that wants any host says allowAnyHost explicitly, and a NetworkPolicy must then guard its Pod.</summary>
    [Theory]
    [MemberData(nameof(ConfigFiles))]
    public void ConfigMap_SubsystemsAreFailClosed(string file)
    {
        var config = JsonSerializer.Deserialize<TargetConfig>(Manifests.TargetJson(file), TargetConfig.Json)!;
        foreach (var s in config.Subsystems)
        {
            if (s.AllowAnyHost == true)
            {
                var (_, _, labels) = Manifests.Workloads().Single(w => w.Workload.File == file);
                Assert.Contains(Manifests.Load("networkpolicy.yaml"), p => Manifests.Selects(p.Root["spec"]["podSelector"], labels));
                continue;
            }
            Assert.False(s.AllowAnyHost is null && s.AllowedHosts.Count == 0, $"{file}: subsystem {s.Nqn} has no allowedHosts and no allowAnyHost: write the host NQNs (or allowAnyHost: true deliberately)");
            Assert.NotEmpty(s.AllowedHosts);
        }
        // The placeholder says where a host's NQN comes from.
        Assert.Contains("cat /etc/nvme/hostnqn", Manifests.TargetJson(file));
    }

    /// <summary>The target container's environment (image ENV, then env), args, ports and probes agree: NVMe/TCP and the
    /// read-only probes listener on the Pod address, management on the socket, storage in the data volume.</summary>
    [Theory]
    [MemberData(nameof(ConfigFiles))]
    public void TargetContainer_ListenersPortsAndProbesAgree(string file)
    {
        var objects = Manifests.Load(file);
        var spec = objects.Single(o => o.Kind is "Pod" or "Deployment").PodSpec;
        var c = Manifests.TargetContainer(spec);
        Assert.Equal(TargetImage, c["image"].S.Split(':')[0].Split('/')[^1]);
        Assert.NotEqual("Always", c["imagePullPolicy"].Text); // images are loaded into the nodes or pushed with a fixed tag

        // Exactly two ports: NVMe/TCP and the read-only listener, named for what it is.
        var ports = c["ports"].Items.ToDictionary(p => p["name"].S, p => p["containerPort"].Int);
        Assert.Equal(new Dictionary<string, int> { ["nvme-tcp"] = Deployed.NvmePort, [Deployed.ProbesPortName] = Deployed.ProbesPort }, ports);

        var env = Manifests.EffectiveEnv(c, PodIp);
        Assert.Equal($"0.0.0.0:{Deployed.NvmePort}", env.GetValueOrDefault("NVMET_LISTEN"));
        Assert.Equal(PodIp, env.GetValueOrDefault("NVMET_ADVERTISE"));                           // the discovery log reports the Pod IP
        Assert.Equal($"0.0.0.0:{Deployed.ProbesPort}", env.GetValueOrDefault("NVMET_PROBES"));    // the kubelet probes the Pod IP
        Assert.Equal(Deployed.Api, env.GetValueOrDefault("NVMET_API"));
        Assert.Equal(Deployed.DataDir, env.GetValueOrDefault("NVMET_STORAGE_DIRS"));
        Assert.Equal(Deployed.TokenFile, env.GetValueOrDefault("NVMET_API_TOKEN_FILE"));

        // The configuration file named by --config is the ConfigMap's target.json, copied into the data volume by seed-config.
        var args = c["args"].Items.Select(a => a.S).ToList();
        Assert.False(c["command"].Exists, $"{c}: the image's entry point is the target; options go in args");
        int configArg = args.IndexOf("--config");
        Assert.True(configArg >= 0 && configArg + 1 < args.Count, $"{c}: args must name the configuration file with --config");
        var configPath = args[configArg + 1];
        Assert.StartsWith(Deployed.DataDir + "/", configPath);
        var seed = spec["initContainers"].Find(x => x["name"].Text == "seed-config", "seed-config");
        Assert.True(seed.Exists, $"{spec}: no seed-config init container");
        var seedCommand = string.Join(" ", seed["command"].Items.Select(a => a.S));
        var configMount = seed["volumeMounts"].Find(m => spec["volumes"].Find(v => v["name"].Text == m["name"].Text, "")["configMap"].Exists, "configMap mount");
        Assert.Contains($"{configMount["mountPath"].S}/target.json", seedCommand);
        Assert.Contains(configPath, seedCommand);
        var configVolume = spec["volumes"].Find(v => v["name"].Text == configMount["name"].Text, "config");
        Assert.Equal(objects.Single(o => o.Kind == "ConfigMap").Name, configVolume["configMap"]["name"].S);

        // The ConfigMap's NVMe/TCP port is the declared one (the environment overrides it with the same value).
        var config = JsonSerializer.Deserialize<TargetConfig>(Manifests.TargetJson(file), TargetConfig.Json)!;
        Assert.Equal(Deployed.NvmePort, Assert.Single(config.Ports).Port);

        // What the target itself makes of that environment and those args (the config and token files stand in
        // temporary copies): no error, the socket, the token, the probes, the storage directory.
        var dir = Directory.CreateTempSubdirectory("nvmet-manifest-");
        try
        {
            var temp = Path.Combine(dir.FullName, "target.json");
            File.WriteAllText(temp, Manifests.TargetJson(file));
            var token = Path.Combine(dir.FullName, "api-token");
            File.WriteAllText(token, "manifest-test-token\n");
            var cl = CommandLine.Parse([.. args.Select(a => a == configPath ? temp : a)],
                new System.Collections.Hashtable(env.ToDictionary(e => e.Key, e => e.Key == "NVMET_API_TOKEN_FILE" ? token : e.Value)));
            Assert.Empty(cl.Errors);
            Assert.Empty(ConfigValidator.Validate(cl.Config));
            Assert.Equal(("0.0.0.0", Deployed.NvmePort, PodIp), (cl.Config.Ports[0].Address, cl.Config.Ports[0].Port, cl.Config.Ports[0].AdvertisedAddress));
            Assert.False(cl.Api!.IsTcp);
            Assert.Equal((Deployed.Api, "manifest-test-token"), ("unix:" + cl.Api.Socket, cl.Api.Token));
            Assert.Equal(("0.0.0.0", Deployed.ProbesPort), (cl.Probes!.Address, cl.Probes.Port));
            Assert.Equal([Deployed.DataDir], cl.Storage.Directories);
        }
        finally { dir.Delete(recursive: true); }

        AssertProbe(c, "readinessProbe", "/readyz");
        AssertProbe(c, "livenessProbe", "/healthz");
        if (c["startupProbe"].Exists) AssertProbe(c, "startupProbe", "/readyz");
    }

    private static void AssertProbe(Y container, string probe, string path)
    {
        var get = container[probe]["httpGet"];
        Assert.True(get.Exists, $"{container}: {probe} must be an httpGet probe");
        Assert.Equal(path, get["path"].S);
        Assert.Equal(Deployed.ProbesPortName, get["port"].S);                    // by name, the read-only listener
        Assert.Equal(Deployed.ProbesPort, Manifests.ResolvePort(container, get["port"]));
        Assert.NotEqual("HTTPS", get["scheme"].Text);
        Assert.False(get["httpHeaders"].Exists, $"{get}: the probes need no token");
    }

    /// <summary>No container of any example can put the management API on TCP: neither its environment nor its
    /// arguments, and no container port is named like a management port.</summary>
    [Theory]
    [MemberData(nameof(PodFiles))]
    public void NoContainer_PutsManagementOnTcp(string file)
    {
        foreach (var c in Manifests.AllContainers(PodSpecOf(file)))
        {
            var env = Manifests.EffectiveEnv(c, PodIp);
            foreach (var key in new[] { "NVMET_API", "NVMET_API_URL" })
                if (env.TryGetValue(key, out var api))
                    Assert.True(Deployed.IsOffTheNetwork(api), $"{c}: {key}={api} is not a Unix socket");
            var args = c["args"].Items.Concat(c["command"].Items).Select(a => a.S).ToList();
            for (int i = 0; i < args.Count; i++)
            {
                if (args[i].StartsWith("--api=", StringComparison.Ordinal)) Assert.True(Deployed.IsOffTheNetwork(args[i]["--api=".Length..]), $"{c}: {args[i]}");
                if (args[i] == "--api") Assert.True(i + 1 < args.Count && Deployed.IsOffTheNetwork(args[i + 1]), $"{c}: --api {(i + 1 < args.Count ? args[i + 1] : "")}");
            }
            foreach (var p in c["ports"].Items)
                Assert.DoesNotMatch("api|manage|mgmt|admin", p["name"].Text ?? "");
        }
    }

    /// <summary>The management token is a required secret, mounted read-only as a file the target reads through
    /// NVMET_API_TOKEN_FILE; no token or secret is in any container's environment.</summary>
    [Theory]
    [MemberData(nameof(PodFiles))]
    public void TokenSecret_IsRequired_AndMountedAsAFile(string file)
    {
        var spec = PodSpecOf(file);
        var target = Manifests.TargetContainer(spec);
        var tokenDir = Path.GetDirectoryName(Deployed.TokenFile)!;
        var (mount, volume) = Manifests.MountAt(spec, target, tokenDir);
        Assert.True(mount.Exists, $"{target}: nothing is mounted at {tokenDir}");
        Assert.True(mount["readOnly"].Bool == true, $"{mount}: the token mount is read-only");
        var secret = volume["secret"];
        Assert.True(secret.Exists, $"{volume}: the token comes from a secret");
        Assert.False(string.IsNullOrEmpty(secret["secretName"].Text), $"{secret}: secretName");
        // Explicitly required (the default is required too, but "optional: true" once let the Pod start without one).
        Assert.True(secret["optional"].Bool == false, $"{secret}: the token secret must be optional: false");
        var item = Assert.Single(secret["items"].Items);
        Assert.Equal("token", item["key"].S);
        Assert.Equal(Deployed.TokenFile, $"{tokenDir}/{item["path"].S}");
        // Readable by the owner (root) and the fsGroup (the target's GID), by no other UID.
        int mode = Convert.ToInt32(secret["defaultMode"].S, secret["defaultMode"].S.StartsWith('0') ? 8 : 10);
        Assert.Equal(0, mode & 0b111);
        Assert.Equal(spec["securityContext"]["runAsGroup"].Int, spec["securityContext"]["fsGroup"].Int);

        foreach (var c in Manifests.AllContainers(spec))
        {
            Assert.DoesNotContain(c["env"].Items, e => e["name"].Text == "NVMET_API_TOKEN");
            Assert.DoesNotContain(c["env"].Items, e => e["valueFrom"]["secretKeyRef"].Exists);
            Assert.False(c["envFrom"].Exists, $"{c}: envFrom");
        }
    }

    [Theory]
    [MemberData(nameof(PodFiles))]
    public void Pod_DoesNotMountTheServiceAccountToken(string file)
    {
        var spec = PodSpecOf(file);
        Assert.True(spec["automountServiceAccountToken"].Bool == false, $"{spec}: automountServiceAccountToken must be false (nothing here talks to the Kubernetes API)");
    }

    /// <summary>The socket's directory is an in-memory emptyDir (the root file system is read-only), mounted by the
    /// target and, only where the example needs it, by the application — which then also gets the token.</summary>
    [Theory]
    [MemberData(nameof(PodFiles))]
    public void ManagementSocket_IsInAnEmptyDir_SharedOnlyWhereTheExampleNeedsIt(string file)
    {
        var spec = PodSpecOf(file);
        var target = Manifests.TargetContainer(spec);
        Assert.Equal(Deployed.SocketDir, Path.GetDirectoryName(Deployed.Api["unix:".Length..]));
        var (mount, volume) = Manifests.MountAt(spec, target, Deployed.SocketDir);
        Assert.True(mount.Exists, $"{target}: nothing is mounted at {Deployed.SocketDir} (the socket cannot be created on the read-only root)");
        Assert.NotEqual(true, mount["readOnly"].Bool);
        Assert.Equal("Memory", volume["emptyDir"]["medium"].S);
        Assert.Equal(SocketSharedWith[file].Order(StringComparer.Ordinal), Manifests.MountedBy(spec, mount["name"].S).Order(StringComparer.Ordinal));

        var tokenVolume = Manifests.MountAt(spec, target, Path.GetDirectoryName(Deployed.TokenFile)!).Mount["name"].S;
        foreach (var name in SocketSharedWith[file].Where(n => n != target["name"].S))
        {
            // A client beside the target: the same socket and token paths, and what the client commands read.
            var c = Manifests.AllContainers(spec).Single(x => x["name"].Text == name);
            Assert.Equal(Deployed.SocketDir, c["volumeMounts"].Find(m => m["name"].Text == mount["name"].S, "socket")["mountPath"].S);
            Assert.Equal(Path.GetDirectoryName(Deployed.TokenFile), c["volumeMounts"].Find(m => m["name"].Text == tokenVolume, "token")["mountPath"].S);
            var env = Manifests.EffectiveEnv(c, PodIp);
            Assert.Equal(Deployed.Api, env.GetValueOrDefault("NVMET_API_URL"));
            Assert.Equal(Deployed.TokenFile, env.GetValueOrDefault("NVMET_API_TOKEN_FILE"));
        }
    }

    [Theory]
    [MemberData(nameof(PodFiles))]
    public void EveryContainer_IsHardenedAndHasResources(string file)
    {
        var spec = PodSpecOf(file);
        var pod = spec["securityContext"];
        int uid = int.Parse(DockerfileModel.Load(Repo.Dockerfile).StageArgs("runtime")["APP_UID"], CultureInfo.InvariantCulture);
        Assert.NotEqual(0, uid);
        Assert.Equal(uid, pod["runAsUser"].Int);
        Assert.Equal(uid, pod["fsGroup"].Int);
        Assert.Equal("RuntimeDefault", pod["seccompProfile"]["type"].S);
        Assert.NotEqual(true, spec["hostNetwork"].Bool);
        Assert.NotEqual(true, spec["hostPID"].Bool);
        Assert.NotEqual(true, spec["hostIPC"].Bool);
        foreach (var c in Manifests.AllContainers(spec))
        {
            var sc = c["securityContext"];
            Assert.True((sc["runAsNonRoot"].Bool ?? pod["runAsNonRoot"].Bool) == true, $"{c}: runAsNonRoot");
            Assert.NotEqual("0", sc["runAsUser"].Text ?? pod["runAsUser"].Text);
            Assert.True(sc["readOnlyRootFilesystem"].Bool == true, $"{c}: readOnlyRootFilesystem");
            Assert.True(sc["allowPrivilegeEscalation"].Bool == false, $"{c}: allowPrivilegeEscalation");
            Assert.NotEqual(true, sc["privileged"].Bool);
            Assert.Contains("ALL", sc["capabilities"]["drop"].Items.Select(x => x.S));
            Assert.False(sc["capabilities"]["add"].Items.Any(), $"{c}: adds capabilities");
            foreach (var kind in new[] { "requests", "limits" })
                foreach (var resource in new[] { "cpu", "memory" })
                    Assert.False(string.IsNullOrEmpty(c["resources"][kind][resource].Text), $"{c}: resources.{kind}.{resource} is not set");
        }
    }

    [Theory]
    [MemberData(nameof(PodFiles))]
    public void Volumes_AreDeclared_AndTheDataVolumeIsWritable(string file)
    {
        var objects = Manifests.Load(file);
        var spec = objects.Single(o => o.Kind is "Pod" or "Deployment" or "StatefulSet").PodSpec;
        var volumes = spec["volumes"].Items.ToDictionary(v => v["name"].S);
        foreach (var c in Manifests.AllContainers(spec))
            foreach (var m in c["volumeMounts"].Items)
                Assert.True(volumes.ContainsKey(m["name"].S), $"{m}: volume {m["name"].S} is not declared");
        foreach (var v in volumes.Values)
        {
            if (v["configMap"].Exists) Assert.Contains(objects, o => o.Kind == "ConfigMap" && o.Name == v["configMap"]["name"].S);
            if (v["persistentVolumeClaim"].Exists) Assert.Contains(objects, o => o.Kind == "PersistentVolumeClaim" && o.Name == v["persistentVolumeClaim"]["claimName"].S);
            Assert.False(v["hostPath"].Exists, $"{v}: no hostPath volumes");
        }
        // The target's data directory: a writable emptyDir or PVC mount (backing files and the writable configuration).
        var target = Manifests.TargetContainer(spec);
        var (data, volume) = Manifests.MountAt(spec, target, Deployed.DataDir);
        Assert.True(data.Exists, $"{target}: nothing is mounted at {Deployed.DataDir}");
        Assert.NotEqual(true, data["readOnly"].Bool);
        Assert.True(volume["emptyDir"].Exists || volume["persistentVolumeClaim"].Exists, $"{volume}: the data volume is an emptyDir or a PVC");
    }

    [Fact]
    public void Sidecar_RunsBesideAnApplicationContainer()
    {
        var pod = Manifests.Load("sidecar.yaml").Single(o => o.Kind == "Pod");
        var spec = pod.PodSpec;
        // A native sidecar: an init container that keeps running, started before the application containers.
        var target = spec["initContainers"].Find(c => c["name"].Text == "nvme-tcp-target", "nvme-tcp-target");
        Assert.True(target.Exists, $"{spec}: the target is a native sidecar (initContainers, restartPolicy: Always)");
        Assert.Equal("Always", target["restartPolicy"].S);
        var app = spec["containers"].Items.Where(c => c["name"].Text != "nvme-tcp-target").ToList();
        Assert.NotEmpty(app);
        // The application shares the volume the target exports from.
        var dataVolume = Manifests.MountAt(spec, target, Deployed.DataDir).Mount["name"].S;
        Assert.Contains(app, c => c["volumeMounts"].Items.Any(m => m["name"].Text == dataVolume));
    }

    [Fact]
    public void Service_ExposesOnlyNvmeTcp_ToTheDeployment()
    {
        var service = Manifests.Load("service.yaml").Single(o => o.Kind == "Service");
        var deployment = Manifests.Load("deployment.yaml").Single(o => o.Kind == "Deployment");
        var spec = deployment.Root["spec"];
        Assert.Equal(1, spec["replicas"].Int);
        Assert.Equal("Recreate", spec["strategy"]["type"].S);
        var templateLabels = spec["template"]["metadata"]["labels"].Entries.ToDictionary(e => e.Key, e => e.Value.S);
        foreach (var (key, value) in spec["selector"]["matchLabels"].Entries) Assert.Equal(value.S, templateLabels.GetValueOrDefault(key));

        Assert.Equal("ClusterIP", service.Root["spec"]["type"].Text ?? "ClusterIP");
        var selector = service.Root["spec"]["selector"].Entries.ToList();
        Assert.NotEmpty(selector);
        foreach (var (key, value) in selector) Assert.Equal(value.S, templateLabels.GetValueOrDefault(key));

        var target = Manifests.TargetContainer(deployment.PodSpec);
        var port = Assert.Single(service.Root["spec"]["ports"].Items);
        Assert.Equal(Deployed.NvmePort, port["port"].Int);
        Assert.Equal("TCP", port["protocol"].Text ?? "TCP");
        Assert.Equal(Deployed.NvmePort, Manifests.ResolvePort(target, port["targetPort"]));
        // Not even the read-only listener is published through a Service.
        foreach (var s in Manifests.LoadAll().Where(o => o.Kind == "Service"))
            foreach (var p in s.Root["spec"]["ports"].Items)
                Assert.NotEqual(Deployed.ProbesPort, Manifests.ResolvePort(target, p["targetPort"].Exists ? p["targetPort"] : p["port"]));
    }

    /// <summary>Every Pod that runs the target is isolated for ingress by a NetworkPolicy: those of networkpolicy.yaml
    /// for the standalone target and the sidecar, gateways.yaml's own for the gateways.</summary>
    [Fact]
    public void NetworkPolicy_SelectsEveryTargetPod()
    {
        var policies = Manifests.LoadAll().Where(o => o.Kind == "NetworkPolicy").ToList();
        Assert.Equal(3, policies.Count);
        var workloads = Manifests.Workloads().ToList();
        Assert.Equal(3, workloads.Count);
        foreach (var (workload, spec, labels) in workloads)
        {
            _ = Manifests.TargetContainer(spec);
            var selecting = policies.Where(p => Manifests.Selects(p.Root["spec"]["podSelector"], labels)).ToList();
            Assert.True(selecting.Count == 1, $"{workload}: selected by {selecting.Count} NetworkPolicies, expected one");
            Assert.NotEmpty(selecting[0].Root["spec"]["podSelector"]["matchLabels"].Entries); // never "every Pod of the namespace"
            Assert.Contains("Ingress", selecting[0].Root["spec"]["policyTypes"].Items.Select(t => t.S));
            Assert.Equal(workload.File is "deployment.yaml" or "sidecar.yaml" ? "networkpolicy.yaml" : workload.File, selecting[0].File);
        }
        foreach (var p in policies) Assert.Contains(workloads, w => Manifests.Selects(p.Root["spec"]["podSelector"], w.Labels));
    }

    /// <summary>Each policy admits NVMe/TCP (4420) only from Pods labelled nvme-tcp-client: "true", the read-only
    /// listener (8420) only from a labelled (monitoring) namespace, and nothing else: every rule names its sources and
    /// its ports, and no source is an address block.</summary>
    [Fact]
    public void NetworkPolicy_AdmitsNvmeTcpOnlyFromLabelledClients_AndProbesOnlyFromMonitoring()
    {
        foreach (var policy in Manifests.LoadAll().Where(o => o.Kind == "NetworkPolicy"))
        {
            var admitted = new HashSet<int>();
            foreach (var rule in policy.Root["spec"]["ingress"].Items)
            {
                // A rule without "from" admits every source, without "ports" every port.
                var from = rule["from"].Items.ToList();
                var ports = rule["ports"].Items.ToList();
                Assert.True(from.Count > 0, $"{rule}: a rule without from admits everyone");
                Assert.True(ports.Count > 0, $"{rule}: a rule without ports admits every port");
                foreach (var p in ports)
                {
                    Assert.Equal("TCP", p["protocol"].Text ?? "TCP");
                    Assert.False(p["endPort"].Exists, $"{p}: a port range");
                }
                var numbers = ports.Select(p => p["port"].Int).Distinct().ToList();
                var only = Assert.Single(numbers); // one purpose per rule
                admitted.Add(only);
                foreach (var peer in from)
                {
                    Assert.False(peer["ipBlock"].Exists, $"{peer}: an address block admits whatever hides behind it");
                    if (only == Deployed.NvmePort)
                    {
                        // Labelled client Pods of the policy's own namespace, nothing wider.
                        Assert.False(peer["namespaceSelector"].Exists, $"{peer}: NVMe/TCP clients come from the target's namespace");
                        var labels = peer["podSelector"]["matchLabels"].Entries.ToDictionary(e => e.Key, e => e.Value.S);
                        Assert.Equal(new Dictionary<string, string> { [Deployed.ClientLabel] = "true" }, labels);
                        Assert.False(peer["podSelector"]["matchExpressions"].Exists, $"{peer}: matchExpressions");
                    }
                    else if (only == Deployed.ProbesPort)
                    {
                        Assert.NotEmpty(peer["namespaceSelector"]["matchLabels"].Entries); // a labelled namespace, not every namespace
                        Assert.False(peer["namespaceSelector"]["matchExpressions"].Exists, $"{peer}: matchExpressions");
                    }
                    else Assert.Fail($"{rule}: port {only} is neither NVMe/TCP nor the probes listener");
                }
            }
            Assert.Equal(new HashSet<int> { Deployed.NvmePort, Deployed.ProbesPort }, admitted);
        }
    }
}
