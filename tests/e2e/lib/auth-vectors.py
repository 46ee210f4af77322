# An independent implementation of the DTLS-fingerprint authentication of docs/protocol.md
# ("Authenticated descriptions"), in Python's standard library only (hmac, hashlib, base64):
# HKDF-SHA256 (RFC 5869) by hand, the fingerprint normalization, the transcript and the safety
# code. Reads a JSON list of cases on stdin, prints the results as JSON. Used by
# tests/e2e/auth-vectors.test.js to check public/js/auth.js; shares no code with it.
import base64
import hashlib
import hmac
import json
import re
import sys


def hkdf(ikm, salt, info, length):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()  # extract
    okm, t, i = b"", b"", 1
    while len(okm) < length:  # expand
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm, i = okm + t, i + 1
    return okm[:length]


def fingerprints(sdp):
    out = set()
    for line in re.split(r"\r\n|\n|\r", sdp):
        if line.lstrip().lower().startswith("a=fingerprint:"):
            func, _, value = line.strip()[len("a=fingerprint:"):].partition(" ")
            out.add(func.lower() + " " + value.strip().upper())
    return sorted(out)


def room_key(token):
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert len(raw) == 32
    return hkdf(raw, b"alisay", b"dtls-auth v1", 32)


def lines(items):
    return "".join(item + "\n" for item in items).encode("ascii")


def case(c):
    k = room_key(c["token"])
    role = "polite" if c["polite"] else "impolite"
    transcript = lines(["alisay dtls-auth v1", c["type"], role] + fingerprints(c["sdp"]))
    tag = hmac.new(k, transcript, hashlib.sha256).digest()
    both = sorted(set(fingerprints(c["sdp"])) | set(fingerprints(c["other"])))
    mac = hmac.new(k, lines(["safety v1"] + both), hashlib.sha256).digest()
    return {
        "key": k.hex(),
        "transcript": transcript.decode("ascii"),
        "auth": base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii"),
        "safety": "%06d" % (int.from_bytes(mac[:4], "big") % 1000000),
    }


rfc = hkdf(bytes([0x0B] * 22), bytes(range(0x00, 0x0D)), bytes(range(0xF0, 0xFA)), 42)
print(json.dumps({"rfc5869_case1": rfc.hex(), "cases": [case(c) for c in json.load(sys.stdin)]}))
