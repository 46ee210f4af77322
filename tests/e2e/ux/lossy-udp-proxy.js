// A UDP relay between the browsers and coturn that drops a chosen share of datagrams, both
// ways: a real lossy network path for the "poor connection" warning (the kernel here has no
// netem qdisc, and nothing can be installed into it). Loopback only; one upstream socket per
// client address, so coturn sees each browser socket as its own TURN client.

import dgram from "node:dgram";

export class LossyUdpProxy {
  /**
   * @param {object} o
   * @param {number} o.port where browsers send (the TURN URL's port)
   * @param {number} o.target coturn's UDP port on 127.0.0.1
   */
  constructor({ port, target }) {
    this.port = port;
    this.target = target;
    /** Share of datagrams dropped in each direction, 0..1. */
    this.loss = 0;
    this.forwarded = 0;
    this.dropped = 0;
    /** @type {Map<string, dgram.Socket>} client "address:port" -> upstream socket */
    this.upstreams = new Map();
    this.front = dgram.createSocket("udp4");
  }

  /** Binds 127.0.0.1:port. */
  start() {
    return new Promise((resolve, reject) => {
      this.front.once("error", reject);
      this.front.on("message", (msg, rinfo) => this.fromClient(msg, rinfo));
      this.front.bind(this.port, "127.0.0.1", () => {
        this.front.off("error", reject);
        this.front.on("error", () => {});
        resolve();
      });
    });
  }

  /** Whether to drop this datagram (counts both outcomes). */
  drop() {
    if (this.loss > 0 && Math.random() < this.loss) {
      this.dropped += 1;
      return true;
    }
    this.forwarded += 1;
    return false;
  }

  fromClient(msg, rinfo) {
    const key = `${rinfo.address}:${rinfo.port}`;
    let up = this.upstreams.get(key);
    if (!up) {
      up = dgram.createSocket("udp4");
      up.on("error", () => {});
      up.on("message", (reply) => {
        if (!this.drop()) this.front.send(reply, rinfo.port, rinfo.address);
      });
      up.bind(0, "127.0.0.1");
      this.upstreams.set(key, up);
    }
    if (!this.drop()) up.send(msg, this.target, "127.0.0.1");
  }

  /** Closes every socket. */
  stop() {
    for (const s of this.upstreams.values()) s.close();
    this.upstreams.clear();
    return new Promise((resolve) => this.front.close(() => resolve()));
  }
}
