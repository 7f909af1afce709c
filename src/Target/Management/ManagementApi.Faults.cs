using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Target.Configuration;

namespace Target.Management;

/// <summary>Body of POST /subsystems/{nqn}/events.</summary>
public sealed class EventRequest
{
    /// <summary>namespace-changed (ANA change events come with ANA groups).</summary>
    [JsonRequired]
    public string Type { get; set; } = "";
    [JsonRequired]
    public uint Nsid { get; set; }
}

/// <summary>Body of PUT /subsystems/{nqn}/namespaces/{nsid}/write-protect.</summary>
public sealed class WriteProtectRequest
{
    [JsonRequired]
    public bool WriteProtected { get; set; }
}

/// <summary>Answer of DELETE /faults.</summary>
public sealed record FaultsCleared(int Cleared);

public static partial class ManagementApi
{
    /// <summary>Fault injection: I/O faults, connection faults, events on demand, simulated write protection. None of it is
    /// saved to the configuration file.</summary>
    private static void MapFaults(RouteGroupBuilder api, TargetManager m)
    {
        var faults = api.MapGroup("/faults").WithTags("Faults");
        faults.MapGet("", () => m.ListFaults()).WithName("ListFaults")
            .WithSummary("The injected I/O faults that are set, with how often each matched and fired.");
        faults.MapPost("", ([FromBody] FaultConfig body) =>
            {
                var f = m.AddFault(body);
                return TypedResults.Created($"{Prefix}/faults/{f.Id}", f);
            })
            .WithName("AddFault")
            .WithSummary("Sets an I/O fault, live: matching commands (subsystem, namespace, host, queue, opcodes, LBA range; with a probability " +
                "or a count, for a time) get an error status instead of executing or after executing, an added latency, or a stall. Not saved.")
            .ProducesProblem(400).ProducesProblem(404);
        faults.MapGet("/{id:int}", (int id) => m.GetFault(id)).WithName("GetFault").WithSummary("One fault and its counters.").ProducesProblem(404);
        faults.MapDelete("/{id:int}", (int id) =>
            {
                m.RemoveFault(id);
                return TypedResults.NoContent();
            })
            .WithName("RemoveFault").WithSummary("Clears a fault; commands it stalls go on.").ProducesProblem(404);
        faults.MapDelete("", (string? subsystem) => TypedResults.Ok(new FaultsCleared(m.ClearFaults(subsystem))))
            .WithName("ClearFaults").WithSummary("Clears every fault (?subsystem=NQN: that subsystem's).").ProducesProblem(404);
        faults.MapPost("/connections", ([FromBody] ConnectionFaultRequest body) => TypedResults.Ok(m.InjectConnectionFault(body)))
            .WithName("InjectConnectionFault")
            .WithSummary("A connection fault on the matching connections (by subsystem, host, cntlid, queue): drop (a reset, now or after N " +
                "more received PDUs), terminate (C2HTermReq), pause-receive (stop reading for a while), corrupt-data-digest (the next C2HData).")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);

        var sub = api.MapGroup("/subsystems/{nqn}").WithTags("Faults");
        sub.MapPost("/events", (string nqn, [FromBody] EventRequest body) => TypedResults.Ok(m.SendEvent(Unescape(nqn), body.Type, body.Nsid)))
            .WithName("SendEvent").WithSummary("Sends a Namespace Attribute Changed event now to every controller that sees the namespace.")
            .ProducesProblem(400).ProducesProblem(404);
        sub.MapPut("/namespaces/{nsid}/write-protect", (string nqn, uint nsid, [FromBody] WriteProtectRequest body) =>
                TypedResults.Ok(m.SetWriteProtected(Unescape(nqn), nsid, body.WriteProtected)))
            .WithName("SetWriteProtected")
            .WithSummary("Simulates a namespace turning write protected (or back): Identify Namespace NSATTR bit 0, writes answered Namespace " +
                "is Write Protected, hosts told with a namespace event (Linux marks the disk read-only). Not saved.")
            .ProducesProblem(400).ProducesProblem(404);
    }
}
