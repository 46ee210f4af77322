//! The room logic, free of I/O: every event goes in through [`Hub::handle`] (or
//! [`Hub::register_room`], [`Hub::tick`]) and comes back out as a list of [`Output`]s addressed
//! to peers. The WebSocket side (`http::ws`) turns those into frames; the unit tests here feed
//! events and read outputs without a socket.
//!
//! Rules (SPEC §5, `docs/protocol.md`): at most two sessions per room; `start` once both are
//! ready, the later joiner polite; relaying only after `start`; a freed slot is announced with
//! `peer-left` at once; `resume` takes back a slot only within the same room; rooms are
//! allowlisted, registered (`POST /rooms`) or open (development); capacity and per-IP caps
//! bound what one client can hold; empty rooms go at once, stale reservations and idle rooms on
//! [`Hub::tick`].

use std::collections::HashMap;
use std::collections::HashSet;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::time::Instant;

use super::protocol::{ByeReason, ClientMsg, ErrorCode, ServerMsg, close};
use super::rate::TokenBucket;
use crate::config::{Config, Rate};
use crate::turn::{self, TurnSecret};

/// A socket's identity inside the process (never shown to clients).
pub type PeerId = u64;

/// A room id in binary form (the SHA-256 the browser computes).
type RoomKey = [u8; 32];

/// What the hub wants done to one peer's socket, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this message.
    Send(ServerMsg),
    /// Close the socket with this code (after the messages queued before it).
    Close(u16),
}

/// One action for one peer.
pub type Output = (PeerId, Action);

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
    pub allowlist: HashSet<RoomKey>,
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
                .filter_map(|id| decode_room(id))
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

