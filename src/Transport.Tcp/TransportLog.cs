using Microsoft.Extensions.Logging;

namespace Transport.Tcp;

internal static partial class TransportLog
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Debug, Message = "Connection from {Peer} accepted")]
    public static partial void ConnectionAccepted(this ILogger log, string peer);

    [LoggerMessage(EventId = 201, Level = LogLevel.Information, Message = "Connection from {Peer} (host {HostNqn}, queue {Qid}) closed: {Reason}")]
    public static partial void ConnectionClosed(this ILogger log, string peer, string hostNqn, int qid, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Warning,
        Message = "Protocol error from {Peer} (host {HostNqn}, queue {Qid}): {Message}; sending C2HTermReq FES {Fes} and closing")]
    public static partial void ProtocolError(this ILogger log, string peer, string hostNqn, int qid, string message, string fes);

    [LoggerMessage(EventId = 203, Level = LogLevel.Warning, Message = "Host {Peer} (host {HostNqn}) terminated the connection: H2CTermReq FES {Fes}")]
    public static partial void HostTerminated(this ILogger log, string peer, string hostNqn, int fes);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "Data digest error from {Peer} (host {HostNqn}) on command {Cid}; completing it with Transient Transport Error")]
    public static partial void DataDigestError(this ILogger log, string peer, string hostNqn, ushort cid);

    [LoggerMessage(EventId = 205, Level = LogLevel.Error, Message = "Internal error on connection from {Peer}; closing it")]
    public static partial void InternalError(this ILogger log, Exception e, string peer);

    [LoggerMessage(EventId = 206, Level = LogLevel.Warning,
        Message = "Connection from {Peer} (host {HostNqn}, queue {Qid}) missed the {Deadline} deadline ({Seconds} s): {What}; closing it")]
    public static partial void DeadlineExpired(this ILogger log, string peer, string hostNqn, int qid, string deadline, double seconds, string what);

    [LoggerMessage(EventId = 207, Level = LogLevel.Debug,
        Message = "Connection from {Peer} (host {HostNqn}, queue {Qid}) drained for shutdown: every command it had taken is answered; {Ignored} newer command(s) left for the host to retry")]
    public static partial void Drained(this ILogger log, string peer, string hostNqn, int qid, int ignored);

    [LoggerMessage(EventId = 209, Level = LogLevel.Warning,
        Message = "Refused the connection from {Peer}: {Limit} NVMe/TCP connections are open, the limit (--max-connections); {Suppressed} more refused since the last of these messages")]
    public static partial void ConnectionRefusedAtLimit(this ILogger log, string peer, int limit, long suppressed);

    [LoggerMessage(EventId = 208, Level = LogLevel.Warning, Message = "Accepting a connection failed ({Error}): {Message}; still listening")]
    public static partial void AcceptFailed(this ILogger log, string error, string message);

    [LoggerMessage(EventId = 215, Level = LogLevel.Warning, Message = "Injected fault on the connection from {Peer} (host {HostNqn}, queue {Qid}): {What}")]
    public static partial void FaultInjected(this ILogger log, string peer, string hostNqn, ushort qid, string what);

    [LoggerMessage(EventId = 216, Level = LogLevel.Information,
        Message = "Wire trace {Id} started: {Selection} into {Path} (at most {MaxBytes} bytes, data {Truncation}, {Duration})")]
    public static partial void TraceStarted(this ILogger log, int id, string selection, string path, long maxBytes, string truncation, string duration);

    [LoggerMessage(EventId = 217, Level = LogLevel.Information,
        Message = "Wire trace {Id} stopped ({Reason}): {Path} holds {Connections} connection(s), {Packets} packets, {Bytes} bytes; {Dropped} bytes on the wire left out because the writer fell behind")]
    public static partial void TraceStopped(this ILogger log, int id, string reason, string path, long connections, long packets, long bytes, long dropped);
}
