// Browser end-to-end tests: two (or three) real Chromium callers, the real `alisay serve` and a
// real coturn, in a loopback-only network namespace. Run with `bash tests/e2e/run.sh`.
//
// Each scenario opens its own browser contexts (separate "people") and asserts on the client's
// DOM contract (#status[data-state], #error[data-code], buttons) and on WebRTC's own statistics
// (selected candidate pair, video frames decoded), never on the client's say-so alone.

import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, test } from "node:test";

import { seriousViolations } from "./lib/a11y.js";
import { Caller, launchBrowser } from "./lib/browser.js";
import {
  assertFramesGrowing,
  assertNoTokenOnTheWire,
  assertEqualSafetyCodes,
  assertRelayed,
  callStats,
  copyInviteDisabled,
  describePages,
  FIREFOX_PAIRS,
  framesDecoded,
  inviteLink,
  joinByInvite,
  pairTag,
  parseInvite,
  snapshot,
  startAsNewUser,
  stateOf,
  waitRemoteVideo,
  waitState,
} from "./lib/call.js";
import { Deployment, knownSecrets, newToken, OUT_DIR, pollUntil, redact, redactError, sleep } from "./lib/harness.js";

/** Prints a measured number in one greppable line (no secrets). */
function metric(name, text) {
  const line = `METRIC ${name} ${text}`;
  console.log(line);
  fs.appendFileSync(path.join(OUT_DIR, "metrics.txt"), `${line}\n`);
}

const dep = new Deployment({ port: 8787, credentialTtl: "30s" });
let browser;
/** Callers opened by the running scenario (closed at its end, diagnosed on failure). */
let callers = [];

/** A caller in the suite's Chromium, or (`kind` "firefox") in a Firefox process of its own. */
async function open(label, kind = "chromium") {
  const c = kind === "firefox" ? await Caller.openFirefox(label) : await Caller.open(browser, label);
  callers.push(c);
  return c;
}

function logMark(text, d = dep) {
  fs.appendFileSync(d.alisayLog, `===== e2e ${new Date().toISOString()} ${text}\n`);
}

function tail(file, lines = 25) {
  try {
    return redact(fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n"));
  } catch {
    return `(no ${path.basename(file)})`;
  }
}

/** Per scenario: join frames the wire check inspected, and what it found. */
let wire = { framesWithRoomId: 0, errors: [] };

/** Ends a caller: its trace goes to its console log, its traffic through the wire check. */
async function retire(c) {
  const i = callers.indexOf(c);
  if (i >= 0) callers.splice(i, 1);
  await c.dumpDiagnostics("end");
  try {
    wire.framesWithRoomId += assertNoTokenOnTheWire(c);
  } catch (e) {
    wire.errors.push(e);
  }
  await c.close().catch(() => {});
}

/**
 * One scenario: a test whose callers are closed at the end and whose failure message carries
 * the state of every page and the end of the server's log (the rest is in tests/e2e/out/).
 * Every scenario also checks that no page ever sent a room token (SPEC §2).
 */
function scenario(name, fn, { timeout = 90_000, server = () => dep } = {}) {
  test(name, { timeout }, async () => {
    logMark(`scenario begins: ${name}`, server());
    wire = { framesWithRoomId: 0, errors: [] };
    try {
      await fn();
      for (const c of [...callers]) await retire(c);
      if (wire.errors.length) throw wire.errors[0];
      assert.ok(wire.framesWithRoomId > 0, "the wire check saw the join frames");
    } catch (e) {
      const pages = await describePages(callers);
      const log = server().alisayLog;
      e.message = `${e.message}\n-- pages:\n${pages}\n-- end of out/${path.basename(log)}:\n${tail(log)}\n-- logs: tests/e2e/out/`;
      redactError(e);
      throw e;
    } finally {
      logMark(`scenario ends: ${name}`, server());
      for (const c of [...callers]) await retire(c);
    }
  });
}

/**
 * A relay-only (or auto) call set up through the UI: A generates a room, B joins by link;
 * `kinds` are the browsers of A (the first caller) and B.
 */
async function establish(tag, { mode = "relay", kinds = ["chromium", "chromium"] } = {}) {
  const A = await open(`${tag}-A`, kinds[0]);
  const B = await open(`${tag}-B`, kinds[1]);
  const link = await startAsNewUser(A, dep.origin, { mode });
  const startToVideoMs = await joinByInvite(B, A, link, { mode });
  return { A, B, link, startToVideoMs };
}

before(async () => {
  fs.writeFileSync(path.join(OUT_DIR, "metrics.txt"), "");
  await dep.start();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of callers.splice(0)) await c.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  await dep.stop();
});

