using Microsoft.Extensions.Logging;

namespace Target;

/// <summary>The program's, the host's and the management API's log messages (event ids 300-399 and 400-499;
/// the core uses 100-199, the transport 200-299).</summary>
internal static partial class TargetLog
{
    // ---- start-up (category "Target") ----
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Subsystem {Nqn} namespace {Nsid}: {Store}, {Blocks} blocks of {BlockSize} bytes")]
    public static partial void NamespaceReady(this ILogger log, string nqn, uint nsid, string store, ulong blocks, int blockSize);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Listening for NVMe/TCP on {Endpoint} (discovery log address {Advertised})")]
    public static partial void Listening(this ILogger log, string endpoint, string advertised);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Connect from Linux: nvme connect -t tcp -a {Address} -s {Port} -n {Nqn}")]
    public static partial void ConnectHint(this ILogger log, string address, int port, string nqn);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "Management API on {Url}/api/v1 ({Auth}); e.g. nvme-tcp-target ns list --api {Url}")]
    public static partial void ApiListening(this ILogger log, string url, string auth);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "Management API off")]
    public static partial void ApiOff(this ILogger log);

    [LoggerMessage(EventId = 319, Level = LogLevel.Information,
        Message = "Management API on the Unix socket {Path} ({Access}; {Auth}); e.g. nvme-tcp-target ns list --api unix:{Path}")]
    public static partial void ApiOnSocket(this ILogger log, string path, string access, string auth);

    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message = "Probes off (no /healthz, /readyz or /metrics listener)")]
    public static partial void ProbesOff(this ILogger log);

    [LoggerMessage(EventId = 321, Level = LogLevel.Information,
        Message = "Subsystem {Nqn} admits any host NQN (it is reachable on loopback only); restrict it with --allow-host NQN or allowedHosts")]
    public static partial void AnyHostOnLoopback(this ILogger log, string nqn);

    [LoggerMessage(EventId = 322, Level = LogLevel.Warning,
        Message = "Subsystem {Nqn} admits any host NQN that reaches {Endpoints} (allowAnyHost); list the hosts in allowedHosts to restrict it")]
    public static partial void AnyHostExposed(this ILogger log, string nqn, string endpoints);

    [LoggerMessage(EventId = 323, Level = LogLevel.Warning, Message = "Configuration: {Warning}")]
    public static partial void ConfigWarning(this ILogger log, string warning);

    [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message = "Live changes are saved to {Path}")]
    public static partial void ConfigSaved(this ILogger log, string path);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Live changes last until the target stops (start it with --config FILE to keep them)")]
    public static partial void ConfigNotSaved(this ILogger log);

    [LoggerMessage(EventId = 307, Level = LogLevel.Information,
        Message = "Probes (read-only): {Url}/healthz and {Url}/readyz (no token); metrics: {Url}/metrics ({MetricsAuth})")]
    public static partial void Probes(this ILogger log, string url, string metricsAuth);

    [LoggerMessage(EventId = 308, Level = LogLevel.Information,
        Message = "Exporting metrics and traces over OTLP ({Protocol}) to {Endpoint}; I/O trace sample rate {Rate}")]
    public static partial void OtlpOn(this ILogger log, string protocol, string endpoint, double rate);

    [LoggerMessage(EventId = 309, Level = LogLevel.Information,
        Message = "Polling mode: {Reactors} reactor thread(s) on {Cpus}, spinning until {IdleMicroseconds} us without traffic (a busy core each while traffic flows)")]
    public static partial void PollingOn(this ILogger log, int reactors, string cpus, long idleMicroseconds);

    // ---- shutdown ----
    [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message = "Shutting down ({Signal}); a second signal exits at once")]
    public static partial void ShuttingDown(this ILogger log, string signal);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information,
        Message = "Shutdown: no longer accepting connections or new commands; {Connections} connection(s) finishing their commands (grace period {Grace} s)")]
    public static partial void ShutdownDraining(this ILogger log, int connections, double grace);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "Shutdown: every connection answered its commands and closed")]
    public static partial void ShutdownDrained(this ILogger log);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning,
        Message = "Shutdown: grace period of {Grace} s over; closed the {Connections} connection(s) still waiting for commands (their hosts retry them after reconnecting)")]
    public static partial void ShutdownGraceExpired(this ILogger log, double grace, int connections);

    [LoggerMessage(EventId = 314, Level = LogLevel.Warning,
        Message = "Shutdown: namespace {Nsid} of {Nqn} still has {InFlight} command(s) in its backing store; the store is closed when they return")]
    public static partial void ShutdownStuck(this ILogger log, uint nsid, string nqn, int inFlight);

    [LoggerMessage(EventId = 315, Level = LogLevel.Information, Message = "Shutdown: flushed and closed namespace {Nsid} of {Nqn} ({Store})")]
    public static partial void ShutdownFlushed(this ILogger log, uint nsid, string nqn, string store);

    [LoggerMessage(EventId = 316, Level = LogLevel.Error, Message = "Shutdown: flushing namespace {Nsid} of {Nqn} ({Store}) failed: {Error}")]
    public static partial void ShutdownFlushFailed(this ILogger log, uint nsid, string nqn, string store, string error);

    [LoggerMessage(EventId = 317, Level = LogLevel.Information, Message = "Shutdown: telemetry exported and exporters stopped")]
    public static partial void ShutdownTelemetry(this ILogger log);

    [LoggerMessage(EventId = 318, Level = LogLevel.Information, Message = "Stopped")]
    public static partial void Stopped(this ILogger log);

    // ---- management (category "Target.Management" / "Target.ManagementApi") ----
    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Created subsystem {Nqn} with {Count} namespace(s)")]
    public static partial void SubsystemCreated(this ILogger log, string nqn, int count);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Deleted subsystem {Nqn}")]
    public static partial void SubsystemDeleted(this ILogger log, string nqn);

    [LoggerMessage(EventId = 402, Level = LogLevel.Information, Message = "Added namespace {Nsid} to {Nqn}: {Store}, {Blocks} blocks of {BlockSize} bytes")]
    public static partial void NamespaceAdded(this ILogger log, uint nsid, string nqn, string store, ulong blocks, int blockSize);

    [LoggerMessage(EventId = 403, Level = LogLevel.Information, Message = "Removed namespace {Nsid} from {Nqn}")]
    public static partial void NamespaceRemoved(this ILogger log, uint nsid, string nqn);

    [LoggerMessage(EventId = 404, Level = LogLevel.Warning,
        Message = "Removed namespace {Nsid} from {Nqn}; I/O still in flight after {Timeout}: its store closes when that I/O ends")]
    public static partial void NamespaceRemovedWithStuckIo(this ILogger log, uint nsid, string nqn, TimeSpan timeout);

    [LoggerMessage(EventId = 405, Level = LogLevel.Information, Message = "Resized namespace {Nsid} of {Nqn} from {Before} to {After} blocks")]
    public static partial void NamespaceResized(this ILogger log, uint nsid, string nqn, ulong before, ulong after);

    [LoggerMessage(EventId = 420, Level = LogLevel.Information, Message = "DH-HMAC-CHAP settings of host {Host} on {Nqn} changed (now {Mode}); new controllers use them, live ones when they re-authenticate")]
    public static partial void HostAuthChanged(this ILogger log, string host, string nqn, string mode);

    [LoggerMessage(EventId = 406, Level = LogLevel.Information, Message = "Allowed host {Host} on {Nqn}")]
    public static partial void HostAllowed(this ILogger log, string host, string nqn);

    [LoggerMessage(EventId = 407, Level = LogLevel.Information, Message = "Removed host {Host} from {Nqn}; disconnected its {Controllers} controller(s) there")]
    public static partial void HostRemoved(this ILogger log, string host, string nqn, int controllers);

    [LoggerMessage(EventId = 408, Level = LogLevel.Warning, Message = "Subsystem {Nqn} now admits no host: its allowed-host list is empty and allowAnyHost is off")]
    public static partial void SubsystemClosed(this ILogger log, string nqn);

    [LoggerMessage(EventId = 409, Level = LogLevel.Information, Message = "Subsystem {Nqn}: allowAnyHost {Allow}; disconnected {Controllers} controller(s) of hosts no longer allowed")]
    public static partial void AnyHostChanged(this ILogger log, string nqn, bool allow, int controllers);

    [LoggerMessage(EventId = 413, Level = LogLevel.Information, Message = "Subsystem {Nqn} is now reachable on {Ports}; disconnected {Controllers} controller(s) that came in elsewhere")]
    public static partial void PortsChanged(this ILogger log, string nqn, string ports, int controllers);

    [LoggerMessage(EventId = 412, Level = LogLevel.Error, Message = "Saving the configuration to {Path} failed ({Error}); the change was refused and nothing changed")]
    public static partial void ConfigSaveFailed(this ILogger log, string path, string error);

    [LoggerMessage(EventId = 411, Level = LogLevel.Warning,
        Message = "Management API refused {Method} {Path}: Host header '{Host}' names no address of this target (DNS rebinding?)")]
    public static partial void ApiHostRefused(this ILogger log, string host, string method, string path);

    [LoggerMessage(EventId = 430, Level = LogLevel.Information,
        Message = "Namespace {Nsid} of {Nqn} is now {Visibility}; {Concerned} controller(s) concerned got the namespace event")]
    public static partial void NamespaceVisibilityChanged(this ILogger log, uint nsid, string nqn, string visibility, int concerned);

    [LoggerMessage(EventId = 431, Level = LogLevel.Warning,
        Message = "Namespace {Nsid} of {Nqn}: I/O of a host masked out did not finish within {Timeout}; it was aborted and the host detached")]
    public static partial void NamespaceMaskedWithStuckIo(this ILogger log, uint nsid, string nqn, TimeSpan timeout);

    [LoggerMessage(EventId = 432, Level = LogLevel.Information, Message = "Subsystem {Nqn}: host {Host} {Change} the namespace attachment privilege")]
    public static partial void AttachPrivilegeChanged(this ILogger log, string nqn, string host, string change);

    [LoggerMessage(EventId = 440, Level = LogLevel.Warning,
        Message = "Subsystem {Nqn}: ANA group {Group} on {Ports} is now {State} (was {Before}); {Controllers} controller(s) got the ANA change event")]
    public static partial void AnaStateChanged(this ILogger log, string nqn, uint group, string ports, string before, string state, int controllers);

    [LoggerMessage(EventId = 441, Level = LogLevel.Information,
        Message = "Namespace {Nsid} of {Nqn} moved from ANA group {From} to {To}; {Controllers} controller(s) got the ANA change event")]
    public static partial void NamespaceAnaGroupChanged(this ILogger log, uint nsid, string nqn, uint from, uint to, int controllers);

    [LoggerMessage(EventId = 442, Level = LogLevel.Information, Message = "Subsystem {Nqn}: ANA change event sent on demand to {Controllers} controller(s)")]
    public static partial void AnaEventSent(this ILogger log, string nqn, int controllers);

    [LoggerMessage(EventId = 410, Level = LogLevel.Error, Message = "Management API request {Method} {Path} failed")]
    public static partial void ApiRequestFailed(this ILogger log, Exception e, string method, string path);

    [LoggerMessage(EventId = 445, Level = LogLevel.Information,
        Message = "Namespace {Nsid} of {Nqn}: {Store} was resized outside the target, from {Before} to {After} blocks; connected hosts got the namespace event")]
    public static partial void RbdImageResized(this ILogger log, uint nsid, string nqn, string store, ulong before, ulong after);

    [LoggerMessage(EventId = 446, Level = LogLevel.Warning,
        Message = "Namespace {Nsid} of {Nqn}: {Store} was resized outside the target to {Bytes} bytes, but the namespace could not follow: {Reason}")]
    public static partial void RbdImageResizeFailed(this ILogger log, uint nsid, string nqn, string store, long bytes, string reason);

    [LoggerMessage(EventId = 447, Level = LogLevel.Warning,
        Message = "Namespace {Nsid} of {Nqn} is {State} (simulated, not saved); {Controllers} controller(s) told")]
    public static partial void WriteProtectionSimulated(this ILogger log, uint nsid, string nqn, string state, int controllers);

    // ---- automatic failover (AnaFailover)

    [LoggerMessage(EventId = 450, Level = LogLevel.Information,
        Message = "Automatic failover: gateway {Gateway}, lease {Lease} s, for subsystem(s) {Subsystems}")]
    public static partial void FailoverStarting(this ILogger log, string gateway, double lease, string subsystems);

    [LoggerMessage(EventId = 451, Level = LogLevel.Warning,
        Message = "Subsystem {Nqn}: gateway {Gateway} took ANA group {Group} over from {From}")]
    public static partial void FailoverTookOver(this ILogger log, string nqn, uint group, string gateway, string from);

    [LoggerMessage(EventId = 452, Level = LogLevel.Warning,
        Message = "Subsystem {Nqn}: gateway {Gateway} lost ANA group {Group} to {Holder}")]
    public static partial void FailoverLost(this ILogger log, string nqn, uint group, string gateway, string holder);

    [LoggerMessage(EventId = 453, Level = LogLevel.Information,
        Message = "Subsystem {Nqn}: gateway {Gateway} released ANA group {Group}: {Why}")]
    public static partial void FailoverSteppedDown(this ILogger log, string nqn, uint group, string gateway, string why);

    [LoggerMessage(EventId = 454, Level = LogLevel.Error,
        Message = "Subsystem {Nqn}: gateway {Gateway} ({Client}) is blocklisted by the Ceph cluster — another gateway took ANA group {Group} over; " +
            "its paths are inaccessible until this gateway restarts")]
    public static partial void FailoverFenced(this ILogger log, string nqn, uint group, string gateway, string client);

    [LoggerMessage(EventId = 455, Level = LogLevel.Error,
        Message = "Subsystem {Nqn}: the previous owner {Gateway} of ANA group {Group} at {Address} could not be blocklisted: {Reason}{Hint}")]
    public static partial void FailoverFenceFailed(this ILogger log, string nqn, uint group, string gateway, string address, string reason, string hint);

    [LoggerMessage(EventId = 456, Level = LogLevel.Warning, Message = "Subsystem {Nqn}, ANA group {Group}: {Problem}")]
    public static partial void FailoverProblem(this ILogger log, string nqn, uint group, string problem);

    [LoggerMessage(EventId = 457, Level = LogLevel.Information,
        Message = "Subsystem {Nqn}: ANA group {Group} is now {State} on this gateway (was {Before}): {Why}; {Controllers} controller(s) got the ANA change event")]
    public static partial void FailoverAnaState(this ILogger log, string nqn, uint group, string state, string before, string why, int controllers);

    [LoggerMessage(EventId = 458, Level = LogLevel.Information,
        Message = "Subsystem {Nqn}: hand-over of ANA group {Group} from {From} to {To} asked")]
    public static partial void FailoverHandoverAsked(this ILogger log, string nqn, uint group, string from, string to);

    [LoggerMessage(EventId = 459, Level = LogLevel.Error, Message = "Automatic failover of gateway {Gateway}: a pass failed")]
    public static partial void FailoverPassFailed(this ILogger log, Exception e, string gateway);

    [LoggerMessage(EventId = 460, Level = LogLevel.Warning,
        Message = "Automatic failover of gateway {Gateway}: Ceph did not answer within 5 s while stopping (a call is stuck); going on without (the leases run out by themselves)")]
    public static partial void FailoverLoopStuck(this ILogger log, string gateway);
}
