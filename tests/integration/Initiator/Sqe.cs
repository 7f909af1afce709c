using Nvme.Core.Spec;

namespace Integration.Tests.Initiator;

/// <summary>Submission queue entries for the commands the initiator issues (CID and SGL are filled at submit).</summary>
public static class Sqe
{
    public static SubmissionQueueEntry Fabrics(byte fctype) => new() { Opcode = AdminOpcode.Fabrics, Nsid = fctype };

    /// <summary>Authentication Send (FCTYPE 05h): SECP E9h, SPSP0/1 01h (DH-HMAC-CHAP), TL bytes of host data.</summary>
    public static SubmissionQueueEntry AuthSend(uint tl, uint? cdw10 = null) =>
        Fabrics(FabricsType.AuthenticationSend) with { Cdw10 = cdw10 ?? Nvme.Core.Auth.DhchapMessages.Cdw10, Cdw11 = tl };

    /// <summary>Authentication Receive (FCTYPE 06h): AL bytes of controller data.</summary>
    public static SubmissionQueueEntry AuthReceive(uint al) =>
        Fabrics(FabricsType.AuthenticationReceive) with { Cdw10 = Nvme.Core.Auth.DhchapMessages.Cdw10, Cdw11 = al };

    public static SubmissionQueueEntry PropertyGet(uint offset, bool eightBytes) =>
        Fabrics(FabricsType.PropertyGet) with { Cdw10 = eightBytes ? 1u : 0u, Cdw11 = offset };

    public static SubmissionQueueEntry PropertySet(uint offset, ulong value, bool eightBytes = false) =>
        Fabrics(FabricsType.PropertySet) with { Cdw10 = eightBytes ? 1u : 0u, Cdw11 = offset, Cdw12 = (uint)value, Cdw13 = (uint)(value >> 32) };

    public static SubmissionQueueEntry Identify(byte cns, uint nsid = 0, ushort cntid = 0, byte csi = 0) =>
        new() { Opcode = AdminOpcode.Identify, Nsid = nsid, Cdw10 = cns | ((uint)cntid << 16), Cdw11 = (uint)csi << 24 };

    /// <summary>Get Log Page: <paramref name="length"/> bytes (a multiple of 4) from byte <paramref name="offset"/>.</summary>
    public static SubmissionQueueEntry GetLogPage(byte lid, int length, ulong offset = 0, uint nsid = 0xFFFFFFFF, bool retainAsyncEvent = false)
    {
        uint numd = (uint)(length / 4 - 1);
        return new SubmissionQueueEntry
        {
            Opcode = AdminOpcode.GetLogPage,
            Nsid = nsid,
            Cdw10 = lid | (retainAsyncEvent ? 1u << 15 : 0) | ((numd & 0xFFFF) << 16),
            Cdw11 = numd >> 16,
            Cdw12 = (uint)offset,
            Cdw13 = (uint)(offset >> 32),
        };
    }

    public static SubmissionQueueEntry SetFeatures(byte fid, uint cdw11, bool save = false) =>
        new() { Opcode = AdminOpcode.SetFeatures, Cdw10 = fid | (save ? 0x8000_0000u : 0), Cdw11 = cdw11 };

    public static SubmissionQueueEntry GetFeatures(byte fid, uint select = 0, uint cdw11 = 0) =>
        new() { Opcode = AdminOpcode.GetFeatures, Cdw10 = fid | (select << 8), Cdw11 = cdw11 };

    public static SubmissionQueueEntry KeepAlive() => new() { Opcode = AdminOpcode.KeepAlive };
    public static SubmissionQueueEntry AsyncEventRequest() => new() { Opcode = AdminOpcode.AsyncEventRequest };

    /// <summary>Read/Write: <paramref name="blocks"/> is the real count (NLB is 0's based in CDW12).</summary>
    public static SubmissionQueueEntry ReadWrite(byte opcode, uint nsid, ulong slba, int blocks, bool fua = false) => new()
    {
        Opcode = opcode,
        Nsid = nsid,
        Cdw10 = (uint)slba,
        Cdw11 = (uint)(slba >> 32),
        Cdw12 = (uint)(blocks - 1) & 0xFFFF | (fua ? 1u << 30 : 0),
    };

    public static SubmissionQueueEntry Flush(uint nsid) => new() { Opcode = IoOpcode.Flush, Nsid = nsid };

    public static SubmissionQueueEntry WriteZeroes(uint nsid, ulong slba, int blocks, bool deallocate = false)
    {
        var s = ReadWrite(IoOpcode.WriteZeroes, nsid, slba, blocks);
        if (deallocate) s.Cdw12 |= 1u << 25;
        return s;
    }

    /// <summary>Dataset Management with <paramref name="ranges"/> ranges (the range list is the command's data).</summary>
    public static SubmissionQueueEntry DatasetManagement(uint nsid, int ranges, bool deallocate) => new()
    {
        Opcode = IoOpcode.DatasetManagement,
        Nsid = nsid,
        Cdw10 = (uint)(ranges - 1),
        Cdw11 = deallocate ? 1u << 2 : 0,
    };

    /// <summary>The 16-byte DSM range entries: context attributes, length in blocks, starting LBA.</summary>
    public static byte[] DsmRanges(params (ulong Slba, uint Blocks)[] ranges)
    {
        var data = new byte[ranges.Length * 16];
        for (int i = 0; i < ranges.Length; i++)
        {
            BitConverter.TryWriteBytes(data.AsSpan(i * 16 + 4, 4), ranges[i].Blocks);
            BitConverter.TryWriteBytes(data.AsSpan(i * 16 + 8, 8), ranges[i].Slba);
        }
        return data;
    }
}
