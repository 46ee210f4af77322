// Driving the browser client through its DOM contract (ids, data-state, window.alisay) and
// reading the truth from WebRTC's own statistics.

import assert from "node:assert/strict";

import { knownRooms, rememberToken, sleep } from "./harness.js";

/** Every `#status[data-state]` value the client may show. */
export const STATES = ["idle", "ready", "joining", "preflight", "media", "waiting", "connecting", "connected", "reconnecting", "peer-left", "ended", "error"];

/** A room token as the client makes it. */
export const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** What the page shows right now (for assertions and error messages). */
export async function snapshot(c) {
  return c.page.evaluate(() => {
    const st = document.querySelector("#status");
    const err = document.querySelector("#error");
    const pc = window.alisay?.pc ?? null;
    return {
      state: st?.dataset.state ?? null,
      status: st?.textContent?.trim() ?? null,
      alisayState: window.alisay?.state ?? null,
      errorCode: err?.dataset.code || null,
      errorText: err?.textContent?.trim() || null,
      errorVisible: !!err && err.checkVisibility?.() === true,
      pc: pc ? `${pc.connectionState}/${pc.iceConnectionState}/${pc.signalingState}` : null,
      trace: (window.__sigTrace || []).filter((l) => !/heartbeat/.test(l)).slice(-14),
    };
  });
}

function describe(s) {
  return `state=${s.state} (alisay.state=${s.alisayState}) status=${JSON.stringify(s.status)} error=${s.errorCode} ${JSON.stringify(s.errorText)} pc=${s.pc}\n    last signaling: ${s.trace.join(" | ")}`;
}

/**
 * For a failure message: each caller's diagnostics dumped to out/ ("failure") and one line per
 * page (state, status, error code, peer connection, last signaling), joined by newlines.
 */
export async function describePages(callers) {
  const pages = [];
  for (const c of callers) {
    await c.dumpDiagnostics("failure");
    try {
      const s = await snapshot(c);
      pages.push(`  ${c.label}: state=${s.state} status=${JSON.stringify(s.status)} error=${s.errorCode} pc=${s.pc}; last signaling: ${s.trace.join(" | ")}`);
    } catch (e2) {
      pages.push(`  ${c.label}: unavailable (${e2.message.split("\n")[0]})`);
    }
  }
  return pages.join("\n");
}

/** Current `#status[data-state]`. */
export async function stateOf(c) {
  return c.page.evaluate(() => document.querySelector("#status")?.dataset.state ?? null);
}

/**
 * Waits until `#status[data-state]` is one of `states`; on timeout the error says what the page
 * shows instead and the last signaling messages.
 */
export async function waitState(c, states, timeoutMs = 15_000) {
  const want = Array.isArray(states) ? states : [states];
  try {
    await c.page.waitForFunction((w) => w.includes(document.querySelector("#status")?.dataset.state), want, { timeout: timeoutMs, polling: 50 });
  } catch (e) {
    let s;
    try {
      s = describe(await snapshot(c));
    } catch (e2) {
      s = `page unavailable: ${e2.message}`;
    }
    throw new Error(`${c.label}: expected data-state in [${want}] within ${timeoutMs} ms; page shows ${s}\n  (${e.message.split("\n")[0]})`);
  }
  return stateOf(c);
}

/** The invite link the page shows (contains the secret token: never print it). */
export async function inviteLink(c) {
  return c.page.inputValue("#invite-link");
}

/** Splits an invite link into origin+path and token, checking its shape. */
export function parseInvite(link, origin) {
  const m = /^(.*)#(.*)$/.exec(link);
  assert.ok(m, `${"invite link"} has no #fragment`);
  assert.equal(m[1].replace(/\/$/, ""), origin, "invite link points at public_origin");
  assert.match(m[2], TOKEN_RE, "invite token is 43 base64url characters (32 random bytes)");
  rememberToken(m[2]);
  return m[2];
}

/** Selects Relay-only (`relay`) or Auto (`auto`) mode. */
export async function chooseMode(c, mode) {
  await c.page.check(`input[name="mode"][value="${mode}"]`);
}

/**
 * WebRTC's own account of the call on this page: the selected candidate pair and the video
 * frames decoded so far.
 */
