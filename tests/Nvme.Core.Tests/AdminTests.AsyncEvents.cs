using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
namespace Nvme.Core.Tests;

public partial class AdminTests
{
    // ------------------------------------------------------------------ async events

    [Fact]
    public void Aer_parks_up_to_aerl_plus_one_then_limit_exceeded()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var parked = new List<NvmeRequest>();
        for (int i = 0; i < 4; i++) parked.Add(q.Submit(Cmd.AsyncEventRequest()));
        Assert.Empty(q.Transport.Responses.Intersect(parked));
        Assert.Equal(4, q.Controller!.AsyncEvents.ParkedCount);
        var over = q.Expect(NvmeStatus.AsyncEventRequestLimitExceeded, Cmd.AsyncEventRequest());
        Assert.Equal(0x4105, (int)over.Status);
        Assert.Equal(4, q.Controller.AsyncEvents.ParkedCount);
    }

    [Fact]
    public void Namespace_attach_completes_a_parked_aer()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices));
        var aer1 = q.Submit(Cmd.AsyncEventRequest());
        var aer2 = q.Submit(Cmd.AsyncEventRequest());
        Assert.DoesNotContain(aer1, q.Transport.Responses);

        t.Subsystem.AttachNamespace(NewNs(2));
        Assert.Contains(aer1, q.Transport.Responses);
        Assert.Equal(NvmeStatus.Success, aer1.Status);
        Assert.Equal(0x00040002u, aer1.Cqe.Dword0);
        Assert.Equal(aer1.Sqe.CommandId, aer1.Cqe.CommandId);
        Assert.DoesNotContain(aer2, q.Transport.Responses);

        // Masked until the log is read: a second change only lands in the list.
        t.Subsystem.AttachNamespace(NewNs(3));
        Assert.DoesNotContain(aer2, q.Transport.Responses);

        var log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096, rae: false)).DataSpan.ToArray();
        Assert.Equal(2u, U32(log, 0));
        Assert.Equal(3u, U32(log, 4));
        Assert.All(log.AsSpan(8).ToArray(), b => Assert.Equal(0, b));
        // Read-and-clear.
        var again = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        Assert.All(again, b => Assert.Equal(0, b));

        // Unmasked: the next change (a detach) completes the second AER.
        Assert.Same(t.Ns, t.Subsystem.DetachNamespace(1));
        Assert.Contains(aer2, q.Transport.Responses);
        Assert.Equal(0x00040002u, aer2.Cqe.Dword0);
        log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        Assert.Equal(1u, U32(log, 0));
        Assert.Equal(0u, U32(log, 4));
    }

    [Fact]
    public void Namespace_change_with_no_parked_aer_is_queued()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100));
        t.Subsystem.AttachNamespace(NewNs(2));
        // The next AER completes at once with the queued event.
        var aer = q.Expect(NvmeStatus.Success, Cmd.AsyncEventRequest());
        Assert.Equal(0x00040002u, aer.Cqe.Dword0);
        // Only one event was queued: the next AER parks.
        var parked = q.Submit(Cmd.AsyncEventRequest());
        Assert.DoesNotContain(parked, q.Transport.Responses);
    }

    [Fact]
    public void Namespace_notices_disabled_by_configuration_complete_nothing()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var aer = q.Submit(Cmd.AsyncEventRequest()); // AEC bit 8 not set
        t.Subsystem.AttachNamespace(NewNs(2));
        Assert.DoesNotContain(aer, q.Transport.Responses);
        // The changed list is still kept.
        var log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan;
        Assert.Equal(2u, U32(log, 0));
    }

    [Fact]
    public void Changed_list_rae_keeps_the_notice_masked()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100));
        var aer1 = q.Submit(Cmd.AsyncEventRequest());
        var aer2 = q.Submit(Cmd.AsyncEventRequest());
        t.Subsystem.AttachNamespace(NewNs(2));
        Assert.Contains(aer1, q.Transport.Responses);

        // RAE=1: list returned and cleared, but the notice stays masked.
        var log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096, rae: true)).DataSpan;
        Assert.Equal(2u, U32(log, 0));
        t.Subsystem.AttachNamespace(NewNs(3));
        Assert.DoesNotContain(aer2, q.Transport.Responses);

        // RAE=0 unmasks; the following change completes aer2.
        log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096, rae: false)).DataSpan;
        Assert.Equal(3u, U32(log, 0));
        Assert.DoesNotContain(aer2, q.Transport.Responses);
        t.Subsystem.AttachNamespace(NewNs(4));
        Assert.Contains(aer2, q.Transport.Responses);
    }

    [Fact]
    public void Changed_list_overflows_to_ffffffff()
    {
        using var t = new TestTarget(new TargetLimits { MaxNamespaces = 4096 });
        var q = t.ConnectAdmin();
        for (uint n = 2; n <= 1030; n++) t.Subsystem.AttachNamespace(NewNs(n, 4096));
        var log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan.ToArray();
        Assert.Equal(0xFFFFFFFFu, U32(log, 0));
        Assert.All(log.AsSpan(4).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Changed_list_dedupes()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        t.Subsystem.AttachNamespace(NewNs(2));
        t.Subsystem.DetachNamespace(2);
        t.Subsystem.AttachNamespace(NewNs(2));
        var log = q.Ok(Cmd.GetLogPage(LogPageId.ChangedNamespaceList, 4096)).DataSpan;
        Assert.Equal(2u, U32(log, 0));
        Assert.Equal(0u, U32(log, 4));
    }

    [Fact]
    public void Parked_aers_of_a_closed_queue_are_never_completed()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100));
        var aer = q.Submit(Cmd.AsyncEventRequest());
        q.Queue.Close();
        t.Subsystem.AttachNamespace(NewNs(2));
        Assert.DoesNotContain(aer, q.Transport.Responses);
    }
}
