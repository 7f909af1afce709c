using Nvme.Core.Auth;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Telemetry;

namespace Nvme.Core.Tests.Auth;

/// <summary>DH-HMAC-CHAP through Authentication Send/Receive on the core's queues (no sockets): the host side is
/// <see cref="DhchapHost"/>, the controller side the target's state machine.</summary>
public class AuthProtocolTests
{
    private static readonly DhchapSecret HostKey = DhchapSecret.Generate(32, 1);
    private static readonly DhchapSecret CtrlKey = DhchapSecret.Generate(48, 2);

    internal static SubmissionQueueEntry Send(int length, uint? tl = null, uint cdw10 = 0)
    {
        var s = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.AuthenticationSend, Flags = 0x40 };
        s.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        s.Sgl.Length = (uint)length;
        s.Cdw10 = cdw10 == 0 ? DhchapMessages.Cdw10 : cdw10;
        s.Cdw11 = tl ?? (uint)length;
        return s;
    }

    internal static SubmissionQueueEntry Receive(int al = 4096)
    {
        var s = new SubmissionQueueEntry { Opcode = AdminOpcode.Fabrics, Nsid = FabricsType.AuthenticationReceive, Flags = 0x40 };
        s.Sgl.Identifier = SglDescriptor.TransportDataBlock;
        s.Sgl.Length = (uint)al;
        s.Cdw10 = DhchapMessages.Cdw10;
        s.Cdw11 = (uint)al;
        return s;
    }

    private static byte[] SendOk(TestQueue q, byte[] m) { q.Ok(Send(m.Length), m); return m; }
    private static byte[] ReceiveOk(TestQueue q, int al = 4096) => q.Ok(Receive(al)).DataSpan.ToArray();

    /// <summary>Runs a whole transaction; returns the last Receive's request (its CloseAfterResponse tells a failure).</summary>
    private static NvmeRequest Authenticate(TestQueue q, DhchapHost h)
    {
        SendOk(q, h.Negotiate());
        var challenge = ReceiveOk(q);
        SendOk(q, h.Reply(challenge));
        var r = q.Ok(Receive());
        try
        {
            var success2 = h.Success1(r.DataSpan);
            if (success2 != null) SendOk(q, success2);
        }
        catch (DhchapException e) when (e.Reason != null) { } // a Failure1: the caller looks at CloseAfterResponse
        return r;
    }

    private static DhchapHost Host(DhchapSecret? hostKey = null, DhchapSecret? ctrlKey = null, string hostNqn = TestTarget.HostNqn) =>
        new(hostNqn, TestTarget.SubNqn, hostKey ?? HostKey, ctrlKey);

    private static TestQueue ConnectAdmin(TestTarget t, string hostNqn = TestTarget.HostNqn)
    {
        var q = t.NewQueue();
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, hostNqn, TestTarget.HostId);
        q.Ok(sqe, data);
        return q;
    }

    [Theory]
    [InlineData(DhchapHash.Sha256, DhGroupId.Null, false)]
    [InlineData(DhchapHash.Sha384, DhGroupId.Ffdhe2048, false)]
    [InlineData(DhchapHash.Sha512, DhGroupId.Ffdhe3072, true)]
    [InlineData(DhchapHash.Sha256, DhGroupId.Ffdhe2048, true)]
    public void Host_authenticates_then_gets_the_admin_queue(DhchapHash hash, DhGroupId group, bool bidirectional)
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey, bidirectional ? CtrlKey : null, hash, group));
        var q = ConnectAdmin(t);
        Assert.NotEqual(0u, q.Transport.Responses[0].Cqe.Dword0 & ConnectCommand.AuthreqAtr);
        Assert.Equal(q.Controller!.Cntlid, (ushort)q.Transport.Responses[0].Cqe.Dword0);
        // Nothing but authentication before it: not CC.EN, not Identify, not Property Get.
        q.Expect(NvmeStatus.AuthenticationRequired, Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        q.Expect(NvmeStatus.AuthenticationRequired, Cmd.PropertyGet(PropertyOffset.Cap, eightBytes: true));
        q.Expect(NvmeStatus.AuthenticationRequired, Cmd.Identify(IdentifyCns.Controller));
        q.Expect(NvmeStatus.AuthenticationRequired, Cmd.KeepAlive());

        var h = Host(ctrlKey: bidirectional ? CtrlKey : null);
        var last = Authenticate(q, h);
        Assert.False(last.CloseAfterResponse);
        Assert.Equal(hash, h.ChosenHash);
        Assert.Equal(group, h.ChosenDhGroup);
        Assert.True(q.Queue.Auth!.Authenticated);
        Assert.Equal(bidirectional, q.Queue.Auth.Bidirectional);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        q.Ok(Cmd.Identify(IdentifyCns.Controller));
        Assert.Equal(1, t.Target.Metrics.AuthenticationsSucceeded);

        // The I/O queue authenticates too (ATR on its Connect), with the controller's secrets.
        var io = t.NewQueue();
        var (sqe, data) = Cmd.Connect(1, 127, 0, q.Controller.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        var c = io.Ok(sqe, data);
        Assert.NotEqual(0u, c.Cqe.Dword0 & ConnectCommand.AuthreqAtr);
        io.Expect(NvmeStatus.AuthenticationRequired, Cmd.Read(1, 0, 1));
        Authenticate(io, Host(ctrlKey: bidirectional ? CtrlKey : null));
        io.Ok(Cmd.Read(1, 0, 1));
        Assert.Equal(2, t.Target.Metrics.AuthenticationsSucceeded);
    }

    [Fact]
    public void A_success2_after_a_unidirectional_success1_is_taken_and_ignored()
    {
        // The first Linux in-band authentication kernels send Success2 whether or not they asked for bidirectional.
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var q = ConnectAdmin(t);
        var h = Host();
        Authenticate(q, h);
        var s2 = new byte[DhchapMessages.HeaderSize];
        DhchapMessages.WriteHeader(s2, DhchapMessages.TypeDhchap, DhchapMessages.Success2, h.TransactionId);
        Assert.False(q.Ok(Send(s2.Length), s2).CloseAfterResponse);
        Assert.True(q.Queue.Auth!.Authenticated);
        Assert.False(q.Queue.Auth.InProgress);
        Assert.Equal(0, t.Target.Metrics.AuthenticationsFailed(AuthFailure.Protocol));
        // A second one is out of turn.
        q.Ok(Send(s2.Length), s2);
        Assert.Equal(DhchapMessages.Failure1, q.Ok(Receive()).DataSpan[1]);
    }

    [Fact]
    public void Wrong_host_secret_gets_failure1_and_the_connection_closes()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var q = ConnectAdmin(t);
        var h = Host(hostKey: DhchapSecret.Generate(32, 1));
        SendOk(q, h.Negotiate());
        SendOk(q, h.Reply(ReceiveOk(q)));
        var r = q.Ok(Receive());
        var e = Assert.Throws<DhchapException>(() => h.Success1(r.DataSpan));
        Assert.Equal(DhchapFailure.Failed, e.Reason);
        Assert.True(r.CloseAfterResponse);
        Assert.False(q.Queue.Auth!.Authenticated);
        Assert.Equal(1, t.Target.Metrics.AuthenticationsFailed(AuthFailure.BadResponse));
        q.Expect(NvmeStatus.AuthenticationRequired, Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        Assert.False(q.Controller!.IsReady);
    }

    [Fact]
    public void Wrong_controller_secret_is_caught_by_the_host_which_sends_failure2()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey, CtrlKey));
        var q = ConnectAdmin(t);
        var h = Host(ctrlKey: DhchapSecret.Generate(48, 2));
        SendOk(q, h.Negotiate());
        SendOk(q, h.Reply(ReceiveOk(q)));
        var e = Assert.Throws<DhchapException>(() => h.Success1(ReceiveOk(q)));
        Assert.NotNull(e.Failure2);
        var f2 = q.Ok(Send(e.Failure2!.Length), e.Failure2);
        Assert.True(f2.CloseAfterResponse);
        Assert.False(q.Queue.Auth!.Authenticated);
        Assert.Equal(1, t.Target.Metrics.AuthenticationsFailed(AuthFailure.HostRejected));
    }

    [Fact]
    public void Bidirectional_request_without_a_controller_secret_fails()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var q = ConnectAdmin(t);
        var h = Host(ctrlKey: CtrlKey);
        SendOk(q, h.Negotiate());
        SendOk(q, h.Reply(ReceiveOk(q)));
        Assert.Throws<DhchapException>(() => h.Success1(ReceiveOk(q)));
        Assert.False(q.Queue.Auth!.Authenticated);
    }

    [Fact]
    public void Io_queue_cannot_connect_to_an_unauthenticated_controller()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var admin = ConnectAdmin(t);
        var io = t.NewQueue();
        var (sqe, data) = Cmd.Connect(1, 127, 0, admin.Controller!.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        io.Expect(NvmeStatus.AuthenticationRequired, sqe, data);
        Assert.Equal(1, t.Target.Metrics.ConnectsRejected(ConnectRejection.AuthenticationRequired));
        Assert.Equal(0, admin.Controller.IoQueueCount);
    }

    [Fact]
    public void Host_with_secrets_authenticates_on_an_open_subsystem_and_hosts_without_do_not()
    {
        using var t = new TestTarget(allowAnyHost: true);
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var withKey = ConnectAdmin(t);
        Assert.NotEqual(0u, withKey.Transport.Responses[0].Cqe.Dword0 & ConnectCommand.AuthreqAtr);
        var other = ConnectAdmin(t, TestTarget.OtherHostNqn);
        Assert.Equal(0u, other.Transport.Responses[0].Cqe.Dword0 & ConnectCommand.AuthreqAtr);
        other.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        // A host without secrets may not start an authentication either.
        other.Expect(NvmeStatus.InvalidField, Send(72), new byte[72]);
        // The discovery controller never asks.
        var disc = t.ConnectAdmin(WellKnown.DiscoveryNqn, enable: true);
        Assert.Equal(0u, disc.Transport.Responses[0].Cqe.Dword0 & ConnectCommand.AuthreqAtr);
    }

    [Fact]
    public void Re_authentication_on_a_live_queue_keeps_it_usable_and_picks_up_a_rotated_secret()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var q = ConnectAdmin(t);
        Authenticate(q, Host());
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        var io = t.NewQueue();
        var (sqe, data) = Cmd.Connect(1, 127, 0, q.Controller!.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        io.Ok(sqe, data);
        Authenticate(io, Host());

        // Rotation: the live controller keeps working; its next I/O queue still authenticates with the old secret.
        var newKey = DhchapSecret.Generate(64, 3);
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(newKey));
        io.Ok(Cmd.Read(1, 0, 1));
        var io2 = t.NewQueue();
        (sqe, data) = Cmd.Connect(2, 127, 0, q.Controller.Cntlid, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        io2.Ok(sqe, data);
        Assert.False(Authenticate(io2, Host()).CloseAfterResponse);

        // A new controller must use the new secret.
        var fresh = ConnectAdmin(t);
        Assert.True(Authenticate(fresh, Host()).CloseAfterResponse);
        var fresh2 = ConnectAdmin(t);
        Assert.False(Authenticate(fresh2, Host(newKey)).CloseAfterResponse);

        // Re-authentication of the old controller's admin queue takes the new secret; mid-exchange it still serves.
        var h = Host(newKey);
        SendOk(q, h.Negotiate());
        q.Ok(Cmd.Identify(IdentifyCns.Controller));
        SendOk(q, h.Reply(ReceiveOk(q)));
        Assert.Null(h.Success1(ReceiveOk(q)));
        Assert.True(q.Queue.Auth!.Authenticated);
        Assert.Equal(2, q.Queue.Auth.Authentications);
        // ...and a re-authentication with the old one now fails and closes the admin queue (the controller with it).
        var r = Authenticate(q, Host());
        Assert.True(r.CloseAfterResponse);
    }

    [Fact]
    public void Abandoned_exchange_and_never_authenticating_queue_are_dropped_after_the_timeout()
    {
        using var t = new TestTarget(new TargetLimits { AuthenticationTimeout = TimeSpan.Zero });
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var started = ConnectAdmin(t);
        var h = Host();
        SendOk(started, h.Negotiate());
        ReceiveOk(started);                       // challenge taken, never answered
        Assert.True(started.Queue.Auth!.InProgress);
        var idle = ConnectAdmin(t);               // connected, never starts
        var authed = ConnectAdmin(t);
        Authenticate(authed, Host());
        WaitForTick();
        t.Target.CheckKeepAlives();
        Assert.False(started.Queue.Auth.InProgress); // state freed
        Assert.Single(started.Transport.Terminations);
        Assert.Single(idle.Transport.Terminations);
        Assert.Empty(authed.Transport.Terminations);
        Assert.Equal(2, t.Target.Metrics.AuthenticationsFailed(AuthFailure.Timeout));
    }

    private static void WaitForTick()
    {
        long start = Environment.TickCount64;
        SpinWait.SpinUntil(() => Environment.TickCount64 > start + 1);
    }

    [Fact]
    public void Unusable_hash_or_group_fails_with_the_reason()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey, Hash: DhchapHash.Sha512, DhGroup: DhGroupId.Ffdhe4096));
        var q = ConnectAdmin(t);
        var h = new DhchapHost(TestTarget.HostNqn, TestTarget.SubNqn, HostKey) { Hashes = [DhchapHash.Sha256] };
        SendOk(q, h.Negotiate());
        var e = Assert.Throws<DhchapException>(() => h.Reply(ReceiveOk(q)));
        Assert.Equal(DhchapFailure.HashUnusable, e.Reason);
        var q2 = ConnectAdmin(t);
        h = new DhchapHost(TestTarget.HostNqn, TestTarget.SubNqn, HostKey) { DhGroups = [DhGroupId.Null, DhGroupId.Ffdhe2048] };
        SendOk(q2, h.Negotiate());
        e = Assert.Throws<DhchapException>(() => h.Reply(ReceiveOk(q2)));
        Assert.Equal(DhchapFailure.DhGroupUnusable, e.Reason);
        Assert.Equal(2, t.Target.Metrics.AuthenticationsFailed(AuthFailure.Unusable));
    }

    [Fact]
    public void Malformed_commands_and_messages_are_refused()
    {
        using var t = new TestTarget();
        t.Subsystem.SetHostAuthentication(TestTarget.HostNqn, new HostAuthentication(HostKey));
        var q = ConnectAdmin(t);
        var neg = Host().Negotiate();
        // Command level: SECP/SPSP, TL 0, TL beyond the bound, TL not the SGL length.
        q.Expect(NvmeStatus.InvalidField, Send(neg.Length, cdw10: 0xEA010100), neg);
        q.Expect(NvmeStatus.InvalidField, Send(neg.Length, cdw10: 0xE9010200), neg);
        q.Expect(NvmeStatus.InvalidField, Send(0, tl: 0));
        q.Expect(NvmeStatus.InvalidField, Send(DhchapMessages.MaxLength + 1), new byte[DhchapMessages.MaxLength + 1]);
        q.Expect(NvmeStatus.DataSglLengthInvalid, Send(neg.Length, tl: (uint)neg.Length + 8), neg);
        Assert.Equal(0, t.Target.Metrics.AuthenticationsFailed(AuthFailure.Protocol));

        // Message level: each turns into Failure1 on the next Receive, and that queue closes.
        foreach (var bad in new Func<byte[]>[]
        {
            () => [0, 0, 0],                                          // too short
            () => { var m = Host().Negotiate(); m[0] = 7; return m; }, // unknown type
            () => { var m = Host().Negotiate(); m[7] = 0; return m; }, // no descriptor
            () => { var m = Host().Negotiate(); m[8 + 2] = 31; return m; }, // HALEN > 30
            () => { var m = new byte[16]; DhchapMessages.WriteHeader(m, DhchapMessages.TypeDhchap, DhchapMessages.Reply, 1); return m; }, // out of turn
        })
        {
            var bq = ConnectAdmin(t);
            var m = bad();
            bq.Ok(Send(m.Length), m);
            var r = bq.Ok(Receive());
            Assert.Equal(DhchapMessages.Failure1, r.DataSpan[1]);
            Assert.True(r.CloseAfterResponse);
        }

        // A Reply for another transaction, and one with the wrong HL.
        foreach (var mutate in new Action<byte[]>[] { m => m[4] ^= 0xFF, m => m[6] = 48 })
        {
            var bq = ConnectAdmin(t);
            var h = Host();
            SendOk(bq, h.Negotiate());
            var reply = h.Reply(ReceiveOk(bq));
            mutate(reply);
            SendOk(bq, reply);
            var r = bq.Ok(Receive());
            Assert.Equal(DhchapMessages.Failure1, r.DataSpan[1]);
            Assert.Equal((byte)DhchapFailure.IncorrectPayload, r.DataSpan[7]);
        }
        // A Receive out of turn gets Failure1 too.
        var rq = ConnectAdmin(t);
        Assert.Equal(DhchapMessages.Failure1, rq.Ok(Receive()).DataSpan[1]);
        Assert.Equal(8, t.Target.Metrics.AuthenticationsFailed(AuthFailure.Protocol));
        // The first queue, which only had command-level errors, can still authenticate.
        Assert.False(Authenticate(q, Host()).CloseAfterResponse);
        Assert.True(q.Queue.Auth!.Authenticated);
    }
}
