using System.Net;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>The seam between the core and a transport (the kernel's nvmet_fabrics_ops): the core reports what the
/// transport describes itself as, and never a transport of its own choosing.</summary>
public class TransportSeamTests
{
    /// <summary>Not TCP: every value differs from what the TCP transport would say.</summary>
    private static readonly TransportDescriptor Rdma = new() { Type = TransportType.Rdma, Requirements = 0, InCapsuleDataSize = 16384 };

    [Fact]
    public void Discovery_log_entries_carry_the_type_and_treq_of_each_ports_transport()
    {
        using var t = new TestTarget();
        t.Target.AddPort(new Port(2, IPAddress.Parse("192.0.2.11"), 4420) { Transport = Rdma });
        var q = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        var page = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 5 * 1024, nsid: 0)).DataSpan;
        var header = MemoryMarshal.Read<DiscoveryLogHeader>(page);
        Assert.Equal(4ul, header.NumberOfRecords); // per port: the discovery subsystem and the NVM subsystem
        for (int i = 0; i < 4; i++)
        {
            var e = MemoryMarshal.Read<DiscoveryLogEntry>(page[(DiscoveryLogHeader.Size + i * DiscoveryLogEntry.Size)..]);
            var expected = e.PortId == 2 ? Rdma : FakeTransport.Tcp;
            Assert.Equal((byte)expected.Type, e.TransportType);
            Assert.Equal(expected.Requirements, e.TransportRequirements);
        }
    }

    [Fact]
    public void Error_log_entries_carry_the_type_of_the_controllers_transport()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(transport: Rdma);
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(0x55, nsid: 1));
        var e = MemoryMarshal.Read<ErrorLogEntry>(q.Ok(Cmd.GetLogPage(LogPageId.Error, 64)).DataSpan);
        Assert.Equal(1ul, e.ErrorCount);
        Assert.Equal((byte)TransportType.Rdma, e.TransportType);
    }

    [Fact]
    public void Identify_controller_reports_the_transports_in_capsule_data_size_as_ioccsz()
    {
        using var t = new TestTarget();
        var rdma = t.ConnectAdmin(transport: Rdma);
        var tcp = t.ConnectAdmin();
        uint Ioccsz(TestQueue q) => MemoryMarshal.Read<IdentifyController>(q.Ok(Cmd.Identify(1)).DataSpan).Ioccsz;
        Assert.Equal((16384u + 64) / 16, Ioccsz(rdma));
        Assert.Equal((8192u + 64) / 16, Ioccsz(tcp));
    }
}
