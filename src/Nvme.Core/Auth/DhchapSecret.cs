using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Nvme.Core.Auth;

/// <summary>
/// A DH-HMAC-CHAP secret in its text representation (NVMe base spec 2.0, 8.13.5.8 "Secret representation"; what
/// <c>nvme gen-dhchap-key</c> prints and kernel nvmet's dhchap_key takes): <c>DHHC-1:hh:BASE64:</c>, where BASE64 is
/// the key (32, 48 or 64 bytes) followed by the CRC-32 of the key, little-endian (the zlib/IEEE CRC, as libnvme and
/// the kernel's nvme_auth_extract_key compute it), and hh says how the key is transformed before use: 00 not at
/// all, 01/02/03 HMAC-SHA-256/384/512 keyed with the secret over the host NQN and "NVMe-over-Fabrics".
/// The key bytes never leave this type except through <see cref="Transform"/>; <see cref="ToString"/> hides them.
/// </summary>
public sealed class DhchapSecret
{
    private const string Prefix = "DHHC-1:";
    private readonly byte[] _key;
    private readonly string _text;

    private DhchapSecret(byte[] key, byte transform, string text)
    {
        _key = key;
        TransformHash = transform;
        _text = text;
    }

    /// <summary>0 = the key is used as it is, else the <see cref="DhchapHash"/> of the transformation.</summary>
    public byte TransformHash { get; }
    public int KeyLength => _key.Length;
    /// <summary>The secret as it was given (for saving the configuration; never log it).</summary>
    public string Representation => _text;

    public override string ToString() => $"DHHC-1:{TransformHash:d2}:<{KeyLength}-byte key>";

    public static DhchapSecret Parse(string text) =>
        TryParse(text, out var s, out var error) ? s : throw new FormatException(error);

    /// <summary>Parses and checks a secret (prefix, hh, base64, key length, CRC). The error never quotes the secret.</summary>
    public static bool TryParse(string? text, out DhchapSecret secret, out string error)
    {
        secret = null!;
        error = "";
        if (string.IsNullOrWhiteSpace(text)) { error = "the DH-HMAC-CHAP secret is empty"; return false; }
        string t = text.Trim();
        if (!t.StartsWith(Prefix, StringComparison.Ordinal) || t.Length < Prefix.Length + 4 || t[Prefix.Length + 2] != ':')
        {
            error = "a DH-HMAC-CHAP secret has the form DHHC-1:hh:BASE64: (as nvme gen-dhchap-key prints it)";
            return false;
        }
        string hh = t.Substring(Prefix.Length, 2);
        if (hh is not ("00" or "01" or "02" or "03"))
        {
            error = $"the DH-HMAC-CHAP secret's transformation '{hh}' is not 00 (none), 01 (SHA-256), 02 (SHA-384) or 03 (SHA-512)";
            return false;
        }
        byte transform = (byte)(hh[1] - '0');
        string b64 = t[(Prefix.Length + 3)..];
        if (b64.EndsWith(':')) b64 = b64[..^1];
        byte[] raw;
        try { raw = Convert.FromBase64String(b64); }
        catch (FormatException) { error = "the DH-HMAC-CHAP secret's key is not valid base64"; return false; }
        int keyLength = raw.Length - 4;
        if (keyLength is not (32 or 48 or 64))
        {
            error = $"the DH-HMAC-CHAP secret holds a {Math.Max(0, keyLength)}-byte key; it must be 32, 48 or 64 bytes";
            return false;
        }
        if (transform != 0 && keyLength != ((DhchapHash)transform).Length())
        {
            error = $"a DH-HMAC-CHAP secret transformed with {((DhchapHash)transform).Name()} must hold a {((DhchapHash)transform).Length()}-byte key, not {keyLength}";
            return false;
        }
        var key = raw.AsSpan(0, keyLength).ToArray();
        uint crc = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(keyLength));
        CryptographicOperations.ZeroMemory(raw);
        if (crc != Crc32Ieee.Compute(key))
        {
            CryptographicOperations.ZeroMemory(key);
            error = "the DH-HMAC-CHAP secret's CRC-32 does not match its key (mistyped or truncated?)";
            return false;
        }
        secret = new DhchapSecret(key, transform, $"{Prefix}{hh}:{b64}:");
        return true;
    }

    /// <summary>Builds the representation of a key (what nvme gen-dhchap-key does with a random key).</summary>
    public static DhchapSecret FromKey(ReadOnlySpan<byte> key, byte transform = 0)
    {
        var raw = new byte[key.Length + 4];
        key.CopyTo(raw);
        BinaryPrimitives.WriteUInt32LittleEndian(raw.AsSpan(key.Length), Crc32Ieee.Compute(key));
        return Parse($"{Prefix}{transform:d2}:{Convert.ToBase64String(raw)}:");
    }

    /// <summary>A new random secret of <paramref name="keyLength"/> bytes.</summary>
    public static DhchapSecret Generate(int keyLength = 32, byte transform = 0)
    {
        var key = RandomNumberGenerator.GetBytes(keyLength);
        try { return FromKey(key, transform); }
        finally { CryptographicOperations.ZeroMemory(key); }
    }

    /// <summary>The key as the responses use it (8.13.5.8): the key itself for hh 00, else
    /// HMAC-hh(key, NQN || "NVMe-over-Fabrics"). The host secret is transformed with the host NQN; the controller
    /// secret with the subsystem NQN (as the Linux host and target do).</summary>
    public byte[] Transform(string nqn)
    {
        if (TransformHash == 0) return (byte[])_key.Clone();
        var nqnBytes = Encoding.UTF8.GetBytes(nqn);
        var data = new byte[nqnBytes.Length + Suffix.Length];
        nqnBytes.CopyTo(data, 0);
        Suffix.CopyTo(data, nqnBytes.Length);
        return ((DhchapHash)TransformHash).Hmac(_key, data);
    }

    private static readonly byte[] Suffix = "NVMe-over-Fabrics"u8.ToArray();

    /// <summary>Same key and transformation (comparing without revealing timing).</summary>
    public bool SameAs(DhchapSecret? other) =>
        other != null && other.TransformHash == TransformHash && CryptographicOperations.FixedTimeEquals(other._key, _key);
}
