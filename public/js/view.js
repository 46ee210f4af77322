/**
 * @file The page's DOM. Only `textContent`, attributes and properties are set
 *     here, never `innerHTML`, so no peer or server data can become markup.
 */

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
 * }} Controls what the buttons may do now
 */

/** @typedef {import('./stats.js').Sample} Sample */

/** The elements of index.html and how they show the state of the call. */
export class View {
  /** Finds every element; throws if index.html lacks one. */
  constructor() {
    this.generateBox = byId('generate-box');
    this.generate = /** @type {HTMLButtonElement} */ (byId('generate'));
    this.inviteBox = byId('invite-box');
    this.inviteLink = /** @type {HTMLInputElement} */ (byId('invite-link'));
    this.copyInvite = /** @type {HTMLButtonElement} */ (byId('copy-invite'));
    this.copyNote = byId('copy-note');
    this.modeBox = /** @type {HTMLFieldSetElement} */ (byId('mode'));
    this.startBox = byId('start-box');
    this.start = /** @type {HTMLButtonElement} */ (byId('start'));
    this.testMedia = /** @type {HTMLButtonElement} */ (byId('test-media'));
    this.status = byId('status');
    this.errorBox = byId('error-box');
    this.error = byId('error');
    this.useAuto = /** @type {HTMLButtonElement} */ (byId('use-auto'));
    this.remoteVideo = /** @type {HTMLVideoElement} */ (byId('remote-video'));
    this.localVideo = /** @type {HTMLVideoElement} */ (byId('local-video'));
    this.mute = /** @type {HTMLButtonElement} */ (byId('mute'));
    this.camera = /** @type {HTMLButtonElement} */ (byId('camera'));
    this.hangup = /** @type {HTMLButtonElement} */ (byId('hangup'));
    this.stats = byId('stats');
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
      return;
    }
    this.error.dataset.code = code;
    this.error.textContent = text;
    this.errorBox.hidden = false;
    this.useAuto.hidden = code !== 'relay-unavailable';
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

  /** @param {Controls} c */
  setControls(c) {
    document.body.classList.toggle('in-call', c.inSession);
    // Before a call (and without a camera test) the empty video area and
    // controls are noise.
    document.body.classList.toggle('quiet', !c.inSession && !c.hasMedia);
    this.start.disabled = !c.hasRoom || c.inSession || c.testing;
    this.testMedia.hidden = c.hasMedia || c.inSession;
    this.testMedia.disabled = c.testing;
    this.modeBox.disabled = c.inSession;
    this.copyInvite.disabled = !c.canCopy;
    this.hangup.disabled = !c.inSession;
    this.mute.disabled = !c.hasMedia;
    this.mute.setAttribute('aria-pressed', String(c.hasMedia && c.muted));
    this.mute.textContent = c.hasMedia && c.muted ? 'Unmute' : 'Mute';
    this.camera.disabled = !c.hasVideo;
    this.camera.setAttribute('aria-pressed', String(c.hasVideo && c.cameraOff));
    this.camera.textContent =
      c.hasVideo && c.cameraOff ? 'Camera on' : 'Camera off';
  }

  /**
   * Shows in-call statistics, or hides them.
   * @param {?Sample} s
   */
  setStats(s) {
    if (!s) {
      this.stats.hidden = true;
      this.stats.textContent = '';
      return;
    }
    /** @type {string[]} */
    const parts = [s.transport];
    if (s.rttMs !== null) parts.push(`round trip ${Math.round(s.rttMs)} ms`);
    if (s.jitterMs !== null) parts.push(`jitter ${Math.round(s.jitterMs)} ms`);
    if (s.lossPercent !== null) {
      parts.push(`loss ${s.lossPercent.toFixed(1)} %`);
    }
    if (s.mos !== null) {
      parts.push(`quality ${s.mos.toFixed(1)} of 5 (estimate)`);
    }
    this.stats.textContent = parts.join(' · ');
    this.stats.hidden = false;
  }

  /** @param {MediaStream|null} stream */
  setLocalStream(stream) {
    this.showStream(this.localVideo, stream);
  }

  /** @param {MediaStream|null} stream */
  setRemoteStream(stream) {
    this.showStream(this.remoteVideo, stream);
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
    if (stream) {
      video.play().catch((err) => {
        // AbortError: the stream was replaced or removed before playing;
        // nothing to report.
        if (err?.name !== 'AbortError') {
          console.info('[alisay] autoplay refused', err?.name);
        }
      });
    }
  }
}
