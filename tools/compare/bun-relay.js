// A minimal signaling relay on Bun's built-in WebSocket server (uWebSockets), the logic in
// relay-core.mjs.
//   bun bun-relay.js PORT
import {Relay} from './relay-core.mjs';

const port = Number(process.argv[2] ?? 18704);
const relay = new Relay();
Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, server) {
    if (new URL(req.url).pathname === '/ws' && server.upgrade(req, {data: {m: null}})) {
      return undefined;
    }
    return new Response('not found\n', {status: 404});
  },
  websocket: {
    maxPayloadLength: 64 * 1024,
    perMessageDeflate: false,
    idleTimeout: 120,
    open(ws) {
      ws.data.m = relay.member({
        send: (text) => ws.send(text),
        close: (code) => ws.close(code),
      });
    },
    message(ws, message) {
      if (typeof message !== 'string') {
        ws.close(4000);
        return;
      }
      relay.onMessage(ws.data.m, message);
    },
    close(ws) {
      relay.onClose(ws.data.m);
    },
  },
});
console.log(`bun relay listening on 127.0.0.1:${port}`);
