/**
 * @file How many ICE generations (and so TURN allocations) one
 *     `RTCPeerConnection` holds. Chromium keeps every generation's TURN
 *     allocations until the connection is closed: each ICE restart adds one
 *     allocation per TURN URL, so an honest caller's restarts used up coturn's
 *     `user-quota` and then failed with `486 Allocation Quota Reached`
 *     (issue 17, measured in the network lab: 2 more allocations per restart,
 *     none released). A connection may therefore restart in place three times
 *     (make before break: the old generation carries media meanwhile; three
 *     network changes in one call, Wi-Fi to mobile and back, keep the
 *     connection, its DTLS fingerprints and so its safety code); after that,
 *     the owner replaces the connection, and closing the old one releases all
 *     of its allocations.
 */

/**
 * ICE generations one connection may hold: its first and three restarts'.
 * What `turn.user_quota`'s default is sized for (docs/config.md).
 */
export const MAX_ICE_GENERATIONS = 4;

/** Counts the ICE generations of one connection from its local descriptions. */
export class IceGenerations {
  constructor() {
    /** @type {string|null} the ICE username fragment of the newest one */
    this.ufrag = null;
    /** Generations so far (local ICE credentials seen). */
    this.count = 0;
  }

  /**
   * Notes a local description that was just set.
   * @param {string} sdp
   */
  note(sdp) {
    const ufrag = /^a=ice-ufrag:(\S+)/m.exec(sdp)?.[1] ?? null;
    if (ufrag !== null && ufrag !== this.ufrag) {
      this.ufrag = ufrag;
      this.count += 1;
    }
  }

  /**
   * Whether one more ICE restart in place stays within
   * {@link MAX_ICE_GENERATIONS}.
   * @return {boolean}
   */
  get canRestartInPlace() {
    return this.count < MAX_ICE_GENERATIONS;
  }
}
