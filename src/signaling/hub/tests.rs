//! Unit tests of the hub: events in, outputs out, no sockets.

use super::*;
use crate::signaling::close::CloseCode;
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
                room_id: RoomId::parse(room).unwrap(),
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
    assert!(third.contains(&(3, Action::Close(CloseCode::RoomFull))));
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
                room_id: RoomId::parse(OTHER).unwrap(),
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
                room_id: RoomId::parse(ROOM).unwrap(),
                resume: Some(sid.clone()),
            },
            ip(1),
        ),
        t,
    );
    assert_eq!(session_of(&back), sid);
    assert!(back.contains(&(1, Action::Close(CloseCode::Replaced))));
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
    assert!(out.contains(&(1, Action::Close(CloseCode::Idle))));
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
            (1, Action::Close(CloseCode::Normal)),
        ]
    );
}
