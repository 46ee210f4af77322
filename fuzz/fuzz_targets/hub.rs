//! Fuzzes the I/O-free room logic, `alisay::signaling::hub::Hub`, with arbitrary sequences of
//! socket events (connects, every client message, disconnects), `POST /rooms` registrations
//! and clock ticks, under arbitrary room settings of the ranges `validate()` accepts.
//!
//! The harness plays the WebSocket side (`http::ws`): a socket the hub closes is gone, and the
//! hub then hears `Disconnected` for it. It keeps its own model of who is in which room and
//! checks every output against it (`docs/protocol.md`, SPEC §5):
//! - the hub addresses only open sockets, and nothing after a socket's close;
//! - `error`s go only to the socket that sent the message, `joined` only to the joiner;
//! - `joined` carries a 32-hex session id and the configured heartbeat;
//! - at most two sessions per room; `session_count()` equals the sessions the model counts;
//!   `room_count()` never exceeds `rooms.max_active`;
//! - `peer-joined`, `peer-left` and relayed `offer`/`answer`/`ice`/`hangup` reach only the
//!   other member of the sender's room, relays only after `start` and unchanged;
//! - `start` goes to both members at once, and exactly the later joiner is polite;
//! - every server message round-trips through JSON (what the browser parses).

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use alisay::config::Rate;
use alisay::room::RoomId;
use alisay::signaling::close::CloseCode;
use alisay::signaling::hub::{Action, Event, Hub, HubConfig, Output, PeerId};
use alisay::signaling::protocol::{ByeReason, ClientMsg, IceCandidate, ServerMsg};
use alisay::turn::TurnSecret;
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

/// Rooms the steps pick from (room `0` may be allowlisted).
const ROOMS: usize = 4;
/// Client addresses the steps pick from: two IPv4, and two IPv6 in one /64 (one limit key).
const IPS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"];
/// Most steps per input, to keep each run short.
const MAX_STEPS: usize = 400;

#[derive(Debug, Arbitrary)]
struct Input {
    settings: Settings,
    steps: Vec<Step>,
}

/// Hub settings, within what `validate()` accepts (`max_active`, `per_ip`, burst ≥ 1, a
/// positive rate, `idle_ttl` > heartbeat, a non-zero reservation TTL; no upper bounds).
#[derive(Debug, Arbitrary)]
struct Settings {
    allow_open_rooms: bool,
    allowlist_room_0: bool,
    with_turn: bool,
    max_active: u8,
    per_ip: u8,
    join_burst: u8,
    join_per_second: u8,
    heartbeat_seconds: u8,
    idle_ttl: TtlChoice,
    reservation_ttl: TtlChoice,
}

/// A duration setting: usually short, sometimes anything the config accepts.
#[derive(Debug, Arbitrary)]
enum TtlChoice {
    Seconds(u16),
    Any(u64),
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A new socket.
    Connect,
    Join {
        who: u8,
        room: u8,
        /// Resume a session seen before (by index), or a made-up one.
        resume: Option<u8>,
        ip: u8,
    },
    Ready {
        who: u8,
    },
    Offer {
        who: u8,
        answer: bool,
        sdp: u8,
        auth: Option<u8>,
    },
    Ice {
        who: u8,
        end: bool,
        mid: Option<u8>,
    },
    Hangup {
        who: u8,
    },
    RefreshIce {
        who: u8,
    },
    Heartbeat {
        who: u8,
    },
    /// The socket goes away (closed, errored or timed out).
    Disconnect {
        who: u8,
    },
    /// `POST /rooms`.
    Register {
        room: u8,
        ip: u8,
    },
    /// Time passes, then housekeeping runs.
    Tick {
        millis: u16,
        hours: u8,
    },
}

fuzz_target!(|input: Input| {
    let mut h = Harness::new(&input.settings);
    for step in input.steps.into_iter().take(MAX_STEPS) {
        h.step(step);
        h.check_counts();
    }
});

fn room_id(i: usize) -> String {
    format!("{:02x}", i + 1).repeat(32)
}

fn room_key(i: usize) -> RoomId {
    RoomId::parse(&room_id(i)).expect("a room id")
}

fn ttl(choice: &TtlChoice, floor: Duration) -> Duration {
    let d = match *choice {
        TtlChoice::Seconds(s) => Duration::from_secs(u64::from(s)),
        TtlChoice::Any(s) => Duration::from_secs(s),
    };
    d.max(floor)
}

