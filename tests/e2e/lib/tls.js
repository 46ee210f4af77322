// A test PKI for the TLS scenarios (TESTING.md "TLS in tests"): a throwaway CA and a leaf for
// `DNS:localhost, IP:127.0.0.1` made with openssl, and a HOME whose NSS database trusts that CA,
// so Debian's Chromium (launched with `HOME=<home>`) trusts nginx's HTTPS and coturn's `turns:`
// for real: no `ignoreHTTPSErrors`, which would not cover TURN over TLS anyway (ICE error 701).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/** The Debian package of each program used here. */
const APT = { openssl: "openssl", certutil: "libnss3-tools" };

/** Runs a program to completion (bounded); throws with its stderr when it fails. */
function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
  if (r.error) throw new Error(`${what}: cannot run ${cmd} (apt-get install ${APT[cmd] ?? cmd}): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${what}: ${cmd} exited ${r.status}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/**
 * A test CA (P-256, valid 2 days), a leaf it signed for `DNS:localhost, IP:127.0.0.1`, and a
 * HOME with an NSS database (`$HOME/.pki/nssdb`, empty password) that trusts the CA for TLS
 * servers (`certutil -t C,,`).
 *
 * Every file lives in a fresh temp dir (mode 0755, so nginx workers running as `nobody` may
 * enter it; the keys stay 0600 and are read by the root master). `remove()` deletes it.
 *
 * @param {{san?: string}} [o] the leaf's subjectAltName (default `DNS:localhost,IP:127.0.0.1`;
 *   the network lab names its server's public address)
 * @returns {{dir: string, caPem: string, leafPem: string, leafKey: string, home: string,
 *   remove: () => void}}
 */
export function makeTestPki({ san = "DNS:localhost,IP:127.0.0.1" } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "alisay-e2e-pki-"));
  fs.chmodSync(dir, 0o755);
  const p = (f) => path.join(dir, f);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run("openssl", ["req", "-x509", ...ec, "-days", "2", "-subj", "/CN=alisay e2e test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", p("ca.key"), "-out", p("ca.pem")], "test CA");
  run("openssl", ["req", "-new", ...ec, "-subj", "/CN=localhost", "-keyout", p("leaf.key"), "-out", p("leaf.csr")], "leaf key and request");
  fs.writeFileSync(
    p("leaf.ext"),
    ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature", "extendedKeyUsage=serverAuth", `subjectAltName=${san}`, ""].join("\n"),
  );
  run("openssl", ["x509", "-req", "-in", p("leaf.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p("leaf.ext"), "-out", p("leaf.pem")], "leaf certificate");
  for (const k of ["ca.key", "leaf.key"]) fs.chmodSync(p(k), 0o600);
  // The leaf really chains to the CA and names localhost and 127.0.0.1.
  run("openssl", ["verify", "-CAfile", p("ca.pem"), p("leaf.pem")], "leaf verification");
  const text = run("openssl", ["x509", "-in", p("leaf.pem"), "-noout", "-ext", "subjectAltName"], "leaf SAN");
  for (const name of san.split(",")) {
    const shown = name.replace(/^IP:/, "IP Address:");
    if (!text.includes(shown)) throw new Error(`leaf SAN lacks ${name}: ${text}`);
  }

  const home = p("home");
  const nssdb = path.join(home, ".pki/nssdb");
  fs.mkdirSync(nssdb, { recursive: true });
  run("certutil", ["-N", "-d", `sql:${nssdb}`, "--empty-password"], "NSS database");
  run("certutil", ["-A", "-d", `sql:${nssdb}`, "-n", "alisay-e2e-test-ca", "-t", "C,,", "-i", p("ca.pem")], "trusting the test CA");
  const listed = run("certutil", ["-L", "-d", `sql:${nssdb}`], "listing the NSS database");
  if (!/alisay-e2e-test-ca\s+C,,/.test(listed)) throw new Error(`the NSS database does not trust the test CA:\n${listed}`);

  return {
    dir,
    caPem: p("ca.pem"),
    leafPem: p("leaf.pem"),
    leafKey: p("leaf.key"),
    home,
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
