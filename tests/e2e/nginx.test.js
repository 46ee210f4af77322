// The browser call THROUGH the host `alisay render` describes: a production alisay.yaml, the
// rendered nginx site over TLS (test CA trusted by Chromium's NSS database, leaf for
// DNS:localhost and IP:127.0.0.1) in front of `alisay serve`, and coturn from `alisay
// coturn-config` with TURN over UDP and over TLS (`turns:` with the same leaf). Relay-only calls
// over each TURN transport alone, checked with WebRTC's own statistics (`relayProtocol` of the
// selected local candidate). Run with `bash tests/e2e/run.sh nginx.test.js`.

import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { after, before, test } from "node:test";

import { launchBrowser } from "./lib/browser.js";
import { assertFramesGrowing, assertRelayed, callStats, joinByInvite, parseInvite, startAsNewUser, waitRemoteVideo } from "./lib/call.js";
import { OUT_DIR, knownRooms, knownSecrets } from "./lib/harness.js";
import { Scenarios, SiteDeployment, TURN_TLS, TURN_UDP, metric, request } from "./lib/nginx.js";
import { makeTestPki } from "./lib/tls.js";

const pki = makeTestPki();
const dep = new SiteDeployment({ name: "site", pki, port: 8767, httpsPort: 8443, httpPort: 8081 });
let browser;
const s = new Scenarios(dep, () => browser);

before(async () => {
  await dep.start();
  browser = await launchBrowser({ env: { ...process.env, HOME: pki.home } });
});

after(async () => {
  await s.closeAll();
  if (browser) await browser.close().catch(() => {});
  await dep.stop();
  pki.remove();
});

test("the stack runs in a loopback-only namespace from a production config", () => {
  assert.equal(process.env.ALISAY_E2E_IN_NETNS, "1", "run the suite with `bash tests/e2e/run.sh`, which creates the namespace");
  assert.deepEqual(Object.keys(os.networkInterfaces()), ["lo"], "only the loopback interface is up");
  for (const y of Object.values(dep.yamls)) assert.match(fs.readFileSync(y, "utf8"), /^mode: production$/m);
  // nginx runs exactly the rendered site (included verbatim by the test wrapper).
  const site = fs.readFileSync(dep.sitePath, "utf8");
  assert.ok(site.includes(`listen 127.0.0.1:${dep.httpsPort} ssl;`), "the site listens on the configured HTTPS port");
  assert.ok(site.includes(`server 127.0.0.1:${dep.port};`), "the site proxies to server.listen");
  assert.ok(site.includes(`ssl_certificate ${pki.leafPem};`), "the site serves the test leaf");
  assert.ok(fs.readFileSync(dep.nginxConf, "utf8").includes(`include ${dep.sitePath};`));
});

test("coturn runs `alisay coturn-config`'s output (TURN over UDP and TLS) plus exactly the two loopback test lines", () => {
  // Never hand the config text to an assertion: it holds the TURN secret.
  const conf = fs.readFileSync(dep.coturnConfPath, "utf8");
  const marker = "# ---- tests/e2e overrides";
  assert.ok(conf.includes(marker));
  const production = conf.slice(0, conf.indexOf(marker));
  assert.ok(production.startsWith(dep.renderedCoturn()), "the runtime config is the rendered one plus the secret");
  const settings = (text) => text.split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const lines = settings(production);
  for (const want of [`tls-listening-port=${dep.turnTlsPort}`, `cert=${pki.leafPem}`, `pkey=${pki.leafKey}`, "no-tlsv1", "no-tlsv1_1", "use-auth-secret", "no-cli"]) {
    assert.ok(lines.includes(want), `the production render has ${want}`);
  }
  assert.ok(!lines.includes("no-tls"), "TURN over TLS is not disabled");
  assert.deepEqual(lines.filter((l) => /^allow-loopback-peers|^allowed-peer-ip/.test(l)), [], "the production render allows no loopback peers");
  const overrides = settings(conf.slice(conf.indexOf(marker)));
  assert.deepEqual(overrides.filter((l) => /loopback|peer-ip/.test(l)), ["allow-loopback-peers", "allowed-peer-ip=127.0.0.1"]);
});

test("the site over TLS: trusted via the test CA only, HSTS, http redirects, /ws with a query string is 400", async () => {
  const home = await dep.get("/");
  assert.equal(home.status, 200);
  assert.match(home.headers["strict-transport-security"] ?? "", /^max-age=\d+$/);
  assert.match(home.body, /<html/i);
  // Without the test CA, the same request fails certificate verification: the TLS is real.
  await assert.rejects(request(`${dep.origin}/healthz`), /self[- ]signed|unable to (get|verify)|certificate/i);
  // Port 80's stand-in redirects to the HTTPS origin, path and query kept.
  const redirect = await request(`http://127.0.0.1:${dep.httpPort}/some/path?q=canary`, { headers: { Host: "localhost" } });
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.location, `${dep.origin}/some/path?q=canary`);
  // A WebSocket upgrade with a query string (where a room id could leak into logs) is refused.
  const upgrade = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", Origin: dep.origin };
  const withQuery = await dep.get("/ws?x", { headers: upgrade });
  assert.equal(withQuery.status, 400, "GET /ws?x through nginx");
  const plain = await dep.get("/ws", { headers: upgrade });
  assert.equal(plain.status, 101, "the same upgrade without the query string is accepted");
});

