//! `GET /ws`: the upgrade, answered by hand, and the per-socket session task, built so that an
//! idle socket costs as little memory as possible (`docs/performance.md` has the figures).
//!
//! One task per socket. It waits for two things at once: bytes from the client, which it reads
//! into a scratch buffer on its stack and decodes in place ([`super::frame`]), and mail in its
//! [`super::Switchboard`] mailbox (frames the hub addressed to it, a due ping, a passed join
//! deadline, an overflow), which wakes it through a stored [`std::task::Waker`]. Messages are
//! parsed and validated here (`protocol::parse_client`), then handed to the hub under a short
//! lock. Pings and join deadlines of all sockets are driven by one timer task, [`wheel`].
//!
//! What an idle socket holds: the task (this session's small state), the upgraded TCP stream
//! and its tokio registration, and its mailbox entry; no read or write buffer, no channel, no
//! timer, no tracing span.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response as Reply;

use super::assets::plain;
use super::frame::{CLOSE_PROTOCOL_ERROR, Decoder, Frame, OP_PING, OP_PONG, OutFrame, Violation};
use super::{App, Mail, Outgoing};
use crate::signaling::hub::{Action, Event, PeerId};
use crate::signaling::protocol::{ByeReason, ClientMsg, ErrorCode, ServerMsg, close, parse_client};
use crate::signaling::rate::TokenBucket;

/// Bytes read from the socket at a time, into a buffer on the task's stack (not kept between
/// reads). 16 KiB takes a whole SDP offer, or a burst of small messages, in one read.
const READ_CHUNK: usize = 16 * 1024;
/// Reads handled in one wakeup before the task looks at its mailbox (so a client that floods
/// cannot starve the frames addressed to it).
const READS_PER_WAKE: usize = 4;
/// Frames of one mailbox batch are joined into one write up to this many bytes.
const WRITE_COALESCE: usize = 64 * 1024;
/// How long one write may block before the socket is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the client's side of the close handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// While lingering for the client's close frame, a frame bigger than this ends the wait.
const LINGER_FRAME_MAX: usize = 64 * 1024;
/// Sockets beyond `server.max_connections` that are still upgraded, only to be told
/// `server-busy` (4013) and closed at once; past these, upgrades get a plain 503.
const BUSY_SOCKETS: usize = 64;

