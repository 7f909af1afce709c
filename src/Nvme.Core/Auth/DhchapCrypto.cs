using System.Buffers.Binary;
using System.Text;

namespace Nvme.Core.Auth;

/// <summary>
/// The computations of DH-HMAC-CHAP (NVMe base spec 2.0, 8.13.5.4-8.13.5.6; TP 8006), the same on both ends so the
/// host side (the test initiator) and the controller side (the target) share them:
/// <list type="bullet">
/// <item>augmented challenge Ca = HMAC(H(g^xy mod p), C) when a DH group is used, else C itself;</item>
/// <item>host response R1 = HMAC(Kh', Ca1 || S1 || T_ID || SC_C || "HostHost" || NQNh || 00h || NQNc);</item>
/// <item>controller response R2 = HMAC(Kc', Ca2 || S2 || T_ID || SC_C || "Controller" || NQNc || 00h || NQNh);</item>
/// </list>
/// with S (sequence number) a little-endian dword, T_ID a little-endian word, SC_C one byte (0: no secure channel),
/// NQNs without their NUL, Kh' the host secret transformed with the host NQN and Kc' the controller secret
/// transformed with the subsystem NQN (<see cref="DhchapSecret.Transform"/>).
/// </summary>
public static class DhchapCrypto
{
    public static byte[] AugmentedChallenge(DhchapHash hash, ReadOnlySpan<byte> sessionKey, ReadOnlySpan<byte> challenge) =>
        hash.Hmac(hash.Hash(sessionKey), challenge);

    public static byte[] HostResponse(DhchapHash hash, ReadOnlySpan<byte> transformedHostKey, ReadOnlySpan<byte> challenge,
        uint seqnum, ushort transactionId, string hostNqn, string subNqn) =>
        Response(hash, transformedHostKey, challenge, seqnum, transactionId, "HostHost"u8, hostNqn, subNqn);

    public static byte[] ControllerResponse(DhchapHash hash, ReadOnlySpan<byte> transformedCtrlKey, ReadOnlySpan<byte> challenge,
        uint seqnum, ushort transactionId, string subNqn, string hostNqn) =>
        Response(hash, transformedCtrlKey, challenge, seqnum, transactionId, "Controller"u8, subNqn, hostNqn);

    private static byte[] Response(DhchapHash hash, ReadOnlySpan<byte> key, ReadOnlySpan<byte> challenge, uint seqnum,
        ushort transactionId, ReadOnlySpan<byte> label, string firstNqn, string secondNqn)
    {
        using var h = hash.CreateHmac(key);
        Span<byte> b = stackalloc byte[7];
        BinaryPrimitives.WriteUInt32LittleEndian(b, seqnum);
        BinaryPrimitives.WriteUInt16LittleEndian(b[4..], transactionId);
        b[6] = 0; // SC_C: no secure channel concatenation
        h.AppendData(challenge);
        h.AppendData(b);
        h.AppendData(label);
        h.AppendData(Encoding.UTF8.GetBytes(firstNqn));
        h.AppendData([0]);
        h.AppendData(Encoding.UTF8.GetBytes(secondNqn));
        return h.GetHashAndReset();
    }
}
