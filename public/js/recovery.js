/**
 * @file Getting a call back after the caller's network changes (Wi-Fi to
 *     mobile: the old path dies, a new interface and address come up),
 *     without anybody doing anything, without a new room or a reload.
 *
 * Chromium keeps the signaling WebSocket on a dead path until TCP or the
 * server's liveness timeout gives up (a minute or more), and an ICE restart
 * needs signaling. So, on any sign that the path may have changed:
 * - `online` / `offline` and `navigator.connection` `change` events,
 * - the call's ICE connection going `disconnected` or `failed`,
 * - a heartbeat without any answer within {@link ACK_DEADLINE_MS},
 *
 * the socket is probed: a `heartbeat` must be answered (any message counts)
 * within {@link PROBE_DEADLINE_MS}, or the socket is replaced at once with
 * `resume` (signaling.js `reconnectNow`, no backoff delay). After coming back
 * online from offline the old path is known to be gone and the socket is
 * replaced without a probe. The `joined` that follows brings fresh ICE
 * servers; the `start` after it keeps the existing connection
 * ({@link Recovery#keeps}: same DTLS, same safety code) and restarts ICE on
 * it ({@link Recovery#afterStart}): the impolite side at once, the polite
 * side after {@link POLITE_WAIT_MS} if no offer came.
 *
 * Nothing here tears down a media path: a connected call whose signaling
 * goes away stays as it is (app.js, SPEC §7.10).
 */

/** @typedef {import('./signaling.js').Signaling} Signaling */
/** @typedef {import('./call.js').Call} Call */

/**
 * How long a probed socket may take to answer a heartbeat. The server
 * answers at once; a mobile round trip is well under a second.
 */
const PROBE_DEADLINE_MS = 1500;
/** How long a regular heartbeat may wait for its answer. */
const ACK_DEADLINE_MS = 5000;
/**
 * While signaling is still down after a replacement and the call is not
 * connected, it is replaced again this often (a `POST /rooms` or a
 * WebSocket handshake that went out on a path that died meanwhile never
 * answers)...
 */
const KICK_AGAIN_MS = 3000;
/** ...at most this many times in a row. */
const MAX_KICKS = 20;
/** How long the polite side waits for the impolite side's ICE restart. */
const POLITE_WAIT_MS = 2000;
/** A socket replaced this recently means this side's network changed. */
const MOVED_MS = 30000;

/**
 * What the recovery needs from the page: the current signaling session and
 * call (either may be null), the page's own ICE restart (which keeps its
 * retry timer), and when the page last saw nothing arrive (epoch ms, 0:
 * never).
 * @typedef {{
 *   signaling: function(): (Signaling|null),
 *   call: function(): (Call|null),
 *   restartIce: function(): void,
 *   stalledAt: function(): number,
 * }} RecoveryHooks
 */

/**
 * Makes the video encoder start over with a key frame, by switching its
 * encodings off and on again (`RTCRtpSender.setParameters`). After a path
 * came back, the other side's decoder has nothing to decode until a key
 * frame arrives, and Chromium's receiver asks for one only after 3 s without
 * a frame: measured in the lab, that was most of the time to frames again.
 * @param {RTCPeerConnection} pc
 * @return {Promise<void>}
 */
async function freshKeyFrame(pc) {
  for (const sender of pc.getSenders()) {
    if (sender.track?.kind !== 'video') continue;
    try {
      const off = sender.getParameters();
      if (!off.encodings?.length) continue;
      for (const e of off.encodings) e.active = false;
      await sender.setParameters(off);
      const on = sender.getParameters();
      for (const e of on.encodings) e.active = true;
      await sender.setParameters(on);
      console.info('[alisay] recovery: video restarted with a key frame');
    } catch (err) {
      console.warn(
          '[alisay] recovery: no key frame',
          err instanceof Error ? err.name : err,
      );
    }
  }
}

