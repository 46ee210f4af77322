//! The session task of one socket: it waits for two things at once, bytes from the client,
//! which it reads into a scratch buffer on its stack and decodes in place
//! ([`crate::http::frame`]), and mail in its mailbox ([`super::switchboard`]: frames the hub
//! addressed to it, a due ping, a passed join deadline, an overflow), which wakes it through a
//! stored [`std::task::Waker`]. Messages are parsed and validated here
//! (`protocol::parse_client`), then handed to the hub under a short lock
//! ([`super::Switchboard::message`]).
//!
//! The task's future is most of an idle socket's memory: while idle it waits only in
//! `poll_fn` on a reference to the [`Session`]; writes and closing run in boxed futures.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;
use tracing::debug;

use super::closing::{CLOSE_LINGER, close_code_allowed, close_socket, error_frame};
use super::switchboard::{Mail, Outgoing};
use super::{Io, WRITE_TIMEOUT, wheel, write};
use crate::http::App;
use crate::http::frame::{
    CLOSE_PROTOCOL_ERROR, Decoder, Frame, OP_CLOSE, OP_PING, OP_PONG, OutFrame, Violation,
};
use crate::signaling::close::CloseCode;
use crate::signaling::hub::{Event, PeerId};
use crate::signaling::protocol::{ByeReason, ErrorCode, ServerMsg, parse_client};
use crate::signaling::rate::TokenBucket;

/// Bytes read from the socket at a time, into a buffer on the task's stack (not kept between
/// reads). 16 KiB takes a whole SDP offer, or a burst of small messages, in one read.
const READ_CHUNK: usize = 16 * 1024;
/// Reads handled in one wakeup before the task looks at its mailbox (so a client that floods
/// cannot starve the frames addressed to it).
const READS_PER_WAKE: usize = 4;
/// Frames of one mailbox batch are joined into one write up to this many bytes.
const WRITE_COALESCE: usize = 64 * 1024;

mod write;

/// Why a session ended (for the log and the close code).
#[derive(Debug)]
pub(super) enum End {
    /// Closed by the client or the network; nothing more to send.
    Gone,
    /// We close with this code (after any message already sent).
    Close(CloseCode),
}

/// What stops a session from inside the read path.
#[derive(Debug)]
enum Stop {
    /// Send `error {code, message}`, then close with the code.
    Fail(ErrorCode, String, CloseCode),
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
            code.close_code().unwrap_or(CloseCode::InvalidMessage),
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

/// A socket's session: the parts of its state that live between wakeups. Whether the hub
/// admitted it is not here but in its mailbox (the one place the socket side keeps it).
pub(super) struct Session {
    app: Arc<App>,
    peer: PeerId,
    ip: IpAddr,
    io: Io,
    decoder: Decoder,
    bucket: TokenBucket,
    last_seen: Instant,
    /// The answer to the client's latest ping, not yet written (only the latest is owed,
    /// RFC 6455 §5.5.3).
    pong: Option<Box<OutFrame>>,
}

fn max_message(app: &App) -> usize {
    usize::try_from(app.config.signaling.max_message_bytes.as_u64()).unwrap_or(usize::MAX)
}

impl Session {
    /// Registers the socket with the switchboard and the timer task.
    pub(super) fn start(
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
            pong: None,
            app,
        }
    }

    /// Frees the slot (the peer hears `peer-left`) and closes as `end` says.
    pub(super) async fn finish(mut self, end: End) {
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
                debug!(peer = self.peer, code = code.code(), "closing socket");
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
    pub(super) async fn run(&mut self) -> End {
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
            return Some(End::Close(CloseCode::Restart));
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
            return Some(End::Close(CloseCode::SlowConsumer));
        }
        // Set only while the socket is not admitted (cleared on admission).
        if mail.join_due {
            return self
                .on_stop(Stop::fail(ErrorCode::JoinTimeout, "no join in time"))
                .await;
        }
        let mut frames = mail.frames;
        if mail.ping_due {
            let heartbeat = self.app.config.signaling.heartbeat_interval;
            if self.last_seen.elapsed() > heartbeat.saturating_mul(3) {
                return Some(End::Close(CloseCode::Liveness));
            }
            frames.push(Outgoing::Frame(OutFrame::control(OP_PING, b"")));
        }
        self.write_frames(frames).await
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
                    None => OutFrame::control(OP_CLOSE, b""),
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
                let close = rejected
                    .code
                    .close_code()
                    .unwrap_or(CloseCode::InvalidMessage);
                return ControlFlow::Break(Stop::Fail(rejected.code, rejected.message, close));
            }
        };
        // "The first message must be join" is the hub's rule (it answers anything else
        // before admission with invalid-message and a close).
        // A close for this socket (room full, hangup, ...) ends its reading: what follows
        // in the same read is not handled, as if the socket were already closed.
        let closing = self
            .app
            .switchboard()
            .message(self.peer, msg, self.ip, self.now);
        if closing {
            return ControlFlow::Break(Stop::Flush);
        }
        ControlFlow::Continue(())
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
}
