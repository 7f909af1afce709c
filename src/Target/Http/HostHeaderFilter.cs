using System.Net;
using Microsoft.AspNetCore.Http;

namespace Target.Http;

/// <summary>
/// Which Host header values an HTTP listener of the target answers: <c>localhost</c>, IP address literals
/// (on a listener bound to one address: that address or loopback) and names the operator configured. A browser
/// that was tricked into sending requests to the target through a DNS name it controls (DNS rebinding) always
/// sends that name as the Host, so refusing unknown names keeps web pages away from the API and the metrics.
/// </summary>
public sealed class HostHeaderFilter
{
    private readonly IPAddress? _bound;
    private readonly HashSet<string> _names;

    /// <param name="listenAddress">The TCP listen address; null for a Unix socket.</param>
    public HostHeaderFilter(IPAddress? listenAddress, IEnumerable<string>? allowedNames)
    {
        _bound = listenAddress is null || listenAddress.Equals(IPAddress.Any) || listenAddress.Equals(IPAddress.IPv6Any) ? null : listenAddress;
        _names = new HashSet<string>(allowedNames ?? [], StringComparer.OrdinalIgnoreCase) { "localhost" };
    }

    /// <summary>The accepted names, for messages.</summary>
    public string Describe() => "localhost, IP addresses" + (_bound != null ? $" ({_bound} or loopback)" : "") +
        (_names.Count > 1 ? ", " + string.Join(", ", _names.Where(n => n != "localhost").Order(StringComparer.Ordinal)) : "");

    public bool IsAllowed(HostString host)
    {
        if (!host.HasValue) return false;
        var name = host.Host.TrimEnd('.');
        if (_names.Contains(name)) return true;
        if (!IPAddress.TryParse(name.Trim('[', ']'), out var ip)) return false;
        if (_bound is null) return true;
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        return ip.Equals(_bound) || IPAddress.IsLoopback(ip);
    }
}