/** Watches the network, the call and signaling; see the file comment. */
export class Recovery {
  /** @param {RecoveryHooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    /** A probe is waiting for its answer. */
    this.probing = false;
    /** The page went offline since the last replacement. */
    this.wentOffline = false;
    /** When the page last went offline, and signaling was last admitted. */
    this.offlineAt = 0;
    this.joinedAt = 0;
    /** Replacements since signaling was last open. */
    this.kicks = 0;
    /** When the socket was last replaced (epoch ms). */
    this.kickedAt = 0;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.kickTimer = undefined;
    /** @type {WeakSet<Signaling>} sessions whose heartbeats are watched */
    this.watched = new WeakSet();
    window.addEventListener('offline', () => {
      console.info('[alisay] recovery: offline');
      this.wentOffline = true;
      this.offlineAt = Date.now();
    });
    window.addEventListener('online', () => {
      console.info('[alisay] recovery: online again');
      const sig = this.hooks.signaling();
      // A socket admitted before going offline went with the old path.
      if (this.wentOffline && !(sig?.open && this.joinedAt > this.offlineAt)) {
        this.wentOffline = false;
        this.kick('back online');
      } else {
        this.wentOffline = false;
        this.probe('online');
      }
    });
    const connection = /** @type {any} */ (navigator).connection;
    if (connection && typeof connection.addEventListener === 'function') {
      connection.addEventListener('change', () => this.probe('network change'));
    }
  }

  /**
   * Watches one call's ICE state (app.js, for every new call).
   * @param {Call} call
   */
  watch(call) {
    this.watchSignaling();
    /** The path was lost since the last key frame we forced. */
    let down = false;
    /** @type {RTCIceTransport|null} */
    let transport = null;
    let pairs = 0;
    /**
     * Media stopped on this path: ICE looked lost here, this side's socket
     * was replaced, or nothing arrived (the page's stall detection). A path
     * change without any of these (a make-before-break ICE restart) keeps
     * the encoder as it is: a forced key frame costs a short freeze.
     */
    const interrupted = () =>
      down ||
      Date.now() - this.kickedAt < MOVED_MS ||
      Date.now() - this.hooks.stalledAt() < MOVED_MS;
    const back = () => {
      if (!call.closed && call === this.hooks.call() && interrupted()) {
        down = false;
        void freshKeyFrame(call.pc);
      }
    };
    call.addEventListener('state', () => {
      if (call.closed || call !== this.hooks.call()) return;
      const ice = call.pc.iceConnectionState;
      if (ice === 'disconnected' || ice === 'failed') {
        down = true;
        this.probe(`ICE ${ice}`);
      }
      if (call.state === 'connected') this.kicks = 0;
      if (down && (ice === 'connected' || ice === 'completed')) back();
      // A new selected pair after the first: the path moved (an ICE restart
      // by the other side, whose path died while this side's ICE may never
      // have looked disconnected), so the other side's decoder waits for a
      // key frame too.
      const t = call.pc.getSenders().find((x) => x.transport)?.transport
          ?.iceTransport;
      if (t && t !== transport) {
        transport = t;
        t.addEventListener('selectedcandidatepairchange', () => {
          pairs += 1;
          if (pairs > 1) back();
        });
      }
    });
  }

  /**
   * Whether `start` should keep this call although it is not `alive`: it was
   * negotiated once (ICE and DTLS can be restarted on it), so a path that
   * died with the network gets an ICE restart, not a new connection.
   * @param {Call|null} call
   * @return {boolean}
   */
  keeps(call) {
    return Boolean(
        call &&
        !call.closed &&
        call.pc.remoteDescription !== null &&
        (call.pc.iceConnectionState === 'disconnected' ||
          call.pc.iceConnectionState === 'failed'),
    );
  }

  /**
   * `start` came again and the call was kept: if it is not connected, restart
   * ICE with the fresh ICE servers now (the impolite side, or the side whose
   * network changed: perfect negotiation settles a collision) or once the
   * other side had its chance (a polite side that did not move).
   * @param {Call} call
   */
  afterStart(call) {
    if (call.state === 'connected') return;
    const moved = Date.now() - this.kickedAt < MOVED_MS;
    if (!call.polite || moved) {
      console.info('[alisay] recovery: restarting ICE after reconnecting');
      this.hooks.restartIce();
      return;
    }
    const before = call.pc.remoteDescription?.sdp;
    setTimeout(() => {
      if (call !== this.hooks.call() || call.closed) return;
      if (call.state === 'connected') return;
      if (call.pc.remoteDescription?.sdp !== before) return; // Offer came.
      console.info('[alisay] recovery: no ICE restart from the other side');
      this.hooks.restartIce();
    }, POLITE_WAIT_MS);
  }

  /**
   * @private Watches the heartbeats of the current signaling session: one
   * without an answer within {@link ACK_DEADLINE_MS} replaces the socket.
   */
  watchSignaling() {
    const sig = this.hooks.signaling();
    if (!sig || this.watched.has(sig)) return;
    this.watched.add(sig);
    sig.addEventListener('heartbeat', (e) => {
      const {sentAt} = /** @type {CustomEvent} */ (e).detail;
      setTimeout(() => {
        if (sig !== this.hooks.signaling() || sig.closed || !sig.open) return;
        if (sig.lastRx >= sentAt) return;
        console.warn('[alisay] recovery: heartbeat not answered');
        this.kick('heartbeat not answered');
      }, ACK_DEADLINE_MS);
    });
    sig.addEventListener('joined', () => {
      this.joinedAt = Date.now();
      this.kicks = 0;
      clearTimeout(this.kickTimer);
    });
  }

  /**
   * Checks that the signaling socket still answers; replaces it if not.
   * @param {string} why for the log
   */
  probe(why) {
    const sig = this.hooks.signaling();
    if (!sig || sig.closed || !sig.everAdmitted) return;
    this.watchSignaling();
    if (!sig.open) {
      // Already reconnecting, maybe after a long backoff delay: go now, unless
      // a replacement of ours is still under way.
      if (Date.now() - this.kickedAt >= KICK_AGAIN_MS) this.kick(why);
      return;
    }
    if (this.probing) return;
    this.probing = true;
    const sentAt = Date.now();
    sig.send({type: 'heartbeat'});
    setTimeout(() => {
      this.probing = false;
      if (sig !== this.hooks.signaling() || sig.closed) return;
      if (sig.lastRx >= sentAt) return;
      console.warn('[alisay] recovery: no answer from signaling after', why);
      this.kick(why);
    }, PROBE_DEADLINE_MS);
  }

  /**
   * @private Replaces the signaling socket now (with `resume`), and again
   * every {@link KICK_AGAIN_MS} while it is not back and the call is not
   * connected, at most {@link MAX_KICKS} times.
   * @param {string} why for the log
   */
  kick(why) {
    const sig = this.hooks.signaling();
    if (!sig || sig.closed || !sig.everAdmitted) return;
    if (this.kicks >= MAX_KICKS) return;
    this.kicks += 1;
    this.kickedAt = Date.now();
    console.warn('[alisay] recovery: reconnecting signaling now:', why);
    sig.reconnectNow();
    clearTimeout(this.kickTimer);
    this.kickTimer = setTimeout(() => {
      const call = this.hooks.call();
      if (sig !== this.hooks.signaling() || sig.closed || sig.open) return;
      if (call && call.state === 'connected') return;
      this.kick('still not reconnected');
    }, KICK_AGAIN_MS);
  }
}
