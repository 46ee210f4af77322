/**
 * @file The call's controller: room from the hash, Start (register, join, relay
 *     preflight, camera and microphone, `ready`), the server's messages,
 *     reconnects that keep the media path, credential refresh, and the buttons.
 *     SPEC §7, docs/protocol.md.
 *
 * Order on Start: `POST /rooms` → `GET /ws` + `join` → `joined` → (Relay-only)
 * relay preflight → `getUserMedia` → `ready` → `start {polite}` → perfect
 * negotiation (call.js).
 *
 * Every `offer` and `answer` carries `auth` (auth.js) and every incoming one is
 * verified before anything else happens to it; server messages are handled
 * strictly one after the other ({@link App#onMessage}), so a candidate or a
 * `hangup` never overtakes a description still being verified. A description
 * that fails (missing or wrong `auth`) ends the session at once: nothing is
 * set, the connection is closed, nothing reconnects, and `#error` says
 * `unverified`.
 */

import {DtlsAuth} from './auth.js';
import {Call} from './call.js';
import {DevicePickers} from './devices.js';
import {Invite} from './invite.js';
import {openLocalMedia} from './media.js';
import {messages} from './messages.js';
import {MicMeter} from './meter.js';
import {NetworkCheck} from './netcheck.js';
import {resumeInForeground} from './playback.js';
import {assessQuality} from './quality.js';
import {Recovery} from './recovery.js';
import {SafetyCode} from './safety.js';
import {Signaling} from './signaling.js';
import {CallStats} from './stats.js';

/** Credentials are refreshed no sooner than this from now. */
const MIN_REFRESH_DELAY_MS = 5000;
/**
 * Refreshes are at least this far apart (the server allows 1 per 10 s, burst
 * 3).
 */
const MIN_REFRESH_GAP_MS = 11000;
/** Stall-triggered ICE restarts are at least this far apart. */
const STALL_RESTART_GAP_MS = 10000;
/**
 * An ICE restart that has not connected after this long is tried again (it can
 * fail without any state change, e.g. while the TURN server is down).
 */
const RESTART_RETRY_MS = 5000;
/** How long an ICE restart waits for fresh credentials. */
const RESTART_WAIT_MS = 3000;
/** How long the polite side waits for the impolite side's ICE-restart offer. */
const POLITE_RESTART_WAIT_MS = 3500;
/** The largest delay `setTimeout` takes. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
/** Poor readings in a row before the warning shows (one spike is no news). */
const POOR_TO_WARN = 2;
/** Readings that are not poor, in a row, before the warning goes away. */
const OK_TO_CLEAR = 3;

/**
 * The device error sentence for a media error code (switching one device
 * keeps the call going, so the sentence is not the Start one).
 * @param {string} code
 * @return {string}
 */
function deviceError(code) {
  switch (code) {
    case 'media-denied':
      return 'device-denied';
    case 'media-busy':
      return 'device-busy';
    case 'media-not-found':
      return 'device-missing';
    default:
      return 'device-error';
  }
}

/**
 * `phase` is where the Start sequence is; `live` means `ready` was sent and the
 * `data-state` then comes from the connection (see {@link App#dataState}).
 * @typedef
 *     {'idle'|'ready'|'joining'|'preflight'|'media'|'live'|'ended'|'error'}
 *     Phase
 */

/**
 * @typedef {{
 *   sessionId: string,
 *   iceServers: RTCIceServer[],
 *   relayAvailable: boolean,
 *   credentialExpiresAt: (number|null),
 * }} Session what `joined` told us
 */

/** @typedef {import('./view.js').View} View */
/** @typedef {import('./stats.js').Sample} Sample */

/**
 * Why signaling is reconnecting, and when it tries next.
 * @typedef {{reason: ('restart'|'lost'), delayMs: number}} Reconnecting
 */

/**
 * The sessionStorage key of the resumable session of a room (kept in this tab
 * only).
 * @param {string} roomId
 * @return {string}
 */
function sessionKey(roomId) {
  return `alisay.session.${roomId}`;
}

