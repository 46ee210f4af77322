/**
 * @file The safety code reads the same bytes the authentication read
 *     (docs/security.md, "The safety code"; docs/protocol.md).
 *
 * The code is computed ({@link DtlsAuth#safetyCode}) from two descriptions:
 * the last `offer`/`answer` this page SENT, exactly as it left (the SDP its
 * `auth` was computed over), and the last one it RECEIVED AND VERIFIED, exactly
 * as it arrived (the SDP whose `auth` it checked). Never from
 * `pc.remoteDescription`: a browser may keep only some of the `a=fingerprint`
 * lines it was given (Chromium keeps one of the three that aiortc sends) or
 * reorder them, and a code over what one browser chose to store differs from
 * the other side's on an honest call.
 *
 * Within one `RTCPeerConnection` every description carries the same
 * certificate fingerprints, so "the last sent" and "the last verified" are
 * those of the current connection once it is connected (a peer that reloads
 * sends a new offer, which is verified before the new connection exists).
 */

/**
 * The descriptions a safety code is computed from.
 */
export class SafetyCode {
  /** Nothing sent or verified yet. */
  constructor() {
    /** @type {string|null} the last offer or answer sent, as sent */
    this.sentSdp = null;
    /** @type {string|null} the last offer or answer verified, as received */
    this.verifiedSdp = null;
  }

  /**
   * Notes a signaling message this page sent (only offers and answers count).
   * @param {{type: string, sdp?: unknown}} msg
   */
  noteSent(msg) {
    if (isDescription(msg)) this.sentSdp = /** @type {string} */ (msg.sdp);
  }

  /**
   * Notes a relayed description whose `auth` was verified (call only after
   * `DtlsAuth#verify` said `ok`).
   * @param {{type: string, sdp?: unknown}} msg
   */
  noteVerified(msg) {
    if (isDescription(msg)) this.verifiedSdp = /** @type {string} */ (msg.sdp);
  }

  /** Forgets both (a room switch: another key, another peer). */
  forget() {
    this.sentSdp = null;
    this.verifiedSdp = null;
  }

  /**
   * The six digits, or null before both descriptions are known.
   * @param {import('./auth.js').DtlsAuth} auth the room's key
   * @return {Promise<string|null>}
   */
  async code(auth) {
    if (this.sentSdp === null || this.verifiedSdp === null) return null;
    return auth.safetyCode(this.sentSdp, this.verifiedSdp);
  }
}

/**
 * @param {{type: string, sdp?: unknown}} msg
 * @return {boolean} whether it is an offer or answer with an SDP string
 */
function isDescription(msg) {
  return (
    (msg.type === 'offer' || msg.type === 'answer') &&
    typeof msg.sdp === 'string'
  );
}