fn decode_room(id: &str) -> Option<RoomKey> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(id, &mut key).ok()?;
    Some(key)
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
    room: RoomKey,
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
    rooms: HashMap<RoomKey, Room>,
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

    /// `POST /rooms`: reserve `room_id` (already validated as 64 lowercase hex) for `ip`.
    pub fn register_room(&mut self, room_id: &str, ip: IpAddr, now: Instant) -> Registration {
        let ip = limit_key(ip);
        let Some(key) = decode_room(room_id) else {
            return Registration::Full;
        };
        if !self.take_join_token(ip, now) {
            return Registration::RateLimited;
        }
        let ttl = self.cfg.reservation_ttl;
        if let Some(room) = self.rooms.get(&key) {
            let until = room
                .reserved_until
                .unwrap_or_else(|| later(room.last_activity, self.cfg.idle_ttl));
            return Registration::Exists {
                expires_at: unix_at(until, now),
            };
        }
        if self.cfg.allowlist.contains(&key) {
            return Registration::Exists {
                expires_at: unix_at(later(now, ttl), now),
            };
        }
        if self.generated_per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.per_ip {
            return Registration::PerIpCap;
        }
        if self.rooms.len() >= self.cfg.max_active {
            return Registration::Full;
        }
        *self.generated_per_ip.entry(ip).or_default() += 1;
        self.rooms.insert(
            key,
            Room {
                origin: Origin::Generated(ip),
                slots: Vec::with_capacity(2),
                started: false,
                last_activity: now,
                reserved_until: Some(later(now, ttl)),
            },
        );
        Registration::Created {
            expires_at: unix_at(later(now, ttl), now),
        }
    }

    /// Handles one event of `peer`; returns what to send to whom, in order.
    pub fn handle(&mut self, peer: PeerId, event: Event, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match event {
            Event::Disconnected => self.leave(peer, &mut out),
            Event::Message(msg, ip) => self.message(peer, msg, limit_key(ip), now, &mut out),
        }
        out
    }

    fn message(
        &mut self,
        peer: PeerId,
        msg: ClientMsg,
        ip: IpAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if let ClientMsg::Join { room_id, resume } = msg {
            if self.peers.contains_key(&peer) {
                fail(out, peer, ErrorCode::InvalidMessage, "already joined");
                return;
            }
            self.join(peer, &room_id, resume.as_deref(), ip, now, out);
            return;
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            fail(
                out,
                peer,
                ErrorCode::InvalidMessage,
                "the first message must be join",
            );
            return;
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
                    return;
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
                    return;
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
                out.push((peer, Action::Close(close::NORMAL)));
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
                    return;
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
    }

    /// The other peer of a started room, if `peer` may relay to it.
    fn relay_target(&self, key: RoomKey, peer: PeerId) -> Option<PeerId> {
        let room = self.rooms.get(&key)?;
        if !room.started {
            return None;
        }
        room.slots.iter().find(|s| s.peer != peer).map(|s| s.peer)
    }

    fn touch(&mut self, key: RoomKey, now: Instant) {
        if let Some(room) = self.rooms.get_mut(&key) {
            room.last_activity = now;
        }
    }

    fn take_join_token(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = self.cfg.join_rate;
        self.join_buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, now))
            .try_take(now)
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

    fn join(
        &mut self,
        peer: PeerId,
        room_id: &str,
        resume: Option<&str>,
        ip: IpAddr,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        if !self.take_join_token(ip, now) {
            fail(
                out,
                peer,
                ErrorCode::RateLimited,
                "too many joins from your address",
            );
            return;
        }
        let Some(key) = decode_room(room_id) else {
            fail(out, peer, ErrorCode::InvalidMessage, "bad room id");
            return;
        };
        let resume = resume.and_then(|s| {
            let mut b = [0u8; 16];
            hex::decode_to_slice(s, &mut b).ok().map(|()| b)
        });
        // Resume: take back our own slot in this room (never another room's, never a stranger's).
        if let (Some(session), Some(room)) = (resume, self.rooms.get_mut(&key))
            && let Some(slot) = room.slots.iter_mut().find(|s| s.session == session)
        {
            let old = slot.peer;
            slot.peer = peer;
            slot.ready = false;
            room.started = false;
            room.last_activity = now;
            let peer_present = room.slots.len() == 2;
            if let Some(old_state) = self.peers.remove(&old) {
                self.peers.insert(peer, old_state);
            }
            out.push((
                old,
                Action::Send(ServerMsg::Bye {
                    reason: ByeReason::Replaced,
                }),
            ));
            out.push((old, Action::Close(close::REPLACED)));
            self.admitted(peer, session, peer_present, out);
            return;
        }
        let room = match self.rooms.get_mut(&key) {
            Some(room) => room,
            None => {
                let origin = if self.cfg.allowlist.contains(&key) {
                    Origin::Allowlisted
                } else if self.cfg.allow_open_rooms {
                    Origin::Open
                } else {
                    fail(
                        out,
                        peer,
                        ErrorCode::RoomNotAllowed,
                        "this room does not exist",
                    );
                    return;
                };
                if self.rooms.len() >= self.cfg.max_active {
                    fail(
                        out,
                        peer,
                        ErrorCode::ServerBusy,
                        "the server is at capacity",
                    );
                    return;
                }
                self.rooms.entry(key).or_insert(Room {
                    origin,
                    slots: Vec::with_capacity(2),
                    started: false,
                    last_activity: now,
                    reserved_until: None,
                })
            }
        };
        if room.slots.len() >= 2 {
            fail(
                out,
                peer,
                ErrorCode::RoomFull,
                "this room already has two people",
            );
            return;
        }
        let session: [u8; 16] = rand::random();
        self.next_seq += 1;
        room.slots.push(Slot {
            peer,
            session,
            ready: false,
            seq: self.next_seq,
        });
        room.reserved_until = None;
        room.last_activity = now;
        let other = room.slots.iter().find(|s| s.peer != peer).map(|s| s.peer);
        let label = hex::encode(rand::random::<[u8; 8]>());
        self.peers.insert(
            peer,
            Peer {
                room: key,
                label,
                refresh: TokenBucket::new(REFRESH_RATE, now),
            },
        );
        self.admitted(peer, session, other.is_some(), out);
        if let Some(other) = other {
            out.push((other, Action::Send(ServerMsg::PeerJoined)));
        }
    }

    fn admitted(&self, peer: PeerId, session: [u8; 16], peer_present: bool, out: &mut Vec<Output>) {
        let label = self.peers.get(&peer).map_or("", |p| p.label.as_str());
        let (ice_servers, credential_expires_at) = self.ice_servers(label);
        out.push((
            peer,
            Action::Send(ServerMsg::Joined {
                session_id: hex::encode(session),
                peer_present,
                ice_servers,
                relay_available: self.relay_available(),
                credential_expires_at,
                heartbeat_seconds: self.cfg.heartbeat_seconds,
            }),
        ));
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

    fn remove_room(&mut self, key: RoomKey) {
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
        let expired: Vec<RoomKey> = self
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
                    out.push((s.peer, Action::Close(close::IDLE)));
                    self.peers.remove(&s.peer);
                }
            }
            self.remove_room(key);
        }
        self.join_buckets.retain(|_, b| !b.is_full(now));
        out
    }
}

