/**
 * @file In-call statistics (SPEC §7.11) from `RTCPeerConnection.getStats()`
 *     (W3C webrtc-stats), read every second: the transport of the selected
 *     candidate pair (relay or direct; UDP, TCP or TLS), round-trip time, audio
 *     jitter, recent audio packet loss, bitrates, whether anything arrives at
 *     all, and a MOS estimate from the simplified ITU-T G.107 E-model commonly
 *     used for WebRTC.
 */

/**
 * @typedef {{
 *   relayed: boolean,
 *   protocol: string,
 *   transport: string,
 *   rttMs: (number|null),
 *   jitterMs: (number|null),
 *   lossPercent: (number|null),
 *   mos: (number|null),
 *   inKbps: (number|null),
 *   outKbps: (number|null),
 *   stalled: boolean,
 * }} Sample one reading; null where the browser has no value yet. `protocol`
 *     is `UDP`, `TCP` or `TLS` (to the relay, for a relayed pair); `transport`
 *     the two in words, e.g. `Relay (UDP)`; `lossPercent` is audio loss over
 *     the last {@link LOSS_WINDOW} readings; `stalled` says no packet arrived
 *     in the last {@link STALL_READINGS} readings.
 */

/** Readings the loss is computed over (a few seconds of audio packets). */
const LOSS_WINDOW = 3;
/** Readings without a single incoming packet before `stalled`. */
const STALL_READINGS = 2;

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

/**
 * Counters of one reading, for differences between readings.
 * @typedef {{
 *   at: number,
 *   lost: number,
 *   received: number,
 *   bytesIn: number,
 *   bytesOut: number,
 *   packetsIn: number,
 * }} Counters
 */

/** Polls the statistics of one connection while it lives. */
export class CallStats {
  /**
   * @param {RTCPeerConnection} pc
   * @param {function(Sample): void} onSample
   * @param {number} [periodMs=1000]
   */
  constructor(pc, onSample, periodMs = 1000) {
    this.pc = pc;
    this.onSample = onSample;
    /** @type {Counters[]} the last readings, oldest first */
    this.history = [];
    this.busy = false;
    this.timer = setInterval(() => void this.poll(), periodMs);
    void this.poll();
  }

  /** Stops polling. */
  stop() {
    clearInterval(this.timer);
  }

  /** @private */
  async poll() {
    if (this.busy || this.pc.connectionState !== 'connected') return;
    this.busy = true;
    /** @type {RTCStatsReport} */
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return;
    } finally {
      this.busy = false;
    }
    /** @type {any} */
    let pair = null;
    /** @type {any} */
    let audioIn = null;
    /** @type {Counters} */
    const now = {
      at: performance.now(),
      lost: 0,
      received: 0,
      bytesIn: 0,
      bytesOut: 0,
      packetsIn: 0,
    };
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
      } else if (s.type === 'inbound-rtp') {
        now.bytesIn += s.bytesReceived ?? 0;
        now.packetsIn += s.packetsReceived ?? 0;
        if (s.kind === 'audio') audioIn = s;
      } else if (s.type === 'outbound-rtp') {
        now.bytesOut += s.bytesSent ?? 0;
      }
    });
    if (!pair) return;
    if (audioIn) {
      now.lost = Math.max(0, audioIn.packetsLost ?? 0);
      now.received = audioIn.packetsReceived ?? 0;
    }
    const prev = this.history.at(-1) ?? null;
    const oldest = this.history[Math.max(0, this.history.length - LOSS_WINDOW)];
    const stallFrom = this.history.at(-STALL_READINGS) ?? null;
    this.history.push(now);
    if (this.history.length > Math.max(LOSS_WINDOW, STALL_READINGS)) {
      this.history.shift();
    }

    const local = report.get(pair.localCandidateId);
    const remote = report.get(pair.remoteCandidateId);
    const relayed =
      local?.candidateType === 'relay' || remote?.candidateType === 'relay';
    const protocol = String(
      local?.candidateType === 'relay' ?
        (local.relayProtocol ?? local.protocol ?? 'udp') :
        (local?.protocol ?? 'udp'),
    ).toUpperCase();
    const transport = `${relayed ? 'Relay' : 'Direct'} (${protocol})`;
    const rttMs =
      typeof pair.currentRoundTripTime === 'number' ?
        pair.currentRoundTripTime * 1000 :
        null;
    const jitterMs =
      typeof audioIn?.jitter === 'number' ? audioIn.jitter * 1000 : null;
    /** @type {number|null} */
    let lossPercent = null;
    if (audioIn && oldest) {
      const lost = Math.max(0, now.lost - oldest.lost);
      const received = Math.max(0, now.received - oldest.received);
      lossPercent = lost + received > 0 ? (100 * lost) / (lost + received) : 0;
    }
    /** @type {number|null} */
    let inKbps = null;
    /** @type {number|null} */
    let outKbps = null;
    if (prev && now.at > prev.at) {
      const seconds = (now.at - prev.at) / 1000;
      inKbps = Math.max(0, (8 * (now.bytesIn - prev.bytesIn)) / 1000 / seconds);
      outKbps = Math.max(
          0,
          (8 * (now.bytesOut - prev.bytesOut)) / 1000 / seconds,
      );
    }
    const stalled = stallFrom !== null && now.packetsIn === stallFrom.packetsIn;
    const mos =
      rttMs !== null ?
        mosEstimate(rttMs, jitterMs ?? 0, lossPercent ?? 0) :
        null;
    this.onSample({
      relayed,
      protocol,
      transport,
      rttMs,
      jitterMs,
      lossPercent,
      mos,
      inKbps,
      outKbps,
      stalled,
    });
  }
}
