// The caller's experience, end to end: what a person SEES at every step (pre-call check, device
// pickers, level meter, every failure sentence, the quality badge and its warning, reconnect
// countdown, phone layout, keyboard and screen reader), with the real `alisay serve`, a real
// coturn (behind a lossy UDP relay the tests control) and Debian's Chromium, in the
// loopback-only namespace of run.sh. Also writes the screenshots of docs/screenshots/ into
// out/screenshots/ and the axe-core results per state into out/ux-axe.json.
//
// Run: bash tests/e2e/run.sh ux.test.js

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { Caller } from "./lib/browser.js";
import {
  assertFramesGrowing,
  assertNoTokenOnTheWire,
  assertRelayed,
  callStats,
  copyInviteDisabled,
  describePages,
  inviteLink,
  joinByInvite,
  parseInvite,
  startAsNewUser,
  stateOf,
  waitRemoteVideo,
  waitState,
} from "./lib/call.js";
import { Deployment, OUT_DIR, ROOT, newToken, pollUntil, redact, sleep } from "./lib/harness.js";
import { INSECURE_HOST, launchUxBrowser } from "./ux/browser.js";
import { ProxiedDeployment } from "./ux/deployment.js";
import { axeCheck, screenshots } from "./ux/report.js";

const dep = new ProxiedDeployment({ name: "ux", port: 8797, credentialTtl: "10m" });
/**
 * Three fake cameras, camera/microphone allowed. Chromium's fake_device_1 is a depth camera
 * (Y16) whose frames WebRTC does not encode, so switching tests use fake_device_0 and _2.
 */
let browser;
/** Camera/microphone requests refused, as when a person presses "Block". */
let denyingBrowser;
/** Callers of the running test, closed at its end. */
let callers = [];
/** Serious or critical axe-core violations found anywhere (asserted per test and at the end). */
const axeFound = [];

async function open(label, b = browser) {
  const c = await Caller.open(b, label);
  callers.push(c);
  return c;
}

function logMark(text, d = dep) {
  fs.appendFileSync(d.alisayLog, `===== e2e ${new Date().toISOString()} ${text}\n`);
}

/** Runs axe on the page in `state` and asserts it found nothing serious or critical. */
async function axe(c, state) {
  const found = await axeCheck(c, state);
  axeFound.push(...found);
  assert.deepEqual(found, [], `axe-core: serious/critical violations (details in out/${c.label}.console.log)`);
}

/** The visible text of an element ('' if hidden or missing). */
async function visibleText(c, selector) {
  return c.page.evaluate((sel) => {
    const el = document.querySelector(sel);
    return el && el.checkVisibility() ? el.textContent.trim().replace(/\s+/g, " ") : "";
  }, selector);
}

/** Waits until `selector` is visible and its text matches `re`; returns the text. */
async function waitText(c, selector, re, timeoutMs = 10_000) {
  let last = "";
  await pollUntil(
    `${c.label}: ${selector} to show text matching ${re}`,
    async () => {
      last = await visibleText(c, selector);
      return re.test(last);
    },
    { timeoutMs, everyMs: 100 },
  ).catch((e) => {
    throw new Error(`${e.message}; it shows ${JSON.stringify(last)}`);
  });
  return last;
}

/** Origins a page may talk to: the test's own servers, nothing else (no third-party request). */
const OWN_ORIGINS = () => [dep.origin, noTurn.origin, `http://${INSECURE_HOST}:${dep.port}`].flatMap((o) => [o, o.replace(/^http/, "ws")]);

/** Asserts that every request of this page went to one of the test's own origins. */
function assertNoThirdPartyRequest(c) {
  const own = OWN_ORIGINS();
  const foreign = c.wire.filter(([kind, url]) => kind === "url" && !/^(data|blob):/.test(url) && !own.some((o) => url === o || url.startsWith(`${o}/`)));
  assert.deepEqual(foreign.map(([, url]) => redact(url)), [], `${c.label}: requests to other origins`);
}

/** Signaling messages of one type this page sent or received so far. */
async function countSignals(c, re) {
  return c.page.evaluate((src) => window.__sigTrace.filter((l) => new RegExp(src).test(l)).length, re.source);
}

/**
 * One test whose callers are closed at its end and whose failure message shows every page's
 * state. `joins`: the callers joined a room, so the token-never-on-the-wire check must have
 * seen join frames.
 */
