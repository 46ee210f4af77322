/**
 * @file Every human sentence the page shows: status lines per `data-state`, and
 *     error sentences per error code (server error codes from docs/protocol.md,
 *     close reasons, media errors, HTTP statuses of `POST /rooms`).
 */

/** @type {Readonly<Record<string, string>>} */
const STATUS = Object.freeze({
  'idle':
    'Press Generate room to create a private call, then send the invite link ' +
    'to the other person.',
  'ready': 'Press Start to join the call.',
  'joining': 'Joining the call…',
  'preflight': 'Checking the relay server…',
  'media':
    'Waiting for your camera and microphone. Allow access if your browser ' +
    'asks.',
  'waiting': 'Waiting for the other person to join…',
  'connecting': 'Connecting…',
  'connected': 'Connected.',
  'reconnecting': 'Lost the connection to the server, reconnecting…',
  'peer-left': 'The other person left. Waiting for them to come back…',
  'ended': 'Call ended. Press Start to join again.',
  'error': 'Not connected.',
  // Refinements of the states above.
  'ready-generated':
    'Press Start, then send the invite link to the other person.',
  'testing':
    'Checking your camera and microphone. Allow access if your browser asks.',
  'tested':
    'You should see yourself, and the microphone bar moves when you speak. ' +
    'Press Start when you are ready.',
  'restarting': 'The server is restarting, reconnecting…',
  'call-continues': ' Your call continues meanwhile.',
  'peer-here': 'The other person is here and getting ready…',
  'interrupted': 'Connection interrupted, trying to recover…',
  'failed': 'Connection failed, trying again…',
  'copied': 'Invite link copied. Paste it into a message to the other person.',
  'copy-manual': 'The link is selected: press Ctrl+C (or ⌘C) to copy it.',
  'shared': 'Invite link shared.',
  // Secondary lines (#status-detail, the video placeholder).
  'waiting-hint':
    'Send them the invite link if you have not yet (Copy invite).',
  'retry-in': 'Next try in {s} s.',
  'retry-now': 'Trying now…',
  'remote-waiting': 'Waiting for the other person…',
  'remote-connecting': 'Connecting…',
  'remote-left': 'The other person left.',
  // Text handed to the system's share sheet (Share invite).
  'share-title': 'Alisay Call',
  'share-text': 'Join my private video call:',
  // Devices.
  'no-camera': 'No camera found',
  'no-microphone': 'No microphone found',
  'camera-n': 'Camera {n}',
  'microphone-n': 'Microphone {n}',
  'speaker-n': 'Speaker {n}',
  'device-switched': 'Switched to {name}.',
  'device-ended':
    'Your {kind} stopped working (unplugged?). Choose another one above.',
  // Connection quality (#quality, #quality-warning).
  'quality-good': 'Good connection',
  'quality-fair': 'Fair connection',
  'quality-poor': 'Poor connection',
  'quality-waiting': 'Measuring the connection…',
  'quality-warning':
    'Poor connection: {reasons}. The sound or picture may break up.',
  'quality-announce-poor': 'The connection is poor: {reasons}.',
  'quality-announce-ok': 'The connection is good again.',
  // The network check (netcheck.js, #netcheck).
  'netcheck-fine':
    'Everything is fine: your network reaches the call\'s relay server.',
  'netcheck-no-udp':
    'Your network blocks UDP: the call will work, with a little more delay.',
  'netcheck-trouble-peer':
    'Your network reaches the relay server, so the other person\'s network ' +
    'may be what blocks the call. Still trying…',
  'netcheck-trouble-relay':
    'The call cannot connect: your network does not reach the relay ' +
    'server. Still trying…',
  'netcheck-details': 'Relay over UDP: {udp} · TCP: {tcp} · TLS: {tls}',
  'netcheck-ok': 'works',
  'netcheck-failed': 'no answer',
  'netcheck-absent': 'not offered',
  'netcheck-skipped': 'not needed',
});

/**
 * Why the connection is poor (#quality-warning), by kind; `{v}` is the
 * measured value.
 * @type {Readonly<Record<string, string>>}
 */
const QUALITY = Object.freeze({
  'loss': 'High packet loss ({v}%)',
  'rtt': 'Long delay (round trip {v} ms)',
  'jitter': 'Unsteady connection (jitter {v} ms)',
  'mos': 'Low estimated call quality (MOS {v} of 5)',
  'stalled': 'Nothing arrives from the other person',
});

