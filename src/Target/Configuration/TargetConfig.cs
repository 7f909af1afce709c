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
    /// <summary>The management HTTP API; absent means the default (127.0.0.1:8420, no token).</summary>
    public ApiConfig? Api { get; set; }

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

public sealed class PortConfig
{
    public ushort Id { get; set; } = 1;
    public string Address { get; set; } = "127.0.0.1";
    public int Port { get; set; } = 4420;
    /// <summary>TRADDR shown in the discovery log (e.g. the address hosts really use behind NAT).</summary>
    public string? AdvertisedAddress { get; set; }
}

public sealed class ApiConfig
{
    public const int DefaultPort = 8420;

    /// <summary>False turns the management API off (like --api off).</summary>
    public bool? Enabled { get; set; }
    public string Address { get; set; } = "127.0.0.1";
    public int Port { get; set; } = DefaultPort;
    /// <summary>When set, every request needs "Authorization: Bearer TOKEN".</summary>
    public string? Token { get; set; }
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
    /// <summary>True when <see cref="AllowedHosts"/> is empty and this is not set.</summary>
    public bool? AllowAnyHost { get; set; }
    public List<string> AllowedHosts { get; set; } = [];
    public List<NamespaceConfig> Namespaces { get; set; } = [];
}

public sealed class NamespaceConfig
{
    public uint Nsid { get; set; }
    /// <summary>memory, file or block.</summary>
    public string Backend { get; set; } = "memory";
    public string? Path { get; set; }
    /// <summary>Size with an optional K/M/G/T suffix (powers of 1024). Required for memory; for a file it is
    /// the size to create it with when missing. A JSON number of bytes is accepted too.</summary>
    [JsonConverter(typeof(SizeJsonConverter))]
    public string? Size { get; set; }
    public int BlockSize { get; set; } = 512;
    public Guid? Uuid { get; set; }
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
