// The real programs under test: coturn (`turnserver`) and `alisay serve`, started in the
// foreground in the test's loopback-only network namespace and stopped by PID.

import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** tests/e2e */
export const E2E_DIR = path.resolve(HERE, "..");
/** The repository root. */
export const ROOT = path.resolve(E2E_DIR, "../..");
/** Logs and diagnostics (ignored by git). */
export const OUT_DIR = path.join(E2E_DIR, "out");
/** The binary under test; `ALISAY_BIN` overrides. */
export const ALISAY_BIN = process.env.ALISAY_BIN ? path.resolve(process.env.ALISAY_BIN) : path.join(ROOT, "target/release/alisay");
export const TURNSERVER = process.env.ALISAY_E2E_TURNSERVER || "/usr/bin/turnserver";

fs.mkdirSync(OUT_DIR, { recursive: true });

/** Secrets seen in this process (tokens, room ids, TURN secret), removed from every log line. */
const secrets = new Set();

/** Registers a secret string so that {@link redact} removes it. */
export function rememberSecret(s) {
  if (s) secrets.add(s);
}

/** Room tokens seen so far: they must never reach the server (SPEC §2). */
const tokens = new Set();
/** Room ids seen so far: the server sees them, but never in a URL. */
const roomIds = new Set();

/** Registers a room token (and its room id) seen in the test. */
export function rememberToken(token) {
  tokens.add(token);
  roomIds.add(roomIdOf(token));
  rememberSecret(token);
  rememberSecret(roomIdOf(token));
}

/** The tokens and room ids registered so far. */
export function knownRooms() {
  return { tokens: [...tokens], roomIds: [...roomIds] };
}

/** Every secret registered so far (for the "logs never contain them" test). */
export function knownSecrets() {
  return [...secrets];
}

/**
 * Removes room tokens (43 base64url chars), room ids (64 hex) and registered secrets from text
 * headed for a log file.
 */
export function redact(text) {
  let s = String(text);
  for (const secret of secrets) s = s.split(secret).join("<redacted>");
  return s.replace(/(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g, "<token?>").replace(/(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])/g, "<room-id?>");
}

/**
 * Removes secrets (see {@link redact}) from a failing test's error before the runner prints it:
 * its message, its stack and Playwright's `log` lines (a `page.goto(link)` that times out names
 * the URL, invite fragment included).
 * @param {Error & {log?: string[]}} e
 * @returns {Error} the same error
 */
export function redactError(e) {
  if (!e || typeof e !== "object") return e;
  if (typeof e.message === "string") e.message = redact(e.message);
  if (typeof e.stack === "string") e.stack = redact(e.stack);
  if (Array.isArray(e.log)) e.log = e.log.map((l) => redact(l));
  return e;
}

/**
 * Refuses to go on outside the namespace `run.sh` makes (importing a test file directly would
 * otherwise run it on the machine's own network). Used where a browser is started that would
 * otherwise reach out on its own (Firefox); the deployments do not call it, since network labs
 * start them in namespaces of their own.
 */
export function assertInNamespace() {
  if (process.env.ALISAY_E2E_IN_NETNS !== "1") {
    throw new Error("run the e2e tests with `bash tests/e2e/run.sh` (a loopback-only network namespace)");
  }
}

/** `sha256(token)` as lowercase hex: the room id (SPEC §2). */
export function roomIdOf(token) {
  return crypto.createHash("sha256").update(token, "ascii").digest("hex");
}

/** A fresh room token as the client makes it: 32 random bytes, base64url, no padding. */
export function newToken() {
  const t = crypto.randomBytes(32).toString("base64url");
  rememberToken(t);
  return t;
}

/**
 * The environment for `alisay` child processes: ours without any `ALISAY_*` variable, because
 * alisay reads those as config overrides (`ALISAY_BIN` would become an unknown key `bin`).
 */
