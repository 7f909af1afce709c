using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Integration.Tests.Deploy;

/// <summary>Where deploy/ lives: the repository root is the first parent of the test binaries holding the solution.</summary>
internal static class Repo
{
    public static string Root { get; } = FindRoot();

    public static string DeployDir => Path.Combine(Root, "deploy");
    public static string KubernetesDir => Path.Combine(Root, "deploy", "kubernetes");
    public static string Dockerfile => Path.Combine(Root, "deploy", "Dockerfile");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "NvmeTcpTarget.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no NvmeTcpTarget.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>What the image and the manifests agree on (deploy/README.md): the names the tests hold them to.</summary>
internal static class Deployed
{
    /// <summary>Backing files and the writable configuration: the data volume, and the only storage directory.</summary>
    public const string DataDir = "/var/lib/nvmet";
    /// <summary>The management socket's directory (a tmpfs or in-memory emptyDir over the read-only root).</summary>
    public const string SocketDir = "/run/nvmet";
    /// <summary>The management API: a Unix socket, never TCP.</summary>
    public const string Api = "unix:/run/nvmet/api.sock";
    public const int NvmePort = 4420;
    /// <summary>The read-only listener: GET /healthz, /readyz and /metrics only.</summary>
    public const int ProbesPort = 8420;
    public const string ProbesPortName = "probes";
    /// <summary>The label a Pod needs for the example NetworkPolicies to admit its NVMe/TCP connections.</summary>
    public const string ClientLabel = "nvme-tcp-client";
    /// <summary>Where the management token's secret is mounted, and the file in it.</summary>
    public const string TokenFile = "/var/run/secrets/nvmet/api-token";

    /// <summary>Whether an NVMET_API / NVMET_API_URL value keeps management off the network: a Unix socket, or off.</summary>
    public static bool IsOffTheNetwork(string api) => api.StartsWith("unix:", StringComparison.Ordinal) || api == "off";
}

/// <summary>A read-only view of a YAML node with its path, for assertions with useful messages: a missing key
/// yields a node whose <see cref="Exists"/> is false instead of an exception.</summary>
internal sealed class Y(YamlNode? node, string path)
{
    public string Path { get; } = path;
    public YamlNode? Node { get; } = node;
    public bool Exists => Node is not null;

    public Y this[string key] =>
        new(Node is YamlMappingNode m && m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null, $"{Path}.{key}");

    public IEnumerable<Y> Items => Node is YamlSequenceNode s ? s.Children.Select((c, i) => new Y(c, $"{Path}[{i}]")) : [];
    public IEnumerable<string> Keys => Node is YamlMappingNode m ? m.Children.Keys.OfType<YamlScalarNode>().Select(k => k.Value!) : [];
    public IEnumerable<(string Key, Y Value)> Entries =>
        Node is YamlMappingNode m ? m.Children.Select(kv => (((YamlScalarNode)kv.Key).Value!, new Y(kv.Value, $"{Path}.{((YamlScalarNode)kv.Key).Value}"))) : [];

    /// <summary>The scalar's text, or null when absent or not a scalar.</summary>
    public string? Text => (Node as YamlScalarNode)?.Value;

    public string S => Text ?? throw new Xunit.Sdk.XunitException($"{Path}: expected a scalar, found {(Node is null ? "nothing" : Node.NodeType.ToString())}");
    public int Int => int.TryParse(S, out var n) ? n : throw new Xunit.Sdk.XunitException($"{Path}: '{S}' is not an integer");
    public bool? Bool => Text is null ? null : bool.Parse(Text);

    /// <summary>The first sequence item for which <paramref name="predicate"/> holds, or a missing node.</summary>
    public Y Find(Func<Y, bool> predicate, string what) => Items.FirstOrDefault(predicate) ?? new Y(null, $"{Path}[{what}]");

    public override string ToString() => Path;
}

/// <summary>One document of a manifest file.</summary>
internal sealed record KubeObject(string File, int Index, Y Root)
{
    public string Kind => Root["kind"].Text ?? "";
    public string Name => Root["metadata"]["name"].Text ?? "";
    public override string ToString() => $"{File}#{Index} {Kind}/{Name}";

