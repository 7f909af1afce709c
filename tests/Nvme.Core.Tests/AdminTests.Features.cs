using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
namespace Nvme.Core.Tests;

public partial class AdminTests
{
    // ------------------------------------------------------------------ features

    [Fact]
    public void Mandatory_features_without_a_function_read_as_their_reset_values()
    {
        // SPDK's identify reads these; kernel nvmet answers Invalid Field and the tool reports the failures.
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.Arbitration)).Cqe.Dword0);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.PowerManagement)).Cqe.Dword0);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.ErrorRecovery)).Cqe.Dword0);
        Assert.Equal(343u, q.Ok(Cmd.GetFeatures(FeatureId.TemperatureThreshold)).Cqe.Dword0);                 // composite, over
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.TemperatureThreshold, cdw11: 1u << 20)).Cqe.Dword0);  // under
        q.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(FeatureId.TemperatureThreshold, cdw11: 1u << 16)); // sensor 1: none
        q.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(FeatureId.TemperatureThreshold, cdw11: 2u << 20)); // reserved THSEL
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.Arbitration, sel: 3)).Cqe.Dword0);                   // not changeable
        Assert.Equal(2u, q.Ok(Cmd.GetFeatures(FeatureId.ErrorRecovery, sel: 3)).Cqe.Dword0);                 // per namespace
        q.Expect(NvmeStatus.InvalidField, Cmd.SetFeatures(FeatureId.Arbitration, 7));                        // nothing to set
        var d = t.ConnectAdmin(WellKnown.DiscoveryNqn);
        d.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(FeatureId.Arbitration));                           // not on discovery
    }

    [Fact]
    public void Number_of_queues_grant()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Ok(Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x00030003)); // 4 SQs, 4 CQs
        Assert.Equal(0x00030003u, r.Cqe.Dword0);
        Assert.Equal(0x00030003u, q.Ok(Cmd.GetFeatures(FeatureId.NumberOfQueues)).Cqe.Dword0);
        r = q.Ok(Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x00070001)); // asymmetric: min wins
        Assert.Equal(0x00010001u, r.Cqe.Dword0);
        r = q.Ok(Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x1000_1000)); // more than the 64 we have
        Assert.Equal(0x003F003Fu, r.Cqe.Dword0);
        Assert.Equal(64, q.Controller!.AllocatedIoQueues);
        q.Expect(NvmeStatus.InvalidField, Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x0000FFFF));
        // Default value (SEL 1) is the maximum.
        Assert.Equal(0x003F003Fu, q.Ok(Cmd.GetFeatures(FeatureId.NumberOfQueues, sel: 1)).Cqe.Dword0);
        // Once I/O queues exist, it can no longer change.
        t.ConnectIo(q.Controller.Cntlid);
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.SetFeatures(FeatureId.NumberOfQueues, 0x00010001));
    }

    [Fact]
    public void Async_event_configuration_keep_alive_timer_and_write_cache()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(kato: 5000);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.AsyncEventConfiguration)).Cqe.Dword0);
        q.Ok(Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100));
        Assert.Equal(0x100u, q.Ok(Cmd.GetFeatures(FeatureId.AsyncEventConfiguration)).Cqe.Dword0);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.AsyncEventConfiguration, sel: 1)).Cqe.Dword0);

        Assert.Equal(5000u, q.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        q.Ok(Cmd.SetFeatures(FeatureId.KeepAliveTimer, 12000));
        Assert.Equal(12000u, q.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        Assert.Equal(12000u, q.Controller!.KeepAliveTimeoutMs);

        Assert.Equal(1u, q.Ok(Cmd.GetFeatures(FeatureId.VolatileWriteCache)).Cqe.Dword0);
        q.Ok(Cmd.SetFeatures(FeatureId.VolatileWriteCache, 0));
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.VolatileWriteCache)).Cqe.Dword0);
        Assert.False(q.Controller.VolatileWriteCacheEnabled);
        q.Ok(Cmd.SetFeatures(FeatureId.VolatileWriteCache, 1));
        Assert.True(q.Controller.VolatileWriteCacheEnabled);

        // SEL 3: capabilities (changeable, not saveable).
        Assert.Equal(4u, q.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer, sel: 3)).Cqe.Dword0);
        q.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(FeatureId.KeepAliveTimer, sel: 4));
    }

    [Fact]
    public void Host_identifier_feature()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 0, length: 16)); // EXHID=0
        var r = q.Ok(Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 1, length: 16));
        Assert.Equal(16, r.DataLength);
        // The same 16 bytes the host sent in the Connect data.
        Assert.Equal(TestTarget.HostId.ToByteArray(bigEndian: true), r.DataSpan.ToArray());
        Assert.Equal(Convert.FromHexString("14bda89c1d6f4471b495db452b9b96ed"), r.DataSpan.ToArray());
        q.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.GetFeatures(FeatureId.HostIdentifier, cdw11: 1, length: 8));
        q.Expect(NvmeStatus.CommandSequenceError, Cmd.SetFeatures(FeatureId.HostIdentifier, 1));
    }

    [Theory]
    [InlineData(0x00)]
    [InlineData(0x03)]
    [InlineData(0x7F)]
    [InlineData(0xC0)]
    public void Unknown_feature_is_invalid_field(byte fid)
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Expect(NvmeStatus.InvalidField, Cmd.GetFeatures(fid));
        q.Expect(NvmeStatus.InvalidField, Cmd.SetFeatures(fid, 0));
    }

    [Fact]
    public void Save_is_not_supported()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Expect(NvmeStatus.FeatureIdNotSaveable, Cmd.SetFeatures(FeatureId.AsyncEventConfiguration, 0x100, save: true));
        Assert.Equal(0x410D, (int)r.Status);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.AsyncEventConfiguration)).Cqe.Dword0); // not applied
    }

    [Fact]
    public void Discovery_controller_with_kato_0_gets_120_seconds_also_through_set_features()
    {
        using var t = new TestTarget();
        var d = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn, kato: 0);
        Assert.Equal(120_000u, d.Controller!.KeepAliveTimeoutMs);
        Assert.Equal(120_000u, d.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        d.Ok(Cmd.SetFeatures(FeatureId.KeepAliveTimer, 30_000));
        Assert.Equal(30_000u, d.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        d.Ok(Cmd.SetFeatures(FeatureId.KeepAliveTimer, 0));
        Assert.Equal(120_000u, d.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        // It really expires: silent past 120 s (as seen by the watchdog's clock), it is destroyed.
        Assert.True(d.Controller.KeepAliveExpired(Environment.TickCount64 + 120_001));
        // An NVM controller keeps KATO 0 = no keep-alive timer, as the host asked.
        var q = t.ConnectAdmin(kato: 0);
        Assert.Equal(0u, q.Ok(Cmd.GetFeatures(FeatureId.KeepAliveTimer)).Cqe.Dword0);
        Assert.False(q.Controller!.KeepAliveExpired(Environment.TickCount64 + 10_000_000));
    }
}
