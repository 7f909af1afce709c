namespace Integration.Tests.Initiator;

/// <summary>What one command returned: the 15-bit NVMe status field (SC, SCT, CRD, More, DNR) and the
/// completion dwords, plus how the data moved (for tests that check the transport path).</summary>
public sealed record NvmeCompletion
{
    public ushort CommandId { get; init; }
    /// <summary>The status field, bits 15:1 of the CQE status word (0x4182 = DNR | SCT 1 | SC 0x82).</summary>
    public ushort Status { get; init; }
    public uint Dword0 { get; init; }
    public uint Dword1 { get; init; }
    public ushort SqHead { get; init; }
    public ushort SqId { get; init; }
    /// <summary>Completed by a C2HData PDU with the SUCCESS flag (no CapsuleResp).</summary>
    public bool ViaC2HSuccess { get; init; }
    /// <summary>Write data went in the command capsule.</summary>
    public bool InCapsule { get; init; }
    /// <summary>R2T PDUs the target sent for this command.</summary>
    public int R2TCount { get; init; }
    /// <summary>H2CData PDUs we sent for this command.</summary>
    public int H2CDataCount { get; init; }
    /// <summary>C2HData PDUs the target sent for this command.</summary>
    public int C2HDataCount { get; init; }

    public bool IsSuccess => Status == 0;
    public ulong Result => Dword0 | ((ulong)Dword1 << 32);

    /// <summary>Throws <see cref="NvmeStatusException"/> unless the status is success.</summary>
    public NvmeCompletion EnsureSuccess(string what = "command")
    {
        if (Status != 0) throw new NvmeStatusException(what, this);
        return this;
    }

    public override string ToString() =>
        $"CID {CommandId} status 0x{Status:x4} dw0 0x{Dword0:x8} sqhd {SqHead} sqid {SqId}{(ViaC2HSuccess ? " (C2H SUCCESS)" : "")}";
}