/** The page. */
export class App {
  /** @param {View} view the page's elements */
  constructor(view) {
    this.view = view;
    /** @type {Invite|null} */
    this.invite = null;
    /** Whether this page generated the current room (changes the hint). */
    this.generated = false;
    /** @type {Phase} */
    this.phase = 'idle';
    /**
     * Incremented whenever a call is left; stale async steps compare and stop.
     */
    this.gen = 0;
    /** @type {string|null} the room id of the current session */
    this.roomId = null;
    /** @type {Signaling|null} */
    this.signaling = null;
    /** @type {Session|null} */
    this.session = null;
    /** @type {Call|null} */
    this.call = null;
    /**
     * @type {CallStats|null} statistics of the current call while it is
     *     connected
     */
    this.stats = null;
    /** @type {MediaStream|null} */
    this.stream = null;
    /** Whether this client has all it needs to say `ready`. */
    this.localReady = false;
    /** Whether Relay-only mode is used for the current session. */
    this.relayOnly = true;
    this.peerPresent = false;
    this.peerLeft = false;
    /** @type {boolean|null} */
    this.polite = null;
    /** @type {'restart'|'lost'|null} why signaling is reconnecting */
    this.reconnecting = null;
    /** Whether the current room was admitted once (Copy invite). */
    this.admitted = false;
    /** Waiting for the user to press Use Auto mode. */
    this.blockedOnRelay = false;
    this.testing = false;
    this.tested = false;
    this.lastRefreshAt = 0;
    /**
     * Our clock minus the server's (from the `Date` of `POST /rooms`), for
     * expiry times.
     */
    this.clockSkewMs = 0;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.refreshTimer = undefined;
    this.restartPending = false;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.restartTimer = undefined;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.restartRetryTimer = undefined;
    /**
     * A scheduled refresh is under way: restart ICE when its credentials
     * arrive.
     */
    this.refreshRestart = false;
    /** When a media stall last triggered an ICE restart (epoch ms). */
    this.stallRestartAt = 0;
    /** @type {string} */
    this.lastState = '';
    /** The camera, microphone and speaker pickers. */
    this.pickers = new DevicePickers({
      camera: view.cameraSelect,
      mic: view.micSelect,
      speaker: view.speakerSelect,
      speakerField: view.speakerField,
    });
    this.meter = new MicMeter(view.micLevel);
    resumeInForeground([view.remoteVideo, view.localVideo], () => this.stream,
        (kind, deviceId) => this.switchDevice(kind, deviceId));
    /** A device switch is under way. */
    this.switching = false;
    /** When signaling tries again (ms since the epoch; 0: not waiting). */
    this.retryAt = 0;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.retryTicker = undefined;
    /** Whether the poor-connection warning is shown. */
    this.warning = false;
    this.poorRun = 0;
    this.okRun = 0;
    /** Whether a quality sample arrived for the current connection. */
    this.sampled = false;
    /** @type {DtlsAuth|null} the key of the current session's room */
    this.auth = null;
    /**
     * The tail of the queue of server messages (handled one at a time, in
     * order; see {@link App#onMessage}).
     */
    this.inbox = Promise.resolve();
    /**
     * @type {'verified'|'refused'|null} 'verified' once a description of the
     *     other caller passed, 'refused' after one failed (until Start again)
     */
    this.verification = null;
    /** @type {number|null} ms the last verification took */
    this.lastVerifyMs = null;
    /** @type {string|null} six digits, shown while connected */
    this.safetyCode = null;
    /** The descriptions sent and verified, for the safety code (safety.js). */
    this.safety = new SafetyCode();
    /** The relay over UDP, TCP and TLS, before and when a call fails. */
    this.netcheck = new NetworkCheck(view, messages);
    /** Gets a call back after a network change (recovery.js). */
    this.recovery = new Recovery({
      signaling: () => this.signaling,
      call: () => this.call,
      restartIce: () => this.restartIce(),
      stalledAt: () => this.stallRestartAt,
    });
  }

  /** Wires the page up. Nothing is created and no device is opened here. */
  init() {
    const v = this.view;
    v.generate.addEventListener('click', () => this.generate());
    v.start.addEventListener('click', () => void this.start());
    v.testMedia.addEventListener('click', () => void this.testMedia());
    v.hangup.addEventListener('click', () => this.hangup());
    v.mute.addEventListener('click', () => this.toggle('audio'));
    v.camera.addEventListener('click', () => this.toggle('video'));
    v.copyInvite.addEventListener('click', () => void this.copyInvite());
    v.shareInvite.addEventListener('click', () => void this.shareInvite());
    v.cameraSelect.addEventListener('change', () => {
      void this.switchDevice('video', v.cameraSelect.value);
    });
    v.micSelect.addEventListener('change', () => {
      void this.switchDevice('audio', v.micSelect.value);
    });
    v.speakerSelect.addEventListener('change', () => {
      void this.chooseSpeaker(v.speakerSelect.value);
    });
    v.useAuto.addEventListener('click', () => this.useAuto());
    window.addEventListener('hashchange', () => this.onHashChange());
    this.exposeDebugHandle();
    this.loadHash();
  }

  // ---- Room from the hash ---------------------------------------------------

  /** Recomputes the room from `location.hash`. */
  loadHash() {
    const parsed = Invite.fromHash(location.hash);
    this.invite = parsed instanceof Invite ? parsed : null;
    this.generated = false;
    this.admitted = false;
    this.tested = false;
    this.roomId = null;
    this.view.setInvite(this.invite?.link ?? null);
    if (parsed === 'invalid') {
      this.setPhase('error', 'invalid-link');
    } else {
      this.setPhase(this.invite ? 'ready' : 'idle', null);
    }
  }

  /**
   * A new room: token into the hash (no `hashchange` fires for replaceState).
   */
  generate() {
    if (this.inSession) return;
    const invite = Invite.generate();
    history.replaceState(null, '', `#${invite.token}`);
    this.loadHash();
    this.generated = true;
    this.render();
    this.view.start.focus();
    console.info('[alisay] room generated');
  }

