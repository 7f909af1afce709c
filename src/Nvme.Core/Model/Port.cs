using System.Net;

namespace Nvme.Core.Model;

/// <summary>A transport port: where the target listens, and what the discovery log advertises.</summary>
public sealed record Port(ushort PortId, IPAddress Address, int ServiceId, string? AdvertisedAddress = null)
{
    /// <summary>TRADDR in discovery log entries: the configured advertised address, or the listen address.</summary>
    public string TransportAddress => AdvertisedAddress ?? Address.ToString();
}
