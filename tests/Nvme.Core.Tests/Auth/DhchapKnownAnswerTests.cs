using System.Globalization;
using System.Numerics;
using Nvme.Core.Auth;

namespace Nvme.Core.Tests.Auth;

/// <summary>
/// Known answers for the DH-HMAC-CHAP crypto. The expected values were computed once, independently of this code,
/// by dhchap_kat.py next to this file (Python hashlib/hmac/zlib from the definitions of NVMe base spec 2.0 8.13.5
/// and the RFC 7919 ffdhe2048 prime as OpenSSL has it); run it to see them again.
/// </summary>
public class DhchapKnownAnswerTests
{
    private const string HostNqn = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11";
    private const string SubNqn = "nqn.2026-01.io.nvmetcptarget.test:sub1";
    private const string HostSecret = "DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:";
    private const string CtrlSecret = "DHHC-1:02:gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra6vkk6Jzw==:";
    private static byte[] Range(int start, int count) => [.. Enumerable.Range(start, count).Select(i => (byte)i)];
    private static byte[] Hex(string s) => Convert.FromHexString(s);

    [Fact]
    public void Secret_representation_matches_key_and_crc()
    {
        Assert.Equal(HostSecret, DhchapSecret.FromKey(Range(0, 32), 1).Representation);
        Assert.Equal(CtrlSecret, DhchapSecret.FromKey(Range(0x80, 48), 2).Representation);
        Assert.Equal("DHHC-1:00:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P4zODhA=:",
            DhchapSecret.FromKey(Range(0, 64), 0).Representation);
        var s = DhchapSecret.Parse(HostSecret);
        Assert.Equal(1, s.TransformHash);
        Assert.Equal(32, s.KeyLength);
        Assert.DoesNotContain("AAEC", s.ToString()); // never shows the key
    }

    [Fact]
    public void Transformed_keys_use_the_host_nqn_and_the_subsystem_nqn()
    {
        Assert.Equal(Hex("4d7d01e0f3aefe2a59786da0fe66f8903f8d653d395f0c51ce2b4fb9c6c0977f"), DhchapSecret.Parse(HostSecret).Transform(HostNqn));
        Assert.Equal(Hex("ef37498ebc2b898670430b2e2b55ffce40319659df2c27d308abe15e43d8f2e50ffddeb17a03d243852dbe49ac7042f8"),
            DhchapSecret.Parse(CtrlSecret).Transform(SubNqn));
        // hh 00: the key as it is.
        Assert.Equal(Range(0, 64), DhchapSecret.FromKey(Range(0, 64)).Transform(HostNqn));
    }

    [Fact]
    public void Host_and_controller_responses_with_the_null_group()
    {
        var kh = DhchapSecret.Parse(HostSecret).Transform(HostNqn);
        var kc = DhchapSecret.Parse(CtrlSecret).Transform(SubNqn);
        Assert.Equal(Hex("09971d181eeb4168cfdeb9d8a82e15329a806aa71f55af17dfbda789b2a8bcfe"),
            DhchapCrypto.HostResponse(DhchapHash.Sha256, kh, Range(0x40, 32), 0x12345678, 0x0102, HostNqn, SubNqn));
        Assert.Equal(Hex("997eb9e06d07e5bd8c6aa1d57b4011bd6359be96c0a172c1fd291a1977df043cb0faf850fcf1dd14a30428d23bdfc5fd"),
            DhchapCrypto.ControllerResponse(DhchapHash.Sha384, kc, Range(0xA0, 48), 0x9abcdef0, 0x0102, SubNqn, HostNqn));
    }