/** @type {Readonly<Record<string, string>>} */
const ERRORS = Object.freeze({
  // Server error codes (docs/protocol.md).
  'invalid-message':
    'The server did not understand this page. Reload the page and press ' +
    'Start again.',
  'join-timeout':
    'Joining took too long. Check your connection and press Start again.',
  'room-not-allowed':
    'This invite link is not allowed on this server, or its room has ' +
    'expired. Ask the other person for a new invite link.',
  'room-full':
    'This call is busy: two people are already in it. If one of them is you ' +
    'in another tab or window, close that one and press Start again.',
  'rate-limited':
    'Too many attempts from your network. Wait a minute and press Start ' +
    'again.',
  'message-too-big':
    'A message was too large for the server. Reload the page and press Start ' +
    'again.',
  'server-busy':
    'The server is handling as many calls as it can. Try again in a few ' +
    'minutes.',
  // Close codes without an error message.
  'replaced':
    'This call was opened in another tab or window, so it continues there.',
  'idle':
    'The room was closed after a long time without activity. Press Start to ' +
    'join again.',
  'unreachable':
    'Cannot reach the call server. Check your connection and press Start ' +
    'again.',
  // Browser side.
  'media-denied':
    'Camera and microphone access was denied. To allow it, tap or click the ' +
    'lock or camera icon next to the web address, allow Camera and ' +
    'Microphone, then press Start again.',
  'media-not-found':
    'No camera or microphone was found. Connect one and press Start again.',
  'media-busy':
    'Your camera or microphone is in use by another program. Close that ' +
    'program and press Start again.',
  'media-error':
    'Could not start your camera or microphone. Press Start to try again.',
  'device-denied':
    'Access to that device was denied. Allow it in your browser\'s site ' +
    'settings, or choose another one.',
  'device-busy':
    'That device is in use by another program. Close that program, or ' +
    'choose another one.',
  'device-missing': 'That device is no longer connected. Choose another one.',
  'device-error': 'Could not switch to that device. Choose another one.',
  'insecure':
    'Calls need a secure connection. Open this page with an https:// ' +
    'address.',
  'relay-unavailable':
    'Relay-only mode needs a TURN relay server, and this server has none. ' +
    'Use Auto mode to connect directly (the other person may then see your ' +
    'IP address).',
  'network-web-only':
    'Your network allows only web traffic, so the call cannot reach its ' +
    'relay server. Ask your network\'s administrator to let calls through, ' +
    'or the administrator of this call service to offer the relay on the ' +
    'web port (TURN over TLS on port 443).',
  'relay-preflight-failed':
    'Could not reach the relay server from this network, so Relay-only mode ' +
    'cannot work. Press Start to try again, or choose Auto mode.',
  'unverified':
    'This call could not be verified: the connection may be intercepted. ' +
    'The call was stopped.',
  'invalid-link':
    'This invite link is not valid. Check that you copied all of it, or ' +
    'generate a new room.',
  // POST /rooms.
  'http-400':
    'The server refused to register the room. Reload the page and press ' +
    'Start again.',
  'http-403':
    'This server does not accept calls from this web address. Open the ' +
    'invite link on the server\'s own address.',
  'http-415':
    'The server refused to register the room. Reload the page and press ' +
    'Start again.',
  'http-429':
    'Too many rooms were opened from your network. Wait a minute and press ' +
    'Start again.',
  'http-503':
    'The server has no room for more calls right now. Try again in a few ' +
    'minutes.',
});

/**
 * Replaces `{name}` placeholders.
 * @param {string} text
 * @param {Record<string, string|number>} [values]
 * @return {string}
 */
function fill(text, values = {}) {
  return text.replace(/\{(\w+)\}/g, (m, k) =>
    k in values ? String(values[k]) : m,
  );
}

/**
 * The sentences of the page: `status(state, values?)`, `error(code)`,
 * `quality(kind, value)`; `hasError(code)` says whether a code has its own
 * sentence.
 * @type {{
 *   status: function(string, Record<string, (string|number)>=): string,
 *   error: function(string): string,
 *   hasError: function(string): boolean,
 *   quality: function(string, (string|number)): string,
 * }}
 */
export const messages = Object.freeze({
  status: (state, values) => fill(STATUS[state] ?? STATUS.error, values),
  error: (code) => ERRORS[code] ?? unexpected(code),
  hasError: (code) => Object.hasOwn(ERRORS, code),
  quality: (kind, value) => fill(QUALITY[kind] ?? kind, {v: value}),
});

/**
 * The sentence for an error code this page does not know.
 * @param {string} code
 * @return {string}
 */
function unexpected(code) {
  if (code.startsWith('http-')) {
    return (
      `The server answered with an unexpected error (${code.slice(5)}). ` +
      'Press Start to try again.'
    );
  }
  return 'Something went wrong. Press Start to try again.';
}