/// What per-IP limits count under: the IPv4 address, or the /64 of an IPv6 address. One IPv6
/// host normally holds a whole /64 and could otherwise rotate through it to escape the caps.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        v4 => v4,
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
mod tests {
    use super::*;
    use crate::signaling::protocol::IceCandidate;

    const ROOM: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const OTHER: &str = "ca7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, n])
    }

    fn hub(allow_open: bool) -> Hub {
        let mut c = Config::default();
        c.rooms.allow_open_rooms = allow_open;
        c.rooms.max_active = 3;
        c.rooms.generated.per_ip = 2;
        c.turn.urls = vec!["turn:127.0.0.1:3478".into()];
        Hub::new(HubConfig::from_config(&c), Some(TurnSecret::new("s")))
    }

    fn join(h: &mut Hub, peer: PeerId, room: &str, now: Instant) -> Vec<Output> {
        h.handle(
            peer,
            Event::Message(
                ClientMsg::Join {
                    room_id: room.into(),
                    resume: None,
                },
                ip(1),
            ),
            now,
        )
    }

    fn send(h: &mut Hub, peer: PeerId, m: ClientMsg, now: Instant) -> Vec<Output> {
        h.handle(peer, Event::Message(m, ip(1)), now)
    }

    fn error_of(out: &[Output]) -> Option<ErrorCode> {
        out.iter().find_map(|(_, a)| match a {
            Action::Send(ServerMsg::Error { code, .. }) => Some(*code),
            _ => None,
        })
    }

    fn session_of(out: &[Output]) -> String {
        out.iter()
            .find_map(|(_, a)| match a {
                Action::Send(ServerMsg::Joined { session_id, .. }) => Some(session_id.clone()),
                _ => None,
            })
            .expect("joined")
    }

    #[test]
    fn two_join_start_polite_relay_and_third_is_busy() {
        let mut h = hub(true);
        let t = Instant::now();
        let a = join(&mut h, 1, ROOM, t);
        assert!(matches!(
            &a[0],
            (
                1,
                Action::Send(ServerMsg::Joined {
                    peer_present: false,
                    relay_available: true,
                    ..
                })
            )
        ));
        let b = join(&mut h, 2, ROOM, t);
        assert!(b.contains(&(1, Action::Send(ServerMsg::PeerJoined))));
        // Relaying before start is refused but keeps the socket.
        let early = send(
            &mut h,
            1,
            ClientMsg::Offer {
                sdp: "v=0".into(),
                auth: None,
            },
            t,
        );
        assert_eq!(error_of(&early), Some(ErrorCode::NotReady));
        assert!(!early.iter().any(|(_, a)| matches!(a, Action::Close(_))));
        assert!(send(&mut h, 1, ClientMsg::Ready {}, t).is_empty());
        let start = send(&mut h, 2, ClientMsg::Ready {}, t);
        assert!(start.contains(&(1, Action::Send(ServerMsg::Start { polite: false }))));
        assert!(start.contains(&(2, Action::Send(ServerMsg::Start { polite: true }))));
        let relayed = send(
            &mut h,
            1,
            ClientMsg::Ice {
                candidate: Some(IceCandidate {
                    candidate: "c".into(),
                    sdp_mid: None,
                    sdp_m_line_index: Some(0),
                    username_fragment: None,
                }),
            },
            t,
        );
        assert!(matches!(
            &relayed[..],
            [(2, Action::Send(ServerMsg::Ice { .. }))]
        ));
        let third = join(&mut h, 3, ROOM, t);
        assert_eq!(error_of(&third), Some(ErrorCode::RoomFull));
        assert!(third.contains(&(3, Action::Close(close::ROOM_FULL))));
        assert!(third.iter().all(|(p, _)| *p == 3), "nobody else notices");
        // A socket closing frees the slot at once.
        let left = h.handle(2, Event::Disconnected, t);
        assert_eq!(left, vec![(1, Action::Send(ServerMsg::PeerLeft))]);
        let again = join(&mut h, 3, ROOM, t);
        assert_eq!(error_of(&again), None);
    }

    #[test]
    fn rooms_must_be_allowed() {
        let mut h = hub(false);
        let t = Instant::now();
        assert_eq!(
            error_of(&join(&mut h, 1, ROOM, t)),
            Some(ErrorCode::RoomNotAllowed)
        );
        assert!(matches!(
            h.register_room(ROOM, ip(1), t),
            Registration::Created { .. }
        ));
        assert!(matches!(
            h.register_room(ROOM, ip(1), t),
            Registration::Exists { .. }
        ));
        assert_eq!(error_of(&join(&mut h, 2, ROOM, t)), None);
    }

    #[test]
    fn resume_takes_back_only_its_own_slot() {
        let mut h = hub(true);
        let t = Instant::now();
        let sid = session_of(&join(&mut h, 1, ROOM, t));
        join(&mut h, 2, ROOM, t);
        join(&mut h, 9, OTHER, t);
        // A resume naming a session of another room is a plain join: here, room full.
        let wrong = h.handle(
            3,
            Event::Message(
                ClientMsg::Join {
                    room_id: OTHER.into(),
                    resume: Some(sid.clone()),
                },
                ip(1),
            ),
            t,
        );
        assert_eq!(error_of(&wrong), None, "OTHER has a free slot: plain join");
        assert!(!wrong.iter().any(|(p, _)| *p == 1), "nobody evicted");
        let back = h.handle(
            4,
            Event::Message(
                ClientMsg::Join {
                    room_id: ROOM.into(),
                    resume: Some(sid.clone()),
                },
                ip(1),
            ),
            t,
        );
        assert_eq!(session_of(&back), sid);
        assert!(back.contains(&(1, Action::Close(close::REPLACED))));
        // The replaced socket's disconnect frees nothing.
        assert!(h.handle(1, Event::Disconnected, t).is_empty());
        assert_eq!(h.session_count(), 4);
    }

    #[test]
    fn caps_capacity_and_expiry() {
        let mut h = hub(false);
        let t = Instant::now();
        let ids: Vec<String> = (0..4).map(|i| format!("{i:064x}")).collect();
        assert!(matches!(
            h.register_room(&ids[0], ip(1), t),
            Registration::Created { .. }
        ));
        assert!(matches!(
            h.register_room(&ids[1], ip(1), t),
            Registration::Created { .. }
        ));
        assert_eq!(h.register_room(&ids[2], ip(1), t), Registration::PerIpCap);
        assert!(matches!(
            h.register_room(&ids[2], ip(2), t),
            Registration::Created { .. }
        ));
        assert_eq!(h.register_room(&ids[3], ip(3), t), Registration::Full);
        // Reservations expire and free their capacity.
        let later = t + Duration::from_secs(601);
        h.tick(later);
        assert_eq!(h.room_count(), 0);
        assert!(matches!(
            h.register_room(&ids[3], ip(1), later),
            Registration::Created { .. }
        ));
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        let mut h = hub(false);
        let t = Instant::now();
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let id = |i: u8| format!("{i:064x}");
        assert!(matches!(
            h.register_room(&id(1), v6("2001:db8:1:2::1"), t),
            Registration::Created { .. }
        ));
        assert!(matches!(
            h.register_room(&id(2), v6("2001:db8:1:2:ffff:ffff:ffff:fffe"), t),
            Registration::Created { .. }
        ));
        assert_eq!(
            h.register_room(&id(3), v6("2001:db8:1:2:abcd::9"), t),
            Registration::PerIpCap,
            "per_ip 2 for the whole /64"
        );
        assert!(matches!(
            h.register_room(&id(3), v6("2001:db8:1:3::1"), t),
            Registration::Created { .. }
        ));
    }

    #[test]
    fn join_rate_per_ip() {
        let mut h = hub(true);
        let t = Instant::now();
        let mut limited = 0;
        for p in 0..40 {
            let out = join(&mut h, p, &format!("{:064x}", p % 2), t);
            if error_of(&out) == Some(ErrorCode::RateLimited) {
                limited += 1;
            }
        }
        assert_eq!(limited, 10, "burst of 30");
    }

    #[test]
    fn idle_rooms_close() {
        let mut h = hub(true);
        let t = Instant::now();
        join(&mut h, 1, ROOM, t);
        assert!(h.tick(t + Duration::from_secs(60)).is_empty());
        let out = h.tick(t + Duration::from_secs(2 * 3600));
        assert!(out.contains(&(1, Action::Close(close::IDLE))));
        assert_eq!(h.room_count(), 0);
    }

    #[test]
    fn hangup_frees_and_closes() {
        let mut h = hub(true);
        let t = Instant::now();
        join(&mut h, 1, ROOM, t);
        join(&mut h, 2, ROOM, t);
        send(&mut h, 1, ClientMsg::Ready {}, t);
        send(&mut h, 2, ClientMsg::Ready {}, t);
        let out = send(&mut h, 1, ClientMsg::Hangup {}, t);
        assert_eq!(
            out,
            vec![
                (2, Action::Send(ServerMsg::Hangup)),
                (2, Action::Send(ServerMsg::PeerLeft)),
                (1, Action::Close(close::NORMAL)),
            ]
        );
    }
}