export function alisayEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ALISAY_")));
  return { ...env, ...extra };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` every `everyMs` until it returns a truthy value or `timeoutMs` passes. An error
 * with `fatal: true` ends the wait at once; other errors count as "not yet".
 */
export async function pollUntil(what, fn, { timeoutMs = 10_000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e.fatal) throw e;
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await sleep(everyMs);
  }
}

/** Whether something accepts TCP connections on `host:port` (1 s timeout). */
export function tcpOpen(port, host = "127.0.0.1") {
  return new Promise((resolve) => {
    const s = net.connect({ port, host });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/** A child process in the foreground, logged to a file, stopped by PID. */
export class Proc {
  constructor(name, cmd, args, logPath, env = process.env) {
    this.name = name;
    this.logPath = logPath;
    fs.appendFileSync(logPath, `\n===== ${new Date().toISOString()} start ${name}: ${path.basename(cmd)} ${args.map((a) => path.basename(a)).join(" ")}\n`);
    const fd = fs.openSync(logPath, "a");
    this.child = spawn(cmd, args, { stdio: ["ignore", fd, fd], env });
    fs.closeSync(fd);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        this.exitStatus = { code, signal };
        fs.appendFileSync(logPath, `===== ${new Date().toISOString()} ${name} exited code=${code} signal=${signal}\n`);
        resolve(this.exitStatus);
      });
      this.child.once("error", (e) => {
        this.exitStatus = { code: null, signal: null, error: e.message };
        resolve(this.exitStatus);
      });
    });
  }

  get pid() {
    return this.child.pid;
  }

  get running() {
    return this.exitStatus === undefined;
  }

  /** SIGTERM, wait up to `graceMs`, then SIGKILL. Resolves with the exit status. */
  async stop(graceMs = 10_000) {
    if (!this.running) return this.exitStatus;
    this.child.kill("SIGTERM");
    const t = await Promise.race([this.exited, sleep(graceMs).then(() => null)]);
    if (t) return t;
    fs.appendFileSync(this.logPath, `===== ${this.name} did not exit within ${graceMs} ms of SIGTERM; SIGKILL\n`);
    this.child.kill("SIGKILL");
    return this.exited;
  }
}

/**
 * One test deployment: temp dir with the TURN secret, the alisay YAML and the coturn config;
 * a running coturn and a running `alisay serve`.
 */
export class Deployment {
  /**
   * @param {object} o
   * @param {number} [o.port] alisay's port on 127.0.0.1
   * @param {string} [o.credentialTtl] `turn.credential_ttl`
   * @param {boolean} [o.turn] whether TURN is configured at all
   */
  constructor({ name = "", port = 8787, credentialTtl = "30s", turn = true } = {}) {
    this.port = port;
    this.origin = `http://127.0.0.1:${port}`;
    /** Where `alisay serve` itself answers (health checks); subclasses behind a proxy keep it. */
    this.backendOrigin = this.origin;
    this.turnPort = 3478;
    /** Where coturn listens (the readiness check connects there). */
    this.turnHost = "127.0.0.1";
    this.credentialTtl = credentialTtl;
    this.turn = turn;
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-e2e-"));
    this.secretPath = path.join(this.tmp, "turn-secret");
    this.yamlPath = path.join(this.tmp, "alisay.yaml");
    this.coturnConfPath = path.join(this.tmp, "turnserver.conf");
    this.alisayLog = path.join(OUT_DIR, name ? `alisay-${name}.log` : "alisay.log");
    this.coturnLog = path.join(OUT_DIR, "coturn.log");
    this.coturnStdoutLog = path.join(OUT_DIR, "coturn.stdout.log");
    /** The YAML `alisay serve` runs with; `null` means {@link yamlPath}. */
    this.serverConfigPath = null;
    this.serverStarts = 0;
  }

  writeFiles() {
    const secret = crypto.randomBytes(32).toString("hex");
    rememberSecret(secret);
    fs.writeFileSync(this.secretPath, secret, { mode: 0o600 });
    fs.chmodSync(this.secretPath, 0o600);
    const turnYaml = this.turn
      ? `turn:
  urls:
    - "turn:127.0.0.1:${this.turnPort}?transport=udp"
    - "turn:127.0.0.1:${this.turnPort}?transport=tcp"
  secret_file: "${this.secretPath}"
  credential_ttl: ${this.credentialTtl}
  realm: "alisay-e2e.invalid"
  listening_port: ${this.turnPort}
  min_port: 49160
  max_port: 49200
`
      : "";
    const yaml = `# Written by tests/e2e (loopback-only network namespace).
mode: development
public_origin: "${this.origin}"
server:
  listen: "127.0.0.1:${this.port}"
  shutdown_grace: 2s
rooms:
  allow_open_rooms: false
signaling:
  heartbeat_interval: 5s
${turnYaml}paths:
  coturn_runtime_dir: "${this.tmp}"
  state_dir: "${this.tmp}"
logging:
  level: debug
`;
    this.writeConfig(yaml);
  }

  /**
   * Writes alisay's config, and beside its log a copy with the temp dir shown as `<tmp>`.
   * @param {string} yaml
   */
  writeConfig(yaml) {
    fs.writeFileSync(this.yamlPath, yaml);
    fs.writeFileSync(this.alisayLog.replace(/\.log$/, ".yaml"), yaml.split(this.tmp).join("<tmp>"));
  }

  /**
   * coturn's config: what `alisay coturn-config` renders for production, plus the test lines
   * (temp paths, and exactly the two loopback lines TESTING.md allows in a test).
   */
  writeCoturnConfig() {
    const r = spawnSync(ALISAY_BIN, ["coturn-config", "--config", this.yamlPath, "--out", this.coturnConfPath], { encoding: "utf8", timeout: 30_000, env: alisayEnv() });
    let base;
    if (r.status === 0) {
      base = fs.readFileSync(this.coturnConfPath, "utf8");
      this.coturnConfigSource = "alisay coturn-config";
    } else if (/not implemented/i.test(`${r.stdout}${r.stderr}`)) {
      // TODO(e2e): remove this fallback once `alisay coturn-config` is implemented; the test
      // must run coturn with the production render.
      const secret = fs.readFileSync(this.secretPath, "utf8").trim();
      base = [
        "# FALLBACK written by tests/e2e: `alisay coturn-config` is not implemented yet",
        "use-auth-secret",
        `static-auth-secret=${secret}`,
        "realm=alisay-e2e.invalid",
        `listening-port=${this.turnPort}`,
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        "min-port=49160",
        "max-port=49200",
        "fingerprint",
        "no-cli",
        "no-multicast-peers",
        "no-tls",
        "no-dtls",
        "denied-peer-ip=0.0.0.0-0.255.255.255",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "denied-peer-ip=169.254.0.0-169.254.255.255",
        "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=::ffff:0.0.0.0-::ffff:255.255.255.255",
        "",
      ].join("\n");
      this.coturnConfigSource = "FALLBACK (alisay coturn-config not implemented)";
    } else {
      throw new Error(`alisay coturn-config failed (exit ${r.status}): ${redact(r.stderr || r.stdout || r.error)}`);
    }
    const test = ["", ...this.coturnTestLines(), ""].join("\n");
    fs.writeFileSync(this.coturnConfPath, base + test, { mode: 0o600 });
    // A copy for diagnosis, without the secret.
    fs.writeFileSync(path.join(OUT_DIR, "turnserver.conf"), (base + test).replace(/^(static-auth-secret=).*$/gm, "$1<redacted>"));
  }

  /**
   * The lines a test adds to the production render: temp paths, and for this loopback-only
   * namespace exactly the two loopback lines TESTING.md allows. A lab (tests/lab/) overrides it.
   */
  coturnTestLines() {
    return [
      "# ---- tests/e2e overrides (loopback-only namespace) ----",
      `pidfile=${path.join(this.tmp, "turnserver.pid")}`,
      `userdb=${path.join(this.tmp, "turndb")}`,
      `log-file=${this.coturnLog}`,
      "listening-ip=127.0.0.1",
      "relay-ip=127.0.0.1",
      "simple-log",
      "allow-loopback-peers",
      "allowed-peer-ip=127.0.0.1",
    ];
  }

  async startCoturn() {
    this.coturn = new Proc("coturn", TURNSERVER, ["-c", this.coturnConfPath], this.coturnStdoutLog);
    await pollUntil(`coturn to listen on ${this.turnHost}:${this.turnPort}/tcp`, async () => {
      if (!this.coturn.running) throw Object.assign(new Error(`coturn exited: ${JSON.stringify(this.coturn.exitStatus)} (see out/coturn*.log)`), { fatal: true });
      return tcpOpen(this.turnPort, this.turnHost);
    }, { timeoutMs: 15_000, everyMs: 100 });
  }

  async startServer() {
    this.serverStarts += 1;
    this.server = new Proc(`alisay serve #${this.serverStarts}`, ALISAY_BIN, ["serve", "--config", this.serverConfigPath ?? this.yamlPath], this.alisayLog, alisayEnv({ RUST_BACKTRACE: "1" }));
    const server = this.server;
    await pollUntil("alisay /healthz to answer 200", async () => {
      if (!server.running) throw Object.assign(new Error(`alisay serve exited: ${JSON.stringify(server.exitStatus)} (see out/alisay.log)`), { fatal: true });
      const res = await fetch(`${this.backendOrigin}/healthz`, { signal: AbortSignal.timeout(1000) });
      return res.status === 200;
    }, { timeoutMs: 15_000, everyMs: 50 });
  }

  /** SIGTERM to `alisay serve`; resolves with its exit status once it has exited. */
  async stopServer() {
    if (!this.server) return null;
    return this.server.stop(15_000);
  }

  async start() {
    this.writeFiles();
    if (this.turn) {
      this.writeCoturnConfig();
      await this.startCoturn();
    }
    await this.startServer();
  }

  async stop() {
    await this.stopServer();
    if (this.coturn) await this.coturn.stop(10_000);
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
