/**
 * @file The network check a caller understands: the TURN relay is tried over
 *     UDP, TCP and TLS separately, one relay-only `RTCPeerConnection` per
 *     transport (as test.webrtc.org does), and the outcome is one verdict
 *     with one plain sentence (messages.js `netcheck-*`).
 *
 * A transport "works" when its connection gathers a relay candidate: the
 * TURN server answered an Allocate with the issued credentials over that
 * transport. Every connection is closed as soon as its answer is known, so no
 * TURN allocation is left behind (Chromium releases it with a Refresh of
 * lifetime 0 over UDP; coturn drops a TCP or TLS allocation with its
 * connection).
 *
 * Verdicts:
 * - `fine`: the relay answers over UDP (or UDP is not offered and another
 *   transport answers): calls are as quick as they can be.
 * - `no-udp`: UDP was tried and failed, TCP or TLS works: calls work, with a
 *   little more delay.
 * - `web-only`: UDP and at least one of TCP or TLS were tried and nothing
 *   answered, while this page and its signaling (HTTPS) work: the network
 *   lets only web traffic through (or the relay server is down; the help
 *   page says both).
 * - `no-relay`: nothing answered, and too little was tried to say more (e.g.
 *   the server offers only `turn:` over UDP).
 * - `none`: the server offers no TURN URL at all.
 */

/** @typedef {'udp'|'tcp'|'tls'} RelayTransport */
/** @typedef {'fine'|'no-udp'|'web-only'|'no-relay'|'none'} Verdict */

/**
 * One transport's outcome: `ok` (a relay candidate), `failed` (none within
 * the deadline, or gathering ended without one), `absent` (no URL of this
 * transport is offered), `skipped` (not needed once UDP worked).
 * @typedef {{
 *   transport: RelayTransport,
 *   outcome: ('ok'|'failed'|'absent'|'skipped'),
 *   ms: (number|null),
 * }} TransportResult
 */

/**
 * @typedef {{
 *   verdict: Verdict,
 *   results: TransportResult[],
 *   ms: number,
 * }} NetCheck the verdict, each transport's result (UDP, TCP, TLS in this
 *     order) and how long the whole check took, in milliseconds
 */

/** The transports, in the order they are reported. */
export const TRANSPORTS = /** @type {const} */ (['udp', 'tcp', 'tls']);

/**
 * How long one transport may take to yield a relay candidate. A TURN server
 * on the other side of the world answers an Allocate over TLS within about a
 * second; a dropped packet or SYN never answers, so this is also what a
 * blocked network costs.
 */
const TRANSPORT_DEADLINE_MS = 5000;

/**
 * The relay transport of one ICE server URL (RFC 7065: `turn:` without
 * `transport` is UDP, `turns:` is TLS over TCP), or null for STUN and
 * anything unreadable.
 * @param {string} url
 * @return {RelayTransport|null}
 */
export function transportOf(url) {
  const m = /^(turns?):([^?]*)(?:\?(.*))?$/i.exec(String(url).trim());
  if (!m) return null;
  if (m[1].toLowerCase() === 'turns') return 'tls';
  const params = new URLSearchParams(m[3] ?? '');
  return (params.get('transport') ?? 'udp').toLowerCase() === 'tcp' ?
    'tcp' :
    'udp';
}

/**
 * The ICE servers restricted to the URLs of one transport (credentials kept).
 * @param {RTCIceServer[]} iceServers
 * @param {RelayTransport} transport
 * @return {RTCIceServer[]} empty when none of the URLs uses it
 */
export function serversFor(iceServers, transport) {
  /** @type {RTCIceServer[]} */
  const out = [];
  for (const server of iceServers ?? []) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    const mine = urls.filter((u) => transportOf(u) === transport);
    if (mine.length > 0) out.push({...server, urls: mine});
  }
  return out;
}

/**
 * The verdict for the transports' outcomes (see the file comment).
 * @param {Record<RelayTransport, TransportResult['outcome']>} o
 * @return {Verdict}
 */
export function verdictOf(o) {
  const offered = TRANSPORTS.filter((t) => o[t] !== 'absent');
  if (offered.length === 0) return 'none';
  if (o.udp === 'ok') return 'fine';
  if (o.tcp === 'ok' || o.tls === 'ok') {
    return o.udp === 'absent' ? 'fine' : 'no-udp';
  }
  const triedStream = o.tcp === 'failed' || o.tls === 'failed';
  return o.udp === 'failed' && triedStream ? 'web-only' : 'no-relay';
}

/**
 * Tries one transport: a relay-only connection that gathers candidates until
 * a relay candidate appears, gathering ends, the deadline passes or `stop`
 * fires; then it is closed.
 * @param {RTCIceServer[]} servers of this transport only
 * @param {number} deadlineMs
 * @param {AbortSignal} stop
 * @return {Promise<{ok: boolean, ms: number}>} never rejects
 */
