// Issue 17's acceptance in the network lab: Relay-only calls to a server behind 1:1 NAT.
//
// The server host (nginx, `alisay serve` and coturn, all from `alisay render` of a production
// config, TLS with a test CA) sits on a private address behind a 1:1 NAT router that does not
// hairpin, as on most cloud VMs; two Chromium callers sit behind home NATs (topology.mjs).
// The run proves, against the real programs:
//   1. the production render admits exactly one private peer (the derived relay address) and
//      none of the lab's documentation ranges; the lab's config adds only those allowances;
//   2. negative control: coturn with the derived allowance removed from the render (the
//      render before issue 17): `alisay probe`'s relay-to-relay check FAILS and a Relay-only
//      call does not connect;
//   3. with the render as it is: the probe's relay-to-relay check passes, turnutils_uclient
//      relays between two allocations, a UDP service on the host's private (and public)
//      address stays unreachable through TURN (the rendered nftables table drops it), and a
//      Relay-only call connects with both selected pairs relay-relay;
//   4. ten consecutive ICE restarts by one caller leave it able to allocate on every TURN URL
//      (no 486 Allocation Quota Reached).
// Numbers go to tests/lab/out/results.json and to stdout as `METRIC name value` lines.
//
// Run it with tests/lab/run.sh (root; it cleans up namespaces even after a crash).

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Caller, launchBrowser } from "../e2e/lib/browser.js";
import { assertRelayed, callStats, describePages, joinByInvite, startAsNewUser, waitState } from "../e2e/lib/call.js";
import { Proc, alisayEnv, rememberSecret, redact, sleep } from "../e2e/lib/harness.js";
import { makeTestPki } from "../e2e/lib/tls.js";
import { build, destroy, inNs, ns, run } from "./netns.mjs";
import { ALISAY, OUT, ServerStack, TURN_PORT, alisay, labYaml } from "./stack.mjs";
import { PREFIX, s2TwoHomes } from "./topology.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** A UDP service of the host's own on its private address (must stay out of TURN's reach). */
const HOST_SERVICE_PORT = 9999;
/** How long the negative control waits for a call that must not connect. */
const NEGATIVE_WAIT_MS = 15_000;
const RESTARTS = 10;
/** A public address outside every denied range, for the production render of the same host. */
const PRODUCTION_PUBLIC = "81.2.69.142";

fs.mkdirSync(OUT, { recursive: true });
const results = { topology: null, startedAt: new Date().toISOString() };
const t0 = Date.now();
const log = (line) => {
  const text = `[lab ${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`;
  console.log(redact(text));
  fs.appendFileSync(path.join(OUT, "lab.log"), `${redact(text)}\n`);
};
const metric = (name, value) => {
  results[name] = value;
  console.log(`METRIC ${name} ${typeof value === "object" ? JSON.stringify(value) : value}`);
};

/** TURN REST credentials for our own tools (never on a command line but the ephemeral ones). */
function credentials(secret) {
  const username = `${Math.floor(Date.now() / 1000) + 600}:lab-${crypto.randomBytes(6).toString("hex")}`;
  const credential = crypto.createHmac("sha1", secret).update(username).digest("base64");
  return { username, credential };
}

/** `(sent, received)` of turnutils_uclient run from namespace `from`; `peer` null = `-y`. */
async function uclient(from, secret, peer, port = HOST_SERVICE_PORT) {
  const c = credentials(secret);
  const args = ["-n", "3", "-m", "1", "-c", "-X", "-u", c.username, "-w", c.credential];
  if (peer) args.push("-e", peer, "-r", String(port));
  else args.push("-y");
  const [cmd, nsArgs] = inNs(from, "timeout", "20", "turnutils_uclient", ...args, topo.server.public);
  const out = await new Promise((resolve) => {
    const child = spawn(cmd, nsArgs, { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    child.stdout.on("data", (d) => (text += d));
    child.stderr.on("data", (d) => (text += d));
    child.on("close", () => resolve(text));
  });
  const line = out.split("\n").reverse().find((l) => l.includes("tot_send_msgs="));
  if (!line) throw new Error(`turnutils_uclient printed no totals:\n${redact(out)}`);
  const num = (k) => Number(line.split(k)[1].match(/\d+/)[0]);
  return { sent: num("tot_send_msgs="), received: num("tot_recv_msgs=") };
}

/** Runs `alisay probe` from a caller's namespace; returns the relay-to-relay line and exit code. */
function probe(from, secretPath, caPem) {
  const t = Date.now();
  const [cmd, args] = inNs(from, ALISAY, "probe", `https://${topo.server.public}`, "--ca-file", caPem, "--no-join", "--turn-secret-file", secretPath, "--turn", `turn:${topo.server.public}:${TURN_PORT}?transport=udp`, "--timeout", "3s");
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000, env: alisayEnv() });
  const out = `${r.stdout}${r.stderr}`;
  fs.appendFileSync(path.join(OUT, "probe.log"), `\n==== alisay probe from ${from} (exit ${r.status})\n${redact(out)}`);
  const line = out.split("\n").find((l) => /^(PASS|FAIL|SKIP)\s+turn-relay-to-relay /.test(l));
  if (!line) throw new Error(`alisay probe printed no turn-relay-to-relay line (exit ${r.status}):\n${redact(out)}`);
  return { status: line.slice(0, 4), line: line.trim(), exit: r.status, ms: Date.now() - t };
}

