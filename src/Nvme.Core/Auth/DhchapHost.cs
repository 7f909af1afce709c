using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace Nvme.Core.Auth;

/// <summary>
/// The host side of one DH-HMAC-CHAP transaction as message bytes in and out (no I/O): what the Linux host's
/// drivers/nvme/host/auth.c does, for the test initiator and the core's round-trip tests. Use it in order:
/// <see cref="Negotiate"/>, <see cref="Reply"/> with the Challenge received, <see cref="Success1"/> with the
/// Success1 received (it returns the Success2 to send when bidirectional). A Failure1, a malformed message or a
/// controller response that does not check out throws <see cref="DhchapException"/>; after the last,
/// <see cref="DhchapException.Failure2"/> is the message to send back.
/// </summary>
public sealed class DhchapHost(string hostNqn, string subNqn, DhchapSecret hostSecret, DhchapSecret? controllerSecret = null)
{
    private DhchapHash _hash;
    private byte[]? _sessionKey, _c2;
    private uint _s2;

    /// <summary>Hashes offered in the Negotiate (the Linux host offers all three).</summary>
    public IReadOnlyList<DhchapHash> Hashes { get; init; } = DhchapHashes.All;
    /// <summary>DH groups offered (the Linux host offers all six unless told one).</summary>
    public IReadOnlyList<DhGroupId> DhGroups { get; init; } = Enum.GetValues<DhGroupId>();
    public ushort TransactionId { get; init; } = (ushort)RandomNumberGenerator.GetInt32(1, 0x10000);
    /// <summary>What the controller chose (after <see cref="Reply"/>).</summary>
    public DhchapHash ChosenHash => _hash;
    public DhGroupId ChosenDhGroup { get; private set; }
    public bool Bidirectional => controllerSecret != null;

    public byte[] Negotiate() => DhchapMessages.BuildNegotiate(TransactionId, Hashes, DhGroups);

    public byte[] Reply(ReadOnlySpan<byte> m)
    {
        ThrowIfFailure(m);
        if (m.Length < DhchapMessages.HeaderSize || m[0] != DhchapMessages.TypeDhchap || m[1] != DhchapMessages.Challenge)
            throw new DhchapException($"expected a Challenge, got {Describe(m)}");
        if (DhchapMessages.TransactionId(m) != TransactionId) throw new DhchapException($"Challenge for transaction {DhchapMessages.TransactionId(m)}");
        int hl = m[6];
        if (!DhchapHashes.IsDefined(m[8]) || ((DhchapHash)m[8]).Length() != hl) throw new DhchapException($"Challenge hash {m[8]:x2} with HL {hl}");
        _hash = (DhchapHash)m[8];
        if (!FfdheGroup.IsDefined(m[9])) throw new DhchapException($"Challenge DH group {m[9]:x2}");
        ChosenDhGroup = (DhGroupId)m[9];
        int dhvlen = BinaryPrimitives.ReadUInt16LittleEndian(m[10..]);
        uint s1 = BinaryPrimitives.ReadUInt32LittleEndian(m[12..]);
        if (m.Length < DhchapMessages.HeaderSize + hl + dhvlen) throw new DhchapException("Challenge shorter than HL + DHVLEN");
        byte[] challenge = m.Slice(DhchapMessages.HeaderSize, hl).ToArray();
        byte[] publicValue = [];
        if (FfdheGroup.Get(ChosenDhGroup) is { } group)
        {
            BigInteger x = group.NewPrivateKey();
            publicValue = group.PublicValue(x);
            _sessionKey = group.SharedSecret(x, m.Slice(DhchapMessages.HeaderSize + hl, dhvlen))
                ?? throw new DhchapException("the controller's DH value is unusable");
            challenge = DhchapCrypto.AugmentedChallenge(_hash, _sessionKey, challenge);
        }
        else if (dhvlen != 0) throw new DhchapException("a DH value with the null group");
        var key = hostSecret.Transform(hostNqn);
        var r1 = DhchapCrypto.HostResponse(_hash, key, challenge, s1, TransactionId, hostNqn, subNqn);
        var reply = new byte[DhchapMessages.HeaderSize + 2 * hl + publicValue.Length];
        DhchapMessages.WriteHeader(reply, DhchapMessages.TypeDhchap, DhchapMessages.Reply, TransactionId);
        reply[6] = (byte)hl;
        BinaryPrimitives.WriteUInt16LittleEndian(reply.AsSpan(10), (ushort)publicValue.Length);
        r1.CopyTo(reply, DhchapMessages.HeaderSize);
        if (controllerSecret != null)
        {
            reply[8] = 1; // CVALID
            _c2 = RandomNumberGenerator.GetBytes(hl);
            do _s2 = BinaryPrimitives.ReadUInt32LittleEndian(RandomNumberGenerator.GetBytes(4)); while (_s2 == 0);
            BinaryPrimitives.WriteUInt32LittleEndian(reply.AsSpan(12), _s2);
            _c2.CopyTo(reply, DhchapMessages.HeaderSize + hl);
        }
        publicValue.CopyTo(reply, DhchapMessages.HeaderSize + 2 * hl);
        return reply;
    }

