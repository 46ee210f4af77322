//! The HTTP surface (SPEC §4), as warp filters: the embedded client ([`assets`]), `/healthz`,
//! `POST /rooms`, `/ws` (answered by hand in [`ws`] so each socket gets a small read buffer),
//! and `/turn-credentials`. [`App`] is the state every route shares.

pub mod assets;
pub mod client_ip;
pub mod routes;
pub mod ws;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tungstenite::Utf8Bytes;

use crate::config::{Config, IpRange};
use crate::signaling::hub::{Action, Hub, HubConfig, Output, PeerId};
use crate::turn::TurnSecret;

use tokio_tungstenite::tungstenite;

/// The TCP peer of a request's connection, put into every request's extensions by the accept
/// loop in `server::run` (warp's own `addr::remote()` is filled only by warp's server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// One frame for a socket's writer: a serialized message, or a close with its code.
#[derive(Debug)]
pub enum Outgoing {
    Text(Utf8Bytes),
    Close(u16),
}

/// The hub plus each joined-or-joining socket's bounded outbox, under one lock.
#[derive(Debug)]
pub struct Switchboard {
    pub hub: Hub,
    outboxes: HashMap<PeerId, Outbox>,
}

/// A socket's queue of outgoing frames, and the token that tells its task it fell behind.
#[derive(Debug)]
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    /// Cancelled when the queue overflows: the task stops even in the middle of a blocked
    /// write and closes the socket (4012).
    overflow: CancellationToken,
}

impl Switchboard {
    /// Delivers hub outputs. A full outbox means the socket cannot keep up: its outbox is
    /// dropped and its overflow token cancelled, so its task closes the socket with 4012 at
    /// once, even while a write to it is blocked.
    pub fn dispatch(&mut self, outputs: Vec<Output>) {
        for (peer, action) in outputs {
            let Some(Outbox { tx, .. }) = self.outboxes.get(&peer) else {
                continue;
            };
            let item = match action {
                Action::Send(msg) => match serde_json::to_string(&msg) {
                    Ok(text) => Outgoing::Text(text.into()),
                    Err(_) => continue,
                },
                Action::Close(code) => Outgoing::Close(code),
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(item)
                && let Some(outbox) = self.outboxes.remove(&peer)
            {
                outbox.overflow.cancel();
            }
        }
    }

    fn register(&mut self, peer: PeerId, tx: mpsc::Sender<Outgoing>, overflow: CancellationToken) {
        self.outboxes.insert(peer, Outbox { tx, overflow });
    }

    fn unregister(&mut self, peer: PeerId) {
        self.outboxes.remove(&peer);
    }
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
        Arc::new(App {
            trusted_proxies: config.server.trusted_proxies.clone(),
            config: Arc::new(config),
            switchboard: Mutex::new(Switchboard {
                hub,
                outboxes: HashMap::new(),
            }),
            next_peer: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
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
