namespace Nvme.Core.Auth;

/// <summary>
/// What a subsystem knows of one host for DH-HMAC-CHAP (kernel nvmet's hosts/NQN/dhchap_* attributes): the host
/// secret it must prove, optionally a controller secret for bidirectional authentication, and the hash and DH
/// group the controller chooses when the host offers them. A host with an entry must always authenticate.
/// </summary>
/// <param name="Hash">The HMAC the controller picks; null = SHA-256 if the host offers it, else the host's first
/// (the kernel target's fallback).</param>
/// <param name="DhGroup">The DH group the controller picks; null = the null group if the host offers it, else the
/// host's first. A group named here is required: a host that does not offer it fails (DH group unusable).</param>
public sealed record HostAuthentication(DhchapSecret HostSecret, DhchapSecret? ControllerSecret = null, DhchapHash? Hash = null, DhGroupId? DhGroup = null)
{
    public override string ToString() =>
        $"host secret set, controller secret {(ControllerSecret is null ? "not set" : "set")}, hash {Hash?.Name() ?? "auto"}, " +
        $"dhgroup {(DhGroup is { } g ? FfdheGroup.Name(g) : "auto")}";
}
