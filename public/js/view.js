/**
 * @file The page's DOM. Only `textContent`, attributes and properties are set
 *     here, never `innerHTML`, so no peer or server data can become markup.
 *     The ids are the page's contract (index.html, public/README.md).
 */

import {messages} from './messages.js';
import {playOrOfferTap} from './playback.js';

/**
 * @param {string} id
 * @return {HTMLElement}
 */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el;
}

/**
 * @typedef {{
 *   hasRoom: boolean,
 *   inSession: boolean,
 *   testing: boolean,
 *   canCopy: boolean,
 *   hasMedia: boolean,
 *   hasVideo: boolean,
 *   muted: boolean,
 *   cameraOff: boolean,
 *   switching: boolean,
 * }} Controls what the buttons may do now
 */

/** @typedef {import('./stats.js').Sample} Sample */
/** @typedef {import('./quality.js').Assessment} Assessment */

/**
 * A bitrate in words.
 * @param {number} kbps
 * @return {string}
 */
function rate(kbps) {
  return kbps >= 1000 ?
    `${(kbps / 1000).toFixed(1)} Mbit/s` :
    `${Math.round(kbps)} kbit/s`;
}

/** The elements of index.html and how they show the state of the call. */
export class View {
  /** Finds every element; throws if index.html lacks one. */
  constructor() {
    this.generateBox = byId('generate-box');
    this.generate = /** @type {HTMLButtonElement} */ (byId('generate'));
    this.inviteBox = byId('invite-box');
    this.inviteLink = /** @type {HTMLInputElement} */ (byId('invite-link'));
    this.copyInvite = /** @type {HTMLButtonElement} */ (byId('copy-invite'));
    this.shareInvite = /** @type {HTMLButtonElement} */ (byId('share-invite'));
    this.copyNote = byId('copy-note');
    this.modeBox = /** @type {HTMLFieldSetElement} */ (byId('mode'));
    this.startBox = byId('start-box');
    this.start = /** @type {HTMLButtonElement} */ (byId('start'));
    this.testMedia = /** @type {HTMLButtonElement} */ (byId('test-media'));
    this.status = byId('status');
    this.statusDetail = byId('status-detail');
    this.errorBox = byId('error-box');
    this.error = byId('error');
    this.useAuto = /** @type {HTMLButtonElement} */ (byId('use-auto'));
    this.errorHelp = /** @type {HTMLAnchorElement} */ (byId('error-help'));
    this.netcheck = byId('netcheck');
    this.netcheckText = byId('netcheck-text');
    this.netcheckDetails = byId('netcheck-details');
    this.remoteVideo = /** @type {HTMLVideoElement} */ (byId('remote-video'));
    this.remotePlaceholder = byId('remote-placeholder');
    this.localVideo = /** @type {HTMLVideoElement} */ (byId('local-video'));
    this.mute = /** @type {HTMLButtonElement} */ (byId('mute'));
    this.camera = /** @type {HTMLButtonElement} */ (byId('camera'));
    this.hangup = /** @type {HTMLButtonElement} */ (byId('hangup'));
    this.quality = byId('quality');
    this.qualityText = byId('quality-text');
    this.qualityDetails = byId('quality-details');
    this.qualityWarning = byId('quality-warning');
    this.announcer = byId('announce');
    this.safety = byId('safety');
    this.safetyCode = byId('safety-code');
    this.check = byId('check');
    this.previewBox = byId('preview-box');
    this.previewVideo = /** @type {HTMLVideoElement} */ (byId('preview-video'));
    this.cameraSelect = /** @type {HTMLSelectElement} */ (
      byId('camera-select')
    );
    this.micSelect = /** @type {HTMLSelectElement} */ (byId('mic-select'));
    this.micLevel = /** @type {HTMLMeterElement} */ (byId('mic-level'));
    this.speakerSelect = /** @type {HTMLSelectElement} */ (
      byId('speaker-select')
    );
    this.speakerField = byId('speaker-field');
    this.deviceNote = byId('device-note');
    /** Whether this browser has a share sheet (phones, mostly). */
    this.canShare = typeof navigator.share === 'function';
  }

  /** @return {'relay'|'auto'} the chosen mode */
  get mode() {
    const checked = /** @type {HTMLInputElement|null} */ (
      this.modeBox.querySelector('input[name="mode"]:checked')
    );
    return checked?.value === 'auto' ? 'auto' : 'relay';
  }

