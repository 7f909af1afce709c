using System.Net;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Target.Storage;

namespace Target.Configuration;

/// <summary>Checks a configuration before anything starts; every mistake gets its own clear message.</summary>
public static class ConfigValidator
{
    /// <summary>Why <paramref name="name"/> cannot name a gateway (1..64 of letters, digits, '.', '_', '-'), or null.</summary>
    public static string? GatewayNameProblem(string name) =>
        name.Length is >= 1 and <= 64 && name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-')
            ? null : $"'{name}' is not 1..64 letters, digits, '.', '_' or '-'";

    public static List<string> Validate(TargetConfig c)
    {
        var e = new List<string>();
        if (c.Ports.Count == 0) e.Add("no ports: add at least one entry to 'ports' (or use --listen)");
        foreach (var p in c.Ports)
        {
            if (!IPAddress.TryParse(p.Address, out _)) e.Add($"port {p.Id}: '{p.Address}' is not an IP address");
            if (p.Port is < 0 or > 65535) e.Add($"port {p.Id}: TCP port {p.Port} is outside 0..65535");
            if (p.AdvertisedAddress is { Length: 0 or > 255 }) e.Add($"port {p.Id}: advertisedAddress must be 1..255 characters");
        }
        foreach (var dup in c.Ports.GroupBy(p => p.Id).Where(g => g.Count() > 1)) e.Add($"port id {dup.Key} is used more than once");
        for (int i = 0; i < (c.Peers?.Count ?? 0); i++)
        {
            var p = c.Peers![i];
            if (string.IsNullOrEmpty(p.Address) || p.Address.Length > 255) e.Add($"peers[{i}]: address must be 1..255 characters");
            if (p.Port is < 1 or > 65535) e.Add($"peers[{i}]: TCP port {p.Port} is outside 1..65535");
            if (c.Ports.Any(l => l.Id == p.PortId)) e.Add($"peers[{i}]: portId {p.PortId} is a port id of this target's own ports");
            foreach (var nqn in p.Subsystems ?? [])
                if (!c.Subsystems.Any(s => s.Nqn == nqn)) e.Add($"peers[{i}]: subsystem {nqn} is not in 'subsystems'");
        }
        foreach (var dup in (c.Peers ?? []).GroupBy(p => p.PortId).Where(g => g.Count() > 1)) e.Add($"peer portId {dup.Key} is used more than once");
        if (c.Gateway is { } gw)
        {
            if (gw.Name != null && GatewayNameProblem(gw.Name) is string bad) e.Add($"gateway.name: {bad}");
            if (gw.LeaseSeconds is < 2 or > 300) e.Add($"gateway.leaseSeconds {gw.LeaseSeconds} is outside 2..300 (--failover-lease)");
        }
        for (int i = 0; i < (c.Faults?.Count ?? 0); i++)
        {
            var f = c.Faults![i];
            if (f.ToSpec(out var problem) is null) e.Add($"faults[{i}]: {problem}");
            else if (!c.Subsystems.Any(s => s.Nqn == f.Subsystem)) e.Add($"faults[{i}]: subsystem {f.Subsystem} is not in 'subsystems'");
        }

        var l = c.Limits;
        if (l.Mqes is < 1 or > 1023) e.Add($"limits.mqes {l.Mqes} is outside 1..1023");
        if (l.Mdts is < 1 or > 12) e.Add($"limits.mdts {l.Mdts} is outside 1..12 (8 KiB .. 16 MiB per command)");
        if (l.InCapsuleDataSize is int ics && (ics is < 0 or > 1 << 20 || ics % 16 != 0)) e.Add($"limits.inCapsuleDataSize {l.InCapsuleDataSize} must be a multiple of 16 in 0..1048576");
        if (l.MaxH2CData is int h2c && (h2c is < 4096 or > 16 << 20 || h2c % 4 != 0)) e.Add($"limits.maxH2CData {l.MaxH2CData} must be a multiple of 4 in 4096..16777216");
        if (l.IoQueues is < 1 or > 1024) e.Add($"limits.ioQueues {l.IoQueues} is outside 1..1024");
        if (l.DataBufferBudget is string budget && (!Sizes.TryParse(budget, out long b) || b < 1 << 20))
            e.Add($"limits.dataBufferBudget '{budget}' is not a size of at least 1M (e.g. 64M, 1G)");
        e.AddRange(ValidateBounds(l));
        if (c.Polling is { Enabled: true } poll)
        {
            if (poll.Reactors is < 1 or > 256) e.Add($"polling.reactors {poll.Reactors} is outside 1..256 (--reactors)");
            if (poll.IdleMicroseconds is < 0 or > 10_000_000) e.Add($"polling.idleMicroseconds {poll.IdleMicroseconds} is outside 0..10000000 (--poll-idle)");
            foreach (var cpu in poll.Cpus ?? [])
                if (cpu < 0 || cpu >= Environment.ProcessorCount)
                    e.Add($"polling.cpus: CPU {cpu} does not exist (this machine has CPUs 0..{Environment.ProcessorCount - 1}; --reactor-cpus)");
        }

        if (l.MemoryNamespaces is string memory && !Sizes.TryParse(memory, out _) && !Sizes.IsZero(memory))
            e.Add($"limits.memoryNamespaces '{memory}' is not a size (e.g. 8G, 512M; 0 allows no memory namespaces)");
        else if (MemoryNamespaceLimit.Check(MemoryNamespaceLimit.Resolve(l.MemoryNamespaces), 0, MemoryNamespaceLimit.SizeOf(c.Subsystems)) is string tooMuch)
            e.Add(tooMuch);

        if (c.Subsystems.Count == 0) e.Add("no subsystems: add at least one to 'subsystems'");
        var portIds = c.Ports.Select(p => p.Id).ToHashSet();
        foreach (var s in c.Subsystems) e.AddRange(ValidateSubsystem(s, portIds));
        foreach (var dup in c.Subsystems.GroupBy(s => s.Nqn).Where(g => g.Count() > 1)) e.Add($"subsystem {dup.Key} is defined more than once");
        return e;
    }

