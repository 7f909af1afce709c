using System.Globalization;
using Target.Configuration;
using Target.Management;

namespace Target.Cli;

public static partial class ClientCli
{
    private static Opt[] FaultAddOptions =>
    [
        NqnOpt,
        new("--nsid", "N", "Only this namespace (default: every namespace of the subsystem)."),
        new("--host", "HOSTNQN", "Only this host's commands."),
        new("--queue", "QID", "Only this I/O queue (1, 2, ...)."),
        new("--opcode", "OP[,OP]", "Only these commands: read, write, flush, write-zeroes, dsm (repeatable; default: every I/O command).", true),
        new("--lba", "FIRST-LAST", "Only commands whose blocks overlap this LBA range (inclusive)."),
        new("--probability", "P", "Hit a matching command with this chance: 0.01 or 1% (default: every one)."),
        new("--count", "N", "Fire N times, then the fault goes away (\"the next 3 writes\")."),
        new("--for", "SECONDS", "The fault goes away after this long."),
        new("--error", "STATUS", "Answer with this status: unrecovered-read-error, write-fault, namespace-not-ready,\n" +
            "transient-transport-error, internal-error, namespace-write-protected, ana-inaccessible, ... or SCT:SC in hex (2:81)."),
        new("--dnr", null, "With --error: set Do Not Retry (the host fails the I/O at once instead of retrying)."),
        new("--after", null, "With --error: execute the command first, then report the error (written but reported failed)."),
        new("--delay", "MS", "Add this latency (the queue keeps serving other commands)."),
        new("--jitter", "MS", "With --delay: add a uniform 0..MS on top."),
        new("--stall", null, "Hold matching commands until the fault is cleared or expires (host I/O timeouts, aborts, resets)."),
        new("--stall-for", "MS", "With --stall: hold each command at most MS, then run it."),
    ];

