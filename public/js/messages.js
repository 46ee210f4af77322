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
  'ready': 'Choose a connection mode and press Start.',
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
    'Send the invite link to the other person, then press Start. Choose a ' +
    'connection mode first if you like.',
  'testing':
    'Checking your camera and microphone. Allow access if your browser asks.',
  'tested': 'Your camera and microphone work. Press Start when you are ready.',
  'restarting': 'Server restarting, reconnecting…',
  'call-continues': ' Your call continues meanwhile.',
  'peer-here': 'The other person is here and getting ready…',
  'interrupted': 'Connection interrupted, trying to recover…',
  'failed': 'Connection failed, trying again…',
  'copied': 'Invite link copied.',
  'copy-manual': 'The link is selected: press Ctrl+C (or ⌘C) to copy it.',
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
    'This room does not exist on this server or has expired. Ask for a new ' +
    'invite link.',
  'room-full': 'This call already has two people. Try again later.',
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
    'Camera and microphone access was denied. Allow it in your browser\'s ' +
    'site settings and press Start again.',
  'media-not-found':
    'No camera or microphone was found. Connect one and press Start again.',
  'media-busy':
    'Your camera or microphone is in use by another program. Close that ' +
    'program and press Start again.',
  'media-error':
    'Could not start your camera or microphone. Press Start to try again.',
  'insecure':
    'Calls need a secure connection. Open this page with an https:// ' +
    'address.',
  'relay-unavailable':
    'Relay-only mode needs a TURN relay server, and this server has none. ' +
    'Use Auto mode to connect directly (the other person may then see your ' +
    'IP address).',
  'relay-preflight-failed':
    'Could not reach the relay server from this network, so Relay-only mode ' +
    'cannot work. Press Start to try again, or choose Auto mode.',
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
 * The sentences of the page.
 * @type {{status: (state: string) => string, error: (code: string) => string}}
 */
export const messages = Object.freeze({
  status: (state) => STATUS[state] ?? STATUS.error,
  error: (code) => ERRORS[code] ?? unexpected(code),
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
