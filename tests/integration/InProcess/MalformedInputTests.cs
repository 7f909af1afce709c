using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Integration.Tests.Initiator;
using Nvme.Core.Spec;
using Transport.Tcp.Pdu;
using Xunit.Abstractions;

namespace Integration.Tests.InProcess;

/// <summary>Each malformed input ends its own connection with a C2HTermReq and a close, while a well-behaved
/// host on the same target carries on.</summary>
public sealed class MalformedInputTests(ITestOutputHelper output)
{
    public enum Case
    {
        BadPduType,
        HlenMismatch,
        PlenBeyondLimit,
        PlenHuge,
        HeaderDigestError,
        H2CDataUnknownTtag,
        SecondICReq,
        CapsuleBeforeICReq,
        C2HDataFromHost,
    }

    public static TheoryData<Case> Cases => [.. Enum.GetValues<Case>()];

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task MalformedPdu_TermReqAndClose_OtherConnectionUnaffected(Case which)
    {
        await using var target = await TestTarget.StartAsync(output);
        await using var good = await target.ConnectWithIoAsync(1, new NvmeTcpHostOptions { HeaderDigest = true, DataDigest = true });
        var before = TestData.Random(64 * 1024, 11);
        (await good.WriteAsync(0, 1, 0, before)).EnsureSuccess();

        await using var raw = await RawConnection.OpenAsync(target.Endpoint);
        var (bytes, fes, handshake, headerDigest) = Build(which);
        if (handshake) await raw.HandshakeAsync(headerDigest: headerDigest);
        await raw.SendAsync(bytes);

        var pdu = await raw.ReadPduAsync();
        Assert.True(pdu != null, "the target closed the connection without a C2HTermReq");
        Assert.Equal(PduType.C2HTermReq, pdu.Type);
        Assert.Equal(TermReqPdu.Size, pdu.HeaderLength);
        var term = pdu.As<TermReqPdu>();
        Assert.Equal(fes, term.Status);
        // The data is (the start of) the header of the PDU in error.
        Assert.InRange(pdu.Data.Length, 1, TermReqPdu.MaxDataLength);
        Assert.Equal(bytes[0], pdu.Data[0]);
        var (closed, extra) = await raw.WaitForCloseAsync(TimeSpan.FromSeconds(15));
        Assert.True(closed, "the target did not close the connection after its C2HTermReq");
        Assert.Equal(0, extra);

        // The well-behaved connection keeps working.
        var back = new byte[before.Length];
        (await good.ReadAsync(0, 1, 0, back)).EnsureSuccess();
        Assert.Equal(before, back);
        var more = TestData.Random(8192, 12);
        (await good.WriteAsync(0, 1, 512, more)).EnsureSuccess();
        (await good.ReadAsync(0, 1, 512, back.AsMemory(0, more.Length))).EnsureSuccess();
        Assert.Equal(more, back.AsSpan(0, more.Length).ToArray());
        (await good.KeepAliveAsync()).EnsureSuccess();
        Assert.Single(target.Host.Target.Controllers);
    }

    private static SubmissionQueueEntry ConnectSqe() =>
        Sqe.Fabrics(FabricsType.Connect) with { CommandId = 1, Cdw11 = 31, Sgl = new SglDescriptor { Length = 1024, Identifier = SglDescriptor.InCapsuleOffset } };

    private static (byte[] Bytes, FatalErrorStatus Fes, bool Handshake, bool HeaderDigest) Build(Case which)
    {
        switch (which)
        {
            case Case.BadPduType:
                {
                    var b = new byte[24];
                    b[0] = 0x0A; b[2] = 24;
                    BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), 24);
                    return (b, FatalErrorStatus.InvalidPduHeaderField, true, false);
                }
            case Case.HlenMismatch:
                {
                    var sqe = new SubmissionQueueEntry { Opcode = AdminOpcode.KeepAlive, CommandId = 1 };
                    var b = new byte[80];
                    MemoryMarshal.Write(b, new CapsuleCommandPdu { Header = new CommonHeader { Type = PduType.CapsuleCmd, HeaderLength = 80, PduLength = 80 }, Command = sqe });
                    return (b, FatalErrorStatus.InvalidPduHeaderField, true, false);
                }
            case Case.PlenBeyondLimit:
            case Case.PlenHuge:
                {
                    // A capsule announcing far more in-capsule data than allowed; only the header is sent.
                    var b = new byte[CapsuleCommandPdu.Size];
                    uint plen = which == Case.PlenHuge ? uint.MaxValue : CapsuleCommandPdu.Size + (1u << 20);
                    MemoryMarshal.Write(b, new CapsuleCommandPdu
                    {
                        Header = new CommonHeader { Type = PduType.CapsuleCmd, HeaderLength = CapsuleCommandPdu.Size, DataOffset = CapsuleCommandPdu.Size, PduLength = plen },
                        Command = ConnectSqe(),
                    });
                    return (b, FatalErrorStatus.DataTransferLimitExceeded, true, false);
                }
            case Case.HeaderDigestError:
                {
                    var b = PduBuilder.CapsuleCmd(ConnectSqe(), new byte[1024], headerDigest: true, dataDigest: false);
                    b[CapsuleCommandPdu.Size] ^= 0x5A; // corrupt HDGST
                    return (b, FatalErrorStatus.HeaderDigestError, true, true);
                }
            case Case.H2CDataUnknownTtag:
                return (PduBuilder.H2CData(cid: 1, ttag: 99, offset: 0, new byte[512], last: true, false, false), FatalErrorStatus.InvalidPduHeaderField, true, false);
            case Case.SecondICReq:
                return (PduBuilder.ICReq(false, false), FatalErrorStatus.PduSequenceError, true, false);
            case Case.CapsuleBeforeICReq:
                return (PduBuilder.CapsuleCmd(ConnectSqe(), new byte[1024], false, false), FatalErrorStatus.PduSequenceError, false, false);
            case Case.C2HDataFromHost:
                {
                    // A controller-to-host PDU type sent by the host.
                    var h = new byte[DataPdu.Size];
                    MemoryMarshal.Write(h, new DataPdu { Header = new CommonHeader { Type = PduType.C2HData, HeaderLength = DataPdu.Size, Flags = PduFlags.LastPdu }, CommandId = 1, DataLength = 512 });
                    return (PduBuilder.Assemble(h, new byte[512], false, false), FatalErrorStatus.InvalidPduHeaderField, true, false);
                }
            default:
                throw new ArgumentOutOfRangeException(nameof(which));
        }
    }
}