function scenario(name, fn, { timeout = 90_000, joins = true, server = () => dep } = {}) {
  test(name, { timeout }, async () => {
    logMark(`scenario begins: ${name}`, server());
    let frames = 0;
    try {
      await fn();
      for (const c of callers) {
        frames += assertNoTokenOnTheWire(c);
        assertNoThirdPartyRequest(c);
      }
      if (joins) assert.ok(frames > 0, "the wire check saw the join frames");
    } catch (e) {
      const pages = await describePages(callers);
      e.message = `${e.message}\n-- pages:\n${pages}\n-- logs: tests/e2e/out/`;
      throw e;
    } finally {
      logMark(`scenario ends: ${name}`, server());
      for (const c of callers.splice(0)) {
        await c.dumpDiagnostics("end");
        await c.close().catch(() => {});
      }
    }
  });
}

/** A through the UI (Generate room, Start), B by the link: both connected, video both ways. */
async function establish(tag) {
  const A = await open(`${tag}-A`);
  const B = await open(`${tag}-B`);
  const link = await startAsNewUser(A, dep.origin);
  await joinByInvite(B, A, link);
  return { A, B, link };
}

/**
 * At 360x740 (a phone held upright): how wide the page is, and the visible controls smaller
 * than 44x44 px (a radio button's target is its label). Restores the viewport.
 */
async function phoneFit(c) {
  const original = c.page.viewportSize();
  await c.page.setViewportSize({ width: 360, height: 740 });
  await sleep(300);
  try {
    return await c.page.evaluate(() => {
      const small = [];
      for (const el of document.querySelectorAll("button, select, input, a[href]")) {
        if (!el.checkVisibility() || el.classList.contains("skip")) continue;
        const target = el.type === "radio" ? el.closest("label") : el;
        const r = target.getBoundingClientRect();
        if (r.height < 44 || r.width < 44) small.push(`${el.id || el.type || el.tagName}: ${Math.round(r.width)}x${Math.round(r.height)}`);
      }
      return { scrollWidth: document.documentElement.scrollWidth, small };
    });
  } finally {
    await c.page.setViewportSize(original);
  }
}

/** Samples #mic-level for `ms`; returns the values. */
async function meterSamples(c, ms = 2500) {
  return c.page.evaluate(async (span) => {
    const out = [];
    const m = document.querySelector("#mic-level");
    for (let t = 0; t < span; t += 100) {
      out.push(m.value);
      await new Promise((r) => setTimeout(r, 100));
    }
    return out;
  }, ms);
}

before(async () => {
  await dep.start();
  browser = await launchUxBrowser({ cameras: 3, allowMedia: true });
  denyingBrowser = await launchUxBrowser({ cameras: 1, allowMedia: false });
});

after(async () => {
  for (const c of callers.splice(0)) await c.close().catch(() => {});
  for (const b of [browser, denyingBrowser]) if (b) await b.close().catch(() => {});
  await dep.stop();
  // One line a person can read in the run's output.
  console.log(`axe-core serious/critical violations over all states: ${axeFound.length}`);
});

test("the ux suite runs in the loopback-only namespace", () => {
  assert.equal(process.env.ALISAY_E2E_IN_NETNS, "1", "run with `bash tests/e2e/run.sh`, which creates the namespace");
});

