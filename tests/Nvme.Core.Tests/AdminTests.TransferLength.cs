using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>Every admin and fabrics command moves exactly the data it defines, as the kernel target checks it
/// (nvmet_check_transfer_len): otherwise Data SGL Length Invalid with DNR, before any buffer is taken.</summary>
public partial class AdminTests
{
    [Fact]
    public void Get_log_page_sgl_length_must_equal_numd()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        // The exploit: NUMD asks for 4 bytes, the SGL describes 1 MiB.
        var flood = Cmd.GetLogPage(LogPageId.Error, 4);
        flood.Sgl.Length = 1 << 20;
        var r = q.Expect(NvmeStatus.DataSglLengthInvalid, flood);
        Assert.NotEqual(0, (int)(r.Status & NvmeStatus.Dnr));
        // Shorter SGL than NUMD: the same answer.
        var shorter = Cmd.GetLogPage(LogPageId.SmartHealth, 512);
        shorter.Sgl.Length = 508;
        q.Expect(NvmeStatus.DataSglLengthInvalid, shorter);
        var none = Cmd.GetLogPage(LogPageId.SmartHealth, 512);
        none.Sgl.Length = 0;
        q.Expect(NvmeStatus.DataSglLengthInvalid, none);
        // Matching lengths work at every size, also beyond the page (zero filled, as the kernel does).
        Assert.Equal(4, q.Ok(Cmd.GetLogPage(LogPageId.SmartHealth, 4)).DataLength);
        var big = q.Ok(Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 8192));
        Assert.Equal(8192, big.DataLength);
        Assert.True(big.DataSpan[4096..].IndexOfAnyExcept((byte)0) < 0);
    }

    [Fact]
    public void Get_log_page_length_is_checked_on_discovery_controllers_too()
    {
        using var t = new TestTarget();
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        var flood = Cmd.GetLogPage(LogPageId.Discovery, 4, nsid: 0);
        flood.Sgl.Length = 1 << 20;
        d.Expect(NvmeStatus.DataSglLengthInvalid, flood);
        Assert.Equal(1024, d.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataLength);
    }

    [Fact]
    public void Commands_without_data_accept_only_a_zero_length()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        foreach (var sqe in new[]
                 {
                     Cmd.KeepAlive(), Cmd.Abort(0, 1), Cmd.SetFeatures(FeatureId.KeepAliveTimer, 5000), Cmd.GetFeatures(FeatureId.KeepAliveTimer),
                     Cmd.PropertyGet(PropertyOffset.Csts),
                 })
        {
            q.Ok(sqe);
            var withData = sqe;
            withData.Sgl.Length = 4096;
            q.Expect(NvmeStatus.DataSglLengthInvalid, withData);
        }
        // An AER with data is refused before it is parked.
        var aer = Cmd.AsyncEventRequest();
        aer.Sgl.Length = 4096;
        q.Expect(NvmeStatus.DataSglLengthInvalid, aer);
        Assert.Equal(0, q.Controller!.AsyncEvents.ParkedCount);
        // A zero-length in-capsule descriptor (SPDK's host, Set Features) is "no data" too.
        var spdk = Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100);
        spdk.Sgl.Identifier = SglDescriptor.InCapsuleOffset;
        q.Ok(spdk);
    }

    [Fact]
    public void Get_features_host_identifier_needs_exactly_16_bytes()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Ok(Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 1, length: 16));
        q.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 1, length: 4096));
        q.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 1));
    }
}
