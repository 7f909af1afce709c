using System.Buffers.Binary;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Target.Configuration;
using Target.Management;
using Xunit.Abstractions;
using Xunit.Sdk;

using static Integration.Tests.InProcess.AsyncEvents;

namespace Integration.Tests.InProcess;

/// <summary>
/// Namespace masking and in-band Namespace Attachment over NVMe/TCP: two hosts (two host NQNs) connected to one
/// subsystem; NSID 2 appears and goes for one of them (event, changed list, Identify, I/O) while the other sees
/// nothing at all, whether the operator changes the mask (TargetManager, as the API does) or the host itself
/// detaches and attaches its own controller.
/// </summary>
public sealed class NamespaceMaskingTests(ITestOutputHelper output)
{
    private const string Nqn = TestTarget.Nqn;
    private const string HostA = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11"; // the initiator's default
    private const string HostB = "nqn.2014-08.org.nvmexpress:uuid:0b7e3c1d-2a4f-4e5b-8c6d-7e8f9a0b1c2d";
    private const ushort StatusInvalidNamespace = 0x400B;
    private const ushort StatusAccessDenied = 0x4286;
    private const ushort StatusNamespaceNotAttached = 0x411A;

    private static Task<TestTarget> StartAsync(ITestOutputHelper output, string[] ns2Hosts) => TestTarget.StartAsync(output, c =>
        c.Subsystems[0].Namespaces.Add(new NamespaceConfig
        {
            Nsid = 2, Backend = "memory", Size = "16M", BlockSize = 512, Visibility = NamespaceConfig.VisibilityRestricted, Hosts = [.. ns2Hosts],
        }));

    private static async Task<NvmeTcpHost> ConnectAsync(TestTarget target, string hostNqn)
    {
        var options = hostNqn == HostA ? new NvmeTcpHostOptions()
            : new NvmeTcpHostOptions { HostNqn = hostNqn, HostId = Guid.Parse(hostNqn[^36..]) };
        var host = await target.ConnectWithIoAsync(1, options);
        (await host.SetFeaturesAsync(FeatureId.AsyncEventConfiguration, AsyncEvent.ConfigNamespaceAttributeNotices)).EnsureSuccess("Set Features 0Bh");
        return host;
    }

