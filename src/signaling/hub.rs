//! The room logic, free of I/O: every event goes in through [`Hub::process`] (or
//! [`Hub::handle`], [`Hub::register_room`], [`Hub::tick`]) and comes back out as a list of
//! [`Output`]s addressed to peers, plus whether the event admitted its peer ([`Outcome`]). The
//! WebSocket side (`http::ws`) turns those into frames; the unit tests (`hub/tests.rs`) feed
//! events and read outputs without a socket. Admission (`join`, `resume`, `POST /rooms`, the
//! per-IP limits) is in `hub/admission.rs`.
//!
//! Rules (SPEC §5, `docs/protocol.md`): at most two sessions per room; `start` once both are
//! ready, the later joiner polite; relaying only after `start`; a freed slot is announced with
//! `peer-left` at once; `resume` takes back a slot only within the same room; rooms are
//! allowlisted, registered (`POST /rooms`) or open (development); capacity and per-IP caps
//! bound what one client can hold; empty rooms go at once, stale reservations and idle rooms on
//! [`Hub::tick`].

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use super::close::CloseCode;
use super::protocol::{ByeReason, ClientMsg, ErrorCode, ServerMsg};
use super::rate::TokenBucket;
use crate::config::{Config, Rate};
use crate::room::RoomId;
use crate::turn::{self, TurnSecret};
use admission::limit_key;

mod admission;

/// A socket's identity inside the process (never shown to clients).
pub type PeerId = u64;

/// What the hub wants done to one peer's socket, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this message.
    Send(ServerMsg),
    /// Close the socket with this code (after the messages queued before it).
    Close(CloseCode),
}

/// One action for one peer.
pub type Output = (PeerId, Action);

/// What one event did: the outputs in order, and whether it admitted the event's peer to a
/// room (a `joined` for it among the outputs). The socket side keeps admission from here,
/// instead of looking for `joined` among the outputs.
#[derive(Debug, Default)]
pub struct Outcome {
    pub outputs: Vec<Output>,
    pub admitted: bool,
}

/// Events from a socket.
#[derive(Debug)]
pub enum Event {
    /// A validated client message; `ip` is the client's address (after trusted proxies).
    Message(ClientMsg, IpAddr),
    /// The socket is gone (closed, errored or timed out).
    Disconnected,
}

/// The answer to `POST /rooms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// A new reservation (201), valid until the given unix time in seconds.
    Created { expires_at: u64 },
    /// The room is already reserved, active or allowlisted (200).
    Exists { expires_at: u64 },
    /// The client IP holds `rooms.generated.per_ip` rooms already (429).
    PerIpCap,
    /// `rooms.max_active` reached (503).
    Full,
    /// The client IP's join rate is exhausted (429).
    RateLimited,
}

/// Limits and settings the hub needs, taken from [`Config`] once.
#[derive(Debug, Clone)]
pub struct HubConfig {
    pub allowlist: HashSet<RoomId>,
    pub allow_open_rooms: bool,
    pub max_active: usize,
    pub idle_ttl: Duration,
    pub reservation_ttl: Duration,
    pub per_ip: usize,
    pub join_rate: Rate,
    pub heartbeat_seconds: u64,
    pub turn_urls: Vec<String>,
    pub stun_urls: Vec<String>,
    pub credential_ttl: Duration,
}

impl HubConfig {
    /// Takes the hub's settings from the loaded config.
    pub fn from_config(c: &Config) -> Self {
        HubConfig {
            allowlist: c
                .rooms
                .allowlist
                .iter()
                .filter_map(|id| RoomId::parse(id).ok())
                .collect(),
            allow_open_rooms: c.rooms.allow_open_rooms,
            max_active: c.rooms.max_active,
            idle_ttl: c.rooms.idle_ttl,
            reservation_ttl: c.rooms.generated.reservation_ttl,
            per_ip: c.rooms.generated.per_ip,
            join_rate: c.signaling.join_rate,
            heartbeat_seconds: c.signaling.heartbeat_interval.as_secs().max(1),
            turn_urls: c.turn.urls.clone(),
            stun_urls: c.turn.stun_urls.clone(),
            credential_ttl: c.turn.credential_ttl,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Allowlisted,
    Open,
    /// Registered with `POST /rooms` by this IP (counted against its per-IP cap).
    Generated(IpAddr),
}

#[derive(Debug)]
struct Slot {
    peer: PeerId,
    session: [u8; 16],
    ready: bool,
    /// Order of arrival: the later joiner is the polite side.
    seq: u64,
}

#[derive(Debug)]
struct Room {
    origin: Origin,
    slots: Vec<Slot>,
    started: bool,
    last_activity: Instant,
    /// Set while nobody has joined a registered room yet.
    reserved_until: Option<Instant>,
}

#[derive(Debug)]
struct Peer {
    room: RoomId,
    /// Random per session; the TURN REST username's label. Never the room id.
    label: String,
    refresh: TokenBucket,
}

/// Rooms, sessions and per-IP state. Not thread-safe by itself: the server keeps it in a
/// `std::sync::Mutex` and never holds the lock across an `.await`.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    secret: Option<TurnSecret>,
    rooms: HashMap<RoomId, Room>,
    peers: HashMap<PeerId, Peer>,
    join_buckets: HashMap<IpAddr, TokenBucket>,
    generated_per_ip: HashMap<IpAddr, usize>,
    next_seq: u64,
    /// Per-process key for log tags: `room_tag` is useless after a restart.
    tag_key: [u8; 32],
}

const REFRESH_RATE: Rate = Rate {
    per_second: 0.1,
    burst: 3,
};

impl Hub {
    /// An empty hub. `secret` is the TURN REST secret, if TURN is configured.
    pub fn new(cfg: HubConfig, secret: Option<TurnSecret>) -> Self {
        Hub {
            cfg,
            secret,
            rooms: HashMap::new(),
            peers: HashMap::new(),
            join_buckets: HashMap::new(),
            generated_per_ip: HashMap::new(),
            next_seq: 0,
            tag_key: rand::random(),
        }
    }

