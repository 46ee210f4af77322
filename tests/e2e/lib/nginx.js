// The host as `alisay render` describes it, minus systemd: the rendered nginx site over TLS in
// front of `alisay serve`, and coturn from `alisay coturn-config` with TURN over UDP and TLS,
// all on loopback in the suite's namespace. The config is a production one (`mode:
// production`); only paths, ports and the test certificate differ from a real host.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import https from "node:https";
import path from "node:path";
import { test } from "node:test";

import { Caller } from "./browser.js";
import { assertNoTokenOnTheWire, describePages } from "./call.js";
import { ALISAY_BIN, alisayEnv, Deployment, OUT_DIR, pollUntil, Proc, redact, redactError, tcpOpen } from "./harness.js";

/** Debian's nginx; `ALISAY_E2E_NGINX` overrides. */
export const NGINX = process.env.ALISAY_E2E_NGINX || "/usr/sbin/nginx";

/** The TURN URLs a test config can hand to browsers (coturn listens on both). */
export const TURN_UDP = "turn:127.0.0.1:3478?transport=udp";
export const TURN_TLS = "turns:localhost:5349?transport=tcp";

/**
 * One HTTPS (or HTTP) request with the test CA as the only trust anchor. Never follows
 * redirects. Resolves `{status, headers, body}`.
 * @param {string} url
 * @param {{ca?: string, method?: string, headers?: Record<string, string>, body?: string,
 *   timeoutMs?: number}} [o] `ca`: a PEM file path
 */
