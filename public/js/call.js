/**
 * @file One `RTCPeerConnection` with perfect negotiation, exactly MDN's pattern
 *     (https://developer.mozilla.org/en-US/docs/Web/API/WebRTC_API/Perfect_negotiation):
 *     `makingOffer`, `ignoreOffer`, `isSettingRemoteAnswerPending`,
 *     argument-free `setLocalDescription()`, and the same code on both peers;
 *     `polite` comes from the server's `start`.
 *
 * Every outgoing message (descriptions and candidates) goes through ONE ordered
 * queue ({@link Call#enqueue}). A description is captured (type, SDP and our
 * role) synchronously right after its `setLocalDescription()` resolves; its
 * `auth` (auth.js, an async HMAC) is started at once and the queue waits for
 * it, so a candidate gathered meanwhile still leaves after its description,
 * and a rollback or a second description can never change what the first one
 * carries. Nothing of the negotiation itself waits for the HMAC.
 *
 * Glare on the first negotiation is avoided, not just survived: the impolite
 * side adds its tracks (and so offers) at once, while the polite side adds its
 * tracks to the transceivers of the first incoming offer, or after {@link
 * POLITE_OFFER_WAIT_MS} if no offer comes. In Chromium 156 a polite peer whose
 * own offer is implicitly rolled back right after its `setLocalDescription()`
 * resolved sometimes never gathered candidates for its answer (the call stalled
 * in `new`, about one run in five in our two-page test); with this order the
 * collision does not happen on a fresh call, and perfect negotiation still
 * handles any later one.
 *
 * Events: `track` (`detail: {stream}`), `state` (connection or ICE state
 * changed), `ice-failed` (the connection failed; the owner refreshes
 * credentials and restarts ICE).
 */

import {DtlsAuth} from './auth.js';
import {IceGenerations} from './generations.js';

/**
 * A signaling message to the server, as protocol.md names it.
 * @typedef {{type: string, [key: string]: unknown}} OutMessage
 */

/**
 * A relayed `offer`, `answer` or `ice` message from the server.
 * @typedef {{
 *   type: string,
 *   sdp?: string,
 *   candidate?: (RTCIceCandidateInit|null),
 * }} InMessage
 */

/**
 * What a call needs; `send` puts one signaling message on the (single, ordered)
 * socket and says whether it went out.
 * @typedef {{
 *   iceServers: RTCIceServer[],
 *   relayOnly: boolean,
 *   polite: boolean,
 *   stream: MediaStream,
 *   send: function(OutMessage): boolean,
 *   auth: import('./auth.js').DtlsAuth,
 * }} CallOptions
 */

/**
 * The normalized set of certificate fingerprints of an SDP (auth.js): a
 * different set means a different `RTCPeerConnection` on the other side (e.g.
 * the peer reloaded its tab). Compared between descriptions as received, never
 * with `pc.remoteDescription`: Chromium stores Firefox's one session-level line
 * once per media section, and keeps one of aiortc's three lines, so every ICE
 * restart of such a peer looked like a new peer and replaced the connection.
 * @param {string} sdp
 * @return {string}
 */
function fingerprints(sdp) {
  return (DtlsAuth.fingerprints(sdp) ?? []).join('\n');
}

/**
 * How long the polite side waits for the first offer before offering itself.
 */
const POLITE_OFFER_WAIT_MS = 2500;

