using System.Collections;
using System.Globalization;
using Target.Storage;

namespace Target.Configuration;

/// <summary>Parses the command line and NVMET_* environment variables into a <see cref="TargetConfig"/>.
/// Precedence: built-in defaults, then the config file, then environment variables, then the command line.</summary>
public sealed class CommandLine
{
    public const string DefaultNqn = "nqn.2026-01.io.nvmetcptarget:default";

    public bool ShowHelp { get; private set; }
    public bool ShowVersion { get; private set; }
    public List<string> Errors { get; } = [];
    public TargetConfig Config { get; private set; } = new();
    public string? ConfigPath { get; private set; }
    /// <summary>The management API listener (defaults, then the file's "api", then NVMET_API*, then --api*), with
    /// the token read from its file; null when it is off. Kept apart from <see cref="Config"/> so that overrides are
    /// not written back to the file.</summary>
    public ApiConfig? Api { get; private set; }
    /// <summary>The read-only probe listener (/healthz, /readyz, /metrics); null when it is off.</summary>
    public ProbesConfig? Probes { get; private set; }
    /// <summary>The storage path policy: the file's <c>storage</c> section with --storage-dir, --allow-block-device
    /// and their variables applied (see <see cref="StoragePolicy"/>).</summary>
    public StoragePolicy Storage { get; private set; } = null!;
    /// <summary>OTLP export, I/O trace sampling and /metrics authentication.</summary>
    public Telemetry.TelemetryOptions Telemetry { get; } = new();
    /// <summary>How long a shutdown lets connections finish their commands (--shutdown-grace, default 10 s).</summary>
    public TimeSpan ShutdownGrace { get; private set; } = TimeSpan.FromSeconds(10);
    /// <summary>Console log format: "simple" (one line per message) or "json" (one JSON object per line).</summary>
    public string LogFormat { get; private set; } = "simple";

    private sealed record Option(string Long, string? Short, string? Arg, string Env, string Help);

