using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Microsoft.Extensions.Logging;
using Target;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>An in-process target with its NVMe/TCP port on 127.0.0.1 (port 0), its management API on a Unix
/// socket in a temporary directory (or on TCP with a token when the test says so), its read-only probe listener
/// on 127.0.0.1 (port 0), and HttpClients pointed at both. Dispose it in every exit path (await using).</summary>
internal sealed class ApiTarget : IAsyncDisposable
{
    public const string Nqn = TestTarget.Nqn;

    private readonly ILoggerFactory _loggers;
    private readonly DirectoryInfo? _socketDir;
    private int _disposed;

    private ApiTarget(TargetHost host, ILoggerFactory loggers, string? token, DirectoryInfo? socketDir)
    {
        Host = host;
        _loggers = loggers;
        _socketDir = socketDir;
        if (host.ApiSocketPath is string socket)
        {
            ApiUrl = "unix:" + socket;
            Http = UnixHttp(socket);
        }
        else
        {
            ApiUrl = $"http://127.0.0.1:{host.ApiEndpoint!.Port}";
            Http = new HttpClient { BaseAddress = new Uri(ApiUrl + "/api/v1/"), Timeout = TimeSpan.FromSeconds(60) };
        }
        if (token != null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        if (host.ProbesEndpoint is { } probes)
            Probes = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{probes.Port}/"), Timeout = TimeSpan.FromSeconds(60) };
    }

    public TargetHost Host { get; }
    /// <summary>The management API (base address .../api/v1/).</summary>
    public HttpClient Http { get; }
    /// <summary>The read-only probe listener (base address http://127.0.0.1:PORT/); null when the test turned it off.</summary>
    public HttpClient? Probes { get; }
    /// <summary>What the CLI's --api takes: unix:PATH, or http://127.0.0.1:PORT for a TCP API.</summary>
    public string ApiUrl { get; }

    /// <summary>An HttpClient whose requests go to http://localhost/api/v1/ over the Unix socket <paramref name="socket"/>.</summary>
    public static HttpClient UnixHttp(string socket, string basePath = "api/v1/") =>
        new(new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancel) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                try
                {
                    await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), cancel);
                    return new NetworkStream(s, ownsSocket: true);
                }
                catch
                {
                    s.Dispose();
                    throw;
                }
            },
        })
        { BaseAddress = new Uri("http://localhost/" + basePath), Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>Starts from <paramref name="config"/> (default: <see cref="TestTarget.DefaultConfig"/>). The API is on a
    /// Unix socket in a fresh temporary directory (with <paramref name="token"/> if given) unless <paramref name="api"/>
    /// says otherwise; the probes are on 127.0.0.1 port 0 unless <paramref name="probes"/> says otherwise.</summary>
    public static async Task<ApiTarget> StartAsync(ITestOutputHelper? output, TargetConfig? config = null, string? configPath = null,
        ApiConfig? api = null, string? token = null, Target.Telemetry.TelemetryOptions? telemetry = null, ProbesConfig? probes = null,
        bool probesOff = false)
    {
        config ??= TestTarget.DefaultConfig();
        var errors = ConfigValidator.Validate(config);
        if (errors.Count > 0) throw new InvalidOperationException("invalid test configuration: " + string.Join("; ", errors));
        DirectoryInfo? socketDir = null;
        // Tests never use the machine-wide default socket (a configuration parsed without --api names it).
        if (api is null || (!api.IsTcp && (api.Socket is null || api.Socket == ListenerOptions.DefaultSocketPath())))
        {
            socketDir = Directory.CreateTempSubdirectory("nvmet-api-");
            File.SetUnixFileMode(socketDir.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var socket = Path.Combine(socketDir.FullName, "api.sock");
            api = api is null ? new ApiConfig { Socket = socket, Token = token } : Copy(api, socket);
        }
        probes ??= probesOff ? null : new ProbesConfig { Address = "127.0.0.1", Port = 0 };
        var loggers = LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(LogLevel.Information);
            b.AddFilter("Microsoft", LogLevel.Warning);
            if (output != null) b.AddProvider(new TestOutputLoggerProvider(output));
        });
        try
        {
            var host = await TargetHost.StartAsync(config, loggers, configPath: configPath, api: api, telemetry: telemetry, probes: probes);
            return new ApiTarget(host, loggers, api.Token, socketDir);
        }
        catch
        {
            loggers.Dispose();
            socketDir?.Delete(recursive: true);
            throw;
        }
    }

    private static ApiConfig Copy(ApiConfig a, string socket) => new()
    {
        Socket = socket, SocketGroup = a.SocketGroup, Token = a.Token, TokenFile = a.TokenFile, AllowedHostNames = a.AllowedHostNames,
    };

    public Task<NvmeTcpHost> ConnectAsync(string nqn = Nqn) => NvmeTcpHost.ConnectAsync(Host.Endpoints[0], nqn);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Http.Dispose();
        Probes?.Dispose();
        try { await Host.DisposeAsync(); }
        finally
        {
            _loggers.Dispose();
            try { _socketDir?.Delete(recursive: true); } catch (IOException) { }
        }
    }
}

