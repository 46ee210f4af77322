// A real call through the deployed stack: two headless Chromium callers (Debian's
// /usr/bin/chromium, driven by playwright-core from tests/e2e) open the site the Ansible role
// deployed on the nspawn host, register a room, join it by the invite link, and must connect
// over TURN relays of the host's alisay-coturn (Relay-only mode), with video flowing.
//
// run.sh starts this with `nsenter -t <container PID 1> -n node tests/deploy/browser-call.mjs`:
// only the network namespace is the container's, so the browser reaches the deployed nginx and
// coturn on the container's loopback and nothing else (the container has no other network).
// It reuses the e2e suite's helpers (tests/e2e/lib): same flags, same DOM contract, same checks.
//
// Environment: ALISAY_DEPLOY_ORIGIN (e.g. https://localhost:8443), ALISAY_DEPLOY_CA (the test
// CA, PEM, trusted through an NSS database as in TESTING.md "TLS in tests").

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { Caller, launchBrowser } from "../e2e/lib/browser.js";
import { assertFramesGrowing, assertNoTokenOnTheWire, assertRelayed, joinByInvite, startAsNewUser } from "../e2e/lib/call.js";
import { OUT_DIR } from "../e2e/lib/harness.js";

const origin = process.env.ALISAY_DEPLOY_ORIGIN;
const ca = process.env.ALISAY_DEPLOY_CA;
if (!origin || !ca) throw new Error("set ALISAY_DEPLOY_ORIGIN and ALISAY_DEPLOY_CA");

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.error?.message || r.stderr || r.stdout}`);
}

// A HOME whose NSS database trusts the test CA: Chromium then trusts the site for real.
const home = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-deploy-browser-"));
const nssdb = path.join(home, ".pki/nssdb");
fs.mkdirSync(nssdb, { recursive: true });
run("certutil", ["-N", "-d", `sql:${nssdb}`, "--empty-password"]);
run("certutil", ["-A", "-d", `sql:${nssdb}`, "-n", "alisay-deploy-test-ca", "-t", "C,,", "-i", ca]);
fs.mkdirSync(OUT_DIR, { recursive: true });

const browser = await launchBrowser({ env: { ...process.env, HOME: home } });
let A;
let B;
try {
  A = await Caller.open(browser, "deploy-A");
  B = await Caller.open(browser, "deploy-B");
  const link = await startAsNewUser(A, origin, { mode: "relay" });
  const ms = await joinByInvite(B, A, link, { mode: "relay" });
  for (const c of [A, B]) {
    const s = await assertRelayed(c);
    await assertFramesGrowing(c);
    if (assertNoTokenOnTheWire(c) < 1) throw new Error(`${c.label}: no join frame was inspected`);
    console.log(`${c.label}: connected over TURN relays (${s.localType}/${s.remoteType})`);
  }
  console.log(`browser call through the deployed stack: remote video ${ms} ms after Start`);
} catch (e) {
  for (const c of [A, B]) if (c) await c.dumpDiagnostics("failure");
  console.error(`browser call failed (page logs: ${OUT_DIR}/deploy-*.console.log)`);
  throw e;
} finally {
  for (const c of [A, B]) if (c) await c.close();
  await browser.close();
  fs.rmSync(home, { recursive: true, force: true });
}
