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
    b.SetMinimumLevel(level).AddFilter("Microsoft", LogLevel.Warning);
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
var stop = new TaskCompletionSource();
int signals = 0;
void OnSignal(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    if (Interlocked.Increment(ref signals) > 1) Environment.Exit(130); // a second signal: exit at once
    log.ShuttingDown(ctx.Signal.ToString());
    stop.TrySetResult();
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

TargetHost host;
try
{
    host = await TargetHost.StartAsync(cl.Config, loggers, configPath: cl.ConfigPath, api: cl.Api, telemetry: cl.Telemetry, storage: cl.Storage);
    host.ShutdownGrace = cl.ShutdownGrace;
}
catch (StoreException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (IOException e) when (e.InnerException is SocketException or null || e.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
{
    var ports = string.Join(", ", cl.Config.Ports.Select(p => $"{p.Address}:{p.Port}")
        .Concat(cl.Api is { } api ? [$"{api.Address}:{api.Port} (management API; --api ADDR:PORT or --api off)"] : []));
    Console.Error.WriteLine($"error: cannot listen on {ports}: {e.Message}");
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
if (host.ApiEndpoint is { } apiEndpoint)
{
    var url = $"http://{(apiEndpoint.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{apiEndpoint.Address}]" : apiEndpoint.Address)}:{apiEndpoint.Port}";
    log.ApiListening(url, cl.Api!.Token != null ? "bearer token required" : "no token");
    log.Probes(url, cl.Telemetry.MetricsRequireToken && cl.Api.Token != null ? "bearer token required" : "no token");
}
else log.ApiOff();
if (cl.ConfigPath != null) log.ConfigSaved(Path.GetFullPath(cl.ConfigPath));
else if (host.ApiEndpoint != null) log.ConfigNotSaved();

await stop.Task;
await host.DisposeAsync(); // graceful: see TargetHost.StopAsync (each step is logged)
log.Stopped();
return 0;
