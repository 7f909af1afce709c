using System.Globalization;
using Target.Management;

namespace Target.Cli;

public static partial class ClientCli
{
    private static async Task<int> AnaListAsync(Run r)
    {
        if (r.Get("--nqn") is string a && r.Get("<NQN>") is string b && a != b) throw r.Usage($"the subsystem is '{a}' or '{b}': give it once");
        var nqn = r.Get("<NQN>") ?? await r.NqnAsync().ConfigureAwait(false);
        var (ana, raw) = await r.Api.GetAsync<AnaInfo>($"{Path(nqn)}/ana").ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        r.Out.WriteLine($"{ana.Subsystem}: ANA change count {ana.ChangeCount}.");
        bool failover = ana.Groups.Any(g => g.Managed);
        string[] columns = failover ? ["GROUP", "STATE", "PORTS", "NAMESPACES", "OWNER", "GATEWAYS"] : ["GROUP", "STATE", "PORTS", "NAMESPACES"];
        TextTable.Write(r.Out, columns,
            ana.Groups.Select(g =>
            {
                string[] row =
                [
                    g.Group.ToString(Inv), g.State, g.Ports.Count == 0 ? "-" : string.Join(" ", g.Ports.Select(p => $"{p.Port}:{p.State}")),
                    g.Namespaces.Count == 0 ? "-" : string.Join(",", g.Namespaces.Select(n => n.ToString(Inv))),
                ];
                if (!failover) return row;
                string owner = !g.Managed ? "(manual)" : g.Owner is { } o ? o.Gateway + (o.Self ? " (this gateway)" : "") : "nobody";
                return [.. row, owner, g.Gateways is { Count: > 0 } gw ? string.Join(",", gw) : "-"];
            }));
        return Ok;
    }

    /// <summary>NQN GROUP VALUE, or GROUP VALUE with --nqn or a target that has one subsystem (ana set, ana owner).</summary>
    private static async Task<(string Nqn, uint Group, string Value)> GroupAndValueAsync(Run r, string valueName, string usage)
    {
        string?[] given = [r.Get("<NQN>"), r.Get("<GROUP>"), r.Get(valueName)];
        string nqn, groupText, value;
        if (given[2] is string v3)
        {
            if (r.Get("--nqn") is string n && n != given[0]) throw r.Usage($"the subsystem is '{given[0]}' or '{n}': give it once");
            (nqn, groupText, value) = (given[0]!, given[1]!, v3);
        }
        else if (given[1] is string v2)
        {
            (groupText, value) = (given[0]!, v2);
            nqn = await r.NqnAsync().ConfigureAwait(false);
        }
        else throw r.Usage(usage);
        if (!uint.TryParse(groupText, NumberStyles.None, Inv, out var group)) throw r.Usage($"group '{groupText}' is not an ANA group number (1..128)");
        return (nqn, group, value);
    }

    private static async Task<int> AnaSetAsync(Run r)
    {
        var (nqn, group, state) = await GroupAndValueAsync(r, "<STATE>", "give the group and the state: ana set [NQN] GROUP STATE (e.g. ana set 1 inaccessible)").ConfigureAwait(false);
        if (!TargetManager.AnaStateNames.Any(e => string.Equals(e.Name, state, StringComparison.OrdinalIgnoreCase)))
            throw r.Usage($"state '{state}' is not {string.Join(", ", TargetManager.AnaStateNames.Select(e => e.Name))}");
        ushort? port = r.Get("--port") is string p ? PortId(p) : null;
        var raw = await r.Api.SendAsync(HttpMethod.Put, $"{Path(nqn)}/ana/{group}", new AnaStateRequest { State = state.ToLowerInvariant(), Port = port }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var res = ApiClient.Parse<AnaStateResult>(raw);
        r.Out.WriteLine($"{nqn}: ANA group {group} is {state.ToLowerInvariant()} on {(port is ushort x ? $"port {x}" : "every port")} (live, not saved); " +
            $"{Plural(res.ControllersNotified, "controller")} got the ANA change event.");
        return Ok;
    }

    private static async Task<int> AnaOwnerAsync(Run r)
    {
        var (nqn, group, gateway) = await GroupAndValueAsync(r, "<GATEWAY>", "give the group and the gateway: ana owner [NQN] GROUP GATEWAY (e.g. ana owner 1 gw-b)").ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Post, $"{Path(nqn)}/ana/{group}/owner", new AnaOwnerRequest { Gateway = gateway }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        var res = ApiClient.Parse<AnaGroupInfo>(raw);
        r.Out.WriteLine($"{nqn}: ANA group {group} is now owned by gateway {res.Owner?.Gateway ?? gateway} (optimized there, non-optimized on the others).");
        return Ok;
    }

    private static async Task<int> AnaMoveAsync(Run r)
    {
        var nsid = r.Nsid();
        var groupText = r.Require("--group");
        if (!uint.TryParse(groupText, NumberStyles.None, Inv, out var group)) throw r.Usage($"--group '{groupText}' is not an ANA group number (1..128)");
        var nqn = await r.NqnAsync().ConfigureAwait(false);
        var raw = await r.Api.SendAsync(HttpMethod.Put, $"{Path(nqn)}/namespaces/{nsid}/ana-group", new AnaGroupRequest { AnaGroup = group }).ConfigureAwait(false);
        if (r.Json) { r.Out.WriteLine(ApiClient.Pretty(raw)); return Ok; }
        r.Out.WriteLine($"Namespace {nsid} of {nqn} is now in ANA group {group} (saved).");
        return Ok;
    }
}
