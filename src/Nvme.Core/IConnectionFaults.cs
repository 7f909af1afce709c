namespace Nvme.Core;

/// <summary>
/// Faults a test lab injects into one connection (a transport queue that supports them implements this next to
/// <see cref="IQueueTransport"/>). Every method is thread-safe and returns at once; the fault happens on the
/// connection's own loops.
/// </summary>
public interface IConnectionFaults
{
    /// <summary>Cuts the connection abruptly (TCP reset, nothing more is sent) once it has received
    /// <paramref name="pdus"/> more PDUs; 0 = now.</summary>
    void DropAfterPdus(int pdus);

    /// <summary>Ends the connection with a transport-level termination request (NVMe/TCP C2HTermReq).</summary>
    void SendTerminationRequest();

    /// <summary>Stops reading from the connection for <paramref name="duration"/> (the host's sends back up: TCP
    /// back-pressure); already received commands go on.</summary>
    void PauseReceive(TimeSpan duration);

    /// <summary>Sends the next data PDU with a wrong data digest. False when the connection has no data digests.</summary>
    bool CorruptNextDataDigest();
}
