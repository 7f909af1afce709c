using System.Collections.Immutable;

namespace Nvme.Core.Model;

/// <summary>
/// Which hosts see a namespace (namespace masking). <see cref="Restricted"/> false (auto, the default): every host
/// allowed on the subsystem. True: only the host NQNs in <see cref="Hosts"/> (an empty list hides the namespace from
/// every host). The list is kept while the namespace is auto, so an operator can prepare it and then restrict.
/// A host NQN that is later removed from the subsystem's allowed hosts stays in the list: it cannot connect anyway,
/// and allowing it again gives it back exactly the view it had. The empty host NQN (SPDK's nameless host) never
/// matches a list. Immutable: the I/O path reads it lock-free.
/// </summary>
public sealed record NamespaceVisibility(bool Restricted, ImmutableSortedSet<string> Hosts)
{
    public static readonly NamespaceVisibility Auto = new(false, ImmutableSortedSet.Create<string>(StringComparer.Ordinal));

    public static NamespaceVisibility Of(bool restricted, IEnumerable<string>? hosts) =>
        new(restricted, (hosts ?? []).ToImmutableSortedSet(StringComparer.Ordinal));

    /// <summary>Whether a controller of <paramref name="hostNqn"/> has the namespace in its active list.</summary>
    public bool Allows(string hostNqn) => !Restricted || (hostNqn.Length != 0 && Hosts.Contains(hostNqn));

    public NamespaceVisibility WithHost(string hostNqn) => this with { Hosts = Hosts.Add(hostNqn) };
    public NamespaceVisibility WithoutHost(string hostNqn) => this with { Hosts = Hosts.Remove(hostNqn) };

    public bool Equals(NamespaceVisibility? other) =>
        other is not null && Restricted == other.Restricted && Hosts.SetEquals(other.Hosts);

    public override int GetHashCode() => HashCode.Combine(Restricted, Hosts.Count);

    public override string ToString() => Restricted ? $"restricted to [{string.Join(", ", Hosts)}]" : "auto";
}
