using System.Net;

namespace Nvme.Core.Model;

/// <summary>A transport port: where the target listens, and what the discovery log advertises.</summary>
public sealed record Port(ushort PortId, IPAddress Address, int ServiceId, string? AdvertisedAddress = null)
{
    /// <summary>The transport serving this port, as it describes itself (TRTYPE and TREQ of the discovery log
    /// entries), as the kernel target's port carries its transport's discovery address.</summary>
    public required TransportDescriptor Transport { get; init; }

    /// <summary>TRADDR in discovery log entries: the configured advertised address, or the listen address.</summary>
    public string TransportAddress => AdvertisedAddress ?? Address.ToString();
}
