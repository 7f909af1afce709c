using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>Asymmetric Namespace Access: identify fields, the ANA log (RGO, offsets, change count), the ANA change event with
/// its masking and ports, and the path statuses I/O gets in each state.</summary>
public class AnaTests
{
    private const uint AnaAndNsNotices = AsyncEvent.ConfigAnaChangeNotices | AsyncEvent.ConfigNamespaceAttributeNotices;

    private static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    private static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);

    private static Namespace NewNs(uint nsid, uint group = 1)
    {
        var ns = new Namespace(nsid, new MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(TestTarget.SubNqn, nsid));
        ns.AnaGroupId = group;
        return ns;
    }

    private static byte[] AnaLog(TestQueue q, uint length = 4096, ulong offset = 0, bool rae = false, bool rgo = false)
    {
        var sqe = Cmd.GetLogPage(LogPageId.AsymmetricNamespaceAccess, length, offset, rae);
        if (rgo) sqe.Cdw10 |= AnaLogHeader.ReturnGroupsOnly;
        return q.Ok(sqe).DataSpan.ToArray();
    }

    private static TestQueue ConnectOnPort(TestTarget t, ushort port)
    {
        var q = t.NewQueue();
        q.Queue.PortId = port;
        var (sqe, data) = Cmd.Connect(0, 31, 0, 0xFFFF, TestTarget.SubNqn, TestTarget.HostNqn, TestTarget.HostId);
        q.Ok(sqe, data);
        q.Ok(Cmd.PropertySet(PropertyOffset.Cc, Cmd.CcEnable));
        return q;
    }

    [Fact]
    public void Identify_controller_reports_ana_and_mnan()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var id = MemoryMarshal.Read<IdentifyController>(q.Ok(Cmd.Identify(IdentifyCns.Controller)).DataSpan);
        Assert.Equal(0xB, id.Cmic);
        Assert.Equal(10, id.Anatt);
        Assert.Equal(0x1F, id.Anacap);
        Assert.Equal(128u, id.Anagrpmax);
        Assert.Equal(128u, id.Nanagrpid);
        Assert.Equal(id.Nn, id.Mnan); // Linux: MNAN must be 1..NN
        Assert.NotEqual(0u, id.Oaes & (1u << 11));
        // The ANA log the Linux host sizes from these fits in one transfer.
        Assert.True(16 + 32 * id.Nanagrpid + 4 * id.Mnan <= (4096u << id.Mdts));
    }

    [Fact]
    public void Identify_namespace_carries_the_group_in_both_structures()
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(2, group: 7));
        var q = t.ConnectAdmin();
        Assert.Equal(1u, MemoryMarshal.Read<IdentifyNamespace>(q.Ok(Cmd.Identify(IdentifyCns.Namespace, 1)).DataSpan).Anagrpid);
        Assert.Equal(7u, MemoryMarshal.Read<IdentifyNamespace>(q.Ok(Cmd.Identify(IdentifyCns.Namespace, 2)).DataSpan).Anagrpid);
        Assert.Equal(7u, MemoryMarshal.Read<IdentifyNamespaceIndependent>(q.Ok(Cmd.Identify(IdentifyCns.CommandSetIndependentNamespace, 2)).DataSpan).Anagrpid);
    }

    [Fact]
    public void Ana_group_out_of_range_is_refused()
    {
        var ns = NewNs(3);
        Assert.Throws<ArgumentOutOfRangeException>(() => ns.AnaGroupId = 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => ns.AnaGroupId = 129);
        using var t = new TestTarget();
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Subsystem.SetAnaState(0, AnaState.Inaccessible));
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Subsystem.SetAnaState(1, (AnaState)5));
    }

    [Fact]
    public void Log_lists_each_group_with_visible_namespaces_and_their_nsids()
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(5, group: 3));
        t.Subsystem.AttachNamespace(NewNs(2, group: 3));
        var hidden = NewNs(4, group: 9);
        hidden.Visibility = NamespaceVisibility.Of(true, [TestTarget.OtherHostNqn]);
        t.Subsystem.AttachNamespace(hidden);
        var q = t.ConnectAdmin();
        t.Subsystem.SetAnaState(3, AnaState.NonOptimized);

        var log = AnaLog(q);
        Assert.Equal(1ul, U64(log, 0));           // one state change so far
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(log.AsSpan(8))); // groups 1 and 3; 9 is masked away
        // Group 1: NSID 1, optimized.
        Assert.Equal(1u, U32(log, 16));
        Assert.Equal(1u, U32(log, 20));
        Assert.Equal(1ul, U64(log, 24));
        Assert.Equal((byte)AnaState.Optimized, log[32]);
        Assert.Equal(1u, U32(log, 48));
        // Group 3: NSIDs 2 and 5 ascending, non-optimized.
        Assert.Equal(3u, U32(log, 52));
        Assert.Equal(2u, U32(log, 56));
        Assert.Equal((byte)AnaState.NonOptimized, log[68]);
        Assert.Equal(2u, U32(log, 84));
        Assert.Equal(5u, U32(log, 88));
        Assert.All(log.AsSpan(92).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Rgo_returns_groups_without_nsids()
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(2, group: 4));
        var q = t.ConnectAdmin();
        var log = AnaLog(q, rgo: true);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(log.AsSpan(8)));
        Assert.Equal(1u, U32(log, 16));
        Assert.Equal(0u, U32(log, 20));
        Assert.Equal(4u, U32(log, 48)); // the next descriptor follows at once
        Assert.Equal(0u, U32(log, 52));
        Assert.All(log.AsSpan(80).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Log_read_in_pieces_matches_the_whole()
    {
        using var t = new TestTarget();
        for (uint n = 2; n <= 6; n++) t.Subsystem.AttachNamespace(NewNs(n, group: n % 2 + 1));
        var q = t.ConnectAdmin();
        int size = 16 + 2 * 32 + 6 * 4;
        var whole = AnaLog(q, 256);
        Assert.All(whole.AsSpan(size).ToArray(), b => Assert.Equal(0, b));
        var pieces = new List<byte>();
        for (uint o = 0; o < size; o += 12) pieces.AddRange(AnaLog(q, Math.Min(12, (uint)size - o), o));
        Assert.Equal(whole.AsSpan(0, size).ToArray(), pieces.ToArray());
        // Past the descriptors, up to the size a host computes from NANAGRPID and MNAN (nvme-cli reads that in 4 KiB
        // pieces), zeros; beyond it, an invalid field.
        Assert.All(AnaLog(q, 8, (ulong)size), b => Assert.Equal(0, b));
        Assert.All(AnaLog(q, 4096, 4096), b => Assert.Equal(0, b));
        const ulong max = 16 + 32 * 128 + 4 * 1024;
        Assert.All(AnaLog(q, 16, max - 16), b => Assert.Equal(0, b));
        q.Expect(NvmeStatus.InvalidField, Cmd.GetLogPage(LogPageId.AsymmetricNamespaceAccess, 8, max + 4));
    }

    [Fact]
    public void Change_count_goes_up_on_state_changes_and_group_moves_only()
    {
        using var t = new TestTarget();
        var s = t.Subsystem;
        Assert.Equal(0ul, s.AnaChangeCount);
        s.SetAnaState(1, AnaState.Inaccessible);
        Assert.Equal(1ul, s.AnaChangeCount);
        s.SetAnaState(1, AnaState.Inaccessible); // no change
        Assert.Equal(1ul, s.AnaChangeCount);
        s.SetNamespaceAnaGroup(1, 2);
        Assert.Equal(2ul, s.AnaChangeCount);
        s.NotifyAnaChanged(); // the lab event changes nothing
        Assert.Equal(2ul, s.AnaChangeCount);
        s.SetAnaState(1, AnaState.Optimized);
        Assert.Equal(3ul, s.AnaChangeCount);
        Assert.Equal(AnaState.Optimized, s.GetAnaState(1));
    }

    [Fact]
    public void State_change_completes_an_aer_and_masks_until_the_log_is_read()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AnaAndNsNotices));
        var aer1 = q.Submit(Cmd.AsyncEventRequest());
        var aer2 = q.Submit(Cmd.AsyncEventRequest());

        Assert.Equal(1, t.Subsystem.SetAnaState(1, AnaState.Inaccessible));
        Assert.Contains(aer1, q.Transport.Responses);
        Assert.Equal(0x000C0302u, aer1.Cqe.Dword0);
        Assert.DoesNotContain(aer2, q.Transport.Responses);

        t.Subsystem.SetAnaState(1, AnaState.Change); // masked: no second event
        Assert.DoesNotContain(aer2, q.Transport.Responses);
        AnaLog(q, rae: true);                        // RAE=1 keeps it masked
        t.Subsystem.SetAnaState(1, AnaState.PersistentLoss);
        Assert.DoesNotContain(aer2, q.Transport.Responses);
        var log = AnaLog(q);                         // RAE=0 unmasks
        Assert.Equal((byte)AnaState.PersistentLoss, log[32]);
        t.Subsystem.SetAnaState(1, AnaState.Optimized);
        Assert.Contains(aer2, q.Transport.Responses);
        Assert.Equal(0x000C0302u, aer2.Cqe.Dword0);

        // The namespace notice has its own mask: it still gets through while ANA is masked.
        var aer3 = q.Submit(Cmd.AsyncEventRequest());
        t.Subsystem.AttachNamespace(NewNs(2));
        Assert.Contains(aer3, q.Transport.Responses);
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, aer3.Cqe.Dword0);
    }

    [Fact]
    public void Ana_notice_disabled_or_queued()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices));
        var aer = q.Submit(Cmd.AsyncEventRequest());
        t.Subsystem.SetAnaState(1, AnaState.Inaccessible);
        Assert.DoesNotContain(aer, q.Transport.Responses); // bit 11 not enabled

        var q2 = t.ConnectAdmin();
        q2.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AnaAndNsNotices));
        t.Subsystem.SetAnaState(1, AnaState.Optimized); // no AER parked: queued
        Assert.Equal(0x000C0302u, q2.Expect(NvmeStatus.Success, Cmd.AsyncEventRequest()).Cqe.Dword0);

        // A queued notice the host has read the log for is dropped; a queued namespace notice stays.
        t.Subsystem.SetAnaState(1, AnaState.Inaccessible);   // masked (not read yet): nothing queued
        AnaLog(q2);
        t.Subsystem.SetAnaState(1, AnaState.Optimized);      // queued
        t.Subsystem.AttachNamespace(NewNs(2));               // queued behind it
        AnaLog(q2);                                          // drops the ANA one
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, q2.Expect(NvmeStatus.Success, Cmd.AsyncEventRequest()).Cqe.Dword0);
        var parked = q2.Submit(Cmd.AsyncEventRequest());
        Assert.DoesNotContain(parked, q2.Transport.Responses);
    }

    /// <summary>A second port, a controller on each port with ANA and namespace notices enabled, and an AER outstanding on each.</summary>
    private static (TestQueue On1, TestQueue On2, NvmeRequest Aer1, NvmeRequest Aer2) TwoPortsWithAnaEvents(TestTarget t)
    {
        t.Target.AddPort(new Port(2, IPAddress.Parse("192.0.2.11"), 4420) { Transport = FakeTransport.Tcp });
        var on1 = ConnectOnPort(t, 1);
        var on2 = ConnectOnPort(t, 2);
        foreach (var q in new[] { on1, on2 }) q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AnaAndNsNotices));
        return (on1, on2, on1.Submit(Cmd.AsyncEventRequest()), on2.Submit(Cmd.AsyncEventRequest()));
    }

    [Fact]
    public void Per_port_state_tells_and_blocks_only_that_port()
    {
        using var t = new TestTarget();
        var (on1, on2, aer1, aer2) = TwoPortsWithAnaEvents(t);
        var io1 = t.ConnectIo(on1.Controller!.Cntlid);
        var io2 = t.ConnectIo(on2.Controller!.Cntlid);

        Assert.Equal(1, t.Subsystem.SetAnaState(1, AnaState.Inaccessible, portId: 2));
        Assert.DoesNotContain(aer1, on1.Transport.Responses);
        Assert.Contains(aer2, on2.Transport.Responses);
        Assert.Equal((byte)AnaState.Optimized, AnaLog(on1)[32]);
        Assert.Equal((byte)AnaState.Inaccessible, AnaLog(on2)[32]);
        io1.Ok(Cmd.Read(1, 0, 1));
        io2.Expect(NvmeStatus.AnaInaccessible, Cmd.Read(1, 0, 1));

        // A state for every port replaces the per-port one.
        var aer2b = on2.Submit(Cmd.AsyncEventRequest());
        Assert.Equal(1, t.Subsystem.SetAnaState(1, AnaState.Optimized)); // port 2 changes, port 1 was already optimized
        Assert.Contains(aer2b, on2.Transport.Responses);
        Assert.Empty(t.Subsystem.GetAnaPortStates(1));
        io2.Ok(Cmd.Read(1, 0, 1));
    }

    [Theory]
    [InlineData(AnaState.Inaccessible, NvmeStatus.AnaInaccessible)]
    [InlineData(AnaState.PersistentLoss, NvmeStatus.AnaPersistentLoss)]
    [InlineData(AnaState.Change, NvmeStatus.AnaTransition)]
    [InlineData(AnaState.NonOptimized, NvmeStatus.Success)]
    public void Io_gets_the_path_status_of_its_group_and_admin_still_works(AnaState state, NvmeStatus expected)
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(2, group: 2));
        var q = t.ConnectAdmin();
        var io = t.ConnectIo(q.Controller!.Cntlid);
        static byte[] Block0(TestTarget t) { var b = new byte[512]; t.Store.Read(0, b); return b; }
        var before = Block0(t);
        t.Subsystem.SetAnaState(1, state);

        var w = io.Expect(expected, Cmd.Write(1, 0, 1), new byte[512].Select(_ => (byte)0xAB).ToArray());
        Assert.Equal(0, (int)(w.Status & NvmeStatus.Dnr)); // path errors may be retried elsewhere
        if (expected != NvmeStatus.Success)
        {
            Assert.Equal(3, w.Status.CodeType());
            Assert.Equal(before, Block0(t)); // never executed
            io.Expect(expected, Cmd.Read(1, 0, 1));
            io.Expect(expected, Cmd.Flush(1));
            io.Expect(expected, Cmd.WriteZeroes(1, 0, 1));
        }
        Assert.Equal(0, t.Ns.InFlight); // the reference went back
        io.Ok(Cmd.Read(2, 0, 1));        // another group is untouched
        io.Ok(Cmd.Flush(0xFFFFFFFF));    // the broadcast flush skips what it may not touch
        // Admin commands are not path-checked.
        q.Ok(Cmd.Identify(IdentifyCns.Namespace, 1));
        q.Ok(Cmd.GetLogPage(LogPageId.SmartHealth, 512, nsid: 1));
        t.Subsystem.SetAnaState(1, AnaState.Optimized);
        io.Ok(Cmd.Read(1, 0, 1));
    }

    [Fact]
    public void Moving_a_namespace_tells_the_hosts_that_see_it_and_the_log_follows()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var other = t.ConnectAdmin(hostNqn: TestTarget.OtherHostNqn);
        var hidden = NewNs(2);
        hidden.Visibility = NamespaceVisibility.Of(true, [TestTarget.OtherHostNqn]);
        t.Subsystem.AttachNamespace(hidden);
        foreach (var x in new[] { q, other }) x.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AnaAndNsNotices));
        var aer = q.Submit(Cmd.AsyncEventRequest());
        var aerOther = other.Submit(Cmd.AsyncEventRequest());

        Assert.Equal(1, t.Subsystem.SetNamespaceAnaGroup(2, 5)); // only the host that sees NSID 2
        Assert.DoesNotContain(aer, q.Transport.Responses);
        Assert.Contains(aerOther, other.Transport.Responses);
        Assert.Equal(0x000C0302u, aerOther.Cqe.Dword0);
        var log = AnaLog(other);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16LittleEndian(log.AsSpan(8)));
        Assert.Equal(5u, U32(log, 52));
        Assert.Equal(2u, U32(log, 84));
        Assert.Equal(5u, MemoryMarshal.Read<IdentifyNamespace>(other.Ok(Cmd.Identify(IdentifyCns.Namespace, 2)).DataSpan).Anagrpid);
        Assert.Equal(0, t.Subsystem.SetNamespaceAnaGroup(2, 5));
    }

    [Fact]
    public void Lab_event_reaches_every_controller_or_one_port()
    {
        using var t = new TestTarget();
        var (on1, on2, aer1, aer2) = TwoPortsWithAnaEvents(t);
        Assert.Equal(1, t.Subsystem.NotifyAnaChanged(portId: 1));
        Assert.Contains(aer1, on1.Transport.Responses);
        Assert.DoesNotContain(aer2, on2.Transport.Responses);
        Assert.Equal(2, t.Subsystem.NotifyAnaChanged());
        Assert.Contains(aer2, on2.Transport.Responses);
    }

    [Fact]
    public void Discovery_controllers_have_no_ana()
    {
        using var t = new TestTarget();
        var d = t.ConnectAdmin(WellKnown.DiscoveryNqn);
        var id = MemoryMarshal.Read<IdentifyController>(d.Ok(Cmd.Identify(IdentifyCns.Controller)).DataSpan);
        Assert.Equal(0, id.Cmic);
        Assert.Equal(0u, id.Nanagrpid);
        Assert.Equal(0u, id.Oaes);
        d.Expect(NvmeStatus.InvalidLogPage, Cmd.GetLogPage(LogPageId.AsymmetricNamespaceAccess, 16));
    }
}
