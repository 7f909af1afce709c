using System.Text.Json;
using System.Text.Json.Serialization;

namespace Target.Configuration;

/// <summary>The configuration file (JSON). Every field is optional; see README "Configuration reference".</summary>
public sealed class TargetConfig
{
    public List<PortConfig> Ports { get; set; } = [];
    public LimitsConfig Limits { get; set; } = new();
    public List<SubsystemConfig> Subsystems { get; set; } = [];
    public string? LogLevel { get; set; }
    /// <summary>The management HTTP API; absent means the default (a Unix socket only its owner can use).</summary>
    public ApiConfig? Api { get; set; }
    /// <summary>The read-only probe listener (/healthz, /readyz, /metrics); absent means 127.0.0.1:8420.</summary>
    public ProbesConfig? Probes { get; set; }
    /// <summary>The polling mode (dedicated reactor threads busy-polling the sockets); absent means off.</summary>
    public PollingConfig? Polling { get; set; }
    /// <summary>Where file namespaces may live and which block devices may back namespaces; absent means the
    /// default directory and no block devices (see <see cref="Storage.StoragePolicy"/>).</summary>
    public StorageConfig? Storage { get; set; }
    /// <summary>Injected I/O faults set at start (a test lab's tool; see README "Fault injection"). Absent: none.</summary>
    public List<FaultConfig>? Faults { get; set; }
    /// <summary>Ports of other gateways serving the same subsystems, listed in this target's discovery log. Absent: none.</summary>
    public List<PeerConfig>? Peers { get; set; }
    /// <summary>This gateway's name and the failover lease (README "Automatic failover"). Absent: the host name, 10 s.</summary>
    public GatewayConfig? Gateway { get; set; }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}

/// <summary>Who this target is among the gateways serving the same subsystems, and how long an ANA group's owner
/// keeps it without renewing (the failover lease).</summary>
public sealed class GatewayConfig
{
    public const int DefaultLeaseSeconds = 10;
    /// <summary>Unique among the gateways (the cookie of its locks, shown as a group's owner); absent: the host name.</summary>
    public string? Name { get; set; }
    /// <summary>Seconds an owner holds an ANA group's lease (2..300, default 10): a dead owner's group is taken over
    /// that long after its last renewal.</summary>
    public int? LeaseSeconds { get; set; }
}

/// <summary>A port of another gateway: its discovery log entries (TRADDR, TRSVCID, PORTID) for the subsystems it serves.</summary>
public sealed class PeerConfig
{
    /// <summary>PORTID in the discovery log: unique among this target's ports and its peers'.</summary>
    public ushort PortId { get; set; }
    public string Address { get; set; } = "";
    public int Port { get; set; } = 4420;
    /// <summary>The subsystem NQNs it serves; absent: every NVM subsystem of this target.</summary>
    public List<string>? Subsystems { get; set; }
}

public sealed class PortConfig
{
    public ushort Id { get; set; } = 1;
    public string Address { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 4420;
    /// <summary>TRADDR shown in the discovery log (e.g. the address hosts really use behind NAT).</summary>
    public string? AdvertisedAddress { get; set; }
}

/// <summary>
/// The management HTTP API listener: a Unix domain socket (<see cref="Socket"/>, the default) or TCP
/// (<see cref="Address"/> and <see cref="Port"/>, which needs a <see cref="Token"/>). As read from the
/// configuration file some fields may be null; <see cref="CommandLine.Api"/> holds the resolved listener.
/// </summary>
public sealed class ApiConfig
{
    /// <summary>Port of the probe listener and, before the API moved to a Unix socket, of the API.</summary>
    public const int DefaultPort = 8420;

    /// <summary>False turns the management API off (like --api off).</summary>
    public bool? Enabled { get; set; }
    /// <summary>Path of the Unix domain socket (mode 0600, or 0660 with <see cref="SocketGroup"/>).</summary>
    public string? Socket { get; set; }
    /// <summary>Group (name or number) that may use the socket too: the socket is then 0660 and its directory 0750.</summary>
    public string? SocketGroup { get; set; }
    /// <summary>TCP listen address; set together with <see cref="Port"/> instead of <see cref="Socket"/>.</summary>
    public string? Address { get; set; }
    public int? Port { get; set; }
    /// <summary>When set, every request needs "Authorization: Bearer TOKEN". Required on TCP.</summary>
    public string? Token { get; set; }
    /// <summary>File holding the token (its first line); preferred to <see cref="Token"/>, which ends up in files and `ps`.</summary>
    public string? TokenFile { get; set; }
    /// <summary>Host header names accepted besides localhost, IP literals and the listener's own address.</summary>
    public List<string>? AllowedHostNames { get; set; }