  /** @param {'relay'|'auto'} mode */
  set mode(mode) {
    const input = /** @type {HTMLInputElement|null} */ (
      this.modeBox.querySelector(`input[name="mode"][value="${mode}"]`)
    );
    if (input) input.checked = true;
  }

  /**
   * @param {string} state one of the `data-state` values
   * @param {string} text the human sentence
   */
  setStatus(state, text) {
    this.status.dataset.state = state;
    document.body.dataset.state = state;
    if (this.status.textContent !== text) this.status.textContent = text;
  }

  /**
   * A second, quieter status line (not announced: e.g. a countdown).
   * @param {string} text `''` hides it
   */
  setStatusDetail(text) {
    if (this.statusDetail.textContent !== text) {
      this.statusDetail.textContent = text;
    }
    this.statusDetail.hidden = text === '';
  }

  /**
   * The text over the remote video while there is no picture.
   * @param {string} text
   */
  setPlaceholder(text) {
    if (this.remotePlaceholder.textContent !== text) {
      this.remotePlaceholder.textContent = text;
    }
  }

  /**
   * Shows an error sentence, or hides the error when `code` is null.
   * @param {string|null} code `data-code`
   * @param {string} [text]
   */
  setError(code, text = '') {
    if (code === null) {
      this.error.textContent = '';
      delete this.error.dataset.code;
      this.errorBox.hidden = true;
      this.useAuto.hidden = true;
      this.errorHelp.hidden = true;
      return;
    }
    this.error.dataset.code = code;
    this.error.textContent = text;
    this.errorBox.hidden = false;
    this.useAuto.hidden = code !== 'relay-unavailable';
    this.errorHelp.hidden = code !== 'network-web-only';
  }

  /**
   * The network check's verdict (netcheck.js), or hides it (null).
   * @param {string|null} verdict `data-verdict`
   * @param {string} [text] the sentence ('' when `#error` says it)
   * @param {string} [details] what each transport did
   * @param {boolean} [trouble] said because a call does not connect
   */
  setNetCheck(verdict, text = '', details = '', trouble = false) {
    this.netcheck.hidden = verdict === null;
    this.netcheck.dataset.verdict = verdict ?? '';
    this.netcheck.dataset.trouble = String(trouble);
    this.netcheckText.textContent = text;
    this.netcheckText.hidden = text === '';
    this.netcheckDetails.textContent = details;
  }

  /**
   * @param {string|null} link the invite link, or null when there is no valid
   *     room
   */
  setInvite(link) {
    this.generateBox.hidden = link !== null;
    this.inviteBox.hidden = link === null;
    this.startBox.hidden = link === null;
    this.inviteLink.value = link ?? '';
    this.copyNote.textContent = '';
  }

  /** @param {string} text a short note next to the invite link ('' to clear) */
  setCopyNote(text) {
    this.copyNote.textContent = text;
  }

  /** @param {string} text a note under the device pickers ('' to clear) */
  setDeviceNote(text) {
    this.deviceNote.textContent = text;
  }

  /**
   * Says something to screen readers once (a polite live region).
   * @param {string} text
   */
  announce(text) {
    this.announcer.textContent = '';
    // A new text node in a cleared region is announced even if the text
    // repeats.
    setTimeout(() => {
      this.announcer.textContent = text;
    }, 50);
  }

  /** @param {Controls} c */
  setControls(c) {
    document.body.classList.toggle('in-call', c.inSession);
    // Before a call the empty video area and the call controls are noise.
    document.body.classList.toggle('quiet', !c.inSession);
    // Joining, checking the relay, waiting for camera permission: no pictures
    // yet, so no empty video area.
    document.body.classList.toggle('no-media', !c.hasMedia);
    this.startBox.hidden = !c.hasRoom || c.inSession;
    this.start.disabled = !c.hasRoom || c.inSession || c.testing;
    this.testMedia.hidden = c.hasMedia || c.inSession;
    this.testMedia.disabled = c.testing;
    this.modeBox.disabled = c.inSession;
    this.copyInvite.disabled = !c.canCopy;
    this.shareInvite.hidden = !this.canShare || !c.hasRoom;
    this.shareInvite.disabled = !c.canCopy;
    this.hangup.disabled = !c.inSession;
    this.mute.hidden = !c.hasMedia;
    this.camera.hidden = !c.hasMedia;
    this.mute.disabled = !c.hasMedia;
    this.mute.setAttribute('aria-pressed', String(c.hasMedia && c.muted));
    this.mute.textContent = c.hasMedia && c.muted ? 'Unmute' : 'Mute';
    this.camera.disabled = !c.hasVideo;
    this.camera.setAttribute('aria-pressed', String(c.hasVideo && c.cameraOff));
    this.camera.textContent =
      c.hasVideo && c.cameraOff ? 'Camera on' : 'Camera off';
    this.check.hidden = !c.hasMedia;
    this.previewBox.hidden = c.inSession || !c.hasVideo;
    this.cameraSelect.disabled =
      c.switching || this.cameraSelect.dataset.empty === 'true';
    this.micSelect.disabled =
      c.switching || this.micSelect.dataset.empty === 'true';
    this.speakerSelect.disabled = c.switching;
  }