    private static async Task<int> FaultAddAsync(Run r)
    {
        var actions = new[] { "--error", "--delay", "--stall" }.Where(r.Has).ToList();
        if (actions.Count != 1) throw r.Usage("give exactly one of --error STATUS, --delay MS or --stall");
        var fc = new FaultConfig
        {
            Subsystem = await r.NqnAsync().ConfigureAwait(false),
            Nsid = r.Nsid(required: false) is uint n and > 0 ? n : null,
            Host = r.Get("--host"),
            Queue = r.Get("--queue") is string q ? ParseNumber<ushort>(r, "--queue", q) : null,
            Opcodes = r.Has("--opcode") ? [.. r.All("--opcode").SelectMany(o => o.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))] : null,
            Count = r.Get("--count") is string c ? ParseNumber<long>(r, "--count", c) : null,
            DurationSeconds = r.Get("--for") is string d ? ParseDouble(r, "--for", d) : null,
            Action = actions[0][2..],
            Status = r.Get("--error"),
            Dnr = r.Has("--dnr") ? true : null,
            AfterExecute = r.Has("--after") ? true : null,
            DelayMs = r.Get("--delay") is string dl ? ParseDouble(r, "--delay", dl) : null,
            JitterMs = r.Get("--jitter") is string j ? ParseDouble(r, "--jitter", j) : null,
            StallMs = r.Get("--stall-for") is string sf ? ParseDouble(r, "--stall-for", sf) : null,
        };
        if (!r.Has("--error") && (r.Has("--dnr") || r.Has("--after"))) throw r.Usage("--dnr and --after go with --error");
        if (!r.Has("--delay") && r.Has("--jitter")) throw r.Usage("--jitter goes with --delay");
        if (!r.Has("--stall") && r.Has("--stall-for")) throw r.Usage("--stall-for goes with --stall");
        if (r.Get("--lba") is string lba)
        {
            var parts = lba.Split('-');
            if (parts.Length != 2 || !ulong.TryParse(parts[0], NumberStyles.None, Inv, out var first) || !ulong.TryParse(parts[1], NumberStyles.None, Inv, out var last))
                throw r.Usage($"--lba '{lba}' is not FIRST-LAST (e.g. 0-2047)");
            (fc.LbaFirst, fc.LbaLast) = (first, last);
        }
        if (r.Get("--probability") is string p)
        {
            bool percent = p.EndsWith('%');
            if (!double.TryParse(percent ? p[..^1] : p, NumberStyles.Float, Inv, out var value)) throw r.Usage($"--probability '{p}' is not a number (0.01 or 1%)");
            fc.Probability = percent ? value / 100 : value;
        }
        if (fc.ToSpec(out var problem) is null) throw r.Usage(problem!);
        var raw = await r.Api.SendAsync(HttpMethod.Post, "faults", fc).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var f = ApiClient.Parse<FaultInfo>(raw);
        r.Out.WriteLine($"Set fault {f.Id}: {f.Description}. Clear it with: nvme-tcp-target fault remove --id {f.Id}");
        return Ok;
    }

    private static T ParseNumber<T>(Run r, string name, string text) where T : System.Numerics.INumber<T> =>
        T.TryParse(text, NumberStyles.None, Inv, out var v) ? v : throw r.Usage($"{name} '{text}' is not a whole number");

    private static double ParseDouble(Run r, string name, string text) =>
        double.TryParse(text, NumberStyles.Float, Inv, out var v) && double.IsFinite(v) && v >= 0 ? v : throw r.Usage($"{name} '{text}' is not a number of at least 0");

    private static async Task<int> FaultListAsync(Run r)
    {
        var (faults, raw) = await r.Api.GetAsync<List<FaultInfo>>("faults").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (faults.Count == 0) { r.Out.WriteLine("No faults set."); return Ok; }
        TextTable.Write(r.Out, ["ID", "ACTION", "MATCHED", "FIRED", "LEFT", "EXPIRES", "FAULT"],
            faults.Select(f => new[]
            {
                f.Id.ToString(Inv), f.Action, f.Matched.ToString(Inv), f.Fired.ToString(Inv), f.Remaining?.ToString(Inv) ?? "-",
                f.ExpiresAt?.ToLocalTime().ToString("HH:mm:ss", Inv) ?? "-", f.Description,
            }));
        return Ok;
    }

    private static async Task<int> FaultRemoveAsync(Run r)
    {
        var id = ParseNumber<int>(r, "--id", r.Require("--id"));
        await r.Api.SendAsync(HttpMethod.Delete, $"faults/{id}").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine("{}"); return Ok; }
        r.Out.WriteLine($"Cleared fault {id}.");
        return Ok;
    }

    private static async Task<int> FaultClearAsync(Run r)
    {
        var path = r.Get("--nqn") is string nqn ? "faults?subsystem=" + Uri.EscapeDataString(nqn) : "faults";
        var raw = await r.Api.SendAsync(HttpMethod.Delete, path).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        r.Out.WriteLine($"Cleared {Plural(ApiClient.Parse<FaultsCleared>(raw).Cleared, "fault")}.");
        return Ok;
    }

    private static async Task<int> FaultConnectionAsync(Run r)
    {
        var req = new ConnectionFaultRequest
        {
            Action = r.Require("--action"),
            Subsystem = r.Get("--nqn"),
            Host = r.Get("--host"),
            Cntlid = r.Get("--cntlid") is string c ? ParseNumber<ushort>(r, "--cntlid", c) : null,
            Queue = r.Get("--queue") is string q ? ParseNumber<ushort>(r, "--queue", q) : null,
            AfterPdus = r.Get("--after-pdus") is string a ? ParseNumber<int>(r, "--after-pdus", a) : null,
            DurationMs = r.Get("--duration") is string d ? ParseDouble(r, "--duration", d) : null,
        };
        if (req.Subsystem is null && req.Host is null && req.Cntlid is null) throw r.Usage("say which connections: --host HOSTNQN, --cntlid ID or --nqn NQN");
        var raw = await r.Api.SendAsync(HttpMethod.Post, "faults/connections", req).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var res = ApiClient.Parse<ConnectionFaultResult>(raw);
        r.Out.WriteLine($"{res.Action}: {Plural(res.Connections.Count, "connection")}:");
        TextTable.Write(r.Out, ["CNTLID", "QUEUE", "HOST NQN", "PEER"],
            res.Connections.Select(x => new[] { x.Cntlid.ToString(Inv), x.Queue.ToString(Inv), x.Host, x.Peer }));
        return Ok;
    }

    private static async Task<int> FaultEventAsync(Run r)
    {
        if (r.Get("--type") is string t && r.Get("<TYPE>") is string p && t != p) throw r.Usage($"the event is '{p}' or '{t}': give it once");
        var type = r.Get("--type") ?? r.Get("<TYPE>") ?? TargetManager.NamespaceChangedEvent;
        bool ana = type == TargetManager.AnaChangeEvent;
        if (ana && r.Has("--nsid")) throw r.Usage($"{TargetManager.AnaChangeEvent} concerns ANA groups: it takes no --nsid (--port limits it to one port)");
        if (!ana && r.Has("--port")) throw r.Usage("--port goes with ana-change");
        uint? nsid = ana ? null : r.Nsid();
        ushort? port = r.Get("--port") is string ps ? PortId(ps) : null;
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Post, $"{Path(nqn)}/events", new EventRequest { Type = type, Nsid = nsid, Port = port }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var e = ApiClient.Parse<EventResult>(raw);
        r.Out.WriteLine(ana
            ? $"Sent {e.Event} on {nqn}{(port is ushort x ? $" port {x}" : "")} to {Plural(e.ControllersNotified, "controller")}."
            : $"Sent {e.Event} for namespace {nsid} of {nqn} to {Plural(e.ControllersNotified, "controller")}.");
        return Ok;
    }

    private static async Task<int> FaultWriteProtectAsync(Run r)
    {
        var nsid = r.Nsid();
        bool on = r.Require("--state") switch
        {
            "on" => true,
            "off" => false,
            var s => throw r.Usage($"--state '{s}' must be on or off"),
        };
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Put, $"{Path(nqn)}/namespaces/{nsid}/write-protect", new WriteProtectRequest { WriteProtected = on }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var e = ApiClient.Parse<EventResult>(raw);
        r.Out.WriteLine($"Namespace {nsid} of {nqn} is {(on ? "write protected" : "writable")} (simulated, not saved); {Plural(e.ControllersNotified, "controller")} told.");
        return Ok;
    }
}
