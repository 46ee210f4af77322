//! The HTTP surface (SPEC §4), as warp filters: the embedded client ([`assets`]), `/healthz`,
//! `POST /rooms`, `/ws` (answered by hand in [`ws`], framed by [`frame`], so that an idle socket
//! costs little memory), and `/turn-credentials`. [`App`] is the state every route shares.

pub mod assets;
pub mod client_ip;
pub mod frame;
pub mod routes;
pub mod ws;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, IpRange};
use crate::signaling::hub::{Action, Hub, HubConfig, Output, PeerId};
use crate::turn::TurnSecret;
use frame::OutFrame;

/// The TCP peer of a request's connection, put into every request's extensions by the accept
/// loop in `server::run` (warp's own `addr::remote()` is filled only by warp's server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// One item of a socket's outbox: a frame ready to write, or a close with its code.
#[derive(Debug)]
pub enum Outgoing {
    Frame(OutFrame),
    Close(u16),
}

/// The hub, every open socket's mailbox, and the shared timers of all sockets, under one lock.
///
/// Memory per idle socket is the point of this layout (`docs/performance.md`): a socket's
/// outbox is a `Vec` that allocates only while frames wait in it, and its task is woken
/// through the [`Waker`] kept here instead of a channel (tokio's bounded mpsc allocates a block
/// of 32 slots, about 1.3 KiB, per socket up front). Join deadlines and pings are two FIFO
/// queues here, ticked by one task for all sockets ([`ws::wheel`]), instead of a timer per socket.
#[derive(Debug)]
pub struct Switchboard {
    pub hub: Hub,
    sockets: HashMap<PeerId, Mailbox>,
    /// `(deadline, peer)` in deadline order: every socket gets the same `join_timeout`, so
    /// appending keeps the order.
    join_deadlines: VecDeque<(Instant, PeerId)>,
    /// `(when, peer)` of each socket's next ping, in order (the same interval for all).
    pings: VecDeque<(Instant, PeerId)>,
    /// `signaling.outbox_messages`.
    outbox_limit: usize,
}

