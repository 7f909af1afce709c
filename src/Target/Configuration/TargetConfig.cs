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
    /// <summary>Where file namespaces may live and which block devices may back namespaces; absent means the
    /// default directory and no block devices (see <see cref="Storage.StoragePolicy"/>).</summary>
    public StorageConfig? Storage { get; set; }

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
    /// <summary>File namespaces: allocate the whole file when it is created (and the new range when it grows), so
    /// a full disk is found then rather than by a host's write.</summary>
    public bool? Preallocate { get; set; }
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
