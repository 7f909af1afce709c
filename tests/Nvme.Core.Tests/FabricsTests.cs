using Nvme.Core.Model;
using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>Connect, Property Get/Set, Disconnect, and the queue state machine around them.</summary>
public class FabricsTests
{
    [Fact]
    public void Admin_connect_allocates_distinct_cntlids()
    {
        using var t = new TestTarget();
        var a = t.ConnectAdmin(enable: false);
        var b = t.ConnectAdmin(enable: false);
        var c = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn, enable: false);
        ushort ca = a.Controller!.Cntlid, cb = b.Controller!.Cntlid;
        Assert.NotEqual(ca, cb);
        Assert.InRange(ca, (ushort)1, (ushort)0xFFEF);
        Assert.InRange(cb, (ushort)1, (ushort)0xFFEF);
        Assert.Equal(ca, (ushort)a.Transport.Responses[0].Cqe.Dword0);
        Assert.Equal(cb, (ushort)b.Transport.Responses[0].Cqe.Dword0);
        Assert.True(c.Controller!.IsDiscovery);
        Assert.Equal(2, t.Subsystem.Controllers.Count);
        Assert.Equal(3, t.Target.Controllers.Count);
        Assert.Equal(TestTarget.HostNqn, a.Controller.HostNqn);
        Assert.Equal(TestTarget.HostId, a.Controller.HostId);