/// Checks and answers the upgrade: 400 with any query string (room ids never go in URLs),
/// 403 for a foreign or missing `Origin`, 400 for a malformed upgrade; otherwise 101 and a
/// session task. When `server.max_connections` sockets are open, the socket is told
/// `error server-busy` and closed with 4013 (what a browser can see; it cannot read a 503),
/// and past a few dozen such sockets more, upgrades get 503.
pub fn upgrade(
    app: Arc<App>,
    ip: IpAddr,
    query: Option<String>,
    headers: HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> Reply {
    if query.is_some() {
        return plain(StatusCode::BAD_REQUEST, "no query string allowed on /ws\n");
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !app.origin_allowed(origin) {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let (Some(key), true, true, true, Some(on_upgrade)) = (
        key,
        has(header::CONNECTION, "upgrade"),
        has(header::UPGRADE, "websocket"),
        has(header::SEC_WEBSOCKET_VERSION, "13"),
        on_upgrade,
    ) else {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    };
    let max = app.config.server.max_connections;
    let open = app.connections.fetch_add(1, Ordering::AcqRel);
    if open >= max.saturating_add(BUSY_SOCKETS) {
        app.connections.fetch_sub(1, Ordering::AcqRel);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "server at capacity\n");
    }
    let busy = open >= max;
    let accept = derive_accept_key(key.as_bytes());
    let peer = app.next_peer_id();
    // The task's future is as small as it can be (it is most of an idle socket's memory): the
    // session's state, a reference to it in `run`, and boxes for everything else.
    let task_app = app.clone();
    let fut = async move {
        match on_upgrade.await {
            Ok(upgraded) if busy => Box::pin(refuse_busy(&task_app, upgraded)).await,
            Ok(upgraded) => {
                let mut s = Session::start(task_app, peer, ip, upgraded);
                let end = s.run().await;
                Box::pin(s.finish(end)).await;
            }
            Err(e) => {
                debug!(cause = %e, "upgrade failed");
                task_app.connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    };
    app.tasks.spawn(fut);
    let mut resp = Reply::new(Vec::<u8>::new().into());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

type Io = TokioIo<hyper::upgrade::Upgraded>;

/// Why a session ended (for the log and the close code).
#[derive(Debug)]
enum End {
    /// Closed by the client or the network; nothing more to send.
    Gone,
    /// We close with this code (after any message already sent).
    Close(u16),
}

/// What stops a session from inside the read path.
#[derive(Debug)]
enum Stop {
    /// Send `error {code, message}`, then close with the code.
    Fail(ErrorCode, String, u16),
    /// The client sent a close frame: answer with this one (RFC 6455 §5.5.1) and end.
    ClientClosed(OutFrame),
    /// Write what the hub queued (it ends with a close for this socket), then see.
    Flush,
    /// The connection ended.
    Gone,
}

impl Stop {
    fn fail(code: ErrorCode, message: &str) -> Stop {
        Stop::Fail(
            code,
            message.to_owned(),
            code.close_code().unwrap_or(close::INVALID_MESSAGE),
        )
    }
}

/// What woke the session.
enum Wake {
    /// Bytes were read and handled; maybe a pong is due.
    Read,
    /// Mail from the switchboard.
    Mail(Mail),
    /// The read path wants the session to end.
    Stop(Stop),
}

/// A joined-or-joining socket: the parts of its state that live between wakeups.
struct Session {
    app: Arc<App>,
    peer: PeerId,
    ip: IpAddr,
    io: Io,
    decoder: Decoder,
    bucket: TokenBucket,
    last_seen: Instant,
    joined: bool,
    /// The answer to the client's latest ping, not yet written (only the latest is owed,
    /// RFC 6455 §5.5.3).
    pong: Option<Box<OutFrame>>,
}

/// A socket over `server.max_connections`: `error server-busy`, close 4013.
async fn refuse_busy(app: &App, upgraded: hyper::upgrade::Upgraded) {
    let mut io = TokioIo::new(upgraded);
    debug!("refusing a socket: server.max_connections reached");
    let busy = error_frame(ErrorCode::ServerBusy, "the server is at capacity");
    if write(&mut io, busy.bytes(), WRITE_TIMEOUT).await {
        close_socket(&mut io, &mut Decoder::default(), close::SERVER_BUSY).await;
    }
    app.connections.fetch_sub(1, Ordering::AcqRel);
}

fn max_message(app: &App) -> usize {
    usize::try_from(app.config.signaling.max_message_bytes.as_u64()).unwrap_or(usize::MAX)
}

impl Session {
    /// Registers the socket with the switchboard and the timer task.
    fn start(
        app: Arc<App>,
        peer: PeerId,
        ip: IpAddr,
        upgraded: hyper::upgrade::Upgraded,
    ) -> Session {
        let sig = &app.config.signaling;
        let now = Instant::now();
        let nudge = app
            .switchboard()
            .register(peer, now, sig.join_timeout, sig.heartbeat_interval);
        if nudge {
            app.wheel.notify_one();
        }
        if !app.wheel_started.swap(true, Ordering::AcqRel) {
            tokio::spawn(wheel(app.clone()));
        }
        Session {
            peer,
            ip,
            io: TokioIo::new(upgraded),
            decoder: Decoder::default(),
            bucket: TokenBucket::new(sig.message_rate, now),
            last_seen: now,
            joined: false,
            pong: None,
            app,
        }
    }

    /// Frees the slot (the peer hears `peer-left`) and closes as `end` says.
    async fn finish(mut self, end: End) {
        {
            let mut sb = self.app.switchboard();
            sb.unregister(self.peer);
            let outputs = sb
                .hub
                .handle(self.peer, Event::Disconnected, Instant::now());
            sb.dispatch(outputs);
        }
        match end {
            End::Gone => debug!(peer = self.peer, "socket closed by peer"),
            End::Close(code) => {
                debug!(peer = self.peer, code, "closing socket");
                close_socket(&mut self.io, &mut self.decoder, code).await;
            }
        }
        self.app.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Session {
    /// The session's loop. While idle the task waits only in `poll_fn` (a reference to `self`);
    /// everything that can wait longer (writes, closing) runs in a boxed future, so that its
    /// state is not part of the size of every idle session's task.
    async fn run(&mut self) -> End {
        loop {
            let wake = poll_fn(|cx| self.poll_wake(cx)).await;
            if matches!(wake, Wake::Read)
                && self.pong.is_none()
                && !self.app.shutdown.is_cancelled()
            {
                continue;
            }
            if let Some(end) = Box::pin(self.handle(wake)).await {
                return end;
            }
        }
    }

    /// Handles what woke the session (beyond bytes already handled): shutdown, mail, a stop,
    /// a pong owed.
    async fn handle(&mut self, wake: Wake) -> Option<End> {
        if self.app.shutdown.is_cancelled() {
            if let Some(bye) = OutFrame::json(&ServerMsg::Bye {
                reason: ByeReason::Restart,
            }) {
                let _ = write(&mut self.io, bye.bytes(), WRITE_TIMEOUT).await;
            }
            return Some(End::Close(close::RESTART));
        }
        let end = match wake {
            Wake::Read => None,
            Wake::Mail(mail) => self.on_mail(mail).await,
            Wake::Stop(Stop::Gone) => Some(End::Gone),
            Wake::Stop(stop) => {
                // What the hub queued for this client before the stop goes out first, in
                // order (say, the acks of the messages before a refused one).
                let mail = self.app.switchboard().take(self.peer);
                match self.on_mail(mail).await {
                    Some(end) => Some(end),
                    None => self.on_stop(stop).await,
                }
            }
        };
        if end.is_some() {
            return end;
        }
        if let Some(pong) = self.pong.take()
            && !write(&mut self.io, pong.bytes(), WRITE_TIMEOUT).await
        {
            return Some(End::Gone);
        }
        None
    }

    /// Reads and handles what the client sent (a few reads at most), else takes mail, else
    /// waits for either.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Wake> {
        // The timer task wakes every socket once shutdown has begun.
        if self.app.shutdown.is_cancelled() {
            return Poll::Ready(Wake::Read);
        }
        for _ in 0..READS_PER_WAKE {
            // Uninitialized and on the stack: nothing is kept between reads.
            let mut storage = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut storage);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                    return Poll::Ready(Wake::Stop(Stop::Gone));
                }
                Poll::Ready(Ok(())) => {
                    if let ControlFlow::Break(stop) = self.on_bytes(buf.filled_mut()) {
                        return Poll::Ready(Wake::Stop(stop));
                    }
                    if self.pong.is_some() {
                        return Poll::Ready(Wake::Read);
                    }
                }
                Poll::Ready(Err(e)) => {
                    debug!(peer = self.peer, cause = %e, "socket error");
                    return Poll::Ready(Wake::Stop(Stop::Gone));
                }
                Poll::Pending => {
                    return match self.app.switchboard().take_or_wait(self.peer, cx.waker()) {
                        Some(mail) => Poll::Ready(Wake::Mail(mail)),
                        None => Poll::Pending,
                    };
                }
            }
        }
        // Still readable after a few reads: let the mail through first, then read on.
        match self.app.switchboard().take_or_wait(self.peer, cx.waker()) {
            Some(mail) => Poll::Ready(Wake::Mail(mail)),
            None => Poll::Ready(Wake::Read),
        }
    }

    /// Decodes freshly read bytes and handles every complete frame.
    fn on_bytes(&mut self, bytes: &mut [u8]) -> ControlFlow<Stop> {
        let Session {
            decoder,
            app,
            peer,
            ip,
            bucket,
            last_seen,
            joined,
            pong,
            ..
        } = self;
        let now = Instant::now();
        let app: &App = app;
        let mut state = FrameCtx {
            app,
            peer: *peer,
            ip: *ip,
            bucket,
            joined,
            pong,
            now,
        };
        *last_seen = now;
        let max = max_message(app);
        match decoder.feed(bytes, max, |frame| state.on_frame(frame)) {
            Ok(flow) => flow,
            Err(Violation::TooBig) => ControlFlow::Break(Stop::fail(
                ErrorCode::MessageTooBig,
                "message over the size limit",
            )),
            Err(Violation::NotUtf8) => ControlFlow::Break(Stop::fail(
                ErrorCode::InvalidMessage,
                "text frame is not UTF-8",
            )),
            // The client is closing with a malformed close frame: answer with a bare close
            // (1002 or 1007, RFC 6455 §7.4.1) and end; it reads no more messages.
            Err(Violation::BadClose(code)) => {
                ControlFlow::Break(Stop::ClientClosed(OutFrame::close(code, "")))
            }
            // Framing a browser never sends (RFC 6455 §5: unmasked, reserved bits or opcodes,
            // bad fragmentation): refused like any other invalid message.
            Err(e @ Violation::Protocol(_)) => {
                debug!(peer = *peer, cause = %e, "websocket protocol violation");
                ControlFlow::Break(Stop::fail(
                    ErrorCode::InvalidMessage,
                    "websocket protocol violation",
                ))
            }
        }
    }

    /// Handles the mailbox: overflow, join deadline, ping, then the frames in order (up to a
    /// close).
    async fn on_mail(&mut self, mail: Mail) -> Option<End> {
        if mail.overflowed {
            return Some(End::Close(close::SLOW_CONSUMER));
        }
        if mail.join_due && !self.joined {
            return self
                .on_stop(Stop::fail(ErrorCode::JoinTimeout, "no join in time"))
                .await;
        }
        let mut frames = mail.frames;
        if mail.ping_due {
            let heartbeat = self.app.config.signaling.heartbeat_interval;
            if self.last_seen.elapsed() > heartbeat.saturating_mul(3) {
                return Some(End::Close(close::LIVENESS));
            }
            frames.push(Outgoing::Frame(OutFrame::control(OP_PING, b"")));
        }
        self.write_frames(frames).await
    }

    /// Writes `frames` (coalesced into few writes); stops at a close. While a write is
    /// blocked, an overflow of the mailbox ends the session at once (4012).
    async fn write_frames(&mut self, frames: Vec<Outgoing>) -> Option<End> {
        let mut batch: Vec<u8> = Vec::new();
        let mut closing = None;
        let mut single: Option<OutFrame> = None;
        for item in frames {
            match item {
                Outgoing::Close(code) => {
                    closing = Some(code);
                    break;
                }
                Outgoing::Frame(f) => {
                    if single.is_none() && batch.is_empty() {
                        single = Some(f);
                        continue;
                    }
                    if let Some(first) = single.take() {
                        batch.extend_from_slice(first.bytes());
                    }
                    batch.extend_from_slice(f.bytes());
                    if batch.len() >= WRITE_COALESCE {
                        if let Some(end) = self.write_or_slow(&batch).await {
                            return Some(end);
                        }
                        batch.clear();
                    }
                }
            }
        }
        let pending: &[u8] = match &single {
            Some(f) => f.bytes(),
            None => &batch,
        };
        if !pending.is_empty()
            && let Some(end) = self.write_or_slow(pending).await
        {
            return Some(end);
        }
        closing.map(End::Close)
    }

    /// Writes `bytes` within [`WRITE_TIMEOUT`]; `Some` ends the session (gone, or fallen
    /// behind: its outbox overflowed while the write was blocked).
    async fn write_or_slow(&mut self, bytes: &[u8]) -> Option<End> {
        let (app, peer) = (&*self.app, self.peer);
        let io = &mut self.io;
        let mut written = 0;
        let wrote = timeout(
            WRITE_TIMEOUT,
            poll_fn(|cx| {
                while written < bytes.len() {
                    match Pin::new(&mut *io).poll_write(cx, &bytes[written..]) {
                        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                            return Poll::Ready(Err(End::Gone));
                        }
                        Poll::Ready(Ok(n)) => written += n,
                        Poll::Pending => {
                            // The client does not read: give up at once if our outbox
                            // overflowed meanwhile.
                            if app.switchboard().overflowed_or_wait(peer, cx.waker()) {
                                return Poll::Ready(Err(End::Close(close::SLOW_CONSUMER)));
                            }
                            return Poll::Pending;
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }),
        )
        .await;
        match wrote {
            Ok(Ok(())) => None,
            Ok(Err(end)) => Some(end),
            Err(_) => Some(End::Gone),
        }
    }

    /// Ends the session the read path asked to stop (`None`: carry on).
    async fn on_stop(&mut self, stop: Stop) -> Option<End> {
        Some(match stop {
            Stop::Gone => End::Gone,
            Stop::Flush => return None,
            Stop::ClientClosed(reply) => {
                let _ = write(&mut self.io, reply.bytes(), CLOSE_LINGER).await;
                End::Gone
            }
            Stop::Fail(code, message, close_code) => {
                let frame = error_frame(code, &message);
                if write(&mut self.io, frame.bytes(), WRITE_TIMEOUT).await {
                    End::Close(close_code)
                } else {
                    End::Gone
                }
            }
        })
    }
}

/// The part of a session a decoded frame may touch (borrowed apart from the decoder).
struct FrameCtx<'s> {
    app: &'s App,
    peer: PeerId,
    ip: IpAddr,
    bucket: &'s mut TokenBucket,
    joined: &'s mut bool,
    pong: &'s mut Option<Box<OutFrame>>,
    now: Instant,
}

impl FrameCtx<'_> {
    fn on_frame(&mut self, frame: Frame<'_>) -> ControlFlow<Stop> {
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Binary => {
                return ControlFlow::Break(Stop::fail(
                    ErrorCode::InvalidMessage,
                    "binary frames are not accepted",
                ));
            }
            Frame::Close(close) => {
                // Echo the client's close (RFC 6455 §5.5.1); a code no endpoint may send
                // (§7.4.2) is answered 1002.
                let reply = match close {
                    None => OutFrame::control(super::frame::OP_CLOSE, b""),
                    Some((code, reason)) if close_code_allowed(code) => {
                        OutFrame::close(code, reason)
                    }
                    Some(_) => OutFrame::close(CLOSE_PROTOCOL_ERROR, ""),
                };
                return ControlFlow::Break(Stop::ClientClosed(reply));
            }
            Frame::Ping(payload) => {
                // Control frames draw from the same bucket: a ping flood is a flood.
                if !self.bucket.try_take(self.now) {
                    return ControlFlow::Break(Stop::fail(
                        ErrorCode::RateLimited,
                        "too many messages",
                    ));
                }
                *self.pong = Some(Box::new(OutFrame::control(OP_PONG, payload)));
                return ControlFlow::Continue(());
            }
            Frame::Pong => {
                if !self.bucket.try_take(self.now) {
                    return ControlFlow::Break(Stop::fail(
                        ErrorCode::RateLimited,
                        "too many messages",
                    ));
                }
                return ControlFlow::Continue(());
            }
        };
        if !self.bucket.try_take(self.now) {
            return ControlFlow::Break(Stop::fail(ErrorCode::RateLimited, "too many messages"));
        }
        let max_sdp =
            usize::try_from(self.app.config.signaling.max_sdp_bytes.as_u64()).unwrap_or(usize::MAX);
        let msg = match parse_client(text, max_sdp) {
            Ok(msg) => msg,
            Err(rejected) => {
                let close = rejected.code.close_code().unwrap_or(close::INVALID_MESSAGE);
                return ControlFlow::Break(Stop::Fail(rejected.code, rejected.message, close));
            }
        };
        let is_join = matches!(msg, ClientMsg::Join { .. });
        if !*self.joined && !is_join {
            return ControlFlow::Break(Stop::fail(
                ErrorCode::InvalidMessage,
                "the first message must be join",
            ));
        }
        let mut sb = self.app.switchboard();
        let outputs = sb
            .hub
            .handle(self.peer, Event::Message(msg, self.ip), self.now);
        if is_join && !*self.joined {
            *self.joined = outputs.iter().any(|(p, a)| {
                *p == self.peer && matches!(a, Action::Send(ServerMsg::Joined { .. }))
            });
            if *self.joined {
                sb.set_joined(self.peer);
                // debug, not info: a line per join was a write(2) per join on stderr, about
                // a tenth of a join's server CPU (docs/performance.md).
                debug!(
                    peer = self.peer,
                    ip_family = if self.ip.is_ipv4() { "v4" } else { "v6" },
                    "joined a room"
                );
            }
        }
        // A close for this socket (room full, hangup, ...) ends its reading: what follows
        // in the same read is not handled, as if the socket were already closed.
        let closing = outputs
            .iter()
            .any(|(p, a)| *p == self.peer && matches!(a, Action::Close(_)));
        sb.dispatch_for(outputs, Some(self.peer));
        if closing {
            return ControlFlow::Break(Stop::Flush);
        }
        ControlFlow::Continue(())
    }
}

/// Whether a client may send this close code (RFC 6455 §7.4.1-2, as tungstenite reads it:
/// 1000-1003, 1007-1013 and 3000-4999; 1004-1006 and 1015 are reserved, the rest undefined).
fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// `error {code, message}` as a frame.
fn error_frame(code: ErrorCode, message: &str) -> OutFrame {
    OutFrame::json(&ServerMsg::Error {
        code,
        message: message.to_owned(),
    })
    .unwrap_or_else(|| {
        OutFrame::control(
            super::frame::OP_CLOSE,
            &close::INVALID_MESSAGE.to_be_bytes(),
        )
    })
}

/// Writes all of `bytes` within `limit`; false if the socket failed or stayed blocked.
async fn write(io: &mut Io, bytes: &[u8], limit: Duration) -> bool {
    matches!(timeout(limit, io.write_all(bytes)).await, Ok(Ok(())))
}

/// Sends a close frame with `code` and lingers (bounded) for the client's close.
async fn close_socket(io: &mut Io, decoder: &mut Decoder, code: u16) {
    // A client that does not read will not take a close frame either: don't wait long.
    let write_timeout = if code == close::SLOW_CONSUMER {
        CLOSE_LINGER
    } else {
        WRITE_TIMEOUT
    };
    if !write(
        io,
        OutFrame::close(code, close_reason(code)).bytes(),
        write_timeout,
    )
    .await
    {
        return;
    }
    // Let the client answer the close so its `onclose` sees our code; bounded.
    let _ = timeout(CLOSE_LINGER, async {
        // Until the client's close frame; anything undecodable ends the wait too.
        let mut echoed = false;
        poll_fn(|cx| {
            poll_discard(io, cx, |bytes| {
                let seen = decoder.feed(bytes, LINGER_FRAME_MAX, |f| match f {
                    Frame::Close(_) => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                });
                echoed = matches!(seen, Ok(ControlFlow::Break(())));
                matches!(seen, Ok(ControlFlow::Continue(())))
            })
        })
        .await;
        // The handshake is complete and every byte the client sent has been read: dropping
        // the socket sends a FIN (the server closes the TCP connection first, RFC 6455 §7.1.1).
        if echoed {
            return;
        }
        // A refused frame ends the stream with its bytes unread, and closing a TCP socket
        // with unread input sends a reset, upon which the client's kernel may discard our
        // error and close frames before they are read. So: FIN, then discard input until the
        // client closes too.
        let _ = io.shutdown().await;
        poll_fn(|cx| poll_discard(io, cx, |_| true)).await;
    })
    .await;
}

/// Reads and hands what arrives to `go_on` (on the stack: thousands of sockets closing at
/// once allocate nothing for it) until it returns false, the stream ends or fails.
fn poll_discard(
    io: &mut Io,
    cx: &mut Context<'_>,
    mut go_on: impl FnMut(&mut [u8]) -> bool,
) -> Poll<()> {
    loop {
        let mut storage = [MaybeUninit::<u8>::uninit(); 4096];
        let mut buf = ReadBuf::uninit(&mut storage);
        // tokio's cooperative budget makes a flooding client yield here after a while.
        match Pin::new(&mut *io).poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                if !go_on(buf.filled_mut()) {
                    return Poll::Ready(());
                }
            }
            Poll::Ready(_) => return Poll::Ready(()),
        }
    }
}

