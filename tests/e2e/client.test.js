// An independent client (issue 14): tests/client/alisay_client.py, an aiortc caller written from
// docs/protocol.md and docs/security.md alone, calls a Chromium tab and a Firefox tab through
// the real `alisay serve` and coturn, in the loopback-only namespace. Run with
// `bash tests/e2e/run.sh client.test.js` after `bash tests/client/setup.sh` (the venv).
//
// Each call: both admitted, every description authenticated both ways (the browser verifies
// the client's `auth`, the client verifies the browser's), video received both ways (frames
// counted by aiortc; `framesDecoded` in the browser), the same safety code on both sides
// although aiortc sends three `a=fingerprint` lines and Chromium keeps one; and a client that
// sends a wrong `auth` is refused with the warning.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { Caller, launchBrowser } from "./lib/browser.js";
import { assertFramesGrowing, assertNoTokenOnTheWire, assertRelayed, callStats, describePages, parseInvite, waitRemoteVideo, waitState } from "./lib/call.js";
import { Deployment, E2E_DIR, newToken, OUT_DIR, redact, redactError } from "./lib/harness.js";

/** The venv tests/client/setup.sh makes (scripts/test.sh runs it). */
const PYTHON = path.join(process.env.TEST_CACHE_DIR || "/var/cache/alisay-test", "aiortc-venv/bin/python");
const CLIENT = path.resolve(E2E_DIR, "../client/alisay_client.py");
const WARNING = "This call could not be verified: the connection may be intercepted.";

const dep = new Deployment({ name: "client", port: 8777, credentialTtl: "1h" });
let browser;
let callers = [];
const tally = { calls: 0, equal: 0 };
/** Client processes still running (killed at the end of their scenario). */
const children = new Set();

function metric(name, text) {
  const line = `METRIC ${name} ${text}`;
  console.log(line);
  fs.appendFileSync(path.join(OUT_DIR, "metrics.txt"), `${line}\n`);
}

before(async () => {
  assert.ok(fs.existsSync(PYTHON), `no ${PYTHON}: run bash tests/client/setup.sh (scripts/test.sh does)`);
  await dep.start();
  browser = await launchBrowser();
});

after(async () => {
  for (const c of callers) await c.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  await dep.stop();
});

async function open(label, kind) {
  const c = kind === "firefox" ? await Caller.openFirefox(label) : await Caller.open(browser, label);
  callers.push(c);
  return c;
}

/**
 * Starts the aiortc client; the invite link goes to its stdin (never its arguments). Resolves
 * with its JSON result; its stderr goes to out/<label>.aiortc.log.
 */
function runClient(label, link, { register = false, reorder = false, tamper = false, hold = 4 } = {}) {
  const args = [CLIENT, "--origin", dep.origin, "--frames", "30", "--timeout", "30", "--hold", String(hold)];
  if (register) args.push("--register");
  if (reorder) args.push("--reorder-fingerprints");
  if (tamper) args.push("--tamper-auth");
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ALISAY_")));
  const child = spawn(PYTHON, args, { env, stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  const logFile = fs.createWriteStream(path.join(OUT_DIR, `${label}.aiortc.log`));
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => logFile.write(redact(String(d))));
  child.stdin.end(`${link}\n`);
  const timer = setTimeout(() => child.kill("SIGKILL"), 75_000);
  return new Promise((resolve, reject) => {
    child.on("exit", (code, signal) => {
      children.delete(child);
      clearTimeout(timer);
      logFile.end();
      if (code !== 0) return reject(new Error(`the aiortc client exited ${code ?? signal}; see out/${label}.aiortc.log`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()));
      } catch (e) {
        reject(new Error(`the aiortc client printed no result: ${e.message}`));
      }
    });
  });
}

/** A test whose browser callers are closed at its end, with their state on failure. */
function scenario(name, fn, { timeout = 90_000 } = {}) {
  test(name, { timeout }, async () => {
    fs.appendFileSync(dep.alisayLog, `===== e2e ${new Date().toISOString()} scenario begins: ${name}\n`);
    try {
      await fn();
      for (const c of callers) assertNoTokenOnTheWire(c);
    } catch (e) {
      e.message = `${e.message}\n-- pages:\n${await describePages(callers)}\n-- logs: tests/e2e/out/`;
      redactError(e);
      throw e;
    } finally {
      for (const child of children) child.kill("SIGKILL");
      for (const c of callers) {
        await c.dumpDiagnostics("end");
        await c.close().catch(() => {});
      }
      callers = [];
    }
  });
}

/** The browser's side of an honest call with the client; returns the code it shows. */
async function browserInCall(c) {
  await waitState(c, "connected", 30_000);
  await waitRemoteVideo(c, 20_000);
  await assertFramesGrowing(c);
  const st = await assertRelayed(c);
  assert.equal(await c.page.evaluate(() => window.alisay.verification), "verified", `${c.label}: the client's descriptions verified`);
  await c.page.waitForSelector("#safety-code", { state: "visible", timeout: 15_000 });
  const code = (await c.page.textContent("#safety-code")).trim();
  assert.match(code, /^\d{3} \d{3}$/, `${c.label}: safety code shown as "123 456"`);
  return { code: code.replace(" ", ""), pair: `local=${st.localType} remote=${st.remoteType}` };
}