test("the suite runs in a loopback-only network namespace", () => {
  assert.equal(process.env.ALISAY_E2E_IN_NETNS, "1", "run the suite with `bash tests/e2e/run.sh`, which creates the namespace");
  assert.deepEqual(Object.keys(os.networkInterfaces()), ["lo"], "only the loopback interface is up");
  metric("coturn_config_source", JSON.stringify(dep.coturnConfigSource));
});

test("coturn runs the production render plus exactly the two loopback test lines", () => {
  // Never hand the config text to an assertion: it holds the TURN secret.
  const conf = fs.readFileSync(dep.coturnConfPath, "utf8");
  const marker = "# ---- tests/e2e overrides";
  assert.ok(conf.includes(marker), "test overrides are appended after the rendered config");
  const settings = (text) => text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const production = settings(conf.slice(0, conf.indexOf(marker)));
  const overrides = settings(conf.slice(conf.indexOf(marker)));
  const loopbackAllows = production.filter((l) => /^allow-loopback-peers|^allowed-peer-ip/.test(l));
  assert.deepEqual(loopbackAllows, [], "the production render allows no loopback or other peers");
  assert.ok(production.includes("use-auth-secret"), "production render uses TURN REST credentials");
  assert.ok(production.includes("no-cli"), "production render has no-cli");
  assert.ok(production.includes("denied-peer-ip=127.0.0.0-127.255.255.255"), "production render denies loopback in a-b form");
  assert.ok(production.some((l) => l.startsWith("static-auth-secret=")), "coturn-config injected the secret");
  const peerLines = overrides.filter((l) => /loopback|peer-ip/.test(l));
  assert.deepEqual(peerLines, ["allow-loopback-peers", "allowed-peer-ip=127.0.0.1"]);
});

scenario("a. relay-only call via the UI as a new user (relay candidates on both sides, video decoded)", async () => {
  const { A, B, startToVideoMs } = await establish("a-relay");
  for (const c of [A, B]) {
    await waitRemoteVideo(c);
    const s = await assertRelayed(c);
    metric(`a_selected_pair_${c.label.slice(-1)}`, `local=${s.localType}/${s.relayProtocol ?? s.localProtocol} remote=${s.remoteType}`);
  }
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  assert.equal(await copyInviteDisabled(A), false);
  metric("a_start_to_video_ms", String(startToVideoMs));
});

scenario("b. auto mode connects", async () => {
  const { A, B } = await establish("b-auto", { mode: "auto" });
  for (const c of [A, B]) {
    const s = await callStats(c);
    assert.equal(s.connectionState, "connected", `${c.label}: peer connection state`);
    assert.ok(s.pairState, `${c.label}: a selected candidate pair`);
    metric(`b_selected_pair_${c.label.slice(-1)}`, `local=${s.localType} remote=${s.remoteType}`);
  }
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
});

scenario("c. a third caller gets room-full with a human message; the call is unaffected", async () => {
  const { A, B, link } = await establish("c-full");
  const C = await open("c-full-C");
  await C.page.goto(link);
  await waitState(C, "ready");
  await C.page.click("#start");
  await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible", timeout: 10_000 });
  const s = await snapshot(C);
  assert.equal(s.errorVisible, true, "the room-full message is visible");
  assert.ok(s.errorText && s.errorText.length >= 10 && !/^room-full$/.test(s.errorText), `a human message, not just the code: ${JSON.stringify(s.errorText)}`);
  assert.equal(await C.page.evaluate(() => window.__gumCalls), 0, "the refused caller was never asked for camera/microphone");
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  assert.equal(await stateOf(A), "connected");
  assert.equal(await stateOf(B), "connected");
});

