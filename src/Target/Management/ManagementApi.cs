using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Target.Configuration;

namespace Target.Management;

/// <summary>Body of POST /subsystems/{nqn}/namespaces/{nsid}/resize.</summary>
public sealed class ResizeRequest
{
    /// <summary>New size: "2G", "512M", or a number of bytes; a multiple of the block size.</summary>
    [JsonRequired, JsonConverter(typeof(SizeJsonConverter))]
    public string Size { get; set; } = "";
    /// <summary>Allow shrinking (data past the new end is lost to hosts).</summary>
    public bool Force { get; set; }
}

/// <summary>An allowed host: body of POST /subsystems/{nqn}/hosts and the items of GET.</summary>
public sealed class HostEntry
{
    [JsonRequired]
    public string HostNqn { get; set; } = "";
    /// <summary>In: the DH-HMAC-CHAP host secret (DHHC-1:hh:BASE64:). Never sent back.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DhchapSecret { get; set; }
    /// <summary>In: the controller secret (bidirectional authentication). Never sent back.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DhchapCtrlSecret { get; set; }
    /// <summary>In and out: sha256, sha384 or sha512.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DhchapHash { get; set; }
    /// <summary>In and out: null, ffdhe2048 ... ffdhe8192.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? DhchapDhgroup { get; set; }
    /// <summary>Out: whether the host must authenticate (a host secret is set).</summary>
    public bool DhchapSecretSet { get; set; }
    /// <summary>Out: whether a controller secret is set.</summary>
    public bool DhchapCtrlSecretSet { get; set; }

    internal HostAuthConfig? Auth() =>
        new HostAuthConfig { DhchapSecret = DhchapSecret, DhchapCtrlSecret = DhchapCtrlSecret, DhchapHash = DhchapHash, DhchapDhgroup = DhchapDhgroup } is { IsEmpty: false } a ? a : null;
}

/// <summary>Body of PUT /subsystems/{nqn}/hosts/{hostNqn}: the host's DH-HMAC-CHAP settings, replacing the old
/// ones (all fields absent: authentication off for that host).</summary>
public sealed class HostAuthUpdate
{
    public string? DhchapSecret { get; set; }
    public string? DhchapCtrlSecret { get; set; }
    public string? DhchapHash { get; set; }
    public string? DhchapDhgroup { get; set; }
}

/// <summary>Answer of DELETE /subsystems/{nqn}/hosts/{hostNqn}.</summary>
public sealed record HostRemoved(string HostNqn, int DisconnectedControllers);

/// <summary>Body of PATCH /subsystems/{nqn}: the fields to change (absent = unchanged).</summary>
public sealed class SubsystemPatch
{
    /// <summary>True: any host NQN may connect. False: only the allowed hosts (the others are disconnected).</summary>
    public bool? AllowAnyHost { get; set; }
    /// <summary>Port ids the subsystem is reachable on (controllers that came in on another are disconnected).</summary>
    public List<ushort>? Ports { get; set; }
    /// <summary>True: reachable on every port (instead of <see cref="Ports"/>).</summary>
    public bool? AllPorts { get; set; }
}

/// <summary>
/// The management HTTP API (JSON, under /api/v1), served by Kestrel on its own listener (the NVMe/TCP ports
/// are served by Transport.Tcp's socket listener). Every endpoint delegates to <see cref="TargetManager"/>; every error is an
/// RFC 7807 problem (application/problem+json) whose detail is meant for the operator.
/// </summary>
public static partial class ManagementApi
{
    public const string Prefix = "/api/v1";
    public const string OpenApiPath = "/openapi/v1.json";