    /// Whether TURN credentials can be issued (`relayAvailable`).
    pub fn relay_available(&self) -> bool {
        self.secret.is_some() && !self.cfg.turn_urls.is_empty()
    }

    /// Number of rooms (active plus reserved), for `/healthz`-free metrics and tests.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Number of joined sessions.
    pub fn session_count(&self) -> usize {
        self.peers.len()
    }

    /// A short log tag for a room: HMAC-SHA256 under a per-process random key, 8 hex chars.
    /// Lets log lines of one room be correlated without revealing its id.
    pub fn room_tag(&self, room_id: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.tag_key).expect("any key length");
        mac.update(room_id.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..4])
    }

    /// Handles one event of `peer`; returns what to send to whom, in order. The socket side
    /// uses [`Hub::process`], which also says whether the event admitted `peer`.
    pub fn handle(&mut self, peer: PeerId, event: Event, now: Instant) -> Vec<Output> {
        self.process(peer, event, now).outputs
    }

    /// Handles one event of `peer`: what to send to whom, in order, and whether `peer` was
    /// admitted to a room by it (a successful `join` or `resume`).
    pub fn process(&mut self, peer: PeerId, event: Event, now: Instant) -> Outcome {
        let mut out = Outcome::default();
        match event {
            Event::Disconnected => self.leave(peer, &mut out.outputs),
            Event::Message(msg, ip) => {
                out.admitted = self.message(peer, msg, limit_key(ip), now, &mut out.outputs);
            }
        }
        out
    }

    /// One message of `peer`; returns whether it admitted `peer`. Only `join` is accepted
    /// before admission ("the first message must be join" is checked here, and only here).
    fn message(
        &mut self,
        peer: PeerId,
        msg: ClientMsg,
        ip: IpAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) -> bool {
        if let ClientMsg::Join { room_id, resume } = msg {
            if self.peers.contains_key(&peer) {
                fail(out, peer, ErrorCode::InvalidMessage, "already joined");
                return false;
            }
            return self.join(peer, room_id, resume.as_deref(), ip, now, out);
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            fail(
                out,
                peer,
                ErrorCode::InvalidMessage,
                "the first message must be join",
            );
            return false;
        };
        let key = state.room;
        match msg {
            ClientMsg::Join { .. } => unreachable!("handled above"),
            ClientMsg::Heartbeat {} => {
                self.touch(key, now);
                out.push((peer, Action::Send(ServerMsg::HeartbeatAck)));
            }
            ClientMsg::RefreshIce {} => {
                if !state.refresh.try_take(now) {
                    fail(out, peer, ErrorCode::RateLimited, "refresh-ice too often");
                    return false;
                }
                let label = state.label.clone();
                let (ice_servers, credential_expires_at) = self.ice_servers(&label);
                out.push((
                    peer,
                    Action::Send(ServerMsg::IceServers {
                        ice_servers,
                        credential_expires_at,
                    }),
                ));
            }
            ClientMsg::Ready {} => {
                self.touch(key, now);
                let Some(room) = self.rooms.get_mut(&key) else {
                    return false;
                };
                if let Some(slot) = room.slots.iter_mut().find(|s| s.peer == peer) {
                    slot.ready = true;
                }
                if !room.started && room.slots.len() == 2 && room.slots.iter().all(|s| s.ready) {
                    room.started = true;
                    let later = room.slots.iter().map(|s| s.seq).max().unwrap_or(0);
                    for s in &room.slots {
                        out.push((
                            s.peer,
                            Action::Send(ServerMsg::Start {
                                polite: s.seq == later,
                            }),
                        ));
                    }
                }
            }
            ClientMsg::Hangup {} => {
                let other = self.relay_target(key, peer);
                if let Some(other) = other {
                    out.push((other, Action::Send(ServerMsg::Hangup)));
                }
                self.leave(peer, out);
                out.push((peer, Action::Close(CloseCode::Normal)));
            }
            relayed @ (ClientMsg::Offer { .. }
            | ClientMsg::Answer { .. }
            | ClientMsg::Ice { .. }) => {
                let Some(other) = self.relay_target(key, peer) else {
                    out.push((
                        peer,
                        Action::Send(ServerMsg::Error {
                            code: ErrorCode::NotReady,
                            message: "the call has not started: message dropped".into(),
                        }),
                    ));
                    return false;
                };
                self.touch(key, now);
                let msg = match relayed {
                    ClientMsg::Offer { sdp, auth } => ServerMsg::Offer { sdp, auth },
                    ClientMsg::Answer { sdp, auth } => ServerMsg::Answer { sdp, auth },
                    ClientMsg::Ice { candidate } => ServerMsg::Ice { candidate },
                    _ => unreachable!("matched above"),
                };
                out.push((other, Action::Send(msg)));
            }
        }
        false
    }

    /// The other peer of a started room, if `peer` may relay to it.
    fn relay_target(&self, key: RoomId, peer: PeerId) -> Option<PeerId> {
        let room = self.rooms.get(&key)?;
        if !room.started {
            return None;
        }
        room.slots.iter().find(|s| s.peer != peer).map(|s| s.peer)
    }

    fn touch(&mut self, key: RoomId, now: Instant) {
        if let Some(room) = self.rooms.get_mut(&key) {
            room.last_activity = now;
        }
    }

    fn ice_servers(&self, label: &str) -> (Vec<turn::IceServer>, Option<u64>) {
        turn::ice_servers(
            &self.cfg.turn_urls,
            &self.cfg.stun_urls,
            self.secret.as_ref(),
            label,
            SystemTime::now(),
            self.cfg.credential_ttl,
        )
    }

    /// Frees `peer`'s slot (if it still holds one), tells the other side, drops empty rooms.
    fn leave(&mut self, peer: PeerId, out: &mut Vec<Output>) {
        let Some(state) = self.peers.remove(&peer) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(&state.room) else {
            return;
        };
        room.slots.retain(|s| s.peer != peer);
        room.started = false;
        for s in &room.slots {
            out.push((s.peer, Action::Send(ServerMsg::PeerLeft)));
        }
        if room.slots.is_empty() {
            self.remove_room(state.room);
        }
    }

    fn remove_room(&mut self, key: RoomId) {
        if let Some(room) = self.rooms.remove(&key)
            && let Origin::Generated(ip) = room.origin
            && let Some(n) = self.generated_per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.generated_per_ip.remove(&ip);
            }
        }
    }

    /// Housekeeping, called about once a second: drops expired reservations, closes rooms idle
    /// for `rooms.idle_ttl` (`bye idle`, close 4011), forgets refilled per-IP buckets.
    pub fn tick(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let idle_ttl = self.cfg.idle_ttl;
        let expired: Vec<RoomId> = self
            .rooms
            .iter()
            .filter(|(_, r)| match r.reserved_until {
                Some(until) => r.slots.is_empty() && now >= until,
                None => now.saturating_duration_since(r.last_activity) >= idle_ttl,
            })
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            if let Some(room) = self.rooms.get(&key) {
                for s in &room.slots {
                    out.push((
                        s.peer,
                        Action::Send(ServerMsg::Bye {
                            reason: ByeReason::Idle,
                        }),
                    ));
                    out.push((s.peer, Action::Close(CloseCode::Idle)));
                    self.peers.remove(&s.peer);
                }
            }
            self.remove_room(key);
        }
        self.join_buckets.retain(|_, b| !b.is_full(now));
        out
    }
}

fn fail(out: &mut Vec<Output>, peer: PeerId, code: ErrorCode, message: &str) {
    out.push((
        peer,
        Action::Send(ServerMsg::Error {
            code,
            message: message.to_owned(),
        }),
    ));
    if let Some(c) = code.close_code() {
        out.push((peer, Action::Close(c)));
    }
}

/// `at + d`, or 30 years after `at` if the clock cannot represent that: `rooms.idle_ttl` and
/// `rooms.generated.reservation_ttl` have no upper bound, and `Instant + Duration` panics on
/// overflow (found by `fuzz/fuzz_targets/hub.rs`).
fn later(at: Instant, d: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 86_400);
    at.checked_add(d).unwrap_or(at + FAR)
}

/// `at` (a monotonic instant) as unix seconds, given that `now` is the present. Saturates:
/// `SystemTime + Duration` panics past the clock's range (found by fuzzing).
fn unix_at(at: Instant, now: Instant) -> u64 {
    let ahead = at.saturating_duration_since(now);
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ahead)
        .as_secs()
}

#[cfg(test)]
mod tests;
