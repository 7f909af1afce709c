using System.Runtime.CompilerServices;
using Nvme.Core.Spec;

namespace Nvme.Core.Tests;

/// <summary>Sizes and field offsets of every wire structure, against the NVMe base / fabrics spec values.</summary>
public class SpecLayoutTests
{
    private static int Off<T, TField>(ref T s, ref TField field) =>
        (int)Unsafe.ByteOffset(ref Unsafe.As<T, byte>(ref s), ref Unsafe.As<TField, byte>(ref field));

    [Fact]
    public void Sizes_match_the_spec()
    {
        Assert.Equal(64, Unsafe.SizeOf<SubmissionQueueEntry>());
        Assert.Equal(64, SubmissionQueueEntry.Size);
        Assert.Equal(16, Unsafe.SizeOf<SglDescriptor>());
        Assert.Equal(16, Unsafe.SizeOf<CompletionQueueEntry>());
        Assert.Equal(16, CompletionQueueEntry.Size);
        Assert.Equal(4096, Unsafe.SizeOf<IdentifyController>());
        Assert.Equal(32, Unsafe.SizeOf<PowerStateDescriptor>());
        Assert.Equal(4096, Unsafe.SizeOf<IdentifyNamespace>());
        Assert.Equal(4096, Unsafe.SizeOf<IdentifyNamespaceIndependent>());
        Assert.Equal(512, Unsafe.SizeOf<SmartHealthLog>());
        Assert.Equal(64, Unsafe.SizeOf<ErrorLogEntry>());
        Assert.Equal(512, Unsafe.SizeOf<FirmwareSlotLog>());
        Assert.Equal(1024, Unsafe.SizeOf<DiscoveryLogHeader>());
        Assert.Equal(1024, Unsafe.SizeOf<DiscoveryLogEntry>());
        Assert.Equal(1024, Unsafe.SizeOf<ConnectData>());
        Assert.Equal(4096, CommandEffectsLog.Size);
        Assert.Equal(16, Unsafe.SizeOf<AnaLogHeader>());
        Assert.Equal(32, Unsafe.SizeOf<AnaGroupDescriptor>());
        Assert.Equal(1024, CommandEffectsLog.IoOffset);
    }

    [Fact]
    public void Ana_log_offsets()
    {
        var h = new AnaLogHeader();
        Assert.Equal(0, Off(ref h, ref h.ChangeCount));
        Assert.Equal(8, Off(ref h, ref h.NumberOfDescriptors));
        var d = new AnaGroupDescriptor();
        Assert.Equal(0, Off(ref d, ref d.GroupId));
        Assert.Equal(4, Off(ref d, ref d.NumberOfNsids));
        Assert.Equal(8, Off(ref d, ref d.ChangeCount));
        Assert.Equal(16, Off(ref d, ref d.State));
    }

    [Fact]
    public void FixedBuffers_have_their_length()
    {
        Assert.Equal(3, Unsafe.SizeOf<Bytes3>());
        Assert.Equal(8, Unsafe.SizeOf<Bytes8>());
        Assert.Equal(16, Unsafe.SizeOf<Bytes16>());
        Assert.Equal(20, Unsafe.SizeOf<Bytes20>());
        Assert.Equal(32, Unsafe.SizeOf<Bytes32>());
        Assert.Equal(40, Unsafe.SizeOf<Bytes40>());
        Assert.Equal(256, Unsafe.SizeOf<Bytes256>());
    }

    [Fact]
    public void SubmissionQueueEntry_offsets()
    {
        var s = new SubmissionQueueEntry();
        Assert.Equal(0, Off(ref s, ref s.Opcode));
        Assert.Equal(1, Off(ref s, ref s.Flags));
        Assert.Equal(2, Off(ref s, ref s.CommandId));
        Assert.Equal(4, Off(ref s, ref s.Nsid));
        Assert.Equal(8, Off(ref s, ref s.Cdw2));
        Assert.Equal(12, Off(ref s, ref s.Cdw3));
        Assert.Equal(16, Off(ref s, ref s.MetadataPointer));
        Assert.Equal(24, Off(ref s, ref s.Sgl));
        Assert.Equal(40, Off(ref s, ref s.Cdw10));
        Assert.Equal(44, Off(ref s, ref s.Cdw11));
        Assert.Equal(48, Off(ref s, ref s.Cdw12));
        Assert.Equal(52, Off(ref s, ref s.Cdw13));
        Assert.Equal(56, Off(ref s, ref s.Cdw14));
        Assert.Equal(60, Off(ref s, ref s.Cdw15));
        var g = new SglDescriptor();
        Assert.Equal(0, Off(ref g, ref g.Address));
        Assert.Equal(8, Off(ref g, ref g.Length));
        Assert.Equal(15, Off(ref g, ref g.Identifier));
    }

