//! Closing a socket (RFC 6455 §7.1): our close frame, a bounded linger for the client's, and
//! a FIN with input discarded when the client's input was refused unread; and the close codes
//! a client may send us.

use std::future::poll_fn;
use std::mem::MaybeUninit;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::time::timeout;

use super::{Io, WRITE_TIMEOUT, write};
use crate::http::frame::{Decoder, Frame, OP_CLOSE, OutFrame};
use crate::signaling::close::CloseCode;
use crate::signaling::protocol::{ErrorCode, ServerMsg};

/// How long a closing socket waits for the client's side of the close handshake.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// While lingering for the client's close frame, a frame bigger than this ends the wait.
const LINGER_FRAME_MAX: usize = 64 * 1024;

/// Sends a close frame with `code` (its name as the reason) and lingers (bounded) for the
/// client's close.
pub(super) async fn close_socket(io: &mut Io, decoder: &mut Decoder, code: CloseCode) {
    // A client that does not read will not take a close frame either: don't wait long.
    let write_timeout = if code == CloseCode::SlowConsumer {
        CLOSE_LINGER
    } else {
        WRITE_TIMEOUT
    };
    if !write(
        io,
        OutFrame::close(code.code(), code.name()).bytes(),
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

/// Whether a client may send this close code (RFC 6455 §7.4.1-2, as tungstenite reads it:
/// 1000-1003, 1007-1013 and 3000-4999; 1004-1006 and 1015 are reserved, the rest undefined).
pub(super) fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999)
}

/// `error {code, message}` as a frame.
pub(super) fn error_frame(code: ErrorCode, message: &str) -> OutFrame {
    OutFrame::json(&ServerMsg::Error {
        code,
        message: message.to_owned(),
    })
    .unwrap_or_else(|| OutFrame::control(OP_CLOSE, &CloseCode::InvalidMessage.code().to_be_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
