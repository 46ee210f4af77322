// Unit tests of public/js/auth.js (the DTLS-fingerprint authentication, docs/protocol.md
// "Authenticated descriptions") under Node's WebCrypto, no browser: the client's own ES module
// against (1) an independent Python implementation run at test time (lib/auth-vectors.py:
// hmac/hashlib, HKDF by hand and itself checked with RFC 5869 test case 1) and (2) fixed
// vectors committed here. Run with `bash tests/e2e/run.sh auth-vectors.test.js`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import { E2E_DIR, OUT_DIR, ROOT } from "./lib/harness.js";

const { DtlsAuth } = await import(path.join(ROOT, "public/js/auth.js"));

function metric(name, text) {
  const line = `METRIC ${name} ${text}`;
  console.log(line);
  fs.appendFileSync(path.join(OUT_DIR, "metrics.txt"), `${line}\n`);
}

/** A Chromium-like offer: BUNDLE, two media sections with the same sha-256 fingerprint. */
const OFFER = [
  "v=0",
  "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=group:BUNDLE 0 1",
  "a=msid-semantic: WMS",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:4ZcD",
  "a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfU",
  "a=fingerprint:sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2",
  "a=setup:actpass",
  "a=mid:0",
  "m=video 9 UDP/TLS/RTP/SAVPF 96",
  "c=IN IP4 0.0.0.0",
  "a=ice-ufrag:4ZcD",
  "a=ice-pwd:2/1muCWoOi3uLifh0NuRHlfU",
  "a=fingerprint:sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2",
  "a=setup:actpass",
  "a=mid:1",
  "",
].join("\r\n");

/** The answer: another certificate. */
const ANSWER = OFFER.replaceAll("19:E2:1C:3B", "7A:0B:C4:D1").replaceAll("a=setup:actpass", "a=setup:active");

/**
 * Session- and media-level lines, mixed case, a duplicate differing only in case, a second hash
 * function, LF line ends and trailing blanks: normalization must give two entries.
 */
const MIXED = [
  "v=0",
  "a=fingerprint:SHA-256 ab:cd:EF:01 ",
  "m=audio 9 UDP/TLS/RTP/SAVPF 111",
  "a=fingerprint:sha-256 AB:CD:ef:01",
  "a=fingerprint:sha-1 00:ff:10",
  "",
].join("\n");

/** 32 bytes 0x00..0x1f as a token, and 32 bytes 0xff. */
const TOKEN_SEQ = Buffer.from([...Array(32).keys()]).toString("base64url");
const TOKEN_FF = Buffer.alloc(32, 0xff).toString("base64url");

/**
 * Fixed vectors, computed once with lib/auth-vectors.py (Python 3.11) and committed: a change
 * to the byte layout or the key derivation shows here even if both implementations changed.
 */
const FIXED = [
  { token: TOKEN_SEQ, type: "offer", polite: false, sdp: OFFER, other: ANSWER, auth: "rhxtPysJ3Goe2M7f9iYc5-B2RGFB8wcSp7LAIMGNb1I", safety: "568739" },
  { token: TOKEN_SEQ, type: "answer", polite: true, sdp: ANSWER, other: OFFER, auth: "SLh4ACVU1aSVpqE3CSKTtoywcnhxxb6jvdf23FD0K4A", safety: "568739" },
  { token: TOKEN_FF, type: "offer", polite: true, sdp: MIXED, other: OFFER, auth: "Z2j_lsNDnKnguilJIH9Kj_s2xRW9CtDPIYduE3KrJT8", safety: "861413" },
];
const FIXED_KEY_SEQ = "c497937b5b85ae500256001def97509f888fa4cc2b55195dec5d7966e7c9546d";

