/**
 * @file Authenticating the DTLS fingerprints with a key only the two callers
 *     know (docs/protocol.md, "Authenticated descriptions"; docs/security.md).
 *
 * The room token lives only in `location.hash`; the server sees
 * `sha256(token text)`. Both callers derive
 * `K = HKDF-SHA256(ikm = the token's 32 bytes, salt = "alisay",
 * info = "dtls-auth v1")` (RFC 5869) and send, with each `offer` and `answer`,
 * `auth = base64url(HMAC-SHA256(K, transcript))` (RFC 2104), where the
 * transcript binds the message type, the sender's role and the normalized
 * `a=fingerprint` lines (RFC 8122) of that SDP. The receiver recomputes it with
 * `crypto.subtle.verify` (a constant-time comparison) before
 * `setRemoteDescription`. The safety code is six digits from
 * `HMAC-SHA256(K, "safety v1" ...)` over both sides' fingerprints, read from
 * the same bytes the tags cover: the description sent and the description
 * received and verified (safety.js).
 *
 * Byte layouts (ASCII, `\n` is one 0x0A byte, every line ends with `\n`):
 *
 *     transcript  = "alisay dtls-auth v1\n" type "\n" role "\n" *(fp "\n")
 *     safety      = "safety v1\n" *(fp "\n")
 *     type        = "offer" | "answer"
 *     role        = "polite" | "impolite"   (of the SENDER)
 *     fp          = hash-func " " HEX *(":" HEX)
 *
 * `hash-func` lowercase, `HEX` two uppercase hex digits; the transcript's fps
 * are every `a=fingerprint` line of the SDP (session and media level),
 * normalized, deduplicated and sorted by byte value; the safety code's fps are
 * the same for both descriptions together (so it does not depend on who
 * offered). Works in browsers and in Node >= 20 (`globalThis.crypto`).
 */

const enc = new TextEncoder();

/** Lines that are `a=fingerprint` attributes, whatever their spelling. */
const FINGERPRINT_LINE = /^\s*a=fingerprint:/i;
/** The exact grammar of RFC 8122 §5 (hex in either case, one or more spaces). */
const FINGERPRINT_ATTR =
  /^a=fingerprint:([A-Za-z0-9-]{1,32}) +([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){0,63})$/i;
/** A tag: base64url of 32 bytes, no padding. */
const TAG_RE = /^[A-Za-z0-9_-]{43}$/;
/** A room token: base64url of 32 bytes, no padding. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/**
 * @param {Uint8Array} bytes
 * @return {string} base64url without padding
 */
