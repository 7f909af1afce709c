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
    /// <summary>namespace-changed (needs nsid) or ana-change (no nsid; port limits it to the controllers that came in there).</summary>
    [JsonRequired]
    public string Type { get; set; } = "";
    public uint? Nsid { get; set; }
    public ushort? Port { get; set; }
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
        sub.MapPost("/events", (string nqn, [FromBody] EventRequest body) => TypedResults.Ok(m.SendEvent(Unescape(nqn), body.Type, body.Nsid, body.Port)))
            .WithName("SendEvent").WithSummary("Sends an event now: namespace-changed (Namespace Attribute Changed, to every controller that sees the " +
                "namespace) or ana-change (ANA change, to every controller, or those on one port, without a state change: the hosts re-read the ANA log).")
            .ProducesProblem(400).ProducesProblem(404);
        MapAna(api, m);
        sub.MapPut("/namespaces/{nsid}/write-protect", (string nqn, uint nsid, [FromBody] WriteProtectRequest body) =>
                TypedResults.Ok(m.SetWriteProtected(Unescape(nqn), nsid, body.WriteProtected)))
            .WithName("SetWriteProtected")
            .WithSummary("Simulates a namespace turning write protected (or back): Identify Namespace NSATTR bit 0, writes answered Namespace " +
                "is Write Protected, hosts told with a namespace event (Linux marks the disk read-only). Not saved.")
            .ProducesProblem(400).ProducesProblem(404);
    }

    /// <summary>Asymmetric Namespace Access: the groups' live states (never saved) and a namespace's group (saved).</summary>
    private static void MapAna(RouteGroupBuilder api, TargetManager m)
    {
        var ana = api.MapGroup("/subsystems/{nqn}").WithTags("ANA");
        ana.MapGet("/ana", (string nqn) => m.GetAna(Unescape(nqn)))
            .WithName("GetAna").WithSummary("The ANA groups that hold a namespace or have a state set: the state on every port, each port's state, " +
                "the namespaces; and the ANA log's change count.")
            .ProducesProblem(404);
        ana.MapPut("/ana/{group}", async (string nqn, uint group, [FromBody] AnaStateRequest body) =>
                TypedResults.Ok(await m.SetAnaStateAsync(Unescape(nqn), group, body.State, body.Port).ConfigureAwait(false)))
            .WithName("SetAnaState")
            .WithSummary("Sets an ANA group's state (optimized, non-optimized, inaccessible, persistent-loss, change) on one port or, without port, " +
                "on every port. Controllers whose state changed get the ANA change event; I/O to the group's namespaces is answered with the " +
                "path status of an inaccessible, lost or changing group. Live state, not saved.")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        ana.MapPost("/ana/{group}/owner", async (string nqn, uint group, [FromBody] AnaOwnerRequest body) =>
                TypedResults.Ok(await m.SetAnaOwnerAsync(Unescape(nqn), group, body.Gateway).ConfigureAwait(false)))
            .WithName("SetAnaOwner")
            .WithSummary("Automatic failover: hands an ANA group to another gateway (planned maintenance) and answers once that gateway holds it " +
                "(at most two leases): the old owner's paths turn non-optimized, the new owner's optimized, and no I/O fails. 409 when the group " +
                "is not under automatic failover or the move did not happen; 400 when the gateway does not serve the group.")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        ana.MapPut("/namespaces/{nsid}/ana-group", async (string nqn, uint nsid, [FromBody] AnaGroupRequest body) =>
                TypedResults.Ok(await m.SetNamespaceAnaGroupAsync(Unescape(nqn), nsid, body.AnaGroup).ConfigureAwait(false)))
            .WithName("SetNamespaceAnaGroup")
            .WithSummary("Moves a namespace to another ANA group (1..128), saved; the hosts that see it get the ANA change event.")
            .ProducesProblem(400).ProducesProblem(404);
    }
}
