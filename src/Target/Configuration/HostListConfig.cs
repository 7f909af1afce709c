using System.Text.Json;
using System.Text.Json.Serialization;
using Nvme.Core.Auth;

namespace Target.Configuration;

/// <summary>
/// A subsystem's <c>allowedHosts</c>: host NQNs, each either a plain string (as before) or an object that also
/// carries the host's DH-HMAC-CHAP settings:
/// <code>"allowedHosts": ["nqn...:host-a", {"nqn": "nqn...:host-b", "dhchapSecret": "DHHC-1:01:...:", "dhchapCtrlSecret": "DHHC-1:02:...:", "dhchapHash": "sha384", "dhchapDhgroup": "ffdhe3072"}]</code>
/// The list itself stays a list of NQNs (everything that only needs names keeps working); <see cref="Auth"/> holds
/// the settings of the hosts written as objects, and a host is written back as an object only when it has some.
/// </summary>
[JsonConverter(typeof(HostListJsonConverter))]
public sealed class HostList : List<string>
{
    public HostList() { }
    public HostList(IEnumerable<string> hosts) : base(hosts) { }

    /// <summary>DH-HMAC-CHAP settings by host NQN (only hosts in the list).</summary>
    public Dictionary<string, HostAuthConfig> Auth { get; } = new(StringComparer.Ordinal);

    /// <summary>Removes a host and its settings.</summary>
    public new bool Remove(string hostNqn)
    {
        Auth.Remove(hostNqn);
        return base.Remove(hostNqn);
    }
}

/// <summary>One host's DH-HMAC-CHAP settings, as in the configuration file and the API (names as nvme-cli's options).</summary>
public sealed class HostAuthConfig
{
    /// <summary>The host secret, DHHC-1:hh:BASE64: (nvme gen-dhchap-key); the host must prove it knows it.</summary>
    public string? DhchapSecret { get; set; }
    /// <summary>The controller secret, for bidirectional authentication (the host checks the target).</summary>
    public string? DhchapCtrlSecret { get; set; }
    /// <summary>sha256, sha384 or sha512 (default: sha256 if the host offers it).</summary>
    public string? DhchapHash { get; set; }
    /// <summary>null, ffdhe2048 ... ffdhe8192 (default: the null group if the host offers it; a named group is required).</summary>
    public string? DhchapDhgroup { get; set; }

    public bool IsEmpty => DhchapSecret is null && DhchapCtrlSecret is null && DhchapHash is null && DhchapDhgroup is null;

    /// <summary>Checks every field; returns the problems (never quoting a secret).</summary>
    public List<string> Validate()
    {
        var e = new List<string>();
        if (DhchapSecret is null && !IsEmpty) e.Add("dhchapCtrlSecret, dhchapHash and dhchapDhgroup need a dhchapSecret");
        if (DhchapSecret != null && !Nvme.Core.Auth.DhchapSecret.TryParse(DhchapSecret, out _, out var bad)) e.Add($"dhchapSecret: {bad}");
        if (DhchapCtrlSecret != null && !Nvme.Core.Auth.DhchapSecret.TryParse(DhchapCtrlSecret, out _, out var badCtrl)) e.Add($"dhchapCtrlSecret: {badCtrl}");
        if (DhchapHash != null && !DhchapHashes.TryParse(DhchapHash, out _)) e.Add($"dhchapHash '{DhchapHash}' is not sha256, sha384 or sha512");
        if (DhchapDhgroup != null && !FfdheGroup.TryParse(DhchapDhgroup, out _))
            e.Add($"dhchapDhgroup '{DhchapDhgroup}' is not null, ffdhe2048, ffdhe3072, ffdhe4096, ffdhe6144 or ffdhe8192");
        return e;
    }

    /// <summary>The core's form; null without a host secret. Call after <see cref="Validate"/>.</summary>
    public HostAuthentication? ToCore()
    {
        if (DhchapSecret is null) return null;
        return new HostAuthentication(
            Nvme.Core.Auth.DhchapSecret.Parse(DhchapSecret),
            DhchapCtrlSecret is null ? null : Nvme.Core.Auth.DhchapSecret.Parse(DhchapCtrlSecret),
            DhchapHash is null ? null : DhchapHashes.TryParse(DhchapHash, out var h) ? h : null,
            DhchapDhgroup is null ? null : FfdheGroup.TryParse(DhchapDhgroup, out var g) ? g : null);
    }
}

/// <summary>Reads <c>allowedHosts</c> entries as strings or objects; writes strings unless a host has settings.</summary>
public sealed class HostListJsonConverter : JsonConverter<HostList>
{
    private static readonly string[] Fields = ["nqn", "dhchapSecret", "dhchapCtrlSecret", "dhchapHash", "dhchapDhgroup"];

    public override HostList Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartArray) throw new JsonException("allowedHosts must be a list of host NQNs (strings or objects with \"nqn\")");
        var list = new HostList();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            if (reader.TokenType == JsonTokenType.String) { list.Add(reader.GetString()!); continue; }
            if (reader.TokenType != JsonTokenType.StartObject) throw new JsonException("an allowedHosts entry is a host NQN or an object with \"nqn\"");
            string? nqn = null;
            var auth = new HostAuthConfig();
            while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
            {
                string name = reader.GetString()!;
                reader.Read();
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.Null))
                    throw new JsonException($"allowedHosts entry field '{name}' must be a string");
                string? value = reader.GetString();
                switch (name.ToLowerInvariant())
                {
                    case "nqn": nqn = value; break;
                    case "dhchapsecret": auth.DhchapSecret = value; break;
                    case "dhchapctrlsecret": auth.DhchapCtrlSecret = value; break;
                    case "dhchaphash": auth.DhchapHash = value; break;
                    case "dhchapdhgroup": auth.DhchapDhgroup = value; break;
                    default: throw new JsonException($"unknown field '{name}' in an allowedHosts entry; the fields there are: {string.Join(", ", Fields)}");
                }
            }
            if (string.IsNullOrEmpty(nqn)) throw new JsonException("an allowedHosts entry written as an object needs \"nqn\"");
            list.Add(nqn);
            if (!auth.IsEmpty) list.Auth[nqn] = auth;
        }
        return list;
    }

    public override void Write(Utf8JsonWriter writer, HostList value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (var nqn in value)
        {
            if (!value.Auth.TryGetValue(nqn, out var a) || a.IsEmpty) { writer.WriteStringValue(nqn); continue; }
            writer.WriteStartObject();
            writer.WriteString("nqn", nqn);
            if (a.DhchapSecret != null) writer.WriteString("dhchapSecret", a.DhchapSecret);
            if (a.DhchapCtrlSecret != null) writer.WriteString("dhchapCtrlSecret", a.DhchapCtrlSecret);
            if (a.DhchapHash != null) writer.WriteString("dhchapHash", a.DhchapHash);
            if (a.DhchapDhgroup != null) writer.WriteString("dhchapDhgroup", a.DhchapDhgroup);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }
}
