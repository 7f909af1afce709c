using System.Collections;
using System.Globalization;
using System.Net;

namespace Target.Configuration;

/// <summary>
/// Resolves the management API listener and the read-only probe listener from the configuration file, the
/// environment and the command line. The API defaults to a Unix socket only its owner can use; a TCP API must
/// have a token (the target refuses to start otherwise), because anyone who reaches a TCP port could export
/// any file the target may open.
/// </summary>
public static class ListenerOptions
{
    public const string UnixPrefix = "unix:";

    /// <summary>/run/nvme-tcp-target/api.sock for root; for other users $XDG_RUNTIME_DIR/nvme-tcp-target/api.sock,
    /// or /tmp/nvme-tcp-target-UID/api.sock when there is no runtime directory.</summary>
    public static string DefaultSocketPath(IDictionary? environment = null)
    {
        if (Unix.IsRoot) return "/run/nvme-tcp-target/api.sock";
        environment ??= Environment.GetEnvironmentVariables();
        if (environment["XDG_RUNTIME_DIR"] is string { Length: > 0 } run && Path.IsPathRooted(run) && Directory.Exists(run))
            return Path.Combine(run, "nvme-tcp-target", "api.sock");
        return $"/tmp/nvme-tcp-target-{Unix.EffectiveUserId}/api.sock";
    }

    /// <summary>
    /// The listeners. <paramref name="last"/> gives an option's value (command line over environment), <paramref name="all"/>
    /// a repeatable option's values. Returns (null, ...) when the API is off and (..., null) when the probes are.
    /// </summary>
    public static (ApiConfig? Api, ProbesConfig? Probes) Resolve(TargetConfig file, Func<string, string?> last, Func<string, IEnumerable<string>> all,
        IDictionary environment, List<string> errors)
    {
        return (ResolveApi(file.Api, last, all, environment, errors), ResolveProbes(file.Probes, last("--probes"), errors));
    }