scenario("d. hang up: the peer sees peer-left; Start again reconnects", async () => {
  const { A, B } = await establish("d-hangup");
  await A.page.click("#hangup");
  await waitState(B, "peer-left");
  await waitState(A, ["ended", "ready", "idle"]);
  const pcA = await A.page.evaluate(() => (window.alisay.pc ? window.alisay.pc.connectionState : null));
  assert.ok(pcA === null || pcA === "closed", `A's peer connection is gone after hang up (got ${pcA})`);
  await A.page.click("#start");
  await waitState(A, "connected", 20_000);
  await waitState(B, "connected", 20_000);
  await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  await assertRelayed(A);
  await assertRelayed(B);
});

scenario("e. same-tab hash change switches rooms: old call stopped, Copy invite disabled until admitted", async () => {
  const { A, B } = await establish("e-hash");
  const fresh = newToken();
  // Watch #copy-invite from now on: record whether it is ever enabled before the new room's
  // `joined` arrives (the trace records signaling message types as they come).
  await A.page.evaluate(() => {
    const mark = window.__sigTrace.length;
    window.__copyEnabledEarly = false;
    window.__copyEnabledSeen = false;
    const check = () => {
      const b = document.querySelector("#copy-invite");
      if (b && !b.disabled) {
        window.__copyEnabledSeen = true;
        if (!window.__sigTrace.slice(mark).some((l) => / in joined$/.test(l))) window.__copyEnabledEarly = true;
      }
    };
    new MutationObserver(check).observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ["disabled", "aria-disabled"] });
    window.__copyEnabledEarly = false;
  });
  await A.page.evaluate((t) => {
    location.hash = t;
  }, fresh);
  await waitState(B, "peer-left");
  await pollUntil("A's old peer connection to be closed", () => A.page.evaluate(() => !window.alisay.pc || window.alisay.pc.connectionState === "closed"), { timeoutMs: 10_000 });
  await waitState(A, ["ready", "idle"]);
  assert.equal(await copyInviteDisabled(A), true, "Copy invite is disabled after switching rooms, before admission");
  const linkNow = await inviteLink(A);
  assert.ok(!linkNow || linkNow.endsWith(`#${fresh}`), "the invite field shows no link of the old room");
  await A.page.click("#start");
  await waitState(A, "waiting");
  await pollUntil("Copy invite to be enabled after admission", async () => !(await copyInviteDisabled(A)), { timeoutMs: 5_000 });
  assert.equal(await A.page.evaluate(() => window.__copyEnabledSeen), true, "the observer saw Copy invite become enabled");
  assert.equal(await A.page.evaluate(() => window.__copyEnabledEarly), false, "Copy invite was enabled before the new room was admitted");
  assert.equal(parseInvite(await inviteLink(A), dep.origin), fresh, "the invite link is the new room's");
  assert.equal(await stateOf(B), "peer-left", "B stays in the old room, alone");
});

scenario("f. reloading B mid-call: B rejoins the same room and the call recovers", async () => {
  const { A, B } = await establish("f-reload");
  await B.page.reload();
  const stateAfterReload = await waitState(B, ["ready", "joining", "preflight", "media", "waiting", "connecting", "connected"]);
  let pressedStart = false;
  if (stateAfterReload === "ready") {
    pressedStart = true;
    await B.page.click("#start");
  }
  metric("f_reload_needs_start", String(pressedStart));
  await waitState(B, "connected", 20_000);
  await waitState(A, "connected", 20_000);
  await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  await assertRelayed(A);
  await assertRelayed(B);
});

