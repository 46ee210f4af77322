// The server host of a lab topology, as a deployment would run it minus systemd: nginx (the
// rendered site, TLS with the test CA), `alisay serve` and coturn (from `alisay coturn-config`,
// in the cgroup its rendered nftables table names, with that table loaded), all inside the
// server's network namespace. Shared by lab.mjs (issue 17's acceptance) and matrix.mjs.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { Proc, alisayEnv, pollUntil, redact } from "../e2e/lib/harness.js";
import { inNs, ns, run } from "./netns.mjs";
import { PREFIX } from "./topology.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
export const OUT = path.join(HERE, "out");
/** The binary under test (run.sh sets LAB_ALISAY_BIN; not an ALISAY_* variable). */
export const ALISAY = process.env.LAB_ALISAY_BIN || path.join(ROOT, "target/release/alisay");
export const TURN_PORT = 3478;
export const RELAY_PORTS = [49160, 49200];
/** The lab's "internet": allowed as TURN peers in the lab's config only, never in production. */
export const LAB_ALLOWANCES = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];

/** Runs `alisay` to completion; throws with its (redacted) output on failure. */
export function alisay(args, what) {
  const r = spawnSync(ALISAY, args, { encoding: "utf8", timeout: 30_000, env: alisayEnv() });
  if (r.error || r.status !== 0) throw new Error(`${what}: alisay ${args[0]} failed (${r.error?.message ?? `exit ${r.status}`}): ${redact(r.stderr || r.stdout)}`);
  return r.stdout;
}

/**
 * A production `alisay.yaml` for a lab server. `server.private` set = behind 1:1 NAT (S2:
 * `turn.external_ip` and `turn.relay_ips` as docs/deploy.md says); unset = the public address
 * on the interface (S1). `labAllowances` adds the documentation ranges as allowed peers.
 */
export function labYaml({ tmp, pki, secretPath, runtimeDir, labAllowances, server, publicIp = server.public }) {
  const nat = server.private
    ? `  # Behind 1:1 NAT, as docs/deploy.md says: the public address, and the private one it maps to.
  external_ip: "${publicIp}"
  relay_ips: ["${server.private}"]
`
    : "";
  return `# Written by tests/lab (network namespaces, documentation ranges only).
mode: production
public_origin: "https://${publicIp}"
server:
  listen: "127.0.0.1:8787"
  shutdown_grace: 2s
signaling:
  heartbeat_interval: 5s
turn:
  urls:
    - "turn:${publicIp}:${TURN_PORT}?transport=udp"
    - "turn:${publicIp}:${TURN_PORT}?transport=tcp"
  secret_file: "${secretPath}"
  credential_ttl: 10m
  realm: "call.lab.example"
  listening_port: ${TURN_PORT}
${nat}  min_port: ${RELAY_PORTS[0]}
  max_port: ${RELAY_PORTS[1]}
${labAllowances ? `  # The lab's "internet" is the documentation ranges, which production denies: allowed here
  # exactly as the loopback tests allow 127.0.0.1. Never in a production render.
  allowed_peer_ips: [${LAB_ALLOWANCES.map((r) => `"${r}"`).join(", ")}]
` : ""}nginx:
  listen_address: "*"
  tls_cert: "${pki.leafPem}"
  tls_key: "${pki.leafKey}"
  acme_root: null
  rooms_rate: "60r/m"
  access_log: "${tmp}/nginx.access.log"
  error_log: "${tmp}/nginx.error.log"
paths:
  state_dir: "${tmp}"
${runtimeDir ? `  coturn_runtime_dir: "${runtimeDir}"\n` : ""}logging:
  level: info
`;
}

/** A cgroup of the lab's own at the root of the cgroup2 hierarchy (see coturn-in-cgroup.sh). */
export function makeCgroup(label) {
  const mountinfo = fs.readFileSync("/proc/self/mountinfo", "utf8");
  const root = mountinfo
    .split("\n")
    .map((l) => l.split(" - "))
    .find(([, post]) => post?.split(" ")[0] === "cgroup2")?.[0]
    .split(" ")[4];
  if (!root) throw new Error("no cgroup2 mount (the nftables table matches coturn by its cgroup v2 path)");
  const dir = path.join(root, `${PREFIX}${label}-${process.pid}`);
  fs.mkdirSync(dir);
  return dir;
}

export function removeCgroup(dir) {
  for (const d of [path.join(dir, "system.slice/alisay-coturn.service"), path.join(dir, "system.slice"), dir]) {
    try {
      fs.rmdirSync(d);
    } catch {
      // not there
    }
  }
}

/** Whether something listens on TCP `port` in namespace `name`. */
export const listening = (name, port) => run(...inNs(name, "ss", "-Hltn", `sport = :${port}`)).stdout.trim() !== "";

/**
 * A running server host. `start()` renders and starts everything; `startCoturn(conf, label)`
 * (re)starts coturn alone; `stop()` stops all, in reverse order.
 */
