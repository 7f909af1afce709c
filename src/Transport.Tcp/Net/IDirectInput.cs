using System.Net.Sockets;

namespace Transport.Tcp.Net;

/// <summary>The socket under a connection's input pipe, offered to the queue so that it can receive an H2CData
/// payload straight into the command's buffer (see NvmeTcpQueue.DirectReceive).</summary>
internal interface IDirectInput
{
    Socket Socket { get; }
    /// <summary>True in the polling mode: the reactor reads the socket and asks the queue
    /// (<see cref="IDirectReceiveSink"/>) first; false: the queue's receive loop reads it itself.</summary>
    bool ReactorReceives { get; }
    /// <summary>Whether the socket's next bytes may be switched to a direct receive now, from the receive loop in
    /// the middle of a batch: always when the loop is the only reader; in the polling mode only while the reactor
    /// runs the loop inline from its flush (so nothing received is left unconsumed in the pipe).</summary>
    bool CanBegin { get; }
    void Attach(IDirectReceiveSink sink);
}

/// <summary>The queue, as the polling reactor sees it.</summary>
internal interface IDirectReceiveSink
{
    /// <summary>Reactor thread: receives (never blocking) into the command's buffer if a payload is being received
    /// directly; false when none is (receive into the pipe).</summary>
    bool TryReceiveDirect(Socket socket, out int received, out SocketError error);

    /// <summary>The most a receive into the pipe should take now (the queue expects an H2CData: little more than its header).</summary>
    int ReceiveLimit { get; }
}