async function tryRelay(servers, deadlineMs, stop) {
  const started = performance.now();
  /** @type {RTCPeerConnection} */
  let pc;
  try {
    pc = new RTCPeerConnection({iceServers: servers, iceTransportPolicy: 'relay'});
  } catch (err) {
    console.warn(
        '[alisay] network check: bad configuration',
        err instanceof Error ? err.name : err,
    );
    return {ok: false, ms: 0};
  }
  try {
    const ok = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), deadlineMs);
      /** @param {boolean} v */
      const done = (v) => {
        clearTimeout(timer);
        resolve(v);
      };
      stop.addEventListener('abort', () => done(false), {once: true});
      pc.onicecandidate = ({candidate}) => {
        if (!candidate) {
          done(false); // Gathering ended without a relay candidate.
        } else if (
          candidate.type === 'relay' ||
          / typ relay( |$)/.test(candidate.candidate)
        ) {
          done(true);
        }
      };
      pc.createDataChannel('netcheck');
      pc.createOffer()
          .then((offer) => pc.setLocalDescription(offer))
          .catch(() => done(false));
    });
    return {ok, ms: Math.round(performance.now() - started)};
  } finally {
    pc.onicecandidate = null;
    pc.close();
  }
}

/**
 * Checks the relay over UDP, TCP and TLS at once, one connection each. Ends
 * as soon as the verdict is known: UDP working means `fine` at once (TCP and
 * TLS are then `skipped`, their connections closed).
 * @param {RTCIceServer[]} iceServers from `joined` / `ice-servers`
 * @param {{deadlineMs?: number, onUsable?: function(RelayTransport): void}}
 *     [opts] `deadlineMs`: per transport (default 5 s); `onUsable`: called
 *     once, when the first transport works (a call can start then, before a
 *     blocked transport has used up its deadline)
 * @return {Promise<NetCheck>} never rejects
 */
export async function checkNetwork(iceServers, opts = {}) {
  const deadlineMs = opts.deadlineMs ?? TRANSPORT_DEADLINE_MS;
  const started = performance.now();
  const stop = new AbortController();
  let usable = false;
  /** @type {Record<RelayTransport, TransportResult>} */
  const res = {
    udp: {transport: 'udp', outcome: 'absent', ms: null},
    tcp: {transport: 'tcp', outcome: 'absent', ms: null},
    tls: {transport: 'tls', outcome: 'absent', ms: null},
  };
  const runs = TRANSPORTS.map(async (t) => {
    const servers = serversFor(iceServers, t);
    if (servers.length === 0) return;
    res[t].outcome = 'skipped';
    const r = await tryRelay(servers, deadlineMs, stop.signal);
    if (stop.signal.aborted && !r.ok) return; // Not needed any more.
    res[t].outcome = r.ok ? 'ok' : 'failed';
    res[t].ms = r.ms;
    if (r.ok && !usable) {
      usable = true;
      opts.onUsable?.(t);
    }
    if (t === 'udp' && r.ok) stop.abort(); // UDP works: nothing to add.
  });
  await Promise.all(runs);
  const outcomes = {
    udp: res.udp.outcome,
    tcp: res.tcp.outcome,
    tls: res.tls.outcome,
  };
  const check = {
    verdict: verdictOf(outcomes),
    results: TRANSPORTS.map((t) => res[t]),
    ms: Math.round(performance.now() - started),
  };
  console.info(
      '[alisay] network check:',
      check.verdict,
      check.results.map((r) => `${r.transport}=${r.outcome}`).join(' '),
      `${check.ms} ms`,
  );
  return check;
}

/** A new check after a call's trouble waits at least this long after the last. */
const TROUBLE_GAP_MS = 30000;
/**
 * A call not connected this long after its connection was made is in
 * trouble (ICE may sit in `checking` without ever saying `failed` when no
 * relay candidate could be gathered at all).
 */
const CONNECT_DEADLINE_MS = 15000;

/** @typedef {import('./view.js').View} View */
/** @typedef {import('./call.js').Call} Call */

/**
 * What the caller is told, by verdict: the pre-call sentence (messages.js
 * `status`) or, for a network the call cannot use, the error code
 * (messages.js `error`, shown in `#error` with the help link).
 */
const ERROR_OF = Object.freeze({
  'web-only': 'network-web-only',
  'no-relay': 'relay-preflight-failed',
  'none': 'relay-preflight-failed',
});

/**
 * The network check on the page: runs {@link checkNetwork} before the call
 * (app.js, in place of a bare relay preflight) and again when a call cannot
 * connect, and says the verdict in `#netcheck` (or `#error` when the network
 * cannot carry the call), so a failed call never ends in a spinner.
 */
