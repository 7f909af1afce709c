using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;

namespace Nvme.Core.Tests;

/// <summary>Controllers per host NQN (discovery included) and the Connect rejection counters.</summary>
public class HostLimitTests
{
    private static NvmeRequest Connect(TestTarget t, string subNqn, string hostNqn = TestTarget.HostNqn, ushort sqsize = 31, ushort portId = 0)
    {
        var q = t.NewQueue();
        q.Queue.PortId = portId;
        var (sqe, data) = Cmd.Connect(0, sqsize, 0, 0xFFFF, subNqn, hostNqn, TestTarget.HostId);
        return q.Submit(sqe, data);
    }

    [Fact]
    public void A_host_at_its_controller_limit_gets_controller_busy_until_one_goes()
    {
        using var t = new TestTarget(new TargetLimits { MaxControllersPerHost = 2 });
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn); // discovery controllers count too
        var a = t.ConnectAdmin();
        Assert.Equal(2, t.Target.FindHost(TestTarget.HostNqn)!.Controllers);
        Assert.Same(a.Controller!.Host, d.Controller!.Host); // one account per host NQN

        var refused = Connect(t, TestTarget.SubNqn);
        Assert.Equal(NvmeStatus.ConnectControllerBusy, refused.Status);
        Assert.Equal(0, (int)(refused.Status & NvmeStatus.Dnr)); // busy: the host may retry later
        Assert.Equal(NvmeStatus.ConnectControllerBusy, Connect(t, WellKnown.DiscoveryNqn).Status);
        Assert.Equal(2, t.Target.Controllers.Count);
        Assert.Equal(2, t.Target.Metrics.ConnectsRejected(ConnectRejection.ControllerLimit));

        // Another host is not affected.
        var other = t.ConnectAdmin(hostNqn: TestTarget.OtherHostNqn);
        Assert.Equal(1, other.Controller!.Host.Controllers);

        // Once one goes, the host may connect again; once all go, the account is gone.
        d.Queue.Close();
        Assert.Equal(1, t.Target.FindHost(TestTarget.HostNqn)!.Controllers);
        var again = t.ConnectAdmin();
        again.Queue.Close();
        a.Queue.Close();
        Assert.Null(t.Target.FindHost(TestTarget.HostNqn));
        Assert.NotNull(t.Target.FindHost(TestTarget.OtherHostNqn));
    }

    [Fact]
    public void Io_queues_do_not_count_as_controllers()
    {
        using var t = new TestTarget(new TargetLimits { MaxControllersPerHost = 1 });
        var a = t.ConnectAdmin();
        t.ConnectIo(a.Controller!.Cntlid, qid: 1);
        t.ConnectIo(a.Controller.Cntlid, qid: 2);
        Assert.Equal(1, a.Controller.Host.Controllers);
        Assert.Equal(2, a.Controller.IoQueueCount);
    }

    [Fact]
    public void Every_connect_rejection_is_counted_by_reason()
    {
        using var t = new TestTarget(new TargetLimits { MaxControllersPerHost = 1 });
        var closed = new Subsystem("nqn.2024-01.io.example:closed", allowAnyHost: false);
        var onPort1 = new Subsystem("nqn.2024-01.io.example:port1", allowAnyHost: true, portIds: [1]);
        t.Target.AddSubsystem(closed);
        t.Target.AddSubsystem(onPort1);
        var m = t.Target.Metrics;

        Assert.Equal(NvmeStatus.ConnectInvalidParameters, Connect(t, "nqn.2024-01.io.example:nosuch").Status);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, Connect(t, onPort1.Nqn, portId: 2).Status);
        Assert.Equal(NvmeStatus.ConnectInvalidHost, Connect(t, closed.Nqn).Status);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, Connect(t, TestTarget.SubNqn, sqsize: 0).Status);
        Assert.Equal(NvmeStatus.Success, Connect(t, TestTarget.SubNqn).Status);
        Assert.Equal(NvmeStatus.ConnectControllerBusy, Connect(t, TestTarget.SubNqn).Status);

        Assert.Equal(1, m.ConnectsRejected(ConnectRejection.UnknownSubsystem));
        Assert.Equal(1, m.ConnectsRejected(ConnectRejection.Port));
        Assert.Equal(1, m.ConnectsRejected(ConnectRejection.HostNotAllowed));
        Assert.Equal(1, m.ConnectsRejected(ConnectRejection.Invalid));
        Assert.Equal(1, m.ConnectsRejected(ConnectRejection.ControllerLimit));
    }
}
