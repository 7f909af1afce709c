using Target.Configuration;
using Target.Management;

namespace Target.Cli;

public static partial class ClientCli
{
    private static Verb[] TraceVerbs =>
    [
        new("trace", "start", "Start a wire trace (pcapng for Wireshark) of the selected connections, those open now and those connecting later.",
            ["nvme-tcp-target trace start --host HOSTNQN",
             "nvme-tcp-target trace start --nqn NQN --cntlid 1 --max-size 256M --duration 60",
             "nvme-tcp-target trace start --truncate-data 0   # every connection, PDU headers only"],
            [
                new("--nqn", "NQN", "Connections of this subsystem (default: every connection, discovery included)."),
                new("--host", "HOSTNQN", "Connections of this host."),
                new("--cntlid", "ID", "Connections of this controller (ctrl list): its admin and I/O queues."),
                new("--queue", "QID", "Only this queue (0 = admin)."),
                new("--max-size", "SIZE", "The file's largest size; the trace stops there (default 64M, at most 4G)."),
                new("--duration", "SECONDS", "Stop by itself after this long."),
                new("--truncate-data", "BYTES", "Keep at most this many bytes of each PDU's data (0: headers only; default: everything)."),
                new("--file", "NAME", "File name in the trace directory (default trace-TIME-N.pcapng)."),
            ], TraceStartAsync),
        new("trace", "list", "List the wire traces, running and finished, with their counters.", ["nvme-tcp-target trace list"], [], TraceListAsync),
        new("trace", "stop", "Stop a trace (its file stays); with --output, download it too.",
            ["nvme-tcp-target trace stop --id 1 --output session.pcapng"],
            [new("--id", "ID", "The trace's id (trace list; required)."), new("--output", "FILE", "Download the file here (- for standard output).")],
            TraceStopAsync),
        new("trace", "get", "Download a stopped trace's pcapng file.", ["nvme-tcp-target trace get --id 1 --output session.pcapng"],
            [new("--id", "ID", "The trace's id (required)."), new("--output", "FILE", "Where to write it (required; - for standard output).")],
            TraceGetAsync),
        new("trace", "delete", "Stop a trace if it runs, delete its file on the target and forget it.", ["nvme-tcp-target trace delete --id 1"],
            [new("--id", "ID", "The trace's id (required).")], TraceDeleteAsync),
    ];

    private static async Task<int> TraceStartAsync(Run r)
    {
        var req = new TraceRequest
        {
            Subsystem = r.Get("--nqn"),
            Host = r.Get("--host"),
            Cntlid = r.Get("--cntlid") is string c ? ParseNumber<ushort>(r, "--cntlid", c) : null,
            Queue = r.Get("--queue") is string q ? ParseNumber<ushort>(r, "--queue", q) : null,
            MaxSize = r.Get("--max-size") is string m && Sizes.TryParse(m, out _) ? m : r.Has("--max-size") ? throw r.Usage($"--max-size '{r.Get("--max-size")}' is not a size (e.g. 64M)") : null,
            DurationSeconds = r.Get("--duration") is string d ? ParseDouble(r, "--duration", d) : null,
            TruncateData = r.Get("--truncate-data") is string t ? ParseNumber<int>(r, "--truncate-data", t) : null,
            File = r.Get("--file"),
        };
        var raw = await r.Api.SendAsync(HttpMethod.Post, "traces", req).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var info = ApiClient.Parse<TraceInfo>(raw);
        r.Out.WriteLine($"Started trace {info.Id} into {info.Path} (at most {Sizes.Format(info.MaxBytes)}). " +
            $"Stop and download it with: nvme-tcp-target trace stop --id {info.Id} --output trace.pcapng");
        return Ok;
    }

    private static async Task<int> TraceListAsync(Run r)
    {
        var (traces, raw) = await r.Api.GetAsync<List<TraceInfo>>("traces").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (traces.Count == 0) { r.Out.WriteLine("No traces."); return Ok; }
        TextTable.Write(r.Out, ["ID", "STATE", "CONNECTIONS", "PACKETS", "BYTES", "DROPPED", "SELECTION", "FILE"],
            traces.Select(t => new[]
            {
                t.Id.ToString(Inv), t.StopReason is { } why ? $"stopped ({why})" : t.State, t.Connections.ToString(Inv), t.Packets.ToString(Inv),
                t.Bytes.ToString(Inv), t.DroppedBytes.ToString(Inv), t.Selection, t.Path,
            }));
        return Ok;
    }

    private static async Task<int> TraceStopAsync(Run r)
    {
        var id = ParseNumber<int>(r, "--id", r.Require("--id"));
        var raw = await r.Api.SendAsync(HttpMethod.Post, $"traces/{id}/stop").ConfigureAwait(false);
        var output = r.Get("--output");
        if (output != null && await DownloadTraceAsync(r, id, output, quiet: r.Json).ConfigureAwait(false) is var rc && rc != Ok) return rc;
        if (r.Json) { if (output != "-") r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (output == "-") return Ok; // standard output holds the trace
        var info = ApiClient.Parse<TraceInfo>(raw);
        r.Out.WriteLine($"Stopped trace {id} ({info.StopReason}): {Plural((int)info.Connections, "connection")}, {info.Packets} packets, {info.Bytes} bytes in {info.Path}" +
            (info.DroppedBytes > 0 ? $"; {info.DroppedBytes} bytes on the wire left out (the writer fell behind)" : "") + ".");
        return Ok;
    }

    private static Task<int> TraceGetAsync(Run r) =>
        DownloadTraceAsync(r, ParseNumber<int>(r, "--id", r.Require("--id")), r.Require("--output"), quiet: false);

    private static async Task<int> DownloadTraceAsync(Run r, int id, string output, bool quiet)
    {
        if (output == "-")
        {
            using var stdout = Console.OpenStandardOutput();
            await r.Api.DownloadAsync($"traces/{id}/file", stdout).ConfigureAwait(false);
            return Ok;
        }
        string temp = output + ".part";
        try
        {
            long n;
            await using (var file = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
                n = await r.Api.DownloadAsync($"traces/{id}/file", file).ConfigureAwait(false);
            File.Move(temp, output, overwrite: true);
            if (!quiet) r.Out.WriteLine($"Wrote trace {id} to {output} ({n} bytes): wireshark {output}, or tshark -r {output} -d tcp.port==PORT,nvme-tcp");
            return Ok;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            File.Delete(temp);
            r.Err.WriteLine($"cannot write {output}: {e.Message}");
            return ApiError;
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private static async Task<int> TraceDeleteAsync(Run r)
    {
        var id = ParseNumber<int>(r, "--id", r.Require("--id"));
        await r.Api.SendAsync(HttpMethod.Delete, $"traces/{id}").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine("{}"); return Ok; }
        r.Out.WriteLine($"Deleted trace {id} and its file.");
        return Ok;
    }
}
