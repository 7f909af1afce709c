using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;

namespace Nvme.Core.Tests;

/// <summary>Identify, Get Log Page, features, async events, keep-alive and abort on the admin queue.</summary>
public class AdminTests
{
    private static uint U32(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt32LittleEndian(s[o..]);
    private static ulong U64(ReadOnlySpan<byte> s, int o) => BinaryPrimitives.ReadUInt64LittleEndian(s[o..]);

    private static Namespace NewNs(uint nsid, long bytes = 1 << 20, int blockSize = 512) =>
        new(nsid, new MemoryBlockStore(bytes), blockSize, NamespaceIds.Derive(TestTarget.SubNqn, nsid));

    // ------------------------------------------------------------------ Identify

    [Fact]
    public void Identify_controller_fields()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Ok(Cmd.Identify(IdentifyCns.Controller));
        Assert.Equal(4096, r.DataLength);
        var id = MemoryMarshal.Read<IdentifyController>(r.DataSpan);
        var page = r.DataSpan;
        Assert.Equal(q.Controller!.Cntlid, id.Cntlid);
        Assert.Equal(q.Controller.Cntlid, BinaryPrimitives.ReadUInt16LittleEndian(page[78..]));
        Assert.Equal(0x10300u, U32(page, 80));
        Assert.Equal(8, page[77]);                       // MDTS (1 MiB)
        Assert.Equal(0x100u, U32(page, 92) & 0x100);     // OAES namespace attribute notices
        Assert.NotEqual(0, BinaryPrimitives.ReadUInt16LittleEndian(page[320..])); // KAS
        Assert.Equal(3, page[259]);                      // AERL
        Assert.Equal(0x66, page[512]);                   // SQES
        Assert.Equal(0x44, page[513]);                   // CQES
        Assert.Equal(128, BinaryPrimitives.ReadUInt16LittleEndian(page[514..])); // MAXCMD
        Assert.Equal(1024u, U32(page, 516));             // NN
        Assert.Equal(0x0C, BinaryPrimitives.ReadUInt16LittleEndian(page[520..]) & 0x0C); // ONCS DSM + Write Zeroes
        Assert.Equal(1, page[525] & 1);                  // VWC present
        Assert.NotEqual(0u, U32(page, 536) & 3);         // SGLS bits 1:0
        Assert.Equal(TestTarget.SubNqn, SpecText.ReadNulTerminated(page.Slice(768, 256)));
        Assert.Equal((8192u + 64) / 16, U32(page, 1792)); // IOCCSZ
        Assert.Equal(1u, U32(page, 1796));               // IORCSZ
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(page[1800..])); // ICDOFF
        Assert.Equal(1, page[1803]);                     // MSDBD
        Assert.Equal(0, page[1802]);                     // FCATT dynamic
        // SN, MN, FR: space padded ASCII.
        string sn = System.Text.Encoding.ASCII.GetString(page.Slice(4, 20));
        Assert.Equal(t.Subsystem.Serial.PadRight(20), sn);
        Assert.Equal("NvmeTcpTarget".PadRight(40), System.Text.Encoding.ASCII.GetString(page.Slice(24, 40)));
        Assert.Equal("1.0".PadRight(8), System.Text.Encoding.ASCII.GetString(page.Slice(64, 8)));
    }

    [Fact]
    public void Identify_controller_on_discovery_controller()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        var page = q.Ok(Cmd.Identify(IdentifyCns.Controller)).DataSpan;
        Assert.Equal(0u, U32(page, 516)); // NN
        Assert.Equal(WellKnown.DiscoveryNqn, SpecText.ReadNulTerminated(page.Slice(768, 256)));
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(IdentifyCns.ActiveNamespaceList));
    }

    [Fact]
    public void Identify_transfer_shorter_than_4096_is_cut()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Ok(Cmd.Identify(IdentifyCns.Controller, length: 256));
        Assert.Equal(256, r.DataLength);
        Assert.Equal(0x4E, r.DataSpan[24]); // 'N' of the model number
    }

    [Fact]
    public void Identify_namespace_active_and_inactive()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.Identify(IdentifyCns.Namespace, nsid: 1)).DataSpan.ToArray();
        ulong blocks = TestTarget.NsBytes / 512;
        Assert.Equal(blocks, U64(page, 0));
        Assert.Equal(blocks, U64(page, 8));
        Assert.Equal(blocks, U64(page, 16));
        Assert.Equal(0, page[25]);                        // NLBAF (0's based: one format)
        Assert.Equal(0, page[26]);                        // FLBAS
        Assert.Equal(9u, (U32(page, 128) >> 16) & 0xFF);  // LBAF0.LBADS = 512 bytes
        Assert.Equal(t.Ns.Ids.Nguid, page.AsSpan(104, 16).ToArray());
        Assert.Equal(t.Ns.Ids.Eui64, page.AsSpan(120, 8).ToArray());

        // Inactive (allocatable, not attached) NSID: success, all zeros.
        var inactive = q.Ok(Cmd.Identify(IdentifyCns.Namespace, nsid: 2)).DataSpan.ToArray();
        Assert.All(inactive, b => Assert.Equal(0, b));
        // NSID 0 and NSIDs above NN are invalid.
        q.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Identify(IdentifyCns.Namespace, nsid: 0));
        q.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Identify(IdentifyCns.Namespace, nsid: 1025));
    }

    [Fact]
    public void Identify_namespace_with_4k_blocks()
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(7, 1 << 20, 4096));
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.Identify(IdentifyCns.Namespace, nsid: 7)).DataSpan;
        Assert.Equal(256ul, U64(page, 0));
        Assert.Equal(12u, (U32(page, 128) >> 16) & 0xFF);
    }

    [Fact]
    public void Identify_active_namespace_list_with_start_nsid()
    {
        using var t = new TestTarget();
        t.Subsystem.AttachNamespace(NewNs(5));
        t.Subsystem.AttachNamespace(NewNs(3));
        t.Subsystem.AttachNamespace(NewNs(900));
        var q = t.ConnectAdmin();
        uint[] List(uint start)
        {
            var page = q.Ok(Cmd.Identify(IdentifyCns.ActiveNamespaceList, nsid: start)).DataSpan;
            var ids = new List<uint>();
            for (int i = 0; i < 1024 && U32(page, 4 * i) != 0; i++) ids.Add(U32(page, 4 * i));
            return [.. ids];
        }
        Assert.Equal([1u, 3, 5, 900], List(0));
        Assert.Equal([3u, 5, 900], List(1));   // strictly greater than the start NSID
        Assert.Equal([5u, 900], List(3));
        Assert.Equal([900u], List(5));
        Assert.Empty(List(900));
        q.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Identify(IdentifyCns.ActiveNamespaceList, nsid: 0xFFFFFFFE));
        q.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Identify(IdentifyCns.ActiveNamespaceList, nsid: 0xFFFFFFFF));
    }

    [Fact]
    public void Identify_namespace_descriptor_list()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.Identify(IdentifyCns.NamespaceDescriptorList, nsid: 1)).DataSpan.ToArray();
        var found = new Dictionary<byte, byte[]>();
        int o = 0;
        while (o + 4 <= page.Length && page[o] != 0)
        {
            byte type = page[o], len = page[o + 1];
            Assert.Equal(0, page[o + 2]);
            Assert.Equal(0, page[o + 3]);
            Assert.False(found.ContainsKey(type), $"descriptor type {type} twice");
            found[type] = page.AsSpan(o + 4, len).ToArray();
            o += 4 + len;
        }
        Assert.All(page.AsSpan(o).ToArray(), b => Assert.Equal(0, b)); // terminated by zeros
        Assert.Equal(t.Ns.Ids.Eui64, found[NsIdType.Eui64]);
        Assert.Equal(t.Ns.Ids.Nguid, found[NsIdType.Nguid]);
        Assert.Equal(t.Ns.Ids.Uuid.ToByteArray(bigEndian: true), found[NsIdType.Uuid]);
        Assert.Equal(new byte[] { 0 }, found[NsIdType.Csi]); // NVM command set
        Assert.Equal(8, found[NsIdType.Eui64].Length);
        Assert.Equal(16, found[NsIdType.Nguid].Length);
        Assert.Equal(16, found[NsIdType.Uuid].Length);
    }

    [Fact]
    public void Identify_cns05_nvm_csi_succeeds_and_other_csi_is_invalid_field()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.Identify(IdentifyCns.IoCommandSetNamespace, nsid: 1, csi: 0)).DataSpan.ToArray();
        Assert.All(page, b => Assert.Equal(0, b));
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(IdentifyCns.IoCommandSetNamespace, nsid: 1, csi: 1));
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(IdentifyCns.IoCommandSetNamespace, nsid: 1, csi: 2));
    }

    [Fact]
    public void Identify_cns06_io_command_set_controller()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Ok(Cmd.Identify(IdentifyCns.IoCommandSetController, csi: 0));
        Assert.All(r.DataSpan.ToArray(), b => Assert.Equal(0, b));
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(IdentifyCns.IoCommandSetController, csi: 2));
    }

    [Fact]
    public void Identify_cns08_reports_namespace_ready()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.Identify(IdentifyCns.CommandSetIndependentNamespace, nsid: 1)).DataSpan;
        Assert.Equal(1, page[14] & 1); // NSTAT.NRDY
        Assert.Equal(1, page[1] & 1);  // NMIC shared
        var inactive = q.Ok(Cmd.Identify(IdentifyCns.CommandSetIndependentNamespace, nsid: 2)).DataSpan.ToArray();
        Assert.All(inactive, b => Assert.Equal(0, b));
    }

    [Theory]
    [InlineData(0x04)]
    [InlineData(0x07)]
    [InlineData(0x10)]
    [InlineData(0xFF)]
    public void Identify_unknown_cns_is_invalid_field(byte cns)
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        q.Expect(NvmeStatus.InvalidField, Cmd.Identify(cns, nsid: 1));
    }

    [Fact]
    public void Identify_does_not_leak_previous_buffer_contents()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var req = new NvmeRequest { Sqe = Cmd.Identify(IdentifyCns.Controller) };
        Assert.Equal(NvmeStatus.Success, q.Queue.Prepare(req));
        q.Queue.Execute(req);
        // Reuse the request object (as transports do) for an inactive namespace: the page must be zeros.
        req.Reset();
        req.Sqe = Cmd.Identify(IdentifyCns.Namespace, nsid: 2);
        Assert.Equal(NvmeStatus.Success, q.Queue.Prepare(req));
        q.Queue.Execute(req);
        Assert.Equal(NvmeStatus.Success, req.Status);
        Assert.All(req.DataSpan.ToArray(), b => Assert.Equal(0, b));
    }

    // ------------------------------------------------------------------ log pages

    [Fact]
    public void Error_log_records_a_failed_command()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var empty = q.Ok(Cmd.GetLogPage(LogPageId.Error, 64)).DataSpan.ToArray();
        Assert.All(empty, b => Assert.Equal(0, b));

        var failed = q.Expect(NvmeStatus.InvalidField, Cmd.Identify(0x55, nsid: 1));
        var page = q.Ok(Cmd.GetLogPage(LogPageId.Error, 128)).DataSpan;
        var e = MemoryMarshal.Read<ErrorLogEntry>(page);
        Assert.Equal(1ul, e.ErrorCount);
        Assert.Equal(0, e.SqId);
        Assert.Equal(failed.Sqe.CommandId, e.CommandId);
        Assert.Equal((ushort)((ushort)NvmeStatus.InvalidField << 1), e.Status);
        Assert.Equal(1u, e.Nsid);
        Assert.Equal(3, e.TransportType);
        Assert.All(page[64..].ToArray(), b => Assert.Equal(0, b)); // only one entry

        // A failure on an I/O queue lands in the same log, newest first.
        var io = t.ConnectIo(q.Controller!.Cntlid, qid: 1);
        var bad = io.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.Read(9, 0, 1));
        page = q.Ok(Cmd.GetLogPage(LogPageId.Error, 128)).DataSpan;
        var newest = MemoryMarshal.Read<ErrorLogEntry>(page);
        var older = MemoryMarshal.Read<ErrorLogEntry>(page[64..]);
        Assert.Equal(2ul, newest.ErrorCount);
        Assert.Equal(1, newest.SqId);
        Assert.Equal(bad.Sqe.CommandId, newest.CommandId);
        Assert.Equal(9u, newest.Nsid);
        Assert.Equal(1ul, older.ErrorCount);
        Assert.Equal(2, q.Controller.ErrorCount);
    }

    [Fact]
    public void Smart_log_counts_io_exactly()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var io = t.ConnectIo(q.Controller!.Cntlid);
        // 1001 blocks of 512 bytes written = 1001 units of 512 -> 2 data units (thousands, rounded up).
        io.Ok(Cmd.Write(1, 0, 1001), new byte[1001 * 512]);
        io.Ok(Cmd.Write(1, 2000, 1), new byte[512]);
        io.Ok(Cmd.Write(1, 3000, 1), new byte[512]);
        // 1000 blocks read -> exactly 1 data unit.
        io.Ok(Cmd.Read(1, 0, 500));
        io.Ok(Cmd.Read(1, 500, 500));
        // Failed commands do not count.
        io.Expect(NvmeStatus.LbaOutOfRange, Cmd.Read(1, TestTarget.NsBytes / 512, 1));

        var log = MemoryMarshal.Read<SmartHealthLog>(q.Ok(Cmd.GetLogPage(LogPageId.SmartHealth, 512)).DataSpan);
        Assert.Equal(3ul, log.HostWriteCommands);
        Assert.Equal(2ul, log.HostReadCommands);
        Assert.Equal(2ul, log.DataUnitsWritten + 0);
        Assert.Equal(1ul, log.DataUnitsRead);
        Assert.Equal(1ul, log.NumErrorLogEntries);
        Assert.Equal(100, log.AvailableSpare);
        Assert.Equal(0, log.CriticalWarning);

        // Per namespace, and 128-bit counters have zero high halves.
        var page = q.Ok(Cmd.GetLogPage(LogPageId.SmartHealth, 512, nsid: 1)).DataSpan;
        Assert.Equal(3ul, U64(page, 80));
        Assert.Equal(0ul, U64(page, 88));
        q.Expect(NvmeStatus.InvalidNamespaceOrFormat, Cmd.GetLogPage(LogPageId.SmartHealth, 512, nsid: 4));
    }

    [Fact]
    public void Firmware_slot_log()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.GetLogPage(LogPageId.FirmwareSlot, 512)).DataSpan;
        Assert.Equal(1, page[0] & 7); // active slot 1
        Assert.Equal("1.0     ", System.Text.Encoding.ASCII.GetString(page.Slice(8, 8)));
        Assert.All(page[16..].ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Command_effects_log()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var page = q.Ok(Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 4096)).DataSpan;
        foreach (var op in new[] { AdminOpcode.GetLogPage, AdminOpcode.Identify, AdminOpcode.Abort, AdminOpcode.SetFeatures,
                     AdminOpcode.GetFeatures, AdminOpcode.AsyncEventRequest, AdminOpcode.KeepAlive })
            Assert.Equal(1u, U32(page, op * 4));
        Assert.Equal(0u, U32(page, 0x01 * 4)); // Delete I/O SQ: not over fabrics
        Assert.Equal(1u, U32(page, 1024 + IoOpcode.Read * 4));
        Assert.Equal(1u, U32(page, 1024 + IoOpcode.Flush * 4));
        Assert.Equal(3u, U32(page, 1024 + IoOpcode.Write * 4));
        Assert.Equal(3u, U32(page, 1024 + IoOpcode.WriteZeroes * 4));
        Assert.Equal(3u, U32(page, 1024 + IoOpcode.DatasetManagement * 4));
        Assert.Equal(0u, U32(page, 1024 + 0x05 * 4)); // Compare
    }

    [Fact]
    public void Log_page_offset_and_length_checks()
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var whole = q.Ok(Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 4096)).DataSpan.ToArray();
        var part = q.Ok(Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 16, offset: 1024)).DataSpan.ToArray();
        Assert.Equal(whole.AsSpan(1024, 16).ToArray(), part);
        q.Expect(NvmeStatus.InvalidField, Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 16, offset: 2));
        q.Expect(NvmeStatus.InvalidField, Cmd.GetLogPage(LogPageId.CommandsSupportedAndEffects, 16, offset: 8192));
        var tooLong = Cmd.GetLogPage(LogPageId.SmartHealth, 512);
        tooLong.Sgl.Length = 256; // NUMD says 512 bytes, the SGL only 256
        q.Expect(NvmeStatus.DataSglLengthInvalid, tooLong);
    }

    [Theory]
    [InlineData(0x06)]
    [InlineData(0x70)] // discovery log on an NVM controller
    [InlineData(0xC0)]
    public void Unknown_log_page_is_invalid_log_page(byte lid)
    {
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Expect(NvmeStatus.InvalidLogPage, Cmd.GetLogPage(lid, 512));
        Assert.Equal(0x4109, (int)r.Status);
    }

    [Fact]
    public void Discovery_log_with_paging()
    {
        using var t = new TestTarget();
        t.Target.AddSubsystem(new Subsystem("nqn.2024-01.io.example:sub0"));
        var hidden = new Subsystem("nqn.2024-01.io.example:private", allowAnyHost: false);
        t.Target.AddSubsystem(hidden);
        var q = t.ConnectAdmin(subNqn: WellKnown.DiscoveryNqn);
        q.Expect(NvmeStatus.InvalidLogPage, Cmd.GetLogPage(LogPageId.SmartHealth, 512));

        // The Linux host reads the header first, then the whole page.
        var header = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan.ToArray();
        ulong genctr = U64(header, 0);
        ulong numrec = U64(header, 8);
        Assert.Equal(3ul, numrec); // discovery + sub0 + sub1 (the private one is not for this host)
        Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(16)));
        int total = 1024 + (int)numrec * 1024;
        var whole = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, (uint)total, nsid: 0)).DataSpan.ToArray();
        Assert.Equal(header, whole.AsSpan(0, 1024).ToArray());

        // Paging by offset gives the same bytes.
        for (int off = 0; off < total; off += 1024)
        {
            var pageN = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, offset: (ulong)off, nsid: 0)).DataSpan.ToArray();
            Assert.Equal(whole.AsSpan(off, 1024).ToArray(), pageN);
        }
        var odd = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 512, offset: 1024 + 256, nsid: 0)).DataSpan.ToArray();
        Assert.Equal(whole.AsSpan(1024 + 256, 512).ToArray(), odd);

        var entries = Enumerable.Range(0, (int)numrec).Select(i => whole.AsMemory(1024 + i * 1024, 1024)).ToArray();
        var nqns = entries.Select(e => SpecText.ReadNulTerminated(e.Span.Slice(256, 256))).ToArray();
        Assert.Equal([WellKnown.DiscoveryNqn, "nqn.2024-01.io.example:sub0", TestTarget.SubNqn], nqns);
        foreach (var mem in entries)
        {
            var e = mem.Span;
            Assert.Equal(3, e[0]);  // TRTYPE TCP
            Assert.Equal(1, e[1]);  // ADRFAM IPv4
            Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(e[4..])); // PORTID
            Assert.Equal(0xFFFF, BinaryPrimitives.ReadUInt16LittleEndian(e[6..])); // CNTLID dynamic
            Assert.Equal("4420", SpecText.ReadNulTerminated(e.Slice(32, 32)));
            Assert.Equal("192.0.2.10", SpecText.ReadNulTerminated(e.Slice(512, 256)));
        }
        Assert.Equal(3, entries[0].Span[2]); // SUBTYPE current discovery subsystem
        Assert.Equal(2, entries[2].Span[2]); // SUBTYPE NVM subsystem

        // Unchanged content keeps the generation counter.
        Assert.Equal(genctr, U64(q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan, 0));

        // Allowing the host on the private subsystem adds an entry and moves the generation counter.
        hidden.AllowHost(TestTarget.HostNqn);
        var more = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan.ToArray();
        Assert.Equal(4ul, U64(more, 8));
        Assert.True(U64(more, 0) > genctr);
        // So does a new subsystem.
        t.Target.AddSubsystem(new Subsystem("nqn.2024-01.io.example:sub2"));
        var newest = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan.ToArray();
        Assert.Equal(5ul, U64(newest, 8));
        Assert.True(U64(newest, 0) > U64(more, 0));
    }

    // ------------------------------------------------------------------ features

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
