//! Writing a session's mail: frames coalesced into few writes, each bounded by
//! [`WRITE_TIMEOUT`], and given up at once (4012) if the mailbox overflows while a write is
//! blocked.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::AsyncWrite;
use tokio::time::timeout;

use super::{End, Session, WRITE_COALESCE};
use crate::http::frame::OutFrame;
use crate::http::ws::WRITE_TIMEOUT;
use crate::http::ws::switchboard::Outgoing;
use crate::signaling::close::CloseCode;

impl Session {
    /// Writes `frames` (coalesced into few writes); stops at a close. While a write is
    /// blocked, an overflow of the mailbox ends the session at once (4012).
    pub(super) async fn write_frames(&mut self, frames: Vec<Outgoing>) -> Option<End> {
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
                                return Poll::Ready(Err(End::Close(CloseCode::SlowConsumer)));
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
}
