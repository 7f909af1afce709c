using Nvme.Core.Model;
using Nvme.Core.Spec;
using Target.Configuration;

namespace Target.Management;

/// <summary>
/// Namespace masking and the in-band attachment privilege. Each change is saved before it goes live (a failed save
/// changes nothing) and runs under the subsystem's gate, like every other change to it. In-band Namespace Attachment
/// commands from hosts come through the same gate and are saved the same way (see <see cref="HookInBandAttachment"/>).
/// </summary>
public sealed partial class TargetManager
{
    /// <summary>Masking mode of a namespace: "auto" (every host allowed on the subsystem) or "restricted" (its host list only).
    /// The hosts that gain or lose it get the namespace event; a host losing it is drained first.</summary>
    public Task<NamespaceInfo> SetNamespaceVisibilityAsync(string nqn, uint nsid, string visibility) => OnSubsystem(nqn, async s =>
    {
        var ns = FindNamespace(s, nsid);
        bool restricted = visibility switch
        {
            NamespaceConfig.VisibilityAuto => false,
            NamespaceConfig.VisibilityRestricted => true,
            _ => throw new ManagementException(ManagementError.Invalid, $"visibility '{visibility}' is not auto or restricted"),
        };
        await ChangeVisibilityAsync(s, ns, ns.Visibility with { Restricted = restricted }).ConfigureAwait(false);
        return Describe(s, ns);
    });

