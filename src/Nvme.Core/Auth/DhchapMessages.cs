using System.Buffers.Binary;

namespace Nvme.Core.Auth;

/// <summary>
/// Wire constants and layouts of the in-band authentication messages (NVMe base spec 2.0, 8.13.5 and the
/// Authentication Send/Receive commands of NVMe over Fabrics 6.3/6.4). Every message starts with
/// AUTH_TYPE (byte 0), AUTH_ID (byte 1), two reserved bytes and T_ID (bytes 4-5, little-endian).
/// <code>
/// Negotiate  (host)  6 SC_C, 7 NAPD, 8.. NAPD protocol descriptors of 64 bytes:
///                    0 AUTHID=01h, 2 HALEN, 3 DHLEN, 4..33 hash IDs, 34..63 DH group IDs
/// Challenge  (ctrl)  6 HL, 8 HASHID, 9 DHGID, 10 DHVLEN(2), 12 SEQNUM(4), 16.. C1[HL], DH value[DHVLEN]
/// Reply      (host)  6 HL, 8 CVALID, 10 DHVLEN(2), 12 SEQNUM(4), 16.. R1[HL], C2[HL], DH value[DHVLEN]
/// Success1   (ctrl)  6 HL, 8 RVALID, 16.. R2[HL]
/// Success2   (host)  16 bytes, nothing but the header
/// Failure1/2         6 RESCODE=01h, 7 RESCODE_EXP (one of <see cref="DhchapFailure"/>); 8 bytes
/// </code>
/// </summary>
public static class DhchapMessages
{
    /// <summary>SECP of Authentication Send/Receive for DH-HMAC-CHAP; SPSP0 and SPSP1 are both 01h.</summary>
    public const byte ProtocolIdentifier = 0xE9;
    public const byte Spsp = 0x01;

    public const byte TypeCommon = 0x00;
    public const byte TypeDhchap = 0x01;

    public const byte Negotiate = 0x00;
    public const byte Challenge = 0x01;
    public const byte Reply = 0x02;
    public const byte Success1 = 0x03;
    public const byte Success2 = 0x04;
    public const byte Failure2 = 0xF0;
    public const byte Failure1 = 0xF1;

    public const byte DhchapAuthId = 0x01;
    public const int HeaderSize = 16;
    public const int NegotiateHeaderSize = 8;
    public const int DescriptorSize = 64;
    public const int FailureSize = 8;
    public const int MaxIds = 30;
    public const byte ReasonFailed = 0x01;

    /// <summary>Longest message either side may send in one command: a Reply with SHA-512 and ffdhe8192 is
    /// 16 + 2*64 + 1024 bytes, a Negotiate with the Linux host's one descriptor 72. TL/AL above this are refused
    /// (Invalid Field) before any buffer is taken.</summary>
    public const int MaxLength = 4096;

    /// <summary>CDW10 of an Authentication Send/Receive: SPSP0 (byte 41), SPSP1 (42), SECP (43).</summary>
    public static uint Cdw10 => (uint)Spsp << 8 | (uint)Spsp << 16 | (uint)ProtocolIdentifier << 24;

    public static ushort TransactionId(ReadOnlySpan<byte> m) => BinaryPrimitives.ReadUInt16LittleEndian(m[4..]);

    public static void WriteHeader(Span<byte> m, byte type, byte id, ushort transactionId)
    {
        m[0] = type;
        m[1] = id;
        m[2] = m[3] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(m[4..], transactionId);
    }

    /// <summary>A Negotiate with one DH-HMAC-CHAP descriptor (what the Linux host sends: 72 bytes).</summary>
    public static byte[] BuildNegotiate(ushort transactionId, IReadOnlyList<DhchapHash> hashes, IReadOnlyList<DhGroupId> groups)
    {
        var m = new byte[NegotiateHeaderSize + DescriptorSize];
        WriteHeader(m, TypeCommon, Negotiate, transactionId);
        m[6] = 0; // SC_C
        m[7] = 1; // NAPD
        var d = m.AsSpan(NegotiateHeaderSize);
        d[0] = DhchapAuthId;
        d[2] = (byte)hashes.Count;
        d[3] = (byte)groups.Count;
        for (int i = 0; i < hashes.Count; i++) d[4 + i] = (byte)hashes[i];
        for (int i = 0; i < groups.Count; i++) d[4 + MaxIds + i] = (byte)groups[i];
        return m;
    }

    public static byte[] BuildFailure(byte id, ushort transactionId, DhchapFailure reason)
    {
        var m = new byte[FailureSize];
        WriteHeader(m, TypeCommon, id, transactionId);
        m[6] = ReasonFailed;
        m[7] = (byte)reason;
        return m;
    }
}

/// <summary>RESCODE_EXP of a Failure1/Failure2 message (NVMe base spec 2.0, 8.13.5.2 / figure "reason code
/// explanations"), the numbers the Linux host and target use.</summary>
public enum DhchapFailure : byte
{
    Failed = 0x01,
    NotUsable = 0x02,
    ConcatMismatch = 0x03,
    HashUnusable = 0x04,
    DhGroupUnusable = 0x05,
    IncorrectPayload = 0x06,
    IncorrectMessage = 0x07,
}
