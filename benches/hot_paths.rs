//! Micro-benchmarks of the signaling server's hot paths (criterion): parsing and validating each
//! kind of client message, decoding and encoding WebSocket frames, TURN credential generation,
//! and room admission in the hub. `docs/performance.md` records the figures next to the load
//! benchmark (`tools/compare/compare.sh`).
//!
//!   cargo bench --bench hot_paths
//!   cargo bench --bench hot_paths -- parse/ice     # one group or case

use std::hint::black_box;
use std::net::IpAddr;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime};

use alisay::config::{Config, Rate};
use alisay::http::frame::{Decoder, Frame, OutFrame};
use alisay::room::RoomId;
use alisay::signaling::hub::{Event, Hub, HubConfig};
use alisay::signaling::protocol::{ClientMsg, IceCandidate, ServerMsg, parse_client};
use alisay::turn::{self, TurnSecret};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tokio::time::Instant;

const ROOM: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const MAX_SDP: usize = 32 * 1024;

/// A Chromium-like ICE candidate message (about 240 bytes).
fn ice_text() -> String {
    r#"{"type":"ice","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr 192.168.1.23 rport 61234 generation 0 ufrag EsAw network-id 1 network-cost 10","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw"}}"#.to_owned()
}

/// An audio+video SDP of about 5 KB, as a JSON string value.
fn sdp() -> String {
    let mut s = String::from(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=setup:actpass\r\na=mid:0\r\n",
    );
    let mut pt = 96;
    while s.len() < 5000 {
        s.push_str(&format!(
            "a=rtpmap:{pt} VP8/90000\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n\
             a=rtcp-fb:{pt} nack pli\r\na=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1\r\n"
        ));
        pt += 1;
    }
    s
}

