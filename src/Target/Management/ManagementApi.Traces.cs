using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;

namespace Target.Management;

public static partial class ManagementApi
{
    /// <summary>pcapng, as Wireshark's registration names it.</summary>
    public const string PcapngContentType = "application/x-pcapng";

    /// <summary>Wire traces: pcapng files of selected connections' NVMe/TCP traffic, started and stopped live.</summary>
    private static void MapTraces(RouteGroupBuilder api, TargetManager m)
    {
        var traces = api.MapGroup("/traces").WithTags("Traces");
        traces.MapGet("", () => m.ListTraces()).WithName("ListTraces")
            .WithSummary("Wire traces, running and finished, with their selection, bounds and counters.");
        traces.MapPost("", ([FromBody] TraceRequest body) =>
            {
                var t = m.StartTrace(body);
                return TypedResults.Created($"{Prefix}/traces/{t.Id}", t);
            })
            .WithName("StartTrace")
            .WithSummary("Starts a wire trace (pcapng, for Wireshark) of the connections selected by subsystem, host, cntlid and queue — " +
                "those open now and those connecting later — into the trace directory (the first storage directory's 'traces'), " +
                "bounded by maxSize (default 64M), optionally by a duration, with PDU data optionally truncated.")
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409);
        traces.MapGet("/{id:int}", (int id) => m.GetTrace(id)).WithName("GetTrace").WithSummary("One trace and its counters.").ProducesProblem(404);
        traces.MapPost("/{id:int}/stop", async (int id) => TypedResults.Ok(await m.StopTraceAsync(id)))
            .WithName("StopTrace").WithSummary("Stops a trace; its file stays (download it from /traces/{id}/file).").ProducesProblem(404);
        traces.MapGet("/{id:int}/file", (int id) =>
            {
                var path = m.TraceFile(id);
                return TypedResults.PhysicalFile(path, PcapngContentType, Path.GetFileName(path));
            })
            .WithName("DownloadTrace").WithSummary("A stopped trace's pcapng file.").ProducesProblem(404).ProducesProblem(409);
        traces.MapDelete("/{id:int}", async (int id) =>
            {
                await m.DeleteTraceAsync(id);
                return TypedResults.NoContent();
            })
            .WithName("DeleteTrace").WithSummary("Stops a trace if it runs, deletes its file and forgets it.").ProducesProblem(404).ProducesProblem(409);
    }
}
