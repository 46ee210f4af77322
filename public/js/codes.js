/**
 * @file The WebSocket close codes the server sends (docs/protocol.md), by
 *     name: the same table as the server's `signaling::close::CloseCode`, which
 *     a Rust test (`the_browser_table_matches`) compares with this file line by
 *     line, so the two cannot drift. Keep one `'name': number,` line per code,
 *     in number order.
 */

/**
 * Close code numbers by name; the names are the `error` codes and `bye`
 * reasons that go with them.
 * @type {Readonly<Record<string, number>>}
 */
export const CLOSE_CODES = Object.freeze({
  'bye': 1000,
  'restart': 1012,
  'invalid-message': 4000,
  'join-timeout': 4001,
  'liveness': 4002,
  'room-not-allowed': 4003,
  'room-full': 4004,
  'rate-limited': 4008,
  'message-too-big': 4009,
  'replaced': 4010,
  'idle': 4011,
  'slow-consumer': 4012,
  'server-busy': 4013,
});
