using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Telemetry;

/// <summary>
/// The core's metrics (Meter "NvmeTcpTarget.Core"), one meter per <see cref="NvmeTarget"/>. Everything on the I/O
/// path is a plain counter or a lock-free histogram held per namespace (<see cref="NamespaceCounters"/>); the
/// instruments here are observable and read those when a listener collects. The one recorded instrument,
/// <see cref="CommandDuration"/>, is only recorded while something listens to it (an OTLP exporter), with a
/// TagList of cached strings (no allocation); the Prometheus endpoint reads the namespaces' own histograms.
/// </summary>
public sealed class CoreMetrics : IDisposable
{
    public const string MeterName = "NvmeTcpTarget.Core";

    public const string CommandDurationName = "nvmet.namespace.command.duration";
    public const string CommandDurationDescription =
        "Time from receiving an NVMe command that addressed the namespace to its completion, by operation (read, write, flush, other)";

    private readonly NvmeTarget _target;
    private readonly ConcurrentDictionary<(string Subsystem, NvmeStatus Status), StrongBox<long>> _commandErrors = new();
    internal long AsyncEventsSent;
    internal long KeepAliveExpiries;
    private readonly long[] _connectsRejected = new long[ConnectRejections.Labels.Length];
    private readonly long[] _authFailed = new long[Auth.AuthFailures.Labels.Length];
    /// <summary>DH-HMAC-CHAP exchanges that authenticated a queue.</summary>
    public long AuthenticationsSucceeded;

    internal CoreMetrics(NvmeTarget target)
    {
        _target = target;
        Meter = new Meter(MeterName);
        var m = Meter;

        m.CreateObservableCounter("nvmet.namespace.commands", () => PerNamespace(static (ns, t) =>
            [
                M(ns.Counters.Latency[0].Count, t, ("op", "read")),
                M(ns.Counters.Latency[1].Count, t, ("op", "write")),
                M(ns.Counters.Latency[2].Count, t, ("op", "flush")),
                M(ns.Counters.Latency[3].Count, t, ("op", "other")),
            ]), "{command}", "NVMe commands completed that addressed the namespace, any status, by operation (read, write, flush, other: write zeroes, dataset management)");
        m.CreateObservableCounter("nvmet.namespace.read", () => PerNamespace(static (ns, t) =>
            [M(Interlocked.Read(ref ns.Counters.BytesRead), t)]), "By", "Bytes read by successful read commands");
        m.CreateObservableCounter("nvmet.namespace.written", () => PerNamespace(static (ns, t) =>
            [M(Interlocked.Read(ref ns.Counters.BytesWritten), t)]), "By", "Bytes written by successful write commands");
        m.CreateObservableCounter("nvmet.namespace.errors", () => PerNamespace(static (ns, t) =>
            [.. ns.Counters.ErrorsByStatus.Select(e => M(e.Value, t, ("status", StatusLabel(e.Key))))]),
            "{command}", "Commands that addressed the namespace and completed with an error, by NVMe status");
        m.CreateObservableUpDownCounter("nvmet.namespace.commands.inflight", () => PerNamespace(static (ns, t) =>
            [M(ns.InFlight, t)]), "{command}", "Commands holding the namespace right now (received, not yet completed)");
        m.CreateObservableUpDownCounter("nvmet.namespace.size", () => PerNamespace(static (ns, t) =>
            [M((long)ns.BlockCount << ns.BlockShift, t)]), "By", "Namespace size");
        CommandDuration = m.CreateHistogram(CommandDurationName, "s", CommandDurationDescription,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyHistogram.BoundsSeconds });

