using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
namespace Nvme.Core.Tests;

public partial class AdminTests
{
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
        t.Target.AddSubsystem(new Subsystem("nqn.2024-01.io.example:sub0", allowAnyHost: true));
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
        t.Target.AddSubsystem(new Subsystem("nqn.2024-01.io.example:sub2", allowAnyHost: true));
        var newest = q.Ok(Cmd.GetLogPage(LogPageId.Discovery, 1024, nsid: 0)).DataSpan.ToArray();
        Assert.Equal(5ul, U64(newest, 8));
        Assert.True(U64(newest, 0) > U64(more, 0));
    }
}