export async function callStats(c) {
  return c.page.evaluate(async () => {
    const pc = window.alisay?.pc;
    if (!pc) return { pc: false };
    const report = await pc.getStats();
    const byId = new Map();
    report.forEach((s) => byId.set(s.id, s));
    let pair = null;
    for (const s of byId.values()) {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId) ?? pair;
    }
    if (!pair) {
      // Firefox has no transport stats: its selected pair says so itself.
      for (const s of byId.values()) if (s.type === "candidate-pair" && s.selected) pair = s;
    }
    if (!pair) {
      for (const s of byId.values()) if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s;
    }
    const local = pair ? byId.get(pair.localCandidateId) : null;
    const remote = pair ? byId.get(pair.remoteCandidateId) : null;
    const localTypes = new Set();
    const remoteTypes = new Set();
    const at = (s) => `${s.address ?? s.ip}:${s.port}`;
    const localRelays = [];
    const remotePrflx = [];
    for (const s of byId.values()) {
      if (s.type === "local-candidate") localTypes.add(s.candidateType);
      if (s.type === "remote-candidate") remoteTypes.add(s.candidateType);
      if (s.type === "local-candidate" && s.candidateType === "relay") localRelays.push(at(s));
      if (s.type === "remote-candidate" && s.candidateType === "prflx") remotePrflx.push(at(s));
    }
    let framesDecoded = 0;
    let audioPackets = 0;
    for (const s of byId.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") framesDecoded += s.framesDecoded || 0;
      if (s.type === "inbound-rtp" && s.kind === "audio") audioPackets += s.packetsReceived || 0;
    }
    return {
      pc: true,
      connectionState: pc.connectionState,
      pairState: pair?.state ?? null,
      localType: local?.candidateType ?? null,
      remoteType: remote?.candidateType ?? null,
      localProtocol: local?.protocol ?? null,
      relayProtocol: local?.relayProtocol ?? null,
      framesDecoded,
      audioPackets,
      allLocalTypes: [...localTypes].sort(),
      allRemoteTypes: [...remoteTypes].sort(),
      remoteAddress: remote ? at(remote) : null,
      localRelays,
      remotePrflx,
    };
  });
}

/** Video frames decoded so far on this page's current peer connection (0 without one). */
export async function framesDecoded(c) {
  const s = await callStats(c);
  return s.pc ? s.framesDecoded : 0;
}

/** Asserts that video frames keep being decoded over `ms` (at least `min` new frames). */
export async function assertFramesGrowing(c, { ms = 1000, min = 3 } = {}) {
  const f0 = await framesDecoded(c);
  await sleep(ms);
  const f1 = await framesDecoded(c);
  assert.ok(f1 - f0 >= min, `${c.label}: video frames decoded grew by ${f1 - f0} in ${ms} ms (from ${f0} to ${f1}); expected >= ${min}`);
  return f1 - f0;
}

/** Waits until `#remote-video` has a decoded picture (videoWidth > 0). */
export async function waitRemoteVideo(c, timeoutMs = 15_000) {
  try {
    await c.page.waitForFunction(() => document.querySelector("#remote-video")?.videoWidth > 0, null, { timeout: timeoutMs, polling: 20 });
  } catch (e) {
    throw new Error(`${c.label}: #remote-video has no picture (videoWidth 0) within ${timeoutMs} ms; page shows ${describe(await snapshot(c))}`);
  }
}

/**
 * Asserts both local and remote candidates of the selected pair are TURN relays. Firefox
 * sometimes lists a peer-reflexive remote candidate in a Relay-only call: the peer's relay
 * address, learnt from a connectivity check before the relay candidate itself arrived. Such a
 * candidate counts as a relay only when `peer` is given and its address and port are one of
 * the relay addresses the server allocated to `peer` (its own local relay candidates); every
 * other peer-reflexive candidate fails, as does any host or server-reflexive one.
 * @param {Caller} c
 * @param {Caller} [peer] the other caller of the call
 */
export async function assertRelayed(c, peer) {
  const s = await callStats(c);
  assert.ok(s.pc, `${c.label}: window.alisay.pc is null in a call`);
  assert.equal(s.connectionState, "connected", `${c.label}: peer connection state`);
  assert.ok(s.pairState, `${c.label}: a selected candidate pair`);
  assert.equal(s.localType, "relay", `${c.label}: local candidate of the selected pair must be relay (got ${s.localType})`);
  // Relay-only hides both addresses: no host or server-reflexive candidate on either side.
  assert.deepEqual(s.allLocalTypes, ["relay"], `${c.label}: every local candidate is a relay`);
  let remoteTypes = s.allRemoteTypes;
  let selectedRemote = s.remoteType;
  if (s.remotePrflx.length > 0 && peer) {
    const peerRelays = new Set((await callStats(peer)).localRelays);
    const foreign = s.remotePrflx.filter((a) => !peerRelays.has(a));
    assert.deepEqual(foreign, [], `${c.label}: peer-reflexive remote candidates that are not relay addresses of the server allocated to ${peer.label} (${peerRelays.size} known)`);
    remoteTypes = [...new Set(remoteTypes.map((t) => (t === "prflx" ? "relay" : t)))].sort();
    if (selectedRemote === "prflx") selectedRemote = "relay";
  }
  assert.equal(selectedRemote, "relay", `${c.label}: remote candidate of the selected pair must be relay (got ${s.remoteType})`);
  assert.deepEqual(remoteTypes, ["relay"], `${c.label}: every candidate received from the peer is a relay`);
  return s;
}

