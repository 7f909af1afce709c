using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

public sealed class ConnectAndIdentifyTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    public async Task AdminAndIoQueues_IdentifyControllerNamespaceAndLists(int ioQueues)
    {
        await using var target = await TestTarget.StartAsync(output, c => c.Subsystems[0].Namespaces.Add(
            new NamespaceConfig { Nsid = 3, Backend = "memory", Size = "16M", BlockSize = 4096 }));
        await using var host = await target.ConnectWithIoAsync(ioQueues);

        Assert.Equal(ioQueues, host.IoQueues.Count);
        var ctrl = Assert.Single(target.Host.Target.Controllers);
        Assert.Equal(host.Cntlid, ctrl.Cntlid);
        Assert.Equal(ioQueues, ctrl.IoQueueCount);
        Assert.All(host.IoQueues, q => Assert.Equal(host.Cntlid, q.ControllerId));

        // CAP: MQES 127 (default), CSS NVM; VS 1.3
        Assert.Equal(127ul, host.Cap & 0xFFFF);
        Assert.NotEqual(0ul, (host.Cap >> 37) & 1);
        var vs = await host.PropertyGetAsync(PropertyOffset.Vs, false);
        Assert.Equal(0x00010300u, vs.EnsureSuccess().Dword0);
        var cc = await host.PropertyGetAsync(PropertyOffset.Cc, false);
        Assert.Equal(NvmeTcpHost.CcEnableValue, cc.EnsureSuccess().Dword0);

        var id = host.IdentifyController;
        Assert.Equal(host.Cntlid, id.Cntlid);
        Assert.NotEqual(0, id.Kas);
        Assert.Equal((8192u + 64) / 16, id.Ioccsz);
        Assert.True(id.Ioccsz >= 4);
        Assert.True(id.Iorcsz >= 1);
        Assert.Equal(0, id.Icdoff);
        Assert.NotEqual(0u, id.Sgls & 3);
        Assert.Equal(8, id.Mdts);
        Assert.NotEqual(0, id.Maxcmd);
        Assert.NotEqual(0u, id.Nn);
        Assert.NotEqual(0u, id.Oaes & (1u << 8));
        Assert.Equal(0x66, id.Sqes);
        Assert.Equal(0x44, id.Cqes);
        Assert.True(id.Ver >= 0x00010100);
        Assert.Equal(TestTarget.Nqn, SpecText.ReadNulTerminated(id.SubNqn));
        AssertSpacePaddedAscii(host.IdentifyControllerData.AsSpan(4, 20));
        AssertSpacePaddedAscii(host.IdentifyControllerData.AsSpan(24, 40));
        AssertSpacePaddedAscii(host.IdentifyControllerData.AsSpan(64, 8));

        // Active namespace list: 1 and 3, ascending, zero terminated.
        var list = await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 0);
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32LittleEndian(list));
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(list.AsSpan(4)));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(list.AsSpan(8)));
        var after1 = await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 1);
        Assert.Equal(3u, BinaryPrimitives.ReadUInt32LittleEndian(after1));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(after1.AsSpan(4)));

        // Identify Namespace: sizes and LBA format.
        var ns1 = MemoryMarshal.Read<IdentifyNamespace>(await host.IdentifyAsync(IdentifyCns.Namespace, 1));
        Assert.Equal(TestTarget.NamespaceBlocks, ns1.Nsze);
        Assert.Equal(TestTarget.NamespaceBlocks, ns1.Ncap);
        Assert.Equal(9u, (ns1.Lbaf0 >> 16) & 0xFF);
        var ns3 = MemoryMarshal.Read<IdentifyNamespace>(await host.IdentifyAsync(IdentifyCns.Namespace, 3));
        Assert.Equal((16ul << 20) / 4096, ns3.Nsze);
        Assert.Equal(12u, (ns3.Lbaf0 >> 16) & 0xFF);
        // An inactive NSID identifies as all zeros.
        var ns2 = await host.IdentifyAsync(IdentifyCns.Namespace, 2);
        Assert.All(ns2, b => Assert.Equal(0, b));

        // Namespace identification descriptors: EUI-64, NGUID, UUID, CSI; unique per namespace.
        var d1 = ParseDescriptors(await host.IdentifyAsync(IdentifyCns.NamespaceDescriptorList, 1));
        var d3 = ParseDescriptors(await host.IdentifyAsync(IdentifyCns.NamespaceDescriptorList, 3));
        Assert.Equal(8, d1[NsIdType.Eui64].Length);
        Assert.Equal(16, d1[NsIdType.Nguid].Length);
        Assert.Equal(16, d1[NsIdType.Uuid].Length);
        Assert.Equal([0], d1[NsIdType.Csi]);
        Assert.Equal(d1[NsIdType.Nguid], ((ReadOnlySpan<byte>)ns1.Nguid).ToArray());
        Assert.Equal(d1[NsIdType.Eui64], ((ReadOnlySpan<byte>)ns1.Eui64).ToArray());
        foreach (var t in new[] { NsIdType.Eui64, NsIdType.Nguid, NsIdType.Uuid })
        {
            Assert.NotEqual(d1[t], d3[t]);
            Assert.Contains(d1[t], b => b != 0);
        }

        // Every I/O queue works.
        for (int q = 0; q < ioQueues; q++)
        {
            var data = TestData.Random(4096, 100 + q);
            (await host.WriteAsync(q, 1, (ulong)q * 8, data)).EnsureSuccess();
            var back = new byte[4096];
            (await host.ReadAsync(q, 1, (ulong)q * 8, back)).EnsureSuccess();
            Assert.Equal(data, back);
        }
    }

    [Fact]
    public async Task FeaturesKeepAliveAndLogs()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);

        (await host.KeepAliveAsync()).EnsureSuccess("Keep Alive");
        var kato = (await host.GetFeaturesAsync(FeatureId.KeepAliveTimer)).EnsureSuccess();
        Assert.Equal(host.Options.KeepAliveTimeoutMs, kato.Dword0);
        var queues = (await host.GetFeaturesAsync(FeatureId.NumberOfQueues)).EnsureSuccess();
        Assert.Equal(0u, queues.Dword0 & 0xFFFF); // one I/O queue granted, 0's based
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, 1u << 8)).EnsureSuccess();
        Assert.Equal(1u << 8, (await host.GetFeaturesAsync(FeatureId.AsyncEventConfiguration)).EnsureSuccess().Dword0);
        // Unknown feature: Invalid Field in Command.
        Assert.Equal(0x4002, (await host.GetFeaturesAsync(0x7E)).Status);
        // Unknown admin opcode: Invalid Command Opcode.
        Assert.Equal(0x4001, (await host.Admin.SubmitAsync(new SubmissionQueueEntry { Opcode = 0x7C })).Status);

        var effects = await host.GetLogPageAsync(LogPageId.CommandsSupportedAndEffects, 4096);
        Assert.NotEqual(0u, BinaryPrimitives.ReadUInt32LittleEndian(effects.AsSpan(CommandEffectsLog.IoOffset + IoOpcode.Read * 4)) & 1);
        Assert.NotEqual(0u, BinaryPrimitives.ReadUInt32LittleEndian(effects.AsSpan(AdminOpcode.Identify * 4)) & 1);
        var fw = await host.GetLogPageAsync(LogPageId.FirmwareSlot, 512);
        Assert.Equal(1, fw[0]);
        Assert.Equal(0x4109, (await host.Admin.SubmitAsync(Sqe.GetLogPage(0x7F, 512), controllerData: new byte[512])).Status);
    }

    [Fact]
    public async Task AsyncEvent_NamespaceAttachedWhileConnected_CompletesAerAndListsNsid()
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var host = await target.ConnectWithIoAsync(1);
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices)).EnsureSuccess();
        var aer = host.AsyncEventRequestAsync(TimeSpan.FromSeconds(20));
        // Let the AER reach the target (it is parked; a keep-alive behind it proves it was received first).
        (await host.KeepAliveAsync()).EnsureSuccess();
        Assert.False(aer.IsCompleted);

        var sub = target.Host.Target.Subsystems.Single();
        sub.AttachNamespace(Target.TargetHost.OpenNamespace(sub.Nqn, new NamespaceConfig { Nsid = 7, Backend = "memory", Size = "1M" }, Target.Storage.StoragePolicy.Create(null, null)));

        var ev = (await aer).EnsureSuccess("AER");
        Assert.Equal(AsyncEvent.NamespaceAttributeChangedDword0, ev.Dword0);
        var changed = await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(changed));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(changed.AsSpan(4)));
        var list = await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 0);
        Assert.Equal(7u, BinaryPrimitives.ReadUInt32LittleEndian(list.AsSpan(4)));
        // The new namespace takes I/O at once.
        var data = TestData.Random(1024, 7);
        (await host.WriteAsync(0, 7, 0, data)).EnsureSuccess();
        var back = new byte[1024];
        (await host.ReadAsync(0, 7, 0, back)).EnsureSuccess();
        Assert.Equal(data, back);
    }

    private static void AssertSpacePaddedAscii(ReadOnlySpan<byte> field)
    {
        Assert.NotEqual((byte)' ', field[0]);
        foreach (var b in field) Assert.InRange(b, (byte)0x20, (byte)0x7E);
    }

    private static Dictionary<byte, byte[]> ParseDescriptors(byte[] page)
    {
        var d = new Dictionary<byte, byte[]>();
        int o = 0;
        while (o + 4 <= page.Length && page[o] != 0)
        {
            byte type = page[o], len = page[o + 1];
            Assert.False(d.ContainsKey(type), $"descriptor type {type} twice");
            d[type] = page.AsSpan(o + 4, len).ToArray();
            o += 4 + len;
        }
        return d;
    }
}
