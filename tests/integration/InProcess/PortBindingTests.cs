using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>A subsystem bound to port 1 of a target listening on two ports: a host on port 2 is refused as if the
/// NQN were unknown and does not see it in port 2's discovery entries; on port 1 it connects and does I/O.</summary>
public sealed class PortBindingTests(ITestOutputHelper output)
{
    private const string Open = "nqn.2026-01.io.nvmetcptarget.test:everywhere";

    [Fact]
    public async Task SubsystemBoundToPort1_RefusedOnPort2_ListedOnlyUnderPort1()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Subsystems[0].AllowAnyHost = true;
            c.Ports.Add(new PortConfig { Id = 2, Address = "127.0.0.1", Port = 0 });
            c.Subsystems.Add(new SubsystemConfig { Nqn = Open, AllowAnyHost = true, Namespaces = [new NamespaceConfig { Nsid = 1, Size = "1M" }] });
        });
        target.Host.Target.FindSubsystem(TestTarget.Nqn)!.PortIds = new HashSet<ushort> { 1 };
        var port1 = target.Host.Endpoints[0];
        var port2 = target.Host.Endpoints[1];

        await using (var q = await HostQueue.OpenAsync(port2))
        {
            var c = await q.ConnectAsync(TestTarget.Nqn, "nqn.2026-01.io.example:h", Guid.NewGuid(), 0, 31, 0xFFFF, 5000);
            Assert.Equal(0x4182, c.Status);      // Connect Invalid Parameters, DNR
            Assert.Equal(0x10100u, c.Dword0);    // IATTR 1, IPO 256: SUBNQN, exactly as for an unknown NQN
        }
        Assert.Empty(target.Host.Target.Controllers);

        await using (var onPort2 = await NvmeTcpHost.ConnectAsync(port2, Open))
            (await onPort2.KeepAliveAsync()).EnsureSuccess();
        await using (var host = await NvmeTcpHost.ConnectAsync(port1, TestTarget.Nqn))
        {
            await host.CreateIoQueuesAsync(1);
            var data = TestData.Random(4096, 5);
            (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();
        }

        await using var discovery = await NvmeTcpHost.ConnectAsync(port2, WellKnown.DiscoveryNqn);
        var header = MemoryMarshal.Read<DiscoveryLogHeader>(await discovery.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogHeader.Size, nsid: 0));
        int total = DiscoveryLogHeader.Size + (int)header.NumberOfRecords * DiscoveryLogEntry.Size;
        var full = await discovery.GetLogPageAsync(LogPageId.Discovery, total, nsid: 0);
        var entries = Enumerable.Range(0, (int)header.NumberOfRecords)
            .Select(i => MemoryMarshal.Read<DiscoveryLogEntry>(full.AsSpan(DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size)))
            .Select(e => ((int)e.PortId, SpecText.ReadNulTerminated(e.SubNqn)))
            .ToList();
        Assert.Equal([(1, WellKnown.DiscoveryNqn), (1, Open), (1, TestTarget.Nqn), (2, WellKnown.DiscoveryNqn), (2, Open)], entries);
    }
}
