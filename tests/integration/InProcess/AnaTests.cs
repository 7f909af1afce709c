using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>ANA over a real TCP connection: a host on each of two ports, a group made inaccessible on one port. The host
/// there gets the ANA change event, reads the log, and its I/O is answered ANA Inaccessible without executing; the host on
/// the other port keeps working; back to optimized, the next event comes and the I/O goes through.</summary>
public sealed class AnaTests(ITestOutputHelper output)
{
    private const uint Notices = AsyncEvent.ConfigNamespaceAttributeNotices | AsyncEvent.ConfigAnaChangeNotices;

    private static (ulong ChangeCount, List<(uint Group, AnaState State, uint[] Nsids)> Groups) ParseLog(byte[] log)
    {
        var header = MemoryMarshal.Read<AnaLogHeader>(log);
        var groups = new List<(uint, AnaState, uint[])>();
        int o = AnaLogHeader.Size;
        for (int i = 0; i < header.NumberOfDescriptors; i++)
        {
            var d = MemoryMarshal.Read<AnaGroupDescriptor>(log.AsSpan(o));
            o += AnaGroupDescriptor.Size;
            var nsids = Enumerable.Range(0, (int)d.NumberOfNsids).Select(k => BinaryPrimitives.ReadUInt32LittleEndian(log.AsSpan(o + 4 * k))).ToArray();
            o += 4 * nsids.Length;
            groups.Add((d.GroupId, (AnaState)d.State, nsids));
        }
        return (header.ChangeCount, groups);
    }

    private static async Task ExpectAnaNoticeAsync(Task<NvmeCompletion> aer, string what)
    {
        var c = await aer.WaitAsync(AsyncEvents.EventWait);
        c.EnsureSuccess($"AER ({what})");
        Assert.True(c.Dword0 == AsyncEvent.AnaChangeDword0, $"{what}: AER dword0 0x{c.Dword0:x8}, expected 0x000c0302");
    }

    [Fact]
    public async Task GroupInaccessibleOnOnePort_EventLogAndPathStatus_ThenBack()
    {
        await using var target = await TestTarget.StartAsync(output, c =>
        {
            c.Ports.Add(new PortConfig { Id = 2, Address = "127.0.0.1", Port = 0 });
            c.Subsystems[0].Namespaces.Add(new NamespaceConfig { Nsid = 2, Backend = "memory", Size = "1M", AnaGroup = 7 });
        });
        var sub = target.Host.Target.FindSubsystem(TestTarget.Nqn)!;
        await using var onPort1 = await NvmeTcpHost.ConnectAsync(target.Host.Endpoints[0], TestTarget.Nqn);
        await using var onPort2 = await NvmeTcpHost.ConnectAsync(target.Host.Endpoints[1], TestTarget.Nqn);
        foreach (var h in new[] { onPort1, onPort2 })
        {
            await h.CreateIoQueuesAsync(1);
            (await h.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, Notices)).EnsureSuccess("Set Features AEC");
        }
        var id = MemoryMarshal.Read<IdentifyController>(await onPort1.IdentifyAsync(IdentifyCns.Controller));
        Assert.Equal(0xB, id.Cmic);
        Assert.Equal(7u, MemoryMarshal.Read<IdentifyNamespace>(await onPort1.IdentifyAsync(IdentifyCns.Namespace, 2)).Anagrpid);

        var (count0, groups) = ParseLog(await onPort1.GetLogPageAsync(LogPageId.AsymmetricNamespaceAccess, 4096));
        Assert.Equal([(1u, AnaState.Optimized, new uint[] { 1 }), (7u, AnaState.Optimized, new uint[] { 2 })],
            groups.Select(g => (g.Group, g.State, g.Nsids)).ToList(), new GroupComparer());

        var data = TestData.Random(512, 9);
        (await onPort2.WriteAsync(0, 2, 0, data)).EnsureSuccess("write before");
        var aer1 = await AsyncEvents.ParkAerAsync(onPort1);
        var aer2 = await AsyncEvents.ParkAerAsync(onPort2);

        Assert.Equal(1, sub.SetAnaState(7, AnaState.Inaccessible, portId: 2));
        await ExpectAnaNoticeAsync(aer2, "group 7 inaccessible on port 2");
        await AsyncEvents.AssertNotCompletedAsync(aer1, "port 1's state did not change");
        var (count1, after) = ParseLog(await onPort2.GetLogPageAsync(LogPageId.AsymmetricNamespaceAccess, 4096));
        Assert.Equal(count0 + 1, count1);
        Assert.Equal(AnaState.Inaccessible, after.Single(g => g.Group == 7).State);
        Assert.Equal(AnaState.Optimized, ParseLog(await onPort1.GetLogPageAsync(LogPageId.AsymmetricNamespaceAccess, 4096)).Groups.Single(g => g.Group == 7).State);

        var buf = new byte[512];
        Assert.Equal(0x0302, (await onPort2.ReadAsync(0, 2, 0, buf)).Status);         // ANA Inaccessible, no DNR
        Assert.Equal(0x0302, (await onPort2.WriteAsync(0, 2, 0, new byte[512])).Status);
        (await onPort2.ReadAsync(0, 1, 0, buf)).EnsureSuccess("group 1 on port 2");
        (await onPort1.ReadAsync(0, 2, 0, buf)).EnsureSuccess("group 7 on port 1");
        Assert.Equal(data, buf);                                                        // the refused write never ran
        (await onPort2.IdentifyRawAsync(IdentifyCns.Namespace, 2, new byte[4096])).EnsureSuccess("admin still works");

        var aer2b = await AsyncEvents.ParkAerAsync(onPort2);
        Assert.Equal(1, sub.SetAnaState(7, AnaState.Optimized));
        await ExpectAnaNoticeAsync(aer2b, "group 7 optimized again");
        Assert.Equal(AnaState.Optimized, ParseLog(await onPort2.GetLogPageAsync(LogPageId.AsymmetricNamespaceAccess, 4096)).Groups.Single(g => g.Group == 7).State);
        (await onPort2.ReadAsync(0, 2, 0, buf)).EnsureSuccess("read when optimized again");
        Assert.Equal(data, buf);
        await AsyncEvents.AssertNotCompletedAsync(aer1, "port 1 still had nothing to hear");
    }

    private sealed class GroupComparer : IEqualityComparer<(uint, AnaState, uint[])>
    {
        public bool Equals((uint, AnaState, uint[]) a, (uint, AnaState, uint[]) b) => a.Item1 == b.Item1 && a.Item2 == b.Item2 && a.Item3.SequenceEqual(b.Item3);
        public int GetHashCode((uint, AnaState, uint[]) x) => HashCode.Combine(x.Item1, x.Item2);
    }
}
