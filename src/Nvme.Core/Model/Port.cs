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

/// <summary>A port of another target instance (a gateway) serving some of the same subsystems: this target's discovery
/// log lists it too, so that a host's discovery (nvme connect-all) finds every path. <paramref name="Subsystems"/>:
/// the subsystem NQNs it serves; null: every NVM subsystem of this target.</summary>
public sealed record PeerPort(ushort PortId, string TransportAddress, int ServiceId, IReadOnlyList<string>? Subsystems = null)
{
    public bool Serves(string nqn) => Subsystems is null || Subsystems.Contains(nqn, StringComparer.Ordinal);
}