    [Fact]
    public void Ffdhe2048_exchange_augmented_challenge_and_response()
    {
        var g = FfdheGroup.Get(DhGroupId.Ffdhe2048)!;
        var x = BigInteger.Parse("01d2c3b4a59687786f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e", NumberStyles.HexNumber);
        var y = BigInteger.Parse("00123456789abcdeffedcba98765432100f1e2d3c4b5a69788796a5b4c3d2e1f0", NumberStyles.HexNumber);
        var gx = g.PublicValue(x);
        var gy = g.PublicValue(y);
        Assert.Equal(256, gx.Length);
        Assert.Equal(Hex("6c8679eadd8eca85bf0d2252f817aa3b"), gx[..16]);
        Assert.Equal(Hex("4ea4568e6c972d0f2a82519ba1561d77"), gy[..16]);
        var s1 = g.SharedSecret(x, gy)!;
        var s2 = g.SharedSecret(y, gx)!;
        Assert.Equal(s1, s2);
        Assert.Equal(Hex("d55cbaa5af4195fd767964dd77f9909fbace2a35d0c3bcea60ff24deefcc325c"), DhchapHash.Sha256.Hash(s1));
        var ca = DhchapCrypto.AugmentedChallenge(DhchapHash.Sha256, s1, Range(0x40, 32));
        Assert.Equal(Hex("bb96a5b297f442e187f6bbb3022b0e6849f0e90f3949685d80b1f33a2c73995c"), ca);
        var kh = DhchapSecret.Parse(HostSecret).Transform(HostNqn);
        Assert.Equal(Hex("763494740a12c8648950c8d849348f0f348c984b43116b051c108cdd70320c76"),
            DhchapCrypto.HostResponse(DhchapHash.Sha256, kh, ca, 0x12345678, 0x0102, HostNqn, SubNqn));
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("DHHC-2:00:AAAA:", "form")]
    [InlineData("DHHC-1:04:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", "transformation")]
    [InlineData("DHHC-1:01:not*base64:", "base64")]
    [InlineData("DHHC-1:00:AAECAwQFBgcICQoLDA0ODw==:", "32, 48 or 64")]
    [InlineData("DHHC-1:01:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaS:", "CRC")]
    [InlineData("DHHC-1:03:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh+KfiaR:", "64-byte")]
    public void Bad_secrets_are_refused_with_a_reason_that_does_not_quote_them(string text, string reason)
    {
        Assert.False(DhchapSecret.TryParse(text, out _, out var error));
        Assert.Contains(reason, error);
        if (text.Length > 20) Assert.DoesNotContain(text[10..20], error);
    }

    [Fact]
    public void Generated_secrets_parse_back()
    {
        foreach (var (len, hh) in new[] { (32, 0), (48, 0), (64, 0), (32, 1), (48, 2), (64, 3) })
        {
            var s = DhchapSecret.Generate(len, (byte)hh);
            var p = DhchapSecret.Parse(s.Representation);
            Assert.True(p.SameAs(s));
            Assert.Equal(len, p.KeyLength);
        }
        Assert.False(DhchapSecret.Generate().SameAs(DhchapSecret.Generate()));
    }

    [Theory]
    [InlineData(DhGroupId.Ffdhe2048, 2048)]
    [InlineData(DhGroupId.Ffdhe3072, 3072)]
    [InlineData(DhGroupId.Ffdhe4096, 4096)]
    [InlineData(DhGroupId.Ffdhe6144, 6144)]
    [InlineData(DhGroupId.Ffdhe8192, 8192)]
    public void Ffdhe_primes_have_the_rfc7919_form_and_are_safe_primes(DhGroupId id, int bits)
    {
        var g = FfdheGroup.Get(id)!;
        var p = g.Prime;
        Assert.Equal(bits / 8, g.Length);
        Assert.Equal(bits, (int)p.GetBitLength());
        var ones64 = (BigInteger.One << 64) - 1;
        Assert.Equal(ones64, p & ones64);                 // the low 64 bits are all ones
        Assert.Equal(ones64, p >> (bits - 64));           // and so are the high 64 bits
        // Miller-Rabin of p and (p-1)/2 (a safe prime); the two largest get one base each to keep the test quick.
        int[] bases = bits <= 4096 ? [2, 3, 5] : [2];
        Assert.True(IsProbablePrime(p, bases));
        Assert.True(IsProbablePrime((p - 1) / 2, bases));
    }

    [Fact]
    public void Shared_secret_refuses_degenerate_peer_values()
    {
        var g = FfdheGroup.Get(DhGroupId.Ffdhe2048)!;
        var x = g.NewPrivateKey();
        var one = new byte[256]; one[255] = 1;
        var pMinus1 = (g.Prime - 1).ToByteArray(isUnsigned: true, isBigEndian: true);
        Assert.Null(g.SharedSecret(x, one));
        Assert.Null(g.SharedSecret(x, pMinus1));
        Assert.Null(g.SharedSecret(x, new byte[255]));    // wrong length
        Assert.NotNull(g.SharedSecret(x, g.PublicValue(g.NewPrivateKey())));
    }

    /// <summary>Miller-Rabin with fixed bases (a composite RFC 7919 value passing even one would be astonishing).</summary>
    private static bool IsProbablePrime(BigInteger n, int[] bases)
    {
        if (n < 2 || n.IsEven) return n == 2;
        var d = n - 1; int r = 0;
        while (d.IsEven) { d >>= 1; r++; }
        foreach (int a in bases)
        {
            var x = BigInteger.ModPow(a, d, n);
            if (x == 1 || x == n - 1) continue;
            bool composite = true;
            for (int i = 1; i < r && composite; i++)
            {
                x = BigInteger.ModPow(x, 2, n);
                if (x == n - 1) composite = false;
            }
            if (composite) return false;
        }
        return true;
    }
}