    [Fact]
    public void SubmissionQueueEntry_helpers_decode_the_dwords()
    {
        var bytes = new byte[64];
        bytes[0] = 0x7F;
        bytes[4] = FabricsType.PropertyGet;
        bytes[40] = 0x10; bytes[44] = 0x02; // SLBA = 0x2_0000_0010
        bytes[48] = 0x07;                    // NLB 7 (0's based)
        var s = SubmissionQueueEntry.Read(bytes);
        Assert.Equal(FabricsType.PropertyGet, s.FabricsType);
        Assert.Equal(0x2_0000_0010ul, s.StartingLba);
        Assert.Equal(8u, s.BlockCount);
        var back = new byte[64];
        s.Write(back);
        Assert.Equal(bytes, back);
    }

    [Fact]
    public void CompletionQueueEntry_offsets_and_status_encoding()
    {
        var c = new CompletionQueueEntry();
        Assert.Equal(0, Off(ref c, ref c.Dword0));
        Assert.Equal(0, Off(ref c, ref c.Result));
        Assert.Equal(4, Off(ref c, ref c.Dword1));
        Assert.Equal(8, Off(ref c, ref c.SqHead));
        Assert.Equal(10, Off(ref c, ref c.SqId));
        Assert.Equal(12, Off(ref c, ref c.CommandId));
        Assert.Equal(14, Off(ref c, ref c.StatusAndPhase));

        c.Status = NvmeStatus.ConnectInvalidParameters; // SCT 1, SC 0x82, DNR
        Assert.Equal((ushort)(0x4182 << 1), c.StatusAndPhase);
        Assert.Equal(NvmeStatus.ConnectInvalidParameters, c.Status);
        Assert.Equal(1, NvmeStatus.ConnectInvalidParameters.CodeType());
        Assert.Equal(0x82, NvmeStatus.ConnectInvalidParameters.Code());
        var bytes = new byte[16];
        c.Dword0 = 0x10100;
        c.Write(bytes);
        Assert.Equal(new byte[] { 0x00, 0x01, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0x83 }, bytes);
        Assert.Equal(c, CompletionQueueEntry.Read(bytes));
    }

    [Theory]
    [InlineData(NvmeStatus.InvalidOpcode, 0x4001)]
    [InlineData(NvmeStatus.InvalidField, 0x4002)]
    [InlineData(NvmeStatus.InvalidNamespaceOrFormat, 0x400B)]
    [InlineData(NvmeStatus.CommandSequenceError, 0x400C)]
    [InlineData(NvmeStatus.DataSglLengthInvalid, 0x400F)]
    [InlineData(NvmeStatus.LbaOutOfRange, 0x4080)]
    [InlineData(NvmeStatus.AsyncEventRequestLimitExceeded, 0x4105)]
    [InlineData(NvmeStatus.InvalidLogPage, 0x4109)]
    [InlineData(NvmeStatus.FeatureIdNotSaveable, 0x410D)]
    [InlineData(NvmeStatus.ConnectInvalidParameters, 0x4182)]
    [InlineData(NvmeStatus.ConnectInvalidHost, 0x4184)]
    public void Status_values(NvmeStatus status, int value) => Assert.Equal(value, (int)status);

