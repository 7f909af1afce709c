using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Transport.Tcp;
using Transport.Tcp.Pdu;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>Transport errors in the middle of a real write, stalled connections, and a clean Disconnect.</summary>
public sealed class TransportErrorTests(ITestOutputHelper output)
{
    public enum BadH2C { WrongOffset, BeyondR2TWindow, WrongTtag, DatalMismatch }

    [Theory]
    [InlineData(BadH2C.WrongOffset, FatalErrorStatus.DataTransferOutOfRange)]
    [InlineData(BadH2C.BeyondR2TWindow, FatalErrorStatus.DataTransferOutOfRange)]
    [InlineData(BadH2C.WrongTtag, FatalErrorStatus.InvalidPduHeaderField)]
    [InlineData(BadH2C.DatalMismatch, FatalErrorStatus.InvalidPduHeaderField)]
    public async Task BadH2CDataForAPendingWrite_TermReq(BadH2C bad, FatalErrorStatus fes)
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Limits.MaxH2CData = 16384);
        await using var good = await target.ConnectWithIoAsync(1);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HostNqn = "nqn.2026-01.io.example:misbehaving" });
        var io = host.Io();
        var r2t = new TaskCompletionSource<R2TPdu>(TaskCreationOptions.RunContinuationsAsynchronously);
        io.R2TInterceptor = r => { r2t.TrySetResult(r); return true; };

        var data = TestData.Random(64 * 1024, 9);
        var write = host.WriteAsync(0, 1, 0, data);
        var r = await r2t.Task.WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0u, r.Offset);
        Assert.Equal(16384u, r.Length);

        byte[] pdu = bad switch
        {
            BadH2C.WrongOffset => PduBuilder.H2CData(r.CommandId, r.TransferTag, 512, data.AsSpan(512, 4096), false, false, false),
            BadH2C.BeyondR2TWindow => PduBuilder.H2CData(r.CommandId, r.TransferTag, 0, data.AsSpan(0, 16384 + 512), true, false, false),
            BadH2C.WrongTtag => PduBuilder.H2CData(r.CommandId, (ushort)(r.TransferTag + 1), 0, data.AsSpan(0, 4096), false, false, false),
            _ => Datal(PduBuilder.H2CData(r.CommandId, r.TransferTag, 0, data.AsSpan(0, 4096), false, false, false)),
        };
        if (bad == BadH2C.BeyondR2TWindow)
        {
            // More than MAXH2CDATA in one PDU is a limit violation of its own; stay within it but past the window
            // by sending the first 16 KiB in two PDUs, the second running 512 bytes beyond.
            await io.SendAsync(PduBuilder.H2CData(r.CommandId, r.TransferTag, 0, data.AsSpan(0, 8192), false, false, false));
            pdu = PduBuilder.H2CData(r.CommandId, r.TransferTag, 8192, data.AsSpan(8192, 8192 + 512), true, false, false);
        }
        await io.SendAsync(pdu);

        var e = await Assert.ThrowsAnyAsync<NvmeTcpProtocolException>(() => write);
        var term = Assert.IsType<NvmeTcpTermReqException>(e);
        Assert.Equal(fes, term.Status);
        Assert.Same(io.Closed, await Task.WhenAny(io.Closed, Task.Delay(TimeSpan.FromSeconds(15))));

        // The I/O queue was the misbehaving host's; its admin queue and the other host carry on.
        (await host.KeepAliveAsync()).EnsureSuccess();
        (await good.WriteAsync(0, 1, 0, data)).EnsureSuccess();
        var back = new byte[data.Length];
        (await good.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);

        static byte[] Datal(byte[] h2c)
        {
            BitConverter.TryWriteBytes(h2c.AsSpan(16, 4), 2048u); // DATAL says 2048, the PDU carries 4096
            return h2c;
        }
    }

    [Fact]
    public async Task DataDigestErrorOnWrite_IsACommandError_NotFatal()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HeaderDigest = true, DataDigest = true });
        var io = host.Io();
        var r2t = new TaskCompletionSource<R2TPdu>(TaskCreationOptions.RunContinuationsAsynchronously);
        io.R2TInterceptor = r => { r2t.TrySetResult(r); return true; };
        var data = TestData.Random(32 * 1024, 21);
        var write = host.WriteAsync(0, 1, 0, data);
        var r = await r2t.Task.WaitAsync(TimeSpan.FromSeconds(15));
        var pdu = PduBuilder.H2CData(r.CommandId, r.TransferTag, 0, data, true, true, true);
        pdu[^1] ^= 0xFF; // corrupt DDGST
        await io.SendAsync(pdu);
        var c = await write;
        Assert.Equal(0x0022, c.Status); // Transient Transport Error, retryable
        io.R2TInterceptor = null;
        // The connection survives; the data was not written.
        var back = new byte[data.Length];
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.All(back, b => Assert.Equal(0, b));
        (await host.WriteAsync(0, 1, 0, data)).EnsureSuccess();
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task NoICReq_AndHalfAPdu_ConnectionsAreClosed()
    {
        var transport = new TcpTransportOptions { ConnectTimeout = TimeSpan.FromSeconds(2), PduTimeout = TimeSpan.FromMilliseconds(300) };
        await using var target = await TestTarget.StartAsync(output, transport: transport);
        await using var good = await target.ConnectWithIoAsync(1);

        await using var silent = await RawConnection.OpenAsync(target.Endpoint);
        await using var half = await RawConnection.OpenAsync(target.Endpoint);
        await half.HandshakeAsync();
        var capsule = PduBuilder.CapsuleCmd(new SubmissionQueueEntry { Opcode = AdminOpcode.KeepAlive }, default, false, false);
        await half.SendAsync(capsule.AsMemory(0, 40));

        Assert.True((await silent.WaitForCloseAsync(TimeSpan.FromSeconds(15))).Closed, "a connection that never sent ICReq stayed open");
        Assert.True((await half.WaitForCloseAsync(TimeSpan.FromSeconds(15))).Closed, "a connection stuck in the middle of a PDU stayed open");
        // An idle, well-formed connection is not a stall.
        (await good.KeepAliveAsync()).EnsureSuccess();
        (await good.FlushAsync(0, 1)).EnsureSuccess();
    }

    [Fact]
    public async Task Disconnect_IoQueueAnswersThenClosesCleanly_AndTheQidCanBeReused()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(2);
        var ctrl = Assert.Single(target.Host.Target.Controllers);
        var io = host.Io(1);
        (await io.DisconnectAsync()).EnsureSuccess("Disconnect");
        Assert.Same(io.Closed, await Task.WhenAny(io.Closed, Task.Delay(TimeSpan.FromSeconds(15))));
        Assert.True(io.Failure is null, $"Disconnect did not end cleanly: {io.Failure}");
        Assert.True(await Poll.UntilAsync(() => ctrl.IoQueueCount == 1, TimeSpan.FromSeconds(15)));

        // QID 2 again, on a new connection.
        await using var again = await HostQueue.OpenAsync(target.Endpoint);
        (await again.ConnectAsync(TestTarget.Nqn, host.Options.HostNqn, host.Options.HostId, 2, 127, host.Cntlid, 0)).EnsureSuccess("reconnect QID 2");
        again.InCapsuleDataLimit = 8192;
        var data = TestData.Random(4096, 2);
        (await again.SubmitAsync(Sqe.ReadWrite(IoOpcode.Write, 1, 0, 8), hostData: data)).EnsureSuccess();
        var back = new byte[4096];
        (await host.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);
        // Disconnect on the admin queue is not allowed.
        Assert.NotEqual(0, (await host.Admin.DisconnectAsync()).Status);
    }
}