    /// <summary>Adds a host to a namespace's list (it sees the namespace now if the namespace is restricted). The host must
    /// be allowed on the subsystem.</summary>
    public Task<NamespaceInfo> AddNamespaceHostAsync(string nqn, uint nsid, string hostNqn) => OnSubsystem(nqn, async s =>
    {
        var ns = FindNamespace(s, nsid);
        if (Subsystem.ValidateNqn(hostNqn) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        if (ns.Visibility.Hosts.Contains(hostNqn)) throw new ManagementException(ManagementError.Conflict, $"host {hostNqn} is already listed for namespace {nsid} of {nqn}");
        await ChangeVisibilityAsync(s, ns, ns.Visibility.WithHost(hostNqn)).ConfigureAwait(false);
        return Describe(s, ns);
    });

    /// <summary>Takes a host off a namespace's list (if the namespace is restricted, the host's I/O to it drains and its
    /// controllers get the event, as for a hot-remove).</summary>
    public Task<NamespaceInfo> RemoveNamespaceHostAsync(string nqn, uint nsid, string hostNqn) => OnSubsystem(nqn, async s =>
    {
        var ns = FindNamespace(s, nsid);
        if (!ns.Visibility.Hosts.Contains(hostNqn)) throw new ManagementException(ManagementError.NotFound, $"host {hostNqn} is not listed for namespace {nsid} of {nqn}");
        await ChangeVisibilityAsync(s, ns, ns.Visibility.WithoutHost(hostNqn)).ConfigureAwait(false);
        return Describe(s, ns);
    });

    public IReadOnlyList<string> ListAttachHosts(string nqn) => [.. Find(nqn).NamespaceAttachHosts.Order(StringComparer.Ordinal)];

    /// <summary>Gives a host the in-band attachment privilege: its controllers may attach and detach namespaces to and from
    /// themselves (nvme attach-ns / detach-ns). The host must be allowed on the subsystem.</summary>
    public Task AddAttachHostAsync(string nqn, string hostNqn) => OnSubsystem(nqn, s =>
    {
        if (Subsystem.ValidateNqn(hostNqn) is string bad) throw new ManagementException(ManagementError.Invalid, bad);
        if (s.NamespaceAttachHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.Conflict, $"host {hostNqn} already holds the namespace attachment privilege on {nqn}");
        if (!s.IsHostAllowed(hostNqn))
            throw new ManagementException(ManagementError.Invalid, $"host {hostNqn} is not allowed on {nqn}, so it cannot be given the attachment privilege: allow it first (nvme-tcp-target hosts add)");
        var sc = ConfigOf(nqn);
        var old = sc.NamespaceAttachHosts;
        Persist(() => sc.NamespaceAttachHosts = [.. old ?? [], hostNqn], () => sc.NamespaceAttachHosts = old);
        s.SetNamespaceAttachHost(hostNqn, true);
        _log.AttachPrivilegeChanged(nqn, hostNqn, "holds");
        return Task.FromResult(true);
    });

    public Task RemoveAttachHostAsync(string nqn, string hostNqn) => OnSubsystem(nqn, s =>
    {
        if (!s.NamespaceAttachHosts.Contains(hostNqn)) throw new ManagementException(ManagementError.NotFound, $"host {hostNqn} does not hold the namespace attachment privilege on {nqn}");
        var sc = ConfigOf(nqn);
        var old = sc.NamespaceAttachHosts;
        Persist(() => sc.NamespaceAttachHosts = old?.Where(h => h != hostNqn).ToList() is { Count: > 0 } rest ? rest : null, () => sc.NamespaceAttachHosts = old);
        s.SetNamespaceAttachHost(hostNqn, false);
        _log.AttachPrivilegeChanged(nqn, hostNqn, "no longer holds");
        return Task.FromResult(true);
    });

    // ------------------------------------------------------------------ helpers

    private static Namespace FindNamespace(Subsystem s, uint nsid) =>
        s.GetNamespace(nsid) ?? throw new ManagementException(ManagementError.NotFound, $"namespace {nsid} does not exist in {s.Nqn}");

    /// <summary>Saves then applies a namespace's new visibility (the core drains a host that loses it, then sends the events).</summary>
    private async Task ChangeVisibilityAsync(Subsystem s, Namespace ns, NamespaceVisibility next)
    {
        var old = ns.Visibility;
        int concerned = s.Controllers.Count(c => old.Allows(c.HostNqn) != next.Allows(c.HostNqn));
        bool inTime;
        try
        {
            inTime = await s.SetNamespaceVisibilityAsync(ns.Nsid, next, DrainTimeout, () => PersistVisibility(s.Nqn, ns.Nsid, next)).ConfigureAwait(false);
        }
        catch (ArgumentException e) { throw new ManagementException(ManagementError.Invalid, e.Message); }
        if (!inTime) _log.NamespaceMaskedWithStuckIo(ns.Nsid, s.Nqn, DrainTimeout);
        _log.NamespaceVisibilityChanged(ns.Nsid, s.Nqn, next.ToString(), concerned);
    }

    /// <summary>Writes a namespace's visibility into the live configuration and the file (<see cref="ManagementError.NotSaved"/>
    /// when the file cannot be written: the core then changes nothing).</summary>
    private void PersistVisibility(string nqn, uint nsid, NamespaceVisibility next)
    {
        var nc = ConfigOf(nqn).Namespaces.FirstOrDefault(n => n.Nsid == nsid);
        if (nc is null) return;
        var (oldVisibility, oldHosts) = (nc.Visibility, nc.Hosts);
        Persist(() =>
        {
            nc.Visibility = next.Restricted ? NamespaceConfig.VisibilityRestricted : null;
            nc.Hosts = next.Hosts.Count == 0 ? null : [.. next.Hosts];
        }, () => (nc.Visibility, nc.Hosts) = (oldVisibility, oldHosts));
    }

    /// <summary>Routes a subsystem's in-band Namespace Attachment commands through the management gate and saves them: an
    /// attach or detach by a host is a change to the namespace's host list like <see cref="AddNamespaceHostAsync"/>.</summary>
    private void HookInBandAttachment(Subsystem s)
    {
        var nqn = s.Nqn;
        s.InBandAttachment = (nsid, hostNqn, attach) => OnSubsystem(nqn, async live =>
        {
            var status = await live.ChangeAttachmentAsync(nsid, hostNqn, attach, DrainTimeout, next => PersistVisibility(nqn, nsid, next)).ConfigureAwait(false);
            if (status == NvmeStatus.Success && live.GetNamespace(nsid) is { } ns)
                _log.NamespaceVisibilityChanged(nsid, nqn, $"{ns.Visibility} (in-band {(attach ? "attach" : "detach")} by {hostNqn})", 1);
            return status;
        });
    }

    /// <summary>Why a subsystem built from a request may not go live: a namespace restricted to, or an attachment privilege
    /// for, a host the subsystem does not allow.</summary>
    private static string? CheckHostsAllowed(Subsystem s)
    {
        foreach (var ns in s.Namespaces)
            if (s.CheckMaskHosts(NamespaceVisibility.Auto, ns.Visibility) is string e) return $"namespace {ns.Nsid}: {e}";
        foreach (var h in s.NamespaceAttachHosts)
            if (!s.IsHostAllowed(h)) return $"namespaceAttachHosts: host {h} is not allowed on {s.Nqn}";
        return null;
    }
}