    [Fact]
    public void IdentifyController_offsets()
    {
        var s = new IdentifyController();
        Assert.Equal(0, Off(ref s, ref s.Vid));
        Assert.Equal(2, Off(ref s, ref s.Ssvid));
        Assert.Equal(4, Off(ref s, ref s.SerialNumber));
        Assert.Equal(24, Off(ref s, ref s.ModelNumber));
        Assert.Equal(64, Off(ref s, ref s.FirmwareRevision));
        Assert.Equal(72, Off(ref s, ref s.Rab));
        Assert.Equal(73, Off(ref s, ref s.Ieee));
        Assert.Equal(76, Off(ref s, ref s.Cmic));
        Assert.Equal(77, Off(ref s, ref s.Mdts));
        Assert.Equal(78, Off(ref s, ref s.Cntlid));
        Assert.Equal(80, Off(ref s, ref s.Ver));
        Assert.Equal(84, Off(ref s, ref s.Rtd3r));
        Assert.Equal(88, Off(ref s, ref s.Rtd3e));
        Assert.Equal(92, Off(ref s, ref s.Oaes));
        Assert.Equal(96, Off(ref s, ref s.Ctratt));
        Assert.Equal(100, Off(ref s, ref s.Rrls));
        Assert.Equal(111, Off(ref s, ref s.CntrlType));
        Assert.Equal(112, Off(ref s, ref s.Fguid));
        Assert.Equal(128, Off(ref s, ref s.Crdt1));
        Assert.Equal(130, Off(ref s, ref s.Crdt2));
        Assert.Equal(132, Off(ref s, ref s.Crdt3));
        Assert.Equal(256, Off(ref s, ref s.Oacs));
        Assert.Equal(258, Off(ref s, ref s.Acl));
        Assert.Equal(259, Off(ref s, ref s.Aerl));
        Assert.Equal(260, Off(ref s, ref s.Frmw));
        Assert.Equal(261, Off(ref s, ref s.Lpa));
        Assert.Equal(262, Off(ref s, ref s.Elpe));
        Assert.Equal(263, Off(ref s, ref s.Npss));
        Assert.Equal(264, Off(ref s, ref s.Avscc));
        Assert.Equal(265, Off(ref s, ref s.Apsta));
        Assert.Equal(266, Off(ref s, ref s.Wctemp));
        Assert.Equal(268, Off(ref s, ref s.Cctemp));
        Assert.Equal(320, Off(ref s, ref s.Kas));
        Assert.Equal(342, Off(ref s, ref s.Anatt));
        Assert.Equal(343, Off(ref s, ref s.Anacap));
        Assert.Equal(344, Off(ref s, ref s.Anagrpmax));
        Assert.Equal(348, Off(ref s, ref s.Nanagrpid));
        Assert.Equal(512, Off(ref s, ref s.Sqes));
        Assert.Equal(513, Off(ref s, ref s.Cqes));
        Assert.Equal(514, Off(ref s, ref s.Maxcmd));
        Assert.Equal(516, Off(ref s, ref s.Nn));
        Assert.Equal(520, Off(ref s, ref s.Oncs));
        Assert.Equal(522, Off(ref s, ref s.Fuses));
        Assert.Equal(524, Off(ref s, ref s.Fna));
        Assert.Equal(525, Off(ref s, ref s.Vwc));
        Assert.Equal(526, Off(ref s, ref s.Awun));
        Assert.Equal(528, Off(ref s, ref s.Awupf));
        Assert.Equal(530, Off(ref s, ref s.Icsvscc));
        Assert.Equal(531, Off(ref s, ref s.Nwpc));
        Assert.Equal(532, Off(ref s, ref s.Acwu));
        Assert.Equal(534, Off(ref s, ref s.Ocfs));
        Assert.Equal(536, Off(ref s, ref s.Sgls));
        Assert.Equal(540, Off(ref s, ref s.Mnan));
        Assert.Equal(768, Off(ref s, ref s.SubNqn));
        Assert.Equal(1792, Off(ref s, ref s.Ioccsz));
        Assert.Equal(1796, Off(ref s, ref s.Iorcsz));
        Assert.Equal(1800, Off(ref s, ref s.Icdoff));
        Assert.Equal(1802, Off(ref s, ref s.Fcatt));
        Assert.Equal(1803, Off(ref s, ref s.Msdbd));
        Assert.Equal(1804, Off(ref s, ref s.Ofcs));
        Assert.Equal(2048, Off(ref s, ref s.Psd0));

        var p = new PowerStateDescriptor();
        Assert.Equal(0, Off(ref p, ref p.MaxPower));
        Assert.Equal(3, Off(ref p, ref p.Flags));
        Assert.Equal(4, Off(ref p, ref p.EntryLatency));
        Assert.Equal(8, Off(ref p, ref p.ExitLatency));
    }