scenario(
  "landing page: Generate room, nothing asked of camera or microphone, accessible",
  async () => {
    const A = await open("ux-landing");
    await A.page.goto(`${dep.origin}/`);
    await waitState(A, "idle");
    assert.match(await visibleText(A, "#status"), /Press Generate room/);
    assert.equal(await A.page.isVisible("#generate"), true, "Generate room is visible");
    assert.equal(await A.page.isVisible("#start"), false, "no Start without a room");
    assert.equal(await A.page.isVisible("#check"), false, "no device check before it is asked for");
    assert.equal(await A.page.isVisible("#remote-video"), false, "no empty video area before a call");
    await sleep(500);
    assert.equal(await A.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request on page load");
    assert.deepEqual(await phoneFit(A), { scrollWidth: 360, small: [] }, "fits a phone, 44 px targets");
    await axe(A, "landing");
    await screenshots(A, "01-landing");
  },
  { joins: false },
);

scenario(
  "an invalid link says so in words, offers a new room, and is accessible",
  async () => {
    const A = await open("ux-invalid");
    await A.page.goto(`${dep.origin}/#this-is-not-a-room-token`);
    await A.page.waitForSelector('#error[data-code="invalid-link"]', { state: "visible" });
    assert.match(await visibleText(A, "#error"), /This invite link is not valid\. Check that you copied all of it/);
    assert.equal(await A.page.isVisible("#generate"), true, "Generate room is offered instead");
    await axe(A, "error: link invalid");
    await screenshots(A, "05-error-link-invalid");
  },
  { joins: false },
);

scenario(
  "pre-call check: preview, camera/microphone/speaker lists, a moving level meter, switching the preview camera",
  async () => {
    const A = await open("ux-check");
    const token = newToken();
    await A.page.goto(`${dep.origin}/#${token}`);
    await waitState(A, "ready");
    assert.equal(await A.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request before the button");
    assert.equal(await A.page.isVisible("#test-media"), true);
    await A.page.click("#test-media");
    await A.page.waitForFunction(() => document.querySelector("#preview-video")?.videoWidth > 0, null, { timeout: 10_000 });
    assert.match(await visibleText(A, "#status"), /You should see yourself/);
    assert.equal(await A.page.isVisible("#preview-video"), true, "the preview is visible");
    assert.equal(await A.page.isVisible("#test-media"), false, "the test button is done");
    const lists = await A.page.evaluate(() => {
      const opts = (id) => [...document.querySelector(id).options].map((o) => o.textContent);
      return {
        cameras: opts("#camera-select"),
        mics: opts("#mic-select"),
        speakers: opts("#speaker-select"),
        speakerVisible: document.querySelector("#speaker-field").checkVisibility(),
        hasSetSinkId: "setSinkId" in HTMLMediaElement.prototype,
      };
    });
    assert.deepEqual(lists.cameras, ["fake_device_0", "fake_device_1", "fake_device_2"], "the fake cameras listed by name");
    assert.ok(lists.mics.length >= 2 && lists.mics.every((m) => /Fake/.test(m)), `microphones listed: ${lists.mics}`);
    assert.equal(lists.hasSetSinkId, true, "this Chromium has setSinkId");
    assert.equal(lists.speakerVisible, true, "so the speaker picker is shown");
    assert.ok(lists.speakers.length >= 2, `speakers listed: ${lists.speakers}`);
    // The fake microphone beeps: the meter must move (not stay flat, not stay full).
    const levels = await meterSamples(A);
    const max = Math.max(...levels);
    const distinct = new Set(levels.map((v) => v.toFixed(2))).size;
    assert.ok(max > 0.2, `the level meter reaches ${max.toFixed(2)}; expected > 0.2 while the fake microphone beeps`);
    assert.ok(distinct >= 4, `the level meter moves (${distinct} distinct values in 2.5 s)`);
    assert.deepEqual(await phoneFit(A), { scrollWidth: 360, small: [] }, "fits a phone, 44 px targets");
    await axe(A, "pre-call check");
    await screenshots(A, "02-pre-call-check", { scrollTo: "#check" });
    // Switch the preview to the second camera: a new track of that device, the old one stopped.
    const before = await A.page.evaluate(() => window.alisay.stream.getVideoTracks()[0].getSettings().deviceId);
    await A.page.selectOption("#camera-select", { label: "fake_device_2" });
    await waitText(A, "#device-note", /Switched to fake_device_2/);
    const after = await A.page.evaluate(() => {
      const [t] = window.alisay.stream.getVideoTracks();
      return { id: t.getSettings().deviceId, label: t.label, n: window.alisay.stream.getVideoTracks().length };
    });
    assert.notEqual(after.id, before, "the preview uses another device");
    assert.equal(after.label, "fake_device_2");
    assert.equal(after.n, 1, "one video track in the stream");
    await A.page.waitForFunction(() => document.querySelector("#preview-video")?.videoWidth > 0);
    assert.equal(await A.page.evaluate(() => window.__gumCalls), 2, "one request for Test, one for the camera switch");
    await axe(A, "pre-call check, after a camera switch");
  },
  { joins: false },
);

scenario(
  "camera and microphone denied: Test and Start both say so, and how to fix it",
  async () => {
    const A = await open("ux-denied", denyingBrowser);
    const token = newToken();
    await A.page.goto(`${dep.origin}/#${token}`);
    await waitState(A, "ready");
    await A.page.click("#test-media");
    await A.page.waitForSelector('#error[data-code="media-denied"]', { state: "visible" });
    assert.match(await visibleText(A, "#error"), /^Camera and microphone access was denied\. To allow it, tap or click the lock or camera icon next to the web address/);
    assert.equal(await A.page.isVisible("#check"), false, "no device check without devices");
    // Start: admitted, relay checked, then the request is refused: the same sentence, and the
    // room is left (a person without camera/microphone does not hold the other's call).
    await A.page.click("#start");
    await pollUntil("a second camera/microphone request (Start)", async () => (await A.page.evaluate(() => window.__gumCalls)) >= 2);
    await A.page.waitForSelector('#error[data-code="media-denied"]', { state: "visible" });
    await waitState(A, "error");
    assert.match(await visibleText(A, "#error"), /Camera and microphone access was denied/);
    assert.equal(await A.page.isEnabled("#start"), true, "Start can be pressed again once allowed");
    await axe(A, "error: media denied");
    await screenshots(A, "06-error-media-denied");
  },
);

scenario(
  "every getUserMedia failure has its own sentence: insecure page, device busy, no device",
  async () => {
    // A real insecure context: http on a host name other than localhost/127.0.0.1.
    const A = await open("ux-insecure");
    await A.page.goto(`http://${INSECURE_HOST}:${dep.port}/#${newToken()}`);
    await waitState(A, "ready");
    assert.equal(await A.page.evaluate(() => window.isSecureContext), false, "the page is not a secure context");
    await A.page.click("#test-media");
    await A.page.waitForSelector('#error[data-code="insecure"]', { state: "visible" });
    assert.match(await visibleText(A, "#error"), /Calls need a secure connection\. Open this page with an https:\/\/ address/);
    // Busy and missing devices cannot be made with Chromium's fake capture devices, so these
    // two pages get a getUserMedia that rejects exactly as Chromium does in those cases (the
    // DOMException names of the Media Capture spec); the page's handling is the real one.
    for (const [name, code, re] of [
      ["NotReadableError", "media-busy", /Your camera or microphone is in use by another program\. Close that program/],
      ["NotFoundError", "media-not-found", /No camera or microphone was found\. Connect one/],
    ]) {
      const c = await open(`ux-${code}`);
      await c.page.addInitScript((n) => {
        navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException("test", n));
      }, name);
      await c.page.goto(`${dep.origin}/#${newToken()}`);
      await waitState(c, "ready");
      await c.page.click("#test-media");
      await c.page.waitForSelector(`#error[data-code="${code}"]`, { state: "visible" });
      assert.match(await visibleText(c, "#error"), re);
    }
  },
  { joins: false },
);

scenario("waiting, then in a call: Copy invite disabled until admitted, the quality badge, accessible in light and dark", async () => {
  const A = await open("ux-call-A");
  const B = await open("ux-call-B");
  await A.page.goto(`${dep.origin}/`);
  await waitState(A, "idle");
  await A.page.click("#generate");
  await waitState(A, "ready");
  const link = await inviteLink(A);
  parseInvite(link, dep.origin);
  assert.equal(await copyInviteDisabled(A), true, "Copy invite is disabled before admission");
  assert.equal(await A.page.isVisible("#share-invite"), false, "no Share invite where navigator.share is missing (desktop Linux Chromium)");
  await axe(A, "room generated");
  await A.page.click("#start");
  await waitState(A, "waiting");
  assert.equal(await copyInviteDisabled(A), false, "Copy invite is enabled once admitted");
  assert.match(await visibleText(A, "#status"), /Waiting for the other person to join/);
  assert.match(await visibleText(A, "#status-detail"), /Send them the invite link/);
  assert.match(await visibleText(A, "#remote-placeholder"), /Waiting for the other person/);
  await axe(A, "waiting for the other person");
  await screenshots(A, "03-waiting");
  await joinByInvite(B, A, link);
  for (const c of [A, B]) {
    const text = await waitText(c, "#quality", /Good connection.*Relay \(UDP\).*round trip \d+ ms.*jitter \d+ ms.*loss \d+\.\d%.*MOS \d\.\d of 5.*in [\d.]+ (k|M)bit\/s, out [\d.]+ (k|M)bit\/s/);
    const st = await assertRelayed(c);
    assert.equal(st.relayProtocol, "udp", `${c.label}: WebRTC says the relay is reached over UDP, as the badge says`);
    const [, mos] = /MOS (\d\.\d)/.exec(text);
    assert.ok(Number(mos) >= 4.0 && Number(mos) <= 4.5, `${c.label}: MOS on loopback is good (${mos})`);
    assert.equal(await c.page.getAttribute("#quality", "data-level"), "good");
    assert.equal(await c.page.isVisible("#quality-warning"), false, "no warning on a good connection");
  }
  // The badge is refreshed every second.
  const t0 = await visibleText(B, "#quality-details");
  await pollUntil("the quality details to change within 3 s", async () => (await visibleText(B, "#quality-details")) !== t0, { timeoutMs: 3000 });
  assert.match(await visibleText(B, "#status"), /^Connected\.$/);
  assert.equal(await visibleText(B, "#remote-placeholder"), "", "no placeholder over a live picture");
  await axe(B, "in a call");
  await B.page.emulateMedia({ colorScheme: "dark" });
  await sleep(500); // buttons fade their colours (0.15 s)
  const bg = await B.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, "rgb(18, 20, 24)", "the dark theme follows prefers-color-scheme");
  await axe(B, "in a call (dark theme)");
  await B.page.emulateMedia({ colorScheme: "light" });
  await sleep(300);
  await screenshots(B, "04-in-call", { settleMs: 800 });
});

