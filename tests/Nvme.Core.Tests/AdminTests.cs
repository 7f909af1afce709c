using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>Identify, Get Log Page, features, async events, keep-alive and abort on the admin queue.</summary>
public partial class AdminTests
{
    private static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    private static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);

    private static Namespace NewNs(uint nsid, long bytes = 1 << 20, int blockSize = 512) =>
        new(nsid, new MemoryBlockStore(bytes), blockSize, NamespaceIds.Derive(TestTarget.SubNqn, nsid));

    // ------------------------------------------------------------------ keep-alive, abort

    [Fact]
    public void Keep_alive_and_abort()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.KeepAlive());
        var abort = q.Ok(Cmd.Abort(0, 0x1234));
        Assert.Equal(1u, abort.Cqe.Dword0 & 1); // command not aborted
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        d.Ok(Cmd.KeepAlive());
        d.Expect(NvmeStatus.InvalidOpcode, Cmd.Abort(0, 1));
    }

    [Theory]
    [InlineData(0x01)] // Delete I/O SQ: not over fabrics
    [InlineData(0x05)] // Create I/O CQ
    [InlineData(0x10)] // Firmware commit
    [InlineData(0x80)] // Format NVM
    public void Unsupported_admin_opcodes_are_invalid_opcode(byte opcode)
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Expect(NvmeStatus.InvalidOpcode, Cmd.Raw(opcode));
        Assert.Equal(0x4001, (int)r.Status);
    }

    [Fact]
    public void Keep_alive_expiry_destroys_the_controller_and_terminates_its_queues()
    {
        using var t = new TestTarget();
        var destroyed = new List<Controller>();
        t.Target.ControllerDestroyed += c => { lock (destroyed) destroyed.Add(c); };
        var q = t.ConnectAdmin(kato: 300);
        var io = t.ConnectIo(q.Controller!.Cntlid);
        var idle = t.ConnectAdmin(kato: 0); // KATO 0: never expires
        var ctrl = q.Controller;

        t.Target.CheckKeepAlives();
        Assert.False(ctrl.IsDestroyed);

        // Traffic keeps it alive.
        for (int i = 0; i < 4; i++)
        {
            Thread.Sleep(50);
            q.Ok(Cmd.KeepAlive());
            t.Target.CheckKeepAlives();
            Assert.False(ctrl.IsDestroyed);
        }

        Thread.Sleep(450);
        t.Target.CheckKeepAlives();
        Assert.True(ctrl.IsDestroyed);
        Assert.Equal([ctrl], destroyed);
        Assert.NotEmpty(q.Transport.Terminations);
        Assert.NotEmpty(io.Transport.Terminations);
        Assert.False(idle.Controller!.IsDestroyed);
        Assert.Empty(idle.Transport.Terminations);
        Assert.Equal([idle.Controller], t.Subsystem.Controllers);
    }

    [Fact]
    public void Io_traffic_counts_as_keep_alive()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(kato: 300);
        var io = t.ConnectIo(q.Controller!.Cntlid);
        for (int i = 0; i < 5; i++)
        {
            Thread.Sleep(50);
            io.Ok(Cmd.Read(1, 0, 1));
            t.Target.CheckKeepAlives();
        }
        Assert.False(q.Controller.IsDestroyed);
    }

    [Fact]
    public void Removing_a_subsystem_destroys_its_controllers()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        Assert.Same(t.Subsystem, t.Target.RemoveSubsystem(TestTarget.SubNqn));
        Assert.True(q.Controller!.IsDestroyed);
        Assert.NotEmpty(q.Transport.Terminations);
        Assert.Empty(t.Target.Controllers);
    }
}
