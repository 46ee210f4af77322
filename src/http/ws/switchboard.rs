//! The [`Switchboard`]: the hub, every open socket's mailbox and the timers of all sockets,
//! under one `std::sync::Mutex` (held for short, never across an `.await`).
//!
//! Memory per idle socket is the point of this layout (`docs/performance.md`): a socket's
//! outbox is a `Vec` that allocates only while frames wait in it, and its task is woken
//! through the [`Waker`] kept here instead of a channel (tokio's bounded mpsc allocates a block
//! of 32 slots, about 1.3 KiB, per socket up front). Join deadlines and pings are two FIFO
//! queues ([`super::timers`]), ticked by one task for all sockets, not a timer per socket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::timers::{Due, Timers};
use crate::http::frame::OutFrame;
use crate::signaling::close::CloseCode;
use crate::signaling::hub::{Action, Event, Hub, Output, PeerId};
use crate::signaling::protocol::ClientMsg;

/// One item of a socket's outbox: a frame ready to write, or a close with its code.
#[derive(Debug)]
pub enum Outgoing {
    Frame(OutFrame),
    Close(CloseCode),
}

/// The hub, every open socket's mailbox, and the shared timers of all sockets.
#[derive(Debug)]
pub struct Switchboard {
    pub hub: Hub,
    sockets: HashMap<PeerId, Mailbox>,
    timers: Timers,
    /// `signaling.outbox_messages`.
    outbox_limit: usize,
}

/// A socket's outgoing frames, how to wake its task, and whether the hub admitted it.
#[derive(Debug, Default)]
struct Mailbox {
    /// Frames in order; a `Vec` (taken whole by the task), empty and unallocated when idle.
    queue: Vec<Outgoing>,
    /// The socket task, when it waits for mail (or is blocked writing).
    waker: Option<Waker>,
    /// The hub admitted this socket to a room ([`crate::signaling::hub::Outcome`]): its join
    /// deadline no longer matters. The socket side keeps admission here only.
    admitted: bool,
    /// The outbox overflowed: the client cannot keep up and is closed with 4012.
    overflowed: bool,
    /// The ping interval elapsed: the task checks liveness and pings.
    ping_due: bool,
    /// `join_timeout` elapsed before admission.
    join_due: bool,
}

impl Mailbox {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

/// What a socket task finds in its mailbox.
#[derive(Debug, Default)]
pub struct Mail {
    pub frames: Vec<Outgoing>,
    pub overflowed: bool,
    pub ping_due: bool,
    pub join_due: bool,
}

impl Switchboard {
    /// A switchboard around `hub`, with outboxes of at most `outbox_limit` frames.
    pub fn new(hub: Hub, outbox_limit: usize) -> Switchboard {
        Switchboard {
            hub,
            sockets: HashMap::new(),
            timers: Timers::default(),
            outbox_limit: outbox_limit.max(1),
        }
    }

    /// Hands `peer`'s message to the hub and delivers the outputs; records the admission the
    /// hub reports. Returns whether the hub closes `peer`'s socket (then nothing more it sent
    /// is read).
    pub fn message(&mut self, peer: PeerId, msg: ClientMsg, ip: IpAddr, now: Instant) -> bool {
        let outcome = self.hub.process(peer, Event::Message(msg, ip), now);
        if outcome.admitted
            && let Some(m) = self.sockets.get_mut(&peer)
        {
            m.admitted = true;
            m.join_due = false;
            // debug, not info: a line per join was a write(2) per join on stderr, about a
            // tenth of a join's server CPU (docs/performance.md).
            debug!(
                peer,
                ip_family = if ip.is_ipv4() { "v4" } else { "v6" },
                "joined a room"
            );
        }
        self.dispatch_for(outcome.outputs, Some(peer))
    }

    /// Delivers hub outputs. A full outbox means the socket cannot keep up: its queue is
    /// dropped and it is marked overflowed, so its task closes the socket with 4012 at once,
    /// even while a write to it is blocked.
    pub fn dispatch(&mut self, outputs: Vec<Output>) {
        self.dispatch_for(outputs, None);
    }

