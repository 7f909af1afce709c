using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>What several gateways serving one subsystem need of each: a CNTLID range of its own (a host refuses a CNTLID
/// it already has in the subsystem), and a discovery log that lists the other gateways' ports too.</summary>
public sealed class GatewayTests(ITestOutputHelper output)
{
    private static NvmeTcpHostOptions Host(int i) => new() { HostNqn = $"nqn.2014-08.org.nvmexpress:uuid:00000000-0000-4000-8000-0000000000{i:d2}" };

    [Fact]
    public async Task Controllers_GetCntlidsFromTheConfiguredRange_AndBusyWhenItIsUsedUp()
    {
        await using var target = await TestTarget.StartAsync(output, c => (c.Subsystems[0].CntlidMin, c.Subsystems[0].CntlidMax) = ((ushort)1000, (ushort)1001));
        await using var a = await target.ConnectAsync(Host(1));
        await using var b = await target.ConnectAsync(Host(2));
        Assert.Equal(new ushort[] { 1000, 1001 }, new[] { a.Cntlid, b.Cntlid }.Order());
        var e = await Assert.ThrowsAsync<NvmeStatusException>(() => target.ConnectAsync(Host(3)));
        Assert.Equal(NvmeStatus.ConnectControllerBusy, (NvmeStatus)e.Status);
        await a.DisposeAsync();
        Assert.True(await Poll.UntilAsync(() => target.Host.Target.Subsystems.Single().Controllers.Count == 1, TimeSpan.FromSeconds(30)));
        await using var c = await target.ConnectAsync(Host(4)); // a freed CNTLID is given out again
        Assert.Equal(1000, c.Cntlid);
    }

    [Fact]
    public void CntlidRange_IsValidated()
    {
        var config = TestTarget.DefaultConfig();
        (config.Subsystems[0].CntlidMin, config.Subsystems[0].CntlidMax) = ((ushort)50, (ushort)10);
        Assert.Contains(ConfigValidator.Validate(config), m => m.Contains("cntlidMin 50 and cntlidMax 10 must lie in 1..65519"));
        var cl = CommandLine.Parse(["--cntlid-range", "100-199", "--peer", "127.0.0.2:4421", "--peer", "[::1]:4422"], new System.Collections.Hashtable());
        Assert.Empty(cl.Errors);
        Assert.Equal(((ushort?)100, (ushort?)199), (cl.Config.Subsystems[0].CntlidMin, cl.Config.Subsystems[0].CntlidMax));
        Assert.Equal(["127.0.0.2:4421", "::1:4422"], cl.Config.Peers!.Select(p => $"{p.Address}:{p.Port}"));
        Assert.Contains(CommandLine.Parse(["--cntlid-range", "9-x"], new System.Collections.Hashtable()).Errors, m => m.Contains("--cntlid-range '9-x' is not MIN-MAX"));
    }

    [Fact]
    public void FailoverOptions_AreParsedAndValidated()
    {
        var env = new System.Collections.Hashtable();
        var cl = CommandLine.Parse(["--failover", "--gateway-name", "gw-a.1", "--failover-lease", "4"], env);
        Assert.Empty(cl.Errors);
        Assert.True(cl.Config.Subsystems[0].Failover);
        Assert.Equal(("gw-a.1", (int?)4), (cl.Config.Gateway!.Name, cl.Config.Gateway.LeaseSeconds));
        Assert.DoesNotContain(ConfigValidator.Validate(cl.Config), m => m.Contains("gateway"));
        Assert.Contains(ConfigValidator.Warnings(cl.Config), m => m.Contains("has \"failover\" but no RBD namespace")); // memory:1G only
        // Without the options: no failover, no gateway section (the zero-setup start is unchanged).
        var plain = CommandLine.Parse([], env);
        Assert.Null(plain.Config.Subsystems[0].Failover);
        Assert.Null(plain.Config.Gateway);
        // From the environment.
        var fromEnv = CommandLine.Parse([], new System.Collections.Hashtable { ["NVMET_FAILOVER"] = "1", ["NVMET_GATEWAY_NAME"] = "gw-b", ["NVMET_FAILOVER_LEASE"] = "6" });
        Assert.Empty(fromEnv.Errors);
        Assert.Equal((true, "gw-b", (int?)6), (fromEnv.Config.Subsystems[0].Failover == true, fromEnv.Config.Gateway!.Name, fromEnv.Config.Gateway.LeaseSeconds));
        Assert.Contains(CommandLine.Parse(["--gateway-name", "gw a"], env).Errors, m => m.Contains("--gateway-name 'gw a' is not 1..64 letters"));
        Assert.Contains(CommandLine.Parse(["--failover-lease", "soon"], env).Errors, m => m.Contains("--failover-lease 'soon' is not a number of seconds"));
        var shortLease = CommandLine.Parse(["--failover-lease", "1"], env);
        Assert.Contains(ConfigValidator.Validate(shortLease.Config), m => m.Contains("gateway.leaseSeconds 1 is outside 2..300"));
        var file = Path.Combine(Path.GetTempPath(), $"failover-{Guid.NewGuid():N}.json");
        try
        {
            File.WriteAllText(file, System.Text.Json.JsonSerializer.Serialize(TestTarget.DefaultConfig(), TargetConfig.Json));
            Assert.Contains(CommandLine.Parse(["--config", file, "--failover"], env).Errors,
                m => m.Contains("--failover describes the default subsystem and cannot be combined with --config"));
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public async Task DiscoveryLog_ListsThePeersPorts()
    {
        const string Other = "nqn.2026-01.io.nvmetcptarget.test:sub2";
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Subsystems.Add(new SubsystemConfig { Nqn = Other, AllowAnyHost = true, Namespaces = [new NamespaceConfig { Nsid = 1, Size = "1M" }] });
            c.Peers = [new PeerConfig { PortId = 7, Address = "127.0.0.2", Port = 4421 }, new PeerConfig { PortId = 8, Address = "127.0.0.3", Port = 4422, Subsystems = [TestTarget.Nqn] }];
        });
        await using var host = await target.ConnectAsync(nqn: WellKnown.DiscoveryNqn);
        var header = MemoryMarshal.Read<DiscoveryLogHeader>(await host.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogHeader.Size, nsid: 0));
        var full = await host.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogHeader.Size + (int)header.NumberOfRecords * DiscoveryLogEntry.Size, nsid: 0);
        var entries = Enumerable.Range(0, (int)header.NumberOfRecords)
            .Select(i => MemoryMarshal.Read<DiscoveryLogEntry>(full.AsSpan(DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size)))
            .Select(e => (e.PortId, Addr: SpecText.ReadNulTerminated(e.TransportAddress), Svc: SpecText.ReadNulTerminated(e.TransportServiceId),
                Nqn: SpecText.ReadNulTerminated(e.SubNqn), e.SubsystemType, e.TransportType))
            .ToList();
        var peers = entries.Where(e => e.PortId is 7 or 8).ToList();
        Assert.Equal(
            [(7, "127.0.0.2", "4421", TestTarget.Nqn), (7, "127.0.0.2", "4421", Other), (8, "127.0.0.3", "4422", TestTarget.Nqn)],
            peers.Select(e => ((int)e.PortId, e.Addr, e.Svc, e.Nqn)).OrderBy(x => x.ToString()));
        Assert.All(peers, e => Assert.Equal((DiscoveryLogEntry.SubtypeNvmSubsystem, (byte)TransportType.Tcp), (e.SubsystemType, e.TransportType)));
        Assert.Contains(entries, e => e.PortId == 1 && e.Nqn == TestTarget.Nqn); // this target's own port as before
    }
}