/** Whether `#copy-invite` is disabled. */
export async function copyInviteDisabled(c) {
  return c.page.evaluate(() => {
    const b = document.querySelector("#copy-invite");
    if (!b) throw new Error("no #copy-invite");
    return b.disabled || b.getAttribute("aria-disabled") === "true";
  });
}

/**
 * Caller A as a new user: opens `/`, presses Generate room, optionally chooses a mode, presses
 * Start, and waits until admitted and waiting for the other caller. Returns the invite link.
 */
export async function startAsNewUser(A, origin, { mode = "relay" } = {}) {
  await A.page.goto(`${origin}/`);
  await waitState(A, "idle");
  assert.equal(await A.page.isVisible("#generate"), true, "Generate room is visible on a bare visit");
  assert.equal(await copyInviteDisabled(A), true, "Copy invite is disabled before a room exists");
  await A.page.click("#generate");
  await A.page.waitForFunction(() => /#[A-Za-z0-9_-]{43}$/.test(document.querySelector("#invite-link")?.value || ""), null, { timeout: 10_000 });
  const link = await inviteLink(A);
  parseInvite(link, origin);
  if (mode !== "relay") await chooseMode(A, mode);
  assert.equal(await A.page.isChecked(`input[name="mode"][value="${mode}"]`), true);
  await A.page.click("#start");
  await waitState(A, "waiting");
  assert.equal(await copyInviteDisabled(A), false, "Copy invite is enabled once admitted");
  return link;
}

/**
 * Caller B: opens the invite link, optionally chooses a mode, presses Start. Returns the
 * in-page milliseconds from the Start click to `#remote-video` having a picture, once both
 * callers are connected.
 */
export async function joinByInvite(B, A, link, { mode = "relay", timeoutMs = 20_000 } = {}) {
  await B.page.goto(link);
  await waitState(B, "ready");
  if (mode !== "relay") await chooseMode(B, mode);
  assert.equal(await B.page.isChecked(`input[name="mode"][value="${mode}"]`), true);
  await B.page.evaluate(() => {
    window.__videoAt = null;
    const v = document.querySelector("#remote-video");
    const mark = () => {
      if (window.__videoAt === null && v.videoWidth > 0) window.__videoAt = performance.now();
    };
    for (const ev of ["resize", "loadedmetadata", "loadeddata", "playing"]) v.addEventListener(ev, mark);
    const poll = () => {
      mark();
      if (window.__videoAt === null) requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
    window.__startAt = performance.now();
  });
  await B.page.click("#start");
  await waitRemoteVideo(B, timeoutMs);
  const ms = await B.page.evaluate(() => (window.__videoAt ?? performance.now()) - window.__startAt);
  await waitState(B, "connected", timeoutMs);
  await waitState(A, "connected", timeoutMs);
  await waitRemoteVideo(A, timeoutMs);
  return Math.round(ms);
}

/**
 * SPEC §2: the room token never leaves the browser (no URL, body or WebSocket frame carries it;
 * the `#fragment` is never sent) and a room id never appears in a URL. Checks everything this
 * caller's page sent. Returns how many frames carried a room id (a `join`), so callers can
 * check that the inspection saw real traffic. Never prints the values themselves.
 */
export function assertNoTokenOnTheWire(c) {
  const { tokens, roomIds } = knownRooms();
  let framesWithRoomId = 0;
  for (const [kind, text] of c.wire) {
    for (const t of tokens) assert.ok(!text.includes(t), `${c.label}: a room token was sent in a ${kind}`);
    if (kind === "url") for (const id of roomIds) assert.ok(!text.includes(id), `${c.label}: a room id appears in a request URL`);
    if (kind === "frame" && roomIds.some((id) => text.includes(id))) framesWithRoomId += 1;
  }
  return framesWithRoomId;
}

/** The browser pairs besides Chromium↔Chromium, first caller first (issue 14). */
export const FIREFOX_PAIRS = [
  ["chromium", "firefox"],
  ["firefox", "chromium"],
  ["firefox", "firefox"],
];

/** A short tag for a pair: `cf`, `fc`, `ff`. */
export const pairTag = ([a, b]) => `${a[0]}${b[0]}`;

/**
 * Waits until `#safety-code` shows on every caller and returns the texts; asserts they are
 * six digits shown as "123 456" and equal on all pages (an honest call).
 */
export async function assertEqualSafetyCodes(callers) {
  const codes = [];
  for (const c of callers) {
    await c.page.waitForSelector("#safety-code", { state: "visible", timeout: 15_000 });
    codes.push((await c.page.textContent("#safety-code")).trim());
  }
  for (const [i, code] of codes.entries()) assert.match(code, /^\d{3} \d{3}$/, `${callers[i].label}: the safety code is shown as "123 456"`);
  assert.ok(codes.every((x) => x === codes[0]), `the safety codes differ on an honest call: ${callers.map((c, i) => `${c.label}=${codes[i]}`).join(" ")}`);
  return codes[0];
}
