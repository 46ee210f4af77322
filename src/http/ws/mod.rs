//! The socket runtime behind `GET /ws`, built so that an idle socket costs as little memory as
//! possible (`docs/performance.md` has the figures). Following a socket through it:
//!
//! - [`upgrade`]: the upgrade, checked and answered by hand (`101`), and the spawn of the
//!   socket's task (or `server-busy` past `server.max_connections`).
//! - [`session`]: the one task per socket. It waits for bytes from the client (decoded in
//!   place by [`super::frame`]) and for mail in its mailbox, hands each parsed message to the
//!   hub under a short lock, and writes what the hub addressed to it.
//! - [`switchboard`]: the hub with every socket's mailbox (outbox, waker, flags) and the
//!   timer queues, under one lock; it delivers the hub's outputs and keeps, per socket,
//!   whether the hub admitted it (the only place the socket side keeps that).
//! - [`timers`]: the two FIFO timer queues (join deadlines, pings) of all sockets and
//!   [`timers::wheel`], the one task that fires them.
//! - [`closing`]: the close handshake (close frame, bounded linger, FIN), and the close codes
//!   a client may send.
//!
//! What an idle socket holds: the task (the session's small state), the upgraded TCP stream
//! and its tokio registration, and its mailbox entry; no read or write buffer, no channel, no
//! timer, no tracing span.

pub mod closing;
pub mod session;
pub mod switchboard;
pub mod timers;
pub mod upgrade;

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

pub use switchboard::{Mail, Outgoing, Switchboard};
pub use timers::wheel;
pub use upgrade::upgrade;

/// The upgraded connection of one socket.
type Io = TokioIo<hyper::upgrade::Upgraded>;

/// How long one write may block before the socket is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes all of `bytes` within `limit`; false if the socket failed or stayed blocked.
async fn write(io: &mut Io, bytes: &[u8], limit: Duration) -> bool {
    matches!(timeout(limit, io.write_all(bytes)).await, Ok(Ok(())))
}
