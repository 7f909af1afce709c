using System.Buffers.Binary;
using System.Net;
using Integration.Tests.InProcess;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Xunit.Abstractions;

namespace Integration.Tests.Management;

/// <summary>What a connected host sees when an operator hot-adds, resizes and hot-removes namespaces through the
/// API: a parked Async Event Request completes with "namespace attribute changed" and the active namespace list
/// follows.</summary>
public sealed class ManagementHotPlugTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Generous = TimeSpan.FromSeconds(20);

    private static async Task<Task<NvmeCompletion>> ParkAerAsync(NvmeTcpHost host)
    {
        var aer = host.AsyncEventRequestAsync(Generous);
        // A keep-alive behind it proves the target received (and parked) the AER first.
        (await host.KeepAliveAsync()).EnsureSuccess();
        Assert.False(aer.IsCompleted);
        return aer;
    }

    private static async Task<uint[]> ActiveNamespacesAsync(NvmeTcpHost host)
    {
        var list = await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 0);
        var ids = new List<uint>();
        for (int i = 0; i < list.Length; i += 4)
        {
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(list.AsSpan(i));
            if (id == 0) break;
            ids.Add(id);
        }
        return [.. ids];
    }

    private static async Task<uint[]> ChangedNamespacesAsync(NvmeTcpHost host)
    {
        var log = await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096);
        var ids = new List<uint>();
        for (int i = 0; i < log.Length; i += 4)
        {
            uint id = BinaryPrimitives.ReadUInt32LittleEndian(log.AsSpan(i));
            if (id == 0) break;
            ids.Add(id);
        }
        return [.. ids];
    }

    [Fact]
    public async Task AddResizeRemoveViaApi_HostIsNotifiedAndSeesTheChange()
    {
        await using var t = await ApiTarget.StartAsync(output);
        await using var host = await t.ConnectAsync();
        await host.CreateIoQueuesAsync(1);
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices)).EnsureSuccess();
        Assert.Equal(new uint[] { 1u }, await ActiveNamespacesAsync(host));

        // Hot-add.
        var aer = await ParkAerAsync(host);
        await t.Http.PostJsonAsync(Api.Sub() + "/namespaces", new { nsid = 3, backend = "memory", size = "4M" }, HttpStatusCode.Created);
        var ev = (await aer.WaitAsync(Generous)).EnsureSuccess("AER after add");
        Assert.Equal(0x00040002u, ev.Dword0);
        Assert.Equal(new uint[] { 3u }, await ChangedNamespacesAsync(host));
        Assert.Equal(new uint[] { 1u, 3u }, await ActiveNamespacesAsync(host));
        var data = TestData.Random(4096, 3);
        (await host.WriteAsync(0, 3, 8, data)).EnsureSuccess();
        var back = new byte[4096];
        (await host.ReadAsync(0, 3, 8, back)).EnsureSuccess();
        Assert.Equal(data, back);

        // Resize: the event again, and Identify Namespace reports the new size.
        aer = await ParkAerAsync(host);
        await t.Http.PostJsonAsync(Api.Sub() + "/namespaces/3/resize", new { size = "8M" }, HttpStatusCode.OK);
        Assert.Equal(0x00040002u, (await aer.WaitAsync(Generous)).EnsureSuccess("AER after resize").Dword0);
        Assert.Equal(new uint[] { 3u }, await ChangedNamespacesAsync(host));
        var id = await host.IdentifyAsync(IdentifyCns.Namespace, 3);
        Assert.Equal((8UL << 20) / 512, BinaryPrimitives.ReadUInt64LittleEndian(id)); // NSZE

        // Hot-remove: the event, and the NSID is gone from the active list.
        aer = await ParkAerAsync(host);
        await t.Http.DeleteOkAsync(Api.Sub() + "/namespaces/3");
        Assert.Equal(0x00040002u, (await aer.WaitAsync(Generous)).EnsureSuccess("AER after remove").Dword0);
        Assert.Equal(new uint[] { 3u }, await ChangedNamespacesAsync(host));
        Assert.Equal(new uint[] { 1u }, await ActiveNamespacesAsync(host));
        Assert.NotEqual(0, (await host.ReadAsync(0, 3, 0, new byte[512])).Status); // I/O to it now fails
    }
}
