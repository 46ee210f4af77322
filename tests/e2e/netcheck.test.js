// The network check a caller understands (public/js/netcheck.js, issue 13): the TURN relay is
// tried over UDP, TCP and TLS separately and the page says in plain words what works. Real
// coturn (TURN over UDP and TCP on 3478, TLS on 5349 with the test CA), the rendered nginx site
// on 443 in front of `alisay serve`, Debian's Chromium; the caller's network is shaped with
// nftables in run.sh's namespace:
//   C1 nothing dropped                     -> "Everything is fine: …"
//   C3 UDP dropped                         -> "Your network blocks UDP: the call will work, …",
//                                             and a call between two such callers connects
//                                             through the TCP or TLS relay
//   C4 everything dropped but TCP to 443   -> #error "Your network allows only web traffic; …"
//                                             with the help link, no camera request
// Each outcome: its sentence, axe-core clean, screenshots (out/screenshots/11-13-*), and no TURN
// allocation left behind by the check (coturn's relay sockets counted with ss).
// Run: bash tests/e2e/run.sh netcheck.test.js

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";

import { checkNetwork, serversFor, transportOf, verdictOf } from "../../public/js/netcheck.js";
import { seriousViolations } from "./lib/a11y.js";
import { launchBrowser } from "./lib/browser.js";
import { assertRelayed, callStats, joinByInvite, parseInvite, waitState } from "./lib/call.js";
import { newToken, pollUntil } from "./lib/harness.js";
import { Scenarios, SiteDeployment, TURN_TLS, TURN_UDP, metric } from "./lib/nginx.js";
import { makeTestPki } from "./lib/tls.js";
import { screenshots } from "./ux/report.js";

const TURN_TCP = "turn:127.0.0.1:3478?transport=tcp";
/** The nftables table that shapes the caller's network (this namespace only). */
const TABLE = "a13_netcheck";

/** The site on 443 (the web port C4 leaves open) and a server YAML offering all three TURN URLs. */
class NetcheckDeployment extends SiteDeployment {
  writeFiles() {
    super.writeFiles();
    const both = fs.readFileSync(this.yamls.both, "utf8");
    const tls = `    - "${TURN_TLS}"\n`;
    assert.ok(both.includes(`    - "${TURN_UDP}"\n`) && both.includes(tls), "the site YAML lists the UDP and TLS TURN URLs (lib/nginx.js changed?)");
    this.yamls.all = path.join(this.tmp, "alisay-all.yaml");
    fs.writeFileSync(this.yamls.all, both.replace(tls, `    - "${TURN_TCP}"\n${tls}`));
  }
}

const pki = makeTestPki();
const dep = new NetcheckDeployment({ name: "netcheck", pki, port: 8767, httpsPort: 443, httpPort: 8084 });
// The browser's Origin for port 443 has no port: public_origin must match it.
dep.origin = "https://localhost";
let browser;
const s = new Scenarios(dep, () => browser);

/**
 * The caller's network: `c1` (nothing dropped), `c3` (UDP dropped), `c4` (only TCP to 443).
 * Everything runs on one loopback here, so the server's own hops, which are not on any
 * caller's network, pass: nginx -> alisay, and coturn's relay to relay (UDP between two ports
 * of its relay range). Returns the rules.
 */
