using System.Diagnostics.Metrics;
using Transport.Tcp.Pdu;

namespace Transport.Tcp;

/// <summary>
/// The NVMe/TCP transport's metrics (Meter "NvmeTcpTarget.Transport"): connections and what ended them badly.
/// Plain interlocked counters, touched per connection or per error, never per I/O; observable instruments read them.
/// </summary>
public sealed class TcpTransportMetrics : IDisposable
{
    public const string MeterName = "NvmeTcpTarget.Transport";

    /// <summary>For queues created without metrics (unit tests): counts, but publishes no meter.</summary>
    internal static readonly TcpTransportMetrics Detached = new(publish: false);

    internal long ConnectionsAccepted;
    internal long ConnectionsActive;
    internal long DataDigestErrors;
    internal long HostTerminations;
    internal long FaultsInjected;
    internal long Stalls;
    private readonly long[] _deadlines = new long[3];
    internal long BufferWaits;
    internal long ConnectionsRejectedAtLimit;
    private readonly long[] _protocolErrors = new long[8];

    public TcpTransportMetrics() : this(publish: true) { }

    private TcpTransportMetrics(bool publish)
    {
        if (!publish) return;
        var m = Meter = new Meter(MeterName);
        m.CreateObservableUpDownCounter("nvmet.tcp.connections", () => Interlocked.Read(ref ConnectionsActive), "{connection}",
            "NVMe/TCP connections open (each is one admin or I/O queue)");
        m.CreateObservableCounter("nvmet.tcp.connections.accepted", () => Interlocked.Read(ref ConnectionsAccepted), "{connection}",
            "NVMe/TCP connections accepted");
        m.CreateObservableCounter("nvmet.tcp.protocol_errors", () => Enum.GetValues<FatalErrorStatus>().Select(f =>
                new Measurement<long>(Interlocked.Read(ref _protocolErrors[(int)f]), new KeyValuePair<string, object?>("fes", f.ToString()))),
            "{connection}", "Connections ended by a protocol error of the host (the target sent C2HTermReq), by fatal error status");
        m.CreateObservableCounter("nvmet.tcp.connections.rejected", () => new Measurement<long>(Interlocked.Read(ref ConnectionsRejectedAtLimit),
                new KeyValuePair<string, object?>("reason", "limit")), "{connection}",
            "NVMe/TCP connections closed as they were accepted, by reason (limit: --max-connections were open)");
        m.CreateObservableCounter("nvmet.tcp.data_digest_errors", () => Interlocked.Read(ref DataDigestErrors), "{command}",
            "Write commands completed with Transient Transport Error because of a data digest mismatch");
        m.CreateObservableCounter("nvmet.tcp.host_terminations", () => Interlocked.Read(ref HostTerminations), "{connection}",
            "Connections the host ended with H2CTermReq");
        m.CreateObservableCounter("nvmet.tcp.faults_injected", () => Interlocked.Read(ref FaultsInjected), "{fault}",
            "Connection faults a test lab injected (drop, C2HTermReq, receive pause, wrong data digest)");
        m.CreateObservableCounter("nvmet.tcp.stalls", () => Interlocked.Read(ref Stalls), "{connection}",
            "Connections closed because a PDU, or the ICReq and Connect, did not arrive in time (the connect and pdu deadlines)");
        m.CreateObservableCounter("nvmet.tcp.deadlines.expired", () => Enum.GetValues<TcpDeadline>().Select(d =>
                new Measurement<long>(Interlocked.Read(ref _deadlines[(int)d]), new KeyValuePair<string, object?>("deadline", d.ToString().ToLowerInvariant()))),
            "{connection}", "Connections closed for a missed deadline: connect (ICReq and Connect after accept), pdu (a started PDU), r2t (the data after an R2T)");
        m.CreateObservableUpDownCounter("nvmet.tcp.reactor.connections", () => PerReactor(r => (long)r.Count), "{connection}",
            "Connections each reactor thread of the polling mode (--poll) serves");
        m.CreateObservableCounter("nvmet.tcp.reactor.busy", () => PerReactor(r => r.BusySeconds), "s",
            "Time each reactor thread of the polling mode spent polling instead of blocked: with traffic, the CPU it costs");
        m.CreateObservableUpDownCounter("nvmet.tcp.traces.running", () => (long)(Tracer?.Running ?? 0), "{trace}",
            "Wire traces (pcapng) running");
        m.CreateObservableCounter("nvmet.tcp.traces.started", () => Tracer?.Started ?? 0, "{trace}", "Wire traces started");
        m.CreateObservableCounter("nvmet.tcp.trace.bytes", () => Tracer?.BytesWritten ?? 0, "By", "Bytes written into wire trace files");
        m.CreateObservableCounter("nvmet.tcp.trace.dropped", () => Tracer?.BytesDropped ?? 0, "By",
            "Bytes on the wire left out of wire traces because the trace writer fell behind (the I/O path never waits for it)");
        m.CreateObservableCounter("nvmet.tcp.buffer_waits", () => Interlocked.Read(ref BufferWaits), "{command}",
            "Commands that waited for a data buffer because the data buffer budget was spent");
    }

    /// <summary>The wire traces of the server that owns these metrics.</summary>
    internal Trace.WireTracer? Tracer { get; set; }

    /// <summary>The polling mode's reactors, set by the server that owns them (none in the event-driven mode).</summary>
    internal IReadOnlyList<Net.PollingReactor> Reactors { get; set; } = [];

    private IEnumerable<Measurement<T>> PerReactor<T>(Func<Net.PollingReactor, T> value) where T : struct =>
        Reactors.Select(r => new Measurement<T>(value(r), new KeyValuePair<string, object?>("reactor", r.Index.ToString(System.Globalization.CultureInfo.InvariantCulture))));

    /// <summary>Null for <see cref="Detached"/>.</summary>
    public Meter? Meter { get; }

    internal void DeadlineExpired(TcpDeadline deadline)
    {
        Interlocked.Increment(ref _deadlines[(int)deadline]);
        if (deadline != TcpDeadline.R2T) Interlocked.Increment(ref Stalls);
    }

    /// <summary>Connections closed for missing <paramref name="deadline"/> so far.</summary>
    public long DeadlinesExpired(TcpDeadline deadline) => Interlocked.Read(ref _deadlines[(int)deadline]);

    internal void ProtocolError(FatalErrorStatus fes) => Interlocked.Increment(ref _protocolErrors[(int)fes & 7]);

    public void Dispose() => Meter?.Dispose();
}