    [Fact]
    public void IdentifyNamespace_offsets()
    {
        var s = new IdentifyNamespace();
        Assert.Equal(0, Off(ref s, ref s.Nsze));
        Assert.Equal(8, Off(ref s, ref s.Ncap));
        Assert.Equal(16, Off(ref s, ref s.Nuse));
        Assert.Equal(24, Off(ref s, ref s.Nsfeat));
        Assert.Equal(25, Off(ref s, ref s.Nlbaf));
        Assert.Equal(26, Off(ref s, ref s.Flbas));
        Assert.Equal(27, Off(ref s, ref s.Mc));
        Assert.Equal(28, Off(ref s, ref s.Dpc));
        Assert.Equal(29, Off(ref s, ref s.Dps));
        Assert.Equal(30, Off(ref s, ref s.Nmic));
        Assert.Equal(31, Off(ref s, ref s.Rescap));
        Assert.Equal(32, Off(ref s, ref s.Fpi));
        Assert.Equal(33, Off(ref s, ref s.Dlfeat));
        Assert.Equal(34, Off(ref s, ref s.Nawun));
        Assert.Equal(36, Off(ref s, ref s.Nawupf));
        Assert.Equal(38, Off(ref s, ref s.Nacwu));
        Assert.Equal(46, Off(ref s, ref s.Noiob));
        Assert.Equal(64, Off(ref s, ref s.Npwg));
        Assert.Equal(66, Off(ref s, ref s.Npwa));
        Assert.Equal(68, Off(ref s, ref s.Npdg));
        Assert.Equal(70, Off(ref s, ref s.Npda));
        Assert.Equal(72, Off(ref s, ref s.Nows));
        Assert.Equal(92, Off(ref s, ref s.Anagrpid));
        Assert.Equal(99, Off(ref s, ref s.Nsattr));
        Assert.Equal(104, Off(ref s, ref s.Nguid));
        Assert.Equal(120, Off(ref s, ref s.Eui64));
        Assert.Equal(128, Off(ref s, ref s.Lbaf0));

        var i = new IdentifyNamespaceIndependent();
        Assert.Equal(0, Off(ref i, ref i.Nsfeat));
        Assert.Equal(1, Off(ref i, ref i.Nmic));
        Assert.Equal(2, Off(ref i, ref i.Rescap));
        Assert.Equal(3, Off(ref i, ref i.Fpi));
        Assert.Equal(4, Off(ref i, ref i.Anagrpid));
        Assert.Equal(8, Off(ref i, ref i.Nsattr));
        Assert.Equal(10, Off(ref i, ref i.Nvmsetid));
        Assert.Equal(12, Off(ref i, ref i.Endgid));
        Assert.Equal(14, Off(ref i, ref i.Nstat));
    }

    [Fact]
    public void LogPage_offsets()
    {
        var s = new SmartHealthLog();
        Assert.Equal(0, Off(ref s, ref s.CriticalWarning));
        Assert.Equal(1, Off(ref s, ref s.CompositeTemperature));
        Assert.Equal(3, Off(ref s, ref s.AvailableSpare));
        Assert.Equal(4, Off(ref s, ref s.AvailableSpareThreshold));
        Assert.Equal(5, Off(ref s, ref s.PercentageUsed));
        Assert.Equal(32, Off(ref s, ref s.DataUnitsRead));
        Assert.Equal(48, Off(ref s, ref s.DataUnitsWritten));
        Assert.Equal(64, Off(ref s, ref s.HostReadCommands));
        Assert.Equal(80, Off(ref s, ref s.HostWriteCommands));
        Assert.Equal(96, Off(ref s, ref s.ControllerBusyTime));
        Assert.Equal(112, Off(ref s, ref s.PowerCycles));
        Assert.Equal(128, Off(ref s, ref s.PowerOnHours));
        Assert.Equal(144, Off(ref s, ref s.UnsafeShutdowns));
        Assert.Equal(160, Off(ref s, ref s.MediaErrors));
        Assert.Equal(176, Off(ref s, ref s.NumErrorLogEntries));

        var e = new ErrorLogEntry();
        Assert.Equal(0, Off(ref e, ref e.ErrorCount));
        Assert.Equal(8, Off(ref e, ref e.SqId));
        Assert.Equal(10, Off(ref e, ref e.CommandId));
        Assert.Equal(12, Off(ref e, ref e.Status));
        Assert.Equal(14, Off(ref e, ref e.ParameterErrorLocation));
        Assert.Equal(16, Off(ref e, ref e.Lba));
        Assert.Equal(24, Off(ref e, ref e.Nsid));
        Assert.Equal(28, Off(ref e, ref e.VendorSpecific));
        Assert.Equal(29, Off(ref e, ref e.TransportType));
        Assert.Equal(32, Off(ref e, ref e.CommandSpecific));
        Assert.Equal(40, Off(ref e, ref e.TransportTypeSpecific));

        var f = new FirmwareSlotLog();
        Assert.Equal(0, Off(ref f, ref f.ActiveFirmwareInfo));
        Assert.Equal(8, Off(ref f, ref f.Slot1));
    }