  /** Same-tab hash change: a room switch. */
  onHashChange() {
    const text = location.hash.replace(/^#/, '');
    // Our own change (Generate room), same room.
    if (this.invite && text === this.invite.token) return;
    console.info('[alisay] room switch');
    this.leave(true);
    this.loadHash();
  }

  // ---- Start ----------------------------------------------------------------

  /** Whether a session is under way (from Start until hang up or failure). */
  get inSession() {
    return this.signaling !== null || this.phase === 'joining';
  }

  /** Start: register the room, open signaling and join. */
  async start() {
    const invite = this.invite;
    if (!invite || this.inSession || this.testing) return;
    const gen = ++this.gen;
    this.peerLeft = false;
    this.peerPresent = false;
    this.polite = null;
    if (!window.isSecureContext || !crypto.subtle) {
      this.setPhase('error', 'insecure');
      return;
    }
    this.relayOnly = this.view.mode === 'relay';
    this.netcheck.reset();
    this.verification = null;
    this.auth = null;
    this.safety.forget();
    this.setPhase('joining', null);
    const roomId = await invite.roomId();
    if (gen !== this.gen) return;
    this.roomId = roomId;
    try {
      this.auth = await DtlsAuth.fromToken(invite.token);
    } catch (err) {
      console.error(
          '[alisay] key derivation failed',
          err instanceof Error ? err.name : err,
      );
      this.setPhase('error', 'insecure');
      return;
    }
    if (gen !== this.gen) return;
    const status = await this.register(roomId);
    if (gen !== this.gen) return;
    if (status !== 200 && status !== 201) {
      this.setPhase('error', status === 0 ? 'unreachable' : `http-${status}`);
      return;
    }
    const sig = new Signaling({
      roomId,
      register: () => this.register(roomId),
      resumeId: () => this.storedSessionId(roomId),
    });
    sig.addEventListener('joined', (e) => {
      if (sig === this.signaling) {
        this.onJoined(/** @type {CustomEvent} */ (e).detail);
      }
    });
    sig.addEventListener('message', (e) => {
      if (sig === this.signaling) {
        this.onMessage(/** @type {CustomEvent} */ (e).detail.msg);
      }
    });
    sig.addEventListener('reconnecting', (e) => {
      if (sig === this.signaling) {
        this.onReconnecting(/** @type {CustomEvent} */ (e).detail);
      }
    });
    sig.addEventListener('failed', (e) => {
      if (sig === this.signaling) {
        this.onFailed(/** @type {CustomEvent} */ (e).detail.code);
      }
    });
    this.signaling = sig;
    sig.connect();
  }

  /**
   * `POST /rooms {roomId}` (SPEC §4).
   * @param {string} roomId
   * @return {Promise<number>} the HTTP status, 0 when the network failed
   */
  async register(roomId) {
    try {
      const res = await fetch('/rooms', {
        method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({roomId}),
        cache: 'no-store',
        credentials: 'same-origin',
        referrerPolicy: 'no-referrer',
      });
      if (res.status !== 200 && res.status !== 201) {
        console.warn('[alisay] room registration refused', res.status);
      }
      const serverNow = Date.parse(res.headers.get('Date') ?? '');
      if (Number.isFinite(serverNow)) this.clockSkewMs = Date.now() - serverNow;
      return res.status;
    } catch (err) {
      console.warn(
          '[alisay] room registration failed',
          err instanceof Error ? err.name : err,
      );
      return 0;
    }
  }

  /**
   * @param {string} roomId
   * @return {string|null}
   */
  storedSessionId(roomId) {
    try {
      return sessionStorage.getItem(sessionKey(roomId));
    } catch {
      return null;
    }
  }

  /**
   * Admission (first, or again after a reconnect).
   * @param {{msg: any, first: boolean}} detail
   */
  onJoined({msg, first}) {
    this.reconnecting = null;
    this.stopRetryTicker();
    this.session = {
      sessionId: String(msg.sessionId),
      iceServers: Array.isArray(msg.iceServers) ? msg.iceServers : [],
      relayAvailable: Boolean(msg.relayAvailable),
      credentialExpiresAt:
        typeof msg.credentialExpiresAt === 'number' ?
          msg.credentialExpiresAt :
          null,
    };
    if (this.roomId) {
      try {
        sessionStorage.setItem(sessionKey(this.roomId), this.session.sessionId);
      } catch {
        // Private mode without storage: resume after reload is lost, nothing
        // else.
      }
    }
    this.peerPresent = Boolean(msg.peerPresent);
    if (this.peerPresent) this.peerLeft = false;
    this.admitted = true;
    this.scheduleRefresh();
    this.call?.setIceServers(this.session.iceServers);
    console.info(
        '[alisay] joined',
        first ? '' : '(again)',
        'peer present:',
        this.peerPresent,
    );
    if (first) {
      void this.prepare(this.gen);
    } else if (this.localReady) {
      this.signaling?.send({type: 'ready'});
    }
    this.render();
  }

  /**
   * After admission: relay preflight (Relay-only), camera and microphone, then
   * `ready`.
   * @param {number} gen
   */
  async prepare(gen) {
    const session = this.session;
    if (!session) return;
    if (this.relayOnly) {
      if (!session.relayAvailable) {
        this.blockedOnRelay = true;
        this.setPhase('error', 'relay-unavailable');
        this.view.useAuto.focus();
        return;
      }
      this.setPhase('preflight', null);
      const code = await this.netcheck.run(session.iceServers);
      if (gen !== this.gen) return;
      if (code) {
        this.fail(code);
        return;
      }
    } else if (session.relayAvailable) {
      void this.netcheck.run(session.iceServers); // Auto may connect directly.
    }
    if (!this.stream) {
      this.setPhase('media', null);
      const res = await openLocalMedia();
      if (gen !== this.gen) {
        res.stream?.getTracks().forEach((t) => t.stop());
        return;
      }
      if (res.error !== undefined) {
        console.warn(
            '[alisay] camera/microphone failed',
            'detail' in res ? res.detail : '',
        );
        this.fail(res.error);
        return;
      }
      this.setStream(res.stream);
    }
    this.localReady = true;
    this.signaling?.send({type: 'ready'});
    this.setPhase('live', null);
  }

  /** Use Auto mode after Relay-only turned out impossible (no TURN server). */
  useAuto() {
    this.view.mode = 'auto';
    if (!this.blockedOnRelay) {
      this.view.setError(null);
      return;
    }
    this.blockedOnRelay = false;
    this.relayOnly = false;
    this.view.setError(null);
    void this.prepare(this.gen);
  }

  /**
   * Test camera and microphone before starting (an explicit action of the
   * user).
   */
  async testMedia() {
    if (this.stream || this.inSession || this.testing) return;
    const gen = this.gen;
    this.testing = true;
    this.render();
    const res = await openLocalMedia();
    this.testing = false;
    if (gen !== this.gen || this.inSession) {
      res.stream?.getTracks().forEach((t) => t.stop());
      this.render();
      return;
    }
    if (!res.stream) {
      this.setPhase('error', res.error);
      return;
    }
    this.tested = true;
    this.setStream(res.stream);
    if (this.phase === 'error') {
      this.setPhase(this.invite ? 'ready' : 'idle', null);
    } else {
      this.render();
    }
    this.view.check.scrollIntoView({block: 'start'});
  }

  /** @param {MediaStream} stream */
  setStream(stream) {
    this.stream = stream;
    this.view.setLocalStream(stream);
    this.view.setDeviceNote('');
    for (const track of stream.getTracks()) this.watchTrack(track);
    this.meter.attach(stream.getAudioTracks()[0] ?? null);
    this.pickers.listen(() => this.stream);
    void this.pickers.refresh(stream).then(() => this.render());
  }

  /**
   * Tells the user when a device stops on its own (unplugged, taken away).
   * @param {MediaStreamTrack} track
   */
  watchTrack(track) {
    track.addEventListener('ended', () => {
      console.warn('[alisay] local track ended', track.kind);
      if (!this.stream?.getTracks().includes(track)) return;
      this.view.setDeviceNote(
          messages.status('device-ended', {
            kind: track.kind === 'audio' ? 'microphone' : 'camera',
          }),
      );
      void this.pickers.refresh(this.stream);
    });
  }

  /**
   * Switches the camera or microphone: a new track from `deviceId` replaces
   * the old one in the local stream and, during a call, in the connection's
   * sender (`RTCRtpSender.replaceTrack`, no renegotiation).
   * @param {'audio'|'video'} kind
   * @param {string} deviceId
   */
  async switchDevice(kind, deviceId) {
    const stream = this.stream;
    if (!stream || this.switching || !deviceId) return;
    const tracks =
      kind === 'audio' ? stream.getAudioTracks() : stream.getVideoTracks();
    const old = tracks[0] ?? null;
    if (old?.readyState === 'live' && old.getSettings().deviceId === deviceId) {
      return;
    }
    const gen = this.gen;
    this.switching = true;
    this.render();
    /** @type {import('./media.js').MediaRequest} */
    const req = {
      audio: kind === 'audio' ? deviceId : false,
      video: kind === 'video' ? deviceId : false,
    };
    let res = await openLocalMedia(req);
    if (!res.stream && res.error === 'media-busy' && old) {
      // Some phones open one camera at a time: let go of the old one first.
      old.stop();
      res = await openLocalMedia(req);
    }
    this.switching = false;
    const track = res.stream?.getTracks().find((t) => t.kind === kind);
    if (gen !== this.gen || stream !== this.stream) {
      res.stream?.getTracks().forEach((t) => t.stop());
      this.render();
      return;
    }
    if (!track) {
      const why = 'detail' in res ? res.detail : 'no track';
      console.warn('[alisay] device switch failed', why);
      this.view.setDeviceNote(messages.error(deviceError(res.error ?? '')));
      await this.pickers.refresh(stream);
      this.render();
      return;
    }
    if (old) {
      track.enabled = old.enabled;
      stream.removeTrack(old);
    }
    stream.addTrack(track);
    this.watchTrack(track);
    try {
      const how = await this.call?.replaceTrack(track, stream);
      console.info('[alisay] switched', kind, how ?? 'before the call');
    } catch (err) {
      console.warn(
          '[alisay] replaceTrack failed',
          err instanceof Error ? err.name : err,
      );
    }
    old?.stop();
    if (kind === 'audio') {
      this.meter.attach(track);
    } else {
      this.view.reloadLocalStream(stream);
    }
    const select =
      kind === 'audio' ? this.view.micSelect : this.view.cameraSelect;
    await this.pickers.refresh(stream);
    this.view.setDeviceNote(
        messages.status('device-switched', {
          name: DevicePickers.chosenLabel(select),
        }),
    );
    this.render();
  }

  /**
   * Plays the other person through another speaker (`setSinkId`).
   * @param {string} deviceId
   */
  async chooseSpeaker(deviceId) {
    const video = this.view.remoteVideo;
    if (typeof video.setSinkId !== 'function') return;
    try {
      await video.setSinkId(deviceId);
      this.pickers.speakerId = deviceId;
      this.view.setDeviceNote(
          messages.status('device-switched', {
            name: DevicePickers.chosenLabel(this.view.speakerSelect),
          }),
      );
    } catch (err) {
      console.warn(
          '[alisay] setSinkId failed',
          err instanceof Error ? err.name : err,
      );
      this.view.setDeviceNote(messages.error('device-error'));
      void this.pickers.refresh(this.stream);
    }
  }

  // ---- Server messages ------------------------------------------------------

  /**
   * Queues one server message: each is handled after the one before it is,
   * and an `offer` or `answer` only after its `auth` was checked.
   * @param {any} msg
   */
  onMessage(msg) {
    const gen = this.gen;
    this.inbox = this.inbox
        .then(async () => {
          if (gen !== this.gen) return;
          if (msg.type === 'offer' || msg.type === 'answer') {
            const ok = await this.verifyDescription(msg);
            if (gen !== this.gen || !ok) return;
          }
          this.handleMessage(msg);
        })
        .catch((err) => {
          console.error(
              '[alisay] message handling failed',
              String(msg.type),
              err instanceof Error ? err.name : err,
          );
        });
  }

  /**
   * Checks the `auth` of a relayed description against our key, the sender's
   * role (the opposite of ours) and the description's fingerprints; on
   * failure ends the session ({@link App#refuse}).
   * @param {any} msg
   * @return {Promise<boolean>} whether it may be used
   */
  async verifyDescription(msg) {
    const auth = this.auth;
    const polite = this.polite ?? this.call?.polite ?? null;
    if (!auth || polite === null) {
      console.warn('[alisay] a description before start, dropped');
      return false;
    }
    const started = performance.now();
    const sdp = typeof msg.sdp === 'string' ? msg.sdp : '';
    const result = await auth.verify(msg.type, !polite, sdp, msg.auth);
    this.lastVerifyMs = performance.now() - started;
    if (result === 'ok') {
      this.verification = 'verified';
      this.safety.noteVerified(msg);
      return true;
    }
    this.refuse(`${msg.type} ${result}`);
    return false;
  }

  /**
   * A description failed verification: somebody between the callers may be
   * swapping the encryption keys. Nothing of it is set; the connection is
   * closed, the room left (`hangup`), no reconnect is tried, and the warning
   * shows in `#error` (`role="alert"`).
   * @param {string} why e.g. `offer mismatch`, `answer missing`
   */
  refuse(why) {
    console.warn('[alisay] description refused:', why);
    const roomId = this.roomId;
    this.leave(true);
    this.verification = 'refused';
    if (roomId) {
      try {
        sessionStorage.removeItem(sessionKey(roomId));
      } catch {
        // Nothing to forget.
      }
    }
    this.setPhase('error', 'unverified');
  }

  /**
   * Handles one server message (in order, after verification).
   * @param {any} msg
   */
  handleMessage(msg) {
    switch (msg.type) {
      case 'peer-joined':
        this.peerPresent = true;
        this.peerLeft = false;
        this.render();
        return;
      case 'peer-left':
      case 'hangup':
        this.onPeerGone(msg.type);
        return;
      case 'start':
        this.onStart(Boolean(msg.polite));
        return;
      case 'offer':
        this.onOffer(msg);
        return;
      case 'answer':
      case 'ice':
        void this.call?.handle(msg);
        return;
      case 'ice-servers':
        this.onIceServers(msg);
        return;
      default:
        console.info('[alisay] ignored message', String(msg.type));
    }
  }

  /**
   * The other person left (or hung up): close the connection and wait for them.
   * @param {string} why
   */
  onPeerGone(why) {
    console.info('[alisay] peer gone:', why);
    this.closeCall();
    this.peerPresent = false;
    this.peerLeft = true;
    this.render();
  }

  /** @param {boolean} polite */
  onStart(polite) {
    this.polite = polite;
    this.peerPresent = true;
    this.peerLeft = false;
    if (!this.localReady || !this.stream) {
      console.warn('[alisay] start before ready, ignored');
      return;
    }
    if (this.call?.alive || this.recovery.keeps(this.call)) {
      // A reconnect of signaling: keep the media path.
      console.info(
          '[alisay] start again: keeping the connection, polite:',
          polite,
      );
      this.call.polite = polite;
      void this.call.resync();
      this.recovery.afterStart(this.call);
    } else {
      console.info('[alisay] start, polite:', polite);
      this.newCall(polite);
    }
    this.render();
  }

  /** @param {any} msg */
  onOffer(msg) {
    const sdp = typeof msg.sdp === 'string' ? msg.sdp : '';
    if (this.restartPending && this.call?.polite) {
      // The other side restarts ICE (or renegotiates anyway): answering it is
      // our restart.
      clearTimeout(this.restartTimer);
      this.restartPending = false;
    }
    if (!this.call) {
      if (!this.localReady || this.polite === null) return;
      this.newCall(this.polite);
    } else if (this.call.isFromAnotherPeer(sdp)) {
      // The other side has a new RTCPeerConnection (it reloaded): start fresh.
      console.info('[alisay] offer from a new peer connection: replacing ours');
      this.newCall(this.polite ?? this.call.polite);
    }
    void this.call?.handle(msg);
  }

  /** @param {any} msg */
  onIceServers(msg) {
    if (!this.session) return;
    if (Array.isArray(msg.iceServers)) this.session.iceServers = msg.iceServers;
    this.session.credentialExpiresAt =
      typeof msg.credentialExpiresAt === 'number' ?
        msg.credentialExpiresAt :
        null;
    this.call?.setIceServers(this.session.iceServers);
    this.scheduleRefresh();
    if (this.restartPending) {
      if (!this.call?.polite) this.restartIce();
    } else if (this.refreshRestart) {
      // coturn checks the credentials' expiry on every Refresh,
      // CreatePermission and ChannelBind, and setConfiguration() does not
      // change existing allocations: without a new allocation the relayed media
      // stops a few minutes after the old credentials expire. An ICE restart is
      // make-before-break, so the call goes on meanwhile.
      this.refreshRestart = false;
      if (this.call?.state === 'connected') {
        console.info(
            '[alisay] fresh TURN credentials: restarting ICE to use them',
        );
        if (!this.call.restartIce()) this.newCall(this.call.polite);
      }
    }
  }

  /**
   * Replaces the call with a fresh RTCPeerConnection.
   * @param {boolean} polite
   */
  newCall(polite) {
    const session = this.session;
    const stream = this.stream;
    if (!session || !stream || !this.auth) return;
    this.closeCall();
    const call = new Call({
      iceServers: session.iceServers,
      relayOnly: this.relayOnly,
      polite,
      stream,
      send: (msg) => {
        const sent = this.signaling?.send(msg) ?? false;
        if (sent) this.safety.noteSent(msg);
        if (sent && this.call?.state === 'connected' && !this.safetyCode) {
          void this.showSafetyCode(this.call);
        }
        return sent;
      },
      auth: /** @type {DtlsAuth} */ (this.auth),
    });
    call.addEventListener('track', (e) => {
      if (call === this.call) {
        this.view.setRemoteStream(/** @type {CustomEvent} */ (e).detail.stream);
      }
    });
    call.addEventListener('state', () => {
      if (call !== this.call) return;
      if (call.state === 'connected' && !this.stats) {
        this.stats = new CallStats(call.pc, (sample) => {
          if (call === this.call) this.onSample(sample);
        });
      }
      if (call.state === 'connected' && this.safetyCode === null) {
        void this.showSafetyCode(call);
      }
      this.render();
    });
    call.addEventListener('ice-failed', () => {
      if (call === this.call) this.onIceFailed();
    });
    this.netcheck.watch(call, () => this.session?.iceServers ?? []);
    this.recovery.watch(call);
    this.call = call;
  }

  /**
   * Computes and shows the safety code of a connected call from the
   * descriptions as sent and as verified (safety.js), never from what the
   * browser stored.
   * @param {Call} call
   */
  async showSafetyCode(call) {
    if (!this.auth) return;
    const code = await this.safety.code(this.auth);
    if (call !== this.call || call.closed || code === null) return;
    this.safetyCode = code;
    this.view.setSafetyCode(code);
    console.info('[alisay] safety code shown');
  }

  /** Closes the current call, if any: connection, statistics, remote video. */
  closeCall() {
    this.safetyCode = null;
    this.view.setSafetyCode(null);
    this.stats?.stop();
    this.stats = null;
    this.call?.close();
    this.call = null;
    this.view.setRemoteStream(null);
    this.view.setQuality(null, null);
    this.warning = false;
    this.poorRun = 0;
    this.okRun = 0;
    this.sampled = false;
  }

  /**
   * One statistics reading: the badge, and the warning when the connection
   * stays poor (shown after {@link POOR_TO_WARN} poor readings, gone after
   * {@link OK_TO_CLEAR} better ones).
   * @param {Sample} sample
   */
  onSample(sample) {
    // Nothing arrived for two readings while ICE still says connected: the
    // relay is gone (a coturn restart loses every allocation) or the path is
    // broken. Chromium reports `disconnected` only ~5 s later and `failed`
    // ~15 s later, so restart ICE now (make-before-break: harmless if the old
    // path comes back), at most once per STALL_RESTART_GAP_MS.
    if (
      sample.stalled &&
      this.call?.state === 'connected' &&
      Date.now() - this.stallRestartAt >= STALL_RESTART_GAP_MS
    ) {
      this.stallRestartAt = Date.now();
      console.warn('[alisay] nothing arrives: restarting ICE');
      this.onIceFailed();
    }
    const a = assessQuality(sample);
    this.sampled = true;
    this.view.setQuality(sample, a);
    if (a.level === 'poor') {
      this.poorRun += 1;
      this.okRun = 0;
    } else {
      this.okRun += 1;
      this.poorRun = 0;
    }
    if (a.level === 'poor' && (this.warning || this.poorRun >= POOR_TO_WARN)) {
      if (!this.warning) {
        console.warn('[alisay] poor connection:', a.reasons.join('; '));
        this.view.announce(
            messages.status('quality-announce-poor', {
              reasons: a.reasons.join('; '),
            }),
        );
      }
      this.warning = true;
      this.view.setQualityWarning(a.reasons);
    } else if (this.warning && this.okRun >= OK_TO_CLEAR) {
      this.warning = false;
      this.view.setQualityWarning(null);
      this.view.announce(messages.status('quality-announce-ok'));
    }
  }

  // ---- ICE restart and credentials ------------------------------------------

  /**
   * The connection failed: fresh credentials if we can, then an ICE restart.
   * The impolite side restarts first; the polite side waits a little for that
   * offer (which cancels its own restart), so both sides rarely offer at once.
   */
  onIceFailed() {
    if (this.restartPending || !this.call) return;
    this.restartPending = true;
    const refresh =
      this.session?.credentialExpiresAt != null &&
      Boolean(this.signaling?.open) &&
      Date.now() - this.lastRefreshAt >= MIN_REFRESH_GAP_MS;
    console.warn(
        '[alisay] connection failed: restarting ICE',
        refresh ? 'with fresh credentials' : '',
    );
    if (refresh) this.sendRefresh();
    let wait = refresh ? RESTART_WAIT_MS : 0;
    if (this.call.polite) wait = POLITE_RESTART_WAIT_MS;
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.restartIce(), wait);
  }

