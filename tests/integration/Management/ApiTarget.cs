using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Microsoft.Extensions.Logging;
using Target;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>An in-process target with its NVMe/TCP port and its management API both on 127.0.0.1, port 0,
/// and an HttpClient pointed at the API. Dispose it in every exit path (await using).</summary>
internal sealed class ApiTarget : IAsyncDisposable
{
    public const string Nqn = TestTarget.Nqn;

    private readonly ILoggerFactory _loggers;
    private int _disposed;

    private ApiTarget(TargetHost host, ILoggerFactory loggers, string? token)
    {
        Host = host;
        _loggers = loggers;
        ApiUrl = $"http://127.0.0.1:{host.ApiEndpoint!.Port}";
        Http = new HttpClient { BaseAddress = new Uri(ApiUrl + "/api/v1/"), Timeout = TimeSpan.FromSeconds(60) };
        if (token != null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public TargetHost Host { get; }
    public HttpClient Http { get; }
    /// <summary>http://127.0.0.1:PORT (what the CLI's --api takes).</summary>
    public string ApiUrl { get; }

    /// <summary>Starts from <paramref name="config"/> (default: <see cref="TestTarget.DefaultConfig"/>); the API
    /// listens on port 0 unless <paramref name="api"/> says otherwise.</summary>
    public static async Task<ApiTarget> StartAsync(ITestOutputHelper? output, TargetConfig? config = null, string? configPath = null,
        ApiConfig? api = null, string? token = null, Target.Telemetry.TelemetryOptions? telemetry = null)
    {
        config ??= TestTarget.DefaultConfig();
        var errors = ConfigValidator.Validate(config);
        if (errors.Count > 0) throw new InvalidOperationException("invalid test configuration: " + string.Join("; ", errors));
        api ??= new ApiConfig { Address = "127.0.0.1", Port = 0, Token = token };
        var loggers = LoggerFactory.Create(b =>
        {
            b.SetMinimumLevel(LogLevel.Information);
            b.AddFilter("Microsoft", LogLevel.Warning);
            if (output != null) b.AddProvider(new TestOutputLoggerProvider(output));
        });
        try
        {
            var host = await TargetHost.StartAsync(config, loggers, configPath: configPath, api: api, telemetry: telemetry);
            return new ApiTarget(host, loggers, api.Token);
        }
        catch
        {
            loggers.Dispose();
            throw;
        }
    }

    public Task<NvmeTcpHost> ConnectAsync(string nqn = Nqn) => NvmeTcpHost.ConnectAsync(Host.Endpoints[0], nqn);

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Http.Dispose();
        try { await Host.DisposeAsync(); }
        finally { _loggers.Dispose(); }
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