/// <summary>HTTP helpers shared by the management tests.</summary>
internal static class Api
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static string Sub(string nqn = ApiTarget.Nqn) => "subsystems/" + Uri.EscapeDataString(nqn);

    public static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage r, HttpStatusCode expected)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == expected, $"expected {(int)expected} {expected}, got {(int)r.StatusCode} {r.StatusCode}: {text}");
        Assert.Equal("application/json", r.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    public static async Task<JsonElement> GetJsonAsync(this HttpClient http, string path, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var r = await http.GetAsync(path);
        return await ReadJsonAsync(r, expected);
    }

    public static async Task<JsonElement> PostJsonAsync(this HttpClient http, string path, object body, HttpStatusCode expected)
    {
        using var r = await http.PostAsJsonAsync(path, body, Json);
        return await ReadJsonAsync(r, expected);
    }

    public static async Task<JsonElement> PutJsonAsync(this HttpClient http, string path, object body, HttpStatusCode expected)
    {
        using var r = await http.PutAsJsonAsync(path, body, Json);
        return await ReadJsonAsync(r, expected);
    }

    public static async Task DeleteOkAsync(this HttpClient http, string path)
    {
        using var r = await http.DeleteAsync(path);
        Assert.True(r.StatusCode == HttpStatusCode.NoContent, $"DELETE {path}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
    }

    /// <summary>Asserts an RFC 7807 problem: status, content type, and a detail containing <paramref name="detail"/>.</summary>
    public static async Task<JsonElement> AssertProblemAsync(HttpResponseMessage r, HttpStatusCode status, string detail)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"expected {(int)status} {status}, got {(int)r.StatusCode} {r.StatusCode}: {text}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        var p = JsonDocument.Parse(text).RootElement.Clone();
        Assert.Equal((int)status, p.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(p.GetProperty("title").GetString()));
        Assert.Contains(detail, p.GetProperty("detail").GetString());
        Assert.DoesNotContain("   at ", text); // never a stack trace
        return p;
    }

    public static async Task ProblemAsync(this HttpClient http, HttpMethod method, string path, object? body, HttpStatusCode status, string detail)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body != null) request.Content = JsonContent.Create(body, body.GetType(), options: Json);
        using var r = await http.SendAsync(request);
        await AssertProblemAsync(r, status, detail);
    }
}

/// <summary>Runs the built executable (the same dll the program tests start) as the CLI.</summary>
internal static class Cli
{
    public static Task<(int Code, string Out, string Err)> RunAsync(IReadOnlyDictionary<string, string>? env, params string[] args) =>
        TargetProcess.RunAsync(env, args);

    public static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => RunAsync(null, args);
}
