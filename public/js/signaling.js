/**
 * @file The signaling socket (docs/protocol.md): `GET /ws` on the page's own
 *     origin with no query string, `join` first, heartbeats, and reconnection
 *     with exponential backoff and `resume` when the socket drops. The media
 *     path does not depend on it.
 *
 * Events (all `CustomEvent`s, `detail` as noted):
 * - `joined`: `{msg, first}` — admission; `first` is false after a reconnect.
 * - `message`: `{msg}` — any other server message except `heartbeat-ack`, quiet
 *   `not-ready` errors, and `error`/`bye` (which end in `failed` or
 *   `reconnecting`).
 * - `reconnecting`: `{reason: 'restart'|'lost', delayMs}` — the socket dropped,
 *   retrying.
 * - `failed`: `{code}` — the session is over and will not be retried; `code` is
 *   a server error code, `replaced`, `idle`, `unreachable` or `http-<status>`.
 * - `heartbeat`: `{sentAt}` — a heartbeat went out (epoch ms); any message
 *   received after it ({@link Signaling#lastRx}) says the socket still works.
 */

import {CLOSE_CODES} from './codes.js';

/**
 * A message to the server, as protocol.md names it.
 * @typedef {{type: string, [key: string]: unknown}} OutMessage
 */

/**
 * What a session needs: `register` registers the room again (`POST /rooms`)
 * before each reconnect and resolves to the HTTP status (0 when the network
 * failed); `resumeId` gives the sessionId to resume, if any.
 * @typedef {{
 *   roomId: string,
 *   register: function(): Promise<number>,
 *   resumeId: function(): (string|null),
 * }} SignalingOptions
 */

/**
 * Close codes that end the session without a retry, by the error code they
 * stand for.
 */
const FATAL_CLOSE = new Map(
    [
      'invalid-message',
      'join-timeout',
      'room-not-allowed',
      'room-full',
      'rate-limited',
      'message-too-big',
      'replaced',
      'idle',
      'server-busy',
    ].map((name) => [CLOSE_CODES[name], name]),
);

/** Backoff: 0.5 s doubling to 8 s, with jitter. */
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8000;
/**
 * Attempts before giving up: few before the first admission, more once in a
 * call.
 */
const MAX_ATTEMPTS_BEFORE_ADMISSION = 4;
const MAX_ATTEMPTS_AFTER_ADMISSION = 60;
/**
 * How long an open socket may wait for `joined` before we drop it and retry.
 */
const JOIN_WAIT_MS = 10000;