function python(cases) {
  const r = spawnSync("python3", [path.join(E2E_DIR, "lib/auth-vectors.py")], { input: JSON.stringify(cases), encoding: "utf8", timeout: 30_000 });
  assert.equal(r.status, 0, `python3 lib/auth-vectors.py failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function randomCases(n) {
  const cases = [];
  for (let i = 0; i < n; i++) {
    const fp = (len) => [...crypto.randomBytes(len)].map((b) => b.toString(16).padStart(2, "0")).map((h) => (i % 3 ? h.toUpperCase() : h)).join(":");
    const sdp = `v=0\r\na=fingerprint:${i % 2 ? "SHA-256" : "sha-256"} ${fp(32)}\r\nm=audio 9 x 0\r\na=fingerprint:sha-384 ${fp(48)}\r\n`;
    const other = `v=0\r\na=fingerprint:sha-256 ${fp(32)}\r\n`;
    cases.push({ token: crypto.randomBytes(32).toString("base64url"), type: i % 2 ? "answer" : "offer", polite: i % 3 === 0, sdp, other });
  }
  return cases;
}

test("the Python HKDF is RFC 5869's: test case 1", () => {
  const out = python([]);
  assert.equal(out.rfc5869_case1, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
});

test("fingerprint normalization: lowercase hash function, uppercase hex, deduplicated, sorted, session and media level", () => {
  assert.deepEqual(DtlsAuth.fingerprints(OFFER), ["sha-256 19:E2:1C:3B:4B:9F:81:E6:B8:5C:F4:A5:A8:D8:73:04:BB:05:2F:70:9F:04:A9:0E:05:E9:26:33:E8:70:88:A2"]);
  assert.deepEqual(DtlsAuth.fingerprints(MIXED), ["sha-1 00:FF:10", "sha-256 AB:CD:EF:01"]);
  // A line the browser might read but we cannot is never skipped: the whole SDP is unreadable.
  assert.equal(DtlsAuth.fingerprints(`${OFFER}a=fingerprint:sha-256 XY:00\r\n`), null);
  assert.equal(DtlsAuth.fingerprints(`${OFFER}a=fingerprint:sha-256\r\n`), null);
  assert.equal(DtlsAuth.fingerprints(`${OFFER}A=FINGERPRINT:sha-256 0:00\r\n`), null);
  assert.equal(DtlsAuth.fingerprints("v=0\r\nm=audio 9 x 0\r\n"), null, "no fingerprint at all");
  const t = new TextDecoder().decode(DtlsAuth.transcript("answer", true, DtlsAuth.fingerprints(MIXED)));
  assert.equal(t, "alisay dtls-auth v1\nanswer\npolite\nsha-1 00:FF:10\nsha-256 AB:CD:EF:01\n");
});

test("auth tags, keys and safety codes equal the independent Python implementation (30 random cases + fixtures)", async () => {
  const cases = [...randomCases(30), ...FIXED.map(({ token, type, polite, sdp, other }) => ({ token, type, polite, sdp, other }))];
  const out = python(cases);
  assert.equal(out.cases.length, cases.length);
  for (const [i, c] of cases.entries()) {
    const want = out.cases[i];
    const auth = await DtlsAuth.fromToken(c.token);
    const t = new TextDecoder().decode(DtlsAuth.transcript(c.type, c.polite, DtlsAuth.fingerprints(c.sdp)));
    assert.equal(t, want.transcript, `case ${i}: transcript bytes`);
    assert.equal(await auth.sign(c.type, c.polite, c.sdp), want.auth, `case ${i}: auth`);
    assert.equal(await auth.verify(c.type, c.polite, c.sdp, want.auth), "ok", `case ${i}: Python's tag verifies`);
    assert.equal(await auth.safetyCode(c.sdp, c.other), want.safety, `case ${i}: safety code`);
    assert.equal(await auth.safetyCode(c.other, c.sdp), want.safety, `case ${i}: the same safety code on the other side`);
    assert.match(want.safety, /^\d{6}$/);
  }
  assert.equal(out.cases[cases.length - FIXED.length].key, FIXED_KEY_SEQ, "K of the 0x00..0x1f token");
});

test("fixed vectors committed in the repository", async () => {
  for (const [i, v] of FIXED.entries()) {
    const auth = await DtlsAuth.fromToken(v.token);
    assert.equal(await auth.sign(v.type, v.polite, v.sdp), v.auth, `fixed ${i}: auth`);
    assert.equal(await auth.safetyCode(v.sdp, v.other), v.safety, `fixed ${i}: safety code`);
  }
});

test("verification refuses every change: a fingerprint, the type, the role, the key, a missing or malformed tag", async () => {
  const auth = await DtlsAuth.fromToken(TOKEN_SEQ);
  const tag = await auth.sign("offer", false, OFFER);
  assert.equal(await auth.verify("offer", false, OFFER, tag), "ok");
  // Only the fingerprint lines are bound: other lines (ICE credentials, candidates) may change.
  assert.equal(await auth.verify("offer", false, OFFER.replace("a=ice-ufrag:4ZcD", "a=ice-ufrag:zzzz"), tag), "ok");
  // One fingerprint line rewritten (one hex digit, or only one of the two media sections).
  assert.equal(await auth.verify("offer", false, OFFER.replace("19:E2", "19:E3"), tag), "mismatch");
  assert.equal(await auth.verify("offer", false, OFFER.replace(/(a=fingerprint:sha-256 )19/, "$1AA"), tag), "mismatch");
  // A fingerprint added (a second certificate the attacker holds).
  assert.equal(await auth.verify("offer", false, `${OFFER}a=fingerprint:sha-256 00:11\r\n`, tag), "mismatch");
  assert.equal(await auth.verify("answer", false, OFFER, tag), "mismatch", "type");
  assert.equal(await auth.verify("offer", true, OFFER, tag), "mismatch", "role (a reflected description)");
  const other = await DtlsAuth.fromToken(TOKEN_FF);
  assert.equal(await other.verify("offer", false, OFFER, tag), "mismatch", "another room's key");
  assert.equal(await auth.verify("offer", false, OFFER, undefined), "missing");
  assert.equal(await auth.verify("offer", false, OFFER, null), "missing");
  assert.equal(await auth.verify("offer", false, OFFER, ""), "malformed");
  assert.equal(await auth.verify("offer", false, OFFER, `${tag}A`), "malformed");
  assert.equal(await auth.verify("offer", false, OFFER, tag.slice(0, 42) + (tag[42] === "A" ? "B" : "A")), "mismatch");
  assert.equal(await auth.verify("offer", false, OFFER, 12), "malformed");
  assert.equal(await auth.verify("offer", false, `${OFFER}a=fingerprint:sha-256 XY\r\n`, tag), "malformed");
  await assert.rejects(auth.sign("offer", false, "v=0\r\n"), TypeError, "nothing to sign without a fingerprint");
  await assert.rejects(DtlsAuth.fromToken("short"), TypeError);
});