/// A socket's outgoing frames and how to wake its task.
#[derive(Debug, Default)]
struct Mailbox {
    /// Frames in order; a `Vec` (taken whole by the task), empty and unallocated when idle.
    queue: Vec<Outgoing>,
    /// The socket task, when it waits for mail (or is blocked writing).
    waker: Option<Waker>,
    /// The socket has been admitted to a room (its join deadline no longer matters).
    joined: bool,
    /// The outbox overflowed: the client cannot keep up and is closed with 4012.
    overflowed: bool,
    /// The ping interval elapsed: the task checks liveness and pings.
    ping_due: bool,
    /// `join_timeout` elapsed (only set while not joined).
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
    fn new(hub: Hub, outbox_limit: usize) -> Switchboard {
        Switchboard {
            hub,
            sockets: HashMap::new(),
            join_deadlines: VecDeque::new(),
            pings: VecDeque::new(),
            outbox_limit: outbox_limit.max(1),
        }
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
    /// reads them.
    pub fn dispatch_for(&mut self, outputs: Vec<Output>, origin: Option<PeerId>) {
        for (peer, action) in outputs {
            if !self.sockets.contains_key(&peer) {
                continue;
            }
            let item = match action {
                Action::Send(msg) => match OutFrame::json(&msg) {
                    Some(frame) => Outgoing::Frame(frame),
                    None => continue,
                },
                Action::Close(code) => Outgoing::Close(code),
            };
            self.push(peer, item, origin != Some(peer));
        }
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

    /// Adds a socket opened at `now`; returns whether the timer task must look again (a timer
    /// queue was empty, so the new deadline may be the earliest).
    fn register(
        &mut self,
        peer: PeerId,
        now: Instant,
        join_timeout: Duration,
        ping: Duration,
    ) -> bool {
        self.sockets.insert(peer, Mailbox::default());
        let nudge = self.join_deadlines.is_empty() || self.pings.is_empty();
        self.join_deadlines
            .push_back((later(now, join_timeout), peer));
        self.pings.push_back((later(now, ping), peer));
        nudge
    }

    /// Forgets a socket (its entries in the timer queues are skipped when they come up).
    fn unregister(&mut self, peer: PeerId) {
        self.sockets.remove(&peer);
    }

    /// Marks `peer` admitted: its join deadline no longer applies.
    fn set_joined(&mut self, peer: PeerId) {
        if let Some(m) = self.sockets.get_mut(&peer) {
            m.joined = true;
        }
    }

    /// Takes `peer`'s mail, or, if there is none, remembers `waker` for when some arrives.
    fn take_or_wait(&mut self, peer: PeerId, waker: &Waker) -> Option<Mail> {
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
    fn take(&mut self, peer: PeerId) -> Mail {
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
    fn overflowed_or_wait(&mut self, peer: PeerId, waker: &Waker) -> bool {
        let Some(m) = self.sockets.get_mut(&peer) else {
            return false;
        };
        if !m.overflowed {
            m.waker = Some(waker.clone());
        }
        m.overflowed
    }

    /// The earliest pending timer.
    fn next_timer(&self) -> Option<Instant> {
        let j = self.join_deadlines.front().map(|t| t.0);
        let p = self.pings.front().map(|t| t.0);
        match (j, p) {
            (Some(j), Some(p)) => Some(j.min(p)),
            (j, p) => j.or(p),
        }
    }

    /// Fires the timers due at `now`: flags sockets whose join deadline passed (unless
    /// joined) and sockets due a ping (rescheduled `ping` later), and wakes them.
    fn fire_timers(&mut self, now: Instant, ping: Duration) {
        while let Some(&(at, peer)) = self.join_deadlines.front() {
            if at > now {
                break;
            }
            self.join_deadlines.pop_front();
            if let Some(m) = self.sockets.get_mut(&peer)
                && !m.joined
            {
                m.join_due = true;
                m.wake();
            }
        }
        while let Some(&(at, peer)) = self.pings.front() {
            if at > now {
                break;
            }
            self.pings.pop_front();
            if let Some(m) = self.sockets.get_mut(&peer) {
                m.ping_due = true;
                m.wake();
                self.pings.push_back((later(now, ping), peer));
            }
        }
        // Queues that were long once should not keep their peak capacity for ever.
        for q in [&mut self.join_deadlines, &mut self.pings] {
            if q.capacity() > 64 && q.len() < q.capacity() / 4 {
                q.shrink_to(q.len() * 2);
            }
        }
    }

    /// Wakes every socket task (on shutdown: each then says `bye` and closes with 1012).
    fn wake_all(&mut self) {
        for m in self.sockets.values_mut() {
            m.wake();
        }
    }
}

/// `now + d`, or 30 years from now when `d` is beyond the clock's range (the config bounds
/// neither `signaling.join_timeout` nor `signaling.heartbeat_interval`, and `Instant +
/// Duration` panics on overflow; found by fuzzing the hub).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// State shared by every route and socket task.
#[derive(Debug)]
pub struct App {
    pub config: Arc<Config>,
    switchboard: Mutex<Switchboard>,
    next_peer: AtomicU64,
    /// Open WebSockets, against `server.max_connections`.
    pub connections: AtomicUsize,
    /// Cancelled on graceful shutdown: every socket says `bye` and closes with 1012.
    pub shutdown: CancellationToken,
    /// Tracks socket tasks (warp's graceful shutdown does not see upgraded connections).
    pub tasks: TaskTracker,
    /// Wakes the timer task ([`ws::wheel`]) when a timer queue gets its first entry.
    wheel: Notify,
    /// Whether the timer task was started (on the first upgrade).
    wheel_started: AtomicBool,
    pub started: Instant,
    /// `public_origin` and `allowed_origins`, compared exactly with the `Origin` header.
    origins: Vec<String>,
    trusted_proxies: Vec<IpRange>,
    /// The `Content-Security-Policy` value, computed once.
    pub csp: String,
    pub secret: Option<TurnSecret>,
}

impl App {
    /// Builds the shared state from a validated config and the TURN secret (if configured).
    pub fn new(config: Config, secret: Option<TurnSecret>) -> Arc<App> {
        let hub = Hub::new(HubConfig::from_config(&config), secret.clone());
        let origins = config.origins().map(str::to_owned).collect();
        let csp = assets::content_security_policy(&config);
        let switchboard = Switchboard::new(hub, config.signaling.outbox_messages);
        Arc::new(App {
            trusted_proxies: config.server.trusted_proxies.clone(),
            config: Arc::new(config),
            switchboard: Mutex::new(switchboard),
            next_peer: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            wheel: Notify::new(),
            wheel_started: AtomicBool::new(false),
            started: Instant::now(),
            origins,
            csp,
            secret,
        })
    }

    /// Locks the switchboard. Never hold the guard across an `.await`.
    pub fn switchboard(&self) -> MutexGuard<'_, Switchboard> {
        self.switchboard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `origin` (the `Origin` header) is allowed to open `/ws` and `POST /rooms`.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        origin.is_some_and(|o| self.origins.iter().any(|a| a == o))
    }

    fn next_peer_id(&self) -> PeerId {
        self.next_peer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }
}
