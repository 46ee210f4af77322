// The minimal relay logic shared by the Node `ws` relay (node-relay.mjs) and the Bun relay
// (bun-relay.js): the subset of docs/protocol.md that tools/loadgen speaks. Rooms of two,
// `joined`/`peer-joined`, `start` once both are `ready`, relayed `ice`/`offer`/`answer`
// forwarded as the client's own bytes (JSON.parse only to route), `heartbeat-ack`, `hangup`
// then close 1000, `peer-left`. No validation, limits or liveness: these relays are the
// baseline, not a product.

/**
 * @typedef {{send: function(string): void, close: function(number): void}} Sock
 * @typedef {{sock: Sock, id: number, room: ?string, ready: boolean}} Member
 */

/** Rooms of at most two members, keyed by room id. */
export class Relay {
  constructor() {
    /** @type {Map<string, Member[]>} */
    this.rooms = new Map();
    this.nextId = 0;
  }

  /**
   * A new member for a socket.
   * @param {Sock} sock
   * @return {Member}
   */
  member(sock) {
    return {sock, id: this.nextId++, room: null, ready: false};
  }

  /**
   * One text message from `m`.
   * @param {Member} m
   * @param {string} text
   */
  onMessage(m, text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      m.sock.close(4000);
      return;
    }
    const members = m.room === null ? null : this.rooms.get(m.room);
    switch (msg.type) {
      case 'join': {
        if (m.room !== null || typeof msg.roomId !== 'string') {
          m.sock.close(4000);
          return;
        }
        let list = this.rooms.get(msg.roomId);
        if (!list) {
          list = [];
          this.rooms.set(msg.roomId, list);
        }
        if (list.length >= 2) {
          m.sock.close(4004);
          return;
        }
        for (const o of list) o.sock.send('{"type":"peer-joined"}');
        list.push(m);
        m.room = msg.roomId;
        m.sock.send(
            `{"type":"joined","sessionId":"${m.id.toString(16).padStart(32, '0')}",` +
            `"peerPresent":${list.length === 2},"iceServers":[],"relayAvailable":false,` +
            `"credentialExpiresAt":null,"heartbeatSeconds":20}`);
        return;
      }
      case 'ready':
        if (!members) return;
        m.ready = true;
        if (members.length === 2 && members.every((o) => o.ready)) {
          members[0].sock.send('{"type":"start","polite":false}');
          members[1].sock.send('{"type":"start","polite":true}');
        }
        return;
      case 'ice':
      case 'offer':
      case 'answer':
        if (!members) return;
        for (const o of members) if (o !== m) o.sock.send(text);
        return;
      case 'heartbeat':
        m.sock.send('{"type":"heartbeat-ack"}');
        return;
      case 'hangup':
        if (members) {
          for (const o of members) if (o !== m) o.sock.send('{"type":"hangup"}');
        }
        this.onClose(m);
        m.sock.close(1000);
        return;
      default:
        m.sock.close(4000);
    }
  }

  /**
   * The socket of `m` closed (or `m` hung up): free its slot.
   * @param {Member} m
   */
  onClose(m) {
    const key = m.room;
    if (key === null) return;
    m.room = null;
    const list = this.rooms.get(key);
    if (!list) return;
    const i = list.indexOf(m);
    if (i >= 0) list.splice(i, 1);
    for (const o of list) o.sock.send('{"type":"peer-left"}');
    if (list.length === 0) this.rooms.delete(key);
  }
}
