using System.Globalization;
using Target.Configuration;
using Target.Management;

namespace Target.Cli;

public static partial class ClientCli
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static string Path(string nqn) => "subsystems/" + ApiClient.Segment(nqn);

    // ------------------------------------------------------------------ subsys

    private static async Task<int> SubsysListAsync(Run r)
    {
        var (subs, raw) = await r.Api.GetAsync<List<SubsystemInfo>>("subsystems").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (subs.Count == 0) { r.Out.WriteLine("No subsystems."); return Ok; }
        TextTable.Write(r.Out, ["NQN", "NAMESPACES", "HOSTS", "CONTROLLERS", "PORTS", "SERIAL", "MODEL"],
            subs.Select(s => new[]
            {
                s.Nqn, s.Namespaces.Count.ToString(Inv), s.AllowAnyHost ? "any" : s.AllowedHosts.Count.ToString(Inv),
                s.Controllers.ToString(Inv), s.Ports is null ? "all" : s.Ports.Count == 0 ? "none" : string.Join(",", s.Ports), s.Serial, s.Model,
            }));
        return Ok;
    }

    private static async Task<int> SubsysCreateAsync(Run r)
    {
        var sc = new SubsystemConfig
        {
            Nqn = r.Require("--nqn"),
            Serial = r.Get("--serial"),
            Model = r.Get("--model"),
            FirmwareRevision = r.Get("--firmware"),
            AllowedHosts = [.. r.All("--allow-host")],
            AllowAnyHost = r.Has("--allow-any-host"),
            Ports = r.Has("--port") ? [.. r.All("--port").Select(PortId)] : null,
        };
        uint nsid = 1;
        foreach (var spec in r.All("--namespace"))
            sc.Namespaces.Add(CommandLine.ParseNamespaceSpec(spec, nsid++, out var error) ?? throw new UsageException(error!));
        var raw = await r.Api.SendAsync(HttpMethod.Post, "subsystems", sc).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var s = ApiClient.Parse<SubsystemInfo>(raw);
        r.Out.WriteLine($"Created subsystem {s.Nqn} (serial {s.Serial}) with {Plural(s.Namespaces.Count, "namespace")}; " + Access(s));
        return Ok;
    }

    private static string Access(SubsystemInfo s) =>
        s.AllowAnyHost ? "any host may connect." :
        s.AllowedHosts.Count == 0 ? "no host may connect yet (add one: nvme-tcp-target hosts add --host NQN)." :
        $"{Plural(s.AllowedHosts.Count, "allowed host")} may connect.";

    private static ushort PortId(string text) =>
        ushort.TryParse(text, NumberStyles.None, Inv, out var id) ? id : throw new UsageException($"--port '{text}' is not a port id (a number from the target's \"ports\")");

    private static async Task<int> SubsysSetAsync(Run r)
    {
        var patch = new SubsystemPatch();
        if (r.Get("--allow-any-host") is string value)
            patch.AllowAnyHost = value switch
            {
                "on" or "true" or "yes" => true,
                "off" or "false" or "no" => false,
                _ => throw new UsageException($"--allow-any-host '{value}' must be on or off"),
            };
        if (r.Has("--port") && r.Has("--all-ports")) throw new UsageException("give --port or --all-ports, not both");
        if (r.Has("--port")) patch.Ports = [.. r.All("--port").Select(PortId)];
        if (r.Has("--all-ports")) patch.AllPorts = true;
        bool attachHosts = r.Has("--attach-host") || r.Has("--no-attach-host");
        if (patch.AllowAnyHost is null && patch.Ports is null && patch.AllPorts is null && !attachHosts)
            throw new UsageException("nothing to change: give --allow-any-host on|off, --port ID, --all-ports, --attach-host or --no-attach-host");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        if (attachHosts)
        {
            await SetAttachHostsAsync(r, nqn).ConfigureAwait(false);
            if (patch.AllowAnyHost is null && patch.Ports is null && patch.AllPorts is null) return Ok;
        }
        var before = (await r.Api.GetAsync<SubsystemInfo>(Path(nqn)).ConfigureAwait(false)).Value.Controllers;
        var raw = await r.Api.SendAsync(HttpMethod.Patch, Path(nqn), patch).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var s = ApiClient.Parse<SubsystemInfo>(raw);
        var where = patch.Ports is null && patch.AllPorts is null ? "" : s.Ports is null ? " Reachable on every port." : $" Reachable on port(s) {string.Join(", ", s.Ports)}.";
        r.Out.WriteLine($"{s.Nqn}: {Access(s)}{where}" + (before > s.Controllers ? $" Disconnected {Plural(before - s.Controllers, "controller")} no longer allowed there." : ""));
        return Ok;
    }

    /// <summary>subsys set --attach-host / --no-attach-host: the in-band namespace attachment privilege.</summary>
    private static async Task SetAttachHostsAsync(Run r, string nqn)
    {
        foreach (var host in r.All("--attach-host"))
        {
            var raw = await r.Api.SendAsync(HttpMethod.Post, Path(nqn) + "/attach-hosts", new HostNqnEntry { HostNqn = host }).ConfigureAwait(false);
            if (r.Json) r.Out.WriteLine(ApiClient.Pretty(raw));
            else r.Out.WriteLine($"{nqn}: host {host} may now attach and detach namespaces to and from its own controllers (nvme attach-ns / detach-ns).");
        }
        foreach (var host in r.All("--no-attach-host"))
        {
            await r.Api.SendAsync(HttpMethod.Delete, $"{Path(nqn)}/attach-hosts/{ApiClient.Segment(host)}").ConfigureAwait(false);
            if (!r.Json) r.Out.WriteLine($"{nqn}: host {host} no longer may attach or detach namespaces.");
        }
    }

    private static async Task<int> SubsysDeleteAsync(Run r)
    {
        var nqn = r.Require("--nqn");
        await r.Api.SendAsync(HttpMethod.Delete, Path(nqn)).ConfigureAwait(false);
        if (!r.Json) r.Out.WriteLine($"Deleted subsystem {nqn}.");
        return Ok;
    }

    // ------------------------------------------------------------------ ns

    private static async Task<int> NsListAsync(Run r)
    {
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var (list, raw) = await r.Api.GetAsync<List<NamespaceInfo>>(Path(nqn) + "/namespaces").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (list.Count == 0) { r.Out.WriteLine($"No namespaces in {nqn}."); return Ok; }
        TextTable.Write(r.Out, ["NSID", "BACKEND", "SIZE", "BLOCK", "BLOCKS", "UUID", "VISIBILITY", "HOSTS", "PATH"],
            list.Select(n => new[]
            {
                n.Nsid.ToString(Inv), n.Backend, FormatSize(n.SizeBytes), n.BlockSize.ToString(Inv), n.Blocks.ToString(Inv),
                n.Uuid.ToString(), n.Visibility, MaskHosts(n), n.Path ?? "-",
            }));
        return Ok;
    }

    /// <summary>The HOSTS column: who sees the namespace ("all" for auto); a listed host the subsystem no longer allows is
    /// marked; hosts kept while auto are shown in parentheses.</summary>
    private static string MaskHosts(NamespaceInfo n)
    {
        var hosts = (n.Hosts ?? []).Select(h => n.HostsNotAllowed?.Contains(h) == true ? h + " (not allowed)" : h).ToList();
        if (n.Visibility != NamespaceConfig.VisibilityRestricted) return hosts.Count == 0 ? "all" : $"all (listed: {string.Join(",", hosts)})";
        return hosts.Count == 0 ? "none" : string.Join(",", hosts);
    }

    private static async Task<int> NsVisibilityAsync(Run r)
    {
        var nsid = r.Nsid();
        var mode = r.Get("<auto|restricted>") ?? throw new UsageException("give the visibility: auto or restricted");
        if (mode is not (NamespaceConfig.VisibilityAuto or NamespaceConfig.VisibilityRestricted))
            throw new UsageException($"'{mode}' is not auto or restricted");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Put, $"{Path(nqn)}/namespaces/{nsid}/visibility", new VisibilityRequest { Visibility = mode }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var n = ApiClient.Parse<NamespaceInfo>(raw);
        r.Out.WriteLine(n.Visibility == NamespaceConfig.VisibilityAuto
            ? $"Namespace {nsid} of {nqn} is visible to every allowed host."
            : $"Namespace {nsid} of {nqn} is restricted to: {MaskHosts(n)}.");
        return Ok;
    }

    private static async Task<int> NsHostsAddAsync(Run r)
    {
        var nsid = r.Nsid();
        var host = r.Require("--host");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Post, $"{Path(nqn)}/namespaces/{nsid}/hosts", new HostNqnEntry { HostNqn = host }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var n = ApiClient.Parse<NamespaceInfo>(raw);
        r.Out.WriteLine(n.Visibility == NamespaceConfig.VisibilityRestricted
            ? $"Host {host} now sees namespace {nsid} of {nqn}."
            : $"Listed host {host} for namespace {nsid} of {nqn}; the namespace is auto (every allowed host sees it) until: nvme-tcp-target ns visibility --nqn {nqn} --nsid {nsid} restricted");
        return Ok;
    }

    private static async Task<int> NsHostsRemoveAsync(Run r)
    {
        var nsid = r.Nsid();
        var host = r.Require("--host");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Delete, $"{Path(nqn)}/namespaces/{nsid}/hosts/{ApiClient.Segment(host)}").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var n = ApiClient.Parse<NamespaceInfo>(raw);
        r.Out.WriteLine(n.Visibility == NamespaceConfig.VisibilityRestricted
            ? $"Host {host} no longer sees namespace {nsid} of {nqn}."
            : $"Unlisted host {host} for namespace {nsid} of {nqn} (the namespace is auto: every allowed host still sees it).");
        return Ok;
    }

    private static async Task<int> NsAddAsync(Run r)
    {
        var backends = new[] { "--memory", "--file", "--block", "--rbd" }.Where(r.Has).ToList();
        if (backends.Count != 1) throw new UsageException("give exactly one of --memory SIZE, --file PATH, --block DEVICE or --rbd POOL/IMAGE");
        if (backends[0] != "--rbd" && new[] { "--ceph-conf", "--ceph-id", "--keyring" }.FirstOrDefault(r.Has) is string cephOnly)
            throw new UsageException($"{cephOnly} goes with --rbd");
        var nc = new NamespaceConfig { Nsid = r.Nsid(required: false) };
        switch (backends[0])
        {
            case "--memory":
                nc.Backend = "memory";
                nc.Size = r.Get("--memory");
                if (r.Has("--size")) throw new UsageException("--size goes with --file; a memory namespace takes its size from --memory");
                break;
            case "--file":
                nc.Backend = "file";
                nc.Path = r.Get("--file"); // a relative path is relative to the target's storage directory (not this shell's)
                nc.Size = r.Get("--size");
                if (r.Has("--preallocate")) nc.Preallocate = true;
                break;
            case "--rbd":
                {
                    nc.Backend = "rbd";
                    var spec = r.Get("--rbd")!;
                    int slash = spec.IndexOf('/');
                    if (slash <= 0 || slash == spec.Length - 1) throw new UsageException($"--rbd '{spec}' is not POOL/IMAGE");
                    (nc.Pool, nc.Image) = (spec[..slash], spec[(slash + 1)..]);
                    nc.Size = r.Get("--size");
                    nc.CephConf = r.Get("--ceph-conf");
                    nc.ClientId = r.Get("--ceph-id");
                    nc.Keyring = r.Get("--keyring");
                    break;
                }
            default:
                nc.Backend = "block";
                nc.Path = r.Get("--block");
                if (r.Has("--size")) throw new UsageException("--size goes with --file; a block device has its own size");
                break;
        }
        if (r.Has("--preallocate") && nc.Backend != "file") throw new UsageException("--preallocate goes with --file");
        if (r.Get("--block-size") is string bs)
            nc.BlockSize = int.TryParse(bs, NumberStyles.None, Inv, out var b) ? b : throw new UsageException($"--block-size '{bs}' is not a number (512 or 4096)");
        if (r.Get("--uuid") is string uuid)
            nc.Uuid = Guid.TryParse(uuid, out var g) ? g : throw new UsageException($"--uuid '{uuid}' is not a UUID");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Post, Path(nqn) + "/namespaces", nc).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var n = ApiClient.Parse<NamespaceInfo>(raw);
        r.Out.WriteLine($"Added namespace {n.Nsid} to {nqn}: {Describe(n)}, UUID {n.Uuid}.");
        return Ok;
    }

    private static async Task<int> NsRemoveAsync(Run r)
    {
        var nsid = r.Nsid();
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        await r.Api.SendAsync(HttpMethod.Delete, $"{Path(nqn)}/namespaces/{nsid}").ConfigureAwait(false);
        if (!r.Json) r.Out.WriteLine($"Removed namespace {nsid} from {nqn}.");
        return Ok;
    }

    private static async Task<int> NsResizeAsync(Run r)
    {
        var nsid = r.Nsid();
        var size = r.Require("--size");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        string raw;
        try
        {
            raw = await r.Api.SendAsync(HttpMethod.Post, $"{Path(nqn)}/namespaces/{nsid}/resize",
                new ResizeRequest { Size = size, Force = r.Has("--force") }).ConfigureAwait(false);
        }
        catch (ApiErrorException e) when (e.Status == System.Net.HttpStatusCode.Conflict && !r.Has("--force") && e.Message.Contains("shrink", StringComparison.OrdinalIgnoreCase))
        {
            throw new ApiErrorException(e.Status, e.Message + "\nAdd --force to shrink anyway (data past the new end is lost to hosts).");
        }
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var n = ApiClient.Parse<NamespaceInfo>(raw);
        r.Out.WriteLine($"Resized namespace {n.Nsid} of {nqn} to {Describe(n)}.");
        return Ok;
    }

    // ------------------------------------------------------------------ hosts

    private static async Task<int> HostsListAsync(Run r)
    {
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var (hosts, raw) = await r.Api.GetAsync<List<HostEntry>>(Path(nqn) + "/hosts").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (hosts.Count == 0)
        {
            var s = (await r.Api.GetAsync<SubsystemInfo>(Path(nqn)).ConfigureAwait(false)).Value;
            r.Out.WriteLine(s.AllowAnyHost ? $"No allowed hosts listed; {nqn} admits any host (allowAnyHost)."
                : $"No allowed hosts: no host may connect to {nqn} (add one: nvme-tcp-target hosts add --host NQN).");
            return Ok;
        }
        TextTable.Write(r.Out, ["HOST NQN", "DHCHAP", "CTRL SECRET", "HASH", "DHGROUP"], hosts.Select(h => new[]
        {
            h.HostNqn, h.DhchapSecretSet ? "secret set" : "-", h.DhchapCtrlSecretSet ? "set" : "-", h.DhchapHash ?? "auto", h.DhchapDhgroup ?? "auto",
        }));
        return Ok;
    }

    private static async Task<int> HostsAddAsync(Run r)
    {
        var host = r.Require("--host");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var auth = DhchapOptions(r);
        var raw = await r.Api.SendAsync(HttpMethod.Post, Path(nqn) + "/hosts", new HostEntry
        {
            HostNqn = host, DhchapSecret = auth?.DhchapSecret, DhchapCtrlSecret = auth?.DhchapCtrlSecret, DhchapHash = auth?.DhchapHash, DhchapDhgroup = auth?.DhchapDhgroup,
        }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var s = (await r.Api.GetAsync<SubsystemInfo>(Path(nqn)).ConfigureAwait(false)).Value;
        r.Out.WriteLine($"Allowed host {host} on {nqn}." + (s.AllowAnyHost
            ? $" Note: {nqn} still admits any host; to admit only the listed ones: nvme-tcp-target subsys set --nqn {nqn} --allow-any-host off" : ""));
        return Ok;
    }

    private static async Task<int> HostsSetAsync(Run r)
    {
        var host = r.Require("--host");
        var auth = DhchapOptions(r);
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Put, $"{Path(nqn)}/hosts/{ApiClient.Segment(host)}", new HostAuthUpdate
        {
            DhchapSecret = auth?.DhchapSecret, DhchapCtrlSecret = auth?.DhchapCtrlSecret, DhchapHash = auth?.DhchapHash, DhchapDhgroup = auth?.DhchapDhgroup,
        }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        r.Out.WriteLine(auth is null
            ? $"Host {host} on {nqn} no longer authenticates."
            : $"Host {host} on {nqn} authenticates with DH-HMAC-CHAP ({(auth.DhchapCtrlSecret is null ? "unidirectional" : "bidirectional")}); " +
              "live controllers use the new secret when they re-authenticate.");
        return Ok;
    }

    /// <summary>The --dhchap-* options, checked here (usage error, exit 2) so a mistyped secret never reaches the API.
    /// Messages never quote a secret.</summary>
    private static HostAuthConfig? DhchapOptions(Run r)
    {
        var a = new HostAuthConfig
        {
            DhchapSecret = r.Get("--dhchap-secret"), DhchapCtrlSecret = r.Get("--dhchap-ctrl-secret"),
            DhchapHash = r.Get("--dhchap-hash"), DhchapDhgroup = r.Get("--dhchap-dhgroup"),
        };
        if (a.IsEmpty) return null;
        var problems = a.Validate();
        if (problems.Count > 0) throw r.Usage(string.Join("; ", problems.Select(p => p.Replace("dhchapCtrlSecret", "--dhchap-ctrl-secret")
            .Replace("dhchapSecret", "--dhchap-secret").Replace("dhchapHash", "--dhchap-hash").Replace("dhchapDhgroup", "--dhchap-dhgroup"))));
        return a;
    }

    private static async Task<int> HostsRemoveAsync(Run r)
    {
        var host = r.Require("--host");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Delete, $"{Path(nqn)}/hosts/{ApiClient.Segment(host)}").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var removed = ApiClient.Parse<HostRemoved>(raw);
        r.Out.WriteLine($"Removed host {host} from {nqn}; disconnected {Plural(removed.DisconnectedControllers, "controller")}.");
        return Ok;
    }

    // ------------------------------------------------------------------ ctrl

    private static async Task<int> CtrlListAsync(Run r)
    {
        var (ctrls, raw) = await r.Api.GetAsync<List<ControllerInfo>>("controllers").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        if (ctrls.Count == 0) { r.Out.WriteLine("No controllers (no host is connected)."); return Ok; }
        TextTable.Write(r.Out, ["CNTLID", "SUBSYSTEM", "HOST NQN", "IO QUEUES", "KATO", "PEER", "CONNECTED"],
            ctrls.Select(c => new[]
            {
                c.Cntlid.ToString(Inv), c.Subsystem, c.HostNqn, c.Discovery ? "-" : c.IoQueues.ToString(Inv),
                c.KeepAliveTimeoutMs == 0 ? "off" : $"{c.KeepAliveTimeoutMs / 1000.0:0.#} s",
                c.Queues.Count > 0 ? c.Queues[0].Peer : "-", c.CreatedAt.ToLocalTime().ToString("yyyy-MM-dd HH:mm:ss", Inv),
            }));
        return Ok;
    }

    // ------------------------------------------------------------------ formatting

    private static string Describe(NamespaceInfo n) =>
        $"{n.Backend}{(n.Path != null ? " " + n.Path : "")}, {FormatSize(n.SizeBytes)} ({n.Blocks} blocks of {n.BlockSize} bytes)";

    private static string Plural(int n, string noun) => n == 1 ? $"1 {noun}" : $"{n} {noun}s";

    /// <summary>"1 GiB", "1.5 GiB", "700 KiB", "512 bytes".</summary>
    public static string FormatSize(long bytes)
    {
        string[] units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
        int u = 0;
        double v = bytes;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} bytes" : v.ToString(v == Math.Floor(v) ? "0" : "0.##", Inv) + " " + units[u];
    }
}

/// <summary>Plain-text table: a header row and columns padded to their widest cell.</summary>
internal static class TextTable
{
    public static void Write(TextWriter w, string[] headers, IEnumerable<string[]> rows)
    {
        var all = new List<string[]> { headers };
        all.AddRange(rows);
        var widths = headers.Select((_, i) => all.Max(r => r[i].Length)).ToArray();
        foreach (var row in all)
            w.WriteLine(string.Join("  ", row.Select((cell, i) => i == row.Length - 1 ? cell : cell.PadRight(widths[i]))).TrimEnd());
    }
}