fn parse(c: &mut Criterion) {
    let sdp_json = serde_json::to_string(&sdp()).unwrap();
    let cases = [
        ("join", format!(r#"{{"type":"join","roomId":"{ROOM}"}}"#)),
        (
            "join-resume",
            format!(
                r#"{{"type":"join","roomId":"{ROOM}","resume":"0123456789abcdef0123456789abcdef"}}"#
            ),
        ),
        ("ready", r#"{"type":"ready"}"#.to_owned()),
        ("ice", ice_text()),
        ("ice-end", r#"{"type":"ice","candidate":null}"#.to_owned()),
        (
            "offer-5kb",
            format!(r#"{{"type":"offer","sdp":{sdp_json}}}"#),
        ),
        (
            "answer-5kb-auth",
            format!(r#"{{"type":"answer","sdp":{sdp_json},"auth":"dGhpcy1pcy1hbi1hdXRoLXRhZw"}}"#),
        ),
        ("hangup", r#"{"type":"hangup"}"#.to_owned()),
        ("refresh-ice", r#"{"type":"refresh-ice"}"#.to_owned()),
        ("heartbeat", r#"{"type":"heartbeat"}"#.to_owned()),
        (
            "invalid-unknown-field",
            r#"{"type":"ready","x":1}"#.to_owned(),
        ),
    ];
    let mut g = c.benchmark_group("parse");
    for (name, text) in &cases {
        g.bench_function(*name, |b| b.iter(|| parse_client(black_box(text), MAX_SDP)));
    }
    g.finish();
}

/// A masked client frame of `payload`, as a browser sends it.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x81];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn frames(c: &mut Criterion) {
    let ice = client_frame(ice_text().as_bytes());
    let offer_frame = client_frame(
        format!(
            r#"{{"type":"offer","sdp":{}}}"#,
            serde_json::to_string(&sdp()).unwrap()
        )
        .as_bytes(),
    );
    let mut g = c.benchmark_group("frame");
    for (name, bytes) in [("decode-ice", &ice), ("decode-sdp-5kb", &offer_frame)] {
        g.bench_function(name, |b| {
            let mut d = Decoder::default();
            b.iter_batched_ref(
                || bytes.clone(),
                |buf| {
                    d.feed(buf, 64 * 1024, |f| {
                        black_box(matches!(f, Frame::Text(_)));
                        ControlFlow::<()>::Continue(())
                    })
                },
                BatchSize::SmallInput,
            );
        });
    }
    let msg = match parse_client(&ice_text(), MAX_SDP).unwrap() {
        ClientMsg::Ice { candidate } => ServerMsg::Ice { candidate },
        _ => unreachable!(),
    };
    g.bench_function("encode-ice", |b| b.iter(|| OutFrame::json(black_box(&msg))));
    let offer = ServerMsg::Offer {
        sdp: sdp(),
        auth: None,
    };
    g.bench_function("encode-sdp-5kb", |b| {
        b.iter(|| OutFrame::json(black_box(&offer)))
    });
    g.finish();
}

fn turn_credentials(c: &mut Criterion) {
    let secret = TurnSecret::new("0123456789abcdef0123456789abcdef0123456789ab");
    let urls = vec![
        "turn:turn.example.org:3478?transport=udp".to_owned(),
        "turns:turn.example.org:5349?transport=tcp".to_owned(),
    ];
    let mut g = c.benchmark_group("turn");
    g.bench_function("credentials", |b| {
        b.iter(|| {
            turn::credentials(
                &secret,
                black_box("3f9a1c0b7d2e4a66"),
                SystemTime::now(),
                Duration::from_secs(600),
            )
        })
    });
    g.bench_function("ice-servers", |b| {
        b.iter(|| {
            turn::ice_servers(
                &urls,
                &[],
                Some(&secret),
                black_box("3f9a1c0b7d2e4a66"),
                SystemTime::now(),
                Duration::from_secs(600),
            )
        })
    });
    g.finish();
}

/// A hub admitting open rooms, with TURN, and join rates that never refuse.
fn hub() -> Hub {
    let mut config = Config::default();
    config.rooms.allow_open_rooms = true;
    config.rooms.max_active = 1_000_000;
    config.turn.urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
    let mut cfg = HubConfig::from_config(&config);
    cfg.join_rate = Rate {
        per_second: 1e9,
        burst: u32::MAX,
    };
    Hub::new(cfg, Some(TurnSecret::new("benchmark-secret")))
}

fn join(room: &str) -> ClientMsg {
    ClientMsg::Join {
        room_id: RoomId::parse(room).expect("a room id"),
        resume: None,
    }
}

fn admission(c: &mut Criterion) {
    let ip: IpAddr = [127, 0, 0, 1].into();
    let mut g = c.benchmark_group("admission");
    // A hub already holding 10,000 rooms of one: join a new room, then leave it.
    g.bench_function("join-and-leave", |b| {
        let mut h = hub();
        let now = Instant::now();
        for i in 0..10_000u64 {
            h.handle(i, Event::Message(join(&format!("{i:064x}")), ip), now);
        }
        let mut peer = 1_000_000u64;
        b.iter(|| {
            peer += 1;
            let out = h.handle(peer, Event::Message(join(ROOM), ip), now);
            h.handle(peer, Event::Disconnected, now);
            out
        });
    });
    // The second caller of a room: joined for it, peer-joined for the first.
    g.bench_function("second-joiner", |b| {
        let now = Instant::now();
        b.iter_batched_ref(
            || {
                let mut h = hub();
                h.handle(1, Event::Message(join(ROOM), ip), now);
                h
            },
            |h| h.handle(2, Event::Message(join(ROOM), ip), now),
            BatchSize::SmallInput,
        );
    });
    // A relayed ICE candidate through a started room (hub only, no sockets).
    g.bench_function("relay-ice", |b| {
        let now = Instant::now();
        let mut h = hub();
        h.handle(1, Event::Message(join(ROOM), ip), now);
        h.handle(2, Event::Message(join(ROOM), ip), now);
        h.handle(1, Event::Message(ClientMsg::Ready {}, ip), now);
        h.handle(2, Event::Message(ClientMsg::Ready {}, ip), now);
        let candidate = IceCandidate {
            candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 61234 typ srflx".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: Some("EsAw".into()),
        };
        b.iter(|| {
            let msg = ClientMsg::Ice {
                candidate: Some(candidate.clone()),
            };
            h.handle(1, Event::Message(msg, ip), now)
        });
    });
    g.finish();
}

criterion_group!(benches, parse, frames, turn_credentials, admission);
criterion_main!(benches);