    /// [`Switchboard::dispatch`] for the outputs of a message from `origin`: the answers to
    /// `origin` itself are not counted against its outbox limit. Its task handles a whole read
    /// of messages before it writes, and their answers are bounded by what it read (and the
    /// per-socket rate); the limit is for frames relayed from a peer faster than the client
    /// reads them. Returns whether the outputs close `origin`'s socket.
    pub fn dispatch_for(&mut self, outputs: Vec<Output>, origin: Option<PeerId>) -> bool {
        let mut closes_origin = false;
        for (peer, action) in outputs {
            if !self.sockets.contains_key(&peer) {
                continue;
            }
            let item = match action {
                Action::Send(msg) => match OutFrame::json(&msg) {
                    Some(frame) => Outgoing::Frame(frame),
                    None => continue,
                },
                Action::Close(code) => {
                    closes_origin |= origin == Some(peer);
                    Outgoing::Close(code)
                }
            };
            self.push(peer, item, origin != Some(peer));
        }
        closes_origin
    }

    /// Queues `item` for `peer` and wakes its task; past the outbox limit (when `limited`)
    /// marks it overflowed instead.
    pub fn push(&mut self, peer: PeerId, item: Outgoing, limited: bool) {
        let Some(m) = self.sockets.get_mut(&peer) else {
            return;
        };
        if m.overflowed {
            return;
        }
        if limited && m.queue.len() >= self.outbox_limit {
            m.overflowed = true;
            m.queue = Vec::new();
        } else {
            m.queue.push(item);
        }
        m.wake();
    }

    /// Adds a socket opened at `now`; returns whether the timer task must look again.
    pub(super) fn register(
        &mut self,
        peer: PeerId,
        now: Instant,
        join_timeout: Duration,
        ping: Duration,
    ) -> bool {
        self.sockets.insert(peer, Mailbox::default());
        self.timers.add(peer, now, join_timeout, ping)
    }

    /// Forgets a socket (its entries in the timer queues are skipped when they come up).
    pub(super) fn unregister(&mut self, peer: PeerId) {
        self.sockets.remove(&peer);
    }

    /// Takes `peer`'s mail, or, if there is none, remembers `waker` for when some arrives.
    pub(super) fn take_or_wait(&mut self, peer: PeerId, waker: &Waker) -> Option<Mail> {
        let m = self.sockets.get_mut(&peer)?;
        if m.queue.is_empty() && !m.overflowed && !m.ping_due && !m.join_due {
            match &m.waker {
                Some(w) if w.will_wake(waker) => {}
                _ => m.waker = Some(waker.clone()),
            }
            return None;
        }
        Some(Switchboard::take_from(m))
    }

    /// Takes `peer`'s mail (maybe none).
    pub(super) fn take(&mut self, peer: PeerId) -> Mail {
        self.sockets
            .get_mut(&peer)
            .map(Switchboard::take_from)
            .unwrap_or_default()
    }

    fn take_from(m: &mut Mailbox) -> Mail {
        Mail {
            frames: std::mem::take(&mut m.queue),
            overflowed: m.overflowed,
            ping_due: std::mem::take(&mut m.ping_due),
            join_due: std::mem::take(&mut m.join_due),
        }
    }

    /// While `peer`'s task is blocked writing: whether it overflowed meanwhile (else `waker`
    /// is kept, so an overflow wakes the task).
    pub(super) fn overflowed_or_wait(&mut self, peer: PeerId, waker: &Waker) -> bool {
        let Some(m) = self.sockets.get_mut(&peer) else {
            return false;
        };
        if !m.overflowed {
            m.waker = Some(waker.clone());
        }
        m.overflowed
    }

    /// The earliest pending timer.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Fires the timers due at `now`: flags sockets whose join deadline passed (unless
    /// admitted) and sockets due a ping (rescheduled `ping` later), and wakes them.
    pub(super) fn fire_timers(&mut self, now: Instant, ping: Duration) {
        let Switchboard {
            sockets, timers, ..
        } = self;
        timers.fire(now, ping, |peer, due| {
            let Some(m) = sockets.get_mut(&peer) else {
                return false;
            };
            match due {
                Due::Join if m.admitted => return true,
                Due::Join => m.join_due = true,
                Due::Ping => m.ping_due = true,
            }
            m.wake();
            true
        });
    }

    /// Wakes every socket task (on shutdown: each then says `bye` and closes with 1012).
    pub(super) fn wake_all(&mut self) {
        for m in self.sockets.values_mut() {
            m.wake();
        }
    }
}