    private static readonly Option[] Options =
    [
        new("--config", "-c", "FILE", "NVMET_CONFIG", "JSON configuration file: ports, limits, subsystems, namespaces, allowed hosts."),
        new("--listen", "-l", "ADDR:PORT", "NVMET_LISTEN", "Listen on this address and port instead of the configured ports (default 127.0.0.1:4420)."),
        new("--advertise", null, "ADDR", "NVMET_ADVERTISE", "Address the discovery log reports as TRADDR (default: the listen address)."),
        new("--peer", null, "ADDR:PORT", "NVMET_PEERS", "A port of another gateway serving the same subsystems, repeatable: the discovery log\n" +
            "lists it too (nvme connect-all finds every path). Replaces the file's \"peers\". The variable takes ';'-separated values."),
        new("--cntlid-range", null, "MIN-MAX", "NVMET_CNTLID_RANGE", "CNTLIDs of the default subsystem (default 1-65519); gateways serving one\n" +
            "subsystem need disjoint ranges. Not with --config (cntlidMin/cntlidMax there)."),
        new("--failover", null, null, "NVMET_FAILOVER", "Automatic failover for the default subsystem: each ANA group holding RBD namespaces\n" +
            "is owned by one gateway through a lease in Ceph (optimized there, non-optimized on the\n" +
            "others); a survivor takes a dead owner's group over and blocklists it. Not with --config."),
        new("--gateway-name", null, "NAME", "NVMET_GATEWAY_NAME", "This gateway's name among those serving the same subsystems (default: the host\n" +
            "name); shown as an ANA group's owner."),
        new("--failover-lease", null, "SECONDS", "NVMET_FAILOVER_LEASE", "How long an ANA group's owner holds it without renewing (default 10, 2..300): a\n" +
            "dead owner's group is taken over that long after its last renewal."),
        new("--api", null, "unix:PATH|ADDR:PORT|off", "NVMET_API", "Management API listener. Default: a Unix socket only the target's user may use\n" +
            "(/run/nvme-tcp-target/api.sock as root, else $XDG_RUNTIME_DIR/nvme-tcp-target/api.sock). A TCP\n" +
            "listener (ADDR:PORT) needs a token (--api-token-file); off disables the API."),
        new("--api-socket-group", null, "GROUP", "NVMET_API_SOCKET_GROUP", "Let this group use the API socket too (socket 0660, its directory 0750)."),
        new("--api-token-file", null, "FILE", "NVMET_API_TOKEN_FILE", "Require \"Authorization: Bearer TOKEN\" on every API request; TOKEN is the file's\n" +
            "first line. Required for a TCP API."),
        new("--api-token", null, "TOKEN", "NVMET_API_TOKEN", "The same with the token itself. Visible to every user in `ps` and /proc:\n" +
            "prefer --api-token-file."),
        new("--api-allowed-host", null, "NAME", "NVMET_API_ALLOWED_HOSTS", "Accept this Host header name on the API and probe listeners, repeatable (the\n" +
            "variable is comma-separated). Always accepted: localhost and IP addresses; any other name\n" +
            "is refused (a web page cannot reach the API through DNS rebinding)."),
        new("--probes", null, "ADDR:PORT|off", "NVMET_PROBES", $"Read-only HTTP listener for GET /healthz, /readyz and /metrics (default\n" +
            $"127.0.0.1:{ApiConfig.DefaultPort}); it cannot change anything. off disables it."),
        new("--nqn", null, "NQN", "NVMET_NQN", $"NQN of the default subsystem (default {DefaultNqn}); not with --config."),
        new("--namespace", "-n", "SPEC", "NVMET_NAMESPACE", "Namespace of the default subsystem, repeatable; not with --config. SPEC is\n" +
            "memory:SIZE | file:PATH[:SIZE] | block:DEVICE | rbd:POOL/IMAGE[:SIZE] (Ceph, $CEPH_CONF,\n" +
            "client.admin; the size creates a missing image), optionally followed by ,bs=512|4096\n" +
            "and, for a file, ,prealloc (allocate it in full when created: a full disk shows then).\n" +
            "NSIDs are assigned 1, 2, ... Default: memory:1G. The variable takes ';'-separated SPECs."),
        new("--allow-host", null, "NQN", "NVMET_ALLOW_HOST", "Host NQN allowed to connect to the default subsystem (repeatable); not with --config."),
        new("--allow-any-host", null, null, "NVMET_ALLOW_ANY_HOST", "Let any host connect to the default subsystem. Without --allow-host this is the\n" +
            "default only when every listen address is loopback; on another address say it explicitly."),
        new("--storage-dir", null, "DIR", "NVMET_STORAGE_DIRS", "File namespaces must lie in one of these directories (repeatable; the variable is\n" +
            "':'-separated; replaces storage.directories). Relative namespace paths go into the first.\n" +
            $"Default: {StoragePolicy.RootDefaultDirectory} as root, else the config file's directory,\n" +
            "else $XDG_STATE_HOME/nvme-tcp-target."),
        new("--allow-block-device", null, "DEV", "NVMET_BLOCK_DEVICES", "A block device block namespaces may use (repeatable; the variable is ':'-separated;\n" +
            "replaces storage.blockDevices). Default: none."),
        new("--mqes", null, "N", "NVMET_MQES", "CAP.MQES, maximum queue entries 0's based (default 127: queues of 128)."),
        new("--mdts", null, "N", "NVMET_MDTS", "Maximum data transfer size as 2^N x 4 KiB (default 8: 1 MiB)."),
        new("--in-capsule", null, "BYTES", "NVMET_IN_CAPSULE", "In-capsule data accepted on I/O queues (default 8192)."),
        new("--max-h2c-data", null, "BYTES", "NVMET_MAX_H2C_DATA", "MAXH2CDATA: largest H2CData PDU, the R2T size (default 131072)."),
        new("--io-queues", null, "N", "NVMET_IO_QUEUES", "I/O queues per controller (default 64)."),
        new("--data-buffer-budget", null, "SIZE", "NVMET_DATA_BUFFER_BUDGET", "Memory all data buffers over 16 KiB may take together (default 64M, at least\n" +
            "one MDTS): a command that finds it spent waits for a buffer before its R2T or read."),
        new("--memory-namespaces", null, "SIZE", "NVMET_MEMORY_NAMESPACES", "Total size memory namespaces may have together (default 3/4 of the available\n" +
            "memory; 0 allows none): adding or growing one past it is refused."),
        new("--max-connections", null, "N", "NVMET_MAX_CONNECTIONS", "NVMe/TCP connections open at once; more are closed as they are accepted (default 1024)."),
        new("--max-controllers-per-host", null, "N", "NVMET_MAX_CONTROLLERS_PER_HOST", "Controllers one host NQN may hold, discovery controllers included; a Connect\n" +
            "beyond gets Controller Busy (default 64)."),
        new("--host-buffer-share", null, "PERCENT", "NVMET_HOST_BUFFER_SHARE", "Share 1..100 of the data buffer budget one host NQN may hold; a host at its share\n" +
            "waits, the others do not (default 50)."),
        new("--r2t-timeout", null, "SECONDS", "NVMET_R2T_TIMEOUT", "The data for an R2T must arrive within this; otherwise the command fails, its\n" +
            "buffer is freed and the connection is closed (default 10)."),
        new("--pdu-timeout", null, "SECONDS", "NVMET_PDU_TIMEOUT", "A PDU, once started, must be complete within this, however slowly it trickles in\n" +
            "(default 30)."),
        new("--connect-timeout", null, "SECONDS", "NVMET_CONNECT_TIMEOUT", "From accept, ICReq and a successful Connect must both arrive within this (default 10)."),
        new("--poll", null, null, "NVMET_POLL", "Polling mode: dedicated reactor threads own the connections and busy-poll their\n" +
            "sockets (receive, execute and send with no wake-up between them: the lowest latency). A\n" +
            "reactor keeps one core busy while traffic flows; idle, it blocks (see --poll-idle). Off by default."),
        new("--reactors", null, "N", "NVMET_REACTORS", "Reactor threads of the polling mode (default 1)."),
        new("--reactor-cpus", null, "LIST", "NVMET_REACTOR_CPUS", "CPUs the reactors run on, comma-separated, one per reactor (default: not pinned)."),
        new("--poll-idle", null, "MICROSECONDS", "NVMET_POLL_IDLE", "How long a reactor with no traffic keeps spinning before it blocks (default 10000)."),
        new("--tcp-keepalive", null, "SECONDS|off", "NVMET_TCP_KEEPALIVE", "TCP keep-alive idle time on NVMe/TCP sockets, then a probe every 10 s, 6 probes\n" +
            "(default 60); off disables it."),
        new("--c2h-success", null, "on|off", "NVMET_C2H_SUCCESS", "Complete reads with C2HData SUCCESS when the host disabled SQ flow control (default on)."),
        new("--log-level", null, "LEVEL", "NVMET_LOG_LEVEL", "trace, debug, information, warning or error (default information)."),
        new("--log-format", null, "simple|json", "NVMET_LOG_FORMAT", "Console log format: one line per message, or one JSON object per line with the\n" +
            "event id, category, message and its named values (default simple)."),
        new("--shutdown-grace", null, "SECONDS", "NVMET_SHUTDOWN_GRACE", "On SIGTERM/Ctrl-C: stop accepting connections and new commands, give the\n" +
            "commands already received this long to finish, then flush namespaces and exit 0 (default 10)."),
        new("--otlp-endpoint", null, "URL", "NVMET_OTLP_ENDPOINT", "Export metrics and traces over OTLP to this collector (e.g. http://collector:4318);\n" +
            "also taken from OTEL_EXPORTER_OTLP_ENDPOINT. Default: no export (GET /metrics always works)."),
        new("--otlp-protocol", null, "http/protobuf|grpc", "NVMET_OTLP_PROTOCOL", "OTLP protocol (default http/protobuf: /v1/metrics and /v1/traces are appended\n" +
            "to the endpoint); also OTEL_EXPORTER_OTLP_PROTOCOL. Push interval: OTEL_METRIC_EXPORT_INTERVAL ms (60000)."),
        new("--trace-io-sample-rate", null, "RATE", "NVMET_TRACE_IO_SAMPLE_RATE", "Fraction 0..1 of I/O commands traced (default 0). Connections and admin\n" +
            "commands are always traced when OTLP is on."),
        new("--metrics-auth", null, "none|token", "NVMET_METRICS_AUTH", "Whether GET /metrics needs the API token (default none: scrapers need no secret;\n" +
            "/healthz and /readyz never do)."),
        new("--help", "-h", null, "", "Show this help and exit."),
        new("--version", null, null, "", "Show the version and exit."),
    ];