    /// <summary>What starts but deserves a line in the log: subsystems nobody may connect to because their
    /// configuration predates the explicit allowAnyHost (an empty allowedHosts used to mean "any host").</summary>
    public static List<string> Warnings(TargetConfig c) =>
        [.. c.Subsystems.Where(s => s.AllowAnyHost is null && s.AllowedHosts.Count == 0).Select(s =>
            $"subsystem {s.Nqn} has no allowed hosts and no \"allowAnyHost\": no host can connect to it. Earlier versions let any host " +
            "connect when allowedHosts was empty; list the hosts in allowedHosts (or add them with: nvme-tcp-target hosts add), " +
            "or set \"allowAnyHost\": true to admit every host deliberately"),
        .. c.Subsystems.Where(s => s.Failover == true && !s.Namespaces.Any(n => n.Backend == "rbd")).Select(s =>
            $"subsystem {s.Nqn} has \"failover\" but no RBD namespace: automatic failover manages only ANA groups that hold RBD " +
            "namespaces (their lease lives in Ceph), so its groups stay optimized until you set them (ana set) or add an RBD namespace")];

    /// <summary>The resource bounds of issue 10 (limits.maxConnections ... limits.tcpKeepAlive).</summary>
    private static IEnumerable<string> ValidateBounds(LimitsConfig l)
    {
        if (l.MaxConnections is < 1 or > 1_000_000)
            yield return $"limits.maxConnections {l.MaxConnections} is outside 1..1000000 (NVMe/TCP connections open at once; --max-connections)";
        if (l.MaxControllersPerHost is < 1 or > 0xFFEF)
            yield return $"limits.maxControllersPerHost {l.MaxControllersPerHost} is outside 1..65519 (controllers one host NQN may hold; --max-controllers-per-host)";
        if (l.HostBufferShare is < 1 or > 100)
            yield return $"limits.hostBufferShare {l.HostBufferShare} is outside 1..100 (percent of the data buffer budget one host may hold; --host-buffer-share)";
        foreach (var (name, option, value) in new[] { ("r2tTimeout", "--r2t-timeout", l.R2TTimeout), ("pduTimeout", "--pdu-timeout", l.PduTimeout),
                     ("connectTimeout", "--connect-timeout", l.ConnectTimeout) })
            if (value is double v && (!(v > 0) || v > 3600))
                yield return $"limits.{name} {v.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not a number of seconds in (0, 3600] ({option})";
        if (l.AuthTimeout is double at && (!(at > 0) || at > 3600))
            yield return $"limits.authTimeout {at.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not a number of seconds in (0, 3600]";
        if (l.TcpKeepAlive is string k && TcpKeepAliveSeconds(k) is null)
            yield return $"limits.tcpKeepAlive '{k}' is neither a number of seconds in 1..32767 nor off (--tcp-keepalive)";
    }

