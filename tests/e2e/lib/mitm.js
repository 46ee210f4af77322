// A test-only man in the middle: one node HTTP server that proxies plain HTTP (the page,
// POST /rooms) and the /ws WebSocket to `alisay serve`, the way a hostile signaling server (or
// whoever controls it) could. The page is loaded from the proxy, so its WebSocket goes through
// it too; `Origin` and every other header are forwarded unchanged (the deployment's
// public_origin is the proxy's origin).
//
// Server -> browser, it can rewrite one `a=fingerprint` line of every relayed offer and answer
// (`tamper: "fingerprint"`) or remove their `auth` (`tamper: "strip-auth"`). With
// `holdFirstOffer`, the first relayed offer (and whatever follows it to that browser) is held
// until an offer travels the other way too, so that BOTH callers receive a forged description,
// as from an attacker who answers each side itself. Browser -> server traffic is recorded
// (types and whether `auth` was there, never contents) and passed on unchanged.

import http from "node:http";

import { WebSocket, WebSocketServer } from "ws";

/** How long a held offer waits for the other side's offer before it is let through anyway. */
const HOLD_MAX_MS = 8000;

/** Changes the last hex digit of the first `a=fingerprint` line (every copy of that line). */
export function rewriteOneFingerprint(sdp) {
  const m = /^a=fingerprint:\S+ [0-9A-Fa-f:]+$/m.exec(sdp);
  if (!m) return sdp;
  const line = m[0];
  const last = line.at(-1).toUpperCase();
  const forged = line.slice(0, -1) + (last === "0" ? "1" : "0");
  return sdp.split(line).join(forged);
}

export class MitmProxy {
  /**
   * @param {object} o
   * @param {number} o.port where the proxy listens on 127.0.0.1
   * @param {string} o.backend `http://127.0.0.1:PORT` of `alisay serve`
   */
  constructor({ port, backend }) {
    this.port = port;
    this.origin = `http://127.0.0.1:${port}`;
    this.backend = new URL(backend);
    /** @type {null|"fingerprint"|"strip-auth"} */
    this.tamper = null;
    this.holdFirstOffer = false;
    this.reset();
  }

  /** Sets the behaviour for the next scenario and forgets what was recorded. */
  configure({ tamper = null, holdFirstOffer = false } = {}) {
    this.tamper = tamper;
    this.holdFirstOffer = holdFirstOffer;
    this.reset();
  }

  reset() {
    /** Offers and answers the browsers sent: `{type, auth}` where auth is the tag's length or null. */
    this.sent = [];
    /** Offers and answers delivered to browsers, and how many were forged. */
    this.delivered = [];
    this.forged = 0;
    /** @type {{conn: object, timer: any}|null} the connection whose traffic is held */
    this.holding = null;
    this.offersSeen = new Set();
  }

  async start() {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
    this.server = http.createServer((req, res) => this.forwardHttp(req, res));
    this.server.on("upgrade", (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (client) => this.bridge(req, client));
    });
    this.conns = new Set();
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", resolve);
    });
  }

  async stop() {
    for (const c of this.conns ?? []) {
      c.client.terminate();
      c.upstream.terminate();
    }
    clearTimeout(this.holding?.timer);
    this.wss?.close();
    if (this.server) await new Promise((r) => this.server.close(r));
  }

  /** @private Plain HTTP: the same request to alisay, the same answer back. */
  forwardHttp(req, res) {
    const up = http.request(
      { host: this.backend.hostname, port: this.backend.port, method: req.method, path: req.url, headers: req.headers },
      (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      },
    );
    up.on("error", () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }

  /** @private One browser socket and its socket to alisay. */
  bridge(req, client) {
    const headers = {};
    for (const h of ["origin", "user-agent", "x-forwarded-for"]) if (req.headers[h]) headers[h] = req.headers[h];
    const upstream = new WebSocket(`ws://${this.backend.host}${req.url}`, { headers, maxPayload: 1 << 20 });
    const conn = { client, upstream, pending: [], held: [] };
    this.conns.add(conn);
    upstream.on("open", () => {
      for (const m of conn.pending) upstream.send(m);
      conn.pending = [];
    });
    client.on("message", (data) => {
      const text = String(data);
      this.record(text);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else conn.pending.push(text);
    });
    upstream.on("message", (data) => this.toBrowser(conn, String(data)));
    const closeBoth = (code) => {
      this.conns.delete(conn);
      const ok = code >= 3000 || [1000, 1001, 1011, 1012].includes(code);
      for (const ws of [client, upstream]) {
        if (ws.readyState === WebSocket.OPEN) ok ? ws.close(code) : ws.terminate();
        else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
      }
    };
    client.on("close", (code) => closeBoth(code));
    upstream.on("close", (code) => closeBoth(code));
    client.on("error", () => closeBoth(1006));
    upstream.on("error", () => closeBoth(1006));
  }

  /** @private */
  record(text) {
    try {
      const m = JSON.parse(text);
      if (m.type === "offer" || m.type === "answer") this.sent.push({ type: m.type, auth: typeof m.auth === "string" ? m.auth.length : null });
    } catch {
      // Not JSON: alisay refuses it; nothing to record.
    }
  }

  /** @private A message from alisay to one browser: forged, held or passed on. */
  toBrowser(conn, text) {
    let msg = null;
    try {
      msg = JSON.parse(text);
    } catch {
      // passed on as it is
    }
    let out = text;
    if (msg && (msg.type === "offer" || msg.type === "answer")) {
      if (this.tamper === "fingerprint") {
        const sdp = rewriteOneFingerprint(msg.sdp);
        if (sdp !== msg.sdp) this.forged += 1;
        out = JSON.stringify({ ...msg, sdp });
      } else if (this.tamper === "strip-auth") {
        if ("auth" in msg) this.forged += 1;
        const { auth: _dropped, ...rest } = msg;
        out = JSON.stringify(rest);
      }
      this.delivered.push({ type: msg.type, forged: out !== text });
      if (msg.type === "offer" && this.holdFirstOffer) {
        this.offersSeen.add(conn);
        if (!this.holding && this.offersSeen.size === 1) {
          // The first offer: hold this browser's traffic until the other side offers too.
          this.holding = { conn, timer: setTimeout(() => this.release(), HOLD_MAX_MS) };
        } else if (this.holding && this.holding.conn !== conn) {
          // The other side's offer: deliver both, the held one first.
          this.release();
        }
      }
    }
    if (this.holding?.conn === conn) conn.held.push(out);
    else if (conn.client.readyState === WebSocket.OPEN) conn.client.send(out);
  }

  /** @private Lets held traffic through, in order. */
  release() {
    const h = this.holding;
    if (!h) return;
    clearTimeout(h.timer);
    this.holding = null;
    this.holdFirstOffer = false;
    for (const m of h.conn.held) if (h.conn.client.readyState === WebSocket.OPEN) h.conn.client.send(m);
    h.conn.held = [];
  }
}