  /**
   * Shows the connection quality, or hides it (null).
   * @param {?Sample} s
   * @param {?Assessment} a
   */
  setQuality(s, a) {
    if (!s || !a) {
      this.quality.hidden = true;
      this.quality.dataset.level = 'none';
      this.qualityText.textContent = '';
      this.qualityDetails.textContent = '';
      this.qualityWarning.hidden = true;
      this.qualityWarning.textContent = '';
      return;
    }
    this.quality.hidden = false;
    this.quality.dataset.level = a.level;
    this.qualityText.textContent = messages.status(`quality-${a.level}`);
    /** @type {string[]} */
    const parts = [s.transport];
    if (s.rttMs !== null) parts.push(`round trip ${Math.round(s.rttMs)} ms`);
    if (s.jitterMs !== null) parts.push(`jitter ${Math.round(s.jitterMs)} ms`);
    if (s.lossPercent !== null) {
      parts.push(`loss ${s.lossPercent.toFixed(1)}%`);
    }
    if (s.mos !== null) parts.push(`MOS ${s.mos.toFixed(1)} of 5 (estimate)`);
    if (s.inKbps !== null && s.outKbps !== null) {
      parts.push(`in ${rate(s.inKbps)}, out ${rate(s.outKbps)}`);
    }
    this.qualityDetails.textContent = parts.join(' · ');
  }

  /**
   * The visible warning about a poor connection (null hides it).
   * @param {string[]|null} reasons
   */
  setQualityWarning(reasons) {
    if (!reasons) {
      this.qualityWarning.hidden = true;
      this.qualityWarning.textContent = '';
      return;
    }
    this.qualityWarning.textContent = messages.status('quality-warning', {
      reasons: reasons.join('; '),
    });
    this.qualityWarning.hidden = false;
  }

  /**
   * A waiting line in #quality before the first sample (connected, no reading
   * yet), or hides it.
   * @param {boolean} show
   */
  setQualityPending(show) {
    if (!show) return;
    this.quality.hidden = false;
    this.quality.dataset.level = 'none';
    this.qualityText.textContent = messages.status('quality-waiting');
    this.qualityDetails.textContent = '';
  }

  /**
   * Shows the safety code (six digits, shown as two groups of three), or hides
   * it (null).
   * @param {string|null} code
   */
  setSafetyCode(code) {
    this.safety.hidden = code === null;
    this.safetyCode.textContent =
      code === null ? '' : `${code.slice(0, 3)} ${code.slice(3)}`;
  }

  /** @param {MediaStream|null} stream */
  setLocalStream(stream) {
    this.showStream(this.localVideo, stream);
    this.showStream(this.previewVideo, stream);
  }

  /** @param {MediaStream|null} stream */
  setRemoteStream(stream) {
    this.showStream(this.remoteVideo, stream);
  }

  /**
   * After a track of the local stream was replaced: make the local videos
   * show the new one.
   * @param {MediaStream} stream
   */
  reloadLocalStream(stream) {
    for (const video of [this.localVideo, this.previewVideo]) {
      video.srcObject = null;
      this.showStream(video, stream);
    }
  }

  /**
   * @private
   * @param {HTMLVideoElement} video
   * @param {MediaStream|null} stream
   */
  showStream(video, stream) {
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    video.closest('figure')?.classList.toggle('live', stream !== null);
    if (stream) playOrOfferTap(video);
  }
}