/// One joined session, as the harness sees it.
#[derive(Debug, Clone)]
struct Member {
    room: usize,
    /// Arrival order of the slot (kept on resume): the later joiner is polite.
    seq: u64,
    session: String,
}

struct Harness {
    hub: Hub,
    now: Instant,
    heartbeat_seconds: u64,
    max_active: usize,
    relay_available: bool,
    next_peer: PeerId,
    /// Open sockets, in connect order.
    open: Vec<PeerId>,
    /// Joined sessions by socket.
    members: HashMap<PeerId, Member>,
    /// Rooms whose two members have both been sent `start` (and nothing reset it since).
    started: HashSet<usize>,
    /// Session ids handed out, with their room, for `resume`.
    sessions: Vec<(String, usize)>,
    next_seq: u64,
}

impl Harness {
    fn new(s: &Settings) -> Self {
        let heartbeat = u64::from(s.heartbeat_seconds % 60) + 1;
        let mut allowlist = HashSet::new();
        if s.allowlist_room_0 {
            allowlist.insert(room_key(0));
        }
        let max_active = usize::from(s.max_active % 4) + 1;
        let cfg = HubConfig {
            allowlist,
            allow_open_rooms: s.allow_open_rooms,
            max_active,
            idle_ttl: ttl(&s.idle_ttl, Duration::from_secs(heartbeat + 1)),
            reservation_ttl: ttl(&s.reservation_ttl, Duration::from_secs(1)),
            per_ip: usize::from(s.per_ip % 3) + 1,
            join_rate: Rate {
                per_second: f64::from(s.join_per_second % 8 + 1) / 4.0,
                burst: u32::from(s.join_burst % 6) + 1,
            },
            heartbeat_seconds: heartbeat,
            turn_urls: if s.with_turn {
                vec!["turn:192.0.2.9:3478".to_owned()]
            } else {
                Vec::new()
            },
            stun_urls: vec!["stun:192.0.2.9:3478".to_owned()],
            credential_ttl: Duration::from_secs(3600),
        };
        let secret = s.with_turn.then(|| TurnSecret::new("fuzz secret"));
        Harness {
            hub: Hub::new(cfg, secret),
            now: Instant::now(),
            heartbeat_seconds: heartbeat,
            max_active,
            relay_available: s.with_turn,
            next_peer: 1,
            open: Vec::new(),
            members: HashMap::new(),
            started: HashSet::new(),
            sessions: Vec::new(),
            next_seq: 0,
        }
    }

    fn pick(&self, who: u8) -> Option<PeerId> {
        if self.open.is_empty() {
            None
        } else {
            Some(self.open[usize::from(who) % self.open.len()])
        }
    }

    fn step(&mut self, step: Step) {
        let msg = match step {
            Step::Connect => {
                self.open.push(self.next_peer);
                self.next_peer += 1;
                return;
            }
            Step::Disconnect { who } => {
                if let Some(p) = self.pick(who) {
                    self.open.retain(|&o| o != p);
                    self.gone(p);
                }
                return;
            }
            Step::Register { room, ip } => {
                let room = usize::from(room) % ROOMS;
                // Registration answers over HTTP; it never sends to sockets.
                let _ = self.hub.register_room(&room_id(room), ip_of(ip), self.now);
                return;
            }
            Step::Tick { millis, hours } => {
                self.now += Duration::from_millis(u64::from(millis))
                    + Duration::from_secs(3600 * u64::from(hours % 4));
                let out = self.hub.tick(self.now);
                self.apply(None, None, out);
                return;
            }
            Step::Join {
                who,
                room,
                resume,
                ip,
            } => {
                let room = usize::from(room) % ROOMS;
                let resume = resume.map(|i| {
                    self.sessions
                        .get(usize::from(i))
                        .map_or_else(|| "0123456789abcdef".repeat(2), |(s, _)| s.clone())
                });
                let Some(p) = self.pick(who) else { return };
                let msg = ClientMsg::Join {
                    room_id: RoomId::parse(&room_id(room)).expect("a room id"),
                    resume,
                };
                self.send(p, msg, ip_of(ip), Some(room));
                return;
            }
            Step::Ready { who } => (who, ClientMsg::Ready {}),
            Step::Offer {
                who,
                answer,
                sdp,
                auth,
            } => {
                let sdp = format!("v=0\r\no=- {sdp} 2 IN IP4 127.0.0.1\r\n");
                let auth = auth.map(|a| format!("a{a}"));
                let msg = if answer {
                    ClientMsg::Answer { sdp, auth }
                } else {
                    ClientMsg::Offer { sdp, auth }
                };
                (who, msg)
            }
            Step::Ice { who, end, mid } => {
                let candidate = (!end).then(|| IceCandidate {
                    candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host".into(),
                    sdp_mid: mid.map(|m| m.to_string()),
                    sdp_m_line_index: mid.map(u16::from),
                    username_fragment: None,
                });
                (who, ClientMsg::Ice { candidate })
            }
            Step::Hangup { who } => (who, ClientMsg::Hangup {}),
            Step::RefreshIce { who } => (who, ClientMsg::RefreshIce {}),
            Step::Heartbeat { who } => (who, ClientMsg::Heartbeat {}),
        };
        let (who, msg) = msg;
        if let Some(p) = self.pick(who) {
            self.send(p, msg, ip_of(who), None);
        }
    }