/** A call to the other person. */
export class Call extends EventTarget {
  /** @param {CallOptions} opts */
  constructor(opts) {
    super();
    this.polite = opts.polite;
    this.send = opts.send;
    this.auth = opts.auth;
    /** The tail of the ordered outgoing queue (see {@link Call#enqueue}). */
    this.outbox = Promise.resolve();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.isSettingRemoteAnswerPending = false;
    this.closed = false;
    /** ICE generations (TURN allocations) this connection holds. */
    this.generations = new IceGenerations();
    this.pc = new RTCPeerConnection({
      iceServers: opts.iceServers,
      iceTransportPolicy: opts.relayOnly ? 'relay' : 'all',
    });
    const pc = this.pc;
    /** @type {MediaStream|null} */
    this.remoteStream = null;
    /** @type {string|null} the last remote description set, as received */
    this.remoteSdp = null;
    /**
     * @type {number|null} milliseconds the last `auth` took to compute (for
     *     tests), or null
     */
    this.lastSignMs = null;

    pc.ontrack = ({track, streams}) => {
      const stream = streams[0] ?? this.remoteStream ?? new MediaStream();
      if (!stream.getTracks().includes(track)) stream.addTrack(track);
      this.remoteStream = stream;
      this.emit('track', {stream});
    };

    pc.onnegotiationneeded = async () => {
      try {
        this.makingOffer = true;
        await pc.setLocalDescription();
        this.sendDescription();
      } catch (err) {
        console.error(
            '[alisay] negotiation failed',
            err instanceof Error ? err.name : err,
        );
      } finally {
        this.makingOffer = false;
      }
    };

    pc.onicecandidate = ({candidate}) => {
      if (this.closed) return;
      this.enqueue({
        type: 'ice',
        candidate: candidate?.candidate ? candidate.toJSON() : null,
      });
    };

    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === 'failed') this.emit('ice-failed', {});
      this.emit('state', {});
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') this.emit('ice-failed', {});
      this.emit('state', {});
    };

    /**
     * @type {MediaStream|null} media not yet added (polite side, before the
     *     first offer)
     */
    this.pendingStream = opts.stream;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.offerWait = undefined;
    if (this.polite) {
      this.offerWait = setTimeout(() => this.addMedia(), POLITE_OFFER_WAIT_MS);
    } else {
      this.addMedia();
    }
  }

  /**
   * Adds the local tracks once. After a remote offer, `addTrack` reuses its
   * transceivers, so the answer carries them and no second negotiation is
   * needed.
   * @private
   */
  addMedia() {
    clearTimeout(this.offerWait);
    const stream = this.pendingStream;
    this.pendingStream = null;
    if (!stream || this.closed) return;
    for (const track of stream.getTracks()) this.pc.addTrack(track, stream);
  }

  /** The connection state, or `closed`. */
  get state() {
    return this.closed ? 'closed' : this.pc.connectionState;
  }

  /** Whether this connection is worth keeping when `start` arrives again. */
  get alive() {
    return (
      !this.closed &&
      (this.pc.connectionState === 'connected' ||
        this.pc.connectionState === 'connecting')
    );
  }

  /**
   * Whether an incoming offer comes from another `RTCPeerConnection` than the
   * current remote description (different DTLS fingerprints).
   * @param {string} sdp
   * @return {boolean}
   */
  isFromAnotherPeer(sdp) {
    if (this.remoteSdp === null) return false;
    const incoming = fingerprints(sdp);
    return incoming !== '' && incoming !== fingerprints(this.remoteSdp);
  }

  /**
   * Handles a relayed `offer`, `answer` or `ice` message (MDN's `onmessage`).
   * @param {InMessage} msg
   * @return {Promise<void>}
   */
  async handle(msg) {
    if (this.closed) return;
    const pc = this.pc;
    try {
      if (msg.type === 'offer' || msg.type === 'answer') {
        const description = {type: msg.type, sdp: msg.sdp ?? ''};
        const readyForOffer =
          !this.makingOffer &&
          (pc.signalingState === 'stable' || this.isSettingRemoteAnswerPending);
        const offerCollision = description.type === 'offer' && !readyForOffer;
        this.ignoreOffer = !this.polite && offerCollision;
        if (this.ignoreOffer) {
          console.info('[alisay] glare: ignoring the peer\'s offer (impolite)');
          return;
        }
        this.isSettingRemoteAnswerPending = description.type === 'answer';
        await pc.setRemoteDescription(
            /** @type {RTCSessionDescriptionInit} */ (description),
        );
        this.remoteSdp = description.sdp;
        this.isSettingRemoteAnswerPending = false;
        if (description.type === 'offer') {
          this.addMedia();
          await pc.setLocalDescription();
          this.sendDescription();
        }
      } else if (msg.type === 'ice') {
        if (!msg.candidate) return; // End of candidates: nothing to do.
        try {
          await pc.addIceCandidate(msg.candidate);
        } catch (err) {
          if (!this.ignoreOffer) throw err;
        }
      }
    } catch (err) {
      this.isSettingRemoteAnswerPending = false;
      if (!this.closed) {
        console.error(
            '[alisay] signaling message failed',
            msg.type,
            err instanceof Error ? err.name : err,
        );
      }
    }
  }

  /**
   * Called when `start` arrives again while this connection is alive: a
   * description sent while signaling was down may have been lost, so roll back
   * a pending local offer and renegotiate with an ICE restart.
   * @return {Promise<void>}
   */
  async resync() {
    if (this.closed) return;
    if (this.pc.signalingState === 'have-local-offer' && !this.makingOffer) {
      try {
        await this.pc.setLocalDescription({type: 'rollback'});
        this.pc.restartIce();
      } catch (err) {
        console.warn(
            '[alisay] resync failed',
            err instanceof Error ? err.name : err,
        );
      }
    }
  }

  /**
   * New ICE servers (fresh TURN credentials); keeps `iceTransportPolicy`.
   * @param {RTCIceServer[]} iceServers
   */
  setIceServers(iceServers) {
    if (this.closed) return;
    try {
      this.pc.setConfiguration({...this.pc.getConfiguration(), iceServers});
    } catch (err) {
      console.warn(
          '[alisay] setConfiguration failed',
          err instanceof Error ? err.name : err,
      );
    }
  }

  /**
   * Sends `track` instead of the current track of its kind, with
   * `RTCRtpSender.replaceTrack`: no renegotiation, the connection stays as it
   * is. Before the polite side has added its media (see {@link addMedia}) there
   * is no sender yet, and the pending stream (the owner's, changed in place)
   * carries the new track. A kind that was not sent before (a camera plugged
   * in during a voice call) is added, which renegotiates once.
   * @param {MediaStreamTrack} track
   * @param {MediaStream} stream the local stream `track` now belongs to
   * @return {Promise<'replaced'|'pending'|'added'|'closed'>}
   */
  async replaceTrack(track, stream) {
    if (this.closed) return 'closed';
    if (this.pendingStream) return 'pending';
    const sender =
      this.pc.getSenders().find((s) => s.track?.kind === track.kind) ??
      this.pc
          .getTransceivers()
          .find(
              (t) =>
                t.currentDirection !== 'stopped' &&
                t.sender.track === null &&
                t.receiver.track.kind === track.kind &&
                (t.direction === 'sendrecv' || t.direction === 'sendonly'),
          )?.sender;
    if (!sender) {
      this.pc.addTrack(track, stream);
      return 'added';
    }
    await sender.replaceTrack(track);
    return 'replaced';
  }

  /**
   * Starts an ICE restart (perfect negotiation sends the new offer), unless
   * this connection already holds as many ICE generations as it may
   * (`MAX_ICE_GENERATIONS` in generations.js): then the owner must replace it
   * (closing it releases its TURN allocations).
   * @return {boolean} whether the restart was started in place
   */
  restartIce() {
    if (this.closed || !this.generations.canRestartInPlace) return false;
    this.pc.restartIce();
    return true;
  }

  /** Closes the connection; no event follows. */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.offerWait);
    const pc = this.pc;
    pc.ontrack = pc.onnegotiationneeded = pc.onicecandidate = null;
    pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
    pc.close();
  }

  /**
   * @private Queues the current local description, right after it was set,
   * with its `auth` (every offer and answer, ICE restarts included, leaves
   * through here).
   */
  sendDescription() {
    const desc = this.pc.localDescription;
    if (
      this.closed ||
      !desc ||
      (desc.type !== 'offer' && desc.type !== 'answer')
    ) {
      return;
    }
    const {type, sdp} = desc;
    this.generations.note(sdp);
    const started = performance.now();
    const signed = this.auth.sign(type, this.polite, sdp).then((auth) => {
      this.lastSignMs = performance.now() - started;
      return {type, sdp, auth};
    });
    this.enqueue(signed);
  }

  /**
   * @private Puts one message at the end of the ordered outgoing queue. A
   * promise (a description being signed) holds back everything queued after
   * it until it settles; one that fails is logged and not sent.
   * @param {OutMessage|Promise<OutMessage>} item
   */
  enqueue(item) {
    // Handled below once its turn comes; not an unhandled rejection meanwhile.
    if (item instanceof Promise) item.catch(() => {});
    this.outbox = this.outbox
        .then(() => item)
        .then(
            (msg) => {
              if (!this.closed) this.send(msg);
            },
            (err) => {
              console.error(
                  '[alisay] could not sign a description',
                  err instanceof Error ? err.message : err,
              );
            },
        );
  }

  /**
   * @private
   * @param {string} type
   * @param {object} detail
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, {detail}));
  }
}
