using Integration.Tests.Initiator;
using Nvme.Core.Auth;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>DH-HMAC-CHAP over NVMe/TCP against the in-process target: the test initiator's host side
/// (<see cref="NvmeTcpHost.AuthenticateAsync"/>) on the admin queue and every I/O queue, as the Linux host does it.</summary>
public class AuthenticationTests(ITestOutputHelper output)
{
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11";
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:2b8f7c1e-0d3a-4e5f-9a6b-7c8d9e0f1a2b";
    private static readonly Guid HostBId = new("2b8f7c1e-0d3a-4e5f-9a6b-7c8d9e0f1a2b");
    private const ushort AuthRequiredStatus = (ushort)NvmeStatus.AuthenticationRequired; // 0x4191

    private static readonly DhchapSecret KeyA = DhchapSecret.Generate(32, 1);
    private static readonly DhchapSecret CtrlKeyA = DhchapSecret.Generate(48, 2);
    private static readonly DhchapSecret KeyB = DhchapSecret.Generate(64, 3);

    /// <summary>HostA with secrets in the configuration file's object form; HostB too (its own key) unless told not.</summary>
    private Task<TestTarget> StartAsync(string? hash = null, string? group = null, bool bidirectional = false, Action<TargetConfig>? more = null) =>
        TestTarget.StartAsync(output, c =>
        {
            var hosts = c.Subsystems[0].AllowedHosts;
            hosts.Add(HostA);
            hosts.Auth[HostA] = new HostAuthConfig
            {
                DhchapSecret = KeyA.Representation, DhchapCtrlSecret = bidirectional ? CtrlKeyA.Representation : null, DhchapHash = hash, DhchapDhgroup = group,
            };
            hosts.Add(HostB);
            hosts.Auth[HostB] = new HostAuthConfig { DhchapSecret = KeyB.Representation };
            more?.Invoke(c);
        });

    private static NvmeTcpHostOptions A(DhchapSecret? key = null, DhchapSecret? ctrl = null) =>
        new() { HostNqn = HostA, DhchapSecret = key ?? KeyA, DhchapCtrlSecret = ctrl };

    private static NvmeTcpHostOptions B(DhchapSecret? key = null) =>
        new() { HostNqn = HostB, HostId = HostBId, DhchapSecret = key ?? KeyB };

    private static async Task WriteReadAsync(NvmeTcpHost host, int queue = 0, byte fill = 0x5A)
    {
        var data = new byte[4096];
        Array.Fill(data, fill);
        (await host.WriteAsync(queue, 1, 8, data)).EnsureSuccess("write");
        var back = new byte[4096];
        (await host.ReadAsync(queue, 1, 8, back)).EnsureSuccess("read");
        Assert.Equal(data, back);
    }

    [Theory]
    [InlineData("sha256", "null", false)]
    [InlineData("sha384", "ffdhe2048", true)]
    [InlineData("sha512", "ffdhe4096", true)]
    [InlineData("sha256", "ffdhe2048", false)]
    public async Task Host_authenticates_every_queue_and_does_io(string hash, string group, bool bidirectional)
    {
        await using var target = await StartAsync(hash, group, bidirectional);
        await using var host = await target.ConnectWithIoAsync(2, A(ctrl: bidirectional ? CtrlKeyA : null));
        Assert.True(host.AuthenticationRequested);
        DhchapHashes.TryParse(hash, out var h);
        FfdheGroup.TryParse(group, out var g);
        Assert.Equal((h, g), host.LastAuthentication!.Value);
        await WriteReadAsync(host, 0);
        await WriteReadAsync(host, 1, 0x33);
        Assert.Equal(3, target.Host.Target.Metrics.AuthenticationsSucceeded); // admin + 2 I/O queues
    }

    [Fact]
    public async Task Wrong_secret_fails_cleanly_and_the_target_keeps_serving_others()
    {
        await using var target = await StartAsync();
        await using var good = await target.ConnectWithIoAsync(1, B());
        var e = await Assert.ThrowsAsync<NvmeAuthenticationException>(() => target.ConnectAsync(A(DhchapSecret.Generate(32, 1))));
        Assert.Equal(DhchapFailure.Failed, e.Reason);
        Assert.Equal(1, target.Host.Target.Metrics.AuthenticationsFailed(AuthFailure.BadResponse));
        // The failed host's controller is gone (its admin queue closed after Failure1); the other host is unharmed.
        await WaitUntilAsync(() => target.Host.Target.Controllers.All(c => c.HostNqn != HostA));
        await WriteReadAsync(good);
        await using var again = await target.ConnectWithIoAsync(1, A());
        await WriteReadAsync(again);
    }

