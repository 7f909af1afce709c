using System.Buffers.Binary;
using System.Net;
using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>Subsystems bound to ports (the kernel target's ports/N/subsystems): Connect on another port gets the
/// answer of an unknown NQN; the discovery log lists, per port, only what is bound there.</summary>
public class PortBindingTests
{
    private static TestQueue QueueOnPort(TestTarget t, ushort portId)
    {
        var q = t.NewQueue();
        q.Queue.PortId = portId;
        return q;
    }

    private static NvmeRequest Connect(TestQueue q, string subNqn)
    {
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, subNqn, TestTarget.HostNqn, TestTarget.HostId);
        return q.Submit(sqe, data);
    }

    [Fact]
    public void Connect_on_a_port_the_subsystem_is_not_bound_to_is_answered_like_an_unknown_nqn()
    {
        using var t = new TestTarget();
        t.Target.AddPort(new Port(2, IPAddress.Parse("192.0.2.11"), 4420) { Transport = FakeTransport.Tcp });
        t.Subsystem.PortIds = new HashSet<ushort> { 1 };
        Assert.True(t.Subsystem.IsReachableOn(1));
        Assert.False(t.Subsystem.IsReachableOn(2));
        Assert.False(t.Subsystem.IsReachableOn(0)); // a transport that does not know its port

        var unknown = Connect(QueueOnPort(t, 2), "nqn.2024-01.io.example:nosuch");
        var wrongPort = Connect(QueueOnPort(t, 2), TestTarget.SubNqn);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, unknown.Status);
        Assert.Equal(unknown.Status, wrongPort.Status);
        Assert.Equal(unknown.Cqe.Dword0, wrongPort.Cqe.Dword0); // IATTR 1, IPO at SUBNQN
        Assert.Equal(ConnectCommand.IattrData | ConnectData.SubNqnOffset, wrongPort.Cqe.Dword0);
        Assert.Empty(t.Subsystem.Controllers);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, Connect(QueueOnPort(t, 0), TestTarget.SubNqn).Status);

        var right = QueueOnPort(t, 1);
        Assert.Equal(NvmeStatus.Success, Connect(right, TestTarget.SubNqn).Status);
        Assert.Equal((ushort)1, right.Controller!.PortId);
        // The discovery subsystem is on every port.
        Assert.Equal(NvmeStatus.Success, Connect(QueueOnPort(t, 2), WellKnown.DiscoveryNqn).Status);
        // Open to every port again: port 2 (and an unknown port) connect.
        t.Subsystem.PortIds = null;
        Assert.Equal(NvmeStatus.Success, Connect(QueueOnPort(t, 2), TestTarget.SubNqn).Status);
        Assert.Equal(NvmeStatus.Success, Connect(QueueOnPort(t, 0), TestTarget.SubNqn).Status);
    }

    [Fact]
    public void Io_queue_connect_is_checked_against_its_own_port()
    {
        using var t = new TestTarget();
        t.Subsystem.PortIds = new HashSet<ushort> { 1 };
        var admin = QueueOnPort(t, 1);
        Assert.Equal(NvmeStatus.Success, Connect(admin, TestTarget.SubNqn).Status);
        admin.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        var io = QueueOnPort(t, 2);
        var (sqe, data) = Cmd.Connect(1, 127, 0, admin.Controller!.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, io.Submit(sqe, data).Status);
        Assert.Equal(0, admin.Controller.IoQueueCount);
    }

    [Fact]
    public void Unbinding_a_port_destroys_the_controllers_that_came_in_on_it()
    {
        using var t = new TestTarget();
        var on1 = QueueOnPort(t, 1);
        var on2 = QueueOnPort(t, 2);
        Assert.Equal(NvmeStatus.Success, Connect(on1, TestTarget.SubNqn).Status);
        Assert.Equal(NvmeStatus.Success, Connect(on2, TestTarget.SubNqn).Status);
        t.Subsystem.PortIds = new HashSet<ushort> { 1 };
        Assert.False(on1.Controller!.IsDestroyed);
        Assert.True(on2.Controller!.IsDestroyed);
        Assert.Contains(on2.Transport.Terminations, r => r.Contains("port 2", StringComparison.Ordinal));
        Assert.Empty(on1.Transport.Terminations);
    }

    [Fact]
    public void Discovery_log_lists_per_port_only_the_subsystems_bound_to_it()
    {
        using var t = new TestTarget(); // port 1 at 192.0.2.10, subsystem sub1 on every port
        t.Target.AddPort(new Port(2, IPAddress.Parse("192.0.2.11"), 4421) { Transport = FakeTransport.Tcp });
        var onlyOn2 = new Subsystem("nqn.2024-01.io.example:only2", allowAnyHost: true, portIds: [2]);
        t.Target.AddSubsystem(onlyOn2);
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        ulong genBefore = U64(d.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan, 0);

        var entries = Entries(d);
        Assert.Equal(
            [(1, WellKnown.DiscoveryNqn), (1, TestTarget.SubNqn), (2, WellKnown.DiscoveryNqn), (2, "nqn.2024-01.io.example:only2"), (2, TestTarget.SubNqn)],
            entries);

        // Moving sub1 to port 2 only: it leaves port 1's entries, and the generation counter moves.
        t.Subsystem.PortIds = new HashSet<ushort> { 2 };
        Assert.Equal(
            [(1, WellKnown.DiscoveryNqn), (2, WellKnown.DiscoveryNqn), (2, "nqn.2024-01.io.example:only2"), (2, TestTarget.SubNqn)],
            Entries(d));
        Assert.True(U64(d.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan, 0) > genBefore);
    }

    private static List<(int Port, string Nqn)> Entries(TestQueue d)
    {
        var header = d.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan;
        int n = (int)U64(header, 8);
        var page = d.Ok(Cmd.GetLogPage(LogPageId.Discovery, (uint)(1024 + n * 1024), nsid: 0)).DataSpan.ToArray();
        return [.. Enumerable.Range(0, n).Select(i => page.AsSpan(1024 + i * 1024, 1024).ToArray())
            .Select(e => ((int)BinaryPrimitives.ReadUInt16LittleEndian(e.AsSpan(4)), SpecText.ReadNulTerminated(e.AsSpan(256, 256))))];
    }

    private static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);
}