scenario(
  "g. restarting alisay serve mid-call: media never stops, signaling reconnects",
  async () => {
    const { A, B } = await establish("g-restart");
    for (const c of [A, B]) await c.page.evaluate(() => Object.defineProperty(window, "__pcMark", { value: window.alisay.pc, configurable: true }));
    const samples = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const t = Date.now();
        const [a, b] = await Promise.all([framesDecoded(A), framesDecoded(B)]);
        samples.push({ t, a, b });
        await sleep(Math.max(0, 250 - (Date.now() - t)));
      }
    })();
    try {
      await sleep(1500);
      const marks = await Promise.all([A, B].map((c) => c.page.evaluate(() => window.__sigTrace.length)));
      const exit = await dep.stopServer();
      await sleep(1000); // the server is down for a while; media must not care
      const tUp0 = Date.now();
      await dep.startServer();
      // Signaling reconnects: a fresh `joined` on both pages after the restart, then connected.
      await pollUntil(
        "both pages to rejoin after the restart",
        async () => {
          const ok = await Promise.all([A, B].map((c, i) => c.page.evaluate((m) => window.__sigTrace.slice(m).some((l) => / in joined$/.test(l)), marks[i])));
          return ok.every(Boolean);
        },
        { timeoutMs: 20_000, everyMs: 100 },
      );
      metric("g_rejoin_after_restart_ms", String(Date.now() - tUp0));
      await waitState(A, "connected", 10_000);
      await waitState(B, "connected", 10_000);
      await sleep(2500);
      sampling = false;
      await sampler;

      // 1. Media never stopped: frames decoded rose all along, on the same peer connection.
      // A stall is a run of samples with the same count; its length is the time from the
      // first to the last of them (a slow sample that still shows progress is no stall).
      for (const side of ["a", "b"]) {
        let runStart = samples[0];
        let maxStall = 0;
        for (const [i, s] of samples.entries()) {
          if (i === 0) continue;
          const prev = samples[i - 1];
          assert.ok(s[side] >= prev[side], `${side.toUpperCase()}: framesDecoded went down (${prev[side]} -> ${s[side]}): the peer connection was replaced`);
          if (s[side] > prev[side]) runStart = s;
          else maxStall = Math.max(maxStall, s.t - runStart.t);
        }
        const rise = samples.at(-1)[side] - samples[0][side];
        const spanMs = samples.at(-1).t - samples[0].t;
        metric(`g_max_frame_stall_ms_${side.toUpperCase()}`, `${maxStall} samples=${samples.length} span_ms=${spanMs} frames=${rise}`);
        assert.ok(samples.length >= 16, `enough samples across the restart (${samples.length})`);
        assert.ok(maxStall <= 1000, `${side.toUpperCase()}: no new video frame for ${maxStall} ms across the server restart`);
      }
      for (const c of [A, B]) {
        assert.equal(await c.page.evaluate(() => window.alisay.pc === window.__pcMark), true, `${c.label}: the RTCPeerConnection was torn down by the restart`);
      }
      // 2. The restarted server holds both callers: a third one is refused as room-full.
      const C = await open("g-restart-C");
      await C.page.goto(await inviteLink(A));
      await waitState(C, "ready");
      await C.page.click("#start");
      await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible", timeout: 10_000 });
      // 3. The shutdown was graceful: `bye {reason: restart}` to both, exit status 0.
      for (const [i, c] of [A, B].entries()) {
        const sawBye = await c.page.evaluate((m) => window.__sigTrace.slice(m).some((l) => / in bye restart$/.test(l)), marks[i]);
        assert.ok(sawBye, `${c.label}: no bye {reason: restart} before the shutdown`);
      }
      assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, "alisay serve exits 0 on SIGTERM");
    } finally {
      sampling = false;
      await sampler;
    }
  },
  { timeout: 120_000 },
);

