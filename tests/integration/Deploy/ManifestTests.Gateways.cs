using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Target.Cli;
using Target.Configuration;

namespace Integration.Tests.Deploy;

/// <summary>deploy/kubernetes/gateways.yaml (Rook Ceph, automatic failover): the configuration each gateway's init
/// container writes — rendered by running that container's own script for every ordinal — read by the target's
/// command line and validator; disjoint CNTLID ranges; the peers; one Service per replica; the Ceph objects and the
/// caps failover needs; the NetworkPolicy's egress to Ceph. The hardening, token, socket and volume checks of every
/// workload (ManifestTests.cs) cover the StatefulSet too.</summary>
public sealed partial class ManifestTests
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    /// <summary>The NVMET_* variables the target reads (its --help names each option's variable) and those its
    /// client commands read (`nvme-tcp-target ana list` in the container).</summary>
    private static HashSet<string> KnownVariables()
    {
        var help = CommandLine.HelpText() + ClientCli.CommandHelp("ana");
        var known = Regex.Matches(help, @"\[env (NVMET_[A-Z0-9_]+)\]").Select(m => m.Groups[1].Value).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("NVMET_PEERS", known);   // the help lists the failover options' variables
        Assert.Contains("NVMET_API_URL", known); // and the client's
        return known;
    }

    /// <summary>In every workload, each container that runs the target image (the target, and init containers that
    /// use the image for a shell) sets only NVMET_* variables the target or its client reads — a misspelt one
    /// (NVMET_PEER for NVMET_PEERS) would be ignored without a word — and the target container's args are options the
    /// target's command line knows.</summary>
    [Theory]
    [MemberData(nameof(PodFiles))]
    public void TargetImageContainers_UseOnlyVariablesAndOptionsTheTargetKnows(string file)
    {
        var known = KnownVariables();
        var spec = PodSpecOf(file);
        foreach (var c in Manifests.AllContainers(spec).Where(c => c["image"].S.Split(':')[0].Split('/')[^1] == TargetImage))
            foreach (var e in c["env"].Items.Select(e => e["name"].S).Where(n => n.StartsWith("NVMET_", StringComparison.Ordinal)))
                Assert.True(known.Contains(e), $"{c}: {e} is not a variable the target reads (nvme-tcp-target --help)");
        var target = Manifests.TargetContainer(spec);
        var args = target["args"].Items.Select(a => a.S).ToList();
        // Every "--x" is an option (the values are not): Parse reports unknown ones; a missing config file is fine here.
        var errors = CommandLine.Parse([.. args], new System.Collections.Hashtable()).Errors.Where(e => e.StartsWith("unknown option", StringComparison.Ordinal) || e.Contains("needs a value", StringComparison.Ordinal));
        Assert.Empty(errors);
    }

    /// <summary>Gateway K's configuration as its init container writes it: accepted by the target's command line with the
    /// container's args and environment and by the validator; the subsystem under failover with this gateway's CNTLID
    /// range K*1000+1..K*1000+999; its own port (id K+1) advertised as its Service's address; the other gateways'
    /// Services as peers (port id J+1 each, so every discovery log numbers the paths alike); the Pod's name as the
    /// gateway name; the same subsystem and namespaces on every gateway; the RBD namespace on the CephBlockPool as the
    /// CephClient, with ceph.conf and keyring where the Ceph secret is mounted.</summary>
    [Fact]
    public async Task Gateways_RenderedConfigurations_AreAcceptedByTheTarget_WithDisjointCntlidRanges_AndTheOthersAsPeers()
    {
        var set = GatewaySet.StatefulSet();
        int n = GatewaySet.Replicas();
        Assert.Equal(2, n);
        var services = GatewaySet.ServiceAddresses();
        var target = Manifests.TargetContainer(set.PodSpec);
        var args = target["args"].Items.Select(a => a.S).ToList();
        var configPath = args[args.IndexOf("--config") + 1];
        var objects = GatewaySet.Objects();
        var pool = objects.Single(o => o.Kind == "CephBlockPool");
        var client = objects.Single(o => o.Kind == "CephClient");
        var (cephMount, cephVolume) = Manifests.MountAt(set.PodSpec, target, "/etc/nvmet-ceph");
        Assert.True(cephMount.Exists && cephMount["readOnly"].Bool == true, $"{target}: the Ceph secret is mounted read-only at /etc/nvmet-ceph");
        var cephFiles = cephVolume["secret"]["items"].Items.Select(i => i["path"].S).ToHashSet();

        var dir = Directory.CreateTempSubdirectory("nvmet-gateways-");
        try
        {
            var configs = new List<TargetConfig>();
            for (int k = 0; k < n; k++)
            {
                var r = await GatewaySet.RenderAsync(k, services, dir.FullName);
                Assert.True(r.Code == 0, $"gateway-config for ordinal {k} exited {r.Code}: {r.Err}");
                Assert.Matches(@"@[A-Z_]+@", GatewaySet.Template());
                Assert.DoesNotMatch(@"@[A-Z_]+@", r.Json); // every placeholder filled

                // What the target makes of it, with the container's args and environment (the image's ENV, then env).
                var env = Manifests.EffectiveEnv(target, PodIp, $"{set.Name}-{k}");
                var token = Path.Combine(dir.FullName, "api-token");
                File.WriteAllText(token, "manifest-test-token\n");
                var cl = CommandLine.Parse([.. args.Select(a => a == configPath ? r.ConfigPath : a)],
                    new System.Collections.Hashtable(env.ToDictionary(e => e.Key, e => e.Key == "NVMET_API_TOKEN_FILE" ? token : e.Value)));
                Assert.Empty(cl.Errors);
                Assert.Empty(ConfigValidator.Validate(cl.Config));
                var c = cl.Config;
                configs.Add(c);

                // NVMET_LISTEN is empty, so the file's port stays, with its advertised address: this gateway's Service.
                var port = Assert.Single(c.Ports);
                Assert.Equal(("0.0.0.0", Deployed.NvmePort, (ushort)(k + 1)), (port.Address, port.Port, port.Id));
                Assert.Equal(services[$"{set.Name}-{k}"], port.AdvertisedAddress);
                // Peers: every other gateway's Service, port id J+1, none twice, none of them this gateway.
                var peers = c.Peers ?? [];
                Assert.Equal(Enumerable.Range(0, n).Where(j => j != k).Select(j => ((ushort)(j + 1), services[$"{set.Name}-{j}"], Deployed.NvmePort)),
                    peers.Select(p => (p.PortId, p.Address, p.Port)));
                Assert.All(peers, p => Assert.Null(p.Subsystems)); // every subsystem of the gateway
                // The gateway: the Pod's name, the lease.
                Assert.Equal($"{set.Name}-{k}", c.Gateway?.Name);
                Assert.Null(ConfigValidator.GatewayNameProblem(c.Gateway!.Name!));
                Assert.InRange(c.Gateway.LeaseSeconds ?? GatewayConfig.DefaultLeaseSeconds, 2, 300);

                var sub = Assert.Single(c.Subsystems);
                Assert.True(sub.Failover);
                Assert.Equal(((ushort)(k * 1000 + 1), (ushort)(k * 1000 + 999)), (sub.CntlidMin, sub.CntlidMax));
                Assert.NotEqual(true, sub.AllowAnyHost);
                Assert.NotEmpty(sub.AllowedHosts);
                var ns = Assert.Single(sub.Namespaces);
                Assert.Equal("rbd", ns.Backend);
                Assert.Equal(pool.Name, ns.Pool);
                Assert.Equal(client.Name, ns.ClientId);
                Assert.Equal($"{cephMount["mountPath"].S}/ceph.conf", ns.CephConf);
                Assert.Equal($"{cephMount["mountPath"].S}/keyring", ns.Keyring);
                Assert.Equal(["ceph.conf", "keyring"], cephFiles.Order(StringComparer.Ordinal));
                Assert.NotNull(ns.Size);
                Assert.Contains($"port {k + 1} advertised as {services[$"{set.Name}-{k}"]}", r.Out);
            }

            // The CNTLID ranges: inside 1..65519 and pairwise disjoint.
            var ranges = configs.Select(c => (Min: (int)c.Subsystems[0].CntlidMin!, Max: (int)c.Subsystems[0].CntlidMax!)).ToList();
            AssertDisjointCntlidRanges(ranges);
            // One subsystem on every gateway: the same NQN and namespaces (namespace identity comes from NQN and NSID).
            foreach (var c in configs.Skip(1))
            {
                Assert.Equal(configs[0].Subsystems[0].Nqn, c.Subsystems[0].Nqn);
                Assert.Equal(JsonSerializer.Serialize(configs[0].Subsystems[0].Namespaces, TargetConfig.Json), JsonSerializer.Serialize(c.Subsystems[0].Namespaces, TargetConfig.Json));
            }
            // Distinct addresses and gateway names: a host sees N paths, each gateway is someone else.
            Assert.Equal(n, configs.Select(c => c.Ports[0].AdvertisedAddress).Distinct().Count());
            Assert.Equal(n, configs.Select(c => c.Gateway!.Name).Distinct().Count());
        }
        finally { dir.Delete(recursive: true); }
    }

    private static void AssertDisjointCntlidRanges(IReadOnlyList<(int Min, int Max)> ranges)
    {
        foreach (var (min, max) in ranges)
        {
            Assert.True(min >= 1 && max <= Nvme.Core.Model.Subsystem.MaxCntlid && min <= max, $"CNTLID range {min}-{max} is not inside 1..{Nvme.Core.Model.Subsystem.MaxCntlid}");
        }
        var sorted = ranges.OrderBy(r => r.Min).ToList();
        for (int i = 1; i < sorted.Count; i++)
            Assert.True(sorted[i].Min > sorted[i - 1].Max, $"CNTLID ranges {sorted[i - 1].Min}-{sorted[i - 1].Max} and {sorted[i].Min}-{sorted[i].Max} overlap");
    }

    /// <summary>The script's limits: scaled to the most gateways it allows (65), every ordinal gets a range inside
    /// 1..65519 and the ranges are disjoint; an ordinal at or past GATEWAYS, and a gateway whose Service is missing (scaled
    /// up without adding it), fail the init container with a message saying why.</summary>
    [Fact]
    public async Task Gateways_InitScript_ScalesTo65Gateways_AndRefusesWhatItCannotServe()
    {
        var name = GatewaySet.StatefulSet().Name;
        var dir = Directory.CreateTempSubdirectory("nvmet-gateways-scale-");
        try
        {
            const int max = 65;
            var all = Enumerable.Range(0, max + 1).ToDictionary(k => $"{name}-{k}", k => $"127.0.{10 + k / 200}.{k % 200 + 1}");
            var ranges = new List<(int, int)>();
            for (int k = 0; k < max; k++)
            {
                var r = await GatewaySet.RenderAsync(k, all, dir.FullName, gateways: max);
                Assert.True(r.Code == 0, $"ordinal {k} of {max}: exit {r.Code}: {r.Err}");
                var sub = JsonSerializer.Deserialize<TargetConfig>(r.Json, TargetConfig.Json)!.Subsystems[0];
                ranges.Add((sub.CntlidMin!.Value, sub.CntlidMax!.Value));
                if (k is 0 or max - 1)
                    Assert.Equal(max - 1, JsonSerializer.Deserialize<TargetConfig>(r.Json, TargetConfig.Json)!.Peers!.Count);
            }
            AssertDisjointCntlidRanges(ranges);
            Assert.Equal((64001, 64999), ranges[^1]);

            // A 66th gateway would need CNTLIDs past 65519.
            var past = await GatewaySet.RenderAsync(max, all, dir.FullName, gateways: max + 1);
            Assert.NotEqual(0, past.Code);
            Assert.Contains("above 64", past.Err);
            // An ordinal the configured number of gateways does not include.
            var beyond = await GatewaySet.RenderAsync(GatewaySet.Replicas(), GatewaySet.ServiceAddresses(), dir.CreateSubdirectory("beyond").FullName);
            Assert.NotEqual(0, beyond.Code);
            Assert.Contains("outside 0..GATEWAYS-1", beyond.Err);
            Assert.False(File.Exists(beyond.ConfigPath));
            // Scaled up without the new gateway's Service: gateway 0 cannot list it as a peer.
            var missing = await GatewaySet.RenderAsync(0, GatewaySet.ServiceAddresses(), dir.CreateSubdirectory("missing").FullName, gateways: GatewaySet.Replicas() + 1);
            Assert.NotEqual(0, missing.Code);
            Assert.Contains($"the Service {name}-{GatewaySet.Replicas()} does not resolve", missing.Err);
            Assert.False(File.Exists(missing.ConfigPath));
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>The StatefulSet: Parallel, its replicas equal to the init container's GATEWAYS, its governing Service
    /// headless; the init container reads the ConfigMap's template where the ConfigMap is mounted and writes the file the
    /// target's --config names, into the volume both mount; the Pod's name comes from the downward API.</summary>
    [Fact]
    public void Gateways_StatefulSet_IsParallel_AndItsInitContainerWritesTheTargetsConfiguration()
    {
        var objects = GatewaySet.Objects();
        var set = GatewaySet.StatefulSet();
        var spec = set.Root["spec"];
        Assert.Equal("nvmet-gateway", set.Name);
        Assert.Equal("Parallel", spec["podManagementPolicy"].S);
        Assert.Equal("RollingUpdate", spec["updateStrategy"]["type"].Text ?? "RollingUpdate");
        var templateLabels = spec["template"]["metadata"]["labels"].Entries.ToDictionary(e => e.Key, e => e.Value.S);
        Assert.True(Manifests.Selects(spec["selector"], templateLabels), $"{set}: the selector does not select its own Pods");

        var init = GatewaySet.InitContainer();
        Assert.Contains(set.PodSpec["initContainers"].Items, c => c["name"].Text == GatewaySet.InitName); // an init container: before the target
        var initEnv = init["env"].Items.ToDictionary(e => e["name"].S);
        Assert.Equal("metadata.name", initEnv["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"].S);
        Assert.Equal(GatewaySet.Replicas(), int.Parse(initEnv["GATEWAYS"]["value"].S, Inv));

        var target = Manifests.TargetContainer(set.PodSpec);
        var args = target["args"].Items.Select(a => a.S).ToList();
        Assert.False(target["command"].Exists, $"{target}: the image's entry point is the target; options go in args");
        var configPath = args[args.IndexOf("--config") + 1];
        Assert.Equal(configPath, initEnv["CONFIG"]["value"].S);
        // The template's directory is the ConfigMap's mount; the configuration's, the data volume both containers mount.
        var templatePath = initEnv["TEMPLATE"]["value"].S;
        var (templateMount, templateVolume) = Manifests.MountAt(set.PodSpec, init, Path.GetDirectoryName(templatePath)!);
        Assert.Equal(objects.Single(o => o.Kind == "ConfigMap").Name, templateVolume["configMap"]["name"].S);
        Assert.True(templateMount["readOnly"].Bool == true);
        Assert.True(objects.Single(o => o.Kind == "ConfigMap").Root["data"][Path.GetFileName(templatePath)].Exists, $"the ConfigMap has no key {Path.GetFileName(templatePath)}");
        var dataDir = Path.GetDirectoryName(configPath)!;
        var (initData, dataVolume) = Manifests.MountAt(set.PodSpec, init, dataDir);
        var (targetData, _) = Manifests.MountAt(set.PodSpec, target, dataDir);
        Assert.Equal(initData["name"].S, targetData["name"].S);
        Assert.NotEqual(true, initData["readOnly"].Bool);
        Assert.True(dataVolume["emptyDir"].Exists, $"{dataVolume}: the rendered configuration lives in an emptyDir (the namespaces are in Ceph)");

        // The Ceph secret: required, no world bits, the two files the configuration names.
        var (_, ceph) = Manifests.MountAt(set.PodSpec, target, "/etc/nvmet-ceph");
        Assert.Equal("nvmet-gateway-ceph", ceph["secret"]["secretName"].S);
        Assert.True(ceph["secret"]["optional"].Bool == false, $"{ceph}: optional: false (a gateway without Ceph credentials must not start)");
        Assert.Equal(0, Convert.ToInt32(ceph["secret"]["defaultMode"].S, 8) & 0b111);
        Assert.Equal(["ceph.conf", "keyring"], ceph["secret"]["items"].Items.Select(i => i["key"].S).Order(StringComparer.Ordinal));
        // The instructions for filling it are in the file, with the names Rook uses.
        var text = File.ReadAllText(Path.Combine(Repo.KubernetesDir, GatewaySet.FileName));
        var clientName = objects.Single(o => o.Kind == "CephClient").Name;
        Assert.Contains($"kubectl create secret generic {ceph["secret"]["secretName"].S}", text);
        Assert.Contains($"get secret rook-ceph-client-{clientName} -o jsonpath='{{.data.{clientName}}}'", text);
        Assert.Contains("get configmap rook-ceph-mon-endpoints", text);
        Assert.Contains($"[client.{clientName}]", text);
    }

    /// <summary>A host needs one address per gateway: a ClusterIP Service per replica, each selecting exactly its Pod by
    /// the StatefulSet's pod-name label and exposing only NVMe/TCP, and the headless governing Service.</summary>
    [Fact]
    public void Gateways_OneServicePerReplica_SelectingItsPod_PlusTheHeadlessService()
    {
        var objects = GatewaySet.Objects();
        var set = GatewaySet.StatefulSet();
        var labels = set.Root["spec"]["template"]["metadata"]["labels"].Entries.ToDictionary(e => e.Key, e => e.Value.S);
        var target = Manifests.TargetContainer(set.PodSpec);
        var services = objects.Where(o => o.Kind == "Service").ToList();

        var headless = Assert.Single(services, s => s.Name == set.Root["spec"]["serviceName"].S);
        Assert.Equal("None", headless.Root["spec"]["clusterIP"].S);
        var headlessSelector = headless.Root["spec"]["selector"].Entries.ToList();
        Assert.NotEmpty(headlessSelector);
        foreach (var (key, value) in headlessSelector) Assert.Equal(value.S, labels.GetValueOrDefault(key));

        int n = GatewaySet.Replicas();
        var perGateway = services.Where(s => s != headless).ToList();
        Assert.Equal(Enumerable.Range(0, n).Select(k => $"{set.Name}-{k}"), perGateway.Select(s => s.Name).Order(StringComparer.Ordinal));
        for (int k = 0; k < n; k++)
        {
            var s = perGateway.Single(x => x.Name == $"{set.Name}-{k}");
            var podLabels = new Dictionary<string, string>(labels) { ["statefulset.kubernetes.io/pod-name"] = $"{set.Name}-{k}" };
            var selector = s.Root["spec"]["selector"].Entries.ToDictionary(e => e.Key, e => e.Value.S);
            Assert.Equal($"{set.Name}-{k}", selector.GetValueOrDefault("statefulset.kubernetes.io/pod-name"));
            foreach (var (key, value) in selector) Assert.Equal(value, podLabels.GetValueOrDefault(key));
            // Not the other gateways' Pods.
            for (int j = 0; j < n; j++)
                if (j != k) Assert.NotEqual($"{set.Name}-{j}", selector["statefulset.kubernetes.io/pod-name"]);
            Assert.Equal("ClusterIP", s.Root["spec"]["type"].Text ?? "ClusterIP");
            var port = Assert.Single(s.Root["spec"]["ports"].Items);
            Assert.Equal(Deployed.NvmePort, port["port"].Int);
            Assert.Equal(Deployed.NvmePort, Manifests.ResolvePort(target, port["targetPort"]));
            Assert.Equal("TCP", port["protocol"].Text ?? "TCP");
        }
        // The disruption budget keeps a gateway up during voluntary disruptions.
        var pdb = Assert.Single(objects, o => o.Kind == "PodDisruptionBudget");
        Assert.Equal(1, pdb.Root["spec"]["maxUnavailable"].Int);
        Assert.True(Manifests.Selects(pdb.Root["spec"]["selector"], labels));
    }

    /// <summary>Rook's objects: the pool the namespace uses, and the client whose caps let a gateway use RBD on that
    /// pool only and blocklist a dead owner's client (the fencing step of a takeover).</summary>
    [Fact]
    public void Gateways_CephClient_HasRbdOnThePool_AndTheBlocklistCommand()
    {
        var objects = GatewaySet.Objects();
        var pool = Assert.Single(objects, o => o.Kind == "CephBlockPool");
        var client = Assert.Single(objects, o => o.Kind == "CephClient");
        foreach (var o in new[] { pool, client })
        {
            Assert.Equal("ceph.rook.io/v1", o.Root["apiVersion"].S);
            Assert.Equal("rook-ceph", o.Root["metadata"]["namespace"].S);
        }
        Assert.Equal("nvmet", pool.Name);
        Assert.Equal("nvmet-gateway", client.Name);
        Assert.True(pool.Root["spec"]["replicated"]["size"].Int >= 2, $"{pool}: a replicated pool");

        var mon = client.Root["spec"]["caps"]["mon"].S.Split(',', StringSplitOptions.TrimEntries);
        Assert.Contains("profile rbd", mon);
        Assert.Contains("allow command \"osd blocklist\"", mon);
        var osd = client.Root["spec"]["caps"]["osd"].S.Split(',', StringSplitOptions.TrimEntries);
        Assert.Equal([$"profile rbd pool={pool.Name}"], osd);
        Assert.Equal(["mon", "osd"], client.Root["spec"]["caps"].Keys.Order(StringComparer.Ordinal));
        // The namespace is in that pool, as that client (the template, before rendering).
        Assert.Contains($"\"pool\": \"{pool.Name}\"", GatewaySet.Template());
        Assert.Contains($"\"clientId\": \"{client.Name}\"", GatewaySet.Template());
    }

    /// <summary>The gateways' NetworkPolicy isolates them both ways: in, what every target's policy admits (checked with
    /// the others in ManifestTests.cs); out, the Ceph daemons in rook-ceph (monitors on 3300 and 6789, OSDs on
    /// 6800-7300) and the cluster DNS, nothing else.</summary>
    [Fact]
    public void Gateways_NetworkPolicy_AdmitsNvmeTcpIn_AndLetsOnlyCephAndDnsOut()
    {
        var policy = Assert.Single(GatewaySet.Objects(), o => o.Kind == "NetworkPolicy");
        var types = policy.Root["spec"]["policyTypes"].Items.Select(t => t.S).ToList();
        Assert.Equal(["Egress", "Ingress"], types.Order(StringComparer.Ordinal));
        Assert.Contains(policy.Root["spec"]["ingress"].Items, r => r["ports"].Items.Any(p => p["port"].Int == Deployed.NvmePort));

        var egress = policy.Root["spec"]["egress"].Items.ToList();
        Assert.Equal(2, egress.Count);
        foreach (var rule in egress)
        {
            Assert.NotEmpty(rule["to"].Items);   // a rule without "to" lets everything out
            Assert.NotEmpty(rule["ports"].Items);
            Assert.DoesNotContain(rule["to"].Items, peer => peer["ipBlock"].Exists);
        }
        var ceph = egress.Single(r => r["to"].Items.Any(p => p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].Text == "rook-ceph"));
        var cephPorts = ceph["ports"].Items.Select(p => (Proto: p["protocol"].Text ?? "TCP", Port: p["port"].Int, End: p["endPort"].Exists ? p["endPort"].Int : p["port"].Int)).ToList();
        Assert.All(cephPorts, p => Assert.Equal("TCP", p.Proto));
        foreach (var needed in new[] { 3300, 6789, 6800, 7300 })
            Assert.Contains(cephPorts, p => needed >= p.Port && needed <= p.End);
        Assert.Contains((Proto: "TCP", Port: 6800, End: 7300), cephPorts);
        Assert.DoesNotContain(cephPorts, p => p.Port <= Deployed.NvmePort && Deployed.NvmePort <= p.End);
        var dns = egress.Single(r => r != ceph);
        Assert.Equal(["TCP:53", "UDP:53"], dns["ports"].Items.Select(p => $"{p["protocol"].Text ?? "TCP"}:{p["port"].Int}").Order(StringComparer.Ordinal));
        var dnsPeer = Assert.Single(dns["to"].Items);
        Assert.Equal("kube-system", dnsPeer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].S);
        Assert.Equal("kube-dns", dnsPeer["podSelector"]["matchLabels"]["k8s-app"].S);
    }
}