    /// <summary>The Pod spec of a Pod or of a workload's Pod template.</summary>
    public Y PodSpec => Kind == "Pod" ? Root["spec"] : Root["spec"]["template"]["spec"];
}

internal static class Manifests
{
    /// <summary>Every YAML document of every deploy/kubernetes/*.yaml file.</summary>
    public static IReadOnlyList<KubeObject> LoadAll() =>
        Directory.GetFiles(Repo.KubernetesDir, "*.yaml").Order(StringComparer.Ordinal).SelectMany(f => Load(System.IO.Path.GetFileName(f))).ToList();

    public static IReadOnlyList<KubeObject> Load(string fileName)
    {
        var stream = new YamlStream();
        using (var reader = new StringReader(File.ReadAllText(System.IO.Path.Combine(Repo.KubernetesDir, fileName))))
            stream.Load(reader);
        return stream.Documents.Select((d, i) => new KubeObject(fileName, i, new Y(d.RootNode, $"{fileName}#{i}"))).ToList();
    }

    /// <summary>The data["target.json"] of the file's ConfigMap (each manifest file carries its own).</summary>
    public static string TargetJson(string fileName)
    {
        var cm = Load(fileName).Single(o => o.Kind == "ConfigMap");
        return cm.Root["data"]["target.json"].S;
    }

    public static IEnumerable<Y> AllContainers(Y podSpec) => podSpec["initContainers"].Items.Concat(podSpec["containers"].Items);

    /// <summary>The container that runs the target (by name), in containers or as a native sidecar in initContainers.</summary>
    public static Y TargetContainer(Y podSpec) =>
        AllContainers(podSpec).SingleOrDefault(c => c["name"].Text == "nvme-tcp-target")
        ?? throw new Xunit.Sdk.XunitException($"{podSpec}: no container named nvme-tcp-target");

    /// <summary>The Pod spec of every workload (Pod, Deployment, StatefulSet) in deploy/kubernetes, with the labels its Pods carry.</summary>
    public static IEnumerable<(KubeObject Workload, Y Spec, IReadOnlyDictionary<string, string> Labels)> Workloads() =>
        LoadAll().Where(o => o.Kind is "Pod" or "Deployment" or "StatefulSet").Select(o => (o, o.PodSpec,
            (IReadOnlyDictionary<string, string>)(o.Kind == "Pod" ? o.Root["metadata"]["labels"] : o.Root["spec"]["template"]["metadata"]["labels"])
                .Entries.ToDictionary(e => e.Key, e => e.Value.S)));

    /// <summary>The environment a container runs with: the image's ENV (for the target's image), then the container's
    /// env. A fieldRef to the Pod IP yields <paramref name="podIp"/>, one to the Pod's name <paramref name="podName"/>;
    /// any other source fails the test (no secret may come through the environment: the token is a file).</summary>
    public static Dictionary<string, string> EffectiveEnv(Y container, string podIp = "10.244.1.17", string podName = "nvmet-pod-0")
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        if (container["image"].S.Split(':')[0].Split('/')[^1] == "nvme-tcp-target")
            foreach (var (key, value) in DockerfileModel.Load(Repo.Dockerfile).Env("runtime")) env[key] = value;
        Assert.False(container["envFrom"].Exists, $"{container}: envFrom would put a whole ConfigMap or Secret in the environment");
        foreach (var e in container["env"].Items)
        {
            var name = e["name"].S;
            if (e["value"].Exists) env[name] = e["value"].S;
            else if (e["valueFrom"]["fieldRef"]["fieldPath"].Text == "status.podIP") env[name] = podIp;
            else if (e["valueFrom"]["fieldRef"]["fieldPath"].Text == "metadata.name") env[name] = podName;
            else Assert.Fail($"{e}: {name} comes from {string.Join(",", e["valueFrom"].Keys)}; only the Pod IP and name may come from elsewhere (the token is a mounted file)");
        }
        return env;
    }

    /// <summary>The volume a container mounts at <paramref name="mountPath"/> (or a missing node), and the mount.</summary>
    public static (Y Mount, Y Volume) MountAt(Y podSpec, Y container, string mountPath)
    {
        var mount = container["volumeMounts"].Find(m => m["mountPath"].Text == mountPath, mountPath);
        var volume = podSpec["volumes"].Find(v => v["name"].Text == mount["name"].Text, mount["name"].Text ?? mountPath);
        return (mount, volume);
    }

    /// <summary>The containers (init containers included) that mount volume <paramref name="volumeName"/>.</summary>
    public static IEnumerable<string> MountedBy(Y podSpec, string volumeName) =>
        AllContainers(podSpec).Where(c => c["volumeMounts"].Items.Any(m => m["name"].Text == volumeName)).Select(c => c["name"].S);