export function request(url, { ca, method = "GET", headers = {}, body, timeoutMs = 5000 } = {}) {
  const u = new URL(url);
  const mod = u.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(
      u,
      { method, headers, ca: ca ? fs.readFileSync(ca) : undefined, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${method} ${u.pathname}: no answer within ${timeoutMs} ms`)));
    req.on("error", reject);
    // A 101 answer (an accepted WebSocket upgrade) ends here: report it and drop the socket.
    req.on("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: "" });
    });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * Production `alisay.yaml` for a loopback host: `public_origin https://localhost:<httpsPort>`,
 * nginx on 127.0.0.1 with the test leaf, TURN over UDP and TLS with the same leaf, the secret in
 * a 0600 file. `turnUrls` picks what browsers are given.
 */
function productionYaml(d, turnUrls) {
  const tls = d.pki;
  return `# Written by tests/e2e (loopback-only network namespace): a production config whose
# paths, ports and certificates are the test's own.
mode: production
public_origin: "${d.origin}"
server:
  listen: "127.0.0.1:${d.port}"
  shutdown_grace: 2s
signaling:
  heartbeat_interval: 5s
turn:
  urls:
${turnUrls.map((u) => `    - "${u}"`).join("\n")}
  secret_file: "${d.secretPath}"
  credential_ttl: ${d.credentialTtl}
  listening_port: ${d.turnPort}
  tls_listening_port: ${d.turnTlsPort}
  min_port: 49160
  max_port: 49200
  tls_cert: "${tls.leafPem}"
  tls_key: "${tls.leafKey}"
nginx:
  listen_address: "127.0.0.1"
  https_port: ${d.httpsPort}
  http_port: ${d.httpPort}
  tls_cert: "${tls.leafPem}"
  tls_key: "${tls.leafKey}"
  acme_root: "${path.join(d.tmp, "acme")}"
  rooms_rate: "60r/m"
  access_log: "${d.accessLog}"
  error_log: "${d.errorLog}"
paths:
  state_dir: "${d.tmp}"
logging:
  level: debug
`;
}

/**
 * The rendered site (nginx, TLS) in front of `alisay serve`, and coturn with TURN over UDP and
 * TLS. `origin` is the public HTTPS origin (through nginx); `backendOrigin` is alisay itself.
 */
export class SiteDeployment extends Deployment {
  /**
   * @param {object} o
   * @param {string} o.name file-name-safe label for logs (`alisay-<name>.log`, `nginx-<name>.*`)
   * @param {ReturnType<import("./tls.js").makeTestPki>} o.pki the test CA and leaf
   * @param {number} o.port alisay's port on 127.0.0.1
   * @param {number} o.httpsPort nginx's HTTPS port on 127.0.0.1
   * @param {number} o.httpPort nginx's HTTP port on 127.0.0.1
   * @param {string} [o.credentialTtl] `turn.credential_ttl` (production: at least 60s)
   */
  constructor({ name, pki, port, httpsPort, httpPort, credentialTtl = "10m" }) {
    super({ name, port, credentialTtl, turn: true });
    this.name = name;
    this.pki = pki;
    this.httpsPort = httpsPort;
    this.httpPort = httpPort;
    this.turnTlsPort = 5349;
    this.origin = `https://localhost:${httpsPort}`;
    this.backendOrigin = `http://127.0.0.1:${port}`;
    this.coturnLog = path.join(OUT_DIR, `coturn-${name}.log`);
    this.coturnStdoutLog = path.join(OUT_DIR, `coturn-${name}.stdout.log`);
    this.accessLog = path.join(OUT_DIR, `nginx-${name}.access.log`);
    this.errorLog = path.join(OUT_DIR, `nginx-${name}.error.log`);
    this.nginxLog = path.join(OUT_DIR, `nginx-${name}.log`);
    this.renderDir = path.join(this.tmp, "render");
    this.nginxConf = path.join(this.tmp, "nginx.conf");
    /** Server YAMLs by TURN choice: `both` (rendering, coturn-config), `udp`, `tls`. */
    this.yamls = { both: this.yamlPath, udp: path.join(this.tmp, "alisay-udp.yaml"), tls: path.join(this.tmp, "alisay-tls.yaml") };
    this.nginxStarts = 0;
  }

  writeFiles() {
    super.writeFiles(); // the secret (and a development YAML, replaced below)
    // nginx workers run as `nobody`: they must be able to enter the temp dir (secrets stay 0600).
    fs.chmodSync(this.tmp, 0o755);
    fs.mkdirSync(path.join(this.tmp, "acme/.well-known/acme-challenge"), { recursive: true });
    for (const [k, urls] of [["both", [TURN_UDP, TURN_TLS]], ["udp", [TURN_UDP]], ["tls", [TURN_TLS]]]) {
      fs.writeFileSync(this.yamls[k], productionYaml(this, urls));
    }
    fs.writeFileSync(this.alisayLog.replace(/\.log$/, ".yaml"), fs.readFileSync(this.yamlPath, "utf8").split(this.tmp).join("<tmp>"));
    // alisay checks the production config itself; `alisay render` writes the site.
    this.alisay(["check", "--config", this.yamlPath], "alisay check");
    this.alisay(["render", "--config", this.yamlPath, "--out", this.renderDir], "alisay render");
    this.sitePath = path.join(this.renderDir, "nginx/alisay.conf");
    const d = this.tmp;
    fs.writeFileSync(
      this.nginxConf,
      [
        "# tests/e2e wrapper: the rendered site inside a test http {} (TESTING.md).",
        "daemon off;",
        "worker_processes 1;",
        `pid ${d}/nginx.pid;`,
        `error_log ${this.nginxLog} notice;`,
        "events { worker_connections 512; }",
        "http {",
        `  client_body_temp_path ${d}/nginx-body;`,
        `  proxy_temp_path ${d}/nginx-proxy;`,
        `  fastcgi_temp_path ${d}/nginx-fcgi;`,
        `  uwsgi_temp_path ${d}/nginx-uwsgi;`,
        `  scgi_temp_path ${d}/nginx-scgi;`,
        "  access_log off;",
        `  include ${this.sitePath};`,
        "}",
        "",
      ].join("\n"),
    );
    this.nginxArgs = ["-p", d, "-c", this.nginxConf, "-e", this.nginxLog];
    const t = spawnSync(NGINX, ["-t", ...this.nginxArgs], { encoding: "utf8", timeout: 30_000 });
    if (t.error) throw new Error(`cannot run ${NGINX} (apt-get install nginx): ${t.error.message}`);
    if (t.status !== 0) throw new Error(`nginx -t refused the rendered site: ${redact(t.stderr)}`);
  }

  /** Runs an `alisay` subcommand to completion; throws with its (redacted) output on failure. */
  alisay(args, what) {
    const r = spawnSync(ALISAY_BIN, args, { encoding: "utf8", timeout: 30_000, env: alisayEnv() });
    if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${redact(r.stderr || r.stdout || r.error)}`);
    return r.stdout;
  }

  /** The secret-free coturn lines `alisay render` wrote (for comparing with the runtime copy). */
  renderedCoturn() {
    return fs.readFileSync(path.join(this.renderDir, "coturn/turnserver.conf"), "utf8");
  }

  async startCoturn() {
    await super.startCoturn();
    await pollUntil(`coturn to listen for TURN over TLS on 127.0.0.1:${this.turnTlsPort}`, async () => {
      if (!this.coturn.running) throw Object.assign(new Error(`coturn exited: ${JSON.stringify(this.coturn.exitStatus)}`), { fatal: true });
      return tcpOpen(this.turnTlsPort);
    }, { timeoutMs: 15_000, everyMs: 100 });
  }

  async startNginx() {
    this.nginxStarts += 1;
    this.nginx = new Proc(`nginx #${this.nginxStarts}`, NGINX, this.nginxArgs, this.nginxLog);
    const nginx = this.nginx;
    await pollUntil("nginx to answer /healthz over HTTPS", async () => {
      if (!nginx.running) throw Object.assign(new Error(`nginx exited: ${JSON.stringify(nginx.exitStatus)} (see out/${path.basename(this.nginxLog)})`), { fatal: true });
      return (await this.get("/healthz")).status === 200;
    }, { timeoutMs: 15_000, everyMs: 100 });
  }

  /**
   * `nginx -s reload` (as an operator runs it after `alisay render`): the master re-reads the
   * config, starts new workers and lets the old ones finish their connections.
   */
  reloadNginx() {
    const r = spawnSync(NGINX, [...this.nginxArgs, "-s", "reload"], { encoding: "utf8", timeout: 30_000 });
    if (r.status !== 0) throw new Error(`nginx -s reload failed (exit ${r.status}): ${r.stderr}`);
  }

  /** nginx's worker PIDs right now (children of the master). */
  nginxWorkers() {
    const master = this.nginx?.pid;
    if (!master) return [];
    const out = [];
    for (const pid of fs.readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === master) out.push(Number(pid));
      } catch {
        // gone
      }
    }
    return out.sort((a, b) => a - b);
  }

  /** A request to the public origin through nginx, trusting only the test CA. */
  get(pathAndQuery, o = {}) {
    return request(`${this.origin}${pathAndQuery}`, { ca: this.pki.caPem, ...o });
  }

  /** Switches `alisay serve` to the YAML with only `which` TURN URLs (`udp`, `tls`, `both`). */
  async restartServerWith(which) {
    await this.stopServer();
    this.serverConfigPath = this.yamls[which];
    await this.startServer();
  }

  /** Like {@link restartServerWith}, but only when the server runs another YAML. */
  async useServerConfig(which) {
    if (this.serverConfigPath !== this.yamls[which] || !this.server?.running) await this.restartServerWith(which);
  }

  /** SIGKILL to `alisay serve` (no shutdown at all); resolves once it is gone. */
  async killServer() {
    this.server.child.kill("SIGKILL");
    return this.server.exited;
  }

  async start() {
    this.writeFiles();
    this.writeCoturnConfig();
    await this.startCoturn();
    this.serverConfigPath = this.yamls.udp;
    await this.startServer();
    await this.startNginx();
  }

  async stop() {
    try {
      if (this.nginx) await this.nginx.stop(10_000);
    } finally {
      await super.stop();
    }
  }
}

/** Prints a measured number in one greppable line (no secrets), also to out/metrics.txt. */
export function metric(name, text = "") {
  const line = text ? `METRIC ${name} ${text}` : `METRIC ${name}`;
  console.log(line);
  fs.appendFileSync(path.join(OUT_DIR, "metrics.txt"), `${line}\n`);
}

/** The last `lines` lines of a log file, redacted (for failure messages). */
export function tail(file, lines = 25) {
  try {
    return redact(fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n"));
  } catch {
    return `(no ${path.basename(file)})`;
  }
}

/**
 * Scenario bookkeeping for the tests on the rendered host (the same conventions as
 * call.test.js): callers opened by a scenario are closed at its end, every page's traffic goes
 * through the "no token on the wire" check, and a failure message carries each page's state
 * and the end of the server's and nginx's logs.
 */
export class Scenarios {
  /**
   * @param {SiteDeployment} dep
   * @param {() => import("playwright-core").Browser} browser the browser new callers open in
   */
  constructor(dep, browser) {
    this.dep = dep;
    this.browser = browser;
    this.callers = [];
    this.wire = { framesWithRoomId: 0, errors: [] };
  }

  /**
   * A caller in a fresh context of `browser` (default: the suite's browser).
   * @param {string} label
   * @param {{browser?: import("playwright-core").Browser, context?: object, kind?: string}} [o]
   *     `kind: "firefox"`: a Firefox process of its own whose profile trusts the site's test CA
   */
  async open(label, { browser, context, kind = "chromium" } = {}) {
    const c = kind === "firefox" ? await Caller.openFirefox(label, { caPem: this.dep.pki?.caPem }) : await Caller.open(browser ?? this.browser(), label, context);
    this.callers.push(c);
    return c;
  }

  mark(text) {
    fs.appendFileSync(this.dep.alisayLog, `===== e2e ${new Date().toISOString()} ${text}\n`);
  }

  async retire(c) {
    const i = this.callers.indexOf(c);
    if (i >= 0) this.callers.splice(i, 1);
    await c.dumpDiagnostics("end");
    try {
      this.wire.framesWithRoomId += assertNoTokenOnTheWire(c);
    } catch (e) {
      this.wire.errors.push(e);
    }
    await c.close().catch(() => {});
  }

  async closeAll() {
    for (const c of this.callers.splice(0)) await c.close().catch(() => {});
  }

  /** Registers one scenario with node:test. */
  scenario(name, fn, { timeout = 90_000 } = {}) {
    test(name, { timeout }, async () => {
      this.mark(`scenario begins: ${name}`);
      this.wire = { framesWithRoomId: 0, errors: [] };
      try {
        await fn();
        for (const c of [...this.callers]) await this.retire(c);
        if (this.wire.errors.length) throw this.wire.errors[0];
        assert.ok(this.wire.framesWithRoomId > 0, "the wire check saw the join frames");
      } catch (e) {
        const pages = await describePages(this.callers);
        const d = this.dep;
        e.message = `${e.message}\n-- pages:\n${pages}\n-- end of out/${path.basename(d.alisayLog)}:\n${tail(d.alisayLog, 15)}\n-- end of out/${path.basename(d.errorLog)}:\n${tail(d.errorLog, 8)}\n-- logs: tests/e2e/out/`;
        redactError(e);
        throw e;
      } finally {
        this.mark(`scenario ends: ${name}`);
        for (const c of [...this.callers]) await this.retire(c);
      }
    });
  }
}
