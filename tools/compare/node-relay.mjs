// A minimal signaling relay on Node's `ws` (npm), the logic in relay-core.mjs.
//   node node-relay.mjs PORT
import {WebSocketServer} from 'ws';
import {Relay} from './relay-core.mjs';

const port = Number(process.argv[2] ?? 18703);
const relay = new Relay();
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: false,
  maxPayload: 64 * 1024,
});
wss.on('connection', (ws) => {
  const m = relay.member({
    send: (text) => ws.send(text),
    close: (code) => ws.close(code),
  });
  ws.on('message', (data, isBinary) => {
    if (isBinary) {
      ws.close(4000);
      return;
    }
    relay.onMessage(m, data.toString());
  });
  ws.on('close', () => relay.onClose(m));
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`node-ws relay listening on 127.0.0.1:${port}`));
