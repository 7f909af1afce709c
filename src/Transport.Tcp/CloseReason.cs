namespace Transport.Tcp;

/// <summary>Why a connection ended: what telemetry records (<see cref="CloseReasons.Label"/>); the log line says it in
/// words, with the details (<see cref="CloseInfo.Text"/>).</summary>
public enum CloseReason
{
    /// <summary>The host closed its side between PDUs.</summary>
    PeerClosed,
    /// <summary>The host closed its side with a PDU half sent.</summary>
    PeerClosedMidPdu,
    /// <summary>The socket failed under us (reset, network gone).</summary>
    ConnectionLost,
    /// <summary>The host broke the protocol: the target sent a C2HTermReq.</summary>
    ProtocolError,
    /// <summary>The host sent an H2CTermReq.</summary>
    HostTermination,
    /// <summary>No ICReq and successful Connect within the connect deadline.</summary>
    ConnectDeadline,
    /// <summary>A PDU started but did not complete within the PDU deadline.</summary>
    PduDeadline,
    /// <summary>The data for an R2T did not arrive within the R2T deadline.</summary>
    R2TDeadline,
    /// <summary>The host's Disconnect was answered.</summary>
    Disconnect,
    /// <summary>The core destroyed the queue's controller (keep-alive expiry, subsystem or host removed, admin queue gone).</summary>
    ControllerDestroyed,
    /// <summary>Graceful shutdown: the connection drained.</summary>
    Shutdown,
    /// <summary>Sending to the host failed.</summary>
    SendFailed,
    /// <summary>A bug: an unexpected exception on the connection.</summary>
    InternalError,
    /// <summary>A test lab's injected connection fault (drop, termination request).</summary>
    FaultInjected,
}

/// <summary>The first reason a connection got to close, and the log's words for it.</summary>
internal sealed record CloseInfo(CloseReason Reason, string Text);

public static class CloseReasons
{
    /// <summary>The reason as telemetry writes it (trace tag nvme.close_reason): constant snake_case strings.</summary>
    public static string Label(CloseReason reason) => reason switch
    {
        CloseReason.PeerClosed => "peer_closed",
        CloseReason.PeerClosedMidPdu => "peer_closed_mid_pdu",
        CloseReason.ConnectionLost => "connection_lost",
        CloseReason.ProtocolError => "protocol_error",
        CloseReason.HostTermination => "host_termination",
        CloseReason.ConnectDeadline => "connect_deadline",
        CloseReason.PduDeadline => "pdu_deadline",
        CloseReason.R2TDeadline => "r2t_deadline",
        CloseReason.Disconnect => "disconnect",
        CloseReason.ControllerDestroyed => "controller_destroyed",
        CloseReason.Shutdown => "shutdown",
        CloseReason.SendFailed => "send_failed",
        CloseReason.InternalError => "internal_error",
        CloseReason.FaultInjected => "fault_injected",
        _ => "unknown",
    };

    /// <summary>The close reason of a missed deadline.</summary>
    public static CloseReason Of(TcpDeadline deadline) => deadline switch
    {
        TcpDeadline.Connect => CloseReason.ConnectDeadline,
        TcpDeadline.Pdu => CloseReason.PduDeadline,
        _ => CloseReason.R2TDeadline,
    };
}