    private static ApiConfig? ResolveApi(ApiConfig? f, Func<string, string?> last, Func<string, IEnumerable<string>> all, IDictionary environment, List<string> errors)
    {
        if (f is { Socket: not null, Address: not null }) errors.Add("api: give either \"socket\" (a Unix socket) or \"address\" and \"port\" (TCP), not both");
        if (f is { Address: null, Port: not null }) errors.Add("api: \"port\" needs an \"address\" (TCP); the default API is a Unix socket");
        var api = new ApiConfig
        {
            Socket = f?.Socket,
            SocketGroup = f?.SocketGroup,
            Address = f?.Address,
            Port = f?.Address != null ? f.Port ?? ApiConfig.DefaultPort : null,
            Token = f?.Token,
            TokenFile = f?.TokenFile,
            AllowedHostNames = [.. f?.AllowedHostNames ?? []],
        };
        bool on = f?.Enabled ?? true;
        if (last("--api") is string arg)
        {
            on = true;
            if (arg is "off" or "none" or "false" or "0") on = false;
            else if (arg.StartsWith(UnixPrefix, StringComparison.Ordinal) || arg.StartsWith('/'))
            {
                api.Socket = arg.StartsWith(UnixPrefix, StringComparison.Ordinal) ? arg[UnixPrefix.Length..] : arg;
                api.Address = null;
                api.Port = null;
            }
            else if (TryParseEndpoint(arg, out var address, out int port))
            {
                api.Address = address;
                api.Port = port;
                api.Socket = null;
            }
            else errors.Add($"--api '{arg}' is not unix:PATH, ADDR:PORT or off");
        }
        if (last("--api-socket-group") is string group) api.SocketGroup = group;
        var names = all("--api-allowed-host").ToList();
        if (names.Count > 0) api.AllowedHostNames = names;

        // A token given on the command line or in the environment replaces the file's (either form).
        string? token = last("--api-token"), tokenFile = last("--api-token-file");
        if (token != null && tokenFile != null)
            errors.Add("--api-token and --api-token-file (or NVMET_API_TOKEN and NVMET_API_TOKEN_FILE) are both given: use one (the file is better: a token on the command line shows in `ps`)");
        else if (token != null || tokenFile != null) { api.Token = token; api.TokenFile = tokenFile; }
        else if (api.Token != null && api.TokenFile != null) errors.Add("api: give either \"token\" or \"tokenFile\", not both");
        if (!on) return null;

        if (api.TokenFile != null && ReadTokenFile(api.TokenFile, errors) is string read) api.Token = read;
        if (api.Token != null) ValidateToken(api.Token, errors);
        if (api.IsTcp)
        {
            if (!IPAddress.TryParse(api.Address, out _)) errors.Add($"api: '{api.Address}' is not an IP address");
            if (api.Port is < 0 or > 65535) errors.Add($"api: TCP port {api.Port} is outside 0..65535");
            if (api.Token is null && api.TokenFile is null)
                errors.Add($"the management API on TCP {api.Address}:{api.Port} needs a token: anyone who reaches that port could change the " +
                    "target and export any file it can open. Give one with --api-token-file FILE (or NVMET_API_TOKEN_FILE, api.tokenFile), " +
                    "or keep the API on its default Unix socket (--api unix:PATH)");
        }
        else
        {
            api.Socket ??= DefaultSocketPath(environment);
            if (!Path.IsPathRooted(api.Socket)) errors.Add($"api: the socket path '{api.Socket}' must be absolute");
            else if (System.Text.Encoding.UTF8.GetByteCount(api.Socket) > 107) errors.Add($"api: the socket path '{api.Socket}' is longer than a Unix socket address allows (107 bytes)");
            if (api.SocketGroup != null && !Unix.TryGetGroupId(api.SocketGroup, out _)) errors.Add($"api: socket group '{api.SocketGroup}' does not exist");
        }
        foreach (var n in api.AllowedHostNames ?? [])
            if (n.Length == 0 || n.Any(c => c is ' ' or '/' or ':' || char.IsControl(c))) errors.Add($"api: allowed host name '{n}' is not a host name");
        return api;
    }

    private static ProbesConfig? ResolveProbes(ProbesConfig? f, string? arg, List<string> errors)
    {
        var probes = new ProbesConfig { Address = f?.Address ?? "127.0.0.1", Port = f?.Port ?? ApiConfig.DefaultPort };
        bool on = f?.Enabled ?? true;
        if (arg != null)
        {
            on = true;
            if (arg is "off" or "none" or "false" or "0") on = false;
            else if (TryParseEndpoint(arg, out var address, out int port)) { probes.Address = address; probes.Port = port; }
            else errors.Add($"--probes '{arg}' is not ADDR:PORT or off");
        }
        if (!on) return null;
        if (!IPAddress.TryParse(probes.Address, out _)) errors.Add($"probes: '{probes.Address}' is not an IP address");
        if (probes.Port is < 0 or > 65535) errors.Add($"probes: TCP port {probes.Port} is outside 0..65535");
        return probes;
    }

    private static bool TryParseEndpoint(string text, out string address, out int port)
    {
        address = "";
        port = 0;
        int colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port)) return false;
        address = text[..colon].Trim('[', ']');
        return true;
    }

    /// <summary>The first line of the file, trimmed; errors for a missing, empty or group/world-readable file.</summary>
    public static string? ReadTokenFile(string path, List<string> errors)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add($"api: cannot read the token file '{path}': {e.Message}");
            return null;
        }
        var token = text.Split('\n')[0].Trim();
        if (token.Length == 0) { errors.Add($"api: the token file '{path}' is empty"); return null; }
        return token;
    }

    private static void ValidateToken(string token, List<string> errors)
    {
        if (token.Length == 0) errors.Add("api: the token must not be empty");
        else if (token.Any(c => c is <= ' ' or > '~')) errors.Add("api: the token must be printable ASCII without spaces (it is sent in an HTTP header)");
    }
}
