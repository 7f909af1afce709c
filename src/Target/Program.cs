using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Nvme.Core.Storage;
using Target;
using Target.Cli;
using Target.Configuration;

// `nvme-tcp-target ns add ...` and the other command words: a client of a running target's management API.
if (args.Length > 0 && ClientCli.IsCommand(args[0])) return await ClientCli.RunAsync(args, Console.Out, Console.Error);

var cl = CommandLine.Parse(args);
if (cl.ShowHelp) { Console.Out.Write(CommandLine.HelpText()); return 0; }
if (cl.ShowVersion) { Console.Out.WriteLine(Assembly.GetExecutingAssembly().GetName().Version); return 0; }
// The storage policy checks the namespaces with the same code that opens them: every refusal on its own line.
var errors = cl.Errors.Count > 0 ? cl.Errors : [.. ConfigValidator.Validate(cl.Config), .. cl.Storage.Validate(cl.Config)];
if (errors.Count > 0)
{
    foreach (var e in errors) Console.Error.WriteLine($"error: {e}");
    Console.Error.WriteLine("Run with --help for the options.");
    return 2;
}

if (!Enum.TryParse<LogLevel>(cl.Config.LogLevel ?? "Information", ignoreCase: true, out var level))
{
    Console.Error.WriteLine($"error: log level '{cl.Config.LogLevel}' is not trace, debug, information, warning or error");
    return 2;
}
using var loggers = LoggerFactory.Create(b =>
{
    // Kestrel and the generic host log a bind failure with its whole stack trace; the program prints one line for it.
    b.SetMinimumLevel(level).AddFilter("Microsoft", LogLevel.Warning).AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
    if (cl.LogFormat == "json")
        b.AddJsonConsole(o =>
        {
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
            o.UseUtcTimestamp = true;
        });
    else b.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff "; });
});
var log = loggers.CreateLogger("Target");

// Socket completions run on the socket engine's own threads instead of hopping to the thread pool: a
// connection's receive, command execution and the send of its answers then happen on one thread with no
// hand-off (about +30 % IOPS on 4 KiB I/O, see bench/README.md). Read once, when the first socket is made;
// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=0 in the environment turns it off.
const string InlineCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
if (Environment.GetEnvironmentVariable(InlineCompletionsVariable) is null) Environment.SetEnvironmentVariable(InlineCompletionsVariable, "1");

// Signals are handled from before the start: one that arrives while starting stops the target right after.
// A second signal exits at once (130) — but not one that arrives within a second of the first: `dotnet run`
// forwards the SIGTERM its process group got, so the target sees the same stop request twice.
var stop = new TaskCompletionSource();
long firstSignal = 0;
void OnSignal(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    long now = Environment.TickCount64;
    long first = Interlocked.CompareExchange(ref firstSignal, now, 0);
    if (first != 0)
    {
        if (now - first < 1000) return; // the same stop request, forwarded
        Environment.Exit(130);          // a second request: exit at once
    }
    log.ShuttingDown(ctx.Signal.ToString());
    stop.TrySetResult();
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

TargetHost host;
try
{
    host = await TargetHost.StartAsync(cl.Config, loggers, configPath: cl.ConfigPath, api: cl.Api, telemetry: cl.Telemetry, probes: cl.Probes, storage: cl.Storage);
    host.ShutdownGrace = cl.ShutdownGrace;
}
catch (StoreException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (IOException e)
{
    // A port or the API socket is taken (another target?), or the socket's directory is unsafe.
    Console.Error.WriteLine($"error: {e.Message}");
    Console.Error.WriteLine("Every listener must be free: the NVMe/TCP ports (--listen), the management API (--api unix:PATH | ADDR:PORT | off) " +
        "and the probes (--probes ADDR:PORT | off).");
    return 2;
}

foreach (var s in host.Target.Subsystems)
    foreach (var ns in s.Namespaces)
        log.NamespaceReady(s.Nqn, ns.Nsid, ns.Store.Description, ns.BlockCount, ns.BlockSize);
foreach (var ep in host.Endpoints)
{
    var port = host.Target.Ports.First(p => p.ServiceId == ep.Port);
    log.Listening(ep.ToString(), port.TransportAddress);
    foreach (var s in host.Target.Subsystems)
        log.ConnectHint(port.TransportAddress, ep.Port, s.Nqn);
}
foreach (var s in host.Target.Subsystems.Where(s => s.AllowAnyHost))
{
    var exposed = host.Endpoints.Where(e => !System.Net.IPAddress.IsLoopback(e.Address)).Select(e => e.ToString()).ToList();
    if (exposed.Count == 0) log.AnyHostOnLoopback(s.Nqn);
    else log.AnyHostExposed(s.Nqn, string.Join(", ", exposed));
}
foreach (var warning in ConfigValidator.Warnings(cl.Config)) log.ConfigWarning(warning);
if (host.ApiSocketPath is { } socket)
    log.ApiOnSocket(socket, cl.Api!.SocketGroup is { } g ? $"mode 0660: this user and group {g}" : "mode 0600: only this user",
        cl.Api.Token != null ? "bearer token required" : "no token");
else if (host.ApiEndpoint is { } apiEndpoint)
    log.ApiListening(Url(apiEndpoint), "bearer token required");
else log.ApiOff();
if (host.ProbesEndpoint is { } probes)
    log.Probes(Url(probes), cl.Telemetry.MetricsRequireToken ? "bearer token required" : "no token");
else log.ProbesOff();
if (cl.ConfigPath != null) log.ConfigSaved(Path.GetFullPath(cl.ConfigPath));
else if (host.ApiEndpoint != null || host.ApiSocketPath != null) log.ConfigNotSaved();

await stop.Task;
await host.DisposeAsync(); // graceful: see TargetHost.StopAsync (each step is logged)
log.Stopped();
return 0;

static string Url(System.Net.IPEndPoint e) =>
    $"http://{(e.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{e.Address}]" : e.Address)}:{e.Port}";
