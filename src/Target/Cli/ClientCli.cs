using System.Collections;
using System.Globalization;
using Target.Configuration;
using Target.Management;

namespace Target.Cli;

/// <summary>
/// The client side of the executable: <c>nvme-tcp-target ns add ...</c> and friends talk to a running target's
/// management API. Exit codes: 0 success, 1 the API refused (its problem detail on stderr), 2 usage error,
/// 3 the API could not be reached.
/// </summary>
public static partial class ClientCli
{
    public const int Ok = 0, ApiError = 1, UsageError = 2, Unreachable = 3;

    private sealed record Opt(string Name, string? Arg, string Help, bool Repeatable = false);

    private sealed record Verb(string Command, string Action, string Summary, string[] Examples, Opt[] Options, Func<Run, Task<int>> Execute);

    private static readonly Opt[] CommonOptions =
    [
        new("--api", "unix:PATH|URL", "Management API of the target: its Unix socket (default: the target's default,\n" +
            "/run/nvme-tcp-target/api.sock as root) or http://ADDR:PORT [env NVMET_API_URL]."),
        new("--token-file", "FILE", "Bearer token (the file's first line), when the target requires one [env NVMET_API_TOKEN_FILE]."),
        new("--token", "TOKEN", "The token itself (visible in `ps`: prefer --token-file) [env NVMET_API_TOKEN]."),
        new("--json", null, "Print the API's JSON answer instead of a table."),
        new("--help", null, "Show this help."),
    ];

    private static readonly Opt NqnOpt = new("--nqn", "NQN", "Subsystem NQN (may be left out when the target has only one subsystem).");

    private static readonly Dictionary<string, string> CommandSummaries = new()
    {
        ["subsys"] = "NVM subsystems",
        ["ns"] = "namespaces: hot-add, hot-remove, resize, masking (connected hosts are notified)",
        ["hosts"] = "host NQNs allowed to connect to a subsystem",
        ["ctrl"] = "connected controllers and their queues",
        ["fault"] = "fault injection for test labs: I/O errors, latency, stalls, connection faults, events (live, never saved)",
        ["trace"] = "wire traces: pcapng files of connections' NVMe/TCP traffic for Wireshark",
        ["ana"] = "Asymmetric Namespace Access: ANA groups' states per port (live, never saved), a namespace's group, a group's owner under failover",
    };

    public static IReadOnlyCollection<string> Commands => CommandSummaries.Keys;

    /// <summary>True when the first argument selects the client instead of running the target.</summary>
    public static bool IsCommand(string firstArgument) => CommandSummaries.ContainsKey(firstArgument);

    /// <summary>DH-HMAC-CHAP options, named as nvme-cli's connect options (and kernel nvmet's host attributes).</summary>
    private static readonly Opt[] DhchapOpts =
    [
        new("--dhchap-secret", "DHHC-1:hh:KEY:", "The host's DH-HMAC-CHAP secret (nvme gen-dhchap-key): the host must authenticate with it."),
        new("--dhchap-ctrl-secret", "DHHC-1:hh:KEY:", "A controller secret: lets the host authenticate the target too (bidirectional)."),
        new("--dhchap-hash", "sha256|sha384|sha512", "The HMAC the target picks (default: sha256 if the host offers it)."),
        new("--dhchap-dhgroup", "null|ffdhe2048|...|ffdhe8192", "The DH group the target requires (default: the null group if the host offers it)."),
    ];