scenario(
  "h. TURN credentials are refreshed before they expire and the call outlives the first expiry",
  async () => {
    const { A, B } = await establish("h-refresh");
    const user = (c) => c.page.evaluate(() => window.alisay.pc.getConfiguration().iceServers?.[0]?.username ?? null);
    const u0 = { A: await user(A), B: await user(B) };
    for (const k of ["A", "B"]) assert.match(String(u0[k]), /^\d+:/, `${k}: TURN REST username is <unix expiry>:<label>`);
    const expiry = Math.max(...Object.values(u0).map((u) => Number(u.split(":")[0])));
    assert.ok(expiry - Date.now() / 1000 <= 31, "credential_ttl is 30 s");
    const deadline = expiry * 1000 + 6_000;
    assert.ok(deadline - Date.now() < 45_000, "bounded wait");
    while (Date.now() < deadline) {
      await sleep(Math.min(3000, Math.max(0, deadline - Date.now())));
      for (const c of [A, B]) assert.equal(await stateOf(c), "connected", `${c.label} stays connected`);
    }
    for (const c of [A, B]) {
      const k = c.label.slice(-1);
      const u1 = await user(c);
      assert.notEqual(u1, u0[k], `${c.label}: the peer connection still uses the first (now expired) TURN username`);
      assert.ok(Number(u1.split(":")[0]) > Number(u0[k].split(":")[0]), `${c.label}: the new username expires later`);
      const trace = await c.page.evaluate(() => window.__sigTrace);
      assert.ok(trace.some((l) => / out refresh-ice$/.test(l)), `${c.label}: sent refresh-ice`);
      assert.ok(trace.some((l) => / in ice-servers$/.test(l)), `${c.label}: received ice-servers`);
      // Refreshed BEFORE the first credentials expired (trace times are performance.now()).
      const firstFresh = await c.page.evaluate(() => {
        const l = window.__sigTrace.find((x) => / in ice-servers$/.test(x));
        return l ? performance.timeOrigin + Number(l.split(" ")[0]) : null;
      });
      const firstExpiry = Number(u0[k].split(":")[0]) * 1000;
      metric(`h_refresh_before_expiry_s_${k}`, ((firstExpiry - firstFresh) / 1000).toFixed(1));
      assert.ok(firstFresh < firstExpiry, `${c.label}: fresh credentials arrived ${((firstFresh - firstExpiry) / 1000).toFixed(1)} s after the first ones expired`);
    }
    await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
    await assertRelayed(A);
    await assertRelayed(B);
  },
  { timeout: 90_000 },
);

scenario("i. glare: both callers restart ICE at the same moment; perfect negotiation settles it", async () => {
  const { A, B } = await establish("i-glare");
  const ufrag = (c) => c.page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.alisay.pc.localDescription?.sdp ?? "")?.[1] ?? null);
  let glareRounds = 0;
  let round = 0;
  // Offers cross on the wire only if both leave within a few milliseconds; repeat until a
  // round where both callers sent an offer (a real collision) has been seen and settled.
  while (glareRounds === 0 && round < 5) {
    round += 1;
    const before = [await ufrag(A), await ufrag(B)];
    const marks = await Promise.all([A, B].map((c) => c.page.evaluate(() => window.__sigTrace.length)));
    await Promise.all([A, B].map((c) => c.page.evaluate(() => window.alisay.pc.restartIce())));
    await pollUntil(
      `round ${round}: both sides stable and connected with new ICE credentials`,
      async () => {
        for (const [i, c] of [A, B].entries()) {
          const ok = await c.page.evaluate(() => window.alisay.pc.signalingState === "stable" && window.alisay.pc.connectionState === "connected");
          if (!ok || (await ufrag(c)) === before[i]) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, everyMs: 100 },
    );
    const offered = await Promise.all([A, B].map((c, i) => c.page.evaluate((m) => window.__sigTrace.slice(m).some((l) => / out offer$/.test(l)), marks[i])));
    if (offered.every(Boolean)) glareRounds += 1;
  }
  metric("i_glare", `rounds=${round} collisions=${glareRounds}`);
  assert.ok(glareRounds > 0, `no offer collision happened in ${round} rounds of simultaneous ICE restarts`);
  for (const c of [A, B]) assert.equal(await stateOf(c), "connected");
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  await assertRelayed(A);
  await assertRelayed(B);
});