    /// <summary>Checks a Success1; returns the Success2 to send (bidirectional) or null (done).</summary>
    public byte[]? Success1(ReadOnlySpan<byte> m)
    {
        ThrowIfFailure(m);
        if (m.Length < DhchapMessages.HeaderSize || m[0] != DhchapMessages.TypeDhchap || m[1] != DhchapMessages.Success1)
            throw new DhchapException($"expected Success1, got {Describe(m)}");
        if (controllerSecret is null) return null;
        int hl = _hash.Length();
        var failure2 = DhchapMessages.BuildFailure(DhchapMessages.Failure2, TransactionId, DhchapFailure.Failed);
        if (m[8] == 0 || m.Length < DhchapMessages.HeaderSize + hl)
            throw new DhchapException("Success1 without the controller's response", failure2);
        var challenge = _sessionKey is null ? _c2! : DhchapCrypto.AugmentedChallenge(_hash, _sessionKey, _c2!);
        var key = controllerSecret.Transform(subNqn);
        var expected = DhchapCrypto.ControllerResponse(_hash, key, challenge, _s2, TransactionId, subNqn, hostNqn);
        if (!CryptographicOperations.FixedTimeEquals(expected, m.Slice(DhchapMessages.HeaderSize, hl)))
            throw new DhchapException("the controller's response does not match the controller secret", failure2);
        var s2 = new byte[DhchapMessages.HeaderSize];
        DhchapMessages.WriteHeader(s2, DhchapMessages.TypeDhchap, DhchapMessages.Success2, TransactionId);
        return s2;
    }

    private static void ThrowIfFailure(ReadOnlySpan<byte> m)
    {
        if (m.Length >= DhchapMessages.FailureSize && m[1] == DhchapMessages.Failure1)
            throw new DhchapException($"the controller sent Failure1 (reason {m[6]:x2}, explanation {(DhchapFailure)m[7]})") { Reason = (DhchapFailure)m[7] };
    }

    private static string Describe(ReadOnlySpan<byte> m) => m.Length < 2 ? $"{m.Length} bytes" : $"type {m[0]:x2} id {m[1]:x2}";
}

/// <summary>A DH-HMAC-CHAP transaction failed on the host side.</summary>
public sealed class DhchapException(string message, byte[]? failure2 = null) : Exception(message)
{
    /// <summary>The controller's Failure1 explanation, if it sent one.</summary>
    public DhchapFailure? Reason { get; init; }
    /// <summary>The Failure2 the host should send (the controller's response did not check out).</summary>
    public byte[]? Failure2 { get; } = failure2;
}
