/**
 * @file The microphone level meter: a Web Audio `AnalyserNode` on the local
 *     microphone track, read ten times a second into a `<meter>` (0..1). Only
 *     the meter's `value` is set, so the page's CSP (no inline styles) holds.
 */

/** How often the level is read. */
const PERIOD_MS = 100;
/** Levels below this many dBFS show as 0; 0 dBFS shows as 1. */
const FLOOR_DB = -60;
/** How fast the bar falls back (a fraction kept per reading). */
const FALL = 0.8;

/** A level meter for one microphone track at a time. */
export class MicMeter {
  /** @param {HTMLMeterElement} el */
  constructor(el) {
    this.el = el;
    /** @type {AudioContext|null} */
    this.ctx = null;
    /** @type {MediaStreamAudioSourceNode|null} */
    this.source = null;
    /** @type {AnalyserNode|null} */
    this.analyser = null;
    /** @type {MediaStreamTrack|null} */
    this.track = null;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.timer = undefined;
    this.level = 0;
  }

  /**
   * Shows the level of `track` (null: nothing, the bar at 0).
   * @param {MediaStreamTrack|null} track
   */
  attach(track) {
    if (track === this.track) return;
    this.detach();
    this.track = track;
    if (!track || typeof AudioContext === 'undefined') return;
    try {
      if (!this.ctx) this.ctx = new AudioContext();
      // Created after a click (Test or Start), so the browser lets it run.
      if (this.ctx.state === 'suspended') void this.ctx.resume();
      this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.source.connect(this.analyser);
    } catch (err) {
      console.warn(
          '[alisay] level meter unavailable',
          err instanceof Error ? err.name : err,
      );
      this.detach();
      return;
    }
    const buf = new Float32Array(this.analyser.fftSize);
    this.timer = setInterval(() => {
      if (!this.analyser) return;
      this.analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const x of buf) sum += x * x;
      const rms = Math.sqrt(sum / buf.length);
      const db = rms > 0 ? 20 * Math.log10(rms) : -Infinity;
      const now = Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
      this.level = Math.max(now, this.level * FALL);
      this.el.value = this.level < 0.01 ? 0 : this.level;
    }, PERIOD_MS);
  }

  /** Stops reading; the bar goes to 0. */
  detach() {
    clearInterval(this.timer);
    this.timer = undefined;
    this.source?.disconnect();
    this.source = null;
    this.analyser = null;
    this.track = null;
    this.level = 0;
    this.el.value = 0;
  }

  /** Stops reading and releases the audio context. */
  close() {
    this.detach();
    void this.ctx?.close().catch(() => {});
    this.ctx = null;
  }
}