    [Fact]
    public void Discovery_and_connect_offsets()
    {
        var h = new DiscoveryLogHeader();
        Assert.Equal(0, Off(ref h, ref h.GenerationCounter));
        Assert.Equal(8, Off(ref h, ref h.NumberOfRecords));
        Assert.Equal(16, Off(ref h, ref h.RecordFormat));

        var e = new DiscoveryLogEntry();
        Assert.Equal(0, Off(ref e, ref e.TransportType));
        Assert.Equal(1, Off(ref e, ref e.AddressFamily));
        Assert.Equal(2, Off(ref e, ref e.SubsystemType));
        Assert.Equal(3, Off(ref e, ref e.TransportRequirements));
        Assert.Equal(4, Off(ref e, ref e.PortId));
        Assert.Equal(6, Off(ref e, ref e.ControllerId));
        Assert.Equal(8, Off(ref e, ref e.AdminMaxSqSize));
        Assert.Equal(10, Off(ref e, ref e.EntryFlags));
        Assert.Equal(32, Off(ref e, ref e.TransportServiceId));
        Assert.Equal(256, Off(ref e, ref e.SubNqn));
        Assert.Equal(512, Off(ref e, ref e.TransportAddress));
        Assert.Equal(768, Off(ref e, ref e.TransportSpecificAddressSubtype));

        var c = new ConnectData();
        Assert.Equal(0, Off(ref c, ref c.HostId));
        Assert.Equal(16, Off(ref c, ref c.Cntlid));
        Assert.Equal(256, Off(ref c, ref c.SubNqn));
        Assert.Equal(512, Off(ref c, ref c.HostNqn));
        Assert.Equal(16, ConnectData.CntlidOffset);
        Assert.Equal(256, ConnectData.SubNqnOffset);
        Assert.Equal(512, ConnectData.HostNqnOffset);
        // Connect SQE fields (NVMe over Fabrics, Connect command): RECFMT 40, QID 42, SQSIZE 44, CATTR 46, KATO 48.
        Assert.Equal(40, ConnectCommand.RecfmtOffset);
        Assert.Equal(42, ConnectCommand.QidOffset);
        Assert.Equal(44, ConnectCommand.SqsizeOffset);
        Assert.Equal(46, ConnectCommand.CattrOffset);
        Assert.Equal(48, ConnectCommand.KatoOffset);
    }

    [Fact]
    public void Async_event_dword0_is_0x00040002()
    {
        Assert.Equal(0x00040002u, AsyncEvent.NamespaceAttributeChangedDword0);
        Assert.Equal(0x100u, AsyncEvent.ConfigNamespaceAttributeNotices);
    }

    [Fact]
    public void SpecText_padding()
    {
        Span<byte> sn = stackalloc byte[8];
        SpecText.WriteSpacePadded(sn, "ab");
        Assert.Equal("ab      "u8.ToArray(), sn.ToArray());
        SpecText.WriteSpacePadded(sn, "0123456789");
        Assert.Equal("01234567"u8.ToArray(), sn.ToArray());

        Span<byte> nqn = stackalloc byte[8];
        nqn.Fill(0xEE);
        SpecText.WriteNulPadded(nqn, "nqn.x");
        Assert.Equal("nqn.x\0\0\0"u8.ToArray(), nqn.ToArray());
        SpecText.WriteNulPadded(nqn, "0123456789");
        Assert.Equal(0, nqn[7]); // always NUL terminated
        Assert.Equal("0123456", SpecText.ReadNulTerminated(nqn));
        Assert.Equal("ab", SpecText.ReadNulTerminated("ab  "u8));
        Assert.Equal("full", SpecText.ReadNulTerminated("full"u8));
    }
}