function shape(profile) {
  spawnSync("nft", ["delete", "table", "inet", TABLE], { encoding: "utf8", timeout: 10_000 });
  if (profile === "c1") return "";
  const relayToRelay = "    udp sport 49160-49200 udp dport 49160-49200 accept";
  const body =
    profile === "c3"
      ? [relayToRelay, "    meta l4proto udp counter drop"].join("\n")
      : ["    ct state established,related accept", `    tcp dport { 443, ${dep.port} } accept`, relayToRelay, "    counter drop"].join("\n");
  const rules = `table inet ${TABLE} {\n  chain output {\n    type filter hook output priority 0; policy accept;\n${body}\n  }\n}\n`;
  const r = spawnSync("nft", ["-f", "-"], { input: rules, encoding: "utf8", timeout: 10_000 });
  if (r.error) throw new Error(`cannot run nft (apt-get install nftables): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`nft refused the ${profile} rules: ${r.stderr}`);
  return rules;
}

/** Packets the shaping rules dropped so far. */
function dropped() {
  const r = spawnSync("nft", ["list", "table", "inet", TABLE], { encoding: "utf8", timeout: 10_000 });
  return [...(r.stdout ?? "").matchAll(/packets (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** coturn's relay sockets (allocations) right now: UDP sockets in the relay port range. */
function relaySockets() {
  const r = spawnSync("ss", ["-Hunap"], { encoding: "utf8", timeout: 10_000 });
  if (r.status !== 0) throw new Error(`ss failed: ${r.stderr}`);
  return r.stdout
    .split("\n")
    .filter((l) => /turnserver/.test(l))
    .map((l) => Number(/:(\d+)$/.exec(l.trim().split(/\s+/)[3] ?? "")?.[1]))
    .filter((port) => port >= 49160 && port <= 49200).length;
}

/** The visible text of an element ('' if hidden). */
const visibleText = (c, sel) => c.page.evaluate((x) => {
  const el = document.querySelector(x);
  return el && el.checkVisibility() ? el.textContent.trim().replace(/\s+/g, " ") : "";
}, sel);

/** Collects the page's own "network check:" console lines (verdict, transports, duration). */
function watchChecks(c) {
  const lines = [];
  c.page.on("console", (m) => {
    const t = m.text();
    if (t.includes("network check:")) lines.push(t);
  });
  return lines;
}

/** ms the page's check took, from its console line `… <n> ms`. */
function checkMs(lines) {
  const m = /(\d+) ms$/.exec(lines.at(-1) ?? "");
  assert.ok(m, `the page logged its network check (${JSON.stringify(lines)})`);
  return Number(m[1]);
}

/** axe-core: no serious or critical violation on the page as it is. */
async function axeClean(c, state) {
  const found = await seriousViolations(c);
  assert.deepEqual(found, [], `axe-core (${state}): serious/critical violations (details in out/${c.label}.console.log)`);
}

before(async () => {
  await dep.start();
  await dep.useServerConfig("all");
  browser = await launchBrowser({ env: { ...process.env, HOME: pki.home } });
});

after(async () => {
  shape("c1");
  await s.closeAll();
  if (browser) await browser.close().catch(() => {});
  await dep.stop();
  pki.remove();
});

test("the netcheck suite runs in the loopback-only namespace", () => {
  assert.equal(process.env.ALISAY_E2E_IN_NETNS, "1", "run with `bash tests/e2e/run.sh`, which creates the namespace");
});

test("verdicts and transports (netcheck.js under Node)", async () => {
  assert.equal(transportOf("turn:h:3478"), "udp", "turn: without transport is UDP (RFC 7065)");
  assert.equal(transportOf("turn:h:3478?transport=udp"), "udp");
  assert.equal(transportOf("TURN:h:3478?transport=TCP"), "tcp");
  assert.equal(transportOf("turns:h:443?transport=tcp"), "tls");
  assert.equal(transportOf("turns:h"), "tls");
  assert.equal(transportOf("stun:h:3478"), null);
  const servers = [{ urls: [TURN_UDP, TURN_TCP, TURN_TLS, "stun:x"], username: "u", credential: "c" }];
  assert.deepEqual(serversFor(servers, "tcp"), [{ urls: [TURN_TCP], username: "u", credential: "c" }]);
  assert.deepEqual(serversFor(servers, "tls"), [{ urls: [TURN_TLS], username: "u", credential: "c" }]);
  assert.deepEqual(serversFor([{ urls: TURN_UDP }], "tls"), []);
  const v = (udp, tcp, tls) => verdictOf({ udp, tcp, tls });
  assert.equal(v("ok", "skipped", "skipped"), "fine");
  assert.equal(v("failed", "ok", "failed"), "no-udp");
  assert.equal(v("failed", "absent", "ok"), "no-udp");
  assert.equal(v("absent", "ok", "absent"), "fine");
  assert.equal(v("failed", "failed", "failed"), "web-only");
  assert.equal(v("failed", "absent", "failed"), "web-only");
  assert.equal(v("failed", "absent", "absent"), "no-relay", "only UDP offered: nothing to say about web traffic");
  assert.equal(v("absent", "absent", "absent"), "none");
  const none = await checkNetwork([]);
  assert.equal(none.verdict, "none", "no TURN URL: nothing to try (and no RTCPeerConnection needed)");
});

s.scenario(
  "C1 (nothing dropped): 'Everything is fine', the check leaves no allocation behind",
  async () => {
    shape("c1");
    const A = await s.open("netcheck-c1");
    const lines = watchChecks(A);
    await A.page.goto(`${dep.origin}/#${newToken()}`);
    await waitState(A, "ready");
    await A.page.click("#start");
    await A.page.waitForSelector('#netcheck[data-verdict="fine"]', { state: "visible", timeout: 20_000 });
    assert.equal(await visibleText(A, "#netcheck-text"), "Everything is fine: your network reaches the call's relay server.");
    assert.match(await visibleText(A, "#netcheck-details"), /^Relay over UDP: works · TCP: (works|not needed) · TLS: (works|not needed)$/);
    await waitState(A, "waiting");
    assert.equal(await A.page.isVisible("#error"), false, "no error");
    const ms = checkMs(lines);
    // Every connection of the check is closed: coturn holds no relay socket for them.
    await pollUntil("coturn to hold no relay allocation after the check", async () => relaySockets() === 0, { timeoutMs: 5000, everyMs: 100 });
    await axeClean(A, "network check: fine");
    await screenshots(A, "11-netcheck-fine");
    metric(`netcheck_c1_ms=${ms}`, `verdict=fine ${lines.at(-1)}`);
  },
  { timeout: 60_000 },
);