test("the page's headers make Chromium log no error (Permissions-Policy features it knows)", async () => {
  // Header errors ("Error with Permissions-Policy header: Unrecognized feature: ...") come
  // through the DevTools Log domain. The control: a page whose header names an unknown feature
  // must be caught by the same check.
  const headerErrors = async (url) => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const cdp = await context.newCDPSession(page);
      const entries = [];
      cdp.on("Log.entryAdded", ({ entry }) => entries.push(`${entry.level} ${entry.source}: ${entry.text}`));
      await cdp.send("Log.enable");
      await page.goto(url);
      await sleep(500);
      return entries.filter((e) => /policy|header|feature/i.test(e));
    } finally {
      await context.close();
    }
  };
  const control = http.createServer((req, res) => {
    res.setHeader("permissions-policy", "camera=(self), no-such-feature=()");
    res.setHeader("content-type", "text/html");
    res.end("<!doctype html><title>control</title>");
  });
  await new Promise((r) => control.listen(0, "127.0.0.1", r));
  try {
    const caught = await headerErrors(`http://127.0.0.1:${control.address().port}/`);
    assert.equal(caught.length, 1, `the check catches an unknown feature: ${JSON.stringify(caught)}`);
  } finally {
    control.close();
  }
  const ours = await headerErrors(`${dep.origin}/`);
  assert.deepEqual(ours, [], "Chromium logged an error about the page's headers");
  const pp = (await fetch(`${dep.origin}/`)).headers.get("permissions-policy") ?? "";
  assert.match(pp, /camera=\(self\)/, "the page sends the header the check read");
});

scenario("l. autoplay refused and back from the background (what Safari and iOS do): tap to play; paused videos resume; an ended camera is reopened in the same call", async () => {
  const A = await open("l-play-A");
  const B = await open("l-play-B");
  // Safari refuses play() with sound when the user gesture is too old: make B's first play()
  // of the remote video fail that way (Chromium's own policy allows it after the Start click).
  await B.page.addInitScript(() => {
    const orig = HTMLMediaElement.prototype.play;
    let refused = 0;
    Object.defineProperty(window, "__playRefused", { get: () => refused });
    HTMLMediaElement.prototype.play = function play() {
      if (this.id === "remote-video" && refused === 0) {
        refused += 1;
        this.pause(); // as a refusing browser: no autoplay either
        return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
      }
      return orig.call(this);
    };
  });
  const link = await startAsNewUser(A, dep.origin);
  await B.page.goto(link);
  await waitState(B, "ready");
  await B.page.click("#start");
  await waitState(B, "connected", 20_000);
  await B.page.waitForSelector("#remote-video-tap", { state: "visible", timeout: 10_000 });
  assert.equal(await B.page.evaluate(() => window.__playRefused), 1, "the refusal happened");
  assert.equal(await B.page.evaluate(() => document.querySelector("#remote-video").paused), true, "refused: the video is paused");
  await B.page.click("#remote-video-tap");
  await B.page.waitForSelector("#remote-video-tap", { state: "hidden", timeout: 5_000 });
  assert.equal(await B.page.evaluate(() => document.querySelector("#remote-video").paused), false, "a tap plays it");
  await assertFramesGrowing(B);
  // Back from the background: the videos were paused and the camera ended meanwhile.
  await B.page.evaluate(() => Object.defineProperty(window, "__pcMark", { value: window.alisay.pc, configurable: true }));
  const before = await B.page.evaluate(() => {
    for (const v of document.querySelectorAll("video")) v.pause();
    const track = document.querySelector("#local-video").srcObject.getVideoTracks()[0];
    track.stop();
    document.dispatchEvent(new Event("visibilitychange"));
    return track.id;
  });
  await pollUntil(
    "the videos to play again and the camera to be reopened",
    () =>
      B.page.evaluate((old) => {
        const local = document.querySelector("#local-video");
        const track = local.srcObject?.getVideoTracks()[0];
        return !document.querySelector("#remote-video").paused && !local.paused && track && track.id !== old && track.readyState === "live";
      }, before),
    { timeoutMs: 10_000 },
  );
  assert.equal(await B.page.evaluate(() => window.alisay.pc === window.__pcMark), true, "the same connection (replaceTrack, no renegotiation)");
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
});