function toBase64url(bytes) {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/**
 * @param {string} text base64url without padding (checked by the caller)
 * @return {Uint8Array}
 */
function fromBase64url(text) {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * The key of one room and what it signs. Create with {@link DtlsAuth.fromToken}.
 */
export class DtlsAuth {
  /**
   * @param {CryptoKey} key `K`, an HMAC-SHA256 key (not extractable)
   */
  constructor(key) {
    /** @private */
    this.key = key;
  }

  /**
   * Derives `K` from a room token.
   * @param {string} token the 43-character base64url token of the hash
   * @return {Promise<DtlsAuth>}
   * @throws {TypeError} for a token that is not 43 base64url characters
   */
  static async fromToken(token) {
    if (!TOKEN_RE.test(token)) throw new TypeError('not a room token');
    const ikm = await crypto.subtle.importKey(
        'raw',
        fromBase64url(token),
        'HKDF',
        false,
        ['deriveBits'],
    );
    const bits = await crypto.subtle.deriveBits(
        {
          name: 'HKDF',
          hash: 'SHA-256',
          salt: enc.encode('alisay'),
          info: enc.encode('dtls-auth v1'),
        },
        ikm,
        256,
    );
    const key = await crypto.subtle.importKey(
        'raw',
        bits,
        {name: 'HMAC', hash: 'SHA-256'},
        false,
        ['sign', 'verify'],
    );
    return new DtlsAuth(key);
  }

  /**
   * The normalized fingerprints of an SDP: every `a=fingerprint` line (session
   * and media level) as `hash-func HEX:HEX…` with a lowercase hash function
   * and uppercase hex, deduplicated and sorted by byte value.
   * @param {string} sdp
   * @return {string[]|null} null when the SDP has none, or has one that does
   *     not follow RFC 8122's grammar exactly (a line we could not read is
   *     never skipped: the browser might read it)
   */
  static fingerprints(sdp) {
    const found = new Set();
    for (const raw of String(sdp).split(/\r?\n|\r/)) {
      if (!FINGERPRINT_LINE.test(raw)) continue;
      const m = FINGERPRINT_ATTR.exec(raw.replace(/[ \t]+$/, ''));
      if (!m) return null;
      found.add(`${m[1].toLowerCase()} ${m[2].toUpperCase()}`);
    }
    if (found.size === 0) return null;
    return [...found].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * The transcript of one description (layout in the file comment).
   * @param {'offer'|'answer'} type
   * @param {boolean} senderPolite the sender's role
   * @param {string[]} fingerprints from {@link DtlsAuth.fingerprints}
   * @return {Uint8Array}
   */
  static transcript(type, senderPolite, fingerprints) {
    if (type !== 'offer' && type !== 'answer') {
      throw new TypeError('type must be offer or answer');
    }
    const role = senderPolite ? 'polite' : 'impolite';
    const lines = ['alisay dtls-auth v1', type, role, ...fingerprints];
    return enc.encode(lines.map((l) => `${l}\n`).join(''));
  }

  /**
   * The `auth` of an outgoing description.
   * @param {'offer'|'answer'} type
   * @param {boolean} polite this side's role
   * @param {string} sdp the local description, exactly as sent
   * @return {Promise<string>} base64url of the 32-byte HMAC (43 characters)
   * @throws {TypeError} when the SDP has no readable fingerprint
   */
  async sign(type, polite, sdp) {
    const fps = DtlsAuth.fingerprints(sdp);
    if (!fps) throw new TypeError('no readable a=fingerprint in the SDP');
    const tag = await crypto.subtle.sign(
        'HMAC',
        this.key,
        DtlsAuth.transcript(type, polite, fps),
    );
    return toBase64url(new Uint8Array(tag));
  }

  /**
   * Checks an incoming description's `auth` (constant time:
   * `crypto.subtle.verify`).
   * @param {'offer'|'answer'} type
   * @param {boolean} senderPolite the role the sender must have (the opposite
   *     of ours)
   * @param {string} sdp the description as received
   * @param {unknown} auth the `auth` field as received (may be missing)
   * @return {Promise<'ok'|'missing'|'malformed'|'mismatch'>}
   */
  async verify(type, senderPolite, sdp, auth) {
    if (auth === undefined || auth === null) return 'missing';
    if (typeof auth !== 'string' || !TAG_RE.test(auth)) return 'malformed';
    const fps = DtlsAuth.fingerprints(sdp);
    if (!fps || (type !== 'offer' && type !== 'answer')) return 'malformed';
    const ok = await crypto.subtle.verify(
        'HMAC',
        this.key,
        fromBase64url(auth),
        DtlsAuth.transcript(type, senderPolite, fps),
    );
    return ok ? 'ok' : 'mismatch';
  }

  /**
   * The safety code of a connection: both callers get the same six digits
   * when each sees the other's real fingerprints. The first four bytes of
   * `HMAC-SHA256(K, safety)` as a big-endian unsigned integer, modulo 10^6,
   * zero-padded.
   * Give it the descriptions as they went over the wire (safety.js): the
   * last one sent, exactly as sent, and the last one received whose `auth`
   * verified, exactly as received; never `pc.remoteDescription`, which a
   * browser may store with fewer or reordered fingerprint lines.
   * @param {string} localSdp the last offer or answer sent
   * @param {string} remoteSdp the last offer or answer received and verified
   * @return {Promise<string|null>} six digits, or null without fingerprints
   */
  async safetyCode(localSdp, remoteSdp) {
    const local = DtlsAuth.fingerprints(localSdp);
    const remote = DtlsAuth.fingerprints(remoteSdp);
    if (!local || !remote) return null;
    const all = [...new Set([...local, ...remote])].sort((a, b) =>
      a < b ? -1 : a > b ? 1 : 0,
    );
    const input = enc.encode(
        ['safety v1', ...all].map((l) => `${l}\n`).join(''),
    );
    const mac = new DataView(
        await crypto.subtle.sign('HMAC', this.key, input),
    );
    return String(mac.getUint32(0) % 1_000_000).padStart(6, '0');
  }
}