/** One signaling session for one room, across reconnects. */
export class Signaling extends EventTarget {
  /** @param {SignalingOptions} opts */
  constructor(opts) {
    super();
    this.opts = opts;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** Whether the current socket got `joined`. */
    this.admitted = false;
    /** Whether any socket of this session got `joined`. */
    this.everAdmitted = false;
    /** Set by {@link close}: nothing more happens after it. */
    this.closed = false;
    this.attempt = 0;
    /**
     * @type {string|null} error code of the last `error` message on this socket
     */
    this.lastError = null;
    /** @type {string|null} */
    this.byeReason = null;
    this.heartbeatMs = 0;
    this.lastRx = 0;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval>|undefined} */
    this.heartbeatTimer = undefined;
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    this.joinTimer = undefined;
    /** Counts reconnect tries: a newer one makes an older, hung one stop. */
    this.retrySeq = 0;
    /**
     * @type {WebSocket[]} sockets left by {@link reconnectNow}, closed once a
     *     new one is admitted
     */
    this.retired = [];
    /**
     * The current socket was opened by {@link reconnectNow} without `POST
     * /rooms` first; a `room-not-allowed` on it means "register again".
     */
    this.unregistered = false;
  }

  /** Whether messages other than `join` can be sent now. */
  get open() {
    return this.admitted && this.ws?.readyState === WebSocket.OPEN;
  }

  /** Opens the first socket. The room must already be registered. */
  connect() {
    this.openSocket();
  }

  /**
   * Sends one message in order. Messages other than `join` are dropped while
   * the socket is not admitted (the server would refuse them; negotiation
   * restarts after `start`).
   * @param {OutMessage} msg
   * @return {boolean} whether it was sent
   */
  send(msg) {
    if (
      !this.ws ||
      this.ws.readyState !== WebSocket.OPEN ||
      (!this.admitted && msg.type !== 'join')
    ) {
      if (msg.type !== 'ice' && msg.type !== 'heartbeat') {
        console.info('[alisay] signaling: not connected, dropped', msg.type);
      }
      return false;
    }
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /**
   * Ends the session on purpose; no event follows.
   * @param {boolean} hangup send `hangup` first (leave the room at once)
   */
  close(hangup) {
    if (this.closed) return;
    if (hangup && this.open) this.send({type: 'hangup'});
    this.closed = true;
    this.dropSocket(CLOSE_CODES.bye);
    clearTimeout(this.retryTimer);
  }

  /**
   * Replaces the socket at once, without waiting for a backoff delay, keeping
   * `resume`: the network changed or the socket stopped answering
   * (recovery.js). A reconnect still waiting for `POST /rooms` on a dead
   * path is superseded. Does nothing before the first admission or after
   * {@link close}.
   */
  reconnectNow() {
    if (this.closed || !this.everAdmitted) return;
    // The old socket is not closed yet: a close would free our slot and the
    // other side would hear `peer-left` and hang up, should the socket still
    // work. The new socket's `resume` takes the slot over on the server.
    this.stopTimers();
    const old = this.ws;
    this.ws = null;
    this.admitted = false;
    if (old) {
      old.onopen = old.onmessage = old.onclose = null;
      if (old.readyState === WebSocket.CONNECTING) {
        old.close(); // It never sent `join`.
      } else {
        this.retired.push(old);
      }
    }
    clearTimeout(this.retryTimer);
    this.emit('reconnecting', {reason: 'lost', delayMs: 0});
    // The server still holds our slot, so the room exists: straight to the
    // WebSocket (a fresh connection), without a `POST /rooms` that Chromium
    // may send on a pooled connection of the dead path.
    this.retrySeq += 1;
    this.openSocket();
    this.unregistered = true;
  }

  /** @private */
  openSocket() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // Same origin, no query string, ever: the room id goes in `join`.
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    this.ws = ws;
    this.admitted = false;
    this.unregistered = false;
    this.lastError = null;
    this.byeReason = null;
    ws.onopen = () => {
      /** @type {{type: string, roomId: string, resume?: string}} */
      const join = {type: 'join', roomId: this.opts.roomId};
      const resume = this.opts.resumeId();
      if (resume) join.resume = resume;
      this.send(join);
      this.joinTimer = setTimeout(() => {
        console.warn('[alisay] signaling: no answer to join');
        this.lost();
      }, JOIN_WAIT_MS);
    };
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => this.onClose(ev);
  }

  /**
   * @private
   * @param {MessageEvent} ev
   */
  onMessage(ev) {
    this.lastRx = Date.now();
    if (typeof ev.data !== 'string') return;
    /** @type {any} */
    let msg;
    try {
      msg = JSON.parse(ev.data);
    } catch {
      console.warn('[alisay] signaling: unreadable message');
      return;
    }
    switch (msg?.type) {
      case 'joined':
        clearTimeout(this.joinTimer);
        this.closeRetired();
        this.admitted = true;
        this.attempt = 0;
        this.startHeartbeat(Number(msg.heartbeatSeconds) || 30);
        this.emit('joined', {msg, first: !this.everAdmitted});
        this.everAdmitted = true;
        return;
      case 'heartbeat-ack':
        return;
      case 'error':
        if (msg.code === 'not-ready') {
          console.info(
              '[alisay] signaling: message refused before start (not-ready)',
          );
          return;
        }
        console.warn('[alisay] signaling: server error', msg.code);
        this.lastError = String(msg.code);
        return; // The close that follows ends the session.
      case 'bye':
        console.info('[alisay] signaling: bye', msg.reason);
        this.byeReason = String(msg.reason);
        return;
      default:
        this.emit('message', {msg});
    }
  }

  /**
   * @private
   * @param {CloseEvent} ev
   */
  onClose(ev) {
    if (ev.target !== this.ws) return;
    this.stopTimers();
    this.ws = null;
    this.admitted = false;
    if (this.closed) return;
    console.info('[alisay] signaling: socket closed', ev.code);
    if (
      this.unregistered &&
      (this.lastError ?? FATAL_CLOSE.get(ev.code)) === 'room-not-allowed'
    ) {
      // The server forgot the room meanwhile (it restarted): register again.
      this.scheduleRetry('lost');
      return;
    }
    const fatal =
      this.lastError ??
      FATAL_CLOSE.get(ev.code) ??
      (this.byeReason === 'replaced' || this.byeReason === 'idle' ?
        this.byeReason :
        null);
    if (fatal) {
      this.fail(fatal);
      return;
    }
    const restart =
      this.byeReason === 'restart' || ev.code === CLOSE_CODES.restart;
    this.scheduleRetry(restart ? 'restart' : 'lost');
  }

  /** @private Drops a socket that looks dead and retries. */
  lost() {
    if (this.closed) return;
    this.dropSocket(CLOSE_CODES.bye);
    this.scheduleRetry('lost');
  }

  /** @private Closes the sockets {@link reconnectNow} left behind. */
  closeRetired() {
    for (const ws of this.retired.splice(0)) {
      try {
        ws.close(1000);
      } catch {
        ws.close();
      }
    }
  }

  /**
   * @private
   * @param {number} code our close code
   */
  dropSocket(code) {
    this.closeRetired();
    this.stopTimers();
    const ws = this.ws;
    this.ws = null;
    this.admitted = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close(code);
      } catch {
        ws.close();
      }
    }
  }

  /**
   * @private
   * @param {'restart'|'lost'} reason
   */
  scheduleRetry(reason) {
    const max = this.everAdmitted ?
      MAX_ATTEMPTS_AFTER_ADMISSION :
      MAX_ATTEMPTS_BEFORE_ADMISSION;
    if (this.attempt >= max) {
      this.fail('unreachable');
      return;
    }
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    const delayMs = Math.round(cap / 2 + (Math.random() * cap) / 2);
    this.attempt += 1;
    this.emit('reconnecting', {reason, delayMs});
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.retry(reason), delayMs);
  }

  /**
   * @private
   * @param {'restart'|'lost'} reason
   */
  async retry(reason) {
    if (this.closed) return;
    const seq = ++this.retrySeq;
    // A restarted server forgot generated rooms: register again (200 if it
    // still knows it).
    const status = await this.opts.register();
    if (this.closed || seq !== this.retrySeq) return;
    if (status === 200 || status === 201) {
      this.openSocket();
    } else if (status === 0 || status === 429 || status >= 500) {
      this.scheduleRetry(reason);
    } else {
      this.fail(`http-${status}`);
    }
  }

  /**
   * @private
   * @param {number} seconds `heartbeatSeconds` from `joined`
   */
  startHeartbeat(seconds) {
    clearInterval(this.heartbeatTimer);
    this.heartbeatMs = Math.max(1, seconds) * 1000;
    this.lastRx = Date.now();
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastRx > 3 * this.heartbeatMs) {
        console.warn('[alisay] signaling: server silent, reconnecting');
        this.lost();
        return;
      }
      if (this.send({type: 'heartbeat'})) {
        this.emit('heartbeat', {sentAt: Date.now()});
      }
    }, this.heartbeatMs);
  }

  /** @private */
  stopTimers() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.joinTimer);
  }

  /**
   * @private
   * @param {string} code
   */
  fail(code) {
    this.closed = true;
    this.dropSocket(CLOSE_CODES.bye);
    clearTimeout(this.retryTimer);
    this.emit('failed', {code});
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
