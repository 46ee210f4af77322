//! The HTTP surface (SPEC §4), as warp filters: the embedded client ([`assets`]), `/healthz`,
//! `POST /rooms`, `/ws` (the socket runtime in [`ws`]: upgrade, session, switchboard, timers
//! and closing, framed by [`frame`], so that an idle socket costs little memory), and
//! `/turn-credentials`. [`App`] is the state every route shares.

pub mod assets;
pub mod client_ip;
pub mod frame;
pub mod routes;
pub mod ws;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, IpRange};
use crate::signaling::hub::{Hub, HubConfig, PeerId};
use crate::turn::TurnSecret;
use ws::Switchboard;

/// The TCP peer of a request's connection, put into every request's extensions by the accept
/// loop in `server::run` (warp's own `addr::remote()` is filled only by warp's server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

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
