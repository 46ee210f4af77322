// Faults during a call, on the host `alisay render` describes (production config, the rendered
// nginx site over TLS, coturn from `alisay coturn-config`), in the loopback-only namespace:
// SIGKILL of `alisay serve` and a restart, `nginx -s reload`, a coturn restart, and the network
// to TURN dropped for 5 s (an nftables rule on the TURN ports). Each one is measured from video
// frames decoded, sampled inside both pages every 100 ms: the longest interval without a new
// frame (`gap_ms`) and the time from the end of the fault until the call is whole again
// (`recover_ms`). Run with `bash tests/e2e/run.sh faults.test.js`.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { launchBrowser } from "./lib/browser.js";
import { assertRelayed, joinByInvite, startAsNewUser, waitState } from "./lib/call.js";
import { OUT_DIR, pollUntil, sleep } from "./lib/harness.js";
import { Scenarios, SiteDeployment, metric } from "./lib/nginx.js";
import { makeTestPki } from "./lib/tls.js";

/** How often each page samples `framesDecoded`. */
const SAMPLE_MS = 100;
/** Faults of the signaling path must not stop media: no gap between new frames this long. */
const MAX_SIGNALING_FAULT_GAP_MS = 1000;
/**
 * How long coturn stays stopped in a restart: a restart on a real host takes about this long
 * (systemd stop, `alisay coturn-config`, coturn's start), and clients reconnecting within it
 * find nothing listening.
 */
const COTURN_DOWN_MS = 1000;
/** Media must flow again this soon after a TURN fault ends. */
const MAX_TURN_RECOVERY_MS = 10_000;

const pki = makeTestPki();
const dep = new SiteDeployment({ name: "faults", pki, port: 8757, httpsPort: 8444, httpPort: 8082 });
let browser;
const s = new Scenarios(dep, () => browser);

before(async () => {
  await dep.start();
  browser = await launchBrowser({ env: { ...process.env, HOME: pki.home } });
});

after(async () => {
  dropTurn(false);
  await s.closeAll();
  if (browser) await browser.close().catch(() => {});
  await dep.stop();
  pki.remove();
});

/**
 * A relay-only call through the HTTPS site, with the server handing out only the `which`
 * (`udp` or `tls`) TURN URL: A generates a room, B joins by link.
 */
async function establish(tag, which = "udp", kinds = ["chromium", "chromium"]) {
  await dep.useServerConfig(which);
  const A = await s.open(`${tag}-A`, { kind: kinds[0] });
  const B = await s.open(`${tag}-B`, { kind: kinds[1] });
  const link = await startAsNewUser(A, dep.origin, { mode: "relay" });
  const startToVideoMs = await joinByInvite(B, A, link, { mode: "relay" });
  await assertRelayed(A, B);
  await assertRelayed(B, A);
  return { A, B, link, startToVideoMs };
}

/**
 * Starts sampling inside the page: every {@link SAMPLE_MS}, the wall-clock time, the video
 * frames decoded on the current peer connection, which connection that is (a replaced one
 * counts from 0 again) and its states. In-page timers keep the spacing even when the test
 * process is busy.
 */
function startSampling(c) {
  return c.page.evaluate((every) => {
    window.__e2eSamples = [];
    let busy = false;
    let ids = 0;
    window.__e2eSampler = setInterval(async () => {
      if (busy) return;
      busy = true;
      try {
        const t = Date.now();
        const pc = window.alisay?.pc ?? null;
        let f = 0;
        if (pc) {
          if (!pc.__e2eId) Object.defineProperty(pc, "__e2eId", { value: ++ids });
          (await pc.getStats()).forEach((x) => {
            if (x.type === "inbound-rtp" && x.kind === "video") f += x.framesDecoded || 0;
          });
        }
        window.__e2eSamples.push({ t, f, pc: pc ? pc.__e2eId : 0, conn: pc ? pc.connectionState : "none", ice: pc ? pc.iceConnectionState : "none" });
      } finally {
        busy = false;
      }
    }, every);
  }, SAMPLE_MS);
}