// Firefox (issue 14): every pair with Firefox, both as first caller, through the same server
// and coturn. Each pair makes a Relay-only call (relay candidates only, a peer-reflexive one
// accepted only at the peer's relay address; video both ways; equal safety codes) and one more
// scenario, spread over the pairs so that the suite stays short: Auto mode (cf), hang up and
// Start again (fc), reload mid-call (ff).
for (const kinds of FIREFOX_PAIRS) {
  const tag = pairTag(kinds);
  const extra = { cf: "then Auto mode in a new room", fc: "then hang up and Start again", ff: "then B reloads mid-call" }[tag];
  scenario(`x-${tag}. ${kinds[0]} calls ${kinds[1]}: relay-only call, video both ways, equal safety codes; ${extra}`, async () => {
    const t0 = Date.now();
    const { A, B, startToVideoMs } = await establish(`x-${tag}`, { kinds });
    metric(`x_${tag}_setup_ms`, `start_to_video=${startToVideoMs} with_browser_launch=${Date.now() - t0}`);
    await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
    for (const [c, peer] of [[A, B], [B, A]]) {
      const st = await assertRelayed(c, peer);
      metric(`x_${tag}_selected_pair_${c.label.slice(-1)}`, `local=${st.localType}/${st.relayProtocol ?? st.localProtocol} remote=${st.remoteType} remote_prflx=${st.remotePrflx.length}`);
    }
    await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
    await assertEqualSafetyCodes([A, B]);
    if (tag === "cf") {
      for (const c of [A, B]) await retire(c);
      const t1 = Date.now();
      const auto = await establish(`x-${tag}-auto`, { kinds, mode: "auto" });
      metric(`x_${tag}_auto_setup_ms`, `start_to_video=${auto.startToVideoMs} with_browser_launch=${Date.now() - t1}`);
      for (const c of [auto.A, auto.B]) assert.equal((await callStats(c)).connectionState, "connected", `${c.label}: connected in Auto mode`);
      await Promise.all([assertFramesGrowing(auto.A), assertFramesGrowing(auto.B)]);
      await assertEqualSafetyCodes([auto.A, auto.B]);
    } else if (tag === "fc") {
      await A.page.click("#hangup");
      await waitState(B, "peer-left");
      await waitState(A, ["ended", "ready", "idle"]);
      await A.page.click("#start");
      await waitState(A, "connected", 20_000);
      await waitState(B, "connected", 20_000);
      await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
      await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
      await assertRelayed(A, B);
      await assertRelayed(B, A);
      await assertEqualSafetyCodes([A, B]);
    } else {
      await B.page.reload();
      if ((await waitState(B, ["ready", "joining", "preflight", "media", "waiting", "connecting", "connected"])) === "ready") await B.page.click("#start");
      await waitState(B, "connected", 20_000);
      await waitState(A, "connected", 20_000);
      await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
      await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
      await assertRelayed(A, B);
      await assertRelayed(B, A);
      await assertEqualSafetyCodes([A, B]);
    }
  }, { timeout: 120_000 });
}

const noTurn = new Deployment({ name: "noturn", port: 8788, turn: false });