/** Checks the client's result of an honest call and the safety codes; counts the match. */
function checkHonest(label, r, shown) {
  assert.equal(r.admitted, true, `${label}: the client was admitted`);
  assert.equal(r.connected, true, `${label}: the client connected`);
  assert.ok(r.sentDescriptions >= 1 && r.verifiedDescriptions >= 1, `${label}: descriptions sent and verified by the client: ${JSON.stringify(r)}`);
  assert.equal(r.refusedDescriptions, 0, `${label}: the client refused none of the browser's descriptions`);
  assert.ok(r.fingerprintLinesSent >= 2, `${label}: aiortc sent several a=fingerprint lines (${r.fingerprintLinesSent})`);
  assert.ok(r.framesReceived >= 30, `${label}: the client received video (${r.framesReceived} frames)`);
  tally.calls += 1;
  if (r.safety === shown) tally.equal += 1;
  assert.equal(r.safety, shown, `${label}: the client's safety code equals the browser's`);
}

/** The client registers the room and waits; the browser opens the link and presses Start. */
async function clientFirst(tag, kind, opts = {}) {
  const token = newToken();
  const link = `${dep.origin}/#${token}`;
  const done = runClient(`${tag}-client`, link, { register: true, ...opts });
  done.catch(() => {}); // awaited by the scenario; not an unhandled rejection meanwhile
  const B = await open(`${tag}-${kind}`, kind);
  // The client's POST /rooms and join come first; the browser then finds the room registered.
  // (Python starting aiortc, PyAV and numpy takes a few seconds on a busy machine.)
  let joined = false;
  for (let i = 0; i < 300 && !joined; i++) {
    joined = fs.readFileSync(path.join(OUT_DIR, `${tag}-client.aiortc.log`), "utf8").includes("in: joined");
    if (!joined) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(joined, "the client joined within 30 s");
  await B.page.goto(link);
  await waitState(B, "ready");
  await B.page.click("#start");
  return { B, done };
}

/** The browser generates the room and waits; the client joins by the invite link. */
async function browserFirst(tag, kind, opts = {}) {
  const A = await open(`${tag}-${kind}`, kind);
  await A.page.goto(`${dep.origin}/`);
  await waitState(A, "idle");
  await A.page.click("#generate");
  await A.page.waitForFunction(() => /#[A-Za-z0-9_-]{43}$/.test(document.querySelector("#invite-link")?.value || ""), null, { timeout: 10_000 });
  await A.page.click("#start");
  await waitState(A, "waiting");
  const link = await A.page.inputValue("#invite-link");
  parseInvite(link, dep.origin); // checks its shape, remembers the token for the secrets checks
  const done = runClient(`${tag}-client`, link, opts);
  done.catch(() => {}); // awaited by the scenario
  return { B: A, done };
}

for (const [tag, kind, first, opts] of [
  ["client-c1", "chromium", "client", { reorder: true }],
  ["client-c2", "chromium", "browser", {}],
  ["client-c3", "chromium", "client", {}],
  ["client-c4", "chromium", "browser", { reorder: true }],
  ["client-f1", "firefox", "browser", { reorder: true }],
  ["client-f2", "firefox", "client", {}],
]) {
  const who = first === "client" ? `aiortc calls ${kind}` : `${kind} calls aiortc`;
  scenario(`${tag}. ${who}${opts.reorder ? " (fingerprints reordered)" : ""}: admitted, verified both ways, video both ways, equal safety codes`, async () => {
    const { B, done } = first === "client" ? await clientFirst(tag, kind, opts) : await browserFirst(tag, kind, opts);
    const [shown, r] = await Promise.all([browserInCall(B), done]);
    metric(`${tag.replace("-", "_")}`, `browser=${kind} first=${first} client_connect_ms=${r.connectMs} frames_received=${r.framesReceived} fingerprint_lines=${r.fingerprintLinesSent} polite=${r.polite} ${shown.pair} codes_equal=${r.safety === shown.code}`);
    checkHonest(tag, r, shown.code);
  });
}

scenario("client-t. a client that sends a wrong auth: Chromium refuses with the warning and sets nothing", async () => {
  const { B, done } = await clientFirst("client-t", "chromium", { tamper: true, hold: 0 });
  await waitState(B, "error", 30_000);
  assert.equal(await B.page.getAttribute("#error", "data-code"), "unverified");
  assert.ok((await B.page.textContent("#error")).trim().startsWith(WARNING), "the warning is shown");
  const r = await done;
  assert.equal(r.admitted, true, "the client was admitted");
  assert.equal(r.connected, false, "no connection with a tampered tag");
  assert.equal(r.peerLeft, true, "the browser left the room");
  const st = await callStats(B);
  assert.equal(st.pc, false, "the browser has no peer connection left");
});

test("safety codes matched on every honest call with the client", () => {
  metric("client_safety_codes_equal", `${tally.equal}/${tally.calls}`);
  assert.ok(tally.calls >= 6, `all honest calls ran (${tally.calls})`);
  assert.equal(tally.equal, tally.calls);
});