/** A relay-only call via the UI at the HTTPS origin, with the server handing out only `which`. */
async function relayCall(tag, which, wantUrl, wantProtocol) {
  await dep.restartServerWith(which);
  const A = await s.open(`${tag}-A`);
  const B = await s.open(`${tag}-B`);
  const link = await startAsNewUser(A, dep.origin, { mode: "relay" });
  const startToVideoMs = await joinByInvite(B, A, link, { mode: "relay" });
  for (const c of [A, B]) {
    await waitRemoteVideo(c);
    const urls = await c.page.evaluate(() => window.alisay.pc.getConfiguration().iceServers.flatMap((x) => [x.urls].flat()));
    assert.deepEqual(urls, [wantUrl], `${c.label}: the page got exactly the ${which} TURN URL`);
    const st = await assertRelayed(c);
    assert.equal(st.relayProtocol, wantProtocol, `${c.label}: relayProtocol of the selected local candidate`);
    const all = await c.page.evaluate(async () => {
      const out = [];
      (await window.alisay.pc.getStats()).forEach((x) => {
        if (x.type === "local-candidate") out.push(x.relayProtocol);
      });
      return [...new Set(out)];
    });
    assert.deepEqual(all, [wantProtocol], `${c.label}: every local relay candidate was allocated over ${wantProtocol}`);
    metric(`site_${which}_selected_pair_${c.label.slice(-1)}`, `local=${st.localType}/${st.relayProtocol} remote=${st.remoteType}`);
  }
  await Promise.all([assertFramesGrowing(A), assertFramesGrowing(B)]);
  const f = await Promise.all([callStats(A), callStats(B)]);
  metric(`site_${which}_start_to_video_ms`, `${startToVideoMs} frames_A=${f[0].framesDecoded} frames_B=${f[1].framesDecoded}`);
}

s.scenario("a. relay-only call through nginx over HTTPS, TURN over UDP only: relay/relay, relayProtocol udp", () => relayCall("site-udp", "udp", TURN_UDP, "udp"));

s.scenario("b. relay-only call through nginx over HTTPS, TURN over TLS only: relay/relay, relayProtocol tls", () => relayCall("site-tls", "tls", TURN_TLS, "tls"));

s.scenario("c. control: Chromium without the test CA refuses the site, and TURN over TLS refuses coturn's certificate even when the page's own HTTPS errors are ignored", async () => {
  // The server still hands out only the turns: URL (scenario b).
  const untrusting = await launchBrowser(); // the suite's HOME: its NSS database lacks the test CA
  try {
    const strict = await s.open("site-notrust-strict", { browser: untrusting });
    await assert.rejects(strict.page.goto(`${dep.origin}/`), /ERR_CERT_AUTHORITY_INVALID/, "the site is refused without the test CA");
    // ignoreHTTPSErrors covers the page and its WebSocket, never WebRTC's TURN over TLS
    // (TESTING.md): Relay-only cannot get a relay candidate, so the preflight fails.
    const lax = await s.open("site-notrust-A", { browser: untrusting, context: { ignoreHTTPSErrors: true } });
    await lax.page.goto(`${dep.origin}/`);
    await lax.page.click("#generate");
    await lax.page.waitForFunction(() => /#[A-Za-z0-9_-]{43}$/.test(document.querySelector("#invite-link")?.value || ""), null, { timeout: 10_000 });
    parseInvite(await lax.page.inputValue("#invite-link"), dep.origin);
    await lax.page.click("#start");
    await lax.page.waitForSelector('#error[data-code="relay-preflight-failed"]', { state: "visible", timeout: 20_000 });
    assert.equal(await lax.page.evaluate(() => window.__gumCalls), 0, "no camera/microphone request after a failed preflight");
  } finally {
    for (const c of [...s.callers]) await s.retire(c);
    await untrusting.close().catch(() => {});
  }
});

test("nginx's access log has paths but no query strings, room ids or tokens", async () => {
  await dep.nginx.stop(10_000); // flushes and closes the log
  const log = fs.readFileSync(dep.accessLog, "utf8");
  assert.ok(/"GET \/ws HTTP\/1\.1" 101 /.test(log), "the log has the calls' WebSocket upgrades");
  assert.ok(/"GET \/ws HTTP\/1\.1" 400 /.test(log), "the log has the refused /ws?x as /ws");
  assert.ok(/"POST \/rooms HTTP\/1\.1" 2\d\d /.test(log), "the log has the room registrations");
  assert.ok(!log.includes("?"), "no query string in the access log");
  assert.ok(!log.includes("canary"), "the redirected request's query is not logged");
  const { tokens, roomIds } = knownRooms();
  assert.ok(roomIds.length >= 2, `the calls used rooms (${roomIds.length})`);
  for (const secret of [...tokens, ...roomIds]) assert.ok(!log.includes(secret), "a room id or token is in the access log");
  metric("site_access_log_lines", String(log.trim().split("\n").length));
});

test("server, nginx and coturn logs never contain room tokens, room ids or the TURN secret", async () => {
  await dep.stopServer();
  const secrets = knownSecrets();
  assert.ok(secrets.length >= 5, `the suite saw tokens, room ids and the secret (${secrets.length})`);
  for (const f of [dep.alisayLog, dep.accessLog, dep.errorLog, dep.nginxLog, dep.coturnLog, dep.coturnStdoutLog]) {
    const text = fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
    const leaked = secrets.filter((x) => text.includes(x)).length;
    assert.equal(leaked, 0, `${f.slice(OUT_DIR.length + 1)} contains ${leaked} secret value(s)`);
  }
});