scenario(
  "j. without TURN, Relay-only does not start and offers Auto; Auto connects",
  async () => {
    await noTurn.start();
    try {
      const A = await open("j-noturn-A");
      const B = await open("j-noturn-B");
      await A.page.goto(`${noTurn.origin}/`);
      await waitState(A, "idle");
      await A.page.click("#generate");
      await A.page.waitForFunction(() => /#[A-Za-z0-9_-]{43}$/.test(document.querySelector("#invite-link")?.value || ""), null, { timeout: 10_000 });
      const link = await inviteLink(A);
      parseInvite(link, noTurn.origin);
      for (const c of [A, B]) {
        if (c === B) {
          await B.page.goto(link);
          await waitState(B, "ready");
        }
        assert.equal(await c.page.isChecked('input[name="mode"][value="relay"]'), true, "Relay-only is the default");
        assert.equal(await c.page.isVisible("#use-auto"), false, "Use Auto is hidden before the server said there is no TURN");
        await c.page.click("#start");
        await c.page.waitForSelector("#use-auto", { state: "visible", timeout: 10_000 });
        const s = await snapshot(c);
        assert.ok(s.errorVisible && s.errorText, `${c.label}: a visible explanation next to Use Auto (${s.errorCode})`);
        assert.equal(await c.page.evaluate(() => window.__gumCalls), 0, `${c.label}: no camera/microphone request while Relay-only cannot work`);
        await c.page.click("#use-auto");
        await waitState(c, c === A ? "waiting" : "connected", 15_000);
      }
      await waitState(A, "connected", 15_000);
      await Promise.all([waitRemoteVideo(A), waitRemoteVideo(B)]);
      await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
      for (const c of [A, B]) {
        const st = await callStats(c);
        assert.notEqual(st.localType, "relay", "no TURN server, so no relay candidate");
        assert.equal(await c.page.isChecked('input[name="mode"][value="auto"]'), true, `${c.label}: the mode shows Auto`);
      }
    } finally {
      for (const c of [...callers]) await retire(c);
      await noTurn.stop();
    }
  },
  { server: () => noTurn },
);

scenario("k. accessibility: no serious or critical axe-core violations on each screen; keyboard reaches Start", async () => {
  const found = [];
  const check = async (c, screen) => {
    for (const v of await seriousViolations(c)) found.push(`${screen}: ${v}`);
  };
  const A = await open("k-a11y-A");
  await A.page.goto(`${dep.origin}/`);
  await waitState(A, "idle");
  await check(A, "start page");
  // Keyboard only: Tab reaches Generate room, Enter presses it, Tab reaches Start.
  const focusable = async (id) => {
    for (let i = 0; i < 25; i++) {
      await A.page.keyboard.press("Tab");
      if (await A.page.evaluate((x) => document.activeElement?.id === x, id)) return true;
    }
    return false;
  };
  assert.ok(await focusable("generate"), "Tab reaches Generate room");
  await A.page.keyboard.press("Enter");
  await waitState(A, "ready");
  await check(A, "room generated");
  assert.ok(await focusable("start"), "Tab reaches Start");
  await A.page.keyboard.press("Enter");
  await waitState(A, "waiting");
  await check(A, "waiting for the other person");
  const link = await inviteLink(A);
  parseInvite(link, dep.origin);
  const B = await open("k-a11y-B");
  await joinByInvite(B, A, link);
  await check(B, "in a call");
  const C = await open("k-a11y-C");
  await C.page.goto(link);
  await waitState(C, "ready");
  await C.page.click("#start");
  await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible", timeout: 10_000 });
  await check(C, "room full");
  assert.deepEqual(found, [], `axe-core violations (details in out/k-a11y-*.console.log):\n  ${found.join("\n  ")}`);
});

scenario(
  "start-to-video time in relay-only mode (5 fresh rooms)",
  async () => {
    const runs = [];
    for (let i = 0; i < 5; i++) {
      const { A, B, startToVideoMs } = await establish(`m-run${i}`);
      runs.push(startToVideoMs);
      await assertRelayed(B);
      for (const c of [A, B]) await retire(c);
    }
    const sorted = [...runs].sort((x, y) => x - y);
    metric("start_to_video_ms", `median=${sorted[2]} runs=[${runs.join(",")}]`);
    assert.ok(sorted[2] < 10_000, "median start-to-video under 10 s");
  },
  { timeout: 150_000 },
);

test("server and coturn logs never contain room tokens, room ids or the TURN secret", async () => {
  await dep.stopServer();
  const secrets = knownSecrets();
  assert.ok(secrets.length >= 10, `the suite saw tokens and room ids to look for (${secrets.length})`);
  for (const f of ["alisay.log", "alisay-noturn.log", "coturn.log", "coturn.stdout.log"]) {
    const text = fs.readFileSync(path.join(OUT_DIR, f), "utf8");
    assert.ok(text.length > 0, `${f} is not empty`);
    const leaked = secrets.filter((s) => text.includes(s)).length;
    assert.equal(leaked, 0, `${f} contains ${leaked} secret value(s)`);
  }
});