scenario("mid-call device switches use replaceTrack: same connection, no new offer or answer, video keeps flowing", async () => {
  const { A, B } = await establish("ux-switch");
  for (const c of [A, B]) await c.page.evaluate(() => Object.defineProperty(window, "__pcMark", { value: window.alisay.pc, configurable: true }));
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  const sdpBefore = await Promise.all([A, B].map((c) => countSignals(c, / (out|in) (offer|answer)$/)));
  // Camera: B switches to another fake camera.
  assert.equal(await B.page.isVisible("#camera-select"), true, "the camera picker is there during the call");
  const oldTrackId = await B.page.evaluate(() => window.alisay.pc.getSenders().find((s) => s.track?.kind === "video").track.id);
  await B.page.selectOption("#camera-select", { label: "fake_device_2" });
  await waitText(B, "#device-note", /Switched to fake_device_2/);
  const sent = await B.page.evaluate((oldId) => {
    const sender = window.alisay.pc.getSenders().find((s) => s.track?.kind === "video");
    const old = window.alisay.stream.getTracks().find((t) => t.id === oldId);
    return { label: sender.track.label, same: sender.track.id === oldId, oldInStream: Boolean(old), state: sender.track.readyState };
  }, oldTrackId);
  assert.deepEqual(sent, { label: "fake_device_2", same: false, oldInStream: false, state: "live" }, "the video sender now sends the new camera's track");
  // Microphone: A switches to another fake microphone.
  const micLabel = await A.page.evaluate(() => [...document.querySelector("#mic-select").options].find((o) => !o.selected && o.value !== "default")?.textContent);
  assert.ok(micLabel, "a second microphone to switch to");
  await A.page.selectOption("#mic-select", { label: micLabel });
  await waitText(A, "#device-note", new RegExp(`Switched to ${micLabel}`));
  assert.equal(await A.page.evaluate(() => window.alisay.pc.getSenders().find((s) => s.track?.kind === "audio").track.label), micLabel);
  // Speaker: A plays B through another output (setSinkId).
  const speaker = await A.page.evaluate(() => [...document.querySelector("#speaker-select").options].find((o) => !o.selected));
  assert.ok(speaker, "a second speaker to switch to");
  const speakerValue = await A.page.evaluate(() => [...document.querySelector("#speaker-select").options].find((o) => !o.selected).value);
  await A.page.selectOption("#speaker-select", speakerValue);
  await pollUntil("the remote video to play through the chosen speaker", () => A.page.evaluate((v) => document.querySelector("#remote-video").sinkId === v, speakerValue));
  // Nothing was renegotiated and nothing reconnected.
  await Promise.all([assertFramesGrowing(A, { ms: 1500, min: 5 }), assertFramesGrowing(B, { ms: 1500, min: 5 })]);
  const sdpAfter = await Promise.all([A, B].map((c) => countSignals(c, / (out|in) (offer|answer)$/)));
  assert.deepEqual(sdpAfter, sdpBefore, "no offer or answer was sent or received for the switches");
  for (const c of [A, B]) {
    const same = await c.page.evaluate(() => window.alisay.pc === window.__pcMark && window.alisay.pc.connectionState === "connected");
    assert.equal(same, true, `${c.label}: the same RTCPeerConnection, still connected`);
    assert.equal(await stateOf(c), "connected");
  }
  await assertRelayed(A);
  await assertRelayed(B);
});

