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

    /// <summary>A client of the API at <paramref name="root"/> (http://HOST:PORT/), or on the Unix socket
    /// <paramref name="socketPath"/> when that is given (requests then go to http://localhost/ over the socket).</summary>
    public ApiClient(Uri root, string? token, HttpMessageHandler? handler = null, string? socketPath = null)
    {
        Root = root;
        SocketPath = socketPath;
        var sockets = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromSeconds(10) };
        if (socketPath != null)
            sockets.ConnectCallback = async (_, cancel) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
                try
                {
                    await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath), cancel).ConfigureAwait(false);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        _http = new HttpClient(handler ?? sockets)
        {
            BaseAddress = new Uri(root, "api/v1/"),
            Timeout = TimeSpan.FromSeconds(100), // a hot-remove waits for in-flight I/O to drain
        };
        if (token != null) _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>The URL the user gave (for messages).</summary>
    public Uri Root { get; }

    /// <summary>The Unix socket the client talks to, or null for TCP.</summary>
    public string? SocketPath { get; }

    private string Where => SocketPath != null ? $"unix:{SocketPath}" : Root.ToString();

    public static string Segment(string value) => Uri.EscapeDataString(value);

    /// <summary>Sends the request; returns the response body (empty for 204).</summary>
    public async Task<string> SendAsync(HttpMethod method, string path, object? body = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body != null) request.Content = JsonContent.Create(body, body.GetType(), options: Json);
        using var response = await TransmitAsync(request).ConfigureAwait(false);
        var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
        if (response.IsSuccessStatusCode) return text;
        throw Refused(response, text, path);
    }

    /// <summary>GETs <paramref name="path"/> into <paramref name="output"/> (a file, say); returns the bytes copied.</summary>
    public async Task<long> DownloadAsync(string path, Stream output)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        using var response = await TransmitAsync(request, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        if (!response.IsSuccessStatusCode) throw Refused(response, await response.Content.ReadAsStringAsync().ConfigureAwait(false), path);
        long before = output.CanSeek ? output.Position : 0;
        await response.Content.CopyToAsync(output).ConfigureAwait(false);
        return output.CanSeek ? output.Position - before : -1;
    }

    private async Task<HttpResponseMessage> TransmitAsync(HttpRequestMessage request, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        try
        {
            return await _http.SendAsync(request, completion).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            var inner = e.InnerException as System.Net.Sockets.SocketException;
            string why = inner?.SocketErrorCode switch
            {
                System.Net.Sockets.SocketError.AccessDenied =>
                    "permission denied: the socket admits only the target's user (run the client as that user, or start the target with --api-socket-group GROUP)",
                System.Net.Sockets.SocketError.AddressNotAvailable or System.Net.Sockets.SocketError.ConnectionRefused when SocketPath != null =>
                    "no target is listening there",
                _ => inner?.Message ?? e.Message,
            };
            throw new ApiUnreachableException($"cannot reach the management API at {Where}: {why}");
        }
        catch (TaskCanceledException)
        {
            throw new ApiUnreachableException($"the management API at {Where} did not answer within {_http.Timeout.TotalSeconds:0} s");
        }
    }

    /// <summary>The API's refusal: its problem detail when it sent one.</summary>
    private ApiErrorException Refused(HttpResponseMessage response, string text, string path)
    {
        string? detail = null;
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("detail", out var d)) detail = d.GetString();
        }
        catch (JsonException) { }
        return new ApiErrorException(response.StatusCode,
            detail ?? $"HTTP {(int)response.StatusCode} {response.ReasonPhrase} from {new Uri(_http.BaseAddress!, path)} (is that the target's management API?)");
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