    public static void AddServices(IServiceCollection services)
    {
        services.AddRouting();
        services.ConfigureHttpJsonOptions(o =>
        {
            o.SerializerOptions.UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow;
            o.SerializerOptions.ReadCommentHandling = JsonCommentHandling.Skip;
            o.SerializerOptions.AllowTrailingCommas = true;
            // JSON for programs and terminals, never embedded in HTML: keep '+' and quotes readable.
            o.SerializerOptions.Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping;
        });
        // Binding failures (bad JSON, wrong content type, non-numeric NSID) throw, so the middleware below turns
        // them into problem documents with the reason.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "nvme-tcp-target management API";
            doc.Info.Version = "v1";
            doc.Info.Description = "Live changes to a running NVMe/TCP target: subsystems, namespaces (hot-add, hot-remove, resize), " +
                "allowed hosts, and the connected controllers. Errors are RFC 7807 problem documents. When the target runs with " +
                "a token (--api-token-file), send \"Authorization: Bearer TOKEN\".";
            return Task.CompletedTask;
        }));
    }

    /// <summary>Maps the API. <paramref name="open"/> selects paths served without the token (health probes,
    /// and /metrics unless it is configured to need the token).</summary>
    public static void Map(WebApplication app, TargetManager m, string? token, Http.HostHeaderFilter hostFilter, Telemetry.ManagementMetrics metrics,
        Func<PathString, bool>? open = null)
    {
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Target.ManagementApi");
        var json = app.Services.GetRequiredService<IOptions<HttpJsonOptions>>().Value.SerializerOptions;
        app.Use((ctx, next) => HandleAsync(ctx, next, open != null && open(ctx.Request.Path) ? null : token, hostFilter, metrics, json, log));
        app.MapOpenApi(OpenApiPath).ExcludeFromDescription();

        var api = app.MapGroup(Prefix);
        var subsystems = api.MapGroup("").WithTags("Subsystems");
        subsystems.MapGet("/subsystems", () => m.ListSubsystems())
            .WithName("ListSubsystems").WithSummary("Lists the NVM subsystems with their namespaces and allowed hosts.");
        subsystems.MapPost("/subsystems", async ([FromBody] SubsystemConfig body) =>
            {
                var info = await m.CreateSubsystemAsync(body).ConfigureAwait(false);
                return TypedResults.Created(SubsystemUri(info.Nqn), info);
            })
            .WithName("CreateSubsystem").WithSummary("Creates a subsystem (same fields as a 'subsystems' entry of the configuration file).")
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(409);
        subsystems.MapGet("/subsystems/{nqn}", (string nqn) => m.GetSubsystem(Unescape(nqn)))
            .WithName("GetSubsystem").WithSummary("One subsystem.").ProducesProblem(404);
        subsystems.MapMethods("/subsystems/{nqn}", ["PATCH"], async (string nqn, [FromBody] SubsystemPatch body) =>
            {
                var name = Unescape(nqn);
                if (body.AllowAnyHost is null && body.Ports is null && body.AllPorts is null)
                    throw new ManagementException(ManagementError.Invalid, "nothing to change: give \"allowAnyHost\", \"ports\" or \"allPorts\"");
                if (body.Ports != null && body.AllPorts == true) throw new ManagementException(ManagementError.Invalid, "give \"ports\" or \"allPorts\", not both");
                if (body.AllPorts == false) throw new ManagementException(ManagementError.Invalid, "\"allPorts\": false means nothing: list the ports in \"ports\"");
                if (body.Ports != null || body.AllPorts == true) await m.SetPortsAsync(name, body.Ports).ConfigureAwait(false);
                if (body.AllowAnyHost is bool any) await m.SetAllowAnyHostAsync(name, any).ConfigureAwait(false);
                return TypedResults.Ok(m.GetSubsystem(name));
            })
            .WithName("UpdateSubsystem")
            .WithSummary("Changes who may connect and where: allowAnyHost true admits any host NQN, false only the allowed hosts; ports binds it to " +
                "port ids, allPorts to every port. Controllers no longer allowed are disconnected.")
            .ProducesProblem(400).ProducesProblem(404);
        subsystems.MapDelete("/subsystems/{nqn}", async (string nqn) =>
            {
                await m.DeleteSubsystemAsync(Unescape(nqn)).ConfigureAwait(false);
                return TypedResults.NoContent();
            })
            .WithName("DeleteSubsystem").WithSummary("Deletes a subsystem: its controllers are destroyed and its namespaces released.")
            .ProducesProblem(404);

        var namespaces = api.MapGroup("/subsystems/{nqn}").WithTags("Namespaces");
        namespaces.MapGet("/namespaces", (string nqn) => m.ListNamespaces(Unescape(nqn)))
            .WithName("ListNamespaces").WithSummary("The namespaces of a subsystem.").ProducesProblem(404);
        namespaces.MapPost("/namespaces", async (string nqn, [FromBody] NamespaceConfig body) =>
            {
                var info = await m.AddNamespaceAsync(Unescape(nqn), body).ConfigureAwait(false);
                return TypedResults.Created($"{SubsystemUri(Unescape(nqn))}/namespaces/{info.Nsid}", info);
            })
            .WithName("AddNamespace")
            .WithSummary("Hot-adds a namespace (nsid 0 or absent: the lowest free one); connected hosts get a namespace-changed event.")
            .ProducesProblem(400).ProducesProblem(403).ProducesProblem(404).ProducesProblem(409);
        namespaces.MapGet("/namespaces/{nsid}", (string nqn, uint nsid) => m.GetNamespace(Unescape(nqn), nsid))
            .WithName("GetNamespace").WithSummary("One namespace.").ProducesProblem(404);
        namespaces.MapDelete("/namespaces/{nsid}", async (string nqn, uint nsid) =>
            {
                await m.RemoveNamespaceAsync(Unescape(nqn), nsid).ConfigureAwait(false);
                return TypedResults.NoContent();
            })
            .WithName("RemoveNamespace")
            .WithSummary("Hot-removes a namespace: new I/O is refused, in-flight I/O drains, hosts get a namespace-changed event.")
            .ProducesProblem(404);
        namespaces.MapPost("/namespaces/{nsid}/resize", async (string nqn, uint nsid, [FromBody] ResizeRequest body) =>
                TypedResults.Ok(await m.ResizeNamespaceAsync(Unescape(nqn), nsid, body.Size, body.Force).ConfigureAwait(false)))
            .WithName("ResizeNamespace").WithSummary("Grows a namespace (or shrinks it with force); hosts get a namespace-changed event.")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);

        var hosts = api.MapGroup("/subsystems/{nqn}").WithTags("Hosts");
        hosts.MapGet("/hosts", (string nqn) => m.ListHostEntries(Unescape(nqn)).ToList())
            .WithName("ListHosts").WithSummary("The allowed host NQNs (empty: no host may connect, unless the subsystem has allowAnyHost).").ProducesProblem(404);
        hosts.MapPost("/hosts", async (string nqn, [FromBody] HostEntry body) =>
            {
                await m.AddHostAsync(Unescape(nqn), body.HostNqn, body.Auth()).ConfigureAwait(false);
                var added = m.ListHostEntries(Unescape(nqn)).First(h => h.HostNqn == body.HostNqn); // never echo a secret
                return TypedResults.Created($"{SubsystemUri(Unescape(nqn))}/hosts/{Uri.EscapeDataString(body.HostNqn)}", added);
            })
            .WithName("AddHost").WithSummary("Allows a host NQN (a subsystem with allowAnyHost keeps admitting any host: PATCH it to close it).")
            .ProducesProblem(400).ProducesProblem(404).ProducesProblem(409);
        hosts.MapPut("/hosts/{hostNqn}", async (string nqn, string hostNqn, [FromBody] HostAuthUpdate body) =>
            {
                var host = Unescape(hostNqn);
                var auth = new HostAuthConfig { DhchapSecret = body.DhchapSecret, DhchapCtrlSecret = body.DhchapCtrlSecret, DhchapHash = body.DhchapHash, DhchapDhgroup = body.DhchapDhgroup };
                await m.SetHostAuthAsync(Unescape(nqn), host, auth.IsEmpty ? null : auth).ConfigureAwait(false);
                return TypedResults.Ok(m.ListHostEntries(Unescape(nqn)).First(h => h.HostNqn == host));
            })
            .WithName("SetHostAuthentication")
            .WithSummary("Sets or replaces (key rotation) an allowed host's DH-HMAC-CHAP settings; no fields: authentication off. Live " +
                "controllers keep working and use the new secrets when the host re-authenticates.")
            .ProducesProblem(400).ProducesProblem(404);
        hosts.MapDelete("/hosts/{hostNqn}", async (string nqn, string hostNqn) =>
            {
                var host = Unescape(hostNqn);
                int disconnected = await m.RemoveHostAsync(Unescape(nqn), host).ConfigureAwait(false);
                return TypedResults.Ok(new HostRemoved(host, disconnected));
            })
            .WithName("RemoveHost")
            .WithSummary("Removes a host NQN from the allowed list and disconnects its controllers; the last one removed leaves the subsystem closed.")
            .ProducesProblem(404);

        MapMasking(api, m);
        MapFaults(api, m);
        MapTraces(api, m);

        api.MapGet("/controllers", () => m.ListControllers()).WithTags("Controllers")
            .WithName("ListControllers").WithSummary("Connected controllers (admin and discovery) and their queues.");
    }

    private static string SubsystemUri(string nqn) => $"{Prefix}/subsystems/{Uri.EscapeDataString(nqn)}";

    /// <summary>Kestrel decodes every escape in the path except %2F; an NQN may contain a slash.</summary>
    private static string Unescape(string segment) => segment.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);

    // ------------------------------------------------------------------ authentication and errors

    private static async Task HandleAsync(HttpContext ctx, RequestDelegate next, string? token, Http.HostHeaderFilter hosts,
        Telemetry.ManagementMetrics metrics, JsonSerializerOptions json, ILogger log)
    {
        // DNS rebinding: a web page that resolves its own name to this machine sends that name as Host.
        if (!hosts.IsAllowed(ctx.Request.Host))
        {
            Interlocked.Increment(ref metrics.RejectedHostHeader);
            log.ApiHostRefused(ctx.Request.Host.Value ?? "", ctx.Request.Method, ctx.Request.Path);
            await WriteProblemAsync(ctx, StatusCodes.Status403Forbidden, HostRefusal(ctx.Request.Host, hosts), json).ConfigureAwait(false);
            return;
        }
        if (token != null && !HasToken(ctx.Request, token))
        {
            Interlocked.Increment(ref metrics.RejectedToken);
            ctx.Response.Headers.WWWAuthenticate = "Bearer";
            await WriteProblemAsync(ctx, StatusCodes.Status401Unauthorized, ctx.Request.Headers.Authorization.Count == 0
                ? "this target requires a bearer token: send \"Authorization: Bearer TOKEN\" (the token the target was started with, --api-token-file)"
                : "the bearer token is wrong", json).ConfigureAwait(false);
            return;
        }
        try
        {
            await next(ctx).ConfigureAwait(false);
        }
        catch (ManagementException e)
        {
            int status = e.Kind switch
            {
                ManagementError.NotFound => StatusCodes.Status404NotFound,
                ManagementError.Conflict => StatusCodes.Status409Conflict,
                ManagementError.Forbidden => StatusCodes.Status403Forbidden,
                ManagementError.NotSaved => StatusCodes.Status500InternalServerError,
                _ => StatusCodes.Status400BadRequest,
            };
            await WriteProblemAsync(ctx, status, e.Message, json).ConfigureAwait(false);
            return;
        }
        catch (BadHttpRequestException e)
        {
            await WriteProblemAsync(ctx, e.StatusCode, BadRequestDetail(e), json).ConfigureAwait(false);
            return;
        }
        catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
        {
            log.ApiRequestFailed(e, ctx.Request.Method, ctx.Request.Path);
            await WriteProblemAsync(ctx, StatusCodes.Status500InternalServerError,
                $"the target could not carry out the request ({e.GetType().Name}: {e.Message}); the target's log has the details", json).ConfigureAwait(false);
            return;
        }

        // Statuses produced by routing itself (no such endpoint, wrong method) get a problem document too.
        var r = ctx.Response;
        if (r.StatusCode >= 400 && !r.HasStarted && r.ContentType is null && r.ContentLength is null)
        {
            string detail = r.StatusCode switch
            {
                StatusCodes.Status404NotFound => $"there is no endpoint {ctx.Request.Path} (the API is under {Prefix}; {OpenApiPath} lists every endpoint)",
                StatusCodes.Status405MethodNotAllowed => $"{ctx.Request.Method} is not allowed on {ctx.Request.Path}",
                StatusCodes.Status415UnsupportedMediaType => "the request body must be JSON (Content-Type: application/json)",
                _ => ReasonPhrases.GetReasonPhrase(r.StatusCode),
            };
            await WriteProblemAsync(ctx, r.StatusCode, detail, json).ConfigureAwait(false);
        }
    }

    internal static string HostRefusal(HostString host, Http.HostHeaderFilter hosts) =>
        $"the Host header '{(host.HasValue ? host.Value : "")}' names no address of this target, so the request is refused (a web page " +
        $"reaching the target through DNS rebinding looks like this); accepted: {hosts.Describe()}; add a name with --api-allowed-host NAME";

    internal static bool HasToken(HttpRequest request, string token)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), Encoding.UTF8.GetBytes(token));
    }

    private static string BadRequestDetail(BadHttpRequestException e)
    {
        if (e.InnerException is JsonException j)
            return "the request body is not valid for this endpoint: " + j.Message;
        if (e.Message.Contains("was not provided from body", StringComparison.Ordinal) || e.Message.Contains("no body was provided", StringComparison.Ordinal))
            return "this endpoint needs a JSON request body (Content-Type: application/json)";
        if (e.StatusCode == StatusCodes.Status415UnsupportedMediaType)
            return $"the request body must be JSON (Content-Type: application/json); {e.Message}";
        if (e.Message.StartsWith("Failed to bind parameter \"uint nsid\"", StringComparison.Ordinal))
            return "the NSID in the path must be a number (1, 2, ...)";
        return e.Message;
    }

    internal static async Task WriteProblemAsync(HttpContext ctx, int status, string detail, JsonSerializerOptions json)
    {
        var r = ctx.Response;
        if (r.HasStarted) return; // too late for a status; the connection is cut
        var authenticate = r.Headers.WWWAuthenticate;
        r.Clear();
        if (status == StatusCodes.Status401Unauthorized) r.Headers.WWWAuthenticate = authenticate;
        r.StatusCode = status;
        var problem = new ProblemDetails
        {
            Type = TypeFor(status),
            Title = ReasonPhrases.GetReasonPhrase(status),
            Status = status,
            Detail = detail,
            Instance = ctx.Request.Path,
        };
        await r.WriteAsJsonAsync(problem, json, "application/problem+json", ctx.RequestAborted).ConfigureAwait(false);
    }

    private static string TypeFor(int status) => status switch
    {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        401 => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        405 => "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        409 => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        413 => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        415 => "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        500 => "https://tools.ietf.org/html/rfc9110#section-15.6.1",
        _ => "about:blank",
    };
}