/**
 * Allocations coturn holds right now, per TURN username, from its verbose log (the lab adds
 * `verbose` to the runtime config: a logging line only). A session counts from its successful
 * ALLOCATE until coturn logs it closed.
 */
function allocationsHeld(logPath) {
  const live = new Map(); // session id -> username
  for (const line of fs.readFileSync(logPath, "utf8").split("\n")) {
    const ok = /session (\d+): realm <[^>]*> user <([^>]*)>: incoming packet ALLOCATE processed, success/.exec(line);
    if (ok) live.set(ok[1], ok[2]);
    const closed = /session (\d+): closed/.exec(line);
    if (closed) live.delete(closed[1]);
  }
  const perUser = {};
  for (const user of live.values()) perUser[user] = (perUser[user] ?? 0) + 1;
  return perUser;
}

/** Lines of coturn's log mentioning a 486 answer. */
function quota486(logPath) {
  return fs.readFileSync(logPath, "utf8").split("\n").filter((l) => /\b486\b|Quota Reached/i.test(l));
}

/**
 * In the page: a relay-only gathering with the call's own ICE servers (the caller's current
 * credentials): which TURN transports gave a relay candidate, and the ICE candidate errors
 * (a 486 would be the quota). Chromium reports no URL for a candidate, so each URL is known
 * by its transport (udp, tcp, tls), one URL per transport here.
 */
async function allocateCheck(c) {
  return c.page.evaluate(async () => {
    const servers = window.alisay.pc.getConfiguration().iceServers;
    const urls = servers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    const pc = new RTCPeerConnection({ iceServers: servers, iceTransportPolicy: "relay" });
    const relayed = new Set();
    const errors = [];
    pc.onicecandidateerror = (e) => errors.push(`${e.url} ${e.errorCode} ${e.errorText}`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, 8000);
      pc.onicecandidate = (e) => {
        if (!e.candidate) {
          clearTimeout(timer);
          resolve();
        } else {
          // The TURN transport of a relay candidate (Chromium leaves it unset for UDP).
          if (/ typ relay/.test(e.candidate.candidate)) relayed.add(e.candidate.relayProtocol || "udp");
        }
      };
      pc.createDataChannel("allocate-check");
      pc.createOffer().then((o) => pc.setLocalDescription(o));
    });
    pc.close();
    // What each URL's allocation shows up as: its transport to the TURN server.
    const wanted = urls.map((u) => (u.startsWith("turns:") ? "tls" : /transport=tcp/.test(u) ? "tcp" : "udp"));
    return { urls, wanted: [...new Set(wanted)].sort(), relayed: [...relayed].sort(), errors };
  });
}

const ufragOf = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp ?? "")?.[1] ?? null;

/**
 * One ICE restart by `c`'s client, through its own restart path (in place, or a new
 * connection once the old one holds two ICE generations); resolves when the connection it
 * has then has new ICE credentials on both sides and ICE is connected again. Returns the
 * milliseconds it took.
 */
async function iceRestart(c) {
  const before = await c.page.evaluate(() => ({ local: window.alisay.pc.localDescription.sdp, remote: window.alisay.pc.remoteDescription.sdp }));
  const t = Date.now();
  await c.page.evaluate(() => window.alisay.restartIce());
  await c.page.waitForFunction(
    ([l, r]) => {
      const pc = window.alisay?.pc;
      const u = (sdp) => /a=ice-ufrag:(\S+)/.exec(sdp ?? "")?.[1] ?? null;
      return pc && pc.signalingState === "stable" && u(pc.localDescription?.sdp) !== l && u(pc.remoteDescription?.sdp) !== r && ["connected", "completed"].includes(pc.iceConnectionState);
    },
    [ufragOf(before.local), ufragOf(before.remote)],
    { timeout: 15_000, polling: 50 },
  );
  return Date.now() - t;
}

