using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Nvme.Core.Model;
using Nvme.Core.Spec;
using Nvme.Core.Storage;
namespace Nvme.Core.Tests;

public partial class AdminTests
{
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

    [Theory]
    [InlineData(256u)]
    [InlineData(4092u)]
    [InlineData(8192u)]
    [InlineData(1u << 20)]
    [InlineData(0u)]
    public void Identify_needs_exactly_4096_bytes(uint length)
    {
        // As the kernel target: Identify data is 4096 bytes, nothing else is a valid transfer.
        using var t = new TestTarget();
        var q = t.ConnectAdmin();
        var r = q.Expect(NvmeStatus.DataSglLengthInvalid, Cmd.Identify(IdentifyCns.Controller, length: length));
        Assert.Equal(0x4000, (int)(r.Status & NvmeStatus.Dnr));
        Assert.Equal(4096, q.Ok(Cmd.Identify(IdentifyCns.Controller)).DataLength);
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
}
