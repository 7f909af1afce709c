using System.Net.Sockets;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Commands;

/// <summary>
/// The discovery log page (NVMe over Fabrics spec 5.3): on every port, one entry for the discovery subsystem
/// itself and one for each NVM subsystem bound to that port that the host may use; then, for each port of another
/// gateway (<see cref="NvmeTarget.PeerPorts"/>), one for each NVM subsystem it serves that the host may use here.
/// </summary>
internal static class DiscoveryLog
{
    public static byte[] Build(NvmeTarget target, string hostNqn)
    {
        var entries = new List<(Port Port, Subsystem Subsystem)>();
        foreach (var port in target.Ports)
        {
            entries.Add((port, target.Discovery));
            foreach (var s in target.Subsystems.OrderBy(s => s.Nqn, StringComparer.Ordinal))
                if (s.IsReachableOn(port.PortId) && s.IsHostAllowed(hostNqn)) entries.Add((port, s));
        }
        var peers = new List<(PeerPort Port, Subsystem Subsystem)>();
        foreach (var peer in target.PeerPorts)
            foreach (var s in target.Subsystems.OrderBy(s => s.Nqn, StringComparer.Ordinal))
                if (peer.Serves(s.Nqn) && s.IsHostAllowed(hostNqn)) peers.Add((peer, s));
        // A peer speaks the transport this target does (its first port's: TRTYPE, TREQ).
        var transport = target.Ports.Count > 0 ? target.Ports[0].Transport : null;
        if (transport is null) peers.Clear();
        var page = new byte[DiscoveryLogHeader.Size + (entries.Count + peers.Count) * DiscoveryLogEntry.Size];
        ref var header = ref MemoryMarshal.AsRef<DiscoveryLogHeader>(page.AsSpan());
        header.GenerationCounter = target.DiscoveryGeneration;
        header.NumberOfRecords = (ulong)(entries.Count + peers.Count);
        header.RecordFormat = 0;
        for (int i = 0; i < entries.Count; i++)
        {
            var (port, s) = entries[i];
            ref var e = ref MemoryMarshal.AsRef<DiscoveryLogEntry>(page.AsSpan(DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size));
            e.TransportType = (byte)port.Transport.Type; // what the port's transport describes itself as
            e.AddressFamily = port.Address.AddressFamily == AddressFamily.InterNetworkV6 && port.AdvertisedAddress is null
                ? DiscoveryLogEntry.AddressFamilyIpv6 : AddressFamilyOf(port.TransportAddress);
            e.SubsystemType = s.Kind == SubsystemKind.Discovery ? DiscoveryLogEntry.SubtypeCurrentDiscovery : DiscoveryLogEntry.SubtypeNvmSubsystem;
            e.TransportRequirements = port.Transport.Requirements;
            e.PortId = port.PortId;
            e.ControllerId = 0xFFFF; // dynamic controller model
            e.AdminMaxSqSize = 32;
            SpecText.WriteNulPadded(e.TransportServiceId, port.ServiceId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            SpecText.WriteNulPadded(e.SubNqn, s.Nqn);
            SpecText.WriteNulPadded(e.TransportAddress, port.TransportAddress);
        }
        for (int i = 0; i < peers.Count; i++)
        {
            var (peer, s) = peers[i];
            ref var e = ref MemoryMarshal.AsRef<DiscoveryLogEntry>(page.AsSpan(DiscoveryLogHeader.Size + (entries.Count + i) * DiscoveryLogEntry.Size));
            e.TransportType = (byte)transport!.Type;
            e.AddressFamily = AddressFamilyOf(peer.TransportAddress);
            e.SubsystemType = DiscoveryLogEntry.SubtypeNvmSubsystem;
            e.TransportRequirements = transport.Requirements;
            e.PortId = peer.PortId;
            e.ControllerId = 0xFFFF;
            e.AdminMaxSqSize = 32;
            SpecText.WriteNulPadded(e.TransportServiceId, peer.ServiceId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            SpecText.WriteNulPadded(e.SubNqn, s.Nqn);
            SpecText.WriteNulPadded(e.TransportAddress, peer.TransportAddress);
        }
        return page;
    }

    private static byte AddressFamilyOf(string address) =>
        System.Net.IPAddress.TryParse(address, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6
            ? DiscoveryLogEntry.AddressFamilyIpv6 : DiscoveryLogEntry.AddressFamilyIpv4;
}