/** Stops sampling; the samples also go to `out/<label>.samples.json` (times relative). */
async function stopSampling(c) {
  const samples = await c.page.evaluate(() => {
    clearInterval(window.__e2eSampler);
    return window.__e2eSamples;
  });
  const t0 = samples[0]?.t ?? 0;
  fs.writeFileSync(path.join(OUT_DIR, `${c.label}.samples.json`), JSON.stringify({ t0, samples: samples.map((x) => ({ ...x, t: x.t - t0 })) }));
  return samples;
}

/** The samples so far (without stopping). */
const samplesOf = (c) => c.page.evaluate(() => window.__e2eSamples);

/**
 * Frames analysis of one page's samples: the times at which a new frame had been decoded since
 * the previous sample, the longest interval between two such times from `from` on (an
 * unfinished stall counts up to the last sample), and when media resumed after that interval.
 */
function analyse(samples, from) {
  const rises = [];
  for (let i = 1; i < samples.length; i++) {
    const [p, q] = [samples[i - 1], samples[i]];
    if (q.pc === p.pc ? q.f > p.f : q.f > 0) rises.push(q.t);
  }
  const relevant = rises.filter((t) => t >= from);
  const before = rises.filter((t) => t < from).at(-1) ?? from;
  let gap = 0;
  let resumedAt = null;
  let prev = before;
  for (const t of relevant) {
    if (t - prev > gap) {
      gap = t - prev;
      resumedAt = t;
    }
    prev = t;
  }
  const last = samples.at(-1)?.t ?? from;
  if (last - prev > gap) {
    gap = last - prev;
    resumedAt = null; // still stalled at the end
  }
  // Connection state / ICE connection state, in the order seen.
  const states = [...new Set(samples.filter((x) => x.t >= from).map((x) => `${x.conn}/${x.ice}`))];
  const replaced = new Set(samples.filter((x) => x.t >= from).map((x) => x.pc)).size > 1;
  return { gap, resumedAt, lastRise: relevant.at(-1) ?? before, samples: samples.filter((x) => x.t >= from).length, states, replaced };
}

/** Waits (bounded) until both pages decode new frames after `after` (epoch ms). */
async function waitMediaAfter(pages, after, timeoutMs) {
  return pollUntil(
    "video frames decoded again on both pages",
    async () => {
      const got = await Promise.all(pages.map(async (c) => analyse(await samplesOf(c), after - 1000)));
      return got.every((g) => g.lastRise > after) ? got : null;
    },
    { timeoutMs, everyMs: 200 },
  );
}

/** The page's local ICE username fragment (changes with every ICE restart). */
const ufrag = (c) => c.page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.alisay.pc?.localDescription?.sdp ?? "")?.[1] ?? null);
/** Index into the page's signaling trace, to look at what came after. */
const traceMark = (c) => c.page.evaluate(() => window.__sigTrace.length);
const traceSince = (c, m) => c.page.evaluate((x) => window.__sigTrace.slice(x).filter((l) => !/heartbeat/.test(l)), m);

/**
 * Reports one fault: `METRIC fault_<name>_gap_ms=<worse side> recover_ms=<ms> ...` and the
 * per-side details.
 */
function report(name, res, recoverMs, extra = "") {
  const gap = Math.max(res.A.gap, res.B.gap);
  metric(`fault_${name}_gap_ms=${gap} recover_ms=${recoverMs}`, `gap_A_ms=${res.A.gap} gap_B_ms=${res.B.gap} samples_A=${res.A.samples} samples_B=${res.B.samples} states_A=${res.A.states.join(">")} states_B=${res.B.states.join(">")}${extra ? ` ${extra}` : ""}`);
  return gap;
}