s.scenario(
  "C3 (UDP dropped): 'Your network blocks UDP', and the call connects through the TCP or TLS relay",
  async () => {
    const rules = shape("c3");
    assert.match(rules, /udp/);
    const A = await s.open("netcheck-c3-A");
    const B = await s.open("netcheck-c3-B");
    const lines = watchChecks(A);
    await A.page.goto(`${dep.origin}/`);
    const link = await (async () => {
      await A.page.click("#generate");
      await A.page.waitForFunction(() => /#[A-Za-z0-9_-]{43}$/.test(document.querySelector("#invite-link")?.value || ""), null, { timeout: 10_000 });
      return A.page.inputValue("#invite-link");
    })();
    parseInvite(link, dep.origin);
    await A.page.click("#start");
    await A.page.waitForSelector('#netcheck[data-verdict="no-udp"]', { state: "visible", timeout: 20_000 });
    assert.equal(await visibleText(A, "#netcheck-text"), "Your network blocks UDP: the call will work, with a little more delay.");
    assert.equal(await visibleText(A, "#netcheck-details"), "Relay over UDP: no answer · TCP: works · TLS: works");
    await waitState(A, "waiting");
    assert.equal(await A.page.isVisible("#error"), false, "not an error: the call will work");
    const ms = checkMs(lines);
    assert.ok(dropped() > 0, "the rules dropped the UDP relay traffic");
    await pollUntil("coturn to hold no relay allocation after the check", async () => relaySockets() === 0, { timeoutMs: 5000, everyMs: 100 });
    await axeClean(A, "network check: no UDP");
    await screenshots(A, "12-netcheck-no-udp");
    // "The call will work": B (same network) joins; the relays are TCP or TLS.
    const setupMs = await joinByInvite(B, A, link, { timeoutMs: 30_000 });
    for (const c of [A, B]) {
      const st = await assertRelayed(c);
      assert.ok(["tcp", "tls"].includes(st.relayProtocol), `${c.label}: the relay is reached over TCP or TLS (got ${st.relayProtocol})`);
    }
    // The counter sees allocations: the call holds one relay socket per caller.
    assert.ok(relaySockets() >= 2, `coturn holds the call's relay allocations (${relaySockets()} relay sockets)`);
    const st = await callStats(B);
    metric(`netcheck_c3_ms=${ms}`, `verdict=no-udp call_setup_ms=${setupMs} relay=${st.relayProtocol} ${lines.at(-1)}`);
  },
  { timeout: 90_000 },
);

s.scenario(
  "C4 (only TCP 443): 'Your network allows only web traffic', a help link, no camera request",
  async () => {
    shape("c4");
    const A = await s.open("netcheck-c4");
    const lines = watchChecks(A);
    await A.page.goto(`${dep.origin}/#${newToken()}`);
    await waitState(A, "ready");
    await A.page.click("#start");
    await A.page.waitForSelector('#error[data-code="network-web-only"]', { state: "visible", timeout: 20_000 });
    const text = await visibleText(A, "#error");
    assert.match(text, /^Your network allows only web traffic, so the call cannot reach its relay server\. Ask your network's administrator /);
    assert.equal(await A.page.getAttribute("#netcheck", "data-verdict"), "web-only");
    assert.equal(await visibleText(A, "#netcheck-details"), "Relay over UDP: no answer · TCP: no answer · TLS: no answer");
    assert.equal(await A.page.getAttribute("#status", "data-state"), "error", "no spinner: the start ended");
    assert.equal(await A.page.isVisible("#error-help"), true, "the help link is shown");
    assert.equal(await A.page.getAttribute("#error-help", "href"), "/network-help.html#web-only");
    assert.equal(await A.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request when the call cannot work");
    assert.equal(await A.page.isVisible("#start"), true, "Start is offered again");
    const ms = checkMs(lines);
    assert.ok(dropped() > 0, "the rules dropped the relay traffic");
    await pollUntil("coturn to hold no relay allocation after the check", async () => relaySockets() === 0, { timeoutMs: 5000, everyMs: 100 });
    await axeClean(A, "network check: web only");
    await screenshots(A, "13-netcheck-web-only");
    // The help page comes through the web port too, and says what to tell whom.
    await A.page.click("#error-help");
    await A.page.waitForURL(/\/network-help\.html#web-only$/);
    assert.match(await visibleText(A, "h2#web-only"), /^Your network allows only web traffic$/);
    assert.match(await visibleText(A, "main"), /TURN over TLS on TCP port 443/);
    await axeClean(A, "help page: web-only network");
    metric(`netcheck_c4_ms=${ms}`, `verdict=web-only ${lines.at(-1)}`);
  },
  { timeout: 60_000 },
);

s.scenario(
  "C4 in Auto mode: a call that cannot connect says why (the network check again), not a spinner",
  async () => {
    shape("c4");
    const A = await s.open("netcheck-c4-auto-A");
    const B = await s.open("netcheck-c4-auto-B");
    const token = newToken();
    for (const c of [A, B]) {
      await c.page.goto(`${dep.origin}/#${token}`);
      await waitState(c, "ready");
      await c.page.check('input[name="mode"][value="auto"]');
      await c.page.click("#start");
    }
    // Auto does not stop at the check (a direct path might work)...
    for (const c of [A, B]) await waitState(c, "connecting", 20_000);
    // ...but nothing gets through: once the call has not connected for 15 s, the page checks the
    // network again and says why, while it keeps trying.
    for (const c of [A, B]) {
      await c.page.waitForSelector('#error[data-code="network-web-only"]', { state: "visible", timeout: 40_000 });
      assert.match(await visibleText(c, "#error"), /^Your network allows only web traffic/);
      assert.equal(await c.page.isVisible("#error-help"), true, `${c.label}: the help link is shown`);
      assert.equal(await c.page.getAttribute("#netcheck", "data-trouble"), "true");
      assert.notEqual(await c.page.getAttribute("#status", "data-state"), "connected");
    }
    await axeClean(A, "a call that cannot connect: web only");
    // The caller can still hang up.
    await A.page.click("#hangup");
    await waitState(A, "ended");
  },
  { timeout: 90_000 },
);
