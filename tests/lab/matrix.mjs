// The lab's matrix (toward issue 13's table): every server setup (S1: public address on the
// interface; S2: behind 1:1 NAT without hairpin) x caller profile (C1 home NAT, C2 symmetric
// NAT, C3 UDP blocked, C5 one household) x mode (Relay-only, Auto), Chromium, from
// topology.mjs's `matrixTopology()`. For each call: connected or not, seconds from the second
// Start to remote video, and the selected candidate pairs; in Relay-only, every candidate
// either side received is a relay. Appends its table to tests/lab/out/networks.md and writes
// tests/lab/out/matrix.json. Run by tests/lab/run.sh after lab.mjs.

import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Caller, launchBrowser } from "../e2e/lib/browser.js";
import { assertRelayed, callStats, describePages, joinByInvite, startAsNewUser } from "../e2e/lib/call.js";
import { rememberSecret, redact } from "../e2e/lib/harness.js";
import { makeTestPki } from "../e2e/lib/tls.js";
import { build, destroy, ns } from "./netns.mjs";
import { OUT, ServerStack } from "./stack.mjs";
import { PROFILES, matrixTopology } from "./topology.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const topo = matrixTopology();
const MODES = { relay: "Relay-only", auto: "Auto" };
const t0 = Date.now();
const log = (line) => {
  const text = redact(`[matrix ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  console.log(text);
  fs.appendFileSync(path.join(OUT, "matrix.log"), `${text}\n`);
};

/** One call of `profile` on `setup` in `mode`; never throws (a failure is a result). */
async function oneCall(browsers, stack, setup, profile, mode) {
  const [a, b] = topo.pairs[profile];
  const label = `matrix-${setup}-${profile}-${mode}`;
  const A = await Caller.open(browsers[a], `${label}-A`);
  const B = await Caller.open(browsers[b], `${label}-B`);
  const row = { setup, profile, mode, connected: false };
  try {
    const link = await startAsNewUser(A, stack.origin, { mode });
    row.ms = await joinByInvite(B, A, link, { mode, timeoutMs: 20_000 });
    const stats = mode === "relay" ? [await assertRelayed(A), await assertRelayed(B)] : [await callStats(A), await callStats(B)];
    row.connected = true;
    row.pairs = stats.map((s) => ({ local: s.localType, remote: s.remoteType, relayProtocol: s.localType === "relay" ? s.relayProtocol : null, protocol: s.localProtocol }));
  } catch (e) {
    row.error = e.message.split("\n")[0];
    fs.appendFileSync(path.join(OUT, "matrix.log"), `${redact(e.message)}\n${redact(await describePages([A, B]))}\n`);
  } finally {
    await A.close();
    await B.close();
  }
  log(`${setup} ${profile} ${MODES[mode]}: ${row.connected ? `connected in ${row.ms} ms, pairs ${row.pairs.map((p) => `${p.local}-${p.remote}${p.relayProtocol ? `/${p.relayProtocol}` : ""}`).join(", ")}` : `NOT connected: ${row.error}`}`);
  return row;
}

function table(rows) {
  const pair = (p) => `${p.local}/${p.remote}${p.relayProtocol ? ` (TURN over ${p.relayProtocol})` : ` (${p.protocol})`}`;
  const lines = ["| server | caller profile | mode | connected | second Start to remote video | selected pair, A / B (local/remote type) |", "|---|---|---|---|---|---|"];
  for (const r of rows) {
    lines.push(`| ${r.setup} | ${r.profile} | ${MODES[r.mode]} | ${r.connected ? "yes" : `**no**: ${r.error}`} | ${r.connected ? `${(r.ms / 1000).toFixed(2)} s` : "-"} | ${r.connected ? r.pairs.map(pair).join(" / ") : "-"} |`);
  }
  return lines.join("\n");
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-lab-matrix-"));
  fs.chmodSync(tmp, 0o755);
  const servers = Object.values(topo.servers);
  const pki = makeTestPki({ san: servers.map((s) => `IP:${s.public}`).join(",") });
  const secret = crypto.randomBytes(32).toString("hex");
  rememberSecret(secret);
  const secretPath = path.join(tmp, "turn-secret");
  fs.writeFileSync(secretPath, secret, { mode: 0o600 });
  const stacks = {};
  const browsers = {};
  const rows = [];
  try {
    build(topo);
    log(`built ${topo.name}: ${topo.nodes.map((n) => ns(n.name)).join(" ")}`);
    for (const [setup, server] of Object.entries(topo.servers)) {
      stacks[setup] = new ServerStack({ name: setup, server, tmp, pki, secretPath });
      await stacks[setup].start();
    }
    for (const name of topo.callers) {
      browsers[name] = await launchBrowser({ executablePath: path.join(HERE, "chromium-in-netns.sh"), env: { ...process.env, HOME: pki.home, LAB_NETNS: ns(name) }, resolve: servers.map((s) => s.public) });
    }
    log("servers and browsers up");
    for (const setup of Object.keys(topo.servers)) {
      for (const profile of Object.keys(topo.pairs)) {
        for (const mode of Object.keys(MODES)) rows.push(await oneCall(browsers, stacks[setup], setup, profile, mode));
      }
    }
  } finally {
    for (const b of Object.values(browsers)) await b.close().catch(() => {});
    for (const s of Object.values(stacks)) await s.stop();
    destroy();
    pki.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  const wall = ((Date.now() - t0) / 1000).toFixed(1);
  fs.writeFileSync(path.join(OUT, "matrix.json"), `${JSON.stringify({ rows, wallS: wall }, null, 2)}\n`);
  const md = `
## Every server setup x caller profile x mode (Chromium)

\`\`\`text${topo.diagram}\`\`\`

| profile | stands for |
|---|---|
${Object.entries(PROFILES).map(([k, v]) => `| ${k} | ${v.what} |`).join("\n")}
${Object.entries(topo.servers).map(([k, v]) => `| ${k} | ${v.what} |`).join("\n")}

${table(rows)}

In Relay-only every candidate either side received was a relay candidate (checked in each
call). The matrix's wall time: ${wall} s (the servers, six browsers and ${rows.length} calls,
one after another).
`;
  fs.appendFileSync(path.join(OUT, "networks.md"), md);
  console.log(`METRIC matrix_wall_s ${wall}`);
  const failed = rows.filter((r) => !r.connected);
  assert.deepEqual(failed.map((r) => `${r.setup} ${r.profile} ${r.mode}`), [], "every call of the matrix connects");
}

main().then(
  () => log("PASS"),
  (e) => {
    log(`FAIL: ${e.stack || e}`);
    process.exitCode = 1;
  },
);
