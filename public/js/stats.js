/**
 * @file In-call statistics (SPEC §7.11) from `RTCPeerConnection.getStats()`
 *     (W3C webrtc-stats): the transport of the selected candidate pair (relay
 *     or direct; UDP, TCP or TLS), round-trip time, audio jitter, recent audio
 *     packet loss, and a MOS estimate from the simplified ITU-T G.107 E-model
 *     commonly used for WebRTC.
 */

/**
 * @typedef {{
 *   transport: string,
 *   rttMs: (number|null),
 *   jitterMs: (number|null),
 *   lossPercent: (number|null),
 *   mos: (number|null),
 * }} Sample one reading; null where the browser has no value yet
 */

/**
 * MOS (1-5) from delay, jitter and loss: effective latency = RTT/2 + 2 x jitter
 * + 10 ms; R = 93.2 - latency/40 (below 160 ms) or 93.2 - (latency - 120)/10,
 * minus 2.5 per % lost; MOS = 1 + 0.035 R + 7e-6 R (R - 60)(100 - R).
 * @param {number} rttMs
 * @param {number} jitterMs
 * @param {number} lossPercent
 * @return {number}
 */
function mosEstimate(rttMs, jitterMs, lossPercent) {
  const latency = rttMs / 2 + 2 * jitterMs + 10;
  let r = latency < 160 ? 93.2 - latency / 40 : 93.2 - (latency - 120) / 10;
  r = Math.min(100, Math.max(0, r - 2.5 * lossPercent));
  return 1 + 0.035 * r + 0.000007 * r * (r - 60) * (100 - r);
}

/** Polls the statistics of one connection while it lives. */
export class CallStats {
  /**
   * @param {RTCPeerConnection} pc
   * @param {function(Sample): void} onSample
   * @param {number} [periodMs=2000]
   */
  constructor(pc, onSample, periodMs = 2000) {
    this.pc = pc;
    this.onSample = onSample;
    this.lastLost = 0;
    this.lastReceived = 0;
    this.timer = setInterval(() => void this.poll(), periodMs);
  }

  /** Stops polling. */
  stop() {
    clearInterval(this.timer);
  }

  /** @private */
  async poll() {
    if (this.pc.connectionState !== 'connected') return;
    /** @type {RTCStatsReport} */
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return;
    }
    /** @type {any} */
    let pair = null;
    /** @type {any} */
    let audioIn = null;
    report.forEach((/** @type {any} */ s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        pair = report.get(s.selectedCandidatePairId) ?? pair;
      } else if (
        s.type === 'candidate-pair' &&
        s.nominated &&
        s.state === 'succeeded' &&
        !pair
      ) {
        pair = s;
      } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        audioIn = s;
      }
    });
    if (!pair) return;
    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    const relayed =
      local?.candidateType === 'relay' || remote?.candidateType === 'relay';
    const proto = String(
      local?.candidateType === 'relay' ?
        (local.relayProtocol ?? local.protocol ?? 'udp') :
        (local?.protocol ?? 'udp'),
    ).toUpperCase();
    const transport = `${relayed ? 'Relay' : 'Direct'} (${proto})`;
    const rttMs =
      typeof pair.currentRoundTripTime === 'number' ?
        pair.currentRoundTripTime * 1000 :
        null;
    const jitterMs =
      typeof audioIn?.jitter === 'number' ? audioIn.jitter * 1000 : null;
    let lossPercent = null;
    if (audioIn && typeof audioIn.packetsLost === 'number') {
      const lost = Math.max(0, audioIn.packetsLost - this.lastLost);
      const received = Math.max(
          0,
          (audioIn.packetsReceived ?? 0) - this.lastReceived,
      );
      this.lastLost = audioIn.packetsLost;
      this.lastReceived = audioIn.packetsReceived ?? 0;
      lossPercent = lost + received > 0 ? (100 * lost) / (lost + received) : 0;
    }
    const mos =
      rttMs !== null ?
        mosEstimate(rttMs, jitterMs ?? 0, lossPercent ?? 0) :
        null;
    this.onSample({transport, rttMs, jitterMs, lossPercent, mos});
  }
}
