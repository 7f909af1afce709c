using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;

namespace Target.Management;

/// <summary>Body of PUT /subsystems/{nqn}/namespaces/{nsid}/visibility.</summary>
public sealed class VisibilityRequest
{
    /// <summary>"auto" (every host allowed on the subsystem sees the namespace) or "restricted" (only its hosts).</summary>
    [JsonRequired]
    public string Visibility { get; set; } = "";
}

/// <summary>A host NQN in a namespace's host list or in the attachment privilege list (body of their POSTs, items of their GETs).</summary>
public sealed class HostNqnEntry
{
    [JsonRequired]
    public string HostNqn { get; set; } = "";
}

public static partial class ManagementApi
{
    /// <summary>Namespace masking (visibility and host list per namespace) and the in-band attachment privilege.</summary>
    private static void MapMasking(RouteGroupBuilder api, TargetManager m)
    {
        var masking = api.MapGroup("/subsystems/{nqn}").WithTags("Masking");
        masking.MapPut("/namespaces/{nsid}/visibility", async (string nqn, uint nsid, [FromBody] VisibilityRequest body) =>
                TypedResults.Ok(await m.SetNamespaceVisibilityAsync(Unescape(nqn), nsid, body.Visibility).ConfigureAwait(false)))
            .WithName("SetNamespaceVisibility")
            .WithSummary("Masking: \"auto\" (every allowed host sees the namespace) or \"restricted\" (only its hosts). Hosts that gain or lose it " +
                "get a namespace-changed event; a host losing it has its in-flight I/O drained first. Other hosts see nothing.")
            .ProducesProblem(400).ProducesProblem(404);
        masking.MapGet("/namespaces/{nsid}/hosts", (string nqn, uint nsid) =>
                (m.GetNamespace(Unescape(nqn), nsid).Hosts ?? []).Select(h => new HostNqnEntry { HostNqn = h }).ToList())
            .WithName("ListNamespaceHosts").WithSummary("The hosts that see a restricted namespace (kept, without effect, while it is auto).")
            .ProducesProblem(404);
        masking.MapPost("/namespaces/{nsid}/hosts", async (string nqn, uint nsid, [FromBody] HostNqnEntry body) =>
            {
                var info = await m.AddNamespaceHostAsync(Unescape(nqn), nsid, body.HostNqn).ConfigureAwait(false);
                return TypedResults.Created($"{SubsystemUri(Unescape(nqn))}/namespaces/{nsid}/hosts/{Uri.EscapeDataString(body.HostNqn)}", info);
            })
            .WithName("AddNamespaceHost")
            .WithSummary("Adds a host to a namespace's list; if the namespace is restricted the host sees it now (event to its controllers only). " +
                "The host must be allowed on the subsystem.")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        masking.MapDelete("/namespaces/{nsid}/hosts/{hostNqn}", async (string nqn, uint nsid, string hostNqn) =>
                TypedResults.Ok(await m.RemoveNamespaceHostAsync(Unescape(nqn), nsid, Unescape(hostNqn)).ConfigureAwait(false)))
            .WithName("RemoveNamespaceHost")
            .WithSummary("Takes a host off a namespace's list; if the namespace is restricted, the host's I/O to it drains and the namespace " +
                "goes from its controllers (a hot-remove for that host only).")
            .ProducesProblem(404);

        masking.MapGet("/attach-hosts", (string nqn) => m.ListAttachHosts(Unescape(nqn)).Select(h => new HostNqnEntry { HostNqn = h }).ToList())
            .WithName("ListAttachHosts").WithSummary("Hosts that may attach and detach namespaces to and from their own controllers in-band (Namespace Attachment).")
            .ProducesProblem(404);
        masking.MapPost("/attach-hosts", async (string nqn, [FromBody] HostNqnEntry body) =>
            {
                await m.AddAttachHostAsync(Unescape(nqn), body.HostNqn).ConfigureAwait(false);
                return TypedResults.Created($"{SubsystemUri(Unescape(nqn))}/attach-hosts/{Uri.EscapeDataString(body.HostNqn)}", body);
            })
            .WithName("AddAttachHost").WithSummary("Gives a host allowed on the subsystem the in-band attachment privilege (off by default).")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        masking.MapDelete("/attach-hosts/{hostNqn}", async (string nqn, string hostNqn) =>
            {
                await m.RemoveAttachHostAsync(Unescape(nqn), Unescape(hostNqn)).ConfigureAwait(false);
                return TypedResults.NoContent();
            })
            .WithName("RemoveAttachHost").WithSummary("Takes the in-band attachment privilege from a host.").ProducesProblem(404);
    }
}