export class NetworkCheck {
  /**
   * @param {View} view
   * @param {{status: function(string, Object=): string,
   *   error: function(string): string}} messages the page's sentences
   */
  constructor(view, messages) {
    this.view = view;
    this.messages = messages;
    /** @type {NetCheck|null} the last check of this session */
    this.last = null;
    /** When the last trouble check started (epoch ms). */
    this.troubleAt = 0;
    /** @type {string|null} the error code this object put into `#error` */
    this.errorShown = null;
    /** Incremented by {@link reset}: late results of an old session drop. */
    this.gen = 0;
    /** A call of this session connected (the verdict is not shown then). */
    this.connected = false;
  }

  /**
   * The pre-call check. Resolves as soon as the relay works over some
   * transport (null: the call may go on), or, when none works, with the
   * error code to end a Relay-only Start with (`network-web-only`,
   * `relay-preflight-failed`). The verdict shows once the check is over: a
   * blocked UDP costs its deadline there, not in the call's setup.
   * @param {RTCIceServer[]} iceServers
   * @return {Promise<string|null>}
   */
  run(iceServers) {
    const gen = this.gen;
    return new Promise((resolve) => {
      void checkNetwork(iceServers, {onUsable: () => resolve(null)}).then(
          (check) => {
            if (gen === this.gen) {
              this.last = check;
              // A call that connected meanwhile says more than the verdict.
              if (!this.connected) this.show(check, false);
            }
            resolve(ERROR_OF[check.verdict] ?? null);
          },
      );
    });
  }

  /**
   * Watches one call: when it fails, or is not connected
   * {@link CONNECT_DEADLINE_MS} after it was made, the network is checked
   * again and the caller told why; once it connects, the verdict goes.
   * @param {Call} call
   * @param {function(): RTCIceServer[]} iceServers the session's current ones
   */
  watch(call, iceServers) {
    const trouble = () => {
      if (!call.closed && call.state !== 'connected') {
        void this.onTrouble(iceServers(), () =>
          !call.closed && call.state !== 'connected');
      }
    };
    const timer = setTimeout(trouble, CONNECT_DEADLINE_MS);
    call.addEventListener('ice-failed', trouble);
    call.addEventListener('state', () => {
      if (call.closed) clearTimeout(timer);
      if (call.state === 'connected') {
        clearTimeout(timer);
        this.onConnected();
      }
    });
  }

  /**
   * @private
   * @param {RTCIceServer[]} iceServers
   * @param {function(): boolean} still whether the trouble lasts
   */
  async onTrouble(iceServers, still) {
    if (Date.now() - this.troubleAt < TROUBLE_GAP_MS) return;
    this.troubleAt = Date.now();
    const gen = this.gen;
    console.warn('[alisay] the call does not connect: checking the network');
    const check = await checkNetwork(iceServers);
    if (gen !== this.gen || !still()) return;
    this.last = check;
    this.show(check, true);
  }

  /**
   * @private The call connected: the verdict (and any trouble note) is old
   * news; the quality badge says how the call goes (and over which relay
   * transport), and on a phone the call controls need the room.
   */
  onConnected() {
    this.connected = true;
    if (this.errorShown) {
      this.view.setError(null);
      this.errorShown = null;
    }
    this.view.setNetCheck(null);
  }

  /**
   * @private
   * @param {NetCheck} check
   * @param {boolean} trouble after a call failed to connect
   */
  show(check, trouble) {
    const m = this.messages;
    /** @type {Record<string, string>} */
    const words = {};
    for (const r of check.results) {
      words[r.transport] = m.status(`netcheck-${r.outcome}`);
    }
    const details = m.status('netcheck-details', words);
    const code = ERROR_OF[check.verdict] ?? null;
    if (code === 'network-web-only' || (code && !trouble)) {
      this.view.setNetCheck(check.verdict, '', details, trouble);
      // Before a call app.js fails the Start with this code; during one the
      // call keeps retrying and this says why it does not connect.
      if (trouble) {
        this.view.setError(code, m.error(code));
        this.errorShown = code;
      }
      return;
    }
    let key = `netcheck-${check.verdict}`;
    if (trouble) key = code ? 'netcheck-trouble-relay' : 'netcheck-trouble-peer';
    this.view.setNetCheck(check.verdict, m.status(key), details, trouble);
  }

  /** The session ended: forget and hide everything. */
  reset() {
    this.gen += 1;
    this.connected = false;
    this.last = null;
    this.troubleAt = 0;
    if (this.errorShown) this.view.setError(null);
    this.errorShown = null;
    this.view.setNetCheck(null);
  }
}