    /// <summary>True when this describes a TCP listener.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public bool IsTcp => Address != null;
}

/// <summary>The polling mode: reactor threads that own connections and busy-poll their sockets (lower latency, a busy
/// core while traffic flows).</summary>
public sealed class PollingConfig
{
    public bool Enabled { get; set; }
    /// <summary>Reactor threads (1).</summary>
    public int? Reactors { get; set; }
    /// <summary>CPUs the reactors run on, one per reactor in order (none: not pinned).</summary>
    public List<int>? Cpus { get; set; }
    /// <summary>Microseconds without traffic after which a reactor stops spinning and blocks (10000).</summary>
    public int? IdleMicroseconds { get; set; }
}

/// <summary>The read-only HTTP listener for probes and metrics: GET /healthz, /readyz and /metrics, nothing else.</summary>
public sealed class ProbesConfig
{
    /// <summary>False turns it off (like --probes off).</summary>
    public bool? Enabled { get; set; }
    public string Address { get; set; } = "127.0.0.1";
    public int Port { get; set; } = ApiConfig.DefaultPort;
}

/// <summary>The storage path policy's settings (README "Storage"). Relative directories are relative to the
/// configuration file's directory.</summary>
public sealed class StorageConfig
{
    /// <summary>File namespaces must resolve into one of these; the first is where relative paths go.</summary>
    public List<string>? Directories { get; set; }
    /// <summary>The only block devices a block namespace may use (compared by real path).</summary>
    public List<string>? BlockDevices { get; set; }
}

public sealed class LimitsConfig
{
    public int? Mqes { get; set; }
    public int? Mdts { get; set; }
    public int? InCapsuleDataSize { get; set; }
    public int? MaxH2CData { get; set; }
    public int? IoQueues { get; set; }
    public bool? C2HSuccess { get; set; }
    /// <summary>Size ("64M") all data buffers over 16 KiB may take together; commands wait when it is spent.</summary>
    public string? DataBufferBudget { get; set; }
    /// <summary>Total size ("8G") memory namespaces may have together; default 3/4 of the available memory; "0"
    /// allows none.</summary>
    [JsonConverter(typeof(SizeJsonConverter))]
    public string? MemoryNamespaces { get; set; }

    // ---- resource bounds (issue 10): what an unauthenticated or misbehaving peer can make the target spend ----
    /// <summary>NVMe/TCP connections open at once (1024); more are closed at accept.</summary>
    public int? MaxConnections { get; set; }
    /// <summary>Controllers, discovery included, one host NQN may hold (64); beyond, Connect Controller Busy.</summary>
    public int? MaxControllersPerHost { get; set; }
    /// <summary>Percent 1..100 of the data buffer budget one host NQN may hold (50).</summary>
    public int? HostBufferShare { get; set; }
    /// <summary>Seconds the H2CData for an R2T may take (10); then the command fails and the connection closes.</summary>
    public double? R2TTimeout { get; set; }
    /// <summary>Seconds a PDU may take from its first byte to its last (30), cumulative.</summary>
    public double? PduTimeout { get; set; }
    /// <summary>Seconds from accept to a successful Connect, ICReq included (10).</summary>
    public double? ConnectTimeout { get; set; }
    /// <summary>TCP keep-alive idle seconds on NVMe/TCP sockets (60), or "off".</summary>
    [JsonConverter(typeof(NumberOrTextJsonConverter))]
    public string? TcpKeepAlive { get; set; }
    /// <summary>Seconds a DH-HMAC-CHAP exchange may stall, and a queue that must authenticate may wait, before the
    /// target drops it (10).</summary>
    public double? AuthTimeout { get; set; }
}

/// <summary>Reads a value given as a JSON number or a string (e.g. 60 or "off"); writes a string.</summary>
public sealed class NumberOrTextJsonConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number => System.Text.Encoding.UTF8.GetString(reader.ValueSpan),
        JsonTokenType.Null => null,
        _ => throw new JsonException("expected a number of seconds or \"off\""),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}