    private static readonly Verb[] Verbs =
    [
        new("subsys", "list", "List the subsystems.", ["nvme-tcp-target subsys list"], [], SubsysListAsync),
        new("subsys", "create", "Create a subsystem, optionally with namespaces and allowed hosts.",
            ["nvme-tcp-target subsys create --nqn nqn.2026-01.io.example:db --namespace memory:1G",
             "nvme-tcp-target subsys create --nqn nqn.2026-01.io.example:db --allow-host nqn.2014-08.org.nvmexpress:uuid:..."],
            [
                new("--nqn", "NQN", "NQN of the new subsystem (required)."),
                new("--serial", "SERIAL", "Serial number, 1..20 printable characters (default derived from the NQN)."),
                new("--model", "MODEL", "Model number, 1..40 characters."),
                new("--firmware", "REV", "Firmware revision, 1..8 characters."),
                new("--namespace", "SPEC", "Namespace, repeatable: memory:SIZE | file:PATH[:SIZE] | block:DEVICE | rbd:POOL/IMAGE[:SIZE] [,bs=512|4096].", true),
                new("--allow-host", "NQN", "Allowed host NQN, repeatable (without it and --allow-any-host, no host may connect).", true),
                new("--allow-any-host", null, "Let any host NQN connect."),
                new("--port", "ID", "Port id (a \"ports\" entry) the subsystem is reachable on, repeatable (default: every port).", true),
            ], SubsysCreateAsync),
        new("subsys", "set", "Change who may connect to a subsystem, and on which ports.",
            ["nvme-tcp-target subsys set --nqn nqn.2026-01.io.example:db --allow-any-host off",
             "nvme-tcp-target subsys set --nqn nqn.2026-01.io.example:db --port 2"],
            [
                new("--nqn", "NQN", "NQN of the subsystem (may be left out when the target has only one)."),
                new("--allow-any-host", "on|off", "on: any host NQN may connect; off: only the allowed hosts (the others are disconnected)."),
                new("--port", "ID", "Reachable only on this port id, repeatable (controllers that came in elsewhere are disconnected).", true),
                new("--all-ports", null, "Reachable on every port."),
                new("--attach-host", "HOSTNQN", "Give a host the in-band namespace attachment privilege (nvme attach-ns / detach-ns\n" +
                    "of its own controllers), repeatable.", true),
                new("--no-attach-host", "HOSTNQN", "Take that privilege from a host, repeatable.", true),
            ], SubsysSetAsync),
        new("subsys", "delete", "Delete a subsystem: its controllers are disconnected, its namespaces released.",
            ["nvme-tcp-target subsys delete --nqn nqn.2026-01.io.example:db"],
            [new("--nqn", "NQN", "NQN of the subsystem (required).")], SubsysDeleteAsync),

        new("ns", "list", "List the namespaces of a subsystem.", ["nvme-tcp-target ns list --nqn " + CommandLine.DefaultNqn], [NqnOpt], NsListAsync),
        new("ns", "add", "Hot-add a namespace; connected hosts get a namespace-changed event and see it at once.",
            ["nvme-tcp-target ns add --nqn NQN --memory 1G",
             "nvme-tcp-target ns add --nqn NQN --file /var/lib/nvmet/disk2.img --size 10G --nsid 2",
             "nvme-tcp-target ns add --nqn NQN --block /dev/sdb --block-size 4096"],
            [
                NqnOpt,
                new("--memory", "SIZE", "RAM-backed namespace of this size (e.g. 512M, 1G)."),
                new("--file", "PATH", "File-backed namespace (created with --size when missing)."),
                new("--size", "SIZE", "With --file: the size to create (or grow) the file to; with --rbd: the size to create a missing image with."),
                new("--preallocate", null, "With --file: allocate the new file in full (and what it grows by), so a full disk is refused now."),
                new("--block", "DEVICE", "Block-device-backed namespace (e.g. /dev/sdb)."),
                new("--rbd", "POOL/IMAGE", "Ceph RBD image (created with --size when missing; otherwise at its own size)."),
                new("--ceph-conf", "FILE", "With --rbd: the cluster's ceph.conf (default: the target's $CEPH_CONF or /etc/ceph/ceph.conf)."),
                new("--ceph-id", "ID", "With --rbd: the client id (default admin) and, with --keyring, its keyring."),
                new("--keyring", "FILE", "With --rbd: the client's keyring (default: ceph.conf's)."),
                new("--nsid", "N", "NSID to use (default: the lowest free one)."),
                new("--block-size", "BYTES", "Logical block size, 512 or 4096 (default 512)."),
                new("--uuid", "UUID", "Namespace UUID (default derived from the NQN and NSID, stable across restarts)."),
            ], NsAddAsync),
        new("ns", "remove", "Hot-remove a namespace: new I/O is refused, in-flight I/O drains, hosts are notified.",
            ["nvme-tcp-target ns remove --nqn NQN --nsid 2"],
            [NqnOpt, new("--nsid", "N", "NSID of the namespace (required).")], NsRemoveAsync),
        new("ns", "visibility", "Masking: auto (every allowed host sees the namespace) or restricted (only its hosts: ns hosts add).",
            ["nvme-tcp-target ns visibility --nqn NQN --nsid 2 restricted", "nvme-tcp-target ns visibility --nqn NQN --nsid 2 auto"],
            [
                NqnOpt,
                new("--nsid", "N", "NSID of the namespace (required)."),
                new("<auto|restricted>", null, "auto: every host allowed on the subsystem; restricted: only the namespace's hosts.\n" +
                    "Hosts that gain or lose it get a namespace-changed event; one that loses it is drained first."),
            ], NsVisibilityAsync),
        new("ns", "hosts add", "Let a host see a restricted namespace (it appears on that host only). The host must be allowed on the subsystem.",
            ["nvme-tcp-target ns hosts add --nqn NQN --nsid 2 --host nqn.2014-08.org.nvmexpress:uuid:..."],
            [NqnOpt, new("--nsid", "N", "NSID of the namespace (required)."), new("--host", "HOSTNQN", "Host NQN (required).")], NsHostsAddAsync),
        new("ns", "hosts remove", "Take a host off a namespace's list (if restricted: its I/O drains, the namespace goes from that host only).",
            ["nvme-tcp-target ns hosts remove --nqn NQN --nsid 2 --host nqn.2014-08.org.nvmexpress:uuid:..."],
            [NqnOpt, new("--nsid", "N", "NSID of the namespace (required)."), new("--host", "HOSTNQN", "Host NQN (required).")], NsHostsRemoveAsync),
        new("ns", "resize", "Grow a namespace (shrinking needs --force); hosts are notified and rescan.",
            ["nvme-tcp-target ns resize --nqn NQN --nsid 1 --size 2G"],
            [
                NqnOpt,
                new("--nsid", "N", "NSID of the namespace (required)."),
                new("--size", "SIZE", "New size, a multiple of the block size (required)."),
                new("--force", null, "Allow shrinking: data past the new end is lost to hosts."),
            ], NsResizeAsync),

        new("hosts", "list", "List the host NQNs allowed to connect to a subsystem.", ["nvme-tcp-target hosts list --nqn NQN"], [NqnOpt], HostsListAsync),
        new("hosts", "add", "Allow a host NQN (a subsystem that admits any host keeps doing so: subsys set --allow-any-host off).",
            ["nvme-tcp-target hosts add --nqn NQN --host nqn.2014-08.org.nvmexpress:uuid:...",
             "nvme-tcp-target hosts add --nqn NQN --host HOSTNQN --dhchap-secret \"$(nvme gen-dhchap-key --hmac=1 -n HOSTNQN)\""],
            [NqnOpt, new("--host", "HOSTNQN", "Host NQN (required; on Linux: cat /etc/nvme/hostnqn)."), .. DhchapOpts], HostsAddAsync),
        new("hosts", "set", "Set or replace (key rotation) an allowed host's DH-HMAC-CHAP settings; without secrets it turns authentication off for the host. " +
                "Live controllers keep working and use the new secret when the host re-authenticates.",
            ["nvme-tcp-target hosts set --nqn NQN --host HOSTNQN --dhchap-secret DHHC-1:01:...:"],
            [NqnOpt, new("--host", "HOSTNQN", "Host NQN (required)."), .. DhchapOpts], HostsSetAsync),
        new("hosts", "remove", "Remove a host NQN from the allowed list and disconnect its controllers (an empty list admits no host).",
            ["nvme-tcp-target hosts remove --nqn NQN --host nqn.2014-08.org.nvmexpress:uuid:..."],
            [NqnOpt, new("--host", "HOSTNQN", "Host NQN (required).")], HostsRemoveAsync),

        new("ctrl", "list", "List the connected controllers and their queues.", ["nvme-tcp-target ctrl list"], [], CtrlListAsync),

        new("ana", "list", "List the ANA groups of a subsystem: state on every port, each port's state, namespaces.",
            ["nvme-tcp-target ana list", "nvme-tcp-target ana list NQN"],
            [NqnOpt, new("<NQN>", null, "The subsystem (same as --nqn).")], AnaListAsync),
        new("ana", "set", "Set an ANA group's state, live (never saved); hosts get the ANA change event. I/O to an inaccessible, " +
                "persistent-loss or change group fails with the path status (a Linux host with one path queues it until the path is usable).",
            ["nvme-tcp-target ana set NQN 1 inaccessible", "nvme-tcp-target ana set NQN 1 optimized", "nvme-tcp-target ana set 1 non-optimized --port 2"],
            [
                NqnOpt,
                new("<NQN>", null, "The subsystem (may be left out when the target has only one subsystem)."),
                new("<GROUP>", null, "The ANA group, 1..128 (a namespace's anaGroup; default group 1)."),
                new("<STATE>", null, "optimized, non-optimized, inaccessible, persistent-loss or change (a host resets a controller\n" +
                    "whose group stays in change longer than ANATT, 10 s)."),
                new("--port", "ID", "Only this port (default: every port, which also drops the states set for single ports)."),
            ], AnaSetAsync),
        new("ana", "owner", "Automatic failover: hand an ANA group to another gateway (planned maintenance) and wait until it owns the group; " +
                "the old owner's paths turn non-optimized, the new owner's optimized, and no I/O fails.",
            ["nvme-tcp-target ana owner 1 gw-b", "nvme-tcp-target ana owner NQN 1 gw-b"],
            [
                NqnOpt,
                new("<NQN>", null, "The subsystem (may be left out when the target has only one subsystem)."),
                new("<GROUP>", null, "The ANA group, 1..128."),
                new("<GATEWAY>", null, "The gateway to own it (its --gateway-name; `ana list` shows the gateways alive)."),
            ], AnaOwnerAsync),
        new("ana", "move", "Move a namespace to another ANA group (saved); the hosts that see it get the ANA change event.",
            ["nvme-tcp-target ana move --nsid 2 --group 5"],
            [NqnOpt, new("--nsid", "N", "The namespace (required)."), new("--group", "GROUP", "The ANA group, 1..128 (required).")], AnaMoveAsync),

        new("fault", "add", "Set an I/O fault, live: matching commands get an error, a latency or a stall.",
            ["nvme-tcp-target fault add --nsid 1 --opcode read --lba 0-2047 --error unrecovered-read-error --dnr",
             "nvme-tcp-target fault add --nsid 1 --opcode write --count 3 --error write-fault --after",
             "nvme-tcp-target fault add --nsid 1 --opcode read --probability 1% --error transient-transport-error",
             "nvme-tcp-target fault add --nsid 1 --delay 20 --jitter 10 --for 60",
             "nvme-tcp-target fault add --nsid 1 --host HOSTNQN --stall"],
            FaultAddOptions, FaultAddAsync),
        new("fault", "list", "List the faults that are set, with how often each matched and fired.", ["nvme-tcp-target fault list"], [], FaultListAsync),
        new("fault", "remove", "Clear one fault (commands it stalls go on).", ["nvme-tcp-target fault remove --id 3"],
            [new("--id", "ID", "The fault's id (fault list; required).")], FaultRemoveAsync),
        new("fault", "clear", "Clear every fault (with --nqn: that subsystem's).", ["nvme-tcp-target fault clear"],
            [new("--nqn", "NQN", "Only this subsystem's faults.")], FaultClearAsync),
        new("fault", "connection", "A connection fault on the matching connections (the host's recovery: reconnect, ctrl-loss-tmo).",
            ["nvme-tcp-target fault connection --host HOSTNQN --action drop",
             "nvme-tcp-target fault connection --host HOSTNQN --queue 1 --action drop --after-pdus 1000",
             "nvme-tcp-target fault connection --host HOSTNQN --action pause-receive --duration 5000"],
            [
                new("--action", "ACTION", "drop (a TCP reset), terminate (C2HTermReq), pause-receive (stop reading),\n" +
                    "corrupt-data-digest (a wrong DDGST on the next C2HData; needs a host with --data-digest) (required)."),
                new("--nqn", "NQN", "Connections of this subsystem."),
                new("--host", "HOSTNQN", "Connections of this host."),
                new("--cntlid", "ID", "Connections of this controller (ctrl list)."),
                new("--queue", "QID", "Only this queue (0 = admin)."),
                new("--after-pdus", "N", "drop: after the connection received N more PDUs (default: now)."),
                new("--duration", "MS", "pause-receive: how long (required for it)."),
            ], FaultConnectionAsync),
        new("fault", "event", "Send an event now: namespace-changed (to every controller that sees the namespace) or ana-change (the hosts re-read the ANA log).",
            ["nvme-tcp-target fault event --nsid 1", "nvme-tcp-target fault event ana-change", "nvme-tcp-target fault event ana-change --port 2"],
            [
                NqnOpt,
                new("<TYPE>", null, "namespace-changed (the default) or ana-change (same as --type)."),
                new("--type", "TYPE", "namespace-changed or ana-change."),
                new("--nsid", "N", "namespace-changed: the namespace (required)."),
                new("--port", "ID", "ana-change: only the controllers that came in on this port (default: every controller)."),
            ],
            FaultEventAsync),
        new("fault", "write-protect", "Simulate a namespace turning write protected (or back): writes fail, hosts mark the disk read-only.",
            ["nvme-tcp-target fault write-protect --nsid 1 --state on"],
            [NqnOpt, new("--nsid", "N", "The namespace (required)."), new("--state", "on|off", "on: write protected; off: writable (required).")],
            FaultWriteProtectAsync),
        .. TraceVerbs,
    ];

