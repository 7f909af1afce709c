using System.Buffers.Binary;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
using Nvme.Testing;

namespace Nvme.Core.Tests;

/// <summary>Namespace masking and in-band Namespace Attachment at the core level, without sockets: two hosts (A =
/// <see cref="TestTarget.HostNqn"/>, B = <see cref="TestTarget.OtherHostNqn"/>) on one subsystem.</summary>
public class MaskingCoreTests
{
    private const string A = TestTarget.HostNqn, B = TestTarget.OtherHostNqn;

    private sealed record Host(TestQueue Admin, TestQueue Io)
    {
        public ushort Cntlid => Admin.Controller!.Cntlid;
    }

    private static Host Connect(TestTarget t, string hostNqn)
    {
        var admin = t.ConnectAdmin(hostNqn: hostNqn);
        admin.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices));
        return new Host(admin, t.ConnectIo(admin.Controller!.Cntlid, hostNqn: hostNqn));
    }

    private static Namespace AddNs2(TestTarget t, NamespaceVisibility visibility, IBlockStore? store = null)
    {
        var ns = new Namespace(2, store ?? new MemoryBlockStore(1 << 20), 512, NamespaceIds.Derive(TestTarget.SubNqn, 2)) { Visibility = visibility };
        t.Subsystem.AttachNamespace(ns);
        return ns;
    }

    private static uint[] ActiveList(TestQueue admin)
    {
        var page = admin.Ok(Cmd.Identify(IdentifyCns.ActiveNamespaceList)).DataSpan.ToArray();
        return Enumerable.Range(0, 1024).Select(i => BitConverter.ToUInt32(page, 4 * i)).TakeWhile(n => n != 0).ToArray();
    }

    private static uint[] ChangedList(TestQueue admin)
    {
        var page = admin.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        return Enumerable.Range(0, 1024).Select(i => BitConverter.ToUInt32(page, 4 * i)).TakeWhile(n => n != 0).ToArray();
    }

    private static ushort[] ControllerList(TestQueue admin, byte cns, uint nsid = 0, ushort from = 0)
    {
        var sqe = Cmd.Identify(cns, nsid);
        sqe.Cdw10 |= (uint)from << 16;
        var page = admin.Ok(sqe).DataSpan.ToArray();
        int n = BinaryPrimitives.ReadUInt16LittleEndian(page);
        return Enumerable.Range(0, n).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(2 + 2 * i))).ToArray();
    }

    private static NamespaceVisibility Restricted(params string[] hosts) => NamespaceVisibility.Of(true, hosts);

    // ------------------------------------------------------------------ masking

    [Fact]
    public void A_restricted_namespace_is_inactive_for_a_host_not_listed_identify_and_io_alike()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        var aer = (A: a.Admin.Submit(Cmd.AsyncEventRequest()), B: b.Admin.Submit(Cmd.AsyncEventRequest()));
        AddNs2(t, Restricted(A));

        // Only A's controller was told about the new namespace.
        Assert.Contains(aer.A, a.Admin.Transport.Responses);
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, aer.A.Cqe.Dword0);
        Assert.DoesNotContain(aer.B, b.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.Empty(ChangedList(b.Admin));

        Assert.Equal([1u, 2u], ActiveList(a.Admin));
        Assert.Equal([1u], ActiveList(b.Admin));
        Assert.NotEqual(0ul, BitConverter.ToUInt64(a.Admin.Ok(Cmd.Identify(IdentifyCns.Namespace, 2)).DataSpan));
        Assert.All(b.Admin.Ok(Cmd.Identify(IdentifyCns.Namespace, 2)).DataSpan.ToArray(), x => Assert.Equal(0, x));
        Assert.All(b.Admin.Ok(Cmd.Identify(IdentifyCns.CommandSetIndependentNamespace, 2)).DataSpan.ToArray(), x => Assert.Equal(0, x));
        b.Admin.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Identify(IdentifyCns.NamespaceDescriptorList, 2)); // as nvmet for an inactive NSID
        a.Admin.Ok(Cmd.Identify(IdentifyCns.NamespaceDescriptorList, 2));
        b.Admin.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.GetLogPage(LogPageId.SmartHealth, 512, nsid: 2));

        a.Io.Ok(Cmd.Write(2, 0, 1), new byte[512]);
        b.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Write(2, 0, 1), new byte[512]);
        b.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));
        b.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Flush(2));
        b.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.WriteZeroes(2, 0, 1));
        b.Io.Ok(Cmd.Write(1, 0, 1), new byte[512]); // its other namespace works
        Assert.Equal(0, t.Subsystem.GetNamespace(2)!.InFlight);
    }

    [Fact]
    public async Task Unmasking_and_masking_at_run_time_is_a_hot_plug_for_that_host_only()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        var ns = AddNs2(t, Restricted()); // hidden from every host
        Assert.Equal([1u], ActiveList(a.Admin));
        var aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        var aerB = b.Admin.Submit(Cmd.AsyncEventRequest());

        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(A), TimeSpan.FromSeconds(10)));
        Assert.Contains(aerA, a.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.Equal([1u, 2u], ActiveList(a.Admin));
        a.Io.Ok(Cmd.Write(2, 0, 1), new byte[512]);

        aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(), TimeSpan.FromSeconds(10)));
        Assert.Contains(aerA, a.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.Equal([1u], ActiveList(a.Admin));
        a.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));

        // B was never concerned: no event, nothing in its changed list.
        Assert.DoesNotContain(aerB, b.Admin.Transport.Responses);
        Assert.Empty(ChangedList(b.Admin));

        // A change that concerns nobody's view (a host added to the list of an auto namespace) sends nothing.
        aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, NamespaceVisibility.Of(false, [B]), TimeSpan.FromSeconds(10)));
        Assert.Contains(aerA, a.Admin.Transport.Responses); // auto: A (and B) gained it
        Assert.Contains(aerB, b.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(b.Admin));
        aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        ChangedList(a.Admin);
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, NamespaceVisibility.Of(false, [A, B]), TimeSpan.FromSeconds(10)));
        Assert.DoesNotContain(aerA, a.Admin.Transport.Responses);
        Assert.Equal(NamespaceVisibility.Of(false, [A, B]), ns.Visibility);
    }

    [Fact]
    public async Task Masking_a_host_out_drains_its_in_flight_io_first_and_other_io_keeps_working()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        var store = new GatedBlockStore(1 << 20);
        AddNs2(t, Restricted(A, B), store);
        ChangedList(a.Admin);
        ChangedList(b.Admin);
        var aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        var aerB = b.Admin.Submit(Cmd.AsyncEventRequest());
        store.Hold = true;
        var inflight = a.Io.Submit(Cmd.Write(2, 0, 8), new byte[8 * 512]);
        Assert.DoesNotContain(inflight, a.Io.Transport.Responses);

        var masking = t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(B), TimeSpan.FromSeconds(30));
        // Draining: A's new I/O to NSID 2 is refused at once, its other namespace works, no event yet.
        a.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));
        a.Io.Ok(Cmd.Write(1, 0, 1), new byte[512]);
        Assert.False(masking.IsCompleted);
        Assert.DoesNotContain(aerA, a.Admin.Transport.Responses);

        store.Release();
        Assert.True(await masking.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal(NvmeStatus.Success, inflight.Status); // the write admitted before the mask finished normally
        Assert.Contains(aerA, a.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.DoesNotContain(aerB, b.Admin.Transport.Responses); // B keeps it: nothing changed for B
        b.Io.Ok(Cmd.Write(2, 0, 1), new byte[512]);
        Assert.Equal(0, t.Subsystem.GetNamespace(2)!.InFlight);
    }

    [Fact]
    public async Task A_stuck_request_of_the_masked_host_is_aborted_at_the_drain_timeout()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var store = new GatedBlockStore(1 << 20) { Hold = true };
        AddNs2(t, Restricted(A), store);
        var stuck = a.Io.Submit(Cmd.Write(2, 0, 1), new byte[512]);
        Assert.False(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(), TimeSpan.FromMilliseconds(200)));
        var abort = Assert.Single(a.Io.Transport.Aborts);
        Assert.Same(stuck, abort.Request);
        Assert.Equal(NvmeStatus.AbortRequested, abort.Status);
        Assert.Equal([1u], ActiveList(a.Admin));
        store.Release();
    }

    [Fact]
    public async Task Restricting_to_a_host_the_subsystem_does_not_allow_is_refused_and_changes_nothing()
    {
        using var t = new TestTarget(allowAnyHost: false); // only A allowed
        var a = Connect(t, A);
        var ns = AddNs2(t, Restricted(A));
        bool committed = false;
        var e = await Assert.ThrowsAsync<ArgumentException>(() => t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(A, B), TimeSpan.FromSeconds(1), () => committed = true));
        Assert.Contains(B, e.Message);
        Assert.Contains("not allowed", e.Message);
        Assert.False(committed);
        Assert.Equal(Restricted(A), ns.Visibility);
        await Assert.ThrowsAsync<ArgumentException>(() => t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted("not-an-nqn"), TimeSpan.FromSeconds(1)));
        Assert.Throws<ArgumentException>(() => t.Subsystem.SetNamespaceAttachHost(B, true));

        // Once allowed, it can be given the namespace.
        t.Subsystem.AllowHost(B);
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(A, B), TimeSpan.FromSeconds(1)));
        Assert.True(ns.IsVisibleTo(B));
    }

    [Fact]
    public async Task A_failing_commit_changes_nothing_and_sends_no_event()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var ns = AddNs2(t, Restricted(A));
        ChangedList(a.Admin);
        var aer = a.Admin.Submit(Cmd.AsyncEventRequest());
        await Assert.ThrowsAsync<IOException>(() => t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(), TimeSpan.FromSeconds(1), () => throw new IOException("disk full")));
        Assert.Equal(Restricted(A), ns.Visibility);
        Assert.DoesNotContain(aer, a.Admin.Transport.Responses);
        a.Io.Ok(Cmd.Read(2, 0, 1));
    }

    [Fact]
    public async Task A_host_removed_from_the_allowed_hosts_keeps_its_mask_entry_and_gets_its_view_back_when_allowed_again()
    {
        using var t = new TestTarget(allowAnyHost: false);
        t.Subsystem.AllowHost(B);
        var ns = AddNs2(t, Restricted(B));
        t.Subsystem.SetNamespaceAttachHost(B, true);
        Assert.Equal(0, t.Subsystem.DisallowHost(B)); // B had no controller
        Assert.Contains(B, ns.Visibility.Hosts);
        Assert.True(t.Subsystem.NamespaceAttachHosts.Contains(B));
        // Not allowed: it cannot connect, so the entry gives it nothing; changing other entries does not trip over it.
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(A, B), TimeSpan.FromSeconds(1)));
        t.Subsystem.AllowHost(B);
        var b = Connect(t, B);
        Assert.Equal([1u, 2u], ActiveList(b.Admin));
    }

    [Fact]
    public void Flush_all_and_the_SMART_log_of_all_namespaces_cover_only_the_hosts_own_namespaces()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        var store = new GatedBlockStore(1 << 20);
        AddNs2(t, Restricted(A), store);
        a.Io.Ok(Cmd.Write(2, 0, 8), new byte[8 * 512]);
        b.Io.Ok(Cmd.Flush(0xFFFFFFFF));
        Assert.Equal(0, store.Flushes);
        a.Io.Ok(Cmd.Flush(0xFFFFFFFF));
        Assert.Equal(1, store.Flushes);
        static ulong Writes(TestQueue admin) =>
            System.Runtime.InteropServices.MemoryMarshal.AsRef<SmartHealthLog>(admin.Ok(Cmd.GetLogPage(LogPageId.SmartHealth, 512)).DataSpan).HostWriteCommands;
        Assert.Equal(1ul, Writes(a.Admin));
        Assert.Equal(0ul, Writes(b.Admin));
    }

    // ------------------------------------------------------------------ in-band attachment

    [Fact]
    public void Namespace_attachment_needs_the_privilege_and_only_the_hosts_own_controllers()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        AddNs2(t, Restricted(A, B));
        var (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, a.Cntlid);
        a.Admin.Expect(NvmeStatus.AccessDenied, sqe, data); // no privilege (off by default)
        Assert.True(t.Subsystem.GetNamespace(2)!.IsVisibleTo(A));

        t.Subsystem.SetNamespaceAttachHost(A, true);
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, b.Cntlid);
        a.Admin.Expect(NvmeStatus.AccessDenied, sqe, data); // B's controller
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, a.Cntlid, b.Cntlid);
        a.Admin.Expect(NvmeStatus.AccessDenied, sqe, data);
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, 0x7777);
        a.Admin.Expect(NvmeStatus.ControllerListInvalid, sqe, data);
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: true);
        a.Admin.Expect(NvmeStatus.ControllerListInvalid, sqe, data); // empty list
        (sqe, data) = Cmd.NamespaceAttachment(9, detach: true, a.Cntlid);
        a.Admin.Expect(NvmeStatus.InvalidNamespaceOrFormat, sqe, data);
        (sqe, data) = Cmd.NamespaceAttachment(1, detach: true, a.Cntlid);
        a.Admin.Expect(NvmeStatus.InvalidField, sqe, data); // NSID 1 is auto: only the operator changes who sees it
        (sqe, data) = Cmd.NamespaceAttachment(1, detach: false, a.Cntlid);
        a.Admin.Expect(NvmeStatus.NamespaceAlreadyAttached, sqe, data);
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: false, a.Cntlid);
        a.Admin.Expect(NvmeStatus.NamespaceAlreadyAttached, sqe, data);
        sqe.Cdw10 = 2;
        a.Admin.Expect(NvmeStatus.InvalidField, sqe, data); // SEL 2 is reserved
        var bad = Cmd.Raw(AdminOpcode.NamespaceAttachment, 2, 512);
        a.Admin.Expect(NvmeStatus.DataSglLengthInvalid, bad); // the controller list is 4096 bytes
        Assert.True(t.Subsystem.GetNamespace(2)!.IsVisibleTo(A));
    }

    [Fact]
    public async Task Detach_and_attach_in_band_are_a_hot_remove_and_add_for_that_host_only()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var b = Connect(t, B);
        var store = new GatedBlockStore(1 << 20);
        var ns = AddNs2(t, Restricted(A, B), store);
        ChangedList(a.Admin);
        ChangedList(b.Admin);
        t.Subsystem.SetNamespaceAttachHost(A, true);
        Assert.Equal(new[] { a.Cntlid, b.Cntlid }.Order(), ControllerList(a.Admin, IdentifyCns.AttachedControllerList, 2));
        Assert.Equal(new[] { a.Cntlid, b.Cntlid }.Order(), ControllerList(a.Admin, IdentifyCns.ControllerList));
        Assert.Equal([b.Cntlid], ControllerList(a.Admin, IdentifyCns.ControllerList, from: b.Cntlid));

        var aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        var aerB = b.Admin.Submit(Cmd.AsyncEventRequest());
        store.Hold = true;
        var inflight = a.Io.Submit(Cmd.Write(2, 0, 1), new byte[512]);
        var (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, a.Cntlid);
        var detach = a.Admin.Submit(sqe, data);
        // The command waits for A's in-flight I/O: not answered yet, new I/O already refused, no event yet.
        Assert.DoesNotContain(detach, a.Admin.Transport.Responses);
        Assert.False(detach.IsParked);
        a.Io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(2, 0, 1));
        Assert.DoesNotContain(aerA, a.Admin.Transport.Responses);
        store.Release();
        await Poll.UntilAsync(() => a.Admin.Transport.Responses.Contains(detach), TimeSpan.FromSeconds(10));
        Assert.Equal(NvmeStatus.Success, detach.Status);
        Assert.Equal(NvmeStatus.Success, inflight.Status);
        Assert.Contains(aerA, a.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.Equal([1u], ActiveList(a.Admin));
        Assert.Equal(Restricted(B), ns.Visibility);
        Assert.Equal([b.Cntlid], ControllerList(a.Admin, IdentifyCns.AttachedControllerList, 2));
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, a.Cntlid);
        a.Admin.Expect(NvmeStatus.NamespaceNotAttached, sqe, data);

        aerA = a.Admin.Submit(Cmd.AsyncEventRequest());
        (sqe, data) = Cmd.NamespaceAttachment(2, detach: false, a.Cntlid);
        a.Admin.Ok(sqe, data);
        Assert.Contains(aerA, a.Admin.Transport.Responses);
        Assert.Equal([2u], ChangedList(a.Admin));
        Assert.Equal([1u, 2u], ActiveList(a.Admin));
        a.Io.Ok(Cmd.Read(2, 0, 1));

        // B saw nothing of it.
        Assert.DoesNotContain(aerB, b.Admin.Transport.Responses);
        Assert.Empty(ChangedList(b.Admin));
        // B has no privilege; it learns nothing of a namespace it does not see through CNS 12h either.
        Assert.True(await t.Subsystem.SetNamespaceVisibilityAsync(2, Restricted(A), TimeSpan.FromSeconds(1)));
        Assert.Empty(ControllerList(b.Admin, IdentifyCns.AttachedControllerList, 2));
        Assert.Equal([a.Cntlid], ControllerList(a.Admin, IdentifyCns.AttachedControllerList, 2));
    }

    [Fact]
    public async Task The_in_band_handler_of_the_host_process_is_used_and_its_failure_is_an_internal_error()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        AddNs2(t, Restricted(A));
        t.Subsystem.SetNamespaceAttachHost(A, true);
        var calls = new List<(uint, string, bool)>();
        t.Subsystem.InBandAttachment = async (nsid, host, attach) =>
        {
            calls.Add((nsid, host, attach));
            await Task.Yield();
            throw new IOException("the configuration file could not be written");
        };
        var (sqe, data) = Cmd.NamespaceAttachment(2, detach: true, a.Cntlid);
        var detach = a.Admin.Submit(sqe, data);
        await Poll.UntilAsync(() => a.Admin.Transport.Responses.Contains(detach), TimeSpan.FromSeconds(10));
        Assert.Equal(NvmeStatus.InternalError, detach.Status);
        Assert.Equal([(2u, A, false)], calls);
        Assert.True(t.Subsystem.GetNamespace(2)!.IsVisibleTo(A));
    }

    [Fact]
    public void Namespace_attachment_is_in_the_effects_log_and_oacs_claims_no_namespace_management()
    {
        using var t = new TestTarget();
        var a = Connect(t, A);
        var log = a.Admin.Ok(Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 4096)).DataSpan.ToArray();
        uint effects = BitConverter.ToUInt32(log, AdminOpcode.NamespaceAttachment * 4);
        Assert.Equal(CommandEffectsLog.CommandSupported | CommandEffectsLog.NamespaceCapabilityChange | CommandEffectsLog.NamespaceInventoryChange, effects);
        var id = a.Admin.Ok(Cmd.Identify(IdentifyCns.Controller)).DataSpan;
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(id[256..]) & (1 << 3));
    }
}
