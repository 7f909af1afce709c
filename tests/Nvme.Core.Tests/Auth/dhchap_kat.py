#!/usr/bin/env python3
"""Known-answer values for DhchapKnownAnswerTests.cs, computed independently of the C# code from the definitions
in NVMe base spec 2.0 section 8.13.5 (as the Linux kernel's drivers/nvme/common/auth.c and target/auth.c apply them)
with Python's hashlib/hmac/zlib and the RFC 7919 ffdhe2048 prime (openssl genpkey -genparam -pkeyopt group:ffdhe2048).
Run: python3 dhchap_kat.py (prints the values checked in)."""
import base64, hashlib, hmac, struct, subprocess, zlib

HOST = "nqn.2014-08.org.nvmexpress:uuid:6d1c4a52-4a8e-4f6b-9d2b-1f0e5a7c3b11"
SUB = "nqn.2026-01.io.nvmetcptarget.test:sub1"
H = {1: hashlib.sha256, 2: hashlib.sha384, 3: hashlib.sha512}

def secret(key, hh):
    return "DHHC-1:%02d:%s:" % (hh, base64.b64encode(key + struct.pack("<I", zlib.crc32(key))).decode())

def transform(key, hh, nqn):
    return key if hh == 0 else hmac.new(key, nqn.encode() + b"NVMe-over-Fabrics", H[hh]).digest()

def response(h, key, chal, seq, tid, label, n1, n2):
    return hmac.new(key, chal + struct.pack("<IH", seq, tid) + b"\0" + label + n1.encode() + b"\0" + n2.encode(), H[h]).digest()

hkey = bytes(range(32)); ckey = bytes(range(0x80, 0x80 + 48))
print("host secret     ", secret(hkey, 1))
print("ctrl secret     ", secret(ckey, 2))
print("host secret 00  ", secret(bytes(range(64)), 0))
kh = transform(hkey, 1, HOST); kc = transform(ckey, 2, SUB)
print("Kh' (sha256)    ", kh.hex())
print("Kc' (sha384)    ", kc.hex())
c1 = bytes(range(0x40, 0x60)); c2 = bytes(range(0xA0, 0xD0))
print("R1 sha256 null  ", response(1, kh, c1, 0x12345678, 0x0102, b"HostHost", HOST, SUB).hex())
print("R2 sha384 null  ", response(2, kc, c2, 0x9abcdef0, 0x0102, b"Controller", SUB, HOST).hex())

pem = subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048"], capture_output=True, check=True).stdout
asn = subprocess.run(["openssl", "asn1parse"], input=pem, capture_output=True, check=True).stdout.decode()
p = int([l for l in asn.splitlines() if "INTEGER" in l][0].split(":")[-1], 16)
x = 0x1d2c3b4a59687786f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a09f8e
y = 0x0123456789abcdeffedcba98765432100f1e2d3c4b5a69788796a5b4c3d2e1f0
gx = pow(2, x, p).to_bytes(256, "big"); gy = pow(2, y, p).to_bytes(256, "big")
s = pow(pow(2, y, p), x, p).to_bytes(256, "big")
print("g^x[0:16]       ", gx[:16].hex())
print("g^y[0:16]       ", gy[:16].hex())
print("sha256(g^xy)    ", hashlib.sha256(s).hexdigest())
ca = hmac.new(hashlib.sha256(s).digest(), c1, hashlib.sha256).digest()
print("Ca1 ffdhe2048   ", ca.hex())
print("R1 sha256 2048  ", response(1, kh, ca, 0x12345678, 0x0102, b"HostHost", HOST, SUB).hex())