export class ServerStack {
  /**
   * @param {object} o
   * @param {string} o.name label for files (`stack-<name>`)
   * @param {{ns: string, public: string, private?: string}} o.server the topology's server
   * @param {string} o.tmp a temp dir of the run (0755)
   * @param {ReturnType<import("../e2e/lib/tls.js").makeTestPki>} o.pki
   * @param {string} o.secretPath the TURN secret (0600)
   */
  constructor({ name, server, tmp, pki, secretPath }) {
    Object.assign(this, { name, server, pki, secretPath });
    this.dir = path.join(tmp, `stack-${name}`);
    fs.mkdirSync(this.dir, { mode: 0o755 });
    this.runtimeDir = path.join(this.dir, "run");
    fs.mkdirSync(this.runtimeDir, { mode: 0o700 });
    this.origin = `https://${server.public}`;
    this.procs = [];
    this.cgroup = null;
  }

  /** Writes the YAMLs, renders, writes coturn's runtime config; returns their paths. */
  prepare() {
    const common = { tmp: this.dir, pki: this.pki, secretPath: this.secretPath, server: this.server, labAllowances: true };
    this.yaml = path.join(this.dir, "alisay.yaml");
    fs.writeFileSync(this.yaml, labYaml(common));
    const runtimeYaml = path.join(this.dir, "alisay-runtime.yaml");
    fs.writeFileSync(runtimeYaml, labYaml({ ...common, runtimeDir: this.runtimeDir }));
    this.renderDir = path.join(this.dir, "render");
    alisay(["render", "--config", this.yaml, "--out", this.renderDir], `alisay render (${this.name})`);
    this.nftFile = path.join(this.renderDir, "nftables/alisay-coturn.nft");
    this.coturnConf = path.join(this.runtimeDir, "turnserver.conf");
    alisay(["coturn-config", "--config", runtimeYaml, "--out", this.coturnConf], `alisay coturn-config (${this.name})`);
    // Lab-only logging line: coturn logs each allocation and its end (allocations held).
    fs.appendFileSync(this.coturnConf, "\n# tests/lab: log allocations (allocations held per caller)\nverbose\n");
  }

  spawn(name, argv, logName, env) {
    const p = new Proc(name, argv[0], argv[1], path.join(OUT, logName), env);
    this.procs.push(p);
    return p;
  }

  /** nginx and `alisay serve` in the server's namespace; waits until both listen. */
  async startSite() {
    const d = this.dir;
    const siteConf = path.join(d, "nginx.conf");
    fs.writeFileSync(
      siteConf,
      ["daemon off;", "worker_processes 1;", `pid ${d}/nginx.pid;`, `error_log ${OUT}/nginx-${this.name}.error.log notice;`, "events { worker_connections 256; }", "http {",
        ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((k) => `  ${k}_temp_path ${d}/nginx-${k};`), "  access_log off;", `  include ${this.renderDir}/nginx/alisay.conf;`, "}", ""].join("\n"),
    );
    const srv = this.server.ns;
    this.spawn("alisay serve", inNs(srv, ALISAY, "serve", "--config", this.yaml), `alisay-${this.name}.log`, alisayEnv());
    const nginx = this.spawn("nginx", inNs(srv, "nginx", "-p", d, "-c", siteConf, "-e", `${OUT}/nginx-${this.name}.error.log`), `nginx-${this.name}.log`);
    await pollUntil(`nginx and alisay to listen in ${ns(srv)}`, () => {
      if (!nginx.running) throw Object.assign(new Error("nginx exited (see tests/lab/out/nginx*.log)"), { fatal: true });
      return listening(srv, 443) && listening(srv, 8787);
    }, { timeoutMs: 15_000 });
  }

  /** coturn on `conf` (default: the render's), in its unit's cgroup with the table loaded. */
  async startCoturn(conf = this.coturnConf, label = "rendered") {
    if (!this.cgroup) this.cgroup = makeCgroup(`lab-${this.name}`);
    const logName = `coturn-${this.name}-${label}.log`;
    const p = this.spawn(`coturn (${this.name}, ${label})`, [path.join(HERE, "coturn-in-cgroup.sh"), [this.cgroup, ns(this.server.ns), this.nftFile, conf]], logName);
    await pollUntil(`coturn (${this.name}, ${label}) to listen`, () => {
      if (!p.running) throw Object.assign(new Error(`coturn exited: see tests/lab/out/${logName}`), { fatal: true });
      return listening(this.server.ns, TURN_PORT);
    }, { timeoutMs: 15_000 });
    this.coturn = p;
    return p;
  }

  async start() {
    this.prepare();
    await this.startSite();
    await this.startCoturn();
  }

  async stop() {
    for (const p of this.procs.reverse()) await p.stop(5000).catch(() => {});
    this.procs = [];
    if (this.cgroup) removeCgroup(this.cgroup);
  }
}
