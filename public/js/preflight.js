/**
 * @file Relay preflight (SPEC §7.6): before asking for camera and microphone in
 *     Relay-only mode, prove that the TURN server hands out a relay candidate
 *     with the issued credentials.
 */

/**
 * Gathers ICE candidates with `iceTransportPolicy: "relay"` on a throwaway
 * connection and waits for one of type `relay`.
 * @param {RTCIceServer[]} iceServers from `joined` / `ice-servers`
 * @param {number} [timeoutMs=8000] how long to wait for a relay candidate
 * @return {Promise<boolean>} true when a relay candidate appeared in time;
 *     never rejects
 */
export async function relayPreflight(iceServers, timeoutMs = 8000) {
  /** @type {RTCPeerConnection} */
  let pc;
  try {
    pc = new RTCPeerConnection({iceServers, iceTransportPolicy: 'relay'});
  } catch (err) {
    console.warn(
        '[alisay] relay preflight: bad configuration',
        err instanceof Error ? err.name : err,
    );
    return false;
  }
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      /** @param {boolean} ok */
      const done = (ok) => {
        clearTimeout(timer);
        resolve(ok);
      };
      pc.onicecandidate = ({candidate}) => {
        if (!candidate) {
          done(false); // Gathering finished without a relay candidate.
        } else if (
          candidate.type === 'relay' ||
          / typ relay( |$)/.test(candidate.candidate)
        ) {
          done(true);
        }
      };
      pc.createDataChannel('preflight');
      pc.createOffer()
          .then((offer) => pc.setLocalDescription(offer))
          .catch(() => done(false));
    });
  } finally {
    pc.close();
  }
}