    /// <summary>Whether a label selector (matchLabels only; matchExpressions are not used here and fail the test) selects these labels.</summary>
    public static bool Selects(Y selector, IReadOnlyDictionary<string, string> labels)
    {
        Assert.False(selector["matchExpressions"].Exists, $"{selector}: matchExpressions are not checked by these tests");
        return selector["matchLabels"].Entries.All(e => labels.TryGetValue(e.Key, out var v) && v == e.Value.S);
    }

    /// <summary>A probe's or Service's port: a number, or the name of one of the container's ports.</summary>
    public static int ResolvePort(Y container, Y port)
    {
        if (int.TryParse(port.S, out int n)) return n;
        var named = container["ports"].Find(p => p["name"].Text == port.S, port.S);
        Assert.True(named.Exists, $"{port}: '{port.S}' is not a port name of {container}");
        return named["containerPort"].Int;
    }
}

/// <summary>The instructions of deploy/Dockerfile (comments dropped, continuation lines joined).</summary>
internal sealed partial class DockerfileModel
{
    public sealed record Instruction(string Keyword, string Arguments, string Stage);

    public List<Instruction> Instructions { get; } = [];
    /// <summary>Stage names in file order (unnamed stages get their index).</summary>
    public List<string> Stages { get; } = [];
    /// <summary>Global ARG defaults (before the first FROM).</summary>
    public Dictionary<string, string> GlobalArgs { get; } = [];

    public static DockerfileModel Load(string path)
    {
        var m = new DockerfileModel();
        var logical = new List<string>();
        var current = "";
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.TrimEnd();
            if (current.Length == 0 && (line.TrimStart().StartsWith('#') || line.Trim().Length == 0)) continue;
            if (line.TrimStart().StartsWith('#')) continue; // a comment inside a continued instruction
            if (line.EndsWith('\\')) { current += line[..^1] + " "; continue; }
            logical.Add(current + line);
            current = "";
        }
        string stage = "";
        foreach (var l in logical)
        {
            var match = InstructionRegex().Match(l.Trim());
            var keyword = match.Groups[1].Value.ToUpperInvariant();
            var args = match.Groups[2].Value.Trim();
            if (keyword == "FROM")
            {
                var parts = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                stage = parts.Length >= 3 && parts[^2].Equals("AS", StringComparison.OrdinalIgnoreCase) ? parts[^1] : m.Stages.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
                m.Stages.Add(stage);
            }
            else if (keyword == "ARG" && stage.Length == 0)
            {
                var eq = args.IndexOf('=');
                if (eq > 0) m.GlobalArgs[args[..eq]] = args[(eq + 1)..];
            }
            m.Instructions.Add(new Instruction(keyword, args, stage));
        }
        return m;
    }

    /// <summary>The stages <paramref name="stage"/> builds on through FROM other-stage, itself first.</summary>
    public IEnumerable<string> Lineage(string stage)
    {
        for (var s = stage; s != null;)
        {
            yield return s;
            var from = Instructions.First(i => i.Stage == s && i.Keyword == "FROM").Arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
            s = Stages.Contains(from) ? from : null;
        }
    }

    /// <summary>Instructions in effect for a stage: its own and those of the stages it builds on.</summary>
    public IEnumerable<Instruction> For(string stage)
    {
        var lineage = Lineage(stage).ToHashSet();
        return Instructions.Where(i => lineage.Contains(i.Stage));
    }

    /// <summary>ENV key=value pairs in effect for a stage (later ones win).</summary>
    public Dictionary<string, string> Env(string stage)
    {
        var env = new Dictionary<string, string>();
        foreach (var i in For(stage).Where(i => i.Keyword == "ENV"))
            foreach (Match kv in EnvPairRegex().Matches(i.Arguments))
                env[kv.Groups[1].Value] = kv.Groups[2].Value.Trim('"');
        return env;
    }

    /// <summary>ARG defaults declared in a stage's lineage.</summary>
    public Dictionary<string, string> StageArgs(string stage)
    {
        var args = new Dictionary<string, string>();
        foreach (var i in For(stage).Where(i => i.Keyword == "ARG"))
        {
            var eq = i.Arguments.IndexOf('=');
            if (eq > 0) args[i.Arguments[..eq]] = i.Arguments[(eq + 1)..];
        }
        return args;
    }

    [GeneratedRegex(@"^(\w+)\s*(.*)$", RegexOptions.Singleline)]
    private static partial Regex InstructionRegex();

    [GeneratedRegex(@"([A-Za-z_][A-Za-z0-9_]*)=(""[^""]*""|\S*)")]
    private static partial Regex EnvPairRegex();
}