/** nftables: drop (true) or pass again (false) every packet to and from coturn's ports. */
function dropTurn(on) {
  const table = "alisay_e2e_turn_drop";
  if (!on) {
    const listed = spawnSync("nft", ["list", "table", "inet", table], { encoding: "utf8", timeout: 10_000 });
    if (listed.status !== 0) return null; // not there
    const del = spawnSync("nft", ["delete", "table", "inet", table], { encoding: "utf8", timeout: 10_000 });
    if (del.status !== 0) throw new Error(`nft delete table failed: ${del.stderr}`);
    // Packets the rules dropped while they were in place.
    return [...listed.stdout.matchAll(/packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
  }
  const rules = `table inet ${table} {
  chain output {
    type filter hook output priority 0; policy accept;
    udp dport { ${dep.turnPort}, ${dep.turnTlsPort} } counter drop
    udp sport { ${dep.turnPort}, ${dep.turnTlsPort} } counter drop
    tcp dport { ${dep.turnPort}, ${dep.turnTlsPort} } counter drop
    tcp sport { ${dep.turnPort}, ${dep.turnTlsPort} } counter drop
  }
}
`;
  const r = spawnSync("nft", ["-f", "-"], { input: rules, encoding: "utf8", timeout: 10_000 });
  if (r.error) throw new Error(`cannot run nft (apt-get install nftables): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nft refused the drop rules: ${r.stderr}`);
  return 0;
}

test("the faults run in a loopback-only namespace with nftables available", () => {
  assert.equal(process.env.ALISAY_E2E_IN_NETNS, "1", "run the suite with `bash tests/e2e/run.sh`, which creates the namespace");
  const r = spawnSync("nft", ["list", "ruleset"], { encoding: "utf8", timeout: 10_000 });
  assert.equal(r.error, undefined, "nft is installed (apt-get install nftables)");
  assert.equal(r.status, 0, `nft works in the namespace: ${r.stderr}`);
  assert.equal(r.stdout.trim(), "", "the namespace starts with no firewall rules");
});

/** Fault 1 with callers in `kinds` (A first). */
async function sigkillFault(tag, kinds) {
  const { A, B, link } = await establish(tag, "udp", kinds);
  const pcMark = await Promise.all([A, B].map((c) => c.page.evaluate(() => Object.defineProperty(window, "__pcMark", { value: window.alisay.pc, configurable: true }) && true)));
  assert.deepEqual(pcMark, [true, true]);
  await Promise.all([A, B].map(startSampling));
  await sleep(1500);
  const marks = await Promise.all([A, B].map(traceMark));
  const tFault = Date.now();
  const exit = await dep.killServer();
  assert.equal(exit.signal, "SIGKILL");
  await sleep(1000);
  const tEnd = Date.now();
  await dep.startServer();
  // Signaling recovers: a fresh `joined` on both pages, both connected again.
  await pollUntil(
    "both pages to rejoin after the restart",
    async () => (await Promise.all([A, B].map((c, i) => traceSince(c, marks[i])))).every((t) => t.some((l) => / in joined$/.test(l))),
    { timeoutMs: 20_000, everyMs: 100 },
  );
  await waitState(A, "connected", 10_000);
  await waitState(B, "connected", 10_000);
  const recoverMs = Date.now() - tEnd;
  await sleep(2000);
  const res = { A: analyse(await stopSampling(A), tFault - 500), B: analyse(await stopSampling(B), tFault - 500) };
  const gap = report("sigkill", res, recoverMs, `server_down_ms=${tEnd - tFault}`);
  for (const c of [A, B]) {
    assert.equal(await c.page.evaluate(() => window.alisay.pc === window.__pcMark), true, `${c.label}: the RTCPeerConnection was replaced`);
  }
  assert.ok(gap < MAX_SIGNALING_FAULT_GAP_MS, `no new video frame for ${gap} ms across a SIGKILL of the signaling server`);
  // The restarted server holds both callers again: a third one is refused as room-full.
  const C = await s.open(`${tag}-C`);
  await C.page.goto(link);
  await waitState(C, "ready");
  await C.page.click("#start");
  await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible", timeout: 10_000 });
}

s.scenario(
  "fault 1. SIGKILL of alisay serve mid-call, restart after 1 s: media never stops, signaling recovers",
  () => sigkillFault("f1-kill", ["chromium", "chromium"]),
  { timeout: 90_000 },
);

s.scenario(
  "fault 2. nginx -s reload mid-call: media never stops, the signaling socket survives, new workers serve",
  async () => {
    const { A, B, link } = await establish("f2-reload");
    await Promise.all([A, B].map(startSampling));
    await sleep(1500);
    const marks = await Promise.all([A, B].map(traceMark));
    const workers0 = dep.nginxWorkers();
    assert.ok(workers0.length >= 1, "nginx has a worker");
    const tFault = Date.now();
    dep.reloadNginx();
    const tEnd = Date.now();
    // New workers answer over HTTPS (the old one lingers only for the open WebSockets).
    await pollUntil("a new nginx worker", () => dep.nginxWorkers().some((p) => !workers0.includes(p)), { timeoutMs: 10_000, everyMs: 50 });
    await pollUntil("HTTPS through the reloaded nginx", async () => (await dep.get("/healthz")).status === 200, { timeoutMs: 10_000, everyMs: 50 });
    const recoverMs = Date.now() - tEnd;
    await sleep(2500);
    const res = { A: analyse(await samplesOf(A), tFault - 500), B: analyse(await samplesOf(B), tFault - 500) };
    // Signaling still works on the same sockets: an ICE restart (offer/answer and candidates
    // relayed by the server through nginx) completes.
    const tRestart = Date.now();
    const before = [await ufrag(A), await ufrag(B)];
    await A.page.evaluate(() => window.alisay.pc.restartIce());
    await pollUntil(
      "an ICE restart over the signaling socket after the reload",
      async () => {
        for (const [i, c] of [A, B].entries()) {
          const ok = await c.page.evaluate(() => window.alisay.pc.signalingState === "stable" && window.alisay.pc.connectionState === "connected");
          if (!ok || (await ufrag(c)) === before[i]) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, everyMs: 100 },
    );
    await sleep(1000);
    const post = { A: analyse(await stopSampling(A), tRestart), B: analyse(await stopSampling(B), tRestart) };
    const gap = report("nginx_reload", res, recoverMs, `reload_cmd_ms=${tEnd - tFault} then_ice_restart_gap_A_ms=${post.A.gap} then_ice_restart_gap_B_ms=${post.B.gap}`);
    for (const [i, c] of [A, B].entries()) {
      const since = await traceSince(c, marks[i]);
      assert.deepEqual(since.filter((l) => /ws-close|ws-open/.test(l)), [], `${c.label}: the signaling socket was not closed or reopened by the reload`);
    }
    assert.ok(gap < MAX_SIGNALING_FAULT_GAP_MS, `no new video frame for ${gap} ms across an nginx reload`);
    const C = await s.open("f2-reload-C");
    await C.page.goto(link);
    await waitState(C, "ready");
    await C.page.click("#start");
    await C.page.waitForSelector('#error[data-code="room-full"]', { state: "visible", timeout: 10_000 });
  },
  { timeout: 90_000 },
);

/**
 * A TURN fault: `inflict()` breaks the relay path and resolves when the fault is over; then
 * media must flow again on both pages within {@link MAX_TURN_RECOVERY_MS}.
 */
async function turnFault(name, tag, which, inflict, kinds = ["chromium", "chromium"]) {
  const { A, B } = await establish(tag, which, kinds);
  await Promise.all([A, B].map(startSampling));
  await sleep(1500);
  const marks = await Promise.all([A, B].map(traceMark));
  const ufrags = [await ufrag(A), await ufrag(B)];
  const tFault = Date.now();
  const extra = await inflict();
  const tEnd = Date.now();
  let resumed = null;
  let waitError = null;
  try {
    resumed = await waitMediaAfter([A, B], tEnd, MAX_TURN_RECOVERY_MS + 10_000);
  } catch (e) {
    waitError = e;
  }
  await sleep(1500);
  const res = { A: analyse(await stopSampling(A), tFault - 500), B: analyse(await stopSampling(B), tFault - 500) };
  // Recovered: the first new frame on both pages after the fault ended (0 if media never
  // stopped long enough to notice).
  const resumedAt = Math.max(...[res.A, res.B].map((r) => (r.gap > 3 * SAMPLE_MS && r.resumedAt ? r.resumedAt : tEnd)));
  const recoverMs = resumed ? Math.max(0, resumedAt - tEnd) : -1;
  const restarted = [(await ufrag(A)) !== ufrags[0], (await ufrag(B)) !== ufrags[1]];
  const traces = await Promise.all([A, B].map((c, i) => traceSince(c, marks[i])));
  const refreshed = traces.map((t) => t.some((l) => / out refresh-ice$/.test(l)));
  report(name, res, recoverMs, `fault_ms=${tEnd - tFault} ice_restart=${restarted.join("/")} refresh_ice=${refreshed.join("/")}${extra ? ` ${extra}` : ""}`);
  if (waitError) throw new Error(`${waitError.message}; connection/ICE states seen: A ${res.A.states.join(" > ")}, B ${res.B.states.join(" > ")}; ICE restart A/B ${restarted.join("/")}; refresh-ice A/B ${refreshed.join("/")}`);
  assert.ok(recoverMs <= MAX_TURN_RECOVERY_MS, `media resumed ${recoverMs} ms after the fault ended (bound ${MAX_TURN_RECOVERY_MS} ms); connection/ICE states A ${res.A.states.join(" > ")}, B ${res.B.states.join(" > ")}; ICE restart A/B ${restarted.join("/")}`);
  for (const c of [A, B]) await waitState(c, "connected", 10_000);
  await assertRelayed(A, B);
  await assertRelayed(B, A);
  return { res, restarted, refreshed };
}

for (const [which, what] of [["udp", "TURN over UDP"], ["tls", "TURN over TLS"]]) {
  s.scenario(
    `fault 3${which === "udp" ? "a" : "b"}. coturn restarted mid-call, ${what}: media resumes within 10 s`,
    async () => {
      await turnFault(`coturn_restart_${which}`, `f3-coturn-${which}`, which, async () => {
        const t0 = Date.now();
        const exit = await dep.coturn.stop(10_000);
        const stopMs = Date.now() - t0;
        await sleep(COTURN_DOWN_MS);
        await dep.startCoturn();
        return `coturn_stop_ms=${stopMs} coturn_exit=${exit.code ?? exit.signal}`;
      });
    },
    { timeout: 120_000 },
  );
}

for (const [which, what] of [["udp", "TURN over UDP"], ["tls", "TURN over TLS"]]) {
  s.scenario(
    `fault 4${which === "udp" ? "a" : "b"}. the network to TURN dropped for 5 s, ${what}: media resumes within 10 s of the network's return`,
    async () => {
      let dropped = 0;
      await turnFault(`turn_drop_${which}`, `f4-drop-${which}`, which, async () => {
        dropTurn(true);
        try {
          await sleep(5000);
        } finally {
          dropped = dropTurn(false);
        }
        return `packets_dropped=${dropped}`;
      });
      assert.ok(dropped > 0, "the nftables rules dropped TURN packets while in place");
    },
    { timeout: 120_000 },
  );
}

// Firefox (issue 14): one fault per pair with Firefox, both as first caller, over the HTTPS
// site (each Firefox profile trusts the test CA): cf a SIGKILL of alisay serve, fc a coturn
// restart (TURN over UDP), ff the network to TURN over TLS dropped for 5 s.
s.scenario(
  "fault 1-cf. chromium calls firefox; SIGKILL of alisay serve mid-call: media never stops, signaling recovers",
  () => sigkillFault("f1-kill-cf", ["chromium", "firefox"]),
  { timeout: 120_000 },
);

s.scenario(
  "fault 3a-fc. firefox calls chromium; coturn restarted mid-call, TURN over UDP: media resumes within 10 s",
  async () => {
    await turnFault("coturn_restart_udp_fc", "f3-coturn-udp-fc", "udp", async () => {
      const exit = await dep.coturn.stop(10_000);
      await sleep(COTURN_DOWN_MS);
      await dep.startCoturn();
      return `coturn_exit=${exit.code ?? exit.signal}`;
    }, ["firefox", "chromium"]);
  },
  { timeout: 120_000 },
);

s.scenario(
  "fault 4b-ff. firefox calls firefox; the network to TURN over TLS dropped for 5 s: media resumes within 10 s of the network's return",
  async () => {
    let dropped = 0;
    await turnFault("turn_drop_tls_ff", "f4-drop-tls-ff", "tls", async () => {
      dropTurn(true);
      try {
        await sleep(5000);
      } finally {
        dropped = dropTurn(false);
      }
      return `packets_dropped=${dropped}`;
    }, ["firefox", "firefox"]);
    assert.ok(dropped > 0, "the nftables rules dropped TURN packets while in place");
  },
  { timeout: 120_000 },
);
