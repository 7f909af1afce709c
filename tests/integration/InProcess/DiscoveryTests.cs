using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class DiscoveryTests(ITestOutputHelper output)
{
    private const string Second = "nqn.2026-01.io.nvmetcptarget.test:sub2";
    private const string Hidden = "nqn.2026-01.io.nvmetcptarget.test:other-host-only";

    [Fact]
    public async Task DiscoveryLog_HeaderFullAndPaged()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Ports.Add(new PortConfig { Id = 2, Address = "127.0.0.1", Port = 0, AdvertisedAddress = "192.0.2.10" });
            c.Subsystems.Add(new SubsystemConfig { Nqn = Second, AllowAnyHost = true, Namespaces = [new NamespaceConfig { Nsid = 1, Size = "1M" }] });
            c.Subsystems.Add(new SubsystemConfig { Nqn = Hidden, AllowedHosts = ["nqn.2026-01.io.example:someone-else"] });
        });
        await using var host = await target.ConnectAsync(nqn: WellKnown.DiscoveryNqn);

        var id = host.IdentifyController;
        Assert.Equal(2, id.CntrlType); // discovery controller
        Assert.Equal(WellKnown.DiscoveryNqn, SpecText.ReadNulTerminated(id.SubNqn));
        Assert.NotEqual(0, id.Kas);
        Assert.Equal(0u, id.Nn);

        // Header first, as nvme-cli does, then the whole log.
        var headerBytes = await host.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogHeader.Size, nsid: 0);
        var header = MemoryMarshal.Read<DiscoveryLogHeader>(headerBytes);
        Assert.NotEqual(0ul, header.GenerationCounter);
        Assert.Equal(0, header.RecordFormat);
        // Two ports x (discovery subsystem + the two subsystems this host may use); the third is not listed.
        Assert.Equal(6ul, header.NumberOfRecords);
        int total = DiscoveryLogHeader.Size + (int)header.NumberOfRecords * DiscoveryLogEntry.Size;
        var full = await host.GetLogPageAsync(LogPageId.Discovery, total, nsid: 0);
        Assert.Equal(headerBytes, full.AsSpan(0, DiscoveryLogHeader.Size).ToArray());

        var ports = target.Host.Endpoints;
        var expected = new List<(int Port, string Nqn, byte SubType, string Addr)>();
        for (int p = 0; p < 2; p++)
        {
            string addr = p == 0 ? "127.0.0.1" : "192.0.2.10";
            expected.Add((ports[p].Port, WellKnown.DiscoveryNqn, DiscoveryLogEntry.SubtypeCurrentDiscovery, addr));
            expected.Add((ports[p].Port, TestTarget.Nqn, DiscoveryLogEntry.SubtypeNvmSubsystem, addr));
            expected.Add((ports[p].Port, Second, DiscoveryLogEntry.SubtypeNvmSubsystem, addr));
        }
        var entries = new List<(int Port, string Nqn, byte SubType, string Addr)>();
        for (int i = 0; i < (int)header.NumberOfRecords; i++)
        {
            var e = MemoryMarshal.Read<DiscoveryLogEntry>(full.AsSpan(DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size));
            Assert.Equal((byte)TransportType.Tcp, e.TransportType);
            Assert.Equal(DiscoveryLogEntry.AddressFamilyIpv4, e.AddressFamily);
            Assert.Equal(0xFFFF, e.ControllerId);
            Assert.NotEqual(0, e.AdminMaxSqSize);
            Assert.Equal(0, e.TransportSpecificAddressSubtype[0]); // SECTYPE none
            entries.Add((int.Parse(SpecText.ReadNulTerminated(e.TransportServiceId), System.Globalization.CultureInfo.InvariantCulture),
                SpecText.ReadNulTerminated(e.SubNqn), e.SubsystemType, SpecText.ReadNulTerminated(e.TransportAddress)));
        }
        Assert.Equal(expected.OrderBy(x => x.ToString()), entries.OrderBy(x => x.ToString()));

        // Paging by offset: each entry alone, and a window that straddles the header and an entry.
        for (int i = 0; i < (int)header.NumberOfRecords; i++)
        {
            int offset = DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size;
            var page = await host.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogEntry.Size, (ulong)offset, nsid: 0);
            Assert.True(full.AsSpan(offset, DiscoveryLogEntry.Size).SequenceEqual(page), $"entry {i} read by offset differs");
        }
        var window = await host.GetLogPageAsync(LogPageId.Discovery, 2048, 512, nsid: 0);
        Assert.True(full.AsSpan(512, 2048).SequenceEqual(window));

        // The generation counter is stable while nothing changes.
        var again = MemoryMarshal.Read<DiscoveryLogHeader>(await host.GetLogPageAsync(LogPageId.Discovery, DiscoveryLogHeader.Size, nsid: 0));
        Assert.Equal(header.GenerationCounter, again.GenerationCounter);

        // A discovery controller has no I/O queues and no other log pages.
        Assert.Equal(0x4109, (await host.Admin.SubmitAsync(Sqe.GetLogPage(LogPageId.SmartHealth, 512), controllerData: new byte[512])).Status);
        var q = await HostQueue.OpenAsync(host.Endpoint);
        await using (q)
        {
            var c = await q.ConnectAsync(WellKnown.DiscoveryNqn, host.Options.HostNqn, host.Options.HostId, 1, 31, host.Cntlid, 0);
            Assert.Equal(0x4182, c.Status);
        }
    }
}