    private sealed class UsageException(string message) : Exception(message);

    /// <summary>The parsed invocation of one verb.</summary>
    private sealed class Run
    {
        public required Verb Verb { get; init; }
        public required ApiClient Api { get; init; }
        public required TextWriter Err { get; init; }
        public required TextWriter Out { get; init; }
        public required Dictionary<string, List<string>> Values { get; init; }
        public bool Json => Values.ContainsKey("--json");
        public bool Has(string name) => Values.ContainsKey(name);
        public string? Get(string name) => Values.TryGetValue(name, out var v) ? v[^1] : null;
        public IReadOnlyList<string> All(string name) => Values.TryGetValue(name, out var v) ? v : [];
        public string Require(string name) => Get(name) ?? throw new UsageException($"{name} is required");
        public Exception Usage(string message) => new UsageException(message);

        public uint Nsid(bool required = true)
        {
            var v = required ? Require("--nsid") : Get("--nsid");
            if (v is null) return 0;
            if (!uint.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n == 0) throw new UsageException($"--nsid '{v}' is not an NSID (1, 2, ...)");
            return n;
        }

        /// <summary>--nqn, or the only subsystem of the target.</summary>
        public async Task<string> NqnAsync()
        {
            if (Get("--nqn") is string nqn) return nqn;
            var (subs, _) = await Api.GetAsync<List<SubsystemInfo>>("subsystems").ConfigureAwait(false);
            return subs.Count switch
            {
                1 => subs[0].Nqn,
                0 => throw new ApiErrorException(System.Net.HttpStatusCode.NotFound, "the target has no subsystems (create one with: nvme-tcp-target subsys create --nqn NQN)"),
                _ => throw new UsageException("the target has several subsystems; choose one with --nqn: " + string.Join(", ", subs.Select(s => s.Nqn))),
            };
        }
    }

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, IDictionary? environment = null, HttpMessageHandler? handler = null)
    {
        environment ??= Environment.GetEnvironmentVariables();
        var command = args[0];
        if (args.Length == 1 || args[1] is "--help" or "-h" or "help")
        {
            var w = args.Length == 1 ? stderr : stdout;
            w.Write(CommandHelp(command));
            return args.Length == 1 ? UsageError : Ok;
        }
        var verb = Verbs.FirstOrDefault(v => v.Command == command && v.Action == args[1]);
        int first = 2; // where the options start: after "ns add", or after a two-word action ("ns hosts add")
        if (verb is null && args.Length > 2 && Verbs.FirstOrDefault(v => v.Command == command && v.Action == args[1] + " " + args[2]) is { } twoWords)
            (verb, first) = (twoWords, 3);
        if (verb is null)
        {
            stderr.WriteLine($"error: '{command} {args[1]}' is not a command; {command} takes: {string.Join(", ", Verbs.Where(v => v.Command == command).Select(v => v.Action))}");
            stderr.WriteLine($"Run 'nvme-tcp-target {command} --help' for the commands.");
            return UsageError;
        }

        Dictionary<string, List<string>> values;
        Uri root;
        string? socket;
        string? token;
        try
        {
            values = Parse(verb, args.AsSpan(first));
            if (values.ContainsKey("--help"))
            {
                stdout.Write(VerbHelp(verb));
                return Ok;
            }
            string? Env(string name) => environment[name] as string is { Length: > 0 } v ? v : null;
            var url = values.TryGetValue("--api", out var u) ? u[^1] : Env("NVMET_API_URL") ?? ListenerOptions.UnixPrefix + ListenerOptions.DefaultSocketPath(environment);
            (root, socket) = ParseApi(url);
            string? tokenFile = values.TryGetValue("--token-file", out var tf) ? tf[^1] : null;
            token = values.TryGetValue("--token", out var t) ? t[^1] : null;
            if (token != null && tokenFile != null) throw new UsageException("give --token or --token-file, not both");
            if (token is null && tokenFile is null) { token = Env("NVMET_API_TOKEN"); tokenFile = token is null ? Env("NVMET_API_TOKEN_FILE") : null; }
            if (tokenFile != null)
            {
                var errors = new List<string>();
                token = ListenerOptions.ReadTokenFile(tokenFile, errors) ?? throw new UsageException(errors[0].Replace("api: ", "", StringComparison.Ordinal));
            }
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine($"Run 'nvme-tcp-target {verb.Command} {verb.Action} --help' for the options.");
            return UsageError;
        }

        using var api = new ApiClient(root, token, handler, socket);
        try
        {
            return await verb.Execute(new Run { Verb = verb, Api = api, Out = stdout, Err = stderr, Values = values }).ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine($"Run 'nvme-tcp-target {verb.Command} {verb.Action} --help' for the options.");
            return UsageError;
        }
        catch (ApiErrorException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return ApiError;
        }
        catch (ApiUnreachableException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine("Is the target running with its management API on? Point the client at it with --api unix:PATH or --api URL " +
                "(or NVMET_API_URL); the target logs where its API listens when it starts.");
            return Unreachable;
        }
    }

    private static Dictionary<string, List<string>> Parse(Verb verb, ReadOnlySpan<string> args)
    {
        var options = verb.Options.Concat(CommonOptions).ToList();
        var values = new Dictionary<string, List<string>>();
        for (int i = 0; i < args.Length; i++)
        {
            var a = args[i];
            string? inline = null;
            int eq = a.IndexOf('=');
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0) { inline = a[(eq + 1)..]; a = a[..eq]; }
            if (a == "-h") a = "--help";
            // A positional argument (an option named <word>, e.g. ns visibility's <auto|restricted>), given once.
            if (!a.StartsWith('-') && options.FirstOrDefault(x => x.Name.StartsWith('<') && !values.ContainsKey(x.Name)) is { } positional)
            {
                values[positional.Name] = [a];
                continue;
            }
            var o = options.FirstOrDefault(x => x.Name == a)
                ?? throw new UsageException(a.StartsWith('-') ? $"unknown option '{args[i]}'" : $"unexpected argument '{args[i]}'");
            string value = "";
            if (o.Arg != null)
            {
                value = inline ?? (i + 1 < args.Length ? args[++i] : throw new UsageException($"option {o.Name} needs a value ({o.Arg})"));
            }
            else if (inline != null) throw new UsageException($"option {o.Name} takes no value");
            if (!values.TryGetValue(o.Name, out var list)) values[o.Name] = list = [];
            else if (!o.Repeatable && o.Arg != null) throw new UsageException($"option {o.Name} is given more than once");
            list.Add(value);
        }
        return values;
    }

    /// <summary>unix:PATH or an absolute path: the Unix socket; otherwise an http(s) URL (the scheme may be left out).</summary>
    private static (Uri Root, string? Socket) ParseApi(string api)
    {
        if (api.StartsWith(ListenerOptions.UnixPrefix, StringComparison.Ordinal) || api.StartsWith('/'))
        {
            var path = api.StartsWith(ListenerOptions.UnixPrefix, StringComparison.Ordinal) ? api[ListenerOptions.UnixPrefix.Length..] : api;
            if (!System.IO.Path.IsPathRooted(path)) throw new UsageException($"--api '{api}': the socket path must be absolute");
            return (new Uri("http://localhost/"), path);
        }
        var text = api.Contains("://", StringComparison.Ordinal) ? api : "http://" + api;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new UsageException($"--api '{api}' is not unix:PATH or a URL such as http://127.0.0.1:8421");
        var p = uri.AbsolutePath.TrimEnd('/');
        if (p.EndsWith(ManagementApi.Prefix, StringComparison.Ordinal)) p = p[..^ManagementApi.Prefix.Length];
        return (new UriBuilder(uri) { Path = p + "/" }.Uri, null);
    }

    // ------------------------------------------------------------------ help

    /// <summary>Usage of a command word: its actions.</summary>
    public static string CommandHelp(string command)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"nvme-tcp-target {command}: {CommandSummaries[command]}.");
        w.WriteLine();
        w.WriteLine($"Usage: nvme-tcp-target {command} <action> [options]");
        w.WriteLine();
        w.WriteLine("Actions:");
        foreach (var v in Verbs.Where(v => v.Command == command)) w.WriteLine($"  {v.Action,-8} {v.Summary}");
        w.WriteLine();
        w.WriteLine($"Run 'nvme-tcp-target {command} <action> --help' for an action's options. Every action takes:");
        WriteOptions(w, CommonOptions);
        w.WriteLine();
        w.WriteLine("Exit codes: 0 done, 1 the target refused (the reason is printed), 2 usage error, 3 the API is unreachable.");
        return w.ToString();
    }

    private static string VerbHelp(Verb verb)
    {
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"nvme-tcp-target {verb.Command} {verb.Action}: {verb.Summary}");
        w.WriteLine();
        w.WriteLine($"Usage: nvme-tcp-target {verb.Command} {verb.Action} [options]");
        w.WriteLine();
        w.WriteLine("Options:");
        WriteOptions(w, verb.Options);
        WriteOptions(w, CommonOptions);
        w.WriteLine();
        w.WriteLine("Examples:");
        foreach (var e in verb.Examples) w.WriteLine("  " + e);
        w.WriteLine();
        w.WriteLine("Exit codes: 0 done, 1 the target refused (the reason is printed), 2 usage error, 3 the API is unreachable.");
        return w.ToString();
    }

    private static void WriteOptions(TextWriter w, IEnumerable<Opt> options)
    {
        foreach (var o in options)
        {
            var lines = o.Help.Split('\n');
            w.WriteLine($"  {o.Name + (o.Arg != null ? " " + o.Arg : ""),-22} {lines[0]}");
            foreach (var more in lines.Skip(1)) w.WriteLine($"  {"",-22} {more}");
        }
    }
}
