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

    // ---- the core tells the transport ----

    [Fact]
    public void A_successful_connect_installs_the_queue_before_its_response_and_a_failed_one_does_not()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin(); // FakeTransport checks the order: install first, then the response
        Assert.Equal([((ushort)0, 32, false)], admin.Transport.Installs);

        var io = t.ConnectIo(admin.Controller!.Cntlid, qid: 2, sqsize: 63, cattr: ConnectCommand.CattrDisableSqFlowControl);
        Assert.Equal([((ushort)2, 64, true)], io.Transport.Installs);

        var refused = t.NewQueue();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, "nqn.2024-01.io.example:nosuch", TestTarget.HostNqn, TestTarget.HostId);
        refused.Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Empty(refused.Transport.Installs);
        // A second Connect on an installed queue fails in Prepare and installs nothing more.
        admin.Expect(NvmeStatus.CommandSequenceError, Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId).Sqe,
            Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId).Data);
        Assert.Single(admin.Transport.Installs);
    }

    [Fact]
    public void Only_the_disconnect_response_asks_to_close_after_it_and_a_reused_request_forgets_it()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        var read = io.Ok(Cmd.Read(1, 0, 8));
        Assert.False(read.CloseAfterResponse);
        var disconnect = io.Ok(Cmd.Disconnect());
        Assert.True(disconnect.CloseAfterResponse);
        Assert.Same(disconnect, io.Transport.Responses[^1]); // set before the response reached the transport
        Assert.Empty(io.Transport.Terminations); // the core does not close: the transport does, once the response is out
        disconnect.Reset();
        Assert.False(disconnect.CloseAfterResponse);
    }

    [Fact]
    public void A_parked_async_event_request_is_known_as_parked_until_an_event_completes_it()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices));
        var keepAlive = q.Ok(Cmd.KeepAlive());
        Assert.False(keepAlive.IsParked);
        var aer = q.Submit(Cmd.AsyncEventRequest());
        Assert.True(aer.IsParked);
        Assert.DoesNotContain(aer, q.Transport.Responses);

        t.Subsystem.AttachNamespace(new Namespace(2, new Storage.MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)));
        Assert.Contains(aer, q.Transport.Responses);
        Assert.False(aer.IsParked);

        // An event that waited for an AER answers the next one at once: never parked.
        q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)); // unmasks the notice
        t.Subsystem.DetachNamespace(2);                             // no AER waiting: the event waits
        var immediate = q.Ok(Cmd.AsyncEventRequest());
        Assert.False(immediate.IsParked);
        var second = q.Submit(Cmd.AsyncEventRequest());
        Assert.True(second.IsParked);
        // Controller teardown drops parked requests unanswered: they stay parked (nothing will answer them).
        q.Controller!.Destroy("test");
        Assert.True(second.IsParked);
        second.Reset();
        Assert.False(second.IsParked);
    }

    [Fact]
    public void The_admin_queue_holds_its_io_queues_until_the_last_is_gone()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        Assert.False(admin.Queue.HoldsIoQueues);
        var io1 = t.ConnectIo(admin.Controller!.Cntlid, qid: 1);
        var io2 = t.ConnectIo(admin.Controller.Cntlid, qid: 2);
        Assert.True(admin.Queue.HoldsIoQueues);
        Assert.False(io1.Queue.HoldsIoQueues); // only an admin queue holds others
        io1.Queue.Close();
        Assert.True(admin.Queue.HoldsIoQueues);
        io2.Queue.Close();
        Assert.False(admin.Queue.HoldsIoQueues);

        var again = t.ConnectIo(admin.Controller.Cntlid, qid: 1);
        Assert.True(admin.Queue.HoldsIoQueues);
        admin.Controller.Destroy("test"); // a destroyed controller holds nothing
        Assert.False(admin.Queue.HoldsIoQueues);
        _ = again;
    }
}