test("cost: key derivation, signing and verifying under Node's WebCrypto", async () => {
  const n = 200;
  let t = performance.now();
  let auth;
  for (let i = 0; i < n; i++) auth = await DtlsAuth.fromToken(TOKEN_SEQ);
  const deriveMs = (performance.now() - t) / n;
  t = performance.now();
  let tag;
  for (let i = 0; i < n; i++) tag = await auth.sign("offer", false, OFFER);
  const signMs = (performance.now() - t) / n;
  t = performance.now();
  for (let i = 0; i < n; i++) assert.equal(await auth.verify("offer", false, OFFER, tag), "ok");
  const verifyMs = (performance.now() - t) / n;
  metric("auth_node_ms", `derive=${deriveMs.toFixed(3)} sign=${signMs.toFixed(3)} verify=${verifyMs.toFixed(3)} (mean of ${n})`);
  assert.ok(signMs < 20 && verifyMs < 20, "an HMAC takes well under 20 ms");
});

test("safety.js: the code reads the descriptions as sent and as verified, so a stored copy with fewer or reordered lines cannot change it", async () => {
  const { SafetyCode } = await import(path.join(ROOT, "public/js/safety.js"));
  const token = crypto.randomBytes(32).toString("base64url");
  const auth = await DtlsAuth.fromToken(token);
  const hex = () => [...crypto.randomBytes(32)].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(":");
  const hex48 = () => [...crypto.randomBytes(48)].map((b) => b.toString(16).toUpperCase().padStart(2, "0")).join(":");
  const sdp = (lines) => ["v=0", "o=- 1 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "m=video 9 UDP/TLS/RTP/SAVPF 96", ...lines.map((l) => `a=fingerprint:${l}`), "a=setup:actpass", ""].join("\r\n");
  // aiortc-like peer: three lines; a browser peer: one line.
  const three = [`sha-256 ${hex()}`, `sha-384 ${hex48()}`, `sha-512 ${hex()}:${hex()}`];
  const aiortcSent = sdp(three);
  const browserSent = sdp([`sha-256 ${hex()}`]);
  // The aiortc side: sent its three, verified the browser's one.
  const peer = new SafetyCode();
  peer.noteSent({ type: "offer", sdp: aiortcSent });
  assert.equal(await auth.verify("answer", true, browserSent, await auth.sign("answer", true, browserSent)), "ok");
  peer.noteVerified({ type: "answer", sdp: browserSent });
  // The browser side: sent its one, verified the three exactly as received.
  const page = new SafetyCode();
  assert.equal(await page.code(auth), null, "no code before both descriptions");
  page.noteSent({ type: "answer", sdp: browserSent });
  page.noteVerified({ type: "offer", sdp: aiortcSent });
  page.noteSent({ type: "ice", candidate: null }); // not a description: ignored
  const honest = await page.code(auth);
  assert.match(honest, /^\d{6}$/);
  assert.equal(await peer.code(auth), honest, "equal codes on an honest call");
  // What Chromium stores of the three (one line) would give another code: the old defect.
  const stored = await auth.safetyCode(browserSent, sdp(three.slice(0, 1)));
  assert.notEqual(stored, honest, "a code over the stored copy differs (why it is never used)");
  // Reordered lines and lowercase hex as received: the same code.
  const reordered = new SafetyCode();
  reordered.noteSent({ type: "answer", sdp: browserSent });
  reordered.noteVerified({ type: "offer", sdp: sdp([...three].reverse().map((l) => l.toLowerCase())) });
  assert.equal(await reordered.code(auth), honest, "order and hex case do not matter");
  // A tampered fingerprint (one the peer never sent) gives another code.
  const tampered = new SafetyCode();
  tampered.noteSent({ type: "answer", sdp: browserSent });
  tampered.noteVerified({ type: "offer", sdp: sdp([`sha-256 ${hex()}`, ...three.slice(1)]) });
  assert.notEqual(await tampered.code(auth), honest, "a swapped certificate changes the code");
  page.forget();
  assert.equal(await page.code(auth), null, "forgotten on a room switch");
});
