/**
 * @file The secret invite (SPEC §2): a room token kept only in `location.hash`,
 *     and the room id the server sees, `sha256(token)` as 64 lowercase hex
 *     characters, computed over the token's ASCII text (the base64url string
 *     itself, not its decoded bytes).
 */

/** A token is 43 base64url characters: 32 random bytes, no padding. */
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** One room: its secret token and the invite link that carries it. */
export class Invite {
  /**
   * @param {string} token the base64url token (never logged, never sent to the
   *     server)
   */
  constructor(token) {
    /** @type {string} */
    this.token = token;
    /** @type {Promise<string>|null} */
    this.roomIdPromise = null;
  }

  /**
   * A fresh room: 32 bytes from `crypto.getRandomValues`, base64url without
   * padding.
   * @return {Invite}
   */
  static generate() {
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    const token = btoa(bin)
        .replace(/\+/g, '-')
        .replace(/\//g, '_')
        .replace(/=+$/, '');
    return new Invite(token);
  }

  /**
   * Reads a `location.hash`.
   * @param {string} hash e.g. `#abc…` or `` (empty)
   * @return {Invite|null|'invalid'} null for no hash, 'invalid' for a hash that
   *     is not a token
   */
  static fromHash(hash) {
    const text = hash.startsWith('#') ? hash.slice(1) : hash;
    if (text === '') return null;
    return TOKEN_RE.test(text) ? new Invite(text) : 'invalid';
  }

  /**
   * The invite link for this room on the current page's origin and path.
   * @return {string}
   */
  get link() {
    return `${location.origin}${location.pathname}#${this.token}`;
  }

  /**
   * The room id: lowercase hex SHA-256 of the token text (needs a secure
   * context for `crypto.subtle`).
   * @return {Promise<string>}
   */
  roomId() {
    if (!this.roomIdPromise) {
      const data = new TextEncoder().encode(this.token);
      this.roomIdPromise = crypto.subtle
          .digest('SHA-256', data)
          .then((buf) =>
            Array.from(new Uint8Array(buf), (b) =>
              b.toString(16).padStart(2, '0'),
            ).join(''),
          );
    }
    return this.roomIdPromise;
  }
}
