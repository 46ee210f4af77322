// The PeerJS server (npm `peer`) as its README starts it, on loopback, with the concurrent
// user limit raised for the hold scenario (default 5000).
//   node peerjs-server.mjs PORT
import {PeerServer} from 'peer';

const port = Number(process.argv[2] ?? 18705);
PeerServer({host: '127.0.0.1', port, path: '/', concurrent_limit: 100000}, () =>
  console.log(`peerjs server listening on 127.0.0.1:${port}`));