    public static string HelpText()
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine("nvme-tcp-target: an NVMe-over-TCP target (Linux hosts attach with `nvme connect -t tcp`).");
        w.WriteLine();
        w.WriteLine("Usage: nvme-tcp-target [options]                      run the target");
        w.WriteLine("       nvme-tcp-target <command> <action> [options]   manage a running target (see Client commands)");
        w.WriteLine();
        w.WriteLine("With no options it listens on 127.0.0.1:4420 with one subsystem, " + DefaultNqn + ",");
        w.WriteLine("holding a 1 GiB memory namespace, plus the discovery subsystem, and prints the nvme connect command.");
        w.WriteLine();
        w.WriteLine("Options (each may also come from the environment variable named; the command line wins):");
        foreach (var o in Options)
        {
            var names = (o.Short != null ? o.Short + ", " : "    ") + o.Long + (o.Arg != null ? " " + o.Arg : "");
            var lines = o.Help.Split('\n');
            w.WriteLine($"  {names,-28} {lines[0]}");
            foreach (var l in lines.Skip(1)) w.WriteLine($"  {"",-28} {l}");
            if (o.Env.Length > 0) w.WriteLine($"  {"",-28} [env {o.Env}]");
        }
        w.WriteLine();
        w.WriteLine("Client commands (talk to a running target's management API; run one with --help for its options):");
        w.WriteLine("  nvme-tcp-target subsys list|create|set|delete  subsystems, and who may connect to them");
        w.WriteLine("  nvme-tcp-target ns list|add|remove|resize      namespaces (hot-add/remove: connected hosts are notified)");
        w.WriteLine("  nvme-tcp-target hosts list|add|remove          allowed host NQNs");
        w.WriteLine("  nvme-tcp-target ctrl list                      connected controllers and their queues");
        w.WriteLine("  nvme-tcp-target ana list|set|move|owner        ANA groups: a group's state per port (live), a namespace's group, a failover group's owner");
        w.WriteLine($"  e.g. nvme-tcp-target ns add --nqn {DefaultNqn} --memory 1G");
        w.WriteLine();
        w.WriteLine("Who may do what: the management API (--api) listens on a Unix socket that only the target's user (and");
        w.WriteLine("  --api-socket-group) may open; on TCP it needs a token. The probe listener (--probes) answers GET /healthz,");
        w.WriteLine("  /readyz (200 when listening with every namespace's store open, else 503 with a JSON reason) and /metrics");
        w.WriteLine("  (Prometheus text; token only with --metrics-auth token), and nothing else. A subsystem admits only its");
        w.WriteLine("  allowed hosts unless it has allowAnyHost (the zero-config default does, on loopback only).");
        w.WriteLine();
        w.WriteLine("Exit codes: 0 after a clean shutdown (Ctrl-C / SIGTERM; a second signal exits at once with 130),");
        w.WriteLine("2 for a configuration or usage error, 1 otherwise.");
        w.WriteLine("The configuration file format is described in README.md, section 'Configuration reference'.");
        return w.ToString();
    }

    public static CommandLine Parse(string[] args, IDictionary? environment = null)
    {
        var cl = new CommandLine();
        var values = new List<(Option Option, string? Value)>();
        environment ??= Environment.GetEnvironmentVariables();
        foreach (var o in Options)
        {
            if (o.Env.Length == 0 || environment[o.Env] is not string v || v.Length == 0) continue;
            if (o.Long is "--namespace" or "--peer") foreach (var part in v.Split(';', StringSplitOptions.RemoveEmptyEntries)) values.Add((o, part));
            else if (o.Long is "--allow-host" or "--api-allowed-host") foreach (var part in v.Split(new[] { ';', ',', ' ' }, StringSplitOptions.RemoveEmptyEntries)) values.Add((o, part));
            else if (o.Arg is null) { if (v is "1" or "true" or "yes" or "on") values.Add((o, null)); } // a flag: NVMET_ALLOW_ANY_HOST=1
            else if (o.Long is "--storage-dir" or "--allow-block-device") foreach (var part in v.Split(':', StringSplitOptions.RemoveEmptyEntries)) values.Add((o, part));
            else values.Add((o, v));
        }
        var fromCli = new List<(Option, string?)>();
        for (int i = 0; i < args.Length; i++)
        {
            var a = args[i];
            string? inline = null;
            int eq = a.IndexOf('=');
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0) { inline = a[(eq + 1)..]; a = a[..eq]; }
            var o = Options.FirstOrDefault(x => x.Long == a || x.Short == a);
            if (o is null) { cl.Errors.Add($"unknown option '{args[i]}'"); continue; }
            if (o.Arg is null) { fromCli.Add((o, null)); continue; }
            var value = inline ?? (i + 1 < args.Length ? args[++i] : null);
            if (value is null) { cl.Errors.Add($"option {o.Long} needs a value ({o.Arg})"); continue; }
            fromCli.Add((o, value));
        }
        // Repeatable options given on the command line replace the environment's list.
        foreach (var name in new[] { "--namespace", "--allow-host", "--api-allowed-host", "--storage-dir", "--allow-block-device" })
            if (fromCli.Any(x => x.Item1.Long == name)) values.RemoveAll(x => x.Option.Long == name);
        values.AddRange(fromCli);
        cl.Apply(values, environment);
        cl.Storage = StoragePolicy.Create(cl.Config.Storage, cl.ConfigPath, environment);
        return cl;
    }

    private void Apply(List<(Option Option, string? Value)> values, IDictionary environment)
    {
        string? Last(string name) => values.LastOrDefault(v => v.Option.Long == name).Value;
        IEnumerable<string> All(string name) => values.Where(v => v.Option.Long == name).Select(v => v.Value!);

        ShowHelp = values.Any(v => v.Option.Long == "--help");
        ShowVersion = values.Any(v => v.Option.Long == "--version");
        if (ShowHelp || ShowVersion) return;

        ConfigPath = Last("--config");
        if (ConfigPath != null)
        {
            if (!File.Exists(ConfigPath)) { Errors.Add($"configuration file '{ConfigPath}' does not exist"); return; }
            var json = File.ReadAllText(ConfigPath);
            try
            {
                Config = System.Text.Json.JsonSerializer.Deserialize<TargetConfig>(json, TargetConfig.Json) ?? new TargetConfig();
            }
            catch (System.Text.Json.JsonException e)
            {
                Errors.Add($"configuration file '{ConfigPath}': {ConfigJsonErrors.Describe(e, json, typeof(TargetConfig), TargetConfig.Json)}");
                return;
            }
            foreach (var name in new[] { "--nqn", "--namespace", "--allow-host", "--allow-any-host", "--cntlid-range", "--failover" })
                if (values.Any(v => v.Option.Long == name))
                    Errors.Add($"{name} describes the default subsystem and cannot be combined with --config (put it in the file)");
        }
        else
        {
            var sub = new SubsystemConfig { Nqn = Last("--nqn") ?? DefaultNqn };
            sub.AllowedHosts.AddRange(All("--allow-host"));
            var specs = All("--namespace").ToList();
            if (specs.Count == 0) specs.Add("memory:1G");
            uint nsid = 1;
            foreach (var spec in specs)
            {
                var ns = ParseNamespaceSpec(spec, nsid++, out var error);
                if (error != null) Errors.Add(error); else sub.Namespaces.Add(ns!);
            }
            if (Last("--cntlid-range") is string range)
            {
                var parts = range.Split('-');
                if (parts.Length == 2 && ushort.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var lo)
                    && ushort.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var hi))
                    (sub.CntlidMin, sub.CntlidMax) = (lo, hi);
                else Errors.Add($"--cntlid-range '{range}' is not MIN-MAX (e.g. 1-999)");
            }
            if (values.Any(v => v.Option.Long == "--failover")) sub.Failover = true;
            Config.Subsystems.Add(sub);
        }
        if (Last("--gateway-name") is string gatewayName)
        {
            if (ConfigValidator.GatewayNameProblem(gatewayName) is string bad) Errors.Add($"--gateway-name {bad}");
            (Config.Gateway ??= new GatewayConfig()).Name = gatewayName;
        }
        if (Last("--failover-lease") is string lease)
        {
            if (int.TryParse(lease, NumberStyles.None, CultureInfo.InvariantCulture, out int seconds)) (Config.Gateway ??= new GatewayConfig()).LeaseSeconds = seconds;
            else Errors.Add($"--failover-lease '{lease}' is not a number of seconds");
        }
        if (All("--peer").ToList() is { Count: > 0 } peerSpecs)
        {
            Config.Peers = [];
            foreach (var spec in peerSpecs)
            {
                int colon = spec.LastIndexOf(':');
                if (colon <= 0 || !int.TryParse(spec[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int peerPort))
                    Errors.Add($"--peer '{spec}' is not ADDR:PORT");
                // Port ids for peers start above this target's own (which are small numbers in practice).
                else Config.Peers.Add(new PeerConfig { PortId = (ushort)(0x100 + Config.Peers.Count), Address = spec[..colon].Trim('[', ']'), Port = peerPort });
            }
        }

        // The storage lists of the command line (or environment) replace the file's; like every override they are
        // not written back to the file (the manager saves only subsystems).
        string Rooted(string p) => Path.IsPathRooted(p) ? p : Path.Join(Environment.CurrentDirectory, p);
        if (All("--storage-dir").ToList() is { Count: > 0 } dirs) (Config.Storage ??= new()).Directories = [.. dirs.Select(Rooted)];
        if (All("--allow-block-device").ToList() is { Count: > 0 } devices) (Config.Storage ??= new()).BlockDevices = [.. devices.Select(Rooted)];

        if (Last("--listen") is string listen)
        {
            int colon = listen.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(listen[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out int port))
                Errors.Add($"--listen '{listen}' is not ADDR:PORT");
            else Config.Ports = [new PortConfig { Id = 1, Address = listen[..colon].Trim('[', ']'), Port = port }];
        }
        if (Config.Ports.Count == 0) Config.Ports.Add(new PortConfig());
        if (Last("--advertise") is string adv) foreach (var p in Config.Ports) p.AdvertisedAddress = adv;

        int? Int(string name)
        {
            var v = Last(name);
            if (v is null) return null;
            if (int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out int n)) return n;
            if (Sizes.TryParse(v, out long b) && b <= int.MaxValue) return (int)b;
            Errors.Add($"{name} '{v}' is not a number");
            return null;
        }
        Config.Limits.Mqes = Int("--mqes") ?? Config.Limits.Mqes;
        Config.Limits.Mdts = Int("--mdts") ?? Config.Limits.Mdts;
        Config.Limits.InCapsuleDataSize = Int("--in-capsule") ?? Config.Limits.InCapsuleDataSize;
        Config.Limits.MaxH2CData = Int("--max-h2c-data") ?? Config.Limits.MaxH2CData;
        Config.Limits.IoQueues = Int("--io-queues") ?? Config.Limits.IoQueues;
        Config.Limits.DataBufferBudget = Last("--data-buffer-budget") ?? Config.Limits.DataBufferBudget;
        Config.Limits.MemoryNamespaces = Last("--memory-namespaces") ?? Config.Limits.MemoryNamespaces;
        ApplyBounds(Last, Int);
        ApplyPolling(values.Any(v => v.Option.Long == "--poll"), Last, Int);
        if (Last("--c2h-success") is string c2h)
        {
            if (c2h is "on" or "true" or "1") Config.Limits.C2HSuccess = true;
            else if (c2h is "off" or "false" or "0") Config.Limits.C2HSuccess = false;
            else Errors.Add($"--c2h-success '{c2h}' must be on or off");
        }
        Config.LogLevel = Last("--log-level") ?? Config.LogLevel;
        ApplyOperations(Last, environment);

        (Api, Probes) = ListenerOptions.Resolve(Config, Last, All, environment, Errors);
        if (Telemetry.MetricsRequireToken && Api?.Token is null && Api?.TokenFile is null)
            Errors.Add("--metrics-auth token needs an API token to check: give one with --api-token-file FILE");
        if (ConfigPath is null) OpenDefaultSubsystem(values.Any(v => v.Option.Long == "--allow-any-host"));
    }

    /// <summary>--poll and its settings over the file's "polling".</summary>
    private void ApplyPolling(bool poll, Func<string, string?> last, Func<string, int?> integer)
    {
        var p = Config.Polling;
        bool any = poll || last("--reactors") != null || last("--reactor-cpus") != null || last("--poll-idle") != null;
        if (!any) return;
        p ??= Config.Polling = new PollingConfig();
        if (poll) p.Enabled = true;
        p.Reactors = integer("--reactors") ?? p.Reactors;
        p.IdleMicroseconds = integer("--poll-idle") ?? p.IdleMicroseconds;
        if (last("--reactor-cpus") is string list)
        {
            var cpus = new List<int>();
            foreach (var part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int cpu)) cpus.Add(cpu);
                else Errors.Add($"--reactor-cpus '{list}' is not a comma-separated list of CPU numbers");
            p.Cpus = cpus;
        }
        if (!p.Enabled) Errors.Add("--reactors, --reactor-cpus and --poll-idle belong to the polling mode: add --poll");
    }

    /// <summary>The zero-config default subsystem admits any host when only loopback can reach it; on any other
    /// address the operator names the hosts or opens it deliberately.</summary>
    private void OpenDefaultSubsystem(bool anyHost)
    {
        var sub = Config.Subsystems[0];
        if (anyHost && sub.AllowedHosts.Count > 0) { Errors.Add("--allow-any-host and --allow-host contradict each other: give one"); return; }
        if (sub.AllowedHosts.Count > 0) { sub.AllowAnyHost = false; return; }
        var exposed = Config.Ports.Where(p => !System.Net.IPAddress.TryParse(p.Address, out var a) || !System.Net.IPAddress.IsLoopback(a)).ToList();
        if (anyHost || exposed.Count == 0) { sub.AllowAnyHost = true; return; }
        Errors.Add($"the default subsystem would admit every host that reaches {string.Join(", ", exposed.Select(p => $"{p.Address}:{p.Port}"))}: " +
            "name the hosts with --allow-host NQN (on Linux: cat /etc/nvme/hostnqn), or open it deliberately with --allow-any-host");
    }

    /// <summary>Resource bounds (issue 10) into <see cref="TargetConfig.Limits"/>; ranges are checked by <see cref="ConfigValidator"/>.</summary>
    private void ApplyBounds(Func<string, string?> last, Func<string, int?> integer)
    {
        var l = Config.Limits;
        l.MaxConnections = integer("--max-connections") ?? l.MaxConnections;
        l.MaxControllersPerHost = integer("--max-controllers-per-host") ?? l.MaxControllersPerHost;
        if (last("--host-buffer-share") is string share)
        {
            // "50" or "50%"
            if (int.TryParse(share.EndsWith('%') ? share[..^1] : share, NumberStyles.None, CultureInfo.InvariantCulture, out int percent)) l.HostBufferShare = percent;
            else Errors.Add($"--host-buffer-share '{share}' is not a percentage (1..100)");
        }
        l.R2TTimeout = Seconds("--r2t-timeout") ?? l.R2TTimeout;
        l.PduTimeout = Seconds("--pdu-timeout") ?? l.PduTimeout;
        l.ConnectTimeout = Seconds("--connect-timeout") ?? l.ConnectTimeout;
        l.TcpKeepAlive = last("--tcp-keepalive") ?? l.TcpKeepAlive;

        double? Seconds(string name)
        {
            if (last(name) is not string v) return null;
            if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double s)) return s;
            Errors.Add($"{name} '{v}' is not a number of seconds");
            return null;
        }
    }

    /// <summary>Logging, shutdown and telemetry options; the standard OTEL_* variables fill what NVMET_* and the
    /// command line leave open.</summary>
    private void ApplyOperations(Func<string, string?> last, IDictionary environment)
    {
        string? Otel(string name) => environment[name] is string v && v.Length > 0 ? v : null;

        if (last("--log-format") is string format)
        {
            if (format is "simple" or "json") LogFormat = format;
            else Errors.Add($"--log-format '{format}' must be simple or json");
        }
        if (last("--shutdown-grace") is string grace)
        {
            if (double.TryParse(grace, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds >= 0 && seconds <= 3600)
                ShutdownGrace = TimeSpan.FromSeconds(seconds);
            else Errors.Add($"--shutdown-grace '{grace}' is not a number of seconds between 0 and 3600");
        }
        if ((last("--otlp-endpoint") ?? Otel("OTEL_EXPORTER_OTLP_ENDPOINT")) is string endpoint)
        {
            if (Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https") Telemetry.OtlpEndpoint = endpoint;
            else Errors.Add($"--otlp-endpoint '{endpoint}' is not an http:// or https:// URL");
        }
        if ((last("--otlp-protocol") ?? Otel("OTEL_EXPORTER_OTLP_PROTOCOL")) is string protocol)
        {
            if (protocol is Target.Telemetry.TelemetryOptions.HttpProtobuf or Target.Telemetry.TelemetryOptions.Grpc) Telemetry.OtlpProtocol = protocol;
            else Errors.Add($"--otlp-protocol '{protocol}' must be http/protobuf or grpc");
        }
        if (Otel("OTEL_METRIC_EXPORT_INTERVAL") is string interval)
        {
            if (int.TryParse(interval, NumberStyles.None, CultureInfo.InvariantCulture, out int ms) && ms > 0) Telemetry.OtlpExportInterval = TimeSpan.FromMilliseconds(ms);
            else Errors.Add($"OTEL_METRIC_EXPORT_INTERVAL '{interval}' is not a number of milliseconds");
        }
        if (last("--trace-io-sample-rate") is string rate)
        {
            if (double.TryParse(rate, NumberStyles.Float, CultureInfo.InvariantCulture, out double r) && r >= 0 && r <= 1) Telemetry.TraceIoSampleRate = r;
            else Errors.Add($"--trace-io-sample-rate '{rate}' must be a number from 0 to 1");
        }
        if (last("--metrics-auth") is string auth)
        {
            if (auth is "none" or "token") Telemetry.MetricsRequireToken = auth == "token";
            else Errors.Add($"--metrics-auth '{auth}' must be none or token");
        }
    }

    /// <summary>memory:SIZE | file:PATH[:SIZE] | block:DEVICE | rbd:POOL/IMAGE[:SIZE], with optional ",bs=512|4096" and (file) ",prealloc".</summary>
    public static NamespaceConfig? ParseNamespaceSpec(string spec, uint nsid, out string? error)
    {
        error = null;
        var ns = new NamespaceConfig { Nsid = nsid };
        var body = spec;
        int comma = spec.IndexOf(',');
        if (comma >= 0)
        {
            body = spec[..comma];
            foreach (var opt in spec[(comma + 1)..].Split(','))
            {
                if (opt.StartsWith("bs=", StringComparison.Ordinal) && int.TryParse(opt[3..], CultureInfo.InvariantCulture, out int bs)) ns.BlockSize = bs;
                else if (opt == "prealloc") ns.Preallocate = true;
                else { error = $"namespace '{spec}': unknown option '{opt}' (only bs=512|4096 and prealloc)"; return null; }
            }
        }
        int colon = body.IndexOf(':');
        if (colon < 0) { error = $"namespace '{spec}' must start with memory:, file:, block: or rbd:"; return null; }
        ns.Backend = body[..colon];
        var rest = body[(colon + 1)..];
        switch (ns.Backend)
        {
            case "memory":
                ns.Size = rest;
                break;
            case "file":
                {
                    int last = rest.LastIndexOf(':');
                    if (last > 0 && Sizes.TryParse(rest[(last + 1)..], out _)) { ns.Path = rest[..last]; ns.Size = rest[(last + 1)..]; }
                    else ns.Path = rest;
                    break;
                }
            case "block":
                ns.Path = rest;
                break;
            case "rbd":
                {
                    // rbd:POOL/IMAGE[:SIZE] (the size creates a missing image); the cluster: $CEPH_CONF, client.admin.
                    int last = rest.LastIndexOf(':');
                    if (last > 0 && Sizes.TryParse(rest[(last + 1)..], out _)) { ns.Size = rest[(last + 1)..]; rest = rest[..last]; }
                    int slash = rest.IndexOf('/');
                    if (slash <= 0 || slash == rest.Length - 1) { error = $"namespace '{spec}': an rbd namespace is rbd:POOL/IMAGE[:SIZE]"; return null; }
                    ns.Pool = rest[..slash];
                    ns.Image = rest[(slash + 1)..];
                    break;
                }
            default:
                error = $"namespace '{spec}': backend '{ns.Backend}' is not memory, file, block or rbd";
                return null;
        }
        return ns;
    }
}