  /** @private */
  restartIce() {
    clearTimeout(this.restartTimer);
    this.restartPending = false;
    // Without signaling the restart's offer cannot be sent, and its gathering
    // would hold one more ICE generation of TURN allocations (generations.js):
    // the next `start` restarts ICE instead (recovery.js, afterStart).
    if (!this.signaling?.open) {
      console.info('[alisay] signaling is down: ICE restart after the next start');
      return;
    }
    // Out of in-place restarts (TURN allocations): a new connection (issue 17).
    if (this.call && !this.call.restartIce()) this.newCall(this.call.polite);
    const call = this.call;
    // A restart whose gathering found no relay (the TURN server was still
    // down) leaves the connection `failed` with no further event: try again.
    clearTimeout(this.restartRetryTimer);
    this.restartRetryTimer = setTimeout(() => {
      if (call && call === this.call && call.state !== 'connected') {
        console.warn('[alisay] ICE restart did not connect: trying again');
        this.onIceFailed();
      }
    }, RESTART_RETRY_MS);
  }

  /**
   * Plans the next `refresh-ice` at 80 % of the credentials' remaining
   * lifetime, measured on the server's clock (a skewed local clock must not
   * make it late, or a loop).
   */
  scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    const expiresAt = this.session?.credentialExpiresAt;
    if (expiresAt == null) return;
    const now = Date.now();
    const remainingMs = expiresAt * 1000 - (now - this.clockSkewMs);
    let delay = Math.max(MIN_REFRESH_DELAY_MS, 0.8 * remainingMs);
    delay = Math.max(delay, this.lastRefreshAt + MIN_REFRESH_GAP_MS - now);
    this.refreshTimer = setTimeout(
        () => {
          this.refreshRestart = this.sendRefresh();
        },
        Math.min(delay, MAX_TIMEOUT_MS),
    );
  }

  /**
   * @private
   * @return {boolean} whether `refresh-ice` was sent
   */
  sendRefresh() {
    // Without signaling, the `joined` after the reconnect brings fresh ones.
    if (!this.signaling?.open) return false;
    this.lastRefreshAt = Date.now();
    return this.signaling.send({type: 'refresh-ice'});
  }

  // ---- Signaling events -----------------------------------------------------

  /** @param {Reconnecting} detail */
  onReconnecting({reason, delayMs}) {
    console.info('[alisay] signaling reconnect in', delayMs, 'ms:', reason);
    if (this.signaling?.everAdmitted) {
      this.reconnecting = reason;
      this.retryAt = Date.now() + delayMs;
      if (this.retryTicker === undefined) {
        this.retryTicker = setInterval(() => this.renderDetail(), 250);
      }
      this.render();
    }
  }

  /** @private Stops the reconnect countdown. */
  stopRetryTicker() {
    clearInterval(this.retryTicker);
    this.retryTicker = undefined;
    this.retryAt = 0;
  }

  /** @param {string} code why the session ended */
  onFailed(code) {
    console.warn('[alisay] session ended:', code);
    this.leave(false);
    this.setPhase('error', code);
  }

  // ---- Leaving --------------------------------------------------------------

  /** Hang up: leave the room, stop the devices, and allow Start again. */
  hangup() {
    if (!this.inSession) return;
    const roomId = this.roomId;
    this.leave(true);
    if (roomId) {
      try {
        sessionStorage.removeItem(sessionKey(roomId));
      } catch {
        // Nothing to forget.
      }
    }
    console.info('[alisay] hung up');
    this.setPhase('ended', null);
    this.view.start.focus();
  }

  /**
   * Leaves the room, then fails with `code`.
   * @param {string} code
   */
  fail(code) {
    this.leave(true);
    this.setPhase('error', code);
  }

  /**
   * Ends the session: signaling (with `hangup` if asked), the connection, the
   * devices.
   * @param {boolean} sendHangup
   */
  leave(sendHangup) {
    this.gen++;
    this.signaling?.close(sendHangup);
    this.signaling = null;
    this.closeCall();
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.meter.detach();
    this.view.setLocalStream(null);
    this.view.setDeviceNote('');
    this.stopRetryTicker();
    this.switching = false;
    this.session = null;
    this.localReady = false;
    this.peerPresent = false;
    this.peerLeft = false;
    this.polite = null;
    this.reconnecting = null;
    this.blockedOnRelay = false;
    this.tested = false;
    this.restartPending = false;
    this.refreshRestart = false;
    clearTimeout(this.restartTimer);
    clearTimeout(this.restartRetryTimer);
    clearTimeout(this.refreshTimer);
  }

  // ---- Controls -------------------------------------------------------------

  /** @param {'audio'|'video'} kind */
  toggle(kind) {
    const tracks =
      kind === 'audio' ?
        this.stream?.getAudioTracks() :
        this.stream?.getVideoTracks();
    if (!tracks?.length) return;
    const enable = !tracks[0].enabled;
    for (const t of tracks) t.enabled = enable;
    this.render();
  }

  /** Hands the invite link to the system's share sheet (phones). */
  async shareInvite() {
    if (!this.invite || !this.admitted) return;
    if (typeof navigator.share !== 'function') return;
    const link = this.invite.link;
    try {
      await navigator.share({
        title: messages.status('share-title'),
        text: messages.status('share-text'),
        url: link,
      });
      this.view.setCopyNote(messages.status('shared'));
    } catch (err) {
      // AbortError: the person closed the share sheet; nothing to say.
      if (err instanceof Error && err.name !== 'AbortError') {
        await this.copyInvite();
      }
    }
  }

  /** Copies the invite link. */
  async copyInvite() {
    if (!this.invite) return;
    const link = this.invite.link;
    try {
      await navigator.clipboard.writeText(link);
      this.view.setCopyNote(messages.status('copied'));
    } catch {
      this.view.inviteLink.focus();
      this.view.inviteLink.select();
      this.view.setCopyNote(messages.status('copy-manual'));
    }
  }

  // ---- Rendering ------------------------------------------------------------

  /**
   * @param {Phase} phase
   * @param {string|null} errorCode shown in #error (null clears it)
   */
  setPhase(phase, errorCode) {
    this.phase = phase;
    if (errorCode === null) {
      if (phase !== 'error') this.view.setError(null);
    } else {
      this.view.setError(errorCode, messages.error(errorCode));
    }
    this.render();
  }

  /** @return {string} the `data-state` of #status */
  dataState() {
    if (this.phase !== 'live') return this.phase;
    if (this.reconnecting) return 'reconnecting';
    if (this.call) {
      return this.call.state === 'connected' ? 'connected' : 'connecting';
    }
    if (this.peerLeft) return 'peer-left';
    return this.peerPresent ? 'connecting' : 'waiting';
  }

  /**
   * @param {string} state
   * @return {string}
   */
  statusText(state) {
    const s = messages.status;
    switch (state) {
      case 'error':
        // The sentence itself is in #error (role="alert"), once.
        return s('error');
      case 'ready':
        if (this.testing) return s('testing');
        if (this.tested) return s('tested');
        return s(this.generated ? 'ready-generated' : 'ready');
      case 'idle':
        return this.testing ? s('testing') : s('idle');
      case 'reconnecting': {
        const base = s(
          this.reconnecting === 'restart' ? 'restarting' : 'reconnecting',
        );
        return this.call?.state === 'connected' ?
          base + s('call-continues') :
          base;
      }
      case 'connecting':
        if (!this.call) return s('peer-here');
        if (this.call.state === 'disconnected') return s('interrupted');
        if (this.call.state === 'failed') return s('failed');
        return s('connecting');
      default:
        return s(state);
    }
  }

  /** Shows the current state. */
  render() {
    const state = this.dataState();
    if (state !== this.lastState) {
      console.info('[alisay] state', state);
      this.lastState = state;
    }
    this.view.setStatus(state, this.statusText(state));
    this.renderDetail();
    this.view.setPlaceholder(this.placeholderText(state));
    this.view.setQualityPending(
        this.call?.state === 'connected' && !this.sampled,
    );
    const audio = this.stream?.getAudioTracks() ?? [];
    const video = this.stream?.getVideoTracks() ?? [];
    this.view.setControls({
      hasRoom: this.invite !== null,
      inSession: this.inSession,
      testing: this.testing,
      canCopy: this.admitted && this.invite !== null,
      hasMedia: this.stream !== null,
      hasVideo: video.length > 0,
      muted: audio.length > 0 && !audio[0].enabled,
      cameraOff: video.length > 0 && !video[0].enabled,
      switching: this.switching,
    });
  }

  /** Shows the second status line (the reconnect countdown, hints). */
  renderDetail() {
    const state = this.dataState();
    let text = '';
    if (state === 'reconnecting' && this.retryAt > 0) {
      const s = Math.ceil((this.retryAt - Date.now()) / 1000);
      text =
        s > 0 ?
          messages.status('retry-in', {s}) :
          messages.status('retry-now');
    } else if (state === 'waiting') {
      text = messages.status('waiting-hint');
    }
    this.view.setStatusDetail(text);
  }

  /**
   * The words over the remote video while it has no picture.
   * @param {string} state
   * @return {string}
   */
  placeholderText(state) {
    // Media flows (even while signaling reconnects): the picture speaks.
    if (this.call?.state === 'connected') return '';
    switch (state) {
      case 'waiting':
        return messages.status('remote-waiting');
      case 'peer-left':
        return messages.status('remote-left');
      case 'connecting':
      case 'reconnecting':
        return messages.status('remote-connecting');
      default:
        return '';
    }
  }

  /** `window.alisay`: a small read-only handle for tests and debugging. */
  exposeDebugHandle() {
    const app = this;
    const handle = Object.freeze({
      get pc() {
        return app.call && !app.call.closed ? app.call.pc : null;
      },
      get state() {
        return app.dataState();
      },
      get sessionId() {
        return app.session?.sessionId ?? null;
      },
      get polite() {
        return app.polite;
      },
      get roomId() {
        return app.roomId;
      },
      get stream() {
        return app.stream;
      },
      get safetyCode() {
        return app.safetyCode;
      },
      /** The client's own ICE restart (what a failed connection does). */
      restartIce: () => app.restartIce(),
      get verification() {
        return app.verification;
      },
      get authTimings() {
        return {
          signMs: app.call?.lastSignMs ?? null,
          verifyMs: app.lastVerifyMs,
        };
      },
    });
    Object.defineProperty(window, 'alisay', {value: handle, enumerable: false});
  }
}
