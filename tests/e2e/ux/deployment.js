// The deployment of ux.test.js: lib/harness.js's real alisay + coturn, with the TURN/UDP URL
// pointing at a LossyUdpProxy in front of coturn (the TCP URL still reaches coturn directly).

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
    const yaml = fs.readFileSync(this.yamlPath, "utf8");
    if (!yaml.includes(from)) throw new Error(`the harness YAML no longer has ${from}; update ux/deployment.js`);
    fs.writeFileSync(this.yamlPath, yaml.replace(from, to));
    const copy = this.alisayLog.replace(/\.log$/, ".yaml");
    fs.writeFileSync(copy, fs.readFileSync(copy, "utf8").replace(from, to));
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
