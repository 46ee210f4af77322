// The server cannot listen in (issue 8): two real Chromium callers, the real `alisay serve` and a
// real coturn, with a test-only man in the middle (lib/mitm.js) between the browsers and
// alisay, in the loopback-only namespace. Run with `bash tests/e2e/run.sh auth.test.js`.
//
// a. Through a transparent proxy (the positive control): the call verifies, every offer and
//    answer the browsers sent carried a 43-character `auth`, both show the same six-digit
//    safety code, equal to an independent Python computation from both connections' real
//    fingerprints; a glare of ICE restarts (both sides offering at once) stays verified.
// b. The proxy rewrites one `a=fingerprint` line of every relayed description (and makes both
//    callers receive one): both refuse with the warning, nothing is set, no media, no reconnect.
// c. The proxy strips `auth`: both refuse the same way.
// d. Only the offer reaches a caller (forged): that caller refuses; the other never sets
//    anything either and is told the other person left.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { seriousViolations } from "./lib/a11y.js";
import { Caller, launchBrowser } from "./lib/browser.js";
import { assertEqualSafetyCodes, assertFramesGrowing, assertNoTokenOnTheWire, assertRelayed, describePages, FIREFOX_PAIRS, framesDecoded, joinByInvite, pairTag, startAsNewUser, waitState } from "./lib/call.js";
import { Deployment, E2E_DIR, OUT_DIR, pollUntil, redact, redactError, sleep } from "./lib/harness.js";
import { MitmProxy } from "./lib/mitm.js";

const WARNING = "This call could not be verified: the connection may be intercepted.";

function metric(name, text) {
  const line = `METRIC ${name} ${text}`;
  console.log(line);
  fs.appendFileSync(path.join(OUT_DIR, "metrics.txt"), `${line}\n`);
}

// alisay listens on 8797; the browsers only ever talk to the proxy on 8798, which is the
// deployment's public origin (so the Origin check on /ws and POST /rooms passes through it).
const dep = new Deployment({ name: "auth", port: 8797, credentialTtl: "1h" });
const proxy = new MitmProxy({ port: 8798, backend: dep.backendOrigin });
dep.origin = proxy.origin;
let browser;
let callers = [];

before(async () => {
  await dep.start();
  await proxy.start();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of callers) await c.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  await proxy.stop();
  await dep.stop();
});

/**
 * Counts `setRemoteDescription` calls and notes when `#safety` first shows (injected before
 * the page's own scripts; the page's CSP does not apply to init scripts).
 */
function instrument() {
  let srd = 0;
  Object.defineProperty(window, "__srdCalls", { get: () => srd });
  const orig = RTCPeerConnection.prototype.setRemoteDescription;
  RTCPeerConnection.prototype.setRemoteDescription = function (...args) {
    srd += 1;
    return orig.apply(this, args);
  };
  window.__safetyAt = null;
  document.addEventListener("DOMContentLoaded", () => {
    const el = document.querySelector("#safety");
    new MutationObserver(() => {
      if (window.__safetyAt === null && !el.hidden) window.__safetyAt = performance.now();
    }).observe(el, { attributes: true, attributeFilter: ["hidden"] });
  });
}

/** A caller in the suite's Chromium, or (`kind` "firefox") in a Firefox process of its own. */
async function open(label, kind = "chromium") {
  const c = kind === "firefox" ? await Caller.openFirefox(label) : await Caller.open(browser, label);
  await c.page.addInitScript(instrument);
  callers.push(c);
  return c;
}