scenario("mute, camera off, hang up: pressed buttons, silent meter, disabled tracks, 'the other person left'", async () => {
  const { A, B } = await establish("ux-mute");
  await A.page.click("#mute");
  assert.equal(await A.page.getAttribute("#mute", "aria-pressed"), "true");
  assert.equal(await visibleText(A, "#mute"), "Unmute");
  assert.equal(await A.page.evaluate(() => window.alisay.stream.getAudioTracks()[0].enabled), false);
  await sleep(2500); // the bar falls back slowly, as level meters do
  const muted = await meterSamples(A, 1500);
  assert.ok(Math.max(...muted) === 0, `the level meter is silent while muted (max ${Math.max(...muted)})`);
  await A.page.click("#mute");
  assert.equal(await visibleText(A, "#mute"), "Mute");
  const unmuted = await meterSamples(A, 2500);
  assert.ok(Math.max(...unmuted) > 0.2, "the meter moves again after unmute");
  await A.page.click("#camera");
  assert.equal(await A.page.getAttribute("#camera", "aria-pressed"), "true");
  assert.equal(await visibleText(A, "#camera"), "Camera on");
  assert.equal(await A.page.evaluate(() => window.alisay.stream.getVideoTracks()[0].enabled), false);
  await A.page.click("#camera");
  assert.equal(await visibleText(A, "#camera"), "Camera off");
  await A.page.click("#hangup");
  await waitState(A, "ended");
  assert.equal(await visibleText(A, "#status"), "Call ended. Press Start to join again.");
  assert.equal(await A.page.isVisible("#start"), true, "Start is offered again");
  await waitState(B, "peer-left");
  assert.equal(await visibleText(B, "#status"), "The other person left. Waiting for them to come back…");
  assert.equal(await visibleText(B, "#remote-placeholder"), "The other person left.");
  await axe(B, "the other person left");
});