    [Fact]
    public async Task TwoHosts_OnlyTheUnmaskedOneSeesNamespace2AppearAndGo_TheOtherGetsNothing()
    {
        await using var target = await StartAsync(output, []); // NSID 2 hidden from every host
        var m = target.Host.Manager;
        await using var a = await ConnectAsync(target, HostA);
        await using var b = await ConnectAsync(target, HostB);
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(a));
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(b));
        var aerB = await ParkAerAsync(b); // stays parked for the whole test: B is never concerned

        // ---- unmask for A: appears on A only
        var aerA = await ParkAerAsync(a);
        var info = await m.AddNamespaceHostAsync(Nqn, 2, HostA);
        Assert.Equal("restricted", info.Visibility);
        Assert.Equal([HostA], info.Hosts!);
        await ExpectNoticeAsync(aerA, "A: unmasked");
        Assert.Equal(new uint[] { 2u }, await ChangedListAsync(a));
        Assert.Equal(new uint[] { 1u, 2u }, await ActiveNsidsAsync(a));
        Assert.Equal(16UL << 11, BinaryPrimitives.ReadUInt64LittleEndian(await a.IdentifyAsync(IdentifyCns.Namespace, 2)));
        var data = TestData.Random(4096, 7);
        (await a.WriteAsync(0, 2, 8, data)).EnsureSuccess("A: write NSID 2");
        var back = new byte[4096];
        (await a.ReadAsync(0, 2, 8, back)).EnsureSuccess("A: read NSID 2");
        Assert.Equal(data, back);

        await AssertNotCompletedAsync(aerB, "B got an event for A's unmask");
        Assert.Empty(await ChangedListAsync(b, retainAsyncEvent: true));
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(b));
        Assert.True((await b.IdentifyAsync(IdentifyCns.Namespace, 2)).AsSpan().IndexOfAnyExcept((byte)0) < 0, "B's Identify of NSID 2 is not zeros");
        Assert.Equal(StatusInvalidNamespace, (await b.ReadAsync(0, 2, 8, new byte[4096])).Status);
        Assert.Equal(StatusInvalidNamespace, (await b.WriteAsync(0, 2, 0, data)).Status);
        (await b.WriteAsync(0, 1, 0, data)).EnsureSuccess("B: write NSID 1");

        // ---- mask A again: goes from A only; the data stays for when it comes back
        aerA = await ParkAerAsync(a);
        info = await m.RemoveNamespaceHostAsync(Nqn, 2, HostA);
        Assert.Empty(info.Hosts!);
        await ExpectNoticeAsync(aerA, "A: masked");
        Assert.Equal(new uint[] { 2u }, await ChangedListAsync(a));
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(a));
        Assert.Equal(StatusInvalidNamespace, (await a.ReadAsync(0, 2, 8, back)).Status);
        (await a.ReadAsync(0, 1, 0, back)).EnsureSuccess("A: read NSID 1 after the mask");

        await AssertNotCompletedAsync(aerB, "B got an event for A's mask");
        Assert.Empty(await ChangedListAsync(b, retainAsyncEvent: true));

        // ---- restricted -> auto: both gain it (each its own event); auto -> restricted to B: A loses it, B keeps it
        aerA = await ParkAerAsync(a);
        await m.SetNamespaceVisibilityAsync(Nqn, 2, "auto");
        await ExpectNoticeAsync(aerA, "A: auto");
        await ExpectNoticeAsync(aerB, "B: auto");
        Assert.Equal(new uint[] { 2u }, await ChangedListAsync(b));
        Assert.Equal(new uint[] { 2u }, await ChangedListAsync(a));
        await m.AddNamespaceHostAsync(Nqn, 2, HostB); // listed while auto: no view changes, no event
        aerA = await ParkAerAsync(a);
        aerB = await ParkAerAsync(b);
        await m.SetNamespaceVisibilityAsync(Nqn, 2, "restricted");
        await ExpectNoticeAsync(aerA, "A: restricted to B");
        await AssertNotCompletedAsync(aerB, "B got an event although it keeps NSID 2");
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(a));
        Assert.Equal(new uint[] { 1u, 2u }, await ActiveNsidsAsync(b));
        (await b.ReadAsync(0, 2, 8, back)).EnsureSuccess("B: read NSID 2");
        Assert.Equal(data, back);
    }

    [Fact]
    public async Task MaskingOut_WaitsForTheHostsInFlightIo_OtherNamespacesNeverFail()
    {
        await using var target = await StartAsync(output, [HostA]);
        var m = target.Host.Manager;
        await using var a = await ConnectAsync(target, HostA);
        // Writes keep flowing on both namespaces; the mask change lands in the middle of them.
        using var stop = new CancellationTokenSource();
        var ns1Failures = 0;
        var ns2Statuses = new System.Collections.Concurrent.ConcurrentBag<ushort>();
        var writers = Enumerable.Range(0, 4).Select(i => Task.Run(async () =>
        {
            var buf = TestData.Random(8192, i);
            for (ulong lba = 0; !stop.IsCancellationRequested; lba = (lba + 16) % 4096)
            {
                if ((await a.WriteAsync(0, 1, lba, buf)).Status != 0) Interlocked.Increment(ref ns1Failures);
                ns2Statuses.Add((await a.WriteAsync(0, 2, lba, buf)).Status);
            }
        })).ToArray();
        await Poll.UntilAsync(() => ns2Statuses.Count > 50, TimeSpan.FromSeconds(30));
        await m.RemoveNamespaceHostAsync(Nqn, 2, HostA);
        var after = ns2Statuses.Count;
        await Poll.UntilAsync(() => ns2Statuses.Count > after + 50, TimeSpan.FromSeconds(30));
        stop.Cancel();
        await Task.WhenAll(writers);
        Assert.Equal(0, ns1Failures);
        // Every NSID 2 write either succeeded (admitted before the change, drained) or was refused as an inactive NSID.
        Assert.All(ns2Statuses, s => Assert.True(s is 0 or StatusInvalidNamespace, $"NSID 2 write answered 0x{s:x4}"));
        Assert.Contains((ushort)StatusInvalidNamespace, ns2Statuses);
        Assert.Equal(0, target.Host.Target.FindSubsystem(Nqn)!.GetNamespace(2)!.InFlight);
    }

    [Fact]
    public async Task InBand_DetachAndAttach_OwnControllerWithThePrivilege_OtherHostUntouched_NoPrivilegeIsAccessDenied()
    {
        await using var target = await StartAsync(output, [HostA, HostB]);
        var m = target.Host.Manager;
        await using var a = await ConnectAsync(target, HostA);
        await using var b = await ConnectAsync(target, HostB);
        await m.AddAttachHostAsync(Nqn, HostA);
        Assert.Equal([HostA], m.ListAttachHosts(Nqn));

        // Identify CNS 13h: both controllers; CNS 12h for NSID 2: both are attached.
        Assert.Equal(new[] { a.Cntlid, b.Cntlid }.Order(), ControllerList(await a.IdentifyAsync(IdentifyCns.ControllerList)));
        Assert.Equal(new[] { a.Cntlid, b.Cntlid }.Order(), ControllerList(await a.IdentifyAsync(IdentifyCns.AttachedControllerList, 2)));

        // B has no privilege: Access Denied, nothing changes.
        Assert.Equal(StatusAccessDenied, (await AttachmentAsync(b, 2, detach: true, b.Cntlid)).Status);
        // A may not detach B's controller.
        Assert.Equal(StatusAccessDenied, (await AttachmentAsync(a, 2, detach: true, b.Cntlid)).Status);

        var aerA = await ParkAerAsync(a);
        var aerB = await ParkAerAsync(b);
        (await AttachmentAsync(a, 2, detach: true, a.Cntlid)).EnsureSuccess("A: detach NSID 2 from its own controller");
        await ExpectNoticeAsync(aerA, "A: detached");
        Assert.Equal(new uint[] { 2u }, await ChangedListAsync(a));
        Assert.Equal(new uint[] { 1u }, await ActiveNsidsAsync(a));
        Assert.Equal(StatusInvalidNamespace, (await a.ReadAsync(0, 2, 0, new byte[512])).Status);
        Assert.Equal(new ushort[] { b.Cntlid }, ControllerList(await a.IdentifyAsync(IdentifyCns.AttachedControllerList, 2)));
        Assert.Equal([HostB], m.GetNamespace(Nqn, 2).Hosts);
        Assert.Equal(StatusNamespaceNotAttached, (await AttachmentAsync(a, 2, detach: true, a.Cntlid)).Status);

        aerA = await ParkAerAsync(a);
        (await AttachmentAsync(a, 2, detach: false, a.Cntlid)).EnsureSuccess("A: attach NSID 2 again");
        await ExpectNoticeAsync(aerA, "A: attached");
        Assert.Equal(new uint[] { 1u, 2u }, await ActiveNsidsAsync(a));
        (await a.ReadAsync(0, 2, 0, new byte[512])).EnsureSuccess("A: read NSID 2 after the attach");
        Assert.Equal(new[] { HostA, HostB }.Order(StringComparer.Ordinal), m.GetNamespace(Nqn, 2).Hosts!);

        await AssertNotCompletedAsync(aerB, "B got an event for A's detach or attach");
        Assert.Empty(await ChangedListAsync(b, retainAsyncEvent: true));
        Assert.Equal(new uint[] { 1u, 2u }, await ActiveNsidsAsync(b));

        // Taking the privilege away: A is denied from then on.
        await m.RemoveAttachHostAsync(Nqn, HostA);
        Assert.Equal(StatusAccessDenied, (await AttachmentAsync(a, 2, detach: true, a.Cntlid)).Status);
        var refused = await Assert.ThrowsAsync<ManagementException>(() => m.AddNamespaceHostAsync(Nqn, 2, HostA));
        Assert.Equal(ManagementError.Conflict, refused.Kind);
    }

    // ------------------------------------------------------------------ helpers

    private static Task<NvmeCompletion> AttachmentAsync(NvmeTcpHost host, uint nsid, bool detach, params ushort[] cntlids)
    {
        var list = new byte[4096];
        BinaryPrimitives.WriteUInt16LittleEndian(list, (ushort)cntlids.Length);
        for (int i = 0; i < cntlids.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(list.AsSpan(2 + 2 * i), cntlids[i]);
        return host.Admin.SubmitAsync(new SubmissionQueueEntry { Opcode = AdminOpcode.NamespaceAttachment, Nsid = nsid, Cdw10 = detach ? 1u : 0u }, hostData: list);
    }

    private static ushort[] ControllerList(byte[] page) =>
        [.. Enumerable.Range(0, BinaryPrimitives.ReadUInt16LittleEndian(page)).Select(i => BinaryPrimitives.ReadUInt16LittleEndian(page.AsSpan(2 + 2 * i)))];

    private static async Task<uint[]> ChangedListAsync(NvmeTcpHost host, bool retainAsyncEvent = false) =>
        NsidList(await host.GetLogPageAsync(LogPageId.ChangedNamespaceList, 4096, retainAsyncEvent: retainAsyncEvent));

    private static async Task<uint[]> ActiveNsidsAsync(NvmeTcpHost host) => NsidList(await host.IdentifyAsync(IdentifyCns.ActiveNamespaceList, 0));

    private static uint[] NsidList(byte[] page) =>
        [.. Enumerable.Range(0, page.Length / 4).Select(i => BinaryPrimitives.ReadUInt32LittleEndian(page.AsSpan(4 * i))).TakeWhile(v => v != 0)];
}
