using System.Buffers;
using System.Net;
using Transport.Tcp.Net;
using Transport.Tcp.Trace;

namespace Transport.Tcp;

/// <summary>Wire traces (<see cref="WireTracer"/>): the receive loop hands each read's new bytes to the connection's
/// taps before it handles them, the socket writer each flush before it sends it. With no trace running this costs the
/// receive loop one field read per batch and each flush one.</summary>
public sealed partial class NvmeTcpQueue : ISendObserver
{
    private readonly Lock _tapGate = new();
    private ConnectionTap[]? _taps; // replaced whole under _tapGate; read without it

    /// <summary>The connection's addresses (set by the server at accept; null over a plain pipe: not traceable).</summary>
    internal (IPEndPoint Host, IPEndPoint Target)? Endpoints { get; set; }

    /// <summary>Who the connection is once its Connect succeeded (subsystem, host, CNTLID, queue); null before.</summary>
    internal (string Subsystem, string Host, ushort Cntlid, ushort Queue)? Identity =>
        _installed && _core.Controller is { } c ? (c.Subsystem.Nqn, c.HostNqn, c.Cntlid, _core.QueueId) : null;

    internal void AddTap(ConnectionTap tap)
    {
        lock (_tapGate)
        {
            var taps = _taps ?? [];
            Volatile.Write(ref _taps, [.. taps, tap]);
            if (_writer.Output is IObservableSend s) s.Observer = this;
        }
    }

    internal void RemoveTap(ConnectionTap tap)
    {
        lock (_tapGate)
        {
            var taps = _taps;
            if (taps is null || Array.IndexOf(taps, tap) < 0) return;
            var rest = taps.Where(t => t != tap).ToArray();
            Volatile.Write(ref _taps, rest.Length == 0 ? null : rest);
            if (rest.Length == 0 && _writer.Output is IObservableSend s) s.Observer = null;
        }
    }

    /// <summary>Receive loop, before the batch is handled: every tap sees the bytes it has not seen yet. A new tap starts
    /// at the buffer's start, where the last batch left an unfinished PDU (or nothing): always a PDU boundary.</summary>
    private static void TapReceived(ConnectionTap[] taps, in ReadOnlySequence<byte> buffer)
    {
        foreach (var t in taps)
        {
            long from = Math.Max(t.ReceiveCarry, 0);
            if (from < buffer.Length) t.Received(buffer.Slice(from));
        }
    }

    /// <summary>Receive loop, after the batch: the unconsumed rest comes again with the next read (only for the taps
    /// that saw it: a tap added meanwhile starts at the next buffer's start).</summary>
    private static void TapCarry(ConnectionTap[] taps, long remaining)
    {
        foreach (var t in taps) t.ReceiveCarry = remaining;
    }

    /// <summary>The socket writer, before a send (writer loop): the bytes of whole PDUs about to go out.</summary>
    void ISendObserver.Sent(List<ArraySegment<byte>> segments)
    {
        var taps = Volatile.Read(ref _taps);
        if (taps is null) return;
        foreach (var t in taps) t.Sent(segments);
    }

    /// <summary>The Connect succeeded (receive loop): pending taps learn whether their trace wants this connection.</summary>
    private void IdentifyTaps()
    {
        var taps = Volatile.Read(ref _taps);
        if (taps is null || Identity is not { } id) return;
        foreach (var t in taps)
            if (!t.Identified(t.Trace.Options.Selection.Matches(id.Subsystem, id.Host, id.Cntlid, id.Queue), Describe(id)))
                RemoveTap(t);
    }

    internal string Describe((string Subsystem, string Host, ushort Cntlid, ushort Queue)? id) =>
        id is { } i ? $"{PeerAddress}: host {i.Host}, subsystem {i.Subsystem}, cntlid {i.Cntlid}, queue {i.Queue}" : $"{PeerAddress}: before its Connect";

    /// <summary>The connection has ended (everything it will send is flushed): each trace gets the end of its stream.</summary>
    private void CloseTaps()
    {
        ConnectionTap[]? taps;
        lock (_tapGate)
        {
            taps = _taps;
            _taps = null;
            if (_writer.Output is IObservableSend s) s.Observer = null;
        }
        if (taps is null) return;
        foreach (var t in taps) t.ConnectionClosed();
    }
}
