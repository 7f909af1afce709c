using System.Collections;
using System.Text.Json;
using Target.Configuration;

namespace Integration.Tests.Deploy;

/// <summary>deploy/kubernetes/*.yaml parsed with YamlDotNet: the kinds, the target container's image, ports and
/// options (evaluated by the target's own command-line parser with the image's environment), the probes against
/// the management listener, the ConfigMaps' configuration against the target's validator, hardening and resources.</summary>
public sealed class ManifestTests
{
    private const string TargetImage = "nvme-tcp-target";
    private const string DataDir = "/var/lib/nvmet";

    public static TheoryData<string> PodFiles => new() { "sidecar.yaml", "deployment.yaml" };

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
        Assert.Equal(["deployment.yaml", "service.yaml", "sidecar.yaml"], all.Select(o => o.File).Distinct().Order(StringComparer.Ordinal));
        foreach (var dup in all.GroupBy(o => (o.Kind, o.Name)).Where(g => g.Count() > 1))
            Assert.Fail($"{dup.Key.Kind}/{dup.Key.Name} is defined more than once");
    }

    [Theory]
    [MemberData(nameof(PodFiles))]
    public void ConfigMap_HoldsAConfigurationTheTargetAccepts(string file)
    {
        var json = Manifests.TargetJson(file);
        var config = JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json);
        Assert.NotNull(config);
        Assert.Empty(ConfigValidator.Validate(config));
        Assert.NotEmpty(config.Subsystems);
        foreach (var ns in config.Subsystems.SelectMany(s => s.Namespaces))
        {
            // File namespaces live in the data volume, with a size so that the target creates them on first start.
            Assert.Equal("file", ns.Backend);
            Assert.StartsWith(DataDir + "/", ns.Path);
            Assert.NotNull(ns.Size);
        }
    }

    /// <summary>The options the target really runs with — the image's ENV, then the container's env, then its
    /// args — parsed by <see cref="CommandLine"/>, agree with the declared ports and the probes.</summary>
    [Theory]
    [MemberData(nameof(PodFiles))]
    public void TargetContainer_OptionsPortsAndProbesAgree(string file)
    {
        var objects = Manifests.Load(file);
        var spec = objects.Single(o => o.Kind is "Pod" or "Deployment").PodSpec;
        var c = Manifests.TargetContainer(spec);
        Assert.Equal(TargetImage, c["image"].S.Split(':')[0].Split('/')[^1]);
        Assert.NotEqual("Always", c["imagePullPolicy"].Text); // images are loaded into the nodes or pushed with a fixed tag

        int nvmePort = c["ports"].Find(p => p["name"].Text == "nvme-tcp", "nvme-tcp")["containerPort"].Int;
        int apiPort = c["ports"].Find(p => p["name"].Text == "api", "api")["containerPort"].Int;
        Assert.Equal(4420, nvmePort);
        Assert.Equal(ApiConfig.DefaultPort, apiPort);

        // The configuration file named by --config is the ConfigMap's target.json, copied into the data volume by seed-config.
        var args = c["args"].Items.Select(a => a.S).ToList();
        int configArg = args.IndexOf("--config");
        Assert.True(configArg >= 0 && configArg + 1 < args.Count, $"{c}: args must name the configuration file with --config");
        var configPath = args[configArg + 1];
        Assert.StartsWith(DataDir + "/", configPath);
        var seed = spec["initContainers"].Find(x => x["name"].Text == "seed-config", "seed-config");
        Assert.True(seed.Exists, $"{spec}: no seed-config init container");
        var seedCommand = string.Join(" ", seed["command"].Items.Select(a => a.S));
        var configMount = seed["volumeMounts"].Find(m => spec["volumes"].Find(v => v["name"].Text == m["name"].Text, "")["configMap"].Exists, "configMap mount");
        Assert.Contains($"{configMount["mountPath"].S}/target.json", seedCommand);
        Assert.Contains(configPath, seedCommand);
        var configVolume = spec["volumes"].Find(v => v["name"].Text == configMount["name"].Text, "config");
        Assert.Equal(objects.Single(o => o.Kind == "ConfigMap").Name, configVolume["configMap"]["name"].S);

        var temp = Path.GetTempFileName();
        try
        {
            File.WriteAllText(temp, Manifests.TargetJson(file));
            var env = new Hashtable();
            foreach (var (key, value) in DockerfileModel.Load(Repo.Dockerfile).Env("runtime")) env[key] = value;
            foreach (var e in c["env"].Items)
            {
                var name = e["name"].S;
                if (e["value"].Exists) env[name] = e["value"].S;
                else if (e["valueFrom"]["fieldRef"]["fieldPath"].Text == "status.podIP") env[name] = "10.244.1.17";
                else Assert.True(e["valueFrom"]["secretKeyRef"]["optional"].Bool == true, $"{e}: only optional secrets (the token) may come from elsewhere");
            }
            var cl = CommandLine.Parse([.. args.Select(a => a == configPath ? temp : a)], env);
            Assert.Empty(cl.Errors);
            Assert.Empty(ConfigValidator.Validate(cl.Config));

            // NVMe/TCP on every Pod address at the declared port; the discovery log reports the Pod IP.
            var port = Assert.Single(cl.Config.Ports);
            Assert.Equal("0.0.0.0", port.Address);
            Assert.Equal(nvmePort, port.Port);
            Assert.Equal("10.244.1.17", port.AdvertisedAddress);
            // The management API on the Pod address too (the kubelet probes the Pod IP, not loopback).
            Assert.NotNull(cl.Api);
            Assert.Equal("0.0.0.0", cl.Api.Address);
            Assert.Equal(apiPort, cl.Api.Port);
            Assert.Null(cl.Api.Token);
        }
        finally { File.Delete(temp); }

        AssertProbe(c, "readinessProbe", "/readyz", apiPort);
        AssertProbe(c, "livenessProbe", "/healthz", apiPort);
        if (c["startupProbe"].Exists) AssertProbe(c, "startupProbe", "/readyz", apiPort);
    }

    private static void AssertProbe(Y container, string probe, string path, int apiPort)
    {
        var get = container[probe]["httpGet"];
        Assert.True(get.Exists, $"{container}: {probe} must be an httpGet probe");
        Assert.Equal(path, get["path"].S);
        Assert.Equal(apiPort, Manifests.ResolvePort(container, get["port"]));
        Assert.NotEqual("HTTPS", get["scheme"].Text);
        Assert.False(get["httpHeaders"].Exists, $"{get}: the health endpoints need no token");
    }

    [Theory]
    [MemberData(nameof(PodFiles))]
    public void EveryContainer_IsHardenedAndHasResources(string file)
    {
        var spec = Manifests.Load(file).Single(o => o.Kind is "Pod" or "Deployment").PodSpec;
        var pod = spec["securityContext"];
        int uid = int.Parse(DockerfileModel.Load(Repo.Dockerfile).StageArgs("runtime")["APP_UID"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.NotEqual(0, uid);
        Assert.Equal(uid, pod["runAsUser"].Int);
        Assert.Equal(uid, pod["fsGroup"].Int);
        Assert.Equal("RuntimeDefault", pod["seccompProfile"]["type"].S);
        Assert.NotEqual(true, spec["hostNetwork"].Bool);
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
        var spec = objects.Single(o => o.Kind is "Pod" or "Deployment").PodSpec;
        var volumes = spec["volumes"].Items.ToDictionary(v => v["name"].S);
        foreach (var c in Manifests.AllContainers(spec))
            foreach (var m in c["volumeMounts"].Items)
                Assert.True(volumes.ContainsKey(m["name"].S), $"{m}: volume {m["name"].S} is not declared");
        foreach (var v in volumes.Values)
        {
            if (v["configMap"].Exists) Assert.Contains(objects, o => o.Kind == "ConfigMap" && o.Name == v["configMap"]["name"].S);
            if (v["persistentVolumeClaim"].Exists) Assert.Contains(objects, o => o.Kind == "PersistentVolumeClaim" && o.Name == v["persistentVolumeClaim"]["claimName"].S);
        }
        // The target's data directory: a writable emptyDir or PVC mount (backing files and the writable configuration).
        var target = Manifests.TargetContainer(spec);
        var data = target["volumeMounts"].Find(m => m["mountPath"].Text == DataDir, DataDir);
        Assert.True(data.Exists, $"{target}: nothing is mounted at {DataDir}");
        Assert.NotEqual(true, data["readOnly"].Bool);
        var volume = volumes[data["name"].S];
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
        var dataVolume = target["volumeMounts"].Find(m => m["mountPath"].Text == DataDir, DataDir)["name"].S;
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
        Assert.Equal(4420, port["port"].Int);
        Assert.Equal("TCP", port["protocol"].Text ?? "TCP");
        Assert.Equal(4420, Manifests.ResolvePort(target, port["targetPort"]));
        // The management API is not published: no Service in deploy/kubernetes points at it.
        foreach (var s in Manifests.LoadAll().Where(o => o.Kind == "Service"))
            foreach (var p in s.Root["spec"]["ports"].Items)
                Assert.NotEqual(ApiConfig.DefaultPort, Manifests.ResolvePort(target, p["targetPort"].Exists ? p["targetPort"] : p["port"]));
    }
}