/// <summary>deploy/kubernetes/gateways.yaml: the StatefulSet, its gateway-config init container and the ConfigMap's
/// configuration template; renders a gateway's configuration by running that init container's own script with
/// /bin/sh, as the Pod would, with getent answering from a table instead of the cluster's DNS.</summary>
internal static class GatewaySet
{
    public const string FileName = "gateways.yaml";
    public const string InitName = "gateway-config";

    public static IReadOnlyList<KubeObject> Objects() => Manifests.Load(FileName);
    public static KubeObject StatefulSet() => Objects().Single(o => o.Kind == "StatefulSet");
    public static Y InitContainer() => Manifests.AllContainers(StatefulSet().PodSpec).Single(c => c["name"].Text == InitName);
    public static string Template() => Objects().Single(o => o.Kind == "ConfigMap").Root["data"]["target.json.in"].S;
    public static int Replicas() => StatefulSet().Root["spec"]["replicas"].Int;

    /// <summary>The init container's script: its command is /bin/sh -c SCRIPT.</summary>
    public static string Script()
    {
        var command = InitContainer()["command"].Items.Select(c => c.S).ToList();
        Assert.Equal(3, command.Count);
        Assert.Equal(["/bin/sh", "-c"], command.Take(2));
        return command[2];
    }

    /// <summary>The Services' ClusterIPs as the test's getent gives them: nvmet-gateway-K at 127.0.10.(K+1) for each
    /// per-gateway Service of the file (addresses that are only written into the configuration, never contacted).</summary>
    public static Dictionary<string, string> ServiceAddresses()
    {
        var prefix = StatefulSet().Name + "-";
        return Objects().Where(o => o.Kind == "Service" && o.Name.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(o => o.Name, o => $"127.0.10.{int.Parse(o.Name[prefix.Length..], System.Globalization.CultureInfo.InvariantCulture) + 1}");
    }

    public sealed record Rendered(int Code, string Out, string Err, string ConfigPath)
    {
        public string Json => File.ReadAllText(ConfigPath);
    }

    /// <summary>Runs the script for Pod <c>nvmet-gateway-ORDINAL</c> with the init container's environment (GATEWAYS
    /// replaced by <paramref name="gateways"/> when given), the template and the output in <paramref name="dir"/>, a
    /// getent that knows <paramref name="services"/> only, and a sleep that returns at once (the script's wait for a
    /// missing Service).</summary>
    public static async Task<Rendered> RenderAsync(int ordinal, IReadOnlyDictionary<string, string> services, string dir, int? gateways = null)
    {
        var bin = Path.Combine(dir, "bin");
        Directory.CreateDirectory(bin);
        var cases = string.Concat(services.Select(s => $"  {s.Key}) echo \"{s.Value}       {s.Key}.nvmet.svc.cluster.local\" ;;\n"));
        WriteExecutable(Path.Combine(bin, "getent"), $"#!/bin/sh\n[ \"$1\" = hosts ] || exit 1\ncase \"$2\" in\n{cases}  *) exit 2 ;;\nesac\n");
        WriteExecutable(Path.Combine(bin, "sleep"), "#!/bin/sh\nexit 0\n");
        var template = Path.Combine(dir, "target.json.in");
        File.WriteAllText(template, Template());
        var config = Path.Combine(dir, $"target-{ordinal}.json");

        var podName = $"{StatefulSet().Name}-{ordinal}";
        var env = Manifests.EffectiveEnv(InitContainer(), podName: podName);
        Assert.Equal(podName, env["POD_NAME"]);
        var r = await Cmd.RunAsync("/bin/sh", ["-c", Script()], TimeSpan.FromSeconds(30), psi =>
        {
            foreach (var (k, v) in env) psi.Environment[k] = v;
            if (gateways is int n) psi.Environment["GATEWAYS"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
            psi.Environment["TEMPLATE"] = template;
            psi.Environment["CONFIG"] = config;
            psi.Environment["PATH"] = bin + ":/usr/bin:/bin";
        });
        return new Rendered(r.Code, r.Out, r.Err, config);
    }

    private static void WriteExecutable(string path, string text)
    {
        File.WriteAllText(path, text);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }
}