        // Closing the admin queue destroys the controller and frees its CNTLID; the next one gets a new id.
        a.Queue.Close();
        Assert.True(a.Controller.IsDestroyed);
        Assert.Single(t.Subsystem.Controllers);
        var d = t.ConnectAdmin(enable: false);
        Assert.NotEqual(cb, d.Controller!.Cntlid);
    }

    [Fact]
    public void Connect_response_carries_cntlid_sqid_and_sq_head()
    {
        using var t = new TestTarget();
        var q = t.NewQueue();
        var (sqe, data) = Cmd.Connect(0, 31, 5000, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        var r = q.Ok(sqe, data);
        Assert.Equal(q.Controller!.Cntlid, (ushort)r.Cqe.Dword0);
        Assert.Equal(0, r.Cqe.SqId);
        Assert.Equal(32, q.Queue.QueueSize);
        Assert.Equal(5000u, q.Controller.KeepAliveTimeoutMs);
        // The Connect consumed SQ entry 0, so its completion reports SQHD 1, the next command 2 (as SPDK and the
        // Linux target do; see frames 51/53/55 of shared/captures/linux61-host_spdk-target.pcap).
        Assert.Equal(1, r.Cqe.SqHead);
        var g = q.Ok(Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true));
        Assert.Equal(2, g.Cqe.SqHead);
        // SQHD wraps at the queue size.
        ushort last = 0;
        for (int i = 0; i < 31; i++) last = q.Ok(Cmd.PropertyGet(PropertyOffset.Vs)).Cqe.SqHead;
        Assert.Equal(1, last);
    }

    [Fact]
    public void Io_queue_connect_binds_to_the_controller()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        var ctrl = admin.Controller!;
        var io1 = t.ConnectIo(ctrl.Cntlid, qid: 1, sqsize: 127);
        var io2 = t.ConnectIo(ctrl.Cntlid, qid: 2, sqsize: 15, cattr: ConnectCommand.CattrDisableSqFlowControl);
        Assert.Same(ctrl, io1.Controller);
        Assert.Same(ctrl, io2.Controller);
        Assert.Equal(128, io1.Queue.QueueSize);
        Assert.Equal(16, io2.Queue.QueueSize);
        Assert.False(io1.Queue.SqFlowControlDisabled);
        Assert.True(io2.Queue.SqFlowControlDisabled);
        Assert.Equal(ctrl.Cntlid, (ushort)io1.Transport.Responses[0].Cqe.Dword0);
        Assert.Equal(2, io2.Transport.Responses[0].Cqe.SqId);
        Assert.Equal(2, ctrl.IoQueueCount);

        // The same QID again on another connection: Command Sequence Error.
        var dup = t.NewQueue();
        var (sqe, data) = Cmd.Connect(1, 15, 0, ctrl.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        dup.Expect(NvmeStatus.CommandSequenceError, sqe, data);
        Assert.False(dup.Queue.IsConnected);

        // Closing the admin queue destroys the controller and terminates its I/O queues.
        admin.Queue.Close();
        Assert.NotEmpty(io1.Transport.Terminations);
        Assert.NotEmpty(io2.Transport.Terminations);
        Assert.Empty(t.Target.Controllers);
    }

    [Fact]
    public void Io_queue_connect_rejections()
    {
        using var t = new TestTarget();
        var notReady = t.ConnectAdmin(enable: false);
        var q = t.NewQueue();
        var (sqe, data) = Cmd.Connect(1, 15, 0, notReady.Controller!.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        q.Expect(NvmeStatus.CommandSequenceError, sqe, data); // CC.EN not set yet

        var admin = t.ConnectAdmin();
        ushort cntlid = admin.Controller!.Cntlid;
        // Unknown CNTLID: Connect Invalid Parameters pointing at CNTLID in the data.
        (sqe, data) = Cmd.Connect(1, 15, 0, 0x0777, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        var r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal(0x10010u, r.Cqe.Dword0);
        // Another host may not attach to this controller.
        t.Subsystem.AllowHost(TestTarget.OtherHostNqn);
        (sqe, data) = Cmd.Connect(1, 15, 0, cntlid, TestTarget.SubNqn, TestTarget.OtherHostNqn, TestTarget.HostId);
        r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal(0x10200u, r.Cqe.Dword0);
        // QID above the granted number of I/O queues.
        admin.Ok(Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x00010001)); // 2 queues
        (sqe, data) = Cmd.Connect(3, 15, 0, cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal((uint)ConnectCommand.QidOffset, r.Cqe.Dword0);
        Assert.Equal(0, admin.Controller.IoQueueCount);
    }

    [Fact]
    public void Connect_to_unknown_subsystem_is_invalid_parameters_at_subnqn()
    {
        using var t = new TestTarget();
        var q = t.NewQueue();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, "nqn.2024-01.io.example:nosuch", TestTarget.HostNqn, TestTarget.HostId);
        var r = q.Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal(0x4182, (int)r.Status);
        Assert.Equal(0x10100u, r.Cqe.Dword0);
        Assert.False(q.Queue.IsConnected);
        Assert.Empty(t.Target.Controllers);
    }

    [Fact]
    public void Connect_from_a_host_not_allowed_is_invalid_host()
    {
        using var t = new TestTarget(allowAnyHost: false);
        var q = t.NewQueue();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.OtherHostNqn, TestTarget.HostId);
        var r = q.Expect(NvmeStatus.ConnectInvalidHost, sqe, data);
        Assert.Equal(0x4184, (int)r.Status);
        Assert.Equal(0x10200u, r.Cqe.Dword0);
        Assert.Empty(t.Target.Controllers);
        // The allowed host gets in.
        t.ConnectAdmin(enable: false);
        Assert.Single(t.Target.Controllers);
    }

    [Fact]
    public void Connect_with_malformed_host_nqn_is_rejected()
    {
        using var t = new TestTarget();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, "not-an-nqn", TestTarget.HostId);
        var r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal(0x10200u, r.Cqe.Dword0);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(128)]   // MQES is 127
    [InlineData(0xFFFF)]
    public void Connect_with_bad_sqsize_is_invalid_parameters_at_sqsize(int sqsize)
    {
        using var t = new TestTarget();
        var (sqe, data) = Cmd.Connect(0, (ushort)sqsize, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        var r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal(44u, r.Cqe.Dword0); // IPO = SQSIZE, in the SQE (IATTR 0)
        Assert.Empty(t.Target.Controllers);
    }

    [Fact]
    public void Connect_with_sqsize_equal_to_mqes_is_accepted()
    {
        using var t = new TestTarget(new TargetLimits { MaxQueueEntries = 63 });
        var (sqe, data) = Cmd.Connect(0, 63, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        t.NewQueue().Ok(sqe, data);
        (sqe, data) = Cmd.Connect(0, 64, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
    }

    [Fact]
    public void Connect_with_nonzero_recfmt_is_incompatible_format()
    {
        using var t = new TestTarget();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        sqe.Cdw10 |= 1;
        t.NewQueue().Expect(NvmeStatus.ConnectIncompatibleFormat, sqe, data);
        Assert.Empty(t.Target.Controllers);
    }

    [Fact]
    public void Connect_without_1024_bytes_of_data_is_sgl_length_invalid()
    {
        using var t = new TestTarget();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        sqe.Sgl.Length = 512;
        t.NewQueue().Expect(NvmeStatus.DataSglLengthInvalid, sqe, data.AsSpan(0, 512));
    }

    [Fact]
    public void Second_connect_on_a_queue_is_command_sequence_error()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        var first = q.Controller!;
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        q.Expect(NvmeStatus.CommandSequenceError, sqe, data);
        Assert.Same(first, q.Controller);
        Assert.Single(t.Target.Controllers);
    }

    [Theory]
    [InlineData(AdminOpcode.Identify)]
    [InlineData(AdminOpcode.KeepAlive)]
    [InlineData(IoOpcode.Read)]
    public void Commands_before_connect_are_command_sequence_errors(byte opcode)
    {
        using var t = new TestTarget();
        var q = t.NewQueue();
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.Raw(opcode, 1));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.Disconnect());
        Assert.Empty(t.Target.Controllers);
    }

    [Fact]
    public void Property_get_cap_and_vs()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        var cap = q.Ok(Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true)).Cqe.Result;
        Assert.Equal(127ul, cap & 0xFFFF);            // MQES
        Assert.Equal(1ul, (cap >> 16) & 1);           // CQR
        Assert.NotEqual(0ul, (cap >> 24) & 0xFF);     // TO
        Assert.Equal(1ul, (cap >> 37) & 0xFF);        // CSS: NVM command set only
        Assert.Equal(0ul, (cap >> 48) & 0xF);         // MPSMIN 4 KiB
        Assert.Equal(0x10300ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Vs)).Cqe.Result);
        // CAP is an 8-byte property, the others 4-byte.
        q.Expect(NvmeStatus.InvalidField, Cmd.PropertyGet(PropertyOffset.Vs, eightBytes: true));
        q.Expect(NvmeStatus.InvalidField, Cmd.PropertyGet(0x40));
        q.Expect(NvmeStatus.InvalidField, Cmd.PropertySet(PropertyOffset.Csts, 1));
    }

    [Fact]
    public void Cap_mqes_follows_the_limits()
    {
        using var t = new TestTarget(new TargetLimits { MaxQueueEntries = 31 });
        var q = t.ConnectAdmin(enable: false);
        Assert.Equal(31ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true)).Cqe.Result & 0xFFFF);
    }

    [Fact]
    public void Cc_enable_sets_csts_rdy_and_disable_clears_it()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        Assert.Equal(0ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        Assert.Equal((ulong)Cmd.CcEnable, q.Ok(Cmd.PropertyGet(PropertyOffset.Cc)).Cqe.Result);
        Assert.Equal(1ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result); // RDY, no CFS, SHST 0
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable & ~1u));
        Assert.Equal(0ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result & 1);
    }

    [Theory]
    [InlineData(0x00450001u)] // IOSQES 5
    [InlineData(0x00560001u)] // IOCQES 5
    [InlineData(0x00460081u)] // MPS 1 (8 KiB)
    [InlineData(0x00460011u)] // CSS 1
    public void Cc_enable_with_bad_fields_sets_csts_cfs(uint cc)
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, cc));
        var csts = q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result;
        Assert.Equal(2ul, csts & 2);  // CFS
        Assert.Equal(0ul, csts & 1);  // not ready
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.Identify(IdentifyCns.Controller));
    }

    [Fact]
    public void Good_enable_after_reset_clears_csts_cfs()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, 0x00450001)); // bad IOSQES
        Assert.Equal(2ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result & 3);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, 0));           // controller reset
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        Assert.Equal(1ul, q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result); // RDY only, no CFS
        q.Ok(Cmd.Identify(IdentifyCns.Controller));
    }

    [Fact]
    public void Cc_shutdown_reports_shst_complete()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable | (1u << 14))); // SHN = 01b normal shutdown
        var csts = q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result;
        Assert.Equal(2ul, (csts >> 2) & 3); // SHST = 10b shutdown processing complete
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable & ~1u)); // SHN cleared, disabled
        Assert.Equal(0ul, (q.Ok(Cmd.PropertyGet(PropertyOffset.Csts)).Cqe.Result >> 2) & 3);
    }

    [Fact]
    public void Admin_commands_before_cc_en_are_command_sequence_errors()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(enable: false);
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.Identify(IdentifyCns.Controller));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.GetLogPage(LogPageId.SmartHealth, 512));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.SetFeatures(FeatureId.NumberOfQueues, 0));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.KeepAlive());
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.AsyncEventRequest());
        // Fabrics commands still work.
        q.Ok(Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true));
    }

    [Fact]
    public void Property_commands_on_an_io_queue_are_invalid_opcode()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        io.Expect(NvmeStatus.InvalidOpcode, Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true));
        io.Expect(NvmeStatus.InvalidOpcode, Cmd.PropertySet(PropertyOffset.Cc, 0));
        Assert.True(admin.Controller.IsReady);
    }

    [Fact]
    public void Disconnect_on_io_queue_is_accepted_and_on_admin_queue_rejected()
    {
        using var t = new TestTarget();
        var admin = t.ConnectAdmin();
        var io = t.ConnectIo(admin.Controller!.Cntlid);
        Assert.False(admin.Expect(NvmeStatus.InvalidField, Cmd.Disconnect()).CloseAfterResponse);
        Assert.True(io.Ok(Cmd.Disconnect()).CloseAfterResponse);
        io.Queue.Close();
        Assert.Equal(0, admin.Controller.IoQueueCount);
        Assert.False(admin.Controller.IsDestroyed);
    }

    [Fact]
    public void Discovery_controller_rejects_io_queue_connect()
    {
        using var t = new TestTarget();
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        var (sqe, data) = Cmd.Connect(1, 15, 0, d.Controller!.Cntlid, WellKnown.DiscoveryNqn, TestTarget.HostNqn, TestTarget.HostId);
        var r = t.NewQueue().Expect(NvmeStatus.ConnectInvalidParameters, sqe, data);
        Assert.Equal((uint)ConnectCommand.QidOffset, r.Cqe.Dword0);
    }

    [Fact]
    public void Connect_with_an_empty_host_nqn_is_let_in_only_where_any_host_may_connect()
    {
        // SPDK's initiator sends an empty Host NQN when its transport ID names none.
        using (var open = new TestTarget(allowAnyHost: true))
        {
            var q = open.NewQueue();
            var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, "", TestTarget.HostId);
            q.Ok(sqe, data);
            Assert.Equal("", q.Controller!.HostNqn);
            q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
            q.Ok(Cmd.SetFeatures(FeatureId.NumberOfQueues, 0));
            var io = open.NewQueue();
            var (ioSqe, ioData) = Cmd.Connect(1, 127, 0, q.Controller.Cntlid, TestTarget.SubNqn, "", TestTarget.HostId);
            io.Ok(ioSqe, ioData);
            // The discovery subsystem lets it in too, and lists only what admits any host.
            var d = open.NewQueue();
            var (dSqe, dData) = Cmd.Connect(0, 31, 0, 0xFFFF, WellKnown.DiscoveryNqn, "", TestTarget.HostId);
            d.Ok(dSqe, dData);
        }
        using var closed = new TestTarget(allowAnyHost: false);
        var refused = closed.NewQueue();
        var (s2, d2) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, "", TestTarget.HostId);
        refused.Expect(NvmeStatus.ConnectInvalidHost, s2, d2);
        Assert.Empty(closed.Target.Controllers);
    }

    [Fact]
    public void Hosts_without_an_nqn_are_counted_apart_by_their_host_id()
    {
        using var t = new TestTarget(new TargetLimits { MaxControllersPerHost = 1 });
        Controller Connect(Guid hostId, NvmeStatus expected)
        {
            var q = t.NewQueue();
            var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, "", hostId);
            q.Expect(expected, sqe, data);
            return q.Controller!;
        }
        Connect(Guid.NewGuid(), NvmeStatus.Success);
        Connect(Guid.NewGuid(), NvmeStatus.Success);           // another nameless host: its own limit
        var id = Guid.NewGuid();
        Connect(id, NvmeStatus.Success);
        Connect(id, NvmeStatus.ConnectControllerBusy);          // the same one again: its limit of 1
    }
}
