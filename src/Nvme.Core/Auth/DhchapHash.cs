using System.Security.Cryptography;

namespace Nvme.Core.Auth;

/// <summary>The hash functions of DH-HMAC-CHAP (NVMe base spec 2.0, 8.13.5.3 "DH-HMAC-CHAP_Negotiate", the HASH
/// identifiers): the HMAC of the responses and the hash of the augmented challenge use the one the controller picks.
/// The same numbers name the key transformation of a secret (the hh of "DHHC-1:hh:...").</summary>
public enum DhchapHash : byte
{
    Sha256 = 0x01,
    Sha384 = 0x02,
    Sha512 = 0x03,
}

public static class DhchapHashes
{
    /// <summary>Every hash the target implements, in the order it prefers none over another (the host's list decides).</summary>
    public static readonly DhchapHash[] All = [DhchapHash.Sha256, DhchapHash.Sha384, DhchapHash.Sha512];

    public static bool IsDefined(byte id) => id is >= 1 and <= 3;

    /// <summary>Digest length in bytes: the HL of every message and the length of challenges and responses.</summary>
    public static int Length(this DhchapHash h) => h switch
    {
        DhchapHash.Sha256 => 32,
        DhchapHash.Sha384 => 48,
        DhchapHash.Sha512 => 64,
        _ => throw new ArgumentOutOfRangeException(nameof(h), h, "unknown DH-HMAC-CHAP hash"),
    };

    /// <summary>The name users write (config, CLI): "sha256", as nvmet's dhchap_hash shows it without "hmac(...)".</summary>
    public static string Name(this DhchapHash h) => h switch
    {
        DhchapHash.Sha256 => "sha256",
        DhchapHash.Sha384 => "sha384",
        DhchapHash.Sha512 => "sha512",
        _ => throw new ArgumentOutOfRangeException(nameof(h), h, "unknown DH-HMAC-CHAP hash"),
    };

    /// <summary>Parses "sha256", "SHA-256", "hmac(sha256)" (kernel nvmet's spelling) and the like.</summary>
    public static bool TryParse(string? text, out DhchapHash hash)
    {
        hash = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        string t = text.Trim().ToLowerInvariant().Replace("-", "");
        if (t.StartsWith("hmac(", StringComparison.Ordinal) && t.EndsWith(')')) t = t[5..^1];
        switch (t)
        {
            case "sha256": hash = DhchapHash.Sha256; return true;
            case "sha384": hash = DhchapHash.Sha384; return true;
            case "sha512": hash = DhchapHash.Sha512; return true;
            default: return false;
        }
    }

    public static IncrementalHash CreateHmac(this DhchapHash h, ReadOnlySpan<byte> key) =>
        IncrementalHash.CreateHMAC(Algorithm(h), key);

    public static byte[] Hmac(this DhchapHash h, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data) => h switch
    {
        DhchapHash.Sha256 => HMACSHA256.HashData(key, data),
        DhchapHash.Sha384 => HMACSHA384.HashData(key, data),
        DhchapHash.Sha512 => HMACSHA512.HashData(key, data),
        _ => throw new ArgumentOutOfRangeException(nameof(h), h, "unknown DH-HMAC-CHAP hash"),
    };

    public static byte[] Hash(this DhchapHash h, ReadOnlySpan<byte> data) => h switch
    {
        DhchapHash.Sha256 => SHA256.HashData(data),
        DhchapHash.Sha384 => SHA384.HashData(data),
        DhchapHash.Sha512 => SHA512.HashData(data),
        _ => throw new ArgumentOutOfRangeException(nameof(h), h, "unknown DH-HMAC-CHAP hash"),
    };

    private static HashAlgorithmName Algorithm(DhchapHash h) => h switch
    {
        DhchapHash.Sha256 => HashAlgorithmName.SHA256,
        DhchapHash.Sha384 => HashAlgorithmName.SHA384,
        DhchapHash.Sha512 => HashAlgorithmName.SHA512,
        _ => throw new ArgumentOutOfRangeException(nameof(h), h, "unknown DH-HMAC-CHAP hash"),
    };
}
