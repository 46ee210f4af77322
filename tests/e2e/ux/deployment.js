// The deployment of ux.test.js: lib/harness.js's real alisay + coturn, with the one TURN URL
// (UDP) pointing at a LossyUdpProxy in front of coturn. The TCP URL is dropped, so every call
// takes the path whose loss the tests control (call.test.js covers TURN over TCP).

import fs from "node:fs";

import { Deployment } from "../lib/harness.js";
import { LossyUdpProxy } from "./lossy-udp-proxy.js";

export class ProxiedDeployment extends Deployment {
  /** @param {ConstructorParameters<typeof Deployment>[0] & {proxyPort?: number}} o */
  constructor(o = {}) {
    super(o);
    this.proxyPort = o.proxyPort ?? 3479;
    this.proxy = this.turn ? new LossyUdpProxy({ port: this.proxyPort, target: this.turnPort }) : null;
  }

  writeFiles() {
    super.writeFiles();
    if (!this.turn) return;
    const from = `turn:127.0.0.1:${this.turnPort}?transport=udp`;
    const to = `turn:127.0.0.1:${this.proxyPort}?transport=udp`;
    const tcp = new RegExp(`^\\s*- "turn:127\\.0\\.0\\.1:${this.turnPort}\\?transport=tcp"\\n`, "m");
    const rewrite = (text) => {
      if (!text.includes(from) || !tcp.test(text)) throw new Error("the harness YAML no longer has the expected TURN URLs; update ux/deployment.js");
      return text.replace(from, to).replace(tcp, "");
    };
    fs.writeFileSync(this.yamlPath, rewrite(fs.readFileSync(this.yamlPath, "utf8")));
    const copy = this.alisayLog.replace(/\.log$/, ".yaml");
    fs.writeFileSync(copy, rewrite(fs.readFileSync(copy, "utf8")));
  }

  async start() {
    if (this.proxy) await this.proxy.start();
    await super.start();
  }

  async stop() {
    try {
      await super.stop();
    } finally {
      if (this.proxy) await this.proxy.stop();
    }
  }
}