scenario("a third person gets 'this call is busy' in words; the call goes on", async () => {
  const { A, B, link } = await establish("ux-busy");
  const C = await open("ux-busy-C");
  await C.page.goto(link);
  await waitState(C, "ready");
  await C.page.click("#start");
  await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible" });
  assert.match(await visibleText(C, "#error"), /^This call is busy: two people are already in it\./);
  assert.equal(await visibleText(C, "#status"), "Not connected.");
  assert.equal(await C.page.evaluate(() => window.__gumCalls), 0, "the busy caller was never asked for camera/microphone");
  await axe(C, "error: room busy");
  await screenshots(C, "07-error-room-busy");
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
});

scenario(
  "packet loss on the network shows a poor-connection warning with the reason, and it clears",
  async () => {
    const { A, B } = await establish("ux-loss");
    await waitText(B, "#quality", /Good connection/);
    const dropped0 = dep.proxy.dropped;
    dep.proxy.loss = 0.15;
    try {
      const warning = await waitText(B, "#quality-warning", /^⚠?\s*Poor connection: .*High packet loss \((\d+)%\)/, 15_000);
      const pct = Number(/High packet loss \((\d+)%\)/.exec(warning)[1]);
      assert.ok(pct >= 5 && pct <= 60, `the warning names the loss (${pct}%) of a path dropping 15% each way`);
      assert.ok(dep.proxy.dropped > dropped0, "the relay really dropped datagrams");
      assert.equal(await B.page.getAttribute("#quality", "data-level"), "poor");
      assert.match(await visibleText(B, "#quality"), /Poor connection/);
      await axe(B, "in a call, poor connection");
      await screenshots(B, "09-poor-connection", { settleMs: 600 });
    } finally {
      dep.proxy.loss = 0;
    }
    await pollUntil("the warning to clear once the loss stops", async () => !(await B.page.isVisible("#quality-warning")), { timeoutMs: 15_000, everyMs: 250 });
    await waitText(B, "#quality", /Good connection/, 10_000);
    assert.equal(await stateOf(A), "connected");
  },
  { timeout: 120_000 },
);

scenario(
  "server restarting mid-call: 'reconnecting' with a countdown, the call continues, then connected again",
  async () => {
    const { A, B } = await establish("ux-restart");
    await dep.stopServer();
    await waitState(A, "reconnecting", 10_000);
    const status = await visibleText(A, "#status");
    assert.match(status, /The server is restarting, reconnecting… Your call continues meanwhile\./);
    const first = await waitText(A, "#status-detail", /^(Next try in \d+ s\.|Trying now…)$/);
    // The countdown counts: two different readings within a few seconds.
    await pollUntil("the countdown to change", async () => (await visibleText(A, "#status-detail")) !== first, { timeoutMs: 6000, everyMs: 200 });
    await assertFramesGrowing(B, { ms: 1000, min: 3 });
    await axe(A, "reconnecting (server restarting)");
    await screenshots(A, "08-reconnecting", { settleMs: 300 });
    await dep.startServer();
    await waitState(A, "connected", 30_000);
    await waitState(B, "connected", 30_000);
    assert.equal(await visibleText(A, "#status-detail"), "", "no countdown once reconnected");
    await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  },
  { timeout: 120_000 },
);