        m.CreateObservableCounter("nvmet.command.errors", () => _commandErrors.Select(e =>
                new Measurement<long>(Interlocked.Read(ref e.Value.Value), Tag("subsystem", e.Key.Subsystem), Tag("status", StatusLabel(e.Key.Status)))),
            "{command}", "Commands completed with an error that addressed no namespace (admin, fabrics, unknown NSID), by subsystem and NVMe status");
        m.CreateObservableUpDownCounter("nvmet.controllers", () => AllSubsystems().Select(s =>
            new Measurement<long>(s.Controllers.Count, Tag("subsystem", s.Nqn))), "{controller}", "Controllers (one per connected host association), by subsystem");
        m.CreateObservableUpDownCounter("nvmet.queues", () => AllSubsystems().SelectMany(s =>
            {
                long admin = 0, io = 0;
                foreach (var c in s.Controllers)
                {
                    if (c.AdminQueue != null) admin++;
                    io += c.IoQueueCount;
                }
                return new[]
                {
                    new Measurement<long>(admin, Tag("subsystem", s.Nqn), Tag("type", "admin")),
                    new Measurement<long>(io, Tag("subsystem", s.Nqn), Tag("type", "io")),
                };
            }), "{queue}", "Queues bound to controllers, by subsystem and type (admin, io)");
        m.CreateObservableUpDownCounter("nvmet.commands.inflight", () =>
            _target.Subsystems.SelectMany(s => s.Namespaces).Sum(ns => (long)ns.InFlight), "{command}",
            "Commands in flight on all namespaces");
        m.CreateObservableUpDownCounter("nvmet.memory_namespaces", () => _target.MemoryNamespaceBytes, "By",
            "Bytes the memory namespaces promise together (their sizes, allocated or not)");
        m.CreateObservableGauge("nvmet.memory_namespaces.limit", () => _target.Limits.MemoryNamespaceLimit, "By",
            "Limit on the memory namespaces' total size (limits.memoryNamespaces, --memory-namespaces)");
        m.CreateObservableCounter("nvmet.ana.changes", () => AllSubsystems().Select(s =>
            new Measurement<long>((long)s.AnaChangeCount, Tag("subsystem", s.Nqn))), "{change}",
            "ANA changes (a group's state set to another value, a namespace moved to another group): the ANA log's change count, by subsystem");
        m.CreateObservableCounter("nvmet.async_events.sent", () => Interlocked.Read(ref AsyncEventsSent), "{event}",
            "Asynchronous events sent to hosts (completed Asynchronous Event Requests)");
        m.CreateObservableUpDownCounter("nvmet.faults.active", () => new[] { Faults.FaultAction.Error, Faults.FaultAction.Delay, Faults.FaultAction.Stall }
                .Select(a => new Measurement<long>(_target.Faults.Rules.Count(r => r.Spec.Action == a), Tag("action", a.ToString().ToLowerInvariant()))),
            "{fault}", "Injected faults set now, by action (error, delay, stall)");
        m.CreateObservableCounter("nvmet.faults.fired", () => new[]
            {
                new Measurement<long>(_target.Faults.FiredErrors, Tag("action", "error")),
                new Measurement<long>(_target.Faults.FiredDelays, Tag("action", "delay")),
                new Measurement<long>(_target.Faults.FiredStalls, Tag("action", "stall")),
            }, "{command}", "I/O commands an injected fault hit, by action (cleared faults included)");
        m.CreateObservableUpDownCounter("nvmet.faults.stalled", () => _target.Faults.Rules.Sum(r => r.Stalled), "{command}",
            "I/O commands held by stall faults right now");
        m.CreateObservableCounter("nvmet.keep_alive.expired", () => Interlocked.Read(ref KeepAliveExpiries), "{controller}",
            "Controllers destroyed because their host sent nothing within the keep-alive timeout");
        var buffers = target.DataBuffers;
        m.CreateObservableUpDownCounter("nvmet.data_buffer", () => new[]
            {
                new Measurement<long>(buffers.InUseBytes, Tag("state", "in_use")),
                new Measurement<long>(buffers.CreatedBytes, Tag("state", "created")),
            }, "By", "Data buffers over 16 KiB (admin and I/O): bytes attached to commands (in_use) and in existence (created, at most the budget)");
        m.CreateObservableUpDownCounter("nvmet.data_buffer.budget", () => buffers.Budget, "By",
            "The data buffer budget (--data-buffer-budget)");
        m.CreateObservableCounter("nvmet.data_buffer.share_waits", () => buffers.ShareWaits, "{command}",
            "Commands that waited for a data buffer because their host NQN held its share of the budget (--host-buffer-share)");
        m.CreateObservableCounter("nvmet.connects.rejected", () => ConnectRejections.Labels.Select((label, i) =>
                new Measurement<long>(Interlocked.Read(ref _connectsRejected[i]), Tag("reason", label))), "{command}",
            "Fabrics Connect commands refused, by reason (unknown_subsystem, port, host_not_allowed, controller_limit, invalid, authentication_required)");
        m.CreateObservableCounter("nvmet.authentications.succeeded", () => Interlocked.Read(ref AuthenticationsSucceeded), "{exchange}",
            "DH-HMAC-CHAP exchanges that authenticated a queue (admin and I/O queues, re-authentications included)");
        m.CreateObservableCounter("nvmet.authentications.failed", () => Auth.AuthFailures.Labels.Select((label, i) =>
                new Measurement<long>(Interlocked.Read(ref _authFailed[i]), Tag("reason", label))), "{exchange}",
            "DH-HMAC-CHAP exchanges that failed, by reason (bad_response, host_rejected, unusable, protocol, timeout)");
    }

    internal void AuthenticationFailed(Auth.AuthFailure reason) => Interlocked.Increment(ref _authFailed[(int)reason]);

    /// <summary>DH-HMAC-CHAP exchanges that failed for <paramref name="reason"/> so far.</summary>
    public long AuthenticationsFailed(Auth.AuthFailure reason) => Interlocked.Read(ref _authFailed[(int)reason]);

    internal void ConnectRejected(ConnectRejection reason) => Interlocked.Increment(ref _connectsRejected[(int)reason]);

    /// <summary>Connect commands refused for <paramref name="reason"/> so far.</summary>
    public long ConnectsRejected(ConnectRejection reason) => Interlocked.Read(ref _connectsRejected[(int)reason]);

    public Meter Meter { get; }

    /// <summary>Command latency in seconds, tags subsystem, nsid and op; recorded only while enabled.</summary>
    public Histogram<double> CommandDuration { get; }

    internal void RecordCommandError(string subsystem, NvmeStatus status) =>
        Interlocked.Increment(ref _commandErrors.GetOrAdd((subsystem, status), static _ => new StrongBox<long>()).Value);

    /// <summary>Errors of commands that addressed no namespace, by subsystem ("" before Connect) and status.</summary>
    public IEnumerable<(string Subsystem, NvmeStatus Status, long Count)> CommandErrors =>
        _commandErrors.Select(e => (e.Key.Subsystem, e.Key.Status, Interlocked.Read(ref e.Value.Value)));

    /// <summary>Records into <see cref="CommandDuration"/> when a listener wants it. No allocation.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal void RecordDuration(string subsystem, Namespace ns, IoOp op, long ticks)
    {
        var tags = new TagList
        {
            { "subsystem", subsystem },
            { "nsid", ns.NsidLabel },
            { "op", IoOps.Label(op) },
        };
        CommandDuration.Record(ticks / (double)Stopwatch.Frequency, tags);
    }

    /// <summary>A status as a label: its name ("LbaOutOfRange") or, for one without a name, "sct1_sc0x05".</summary>
    public static string StatusLabel(NvmeStatus status)
    {
        var plain = status & ~NvmeStatus.Dnr;
        foreach (var s in Enum.GetValues<NvmeStatus>())
            if (s != NvmeStatus.Dnr && (s & ~NvmeStatus.Dnr) == plain) return s.ToString();
        return $"sct{status.CodeType()}_sc0x{status.Code():x2}";
    }

    private IEnumerable<Subsystem> AllSubsystems() => [_target.Discovery, .. _target.Subsystems];

    private IEnumerable<Measurement<long>> PerNamespace(Func<Namespace, KeyValuePair<string, object?>[], Measurement<long>[]> each)
    {
        foreach (var s in _target.Subsystems)
            foreach (var ns in s.Namespaces)
                foreach (var m in each(ns, [Tag("subsystem", s.Nqn), Tag("nsid", ns.NsidLabel)]))
                    yield return m;
    }

    private static Measurement<long> M(long value, KeyValuePair<string, object?>[] tags, params (string Key, string Value)[] more) =>
        new(value, more.Length == 0 ? tags : [.. tags, .. more.Select(x => Tag(x.Key, x.Value))]);

    private static KeyValuePair<string, object?> Tag(string key, string value) => new(key, value);

    public void Dispose() => Meter.Dispose();
}

/// <summary>Why a Fabrics Connect was refused (the reason label of nvmet_connects_rejected_total).</summary>
public enum ConnectRejection { UnknownSubsystem, Port, HostNotAllowed, ControllerLimit, Invalid, AuthenticationRequired }

internal static class ConnectRejections
{
    /// <summary>Label of each <see cref="ConnectRejection"/>, by value.</summary>
    public static readonly string[] Labels = ["unknown_subsystem", "port", "host_not_allowed", "controller_limit", "invalid", "authentication_required"];
}