/** Opens A and B, A starts, B joins; in the negative control expects no connection. */
async function call(browsers, label, { expectConnected }) {
  const A = await Caller.open(browsers.c1, `lab-${label}-A`);
  const B = await Caller.open(browsers.c2, `lab-${label}-B`);
  const origin = `https://${topo.server.public}`;
  try {
    const link = await startAsNewUser(A, origin);
    if (!expectConnected) {
      await B.page.goto(link);
      await waitState(B, "ready");
      await B.page.click("#start");
      const t = Date.now();
      let connected = false;
      while (Date.now() - t < NEGATIVE_WAIT_MS && !connected) {
        const [a, b] = [await callStats(A), await callStats(B)];
        connected = a.connectionState === "connected" || b.connectionState === "connected";
        await sleep(250);
      }
      const states = [await callStats(A), await callStats(B)].map((s) => s.connectionState);
      return { A, B, connected, states };
    }
    const ms = await joinByInvite(B, A, link, { timeoutMs: 20_000 });
    const a = await assertRelayed(A);
    const b = await assertRelayed(B);
    return { A, B, connected: true, ms, pairs: [a, b] };
  } catch (e) {
    throw new Error(`${e.message}\n${await describePages([A, B])}`);
  }
}

const topo = s2TwoHomes();
results.topology = topo.name;

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-lab-"));
  fs.chmodSync(tmp, 0o755); // nginx workers (nobody) enter it; secrets stay 0600
  const pki = makeTestPki({ san: `IP:${topo.server.public}` });
  const secret = crypto.randomBytes(32).toString("hex");
  rememberSecret(secret);
  const secretPath = path.join(tmp, "turn-secret");
  fs.writeFileSync(secretPath, secret, { mode: 0o600 });
  const server = topo.server;
  const production = path.join(tmp, "alisay-production.yaml");
  // The same host with a real-world public address (the documentation ranges are denied in
  // production, so the lab's own address needs the lab's allowances to pass alisay check).
  fs.writeFileSync(production, labYaml({ tmp, pki, secretPath, server, labAllowances: false, publicIp: PRODUCTION_PUBLIC }));
  const stack = new ServerStack({ name: "S2", server, tmp, pki, secretPath });
  const procs = [];
  const browsers = {};
  try {
    // 1. The production render admits exactly the derived private relay address.
    const check = alisay(["check", "--config", production], "alisay check (production)");
    assert.match(check, /# TURN behind 1:1 NAT: peers see 81\.2\.69\.142 \(turn\.external_ip\); coturn relays from 10\.0\.0\.10/);
    assert.match(check, /# Derived allowance: allowed-peer-ip=10\.0\.0\.10 \(that exact address only/);
    const prodDir = path.join(tmp, "render-production");
    alisay(["render", "--config", production, "--out", prodDir], "alisay render (production)");
    const prodConf = fs.readFileSync(path.join(prodDir, "coturn/turnserver.conf"), "utf8");
    const allowedIn = (conf) => conf.split("\n").filter((l) => l.startsWith("allowed-peer-ip="));
    assert.deepEqual(allowedIn(prodConf), [`allowed-peer-ip=${topo.server.private}-${topo.server.private}`], "production render: the only allowed peer is the derived private relay address");
    assert.ok(prodConf.includes(`\nexternal-ip=${PRODUCTION_PUBLIC}/${topo.server.private}\n`), prodConf);
    for (const range of ["192.0.2.", "198.51.100.", "203.0.113."]) assert.ok(!allowedIn(prodConf).some((l) => l.includes(range)), `production render allows ${range}x`);
    stack.prepare(); // the lab's render and coturn runtime config
    fs.copyFileSync(stack.yaml, path.join(OUT, "alisay.yaml"));
    const labDir = stack.renderDir;
    const labConf = fs.readFileSync(path.join(labDir, "coturn/turnserver.conf"), "utf8");
    const extra = allowedIn(labConf).filter((l) => !allowedIn(prodConf).includes(l));
    assert.deepEqual(extra, ["allowed-peer-ip=192.0.2.0-192.0.2.255", "allowed-peer-ip=198.51.100.0-198.51.100.255", "allowed-peer-ip=203.0.113.0-203.0.113.255"], "the lab adds exactly the documentation ranges");
    const strip = (conf) => conf.split("\n").filter((l) => !l.startsWith("allowed-peer-ip=") && !l.startsWith("# ")).join("\n");
    assert.equal(strip(labConf), strip(prodConf).split(PRODUCTION_PUBLIC).join(topo.server.public), "the lab's coturn config is the production render plus its allowances");
    const nftFile = path.join(labDir, "nftables/alisay-coturn.nft");
    const nft = fs.readFileSync(nftFile, "utf8");
    assert.ok(nft.includes(`ip daddr ${topo.server.private} jump coturn_to_host`), nft);
    fs.copyFileSync(path.join(labDir, "coturn/turnserver.conf"), path.join(OUT, "turnserver.conf"));
    fs.copyFileSync(nftFile, path.join(OUT, "alisay-coturn.nft"));
    log("production render: only the derived allowance; the lab adds only the documentation ranges");

    // coturn's runtime config with the derived allowance removed (the render before issue 17).
    const withText = fs.readFileSync(stack.coturnConf, "utf8");
    const withoutText = withText
      .replace(`\nexternal-ip=${topo.server.public}/${topo.server.private}\n`, `\nexternal-ip=${topo.server.public}\n`)
      .replace(`\nallowed-peer-ip=${topo.server.private}-${topo.server.private}\n`, "\n");
    assert.notEqual(withoutText, withText);
    assert.ok(!withoutText.includes(`allowed-peer-ip=${topo.server.private}`) && !withoutText.includes(`/${topo.server.private}`));
    const runtimeWithout = path.join(stack.runtimeDir, "turnserver-without.conf");
    fs.writeFileSync(runtimeWithout, withoutText, { mode: 0o600 });

    // 2. The lab.
    build(topo);
    log(`built ${topo.name}: ${topo.nodes.map((n) => ns(n.name)).join(" ")}`);
    const srv = topo.server.ns;
    await stack.startSite();
    const service = new Proc("host UDP service", ...inNs(srv, "turnutils_peer", "-L", topo.server.private, "-p", String(HOST_SERVICE_PORT)), path.join(OUT, "host-service.log"));
    procs.push(service);

    for (const [key, name] of Object.entries(topo.callers)) {
      browsers[key] = await launchBrowser({ executablePath: path.join(HERE, "chromium-in-netns.sh"), env: { ...process.env, HOME: pki.home, LAB_NETNS: ns(name) }, resolve: [topo.server.public] });
    }
    log("browsers up in their callers' namespaces");

    // 3. Negative control: the render without the derived allowance.
    let coturn = await stack.startCoturn(runtimeWithout, "without-allowance");
    const probeWithout = probe(topo.callers.c1, secretPath, pki.caPem);
    log(`probe without the allowance: ${probeWithout.line} (exit ${probeWithout.exit})`);
    assert.equal(probeWithout.status, "FAIL", "the probe's relay-to-relay check must fail without the derived allowance");
    assert.notEqual(probeWithout.exit, 0, "a failed relay-to-relay check fails the probe");
    const neg = await call(browsers, "without-allowance", { expectConnected: false });
    log(`Relay-only call without the allowance: connected=${neg.connected} after ${NEGATIVE_WAIT_MS} ms (states ${neg.states})`);
    assert.equal(neg.connected, false, "without the derived allowance a Relay-only call must not connect (negative control)");
    await neg.A.close();
    await neg.B.close();
    metric("negative_control", { probe: probeWithout.line, callConnected: neg.connected, waitedMs: NEGATIVE_WAIT_MS });
    await coturn.stop();

    // 4. The render as it is.
    coturn = await stack.startCoturn();
    const coturnLog = coturn.logPath;
    const probeWith = probe(topo.callers.c1, secretPath, pki.caPem);
    log(`probe with the render: ${probeWith.line} (exit ${probeWith.exit}; other lines fail only on the lab's documentation-range allowances)`);
    assert.equal(probeWith.status, "PASS", "the probe's relay-to-relay check must pass with the render");
    metric("probe_relay_to_relay", { without: probeWithout.status, with: probeWith.status, withMs: probeWith.ms });

    const [yRelay, toPrivate, toPublic] = await Promise.all([
      uclient(topo.callers.c1, secret, null),
      uclient(topo.callers.c1, secret, topo.server.private),
      uclient(topo.callers.c2, secret, topo.server.public),
    ]);
    assert.ok(yRelay.received > 0, `turnutils_uclient -y (two allocations relaying to each other) received nothing: ${JSON.stringify(yRelay)}`);
    const counter = run(...inNs(srv, "nft", "list", "chain", "inet", "alisay_coturn", "coturn_to_host")).stdout;
    const dropped = Number(/counter packets (\d+)/.exec(counter)?.[1] ?? -1);
    log(`relay between allocations ${yRelay.received}/${yRelay.sent}; host service via ${topo.server.private}: ${toPrivate.received}/${toPrivate.sent}, via ${topo.server.public}: ${toPublic.received}/${toPublic.sent}; table dropped ${dropped}`);
    assert.equal(toPrivate.sent, 3);
    assert.equal(toPrivate.received, 0, "a UDP service on the host's private address answered through TURN");
    assert.equal(toPublic.received, 0, "a UDP service on the host answered through TURN via the public address");
    assert.ok(dropped > 0, `the nftables table dropped nothing:\n${counter}`);
    metric("host_service_through_turn", { private: `${toPrivate.received}/${toPrivate.sent}`, public: `${toPublic.received}/${toPublic.sent}`, dropped, relayBetweenAllocations: `${yRelay.received}/${yRelay.sent}` });

    const pos = await call(browsers, "rendered", { expectConnected: true });
    log(`Relay-only call: connected, ${pos.ms} ms from the second Start to remote video; pairs ${pos.pairs.map((p) => `${p.localType}-${p.remoteType}/${p.relayProtocol ?? p.localProtocol}`).join(", ")}`);
    metric("relay_only_connect_ms", pos.ms);
    metric("selected_pairs", pos.pairs.map((p) => ({ local: p.localType, remote: p.remoteType, relayProtocol: p.relayProtocol })));

    // 5. Ten consecutive ICE restarts by one caller, then it must still allocate.
    const restartMs = [];
    const before = await allocateCheck(pos.B);
    log(`before the restarts B allocates over ${before.relayed.join("+")} (of ${before.wanted.join("+")})`);
    const gap = Number(process.env.LAB_RESTART_GAP_MS ?? 0);
    // The callers' TURN usernames (`<expiry>:<16 hex>`, issued by alisay serve), not our tools'.
    const callersHeld = () => Object.entries(allocationsHeld(coturnLog)).filter(([u]) => /^\d+:[0-9a-f]{16}$/.test(u)).map(([, n]) => n);
    const heldBefore = callersHeld();
    let maxHeld = Math.max(0, ...heldBefore);
    log(`allocations held per caller username before the restarts: ${heldBefore.join(", ")}`);
    for (let i = 0; i < RESTARTS; i += 1) {
      restartMs.push(await iceRestart(pos.B));
      await sleep(gap);
      const held = callersHeld();
      maxHeld = Math.max(maxHeld, ...held);
      log(`after restart ${i + 1}: allocations held per caller username ${held.join(", ")}`);
    }
    log(`${RESTARTS} ICE restarts by B: ${restartMs.join(" ")} ms`);
    const alloc = await allocateCheck(pos.B);
    log(`after the restarts B allocates over ${alloc.relayed.join("+")} (of ${alloc.wanted.join("+")}); candidate errors: ${alloc.errors.join("; ") || "none"}`);
    assert.deepEqual(before.relayed, before.wanted, `before the restarts: a relay on every URL (errors: ${before.errors.join("; ")})`);
    assert.deepEqual(alloc.relayed, alloc.wanted, `after ${RESTARTS} ICE restarts a relay on every URL (errors: ${alloc.errors.join("; ")})`);
    assert.ok(!alloc.errors.some((e) => / 486 /.test(e)), alloc.errors.join("; "));
    await assertRelayed(pos.A);
    await assertRelayed(pos.B);
    const q = quota486(coturnLog);
    assert.deepEqual(q, [], `coturn answered 486:\n${q.join("\n")}`);
    metric("ice_restarts", { count: RESTARTS, ms: restartMs, allocatesAfter: alloc.relayed.join("+"), quota486: q.length });
    metric("allocations_held_per_caller", { before: Math.max(0, ...heldBefore), maxDuringRestarts: maxHeld, after: Math.max(0, ...callersHeld()), userQuota: 30, urls: alloc.urls.length });
    // The call's four ICE generations (generations.js) and the network check's gathering.
    assert.ok(maxHeld <= 5 * alloc.urls.length, `a caller held ${maxHeld} allocations: more than 5 gatherings of ${alloc.urls.length} URLs`);
    await pos.A.close();
    await pos.B.close();
  } finally {
    for (const b of Object.values(browsers)) await b.close().catch(() => {});
    for (const p of procs.reverse()) await p.stop(5000).catch(() => {});
    await stack.stop();
    destroy();
    pki.remove();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** docs/networks.md from this run's results (tests/lab/run.sh --docs copies it there). */
function networksMd(r) {
  const pair = (p) => `${p.local}-${p.remote} (TURN over ${p.relayProtocol ?? "?"})`;
  const held = r.allocations_held_per_caller;
  return `# Calls across networks: the network lab

Written by \`tests/lab/run.sh --docs\` from its last run (${r.startedAt.slice(0, 10)}; a shared
2-core machine, loaded by other test runs: read the times as an upper bound). Do not edit by
hand; run the lab again.

## The lab

Network namespaces (\`${PREFIX}*\`), joined by veths only among themselves: nothing is linked
to the machine's own network namespace and no route leaves the lab. The "public internet" is
made of the documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24); the lab's
config allows exactly those as TURN peers, the way the loopback tests allow 127.0.0.1, and the
run proves that the production render of the same host never contains them. nginx, \`alisay
serve\` and coturn (with its nftables table, in the cgroup the table names) run from \`alisay
render\` of a production config; the browsers are Debian's Chromium, one per caller
namespace, driven by Playwright.

\`\`\`text${topo.diagram}\`\`\`

What the pieces stand for:

| piece | stands for |
|---|---|
| S2: \`srv\` behind \`natgw\` | a cloud VM: private address on its interface, a public address mapped 1:1 by the provider, no hairpinning (a packet from the VM to its own public address is dropped) |
| C1: a caller behind \`homeN\` | a home router: NAT with \`masquerade\` (endpoint-independent mapping) |

## Results (${r.topology})

| what | result |
|---|---|
| Relay-only call, both callers C1, render as shipped | connected; ${(r.relay_only_connect_ms / 1000).toFixed(2)} s from the second Start to remote video; selected pairs: ${r.selected_pairs.map(pair).join(", ")} |
| the same call with the derived allowance removed from the render (negative control) | ${r.negative_control.callConnected ? "CONNECTED (the control failed)" : `no connection within ${r.negative_control.waitedMs / 1000} s`} |
| \`alisay probe\` \`turn-relay-to-relay\`, without / with the derived allowance | ${r.probe_relay_to_relay.without} / ${r.probe_relay_to_relay.with} (${r.probe_relay_to_relay.withMs} ms) |
| a UDP service on the server's private address, through TURN (via the private / the public address) | ${r.host_service_through_turn.private} / ${r.host_service_through_turn.public} datagrams echoed; the nftables table dropped ${r.host_service_through_turn.dropped} |
| two allocations relaying to each other (\`turnutils_uclient -y\`) | ${r.host_service_through_turn.relayBetweenAllocations} |
| ${r.ice_restarts.count} consecutive ICE restarts by one caller | every one reconnected (${r.ice_restarts.ms.map((ms) => (ms / 1000).toFixed(1)).join(", ")} s); afterwards it allocates over ${r.ice_restarts.allocatesAfter}; coturn answered 486 ${r.ice_restarts.quota486} times |
| TURN allocations held per caller username (${held.urls} TURN URLs) | ${held.before} before the restarts, at most ${held.maxDuringRestarts} during them (\`turn.user_quota\`: ${held.userQuota}) |
| the lab's wall time | ${r.lab_wall_s} s |

Before the client's allocation budget (\`public/js/generations.js\`, issue 17), the same ten
restarts (then \`RTCPeerConnection.restartIce()\` every time) were measured here holding 2 more
allocations per restart, none released: 18 per caller username after eight restarts, then
\`486 Allocation Quota Reached\` on every TURN URL and no relay candidate at all.
`;
}

main().then(
  () => {
    metric("lab_wall_s", ((Date.now() - t0) / 1000).toFixed(1));
    fs.writeFileSync(path.join(OUT, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
    fs.writeFileSync(path.join(OUT, "networks.md"), networksMd(results));
    log("PASS");
  },
  (e) => {
    log(`FAIL: ${e.stack || e}`);
    fs.writeFileSync(path.join(OUT, "results.json"), `${JSON.stringify({ ...results, error: redact(String(e.message)) }, null, 2)}\n`);
    process.exitCode = 1;
  },
);
