using System.Net.Sockets;
using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging;
using Nvme.Core.Storage;
using Target;
using Target.Configuration;

var cl = CommandLine.Parse(args);
if (cl.ShowHelp) { Console.Out.Write(CommandLine.HelpText()); return 0; }
if (cl.ShowVersion) { Console.Out.WriteLine(Assembly.GetExecutingAssembly().GetName().Version); return 0; }
var errors = cl.Errors.Count > 0 ? cl.Errors : ConfigValidator.Validate(cl.Config);
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
using var loggers = LoggerFactory.Create(b => b
    .SetMinimumLevel(level)
    .AddFilter("Microsoft", LogLevel.Warning)
    .AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff "; }));
var log = loggers.CreateLogger("Target");

TargetHost host;
try
{
    host = await TargetHost.StartAsync(cl.Config, loggers, configPath: cl.ConfigPath);
}
catch (StoreException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (IOException e) when (e.InnerException is SocketException or null || e.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
{
    var ports = string.Join(", ", cl.Config.Ports.Select(p => $"{p.Address}:{p.Port}"));
    Console.Error.WriteLine($"error: cannot listen on {ports}: {e.Message}");
    return 2;
}

foreach (var s in host.Target.Subsystems)
    foreach (var ns in s.Namespaces)
        log.LogInformation("Subsystem {Nqn} namespace {Nsid}: {Store}, {Blocks} blocks of {BlockSize} bytes",
            s.Nqn, ns.Nsid, ns.Store.Description, ns.BlockCount, ns.BlockSize);
foreach (var ep in host.Endpoints)
{
    var port = host.Target.Ports.First(p => p.ServiceId == ep.Port);
    log.LogInformation("Listening for NVMe/TCP on {Endpoint} (discovery log address {Advertised})", ep, port.TransportAddress);
    foreach (var s in host.Target.Subsystems)
        log.LogInformation("Connect from Linux: nvme connect -t tcp -a {Address} -s {Port} -n {Nqn}", port.TransportAddress, ep.Port, s.Nqn);
}

var stop = new TaskCompletionSource();
int signals = 0;
void OnSignal(PosixSignalContext ctx)
{
    ctx.Cancel = true;
    if (Interlocked.Increment(ref signals) > 1) Environment.Exit(130); // a second signal: exit at once
    log.LogInformation("Shutting down ({Signal})", ctx.Signal);
    stop.TrySetResult();
}
using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
await stop.Task;
await host.DisposeAsync();
log.LogInformation("Stopped");
return 0;