function tail(file, lines = 25) {
  try {
    return redact(fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n"));
  } catch {
    return `(no ${path.basename(file)})`;
  }
}

/** A test whose callers are closed at its end, with the pages' state in a failure message. */
function scenario(name, fn, { timeout = 90_000 } = {}) {
  test(name, { timeout }, async () => {
    fs.appendFileSync(dep.alisayLog, `===== e2e ${new Date().toISOString()} scenario begins: ${name}\n`);
    try {
      await fn();
      for (const c of callers) assertNoTokenOnTheWire(c);
    } catch (e) {
      const pages = await describePages(callers);
      e.message = `${e.message}\n-- pages:\n${pages}\n-- proxy: sent=${JSON.stringify(proxy.sent)} delivered=${JSON.stringify(proxy.delivered)}\n-- end of out/${path.basename(dep.alisayLog)}:\n${tail(dep.alisayLog)}`;
      redactError(e);
      throw e;
    } finally {
      for (const c of callers) {
        await c.dumpDiagnostics("end");
        await c.close().catch(() => {});
      }
      callers = [];
    }
  });
}

/** The safety code computed by lib/auth-vectors.py (independent of public/js/auth.js). */
function pythonSafetyCode(token, sdp, other) {
  const r = spawnSync("python3", [path.join(E2E_DIR, "lib/auth-vectors.py")], {
    input: JSON.stringify([{ token, type: "offer", polite: false, sdp, other }]),
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(r.status, 0, `python3 failed: ${r.stderr}`);
  return JSON.parse(r.stdout).cases[0].safety;
}

/** The sorted set of `a=fingerprint` values in an SDP (for comparing both sides). */
function fingerprintSet(sdp) {
  return [...new Set((sdp.match(/^a=fingerprint:.*$/gm) ?? []).map((l) => l.trim().toUpperCase()))].sort();
}

async function descriptions(c) {
  return c.page.evaluate(() => ({ local: window.alisay.pc?.localDescription?.sdp ?? null, remote: window.alisay.pc?.remoteDescription?.sdp ?? null }));
}

async function safetyShown(c) {
  await c.page.waitForSelector("#safety-code", { state: "visible", timeout: 15_000 });
  return {
    text: (await c.page.textContent("#safety-code")).trim(),
    handle: await c.page.evaluate(() => window.alisay.safetyCode),
    label: (await c.page.textContent("#safety")).replace(/\s+/g, " ").trim(),
  };
}

scenario("a. through a transparent proxy the call verifies: auth on every description, the same safety code on both sides (recomputed in Python), glare of ICE restarts stays verified", async () => {
  proxy.configure({});
  const A = await open("auth-a-A");
  const B = await open("auth-a-B");
  const link = await startAsNewUser(A, proxy.origin);
  const token = link.split("#")[1];
  const startToVideoMs = await joinByInvite(B, A, link);
  for (const c of [A, B]) await assertRelayed(c);
  await assertFramesGrowing(B);

  const codes = [];
  for (const c of [A, B]) {
    const s = await safetyShown(c);
    assert.match(s.handle, /^\d{6}$/, `${c.label}: window.alisay.safetyCode is six digits`);
    assert.equal(s.text, `${s.handle.slice(0, 3)} ${s.handle.slice(3)}`, `${c.label}: #safety-code shows it as "123 456"`);
    assert.match(s.label, /^Safety code \d{3} \d{3} Read it out loud to each other/, `${c.label}: labelled and explained`);
    assert.ok((await c.page.getAttribute("#safety", "title")).length > 40, `${c.label}: a tooltip explains it`);
    assert.equal(await c.page.evaluate(() => window.alisay.verification), "verified", `${c.label}: verified`);
    codes.push(s.handle);
  }
  assert.equal(codes[0], codes[1], "both callers see the same safety code");

  // The truth from both RTCPeerConnections: each side's remote fingerprints are the other
  // side's own, and the code is HMAC(K, "safety v1" ...) of them, computed by Python.
  const a = await descriptions(A);
  const b = await descriptions(B);
  assert.deepEqual(fingerprintSet(a.remote), fingerprintSet(b.local), "A got B's real fingerprints");
  assert.deepEqual(fingerprintSet(b.remote), fingerprintSet(a.local), "B got A's real fingerprints");
  assert.notDeepEqual(fingerprintSet(a.local), fingerprintSet(b.local), "two different certificates");
  assert.equal(pythonSafetyCode(token, a.local, a.remote), codes[0], "the safety code matches Python's derivation");

  // Every offer and answer the browsers sent carried auth (43 base64url characters).
  assert.ok(proxy.sent.some((m) => m.type === "offer") && proxy.sent.some((m) => m.type === "answer"), `an offer and an answer were sent: ${JSON.stringify(proxy.sent)}`);
  assert.ok(proxy.sent.every((m) => m.auth === 43), `every description carried auth: ${JSON.stringify(proxy.sent)}`);

  const timings = { A: await A.page.evaluate(() => window.alisay.authTimings), B: await B.page.evaluate(() => window.alisay.authTimings) };
  const verifiedAt = await B.page.evaluate(() => window.__safetyAt - window.__startAt);
  metric("auth_call_ms", `start_to_video=${startToVideoMs} start_to_safety_code=${Math.round(verifiedAt)} sign_ms_A=${timings.A.signMs?.toFixed(2)} verify_ms_A=${timings.A.verifyMs?.toFixed(2)} sign_ms_B=${timings.B.signMs?.toFixed(2)} verify_ms_B=${timings.B.verifyMs?.toFixed(2)}`);
  const browserCost = await A.page.evaluate(async (tok) => {
    const { DtlsAuth } = await import("/js/auth.js");
    const sdp = window.alisay.pc.localDescription.sdp;
    const n = 100;
    let t = performance.now();
    let auth;
    for (let i = 0; i < n; i++) auth = await DtlsAuth.fromToken(tok);
    const derive = (performance.now() - t) / n;
    t = performance.now();
    let tag;
    for (let i = 0; i < n; i++) tag = await auth.sign("offer", false, sdp);
    const sign = (performance.now() - t) / n;
    t = performance.now();
    for (let i = 0; i < n; i++) await auth.verify("offer", false, sdp, tag);
    return { derive, sign, verify: (performance.now() - t) / n };
  }, token);
  metric("auth_chromium_ms", `derive=${browserCost.derive.toFixed(3)} sign=${browserCost.sign.toFixed(3)} verify=${browserCost.verify.toFixed(3)} (mean of 100, real local SDP)`);

  // Glare: both sides restart ICE at the same moment, so both offer; perfect negotiation rolls
  // one back. Every new description still carries auth and verifies; the code does not change.
  const before = proxy.sent.length;
  await Promise.all([A, B].map((c) => c.page.evaluate(() => window.alisay.pc.restartIce())));
  await pollUntil("new offers and answers after the ICE restarts", () => proxy.sent.length >= before + 2, { timeoutMs: 10_000 });
  await sleep(2000);
  for (const c of [A, B]) {
    await waitState(c, "connected", 15_000);
    assert.equal(await c.page.evaluate(() => window.alisay.verification), "verified", `${c.label}: still verified`);
    assert.equal(await c.page.evaluate(() => window.alisay.safetyCode), codes[0], `${c.label}: same safety code`);
    await assertFramesGrowing(c);
  }
  assert.ok(proxy.sent.every((m) => m.auth === 43), `every description after the restarts carried auth: ${JSON.stringify(proxy.sent)}`);
  const offers = proxy.sent.slice(before).filter((m) => m.type === "offer").length;
  metric("auth_glare", `descriptions_after_restart=${proxy.sent.length - before} offers=${offers}`);
  assert.equal(await A.page.isVisible("#error"), false, "no warning on a genuine call");
});

/**
 * Both callers start in a room; the proxy forges what it relays. Both must refuse: the warning
 * (role=alert), no setRemoteDescription at all, no peer connection left, no media, and no
 * reconnect (one WebSocket per page, none open at the proxy).
 */
async function bothRefuse(tag, tamper, kinds = ["chromium", "chromium"]) {
  proxy.configure({ tamper, holdFirstOffer: true });
  const A = await open(`${tag}-A`, kinds[0]);
  const B = await open(`${tag}-B`, kinds[1]);
  const link = await startAsNewUser(A, proxy.origin);
  await B.page.goto(link);
  await waitState(B, "ready");
  await B.page.click("#start");
  for (const c of [A, B]) {
    await waitState(c, "error", 25_000);
    assert.equal(await c.page.getAttribute("#error", "data-code"), "unverified", `${c.label}: error code`);
    const text = (await c.page.textContent("#error")).trim();
    assert.ok(text.startsWith(WARNING), `${c.label}: the warning: ${JSON.stringify(text)}`);
    assert.equal(await c.page.isVisible("#error"), true, `${c.label}: the warning is visible`);
    assert.equal(await c.page.getAttribute("#error", "role"), "alert", `${c.label}: announced (role=alert)`);
    assert.equal(await c.page.evaluate(() => window.alisay.verification), "refused");
  }
  assert.ok(proxy.forged >= 2 && proxy.delivered.filter((d) => d.type === "offer" && d.forged).length >= 2, `both callers got a forged offer: ${JSON.stringify(proxy.delivered)}`);
  await sleep(3000); // anything that would reconnect or connect would have by now
  for (const c of [A, B]) {
    const st = await c.page.evaluate(() => ({
      srd: window.__srdCalls,
      pc: window.alisay.pc,
      width: document.querySelector("#remote-video").videoWidth,
      wsOpened: window.__sigTrace.filter((l) => / ws-open-called$/.test(l)).length,
      state: document.querySelector("#status").dataset.state,
      safetyHidden: document.querySelector("#safety").hidden,
    }));
    assert.equal(st.srd, 0, `${c.label}: setRemoteDescription was never called`);
    assert.equal(st.pc, null, `${c.label}: no peer connection is left`);
    assert.equal(await framesDecoded(c), 0, `${c.label}: no video frame decoded`);
    assert.equal(st.width, 0, `${c.label}: no remote picture`);
    assert.equal(st.wsOpened, 1, `${c.label}: no reconnect after refusing`);
    assert.equal(st.state, "error", `${c.label}: still refused`);
    assert.equal(st.safetyHidden, true, `${c.label}: no safety code`);
  }
  assert.equal(proxy.conns.size, 0, "both WebSockets are closed");
  const found = await seriousViolations(A);
  assert.deepEqual(found, [], "axe-core on the warning");
}

scenario("b. a proxy that rewrites one fingerprint line: both callers refuse, show the warning, set nothing, play nothing", () => bothRefuse("auth-b", "fingerprint"));

scenario("c. a proxy that strips auth: both callers refuse the same way", () => bothRefuse("auth-c", "strip-auth"));

scenario("d. a forged offer reaches one caller only: it refuses; the other sets nothing and hears that the other person left", async () => {
  proxy.configure({ tamper: "fingerprint" });
  const A = await open("auth-d-A");
  const B = await open("auth-d-B");
  const link = await startAsNewUser(A, proxy.origin);
  await B.page.goto(link);
  await waitState(B, "ready");
  await B.page.click("#start");
  await waitState(B, "error", 20_000);
  assert.equal(await B.page.getAttribute("#error", "data-code"), "unverified");
  await waitState(A, "peer-left", 10_000);
  for (const c of [A, B]) {
    assert.equal(await c.page.evaluate(() => window.__srdCalls), 0, `${c.label}: setRemoteDescription never called`);
    assert.equal(await framesDecoded(c), 0, `${c.label}: no video frame decoded`);
  }
  assert.deepEqual(
    proxy.delivered.map((d) => `${d.type}${d.forged ? " (forged)" : ""}`),
    ["offer (forged)"],
    "exactly one description crossed, forged",
  );
});

// Firefox (issue 14): each pair with Firefox, both as first caller, through the transparent
// proxy (verified both ways, auth on every description, equal safety codes, equal to Python's
// computation from the descriptions as sent) and through a forging proxy (both refuse).
for (const kinds of FIREFOX_PAIRS) {
  const tag = pairTag(kinds);
  scenario(`a-${tag}. ${kinds[0]} calls ${kinds[1]} through a transparent proxy: verified both ways, equal safety codes (Python agrees)`, async () => {
    proxy.configure({});
    const A = await open(`auth-a-${tag}-A`, kinds[0]);
    const B = await open(`auth-a-${tag}-B`, kinds[1]);
    const link = await startAsNewUser(A, proxy.origin);
    const token = link.split("#")[1];
    const startToVideoMs = await joinByInvite(B, A, link);
    await assertRelayed(A, B);
    await assertRelayed(B, A);
    await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
    const shown = await assertEqualSafetyCodes([A, B]);
    for (const c of [A, B]) assert.equal(await c.page.evaluate(() => window.alisay.verification), "verified", `${c.label}: verified`);
    const a = await descriptions(A);
    const b = await descriptions(B);
    assert.notDeepEqual(fingerprintSet(a.local), fingerprintSet(b.local), "two different certificates");
    assert.equal(pythonSafetyCode(token, a.local, b.local), shown.replace(" ", ""), "the safety code matches Python's derivation from both descriptions as sent");
    assert.ok(proxy.sent.some((m) => m.type === "offer") && proxy.sent.some((m) => m.type === "answer"), `an offer and an answer were sent: ${JSON.stringify(proxy.sent)}`);
    assert.ok(proxy.sent.every((m) => m.auth === 43), `every description carried auth: ${JSON.stringify(proxy.sent)}`);
    metric(`auth_${tag}_call_ms`, `start_to_video=${startToVideoMs}`);
  });
  const tamper = { cf: "strip-auth", fc: "fingerprint", ff: "fingerprint" }[tag];
  scenario(`b-${tag}. ${kinds[0]} calls ${kinds[1]} through a proxy that forges (${tamper}): both refuse, set nothing, play nothing`, () => bothRefuse(`auth-b-${tag}`, tamper, kinds));
}