    [Fact]
    public async Task Wrong_controller_secret_is_refused_by_the_host_and_the_target_stays_healthy()
    {
        await using var target = await StartAsync(bidirectional: true);
        var e = await Assert.ThrowsAsync<NvmeAuthenticationException>(() => target.ConnectAsync(A(ctrl: DhchapSecret.Generate(48, 2))));
        Assert.Null(e.Reason); // the host found the controller's response wrong; the controller sent no Failure1
        await WaitUntilAsync(() => target.Host.Target.Metrics.AuthenticationsFailed(AuthFailure.HostRejected) == 1);
        await WaitUntilAsync(() => target.Host.Target.Controllers.All(c => c.HostNqn != HostA));
        await using var ok = await target.ConnectWithIoAsync(1, A(ctrl: CtrlKeyA));
        await WriteReadAsync(ok);
    }

    [Fact]
    public async Task Host_without_a_secret_gets_nothing_but_authentication_and_no_io_queue()
    {
        await using var target = await StartAsync();
        // As the Linux host: asked to authenticate without a secret, the connect fails.
        await Assert.ThrowsAsync<NvmeAuthenticationException>(() => target.ConnectAsync(new NvmeTcpHostOptions { HostNqn = HostA }));
        // A host that ignores the request: every command but authentication is refused.
        await using var host = await target.ConnectAsync(new NvmeTcpHostOptions { HostNqn = HostA, Enable = false, IgnoreAuthenticationRequest = true });
        Assert.True(host.AuthenticationRequested);
        Assert.Equal(AuthRequiredStatus, (await host.PropertyGetAsync(PropertyOffset.Cap, eightBytes: true)).Status);
        Assert.Equal(AuthRequiredStatus, (await host.PropertySetAsync(PropertyOffset.Cc, NvmeTcpHost.CcEnableValue)).Status);
        Assert.Equal(AuthRequiredStatus, (await host.IdentifyRawAsync(IdentifyCns.Controller, 0, new byte[4096])).Status);
        Assert.Equal(AuthRequiredStatus, (await host.KeepAliveAsync()).Status);
        await using var io = await HostQueue.OpenAsync(target.Endpoint);
        var c = await io.ConnectAsync(TestTarget.Nqn, HostA, new NvmeTcpHostOptions().HostId, 1, 127, host.Cntlid, 0);
        Assert.Equal(AuthRequiredStatus, c.Status);
        Assert.Equal(0, target.Host.Target.Controllers.Single(x => x.HostNqn == HostA).IoQueueCount);
        // A host NQN without an entry still connects unauthenticated where any host may (the test subsystem).
        await using var anon = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions
        {
            HostNqn = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555", HostId = new("11111111-2222-3333-4444-555555555555"),
        });
        Assert.False(anon.AuthenticationRequested);
        await WriteReadAsync(anon);
    }

    [Fact]
    public async Task Re_authentication_on_live_queues_keeps_io_going()
    {
        await using var target = await StartAsync(group: "ffdhe3072", bidirectional: true);
        await using var host = await target.ConnectWithIoAsync(1, A(ctrl: CtrlKeyA));
        var writes = Task.Run(async () => { for (int i = 0; i < 20; i++) await WriteReadAsync(host, 0, (byte)i); });
        await host.AuthenticateAsync(host.Admin);
        await host.AuthenticateAsync(host.Io(0));
        await writes;
        Assert.Equal(4, target.Host.Target.Metrics.AuthenticationsSucceeded);
        (await host.KeepAliveAsync()).EnsureSuccess();
    }

    [Fact]
    public async Task Key_rotation_applies_to_new_controllers_while_live_ones_keep_working()
    {
        await using var target = await StartAsync();
        await using var live = await target.ConnectWithIoAsync(1, A());
        var newKey = DhchapSecret.Generate(48, 2);
        await target.Host.Manager.SetHostAuthAsync(TestTarget.Nqn, HostA, new HostAuthConfig { DhchapSecret = newKey.Representation });
        await WriteReadAsync(live);
        await Assert.ThrowsAsync<NvmeAuthenticationException>(() => target.ConnectAsync(A()));
        await using var fresh = await target.ConnectWithIoAsync(1, A(newKey));
        await WriteReadAsync(fresh);
        // The live controller re-authenticating with its old secret fails now, and that controller goes.
        var e = await Assert.ThrowsAsync<NvmeAuthenticationException>(() => live.AuthenticateAsync(live.Admin));
        Assert.Equal(DhchapFailure.Failed, e.Reason);
        await WaitUntilAsync(() => target.Host.Target.Controllers.Count(c => c.HostNqn == HostA) == 1);
        await WriteReadAsync(fresh);
    }

    [Fact]
    public async Task Abandoned_exchange_is_dropped_and_the_queue_closed()
    {
        await using var target = await StartAsync(more: c => c.Limits.AuthTimeout = 0.3);
        await using var q = await HostQueue.OpenAsync(target.Endpoint);
        q.InCapsuleDataLimit = 8192;
        var c = await q.ConnectAsync(TestTarget.Nqn, HostA, new NvmeTcpHostOptions().HostId, 0, 31, 0xFFFF, 0);
        c.EnsureSuccess("connect");
        Assert.NotEqual(0u, c.Dword0 & ConnectCommand.AuthreqAtr);
        var h = new DhchapHost(HostA, TestTarget.Nqn, KeyA);
        await NvmeTcpHost.AuthSendAsync(q, h.Negotiate());
        await NvmeTcpHost.AuthReceiveAsync(q); // the challenge, never answered
        await q.Closed.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(1, target.Host.Target.Metrics.AuthenticationsFailed(AuthFailure.Timeout));
        await WaitUntilAsync(() => target.Host.Target.Controllers.All(x => x.HostNqn != HostA));
        await using var ok = await target.ConnectWithIoAsync(1, A());
        await WriteReadAsync(ok);
    }

    [Fact]
    public async Task Messages_move_through_r2t_as_well_as_in_the_capsule()
    {
        await using var target = await StartAsync(group: "ffdhe8192", bidirectional: true);
        await using var q = await HostQueue.OpenAsync(target.Endpoint);
        q.InCapsuleDataLimit = 8192;
        (await q.ConnectAsync(TestTarget.Nqn, HostA, new NvmeTcpHostOptions().HostId, 0, 31, 0xFFFF, 0)).EnsureSuccess("connect");
        var h = new DhchapHost(HostA, TestTarget.Nqn, KeyA, CtrlKeyA);
        await NvmeTcpHost.AuthSendAsync(q, h.Negotiate(), inCapsule: false);
        var reply = h.Reply(await NvmeTcpHost.AuthReceiveAsync(q));
        Assert.Equal(16 + 2 * 32 + 1024, reply.Length); // SHA-256 (the default), ffdhe8192's 1024-byte value
        var sent = await q.SubmitAsync(Sqe.AuthSend((uint)reply.Length), hostData: reply, inCapsule: false);
        sent.EnsureSuccess("Authentication Send (R2T)");
        Assert.Equal(1, sent.R2TCount);
        var s2 = h.Success1(await NvmeTcpHost.AuthReceiveAsync(q, al: 1024));
        await NvmeTcpHost.AuthSendAsync(q, s2!);
        (await q.SubmitAsync(Sqe.PropertyGet(PropertyOffset.Cap, true))).EnsureSuccess("Property Get after authentication");
    }

    [Fact]
    public async Task Malformed_messages_are_rejected_without_harm()
    {
        await using var target = await StartAsync();
        await using var good = await target.ConnectWithIoAsync(1, B());
        var negotiate = new DhchapHost(HostA, TestTarget.Nqn, KeyA) { TransactionId = 7 }.Negotiate();
        byte[] unknownType = [.. negotiate]; unknownType[0] = 9;
        byte[] badReply = new byte[16 + 64]; DhchapMessages.WriteHeader(badReply, DhchapMessages.TypeDhchap, DhchapMessages.Reply, 0x4242);
        foreach (var (label, first, second) in new (string, byte[], byte[]?)[]
        {
            ("too short", [0, 0, 0], null),
            ("unknown type", unknownType, null),
            ("reply out of turn", badReply, null),
            ("reply for another transaction", negotiate, badReply),
        })
        {
            await using var q = await HostQueue.OpenAsync(target.Endpoint);
            q.InCapsuleDataLimit = 8192;
            (await q.ConnectAsync(TestTarget.Nqn, HostA, new NvmeTcpHostOptions().HostId, 0, 31, 0xFFFF, 0)).EnsureSuccess("connect");
            await NvmeTcpHost.AuthSendAsync(q, first);
            if (second != null)
            {
                await NvmeTcpHost.AuthReceiveAsync(q);
                await NvmeTcpHost.AuthSendAsync(q, second);
            }
            var failure = await NvmeTcpHost.AuthReceiveAsync(q);
            Assert.True(failure[1] == DhchapMessages.Failure1, label);
            await q.Closed.WaitAsync(TimeSpan.FromSeconds(60));
        }
        // Command-level errors: TL not matching the data, TL zero, a wrong SECP.
        await using (var q = await HostQueue.OpenAsync(target.Endpoint))
        {
            q.InCapsuleDataLimit = 8192;
            (await q.ConnectAsync(TestTarget.Nqn, HostA, new NvmeTcpHostOptions().HostId, 0, 31, 0xFFFF, 0)).EnsureSuccess("connect");
            Assert.Equal((ushort)NvmeStatus.DataSglLengthInvalid, (await q.SubmitAsync(Sqe.AuthSend(80), hostData: negotiate)).Status);
            Assert.Equal((ushort)NvmeStatus.InvalidField, (await q.SubmitAsync(Sqe.AuthSend(72, cdw10: 0xEA010100), hostData: negotiate)).Status);
            Assert.Equal((ushort)NvmeStatus.InvalidField, (await q.SubmitAsync(Sqe.AuthReceive(0))).Status);
            Assert.Equal((ushort)NvmeStatus.InvalidField, (await q.SubmitAsync(Sqe.AuthSend(8192), hostData: new byte[8192])).Status);
        }
        Assert.Equal(4, target.Host.Target.Metrics.AuthenticationsFailed(AuthFailure.Protocol));
        await WriteReadAsync(good);
    }

    /// <summary>Waits for a condition the target reaches asynchronously (a connection it closes, a metric).</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the target did not get there in 30 s");
            await Task.Delay(20);
        }
    }
}