    /// <summary>The keep-alive idle seconds of a tcpKeepAlive value: 0 for off, null when invalid.</summary>
    public static int? TcpKeepAliveSeconds(string value) =>
        value is "off" or "false" or "0" ? 0
        : int.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int s) && s is >= 1 and <= 32767 ? s
        : null;

    /// <summary>One subsystem and its namespaces (also used for subsystems created at run time);
    /// <paramref name="portIds"/> are the target's port ids, which the subsystem's "ports" may name.</summary>
    public static List<string> ValidateSubsystem(SubsystemConfig s, IReadOnlyCollection<ushort> portIds)
    {
        var e = new List<string>();
        var name = string.IsNullOrEmpty(s.Nqn) ? "(unnamed)" : s.Nqn;
        if (Subsystem.ValidateNqn(s.Nqn) is string bad) e.Add($"subsystem {name}: {bad}");
        if (s.Nqn == WellKnown.DiscoveryNqn) e.Add($"subsystem {name}: the discovery NQN is reserved");
        if (s.Serial is { Length: 0 or > 20 }) e.Add($"subsystem {name}: serial must be 1..20 characters");
        if (s.Serial != null && s.Serial.Any(ch => ch is < ' ' or > '~')) e.Add($"subsystem {name}: serial must be printable ASCII");
        if (s.Model is { Length: 0 or > 40 }) e.Add($"subsystem {name}: model must be 1..40 characters");
        if (s.FirmwareRevision is { Length: 0 or > 8 }) e.Add($"subsystem {name}: firmwareRevision must be 1..8 characters");
        foreach (var h in s.AllowedHosts)
            if (Subsystem.ValidateNqn(h) is string badHost) e.Add($"subsystem {name}: allowed host: {badHost}");
        foreach (var dup in s.AllowedHosts.GroupBy(h => h).Where(g => g.Count() > 1)) e.Add($"subsystem {name}: allowed host {dup.Key} is listed twice");
        foreach (var (host, auth) in s.AllowedHosts.Auth)
            foreach (var problem in auth.Validate()) e.Add($"subsystem {name}: allowed host {host}: {problem}");
        foreach (var p in s.Ports ?? [])
            if (!portIds.Contains(p)) e.Add($"subsystem {name}: port {p} does not exist (the target's ports: {string.Join(", ", portIds.Order())})");
        foreach (var dup in (s.Ports ?? []).GroupBy(p => p).Where(g => g.Count() > 1)) e.Add($"subsystem {name}: port {dup.Key} is listed twice");
        foreach (var ns in s.Namespaces) e.AddRange(ValidateNamespace(ns, $"subsystem {name} namespace {ns.Nsid}", 1024));
        foreach (var dup in s.Namespaces.GroupBy(n => n.Nsid).Where(g => g.Count() > 1))
            e.Add($"subsystem {name}: NSID {dup.Key} is used by {dup.Count()} namespaces");
        e.AddRange(ValidateHostList(s.NamespaceAttachHosts, $"subsystem {name}: namespaceAttachHosts"));
        ushort min = s.CntlidMin ?? 1, max = s.CntlidMax ?? Nvme.Core.Model.Subsystem.MaxCntlid;
        if (min < 1 || max > Nvme.Core.Model.Subsystem.MaxCntlid || min > max)
            e.Add($"subsystem {name}: cntlidMin {min} and cntlidMax {max} must lie in 1..{Nvme.Core.Model.Subsystem.MaxCntlid} with cntlidMin <= cntlidMax");
        return e;
    }

    /// <summary>One namespace: NSID, block size, size, backend and path.</summary>
    public static List<string> ValidateNamespace(NamespaceConfig ns, string where, uint maxNsid)
    {
        var e = new List<string>();
        if (ns.Nsid == 0 || ns.Nsid > maxNsid) e.Add($"{where}: NSID must be 1..{maxNsid}");
        if (ns.BlockSize is not (512 or 4096)) e.Add($"{where}: blockSize {ns.BlockSize} must be 512 or 4096");
        long size = 0;
        if (ns.Size != null && Sizes.IsZero(ns.Size)) e.Add($"{where}: size must be greater than zero (e.g. 1G, 512M, 1073741824)");
        else if (ns.Size != null && !Sizes.TryParse(ns.Size, out size)) e.Add($"{where}: size '{ns.Size}' is not a size (e.g. 1G, 512M, 1073741824)");
        else if (ns.Size != null && size < ns.BlockSize) e.Add($"{where}: size {size} is smaller than one block");
        switch (ns.Backend)
        {
            case "memory":
                if (ns.Size is null) e.Add($"{where}: a memory namespace needs a size");
                if (ns.Path != null) e.Add($"{where}: a memory namespace has no path");
                break;
            // Whether the path exists, where it resolves and whether it may be used is the storage policy's
            // (Storage.StoragePolicy), which resolves relative paths against the storage directory.
            case "file":
                if (string.IsNullOrEmpty(ns.Path)) e.Add($"{where}: a file namespace needs a path");
                break;
            case "block":
                if (string.IsNullOrEmpty(ns.Path)) e.Add($"{where}: a block namespace needs a device path");
                break;
            case "rbd":
                if (string.IsNullOrEmpty(ns.Pool) || string.IsNullOrEmpty(ns.Image)) e.Add($"{where}: an rbd namespace needs a pool and an image");
                else if (ns.Pool.Contains('/') || ns.Image.Contains('/') || ns.Image.Contains('@')) e.Add($"{where}: rbd pool '{ns.Pool}' and image '{ns.Image}' are plain names (no '/' or '@')");
                if (ns.Path != null) e.Add($"{where}: an rbd namespace has no path (it has a pool and an image)");
                break;
            default:
                e.Add($"{where}: backend '{ns.Backend}' is not memory, file, block or rbd");
                break;
        }
        if (ns.Backend != "rbd" && (ns.Pool ?? ns.Image ?? ns.CephConf ?? ns.ClientId ?? ns.Keyring) != null)
            e.Add($"{where}: pool, image, cephConf, clientId and keyring are for rbd namespaces only");
        if (ns.Preallocate == true && ns.Backend != "file") e.Add($"{where}: preallocate is for file namespaces only");
        if (ns.Visibility is not (null or NamespaceConfig.VisibilityAuto or NamespaceConfig.VisibilityRestricted))
            e.Add($"{where}: visibility '{ns.Visibility}' is not auto or restricted");
        e.AddRange(ValidateHostList(ns.Hosts, $"{where}: hosts"));
        if (ns.AnaGroup is uint g && Subsystem.ValidateAnaGroup(g) is string badGroup) e.Add($"{where}: anaGroup: {badGroup}");
        return e;
    }

    /// <summary>A list of host NQNs (a namespace's hosts, the attach privilege): well-formed, none twice. Whether the
    /// subsystem allows them is checked when they are added at run time; an entry whose host was removed from the
    /// allowed hosts later stays (see NamespaceVisibility), so it is not an error here.</summary>
    private static IEnumerable<string> ValidateHostList(List<string>? hosts, string where)
    {
        foreach (var h in hosts ?? [])
            if (Subsystem.ValidateNqn(h) is string bad) yield return $"{where}: {bad}";
        foreach (var dup in (hosts ?? []).GroupBy(h => h).Where(g => g.Count() > 1)) yield return $"{where}: {dup.Key} is listed twice";
    }
}