/// The one timer task of all sockets: fires join deadlines and pings (see
/// [`super::Switchboard`]), and on shutdown wakes every socket so each says `bye` and closes
/// with 1012. Started by the first socket.
pub async fn wheel(app: Arc<App>) {
    let heartbeat = app.config.signaling.heartbeat_interval;
    loop {
        let next = app.switchboard().next_timer();
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            () = app.shutdown.cancelled() => {
                app.switchboard().wake_all();
                return;
            }
            () = app.wheel.notified() => {}
            () = sleep_until(next.unwrap_or(far)) => {}
        }
        app.switchboard().fire_timers(Instant::now(), heartbeat);
    }
}

/// The close frame's reason text (no secrets, just the code's name).
fn close_reason(code: u16) -> &'static str {
    match code {
        close::NORMAL => "bye",
        close::RESTART => "restart",
        close::INVALID_MESSAGE => "invalid-message",
        close::JOIN_TIMEOUT => "join-timeout",
        close::LIVENESS => "liveness",
        close::ROOM_NOT_ALLOWED => "room-not-allowed",
        close::ROOM_FULL => "room-full",
        close::RATE_LIMITED => "rate-limited",
        close::MESSAGE_TOO_BIG => "message-too-big",
        close::REPLACED => "replaced",
        close::IDLE => "idle",
        close::SLOW_CONSUMER => "slow-consumer",
        close::SERVER_BUSY => "server-busy",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Most of an idle socket's memory is its task, whose future holds a `Session`: keep it
    /// small (measured 152 bytes; the whole future 280, in a 384-byte tokio task cell).
    #[test]
    fn the_session_state_stays_small() {
        assert!(
            std::mem::size_of::<Session>() <= 160,
            "Session is {} bytes",
            std::mem::size_of::<Session>()
        );
        assert_eq!(
            std::mem::size_of::<Decoder>(),
            8,
            "a null pointer while idle"
        );
    }

    #[test]
    fn close_codes_a_client_may_send() {
        for ok in [1000, 1001, 1003, 1007, 1013, 3000, 4999] {
            assert!(close_code_allowed(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1014, 1015, 2999, 5000] {
            assert!(!close_code_allowed(bad), "{bad}");
        }
    }
}