public sealed class SubsystemConfig
{
    public string Nqn { get; set; } = "";
    public string? Serial { get; set; }
    public string? Model { get; set; }
    public string? FirmwareRevision { get; set; }
    /// <summary>Any host NQN may connect. Default false: only <see cref="AllowedHosts"/> (an empty list admits
    /// nobody). Null (absent) is kept apart from false only to warn about configurations written when an empty
    /// list meant "any host".</summary>
    public bool? AllowAnyHost { get; set; }
    /// <summary>Host NQNs; an entry may be an object with DH-HMAC-CHAP settings (see <see cref="HostList"/>).</summary>
    public HostList AllowedHosts { get; set; } = [];
    /// <summary>Port ids ("ports" entries) the subsystem is reachable on; null (absent) = every port.</summary>
    public List<ushort>? Ports { get; set; }
    public List<NamespaceConfig> Namespaces { get; set; } = [];
    /// <summary>Host NQNs that may attach and detach namespaces to and from their own controllers in-band (Namespace
    /// Attachment, e.g. nvme attach-ns / detach-ns); absent or empty: none may (the default).</summary>
    public List<string>? NamespaceAttachHosts { get; set; }
    /// <summary>The CNTLIDs this target gives out for the subsystem (default 1..65519): gateways serving one subsystem
    /// need disjoint ranges (a host refuses a CNTLID it already has in the subsystem).</summary>
    public ushort? CntlidMin { get; set; }
    public ushort? CntlidMax { get; set; }
    /// <summary>Automatic failover between gateways: each ANA group holding RBD namespaces is owned through a lease in
    /// Ceph (a RADOS lock); the owner's paths are optimized, the others' non-optimized; a survivor takes a dead owner's
    /// group over and blocklists it. Absent or false: the ANA states are the operator's.</summary>
    public bool? Failover { get; set; }
}

public sealed class NamespaceConfig
{
    public uint Nsid { get; set; }
    /// <summary>memory, file, block or rbd.</summary>
    public string Backend { get; set; } = "memory";
    public string? Path { get; set; }
    /// <summary>Size with an optional K/M/G/T suffix (powers of 1024). Required for memory; for a file it is
    /// the size to create it with when missing. A JSON number of bytes is accepted too.</summary>
    [JsonConverter(typeof(SizeJsonConverter))]
    public string? Size { get; set; }
    public int BlockSize { get; set; } = 512;
    public Guid? Uuid { get; set; }
    /// <summary>File namespaces: allocate the whole file when it is created (and the new range when it grows), so
    /// a full disk is found then rather than by a host's write.</summary>
    public bool? Preallocate { get; set; }
    /// <summary>Namespace masking: "auto" (absent; every host allowed on the subsystem sees it) or "restricted" (only
    /// <see cref="Hosts"/>).</summary>
    public string? Visibility { get; set; }
    /// <summary>The host NQNs that see a restricted namespace (kept, without effect, while it is auto).</summary>
    public List<string>? Hosts { get; set; }
    /// <summary>rbd: the Ceph pool and image (the image is created with <see cref="Size"/> when missing; an existing
    /// image is used at its own size).</summary>
    public string? Pool { get; set; }
    public string? Image { get; set; }
    /// <summary>rbd: the cluster's configuration file (default: $CEPH_CONF or /etc/ceph/ceph.conf), the client id
    /// (default admin: client.admin) and its keyring (default: the configuration's).</summary>
    public string? CephConf { get; set; }
    public string? ClientId { get; set; }
    public string? Keyring { get; set; }
    /// <summary>ANAGRPID: the ANA group of the namespace, 1..128 (absent: 1). The groups' states are live state, set through
    /// the API, never saved.</summary>
    public uint? AnaGroup { get; set; }

    public const string VisibilityAuto = "auto", VisibilityRestricted = "restricted";
}

/// <summary>Reads a size given as a string ("1G") or as a number of bytes; writes a string.</summary>
public sealed class SizeJsonConverter : JsonConverter<string>
{
    public override string? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
    {
        JsonTokenType.String => reader.GetString(),
        JsonTokenType.Number when reader.TryGetInt64(out var n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
        JsonTokenType.Null => null,
        _ => throw new JsonException("a size is a string such as \"1G\" or a number of bytes"),
    };

    public override void Write(Utf8JsonWriter writer, string value, JsonSerializerOptions options) => writer.WriteStringValue(value);
}