const noTurn = new Deployment({ name: "ux-noturn", port: 8798, turn: false });

scenario(
  "no TURN server: Relay-only explains itself and offers Auto",
  async () => {
    await noTurn.start();
    try {
      const A = await open("ux-noturn");
      await A.page.goto(`${noTurn.origin}/#${newToken()}`);
      await waitState(A, "ready");
      await A.page.click("#start");
      await A.page.waitForSelector("#use-auto", { state: "visible" });
      assert.match(await visibleText(A, "#error"), /^Relay-only mode needs a TURN relay server, and this server has none\. Use Auto mode/);
      assert.equal(await A.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request while Relay-only cannot work");
      await axe(A, "error: relay unavailable");
      await screenshots(A, "10-error-relay-unavailable");
    } finally {
      for (const c of callers.splice(0)) await c.close().catch(() => {});
      await noTurn.stop();
    }
  },
  { joins: false, server: () => noTurn },
);

scenario(
  "TURN server unreachable (every UDP datagram lost): Relay-only says so before asking for the camera",
  async () => {
    const A = await open("ux-turn-down");
    await A.page.goto(`${dep.origin}/#${newToken()}`);
    await waitState(A, "ready");
    dep.proxy.loss = 1;
    try {
      await A.page.click("#start");
      await waitState(A, "preflight");
      assert.equal(await visibleText(A, "#status"), "Checking the relay server…");
      await A.page.waitForSelector('#error[data-code="relay-preflight-failed"]', { state: "visible", timeout: 20_000 });
    } finally {
      dep.proxy.loss = 0;
    }
    assert.match(await visibleText(A, "#error"), /^Could not reach the relay server from this network, so Relay-only mode cannot work\./);
    assert.equal(await A.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request when the relay is unreachable");
    assert.equal(await A.page.isEnabled("#start"), true, "Start can be pressed again");
    await axe(A, "error: relay unreachable");
  },
  { timeout: 60_000 },
);

scenario(
  "no speaker picker where the browser cannot choose a speaker (no setSinkId, as on iPhones)",
  async () => {
    const A = await open("ux-no-sink");
    await A.page.addInitScript(() => {
      delete HTMLMediaElement.prototype.setSinkId;
    });
    await A.page.goto(`${dep.origin}/#${newToken()}`);
    await waitState(A, "ready");
    await A.page.click("#test-media");
    await A.page.waitForSelector("#camera-select", { state: "visible" });
    await waitText(A, "#camera-select", /fake_device_0/);
    assert.equal(await A.page.isVisible("#speaker-field"), false, "the speaker picker is not shown");
    assert.equal(await A.page.isVisible("#mic-select"), true, "the other pickers are");
  },
  { joins: false },
);

scenario(
  "Share invite exists only with navigator.share, is enabled once admitted, and shares the link",
  async () => {
    const A = await open("ux-share");
    // A phone's share sheet, where Linux Chromium has none: records what the page shares.
    await A.page.addInitScript(() => {
      window.__shared = [];
      Object.defineProperty(navigator, "share", {
        value: (data) => {
          window.__shared.push(data);
          return Promise.resolve();
        },
      });
    });
    await A.page.goto(`${dep.origin}/`);
    await waitState(A, "idle");
    assert.equal(await A.page.isVisible("#share-invite"), false, "no Share before a room exists");
    await A.page.click("#generate");
    await waitState(A, "ready");
    const link = await inviteLink(A);
    parseInvite(link, dep.origin);
    assert.equal(await A.page.isVisible("#share-invite"), true, "Share invite is shown where navigator.share exists");
    assert.equal(await A.page.isDisabled("#share-invite"), true, "and disabled until the room is admitted");
    await A.page.click("#start");
    await waitState(A, "waiting");
    assert.equal(await A.page.isEnabled("#share-invite"), true);
    await A.page.click("#share-invite");
    await waitText(A, "#copy-note", /Invite link shared/);
    const shared = await A.page.evaluate(() => window.__shared);
    assert.equal(shared.length, 1);
    assert.equal(shared[0].url, link, "the shared URL is the invite link");
    assert.match(shared[0].text, /Join my private video call/);
  },
);

scenario("phone layout at 360x740: no sideways scrolling, 44 px targets, the other person fills the screen, keyboard focus visible", async () => {
  const { A, B } = await establish("ux-phone");
  await B.page.setViewportSize({ width: 360, height: 740 });
  await sleep(400);
  const m = await B.page.evaluate(() => {
    const visible = (el) => el.checkVisibility() && el.getBoundingClientRect().width > 0;
    const small = [];
    for (const el of document.querySelectorAll("button, select, input, a[href]")) {
      if (!visible(el) || el.classList.contains("skip")) continue;
      // A radio's target is its label.
      const target = el.type === "radio" ? el.closest("label") : el;
      const r = target.getBoundingClientRect();
      if (r.height < 44 || r.width < 44) small.push(`${el.id || el.type || el.tagName}: ${Math.round(r.width)}x${Math.round(r.height)}`);
    }
    const rect = (sel) => document.querySelector(sel).getBoundingClientRect().toJSON();
    return {
      scrollWidth: document.documentElement.scrollWidth,
      small,
      remote: rect(".stage .remote"),
      local: rect(".stage .local"),
      controls: rect("#controls"),
    };
  });
  assert.ok(m.scrollWidth <= 360, `no sideways scrolling (page is ${m.scrollWidth} px wide)`);
  assert.deepEqual(m.small, [], "every visible control is at least 44x44 px");
  assert.ok(m.remote.width >= 0.85 * 360 && m.remote.height >= 0.6 * 740, `the other person fills the screen area (${Math.round(m.remote.width)}x${Math.round(m.remote.height)})`);
  assert.ok(m.local.width * m.local.height <= 0.15 * m.remote.width * m.remote.height, "your own picture is a small overlay");
  assert.ok(m.local.left >= m.remote.left && m.local.right <= m.remote.right && m.local.bottom <= m.remote.bottom, "inside the other person's picture");
  assert.ok(m.controls.bottom <= 740, `the call controls are on screen without scrolling (bottom at ${Math.round(m.controls.bottom)})`);
  // Keyboard: Tab reaches Mute, and the focus ring is drawn.
  let focused = false;
  for (let i = 0; i < 30 && !focused; i++) {
    await B.page.keyboard.press("Tab");
    focused = await B.page.evaluate(() => document.activeElement?.id === "mute");
  }
  assert.ok(focused, "Tab reaches Mute");
  const ring = await B.page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.equal(ring.style, "solid", "a visible focus outline");
  assert.ok(ring.width >= 2, `the focus outline is ${ring.width} px`);
  await B.page.keyboard.press("Enter");
  assert.equal(await B.page.getAttribute("#mute", "aria-pressed"), "true", "Enter on Mute mutes");
  await assertFramesGrowing(A);
});

scenario(
  "every server error code in docs/protocol.md and every close reason has its own sentence",
  async () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/protocol.md"), "utf8");
    const section = doc.slice(doc.indexOf("## Error codes and close codes"));
    const codes = [...section.matchAll(/^\| `([a-z-]+)` \| (\d+|—[^|]*) \|/gm)].map((x) => x[1]);
    assert.ok(codes.length >= 8, `found the error code table (${codes})`);
    const A = await open("ux-messages");
    await A.page.goto(`${dep.origin}/`);
    await waitState(A, "idle");
    const table = await A.page.evaluate(async (list) => {
      const { messages } = await import("/js/messages.js");
      const extra = ["replaced", "idle", "unreachable", "media-denied", "media-not-found", "media-busy", "media-error", "insecure", "relay-unavailable", "relay-preflight-failed", "invalid-link", "unverified", "http-403", "http-429", "http-503"];
      return [...list, ...extra].map((code) => ({ code, own: messages.hasError(code), text: messages.error(code) }));
    }, codes.filter((c) => c !== "not-ready"));
    for (const { code, own, text } of table) {
      assert.ok(own, `${code} has its own sentence`);
      assert.ok(text.length >= 30 && /\.$/.test(text) && !text.includes(code), `${code}: a human sentence, not the code (${JSON.stringify(text)})`);
    }
  },
  { joins: false },
);

test("the screenshots were written", () => {
  const dir = path.join(OUT_DIR, "screenshots");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".png"));
  assert.ok(files.length >= 16, `16 or more screenshots (${files.length}): ${files.join(", ")}`);
  for (const f of files) assert.ok(fs.statSync(path.join(dir, f)).size > 2000, `${f} is a real picture`);
  console.log(`screenshots: ${redact(files.join(", "))}`);
});
