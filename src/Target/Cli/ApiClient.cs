using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;

namespace Target.Cli;

/// <summary>The API answered with an error status; <see cref="Exception.Message"/> is the problem detail.</summary>
internal sealed class ApiErrorException(HttpStatusCode status, string message) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
}

/// <summary>Nothing answered at the API URL (refused, unresolvable, timed out).</summary>
internal sealed class ApiUnreachableException(string message) : Exception(message);

/// <summary>A thin JSON client for the management API: one call per request, errors as exceptions.</summary>
internal sealed class ApiClient : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);
    private static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // "+00:00", not "\u002B00:00"
    };

    private readonly HttpClient _http;

    public ApiClient(Uri root, string? token, HttpMessageHandler? handler = null)
    {
        Root = root;
        _http = new HttpClient(handler ?? new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) })
        {
            BaseAddress = new Uri(root, "api/v1/"),
            Timeout = TimeSpan.FromSeconds(100), // a hot-remove waits for in-flight I/O to drain
        };
        if (token != null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>The URL the user gave (for messages).</summary>
    public Uri Root { get; }

    public static string Segment(string value) => Uri.EscapeDataString(value);

    /// <summary>Sends the request; returns the response body (empty for 204).</summary>
    public async Task<string> SendAsync(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body != null) request.Content = JsonContent.Create(body, body.GetType(), options: Json);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new ApiUnreachableException($"cannot reach the management API at {Root}: {e.Message}");
        }
        catch (TaskCanceledException)
        {
            throw new ApiUnreachableException($"the management API at {Root} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            if (response.IsSuccessStatusCode) return text;
            string? detail = null;
            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("detail", out var d)) detail = d.GetString();
            }
            catch (JsonException) { }
            throw new ApiErrorException(response.StatusCode,
                detail ?? $"HTTP {(int)response.StatusCode} {response.ReasonPhrase} from {new Uri(_http.BaseAddress!, path)} (is that the target's management API?)");
        }
    }

    public async Task<(T Value, string Raw)> GetAsync<T>(string path)
    {
        var raw = await SendAsync(HttpMethod.Get, path).ConfigureAwait(false);
        return (Parse<T>(raw), raw);
    }

    public static T Parse<T>(string raw) => JsonSerializer.Deserialize<T>(raw, Json)
        ?? throw new ApiErrorException(HttpStatusCode.OK, "the management API answered with an empty document");

    /// <summary>The raw answer, indented (for --json).</summary>
    public static string Pretty(string raw)
    {
        if (string.IsNullOrWhiteSpace(raw)) return "";
        using var doc = JsonDocument.Parse(raw);
        return JsonSerializer.Serialize(doc.RootElement, Indented);
    }

    public void Dispose() => _http.Dispose();
}