    fn send(&mut self, p: PeerId, msg: ClientMsg, ip: IpAddr, join_room: Option<usize>) {
        let out = self
            .hub
            .handle(p, Event::Message(msg.clone(), ip), self.now);
        self.apply(Some((p, msg)), join_room, out);
    }

    /// The socket `p` is gone: the hub hears `Disconnected`.
    fn gone(&mut self, p: PeerId) {
        let left = self.members.remove(&p);
        if let Some(m) = &left {
            self.started.remove(&m.room);
        }
        let out = self.hub.handle(p, Event::Disconnected, self.now);
        for (to, action) in &out {
            assert!(
                self.open.contains(to),
                "output to a closed socket: {action:?}"
            );
            let m = left.as_ref().expect("only a member's leaving is announced");
            assert_eq!(
                *action,
                Action::Send(ServerMsg::PeerLeft),
                "a disconnect only announces peer-left"
            );
            assert_eq!(self.members.get(to).map(|o| o.room), Some(m.room));
        }
    }

    /// Checks `out`, the hub's answer to `sent` (from a socket) or to a tick, against the
    /// model, and updates the model; sockets the hub closed are then gone.
    fn apply(
        &mut self,
        sent: Option<(PeerId, ClientMsg)>,
        join_room: Option<usize>,
        out: Vec<Output>,
    ) {
        let sender = sent.as_ref().map(|(p, _)| *p);
        let sender_room = sender.and_then(|p| self.members.get(&p)).map(|m| m.room);
        let mut closed: Vec<PeerId> = Vec::new();
        let mut starts: Vec<(PeerId, bool)> = Vec::new();
        for (to, action) in out {
            assert!(
                self.open.contains(&to) && !closed.contains(&to),
                "output to a closed or unknown socket: {action:?}"
            );
            let msg = match action {
                Action::Close(code) => {
                    closed.push(to);
                    if code == CloseCode::Normal {
                        assert!(matches!(sent, Some((p, ClientMsg::Hangup {})) if p == to));
                    }
                    continue;
                }
                Action::Send(msg) => msg,
            };
            let json = serde_json::to_string(&msg).expect("server messages serialize");
            let back: ServerMsg = serde_json::from_str(&json).expect("server messages parse");
            assert_eq!(back, msg, "a server message does not round-trip");
            match msg {
                ServerMsg::Error { .. } => {
                    assert_eq!(Some(to), sender, "an error goes to the sender only");
                }
                ServerMsg::HeartbeatAck | ServerMsg::IceServers { .. } => {
                    assert_eq!(Some(to), sender);
                    assert!(
                        self.members.contains_key(&to),
                        "answers only joined sockets"
                    );
                }
                ServerMsg::Joined {
                    session_id,
                    peer_present,
                    heartbeat_seconds,
                    relay_available,
                    ..
                } => {
                    assert_eq!(Some(to), sender, "joined goes to the joiner");
                    assert!(alisay::signaling::protocol::is_session_id(&session_id));
                    assert_eq!(heartbeat_seconds, self.heartbeat_seconds);
                    assert_eq!(relay_available, self.relay_available);
                    let room = join_room.expect("joined answers a join");
                    assert!(!self.members.contains_key(&to), "joined twice");
                    // A resumed session keeps its slot's arrival order.
                    let resumed = self
                        .members
                        .iter()
                        .find(|(_, m)| m.session == session_id)
                        .map(|(p, m)| (*p, m.clone()));
                    let seq = match &resumed {
                        Some((old, m)) => {
                            assert_eq!(m.room, room, "resume crosses rooms");
                            self.members.remove(old);
                            m.seq
                        }
                        None => {
                            self.next_seq += 1;
                            self.next_seq
                        }
                    };
                    self.started.remove(&room);
                    let others = self.members.values().filter(|m| m.room == room).count();
                    assert!(others <= 1, "a third session in a room");
                    assert_eq!(peer_present, others == 1, "peerPresent is wrong");
                    self.sessions.push((session_id.clone(), room));
                    self.members.insert(
                        to,
                        Member {
                            room,
                            seq,
                            session: session_id,
                        },
                    );
                }
                ServerMsg::PeerJoined => {
                    assert_ne!(Some(to), sender);
                    let joiner = sender.and_then(|p| self.members.get(&p)).map(|m| m.room);
                    assert_eq!(self.members.get(&to).map(|m| m.room), joiner);
                }
                ServerMsg::PeerLeft => {
                    assert_ne!(Some(to), sender);
                    assert!(sender_room.is_some());
                    assert_eq!(self.members.get(&to).map(|m| m.room), sender_room);
                    if let Some(r) = sender_room {
                        self.started.remove(&r);
                    }
                }
                ServerMsg::Start { polite } => {
                    assert!(self.members.contains_key(&to), "start to a non-member");
                    starts.push((to, polite));
                }
                ServerMsg::Bye { reason } => match reason {
                    ByeReason::Replaced => {
                        assert!(matches!(
                            sent,
                            Some((
                                _,
                                ClientMsg::Join {
                                    resume: Some(_),
                                    ..
                                }
                            ))
                        ));
                        assert_eq!(self.members.get(&to).map(|m| m.room), join_room);
                    }
                    ByeReason::Idle => assert!(sent.is_none(), "bye idle only on a tick"),
                    ByeReason::Restart => panic!("the hub never says bye restart"),
                },
                relayed @ (ServerMsg::Offer { .. }
                | ServerMsg::Answer { .. }
                | ServerMsg::Ice { .. }
                | ServerMsg::Hangup) => {
                    let (from, what) = sent.as_ref().expect("relays answer a message");
                    assert_ne!(to, *from, "relayed back to the sender");
                    let room = sender_room.expect("the sender is a member");
                    assert_eq!(self.members.get(&to).map(|m| m.room), Some(room));
                    assert!(self.started.contains(&room), "relayed before start");
                    let expected = match what.clone() {
                        ClientMsg::Offer { sdp, auth } => ServerMsg::Offer { sdp, auth },
                        ClientMsg::Answer { sdp, auth } => ServerMsg::Answer { sdp, auth },
                        ClientMsg::Ice { candidate } => ServerMsg::Ice { candidate },
                        ClientMsg::Hangup {} => ServerMsg::Hangup,
                        other => panic!("{other:?} was relayed"),
                    };
                    assert_eq!(relayed, expected, "a relay changed the message");
                }
            }
        }
        if !starts.is_empty() {
            assert_eq!(starts.len(), 2, "start goes to both members at once");
            let a = &self.members[&starts[0].0];
            let b = &self.members[&starts[1].0];
            assert_eq!(a.room, b.room, "start to members of two rooms");
            assert!(starts[0].1 != starts[1].1, "exactly one side is polite");
            let later = if a.seq > b.seq {
                starts[0].0
            } else {
                starts[1].0
            };
            assert!(
                starts.iter().all(|&(p, polite)| polite == (p == later)),
                "the later joiner is the polite side"
            );
            self.started.insert(a.room);
        }
        // A hangup frees the slot (the socket is closed too, below).
        if let Some((p, ClientMsg::Hangup {})) = &sent
            && let Some(m) = self.members.remove(p)
        {
            self.started.remove(&m.room);
        }
        for p in closed {
            self.open.retain(|&o| o != p);
            self.gone(p);
        }
    }

    fn check_counts(&self) {
        assert_eq!(
            self.hub.session_count(),
            self.members.len(),
            "the hub's sessions differ from the joined sockets"
        );
        assert!(
            self.hub.room_count() <= self.max_active,
            "over rooms.max_active"
        );
        let mut per_room = [0usize; ROOMS];
        for m in self.members.values() {
            per_room[m.room] += 1;
        }
        assert!(
            per_room.iter().all(|&n| n <= 2),
            "a room with three sessions"
        );
        let occupied = per_room.iter().filter(|&&n| n > 0).count();
        assert!(
            self.hub.room_count() >= occupied,
            "a joined room is missing"
        );
    }
}

fn ip_of(i: u8) -> IpAddr {
    IPS[usize::from(i) % IPS.len()].parse().expect("an ip")
}
