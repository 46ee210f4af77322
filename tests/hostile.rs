//! Hostile input against the real `alisay serve` (and the rendered nginx site in front of it):
//! every case asserts the exact HTTP status, or the exact signaling error code and close code,
//! and then that a call in progress in another room (the "bystander" pair, admitted before the
//! attack and relaying) is untouched: a relayed offer and answer still arrive, and neither side
//! saw `peer-left` or a close. The catalogue with the threat model is `docs/security.md`; each
//! of its rows names the test function and the case label used here.
//!
//! Programs: `nginx` and `openssl` from apt (scripts/test.sh installs them); a missing one
//! FAILS the nginx tests, they never skip.

mod common;
#[path = "hostile/support.rs"]
mod support;

use std::net::IpAddr;
use std::time::Duration;

use common::{Client, Got, RawWs, Server, WAIT, op, room_id};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout};

// ---------------------------------------------------------------------------------------------
// The arena: a server with a call in progress in another room

/// A started pair in an allowlisted room, each caller behind the trusted local proxy with its
/// own client address (as nginx reports them), so no attacker's per-IP bucket is theirs.
struct Bystander {
    a: Client,
    b: Client,
    /// Round trips so far (each carries a fresh SDP, so a stale or duplicated one shows).
    rounds: u32,
    /// The caller's `sessionId`, for replay attacks.
    session_a: String,
}

impl Bystander {
    async fn start(server: &Server, room: &str) -> Bystander {
        let proxy = IpAddr::from([127, 0, 0, 1]);
        let mut a = server
            .ws_from(proxy, &[("x-forwarded-for", "198.51.100.201")])
            .await;
        let joined = a.join(room).await;
        assert_eq!(joined["peerPresent"], false);
        let session_a = joined["sessionId"].as_str().unwrap().to_owned();
        let mut b = server
            .ws_from(proxy, &[("x-forwarded-for", "198.51.100.202")])
            .await;
        assert_eq!(b.join(room).await["peerPresent"], true);
        a.expect("peer-joined").await;
        a.send(json!({"type": "ready"})).await;
        b.send(json!({"type": "ready"})).await;
        a.expect("start").await;
        b.expect("start").await;
        Bystander {
            a,
            b,
            rounds: 0,
            session_a,
        }
    }

    /// One offer a -> b and one answer b -> a; each must be the very next message its
    /// addressee sees (so no `peer-left`, error or close came first). Returns the round-trip
    /// time.
    async fn round_trip(&mut self, after: &str) -> Duration {
        self.rounds += 1;
        let sdp = format!(
            "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=bystander\r\nt=0 0\r\n",
            self.rounds
        );
        let t0 = Instant::now();
        self.a.send(json!({"type": "offer", "sdp": sdp})).await;
        match self.b.next().await {
            Got::Json(v, _) => assert_eq!(
                v,
                json!({"type": "offer", "sdp": sdp}),
                "after {after}: the bystander callee got something else"
            ),
            other => panic!("after {after}: the bystander callee got {other:?}"),
        }
        self.b.send(json!({"type": "answer", "sdp": sdp})).await;
        match self.a.next().await {
            Got::Json(v, _) => assert_eq!(
                v,
                json!({"type": "answer", "sdp": sdp}),
                "after {after}: the bystander caller got something else"
            ),
            other => panic!("after {after}: the bystander caller got {other:?}"),
        }
        t0.elapsed()
    }
}

/// A server plus a bystander call; `check` after every attack.
struct Arena {
    server: Server,
    by: Bystander,
    /// Cases run in this arena, for the summary line.
    cases: Vec<&'static str>,
}

impl Arena {
    /// Starts the server with `extra` (YAML text merged over the test base config) plus an
    /// allowlist holding only the bystanders' room, and starts the bystander call.
    async fn start(extra: &str) -> Arena {
        let room = room_id();
        let mut yaml: serde_yaml::Value =
            serde_yaml::from_str(&format!("rooms: {{allowlist: [\"{room}\"]}}")).unwrap();
        if !extra.trim().is_empty() {
            merge(&mut yaml, serde_yaml::from_str(extra).expect("extra yaml"));
        }
        let server = Server::start(&serde_yaml::to_string(&yaml).unwrap()).await;
        let by = Bystander::start(&server, &room).await;
        Arena {
            server,
            by,
            cases: Vec::new(),
        }
    }

    /// The bystander call is untouched after `case`.
    async fn check(&mut self, case: &'static str) {
        self.by.round_trip(case).await;
        self.cases.push(case);
    }

    fn done(&self, test: &str) {
        eprintln!(
            "{test}: {} cases, bystander untouched after each: {:?}",
            self.cases.len(),
            self.cases
        );
    }
}

fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Sends `text` as the first message of a fresh socket; expects `error {code}` then `close`.
async fn first_message(server: &Server, case: &str, text: &str, code: &str, close: u16) {
    let mut c = server.ws().await;
    c.send_text(text).await;
    expect_error(&mut c, case, code, close).await;
}

/// Like [`first_message`], after a successful join into a fresh open room.
async fn after_join(server: &Server, case: &str, text: &str, code: &str, close: u16) {
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    c.send_text(text).await;
    expect_error(&mut c, case, code, close).await;
}

async fn expect_error(c: &mut Client, case: &str, code: &str, close: u16) {
    match c.next().await {
        Got::Json(v, _) => {
            assert_eq!(v["type"], "error", "{case}: got {v}");
            assert_eq!(v["code"], code, "{case}: got {v}");
        }
        other => panic!("{case}: expected error {code}, got {other:?}"),
    }
    match c.next().await {
        Got::Close(Some(got)) => assert_eq!(got, close, "{case}: close code"),
        other => panic!("{case}: expected close {close}, got {other:?}"),
    }
}

/// A raw socket must get exactly one `error {code}` and then a close frame `close`.
async fn expect_raw_error(raw: &mut RawWs, case: &str, code: &str, close: u16) {
    let (texts, got) = raw.until_close(WAIT).await;
    assert_eq!(texts.len(), 1, "{case}: {texts:?}");
    assert_eq!(texts[0]["type"], "error", "{case}: {texts:?}");
    assert_eq!(texts[0]["code"], code, "{case}: {texts:?}");
    assert_eq!(got, Some(close), "{case}: close code");
}

const OPEN: &str = "rooms: {allow_open_rooms: true}";

// ---------------------------------------------------------------------------------------------
// Malformed messages

#[tokio::test]
async fn malformed_json_and_wrong_types_close_4000() {
    let mut arena = Arena::start(OPEN).await;
    let room = room_id();
    let cases: Vec<(&'static str, String)> = vec![
        (
            "truncated JSON",
            format!(r#"{{"type":"join","roomId":"{room}"#),
        ),
        ("JSON null", "null".into()),
        ("bare string", r#""join""#.into()),
        (
            "roomId as a number",
            r#"{"type":"join","roomId":1234}"#.into(),
        ),
        (
            "type as an array",
            format!(r#"{{"type":["join"],"roomId":"{room}"}}"#),
        ),
        (
            "resume as an object",
            format!(r#"{{"type":"join","roomId":"{room}","resume":{{"sessionId":"x"}}}}"#),
        ),
        ("unknown type", r#"{"type":"admin","grant":"all"}"#.into()),
        (
            "__proto__ field",
            format!(r#"{{"type":"join","roomId":"{room}","__proto__":{{"admin":true}}}}"#),
        ),
        (
            "number out of range",
            r#"{"type":"join","roomId":1e99999}"#.into(),
        ),
        (
            "lone surrogate escape",
            format!(r#"{{"type":"join","roomId":"\ud800{}"}}"#, &room[1..]),
        ),
        (
            "NUL in the room id",
            format!(r#"{{"type":"join","roomId":"\u0000{}"}}"#, &room[1..]),
        ),
        (
            "room id of 60,000 characters",
            format!(r#"{{"type":"join","roomId":"{}"}}"#, "a".repeat(60_000)),
        ),
        ("60,000 nested arrays", "[".repeat(60_000)),
        (
            "12,000 nested objects inside join",
            format!(r#"{{"type":"join","roomId":{}"#, r#"{"a":"#.repeat(12_000)),
        ),
    ];
    for (case, text) in &cases {
        first_message(&arena.server, case, text, "invalid-message", 4000).await;
        arena.check(case).await;
    }
    // Deep nesting after join, where a relayed message would otherwise be accepted.
    let deep = format!(
        r#"{{"type":"ice","candidate":{{"candidate":{}}}}}"#,
        r#"{"a":"#.repeat(10_000)
    );
    after_join(
        &arena.server,
        "10,000 nested objects in a candidate",
        &deep,
        "invalid-message",
        4000,
    )
    .await;
    arena.check("10,000 nested objects in a candidate").await;
    arena.done("malformed_json_and_wrong_types_close_4000");
}

#[tokio::test]
async fn invalid_utf8_and_binary_frames_close_4000() {
    let mut arena = Arena::start(OPEN).await;
    let join = json!({"type": "join", "roomId": room_id()}).to_string();
    // Overlong encoding of '/', and a UTF-16 surrogate encoded in UTF-8 (CESU-8).
    for (case, bytes) in [
        (
            "overlong UTF-8",
            b"{\"type\":\"join\",\"roomId\":\"\xc0\xaf\"}".to_vec(),
        ),
        (
            "CESU-8 surrogate",
            b"{\"type\":\"join\",\"roomId\":\"\xed\xa0\x80\"}".to_vec(),
        ),
    ] {
        let mut raw = arena.server.raw_ws().await;
        raw.send_frame(true, op::TEXT, &bytes).await;
        expect_raw_error(&mut raw, case, "invalid-message", 4000).await;
        arena.check(case).await;
    }
    // A multi-byte character split across fragments is fine; an invalid continuation is not.
    let case = "invalid UTF-8 across fragments";
    let mut raw = arena.server.raw_ws().await;
    raw.send_frame(false, op::TEXT, b"{\"type\":\"join\",\"roomId\":\"\xe2\x82")
        .await;
    raw.send_frame(true, op::CONT, b"\x28\"}").await;
    expect_raw_error(&mut raw, case, "invalid-message", 4000).await;
    arena.check(case).await;

    let case = "binary frame carrying a valid join";
    let mut raw = arena.server.raw_ws().await;
    raw.send_frame(true, op::BINARY, join.as_bytes()).await;
    expect_raw_error(&mut raw, case, "invalid-message", 4000).await;
    arena.check(case).await;
    arena.done("invalid_utf8_and_binary_frames_close_4000");
}

// ---------------------------------------------------------------------------------------------
// WebSocket framing (RFC 6455 §5): what a browser can never send

/// Raw frame bytes with full control over the header (`b0` = FIN/RSV/opcode byte), masked
/// unless `masked` is false.
fn raw_frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![b0];
    let m = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(m | payload.len() as u8);
    } else {
        out.push(m | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        let mask: [u8; 4] = rand::random();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

#[tokio::test]
async fn websocket_protocol_violations_close_4000() {
    let mut arena = Arena::start(OPEN).await;
    let join = json!({"type": "join", "roomId": room_id()}).to_string();
    let cases: Vec<(&'static str, Vec<u8>)> = vec![
        (
            "continuation without a start",
            raw_frame(0x80, join.as_bytes(), true),
        ),
        ("new text frame inside a fragmented message", {
            let mut v = raw_frame(0x01, b"{\"type\":", true);
            v.extend(raw_frame(0x81, join.as_bytes(), true));
            v
        }),
        ("fragmented ping", raw_frame(0x09, b"ping", true)),
        ("ping of 126 bytes", raw_frame(0x89, &[b'p'; 126], true)),
        (
            "reserved bit RSV1 without an extension",
            raw_frame(0xC1, join.as_bytes(), true),
        ),
        ("reserved opcode 0x3", raw_frame(0x83, b"x", true)),
        (
            "unmasked client frame",
            raw_frame(0x81, join.as_bytes(), false),
        ),
    ];
    for (case, bytes) in &cases {
        let mut raw = arena.server.raw_ws().await;
        raw.stream.write_all(bytes).await.unwrap();
        expect_raw_error(&mut raw, case, "invalid-message", 4000).await;
        arena.check(case).await;
    }
    // A close frame with a code no endpoint may send (RFC 6455 §7.4.2) is answered 1002.
    let case = "close frame with code 999";
    let mut raw = arena.server.raw_ws().await;
    raw.send_frame(true, op::CLOSE, &999u16.to_be_bytes()).await;
    let (texts, code) = raw.until_close(WAIT).await;
    assert!(texts.is_empty(), "{case}: {texts:?}");
    assert_eq!(code, Some(1002), "{case}");
    arena.check(case).await;
    // A legal fragmented join (with a ping between fragments) is accepted.
    let case = "fragmented join with a ping between fragments (accepted)";
    let mut raw = arena.server.raw_ws().await;
    let (head, tail) = join.split_at(10);
    raw.send_frame(false, op::TEXT, head.as_bytes()).await;
    raw.send_frame(true, op::PING, b"x").await;
    raw.send_frame(true, op::CONT, tail.as_bytes()).await;
    assert_eq!(raw.recv().await["type"], "joined", "{case}");
    arena.check(case).await;
    arena.done("websocket_protocol_violations_close_4000");
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[tokio::test]
async fn oversized_frames_messages_sdp_and_candidates_close_4009() {
    let mut arena = Arena::start(OPEN).await;
    // A frame header announcing 2^62 bytes: refused at the header, nothing allocated.
    let case = "frame header announcing 2^62 bytes";
    let mut raw = arena.server.raw_ws().await;
    let mut head = vec![0x81, 0x80 | 127];
    head.extend_from_slice(&(1u64 << 62).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    raw.stream.write_all(&head).await.unwrap();
    expect_raw_error(&mut raw, case, "message-too-big", 4009).await;
    arena.check(case).await;

    let case = "100,000 nested arrays (over 64 KiB)";
    first_message(
        &arena.server,
        case,
        &"[".repeat(100_000),
        "message-too-big",
        4009,
    )
    .await;
    arena.check(case).await;

    // 70,000 one-byte fragments: each frame is tiny, the message is not.
    let case = "70,000 one-byte fragments";
    let mut raw = arena.server.raw_ws().await;
    let mut burst = Vec::new();
    burst.extend(raw_frame(0x01, b"[", true));
    for _ in 0..70_000 {
        burst.extend(raw_frame(0x00, b" ", true));
    }
    // The server stops reading at the limit; write what it takes.
    let _ = timeout(Duration::from_secs(3), raw.stream.write_all(&burst)).await;
    expect_raw_error(&mut raw, case, "message-too-big", 4009).await;
    arena.check(case).await;

    // Limits count bytes, not characters: 11,000 '€' are 33,000 bytes of SDP.
    let (mut a, mut b) = common::started_pair(&arena.server, &room_id()).await;
    let case = "SDP of 11,000 three-byte characters (33,000 bytes)";
    a.send(json!({"type": "offer", "sdp": "€".repeat(11_000)}))
        .await;
    expect_error(&mut a, case, "message-too-big", 4009).await;
    b.expect("peer-left").await;
    arena.check(case).await;
    let case = "candidate of 342 three-byte characters (1,026 bytes)";
    after_join(
        &arena.server,
        case,
        &json!({"type": "ice", "candidate": {"candidate": "€".repeat(342)}}).to_string(),
        "message-too-big",
        4009,
    )
    .await;
    arena.check(case).await;
    arena.done("oversized_frames_messages_sdp_and_candidates_close_4009");
}

// ---------------------------------------------------------------------------------------------
// Order: join first, relay only after start

#[tokio::test]
async fn joins_that_never_come_and_messages_out_of_order() {
    let mut arena = Arena::start(&format!("{OPEN}\nsignaling: {{join_timeout: 600ms}}")).await;
    // Nothing at all.
    let case = "no join at all";
    let mut c = arena.server.ws().await;
    expect_error(&mut c, case, "join-timeout", 4001).await;
    arena.check(case).await;
    // Pings (control frames) do not extend the join deadline.
    let case = "pings but no join";
    let mut raw = arena.server.raw_ws().await;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(400) {
        raw.send_frame(true, op::PING, b"alive").await;
        sleep(Duration::from_millis(100)).await;
    }
    let (texts, code) = raw.until_close(WAIT).await;
    assert_eq!(texts.len(), 1, "{case}: {texts:?}");
    assert_eq!(texts[0]["code"], "join-timeout", "{case}");
    assert_eq!(code, Some(4001), "{case}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{case}: {:?}",
        t0.elapsed()
    );
    arena.check(case).await;
    // Messages before join.
    for (case, msg) in [
        ("heartbeat before join", json!({"type": "heartbeat"})),
        (
            "offer before join",
            json!({"type": "offer", "sdp": "v=0\r\n"}),
        ),
        (
            "ice before join",
            json!({"type": "ice", "candidate": {"candidate": "candidate:1 1 udp 1 192.0.2.1 9 typ host"}}),
        ),
    ] {
        first_message(
            &arena.server,
            case,
            &msg.to_string(),
            "invalid-message",
            4000,
        )
        .await;
        arena.check(case).await;
    }
    // Relay before start: not-ready, the socket stays open (the next message is the ack).
    let case = "offer before start";
    let mut c = arena.server.ws().await;
    c.join(&room_id()).await;
    c.send(json!({"type": "offer", "sdp": "v=0\r\n"})).await;
    let e = c.expect("error").await;
    assert_eq!(e["code"], "not-ready", "{case}");
    c.ping_pong().await;
    arena.check(case).await;
    arena.done("joins_that_never_come_and_messages_out_of_order");
}

// ---------------------------------------------------------------------------------------------
// Floods and guessing

#[tokio::test]
async fn offer_and_ping_floods_close_4008() {
    let mut arena = Arena::start(OPEN).await;
    // An attacker in its own call floods offers: cut off at the per-socket rate; its peer
    // received at most the burst, then peer-left.
    let case = "offer flood after start";
    let (mut attacker, mut victim) = common::started_pair(&arena.server, &room_id()).await;
    let mut sent = 0;
    for _ in 0..200 {
        if !attacker
            .try_send_text(json!({"type": "offer", "sdp": "v=0\r\n"}).to_string())
            .await
        {
            break;
        }
        sent += 1;
    }
    let mut relayed = 0;
    expect_error(&mut attacker, case, "rate-limited", 4008).await;
    // The flood is the attacker's own call: its peer sees the relayed offers, then
    // `peer-left`; or, when the burst outran its writer under load, it is closed as a slow
    // consumer (4012). Either way only that call ends.
    loop {
        match victim.next().await {
            Got::Json(v, _) if v["type"] == "offer" => relayed += 1,
            Got::Json(v, _) if v["type"] == "peer-left" => break,
            Got::Close(Some(4012)) => break,
            other => panic!("{case}: victim got {other:?}"),
        }
    }
    assert!(relayed <= 45, "{case}: {relayed} of {sent} offers relayed");
    arena.check(case).await;

    // Pings are answered by the transport, but they count against the same rate.
    let case = "ping flood";
    let mut raw = arena.server.raw_ws().await;
    raw.send_text(&json!({"type": "join", "roomId": room_id()}).to_string())
        .await;
    assert_eq!(raw.recv().await["type"], "joined");
    let mut flood = Vec::new();
    for _ in 0..1000 {
        flood.extend(raw_frame(0x89, b"x", true));
    }
    let _ = timeout(Duration::from_secs(3), raw.stream.write_all(&flood)).await;
    expect_raw_error(&mut raw, case, "rate-limited", 4008).await;
    arena.check(case).await;
    arena.done("offer_and_ping_floods_close_4008");
}

/// 30 joins (the default per-IP burst) from one client address are admitted, the 31st is
/// refused; other addresses are not affected.
#[tokio::test]
async fn join_flood_from_one_ip_is_rate_limited_4008() {
    let mut arena = Arena::start(OPEN).await;
    let proxy = IpAddr::from([127, 0, 0, 1]);
    let flood = [("x-forwarded-for", "203.0.113.66")];
    let mut held = Vec::new();
    for _ in 0..30 {
        let mut c = arena.server.ws_from(proxy, &flood).await;
        c.join(&room_id()).await;
        held.push(c);
    }
    let case = "31st join from one address";
    let mut c = arena.server.ws_from(proxy, &flood).await;
    c.send(json!({"type": "join", "roomId": room_id()})).await;
    expect_error(&mut c, case, "rate-limited", 4008).await;
    arena.check(case).await;
    let case = "a join from another address meanwhile (admitted)";
    let mut other = arena
        .server
        .ws_from(proxy, &[("x-forwarded-for", "203.0.113.67")])
        .await;
    other.join(&room_id()).await;
    arena.check(case).await;
    arena.done("join_flood_from_one_ip_is_rate_limited_4008");
}

/// Guessing room ids: each guess is `room-not-allowed`, and after the per-IP burst every
/// further guess is `rate-limited`, also when an untrusted peer forges `X-Forwarded-For`.
#[tokio::test]
async fn guessing_room_ids_is_refused_4003_then_rate_limited_4008() {
    let mut arena = Arena::start("server: {trusted_proxies: [\"127.0.0.1/32\"]}").await;
    let guesser = IpAddr::from([127, 0, 0, 9]);
    // A direct (untrusted) peer: its X-Forwarded-For is ignored, even when it rotates. Guess
    // until refused: the burst (30) plus what the bucket refilled (1/s) meanwhile.
    let t0 = Instant::now();
    let mut refused = 0;
    let case = "guessing on past the burst with a rotating forged X-Forwarded-For";
    loop {
        assert!(refused < 60, "{case}: {refused} guesses and no rate limit");
        let xff = format!("198.18.{}.{}", refused / 200, refused % 200 + 1);
        let mut c = arena
            .server
            .ws_from(guesser, &[("x-forwarded-for", &xff)])
            .await;
        c.send(json!({"type": "join", "roomId": room_id()})).await;
        let v = c.recv().await;
        if v["code"] == "rate-limited" {
            c.expect_close(4008).await;
            break;
        }
        assert_eq!(v["code"], "room-not-allowed", "guess {refused}: {v}");
        c.expect_close(4003).await;
        refused += 1;
    }
    let refill = t0.elapsed().as_secs_f64().ceil() as usize;
    assert!(
        (30..=30 + refill).contains(&refused),
        "{case}: {refused} guesses answered room-not-allowed in {:?}",
        t0.elapsed()
    );
    arena.check(case).await;
    // POST /rooms shares the bucket: registering is refused too.
    let case = "POST /rooms after the guessing burst";
    let r = arena
        .server
        .post_rooms_full(
            Some(guesser),
            &json!({"roomId": room_id()}).to_string(),
            Some(&arena.server.origin.clone()),
            Some("application/json"),
            &[],
        )
        .await;
    assert_eq!(r.status, 429, "{case}");
    arena.check(case).await;
    arena.done("guessing_room_ids_is_refused_4003_then_rate_limited_4008");
}

/// Replaying the bystander's own `sessionId` as `resume` (it is never logged, but say it
/// leaked) from another room, or into a room that does not exist, is a plain join: nobody is
/// evicted. (With the room id too, `resume` is a bearer token by design: both are secrets.)
#[tokio::test]
async fn replayed_resume_of_another_session_evicts_nobody() {
    let mut arena = Arena::start("").await;
    let sid = arena.by.session_a.clone();
    let own_room = room_id();
    assert_eq!(arena.server.post_room(&own_room).await.status, 201);
    let case = "resume of the bystander's session into the attacker's own room";
    let mut attacker = arena.server.ws().await;
    attacker
        .send(json!({"type": "join", "roomId": own_room, "resume": sid}))
        .await;
    let joined = attacker.expect("joined").await;
    assert_eq!(joined["peerPresent"], false, "{case}");
    assert_ne!(joined["sessionId"], sid.as_str(), "{case}");
    arena.check(case).await;
    let case = "resume of the bystander's session into a room that does not exist";
    let mut c = arena.server.ws().await;
    c.send(json!({"type": "join", "roomId": room_id(), "resume": sid}))
        .await;
    expect_error(&mut c, case, "room-not-allowed", 4003).await;
    arena.check(case).await;
    let case = "resume of an unknown session";
    let mut d = arena.server.ws().await;
    d.send(json!({"type": "join", "roomId": own_room, "resume": hex::encode(rand::random::<[u8; 16]>())}))
        .await;
    assert_eq!(d.expect("joined").await["peerPresent"], true, "{case}");
    attacker.expect("peer-joined").await;
    arena.check(case).await;
    arena.done("replayed_resume_of_another_session_evicts_nobody");
}

// ---------------------------------------------------------------------------------------------
// The upgrade request: cross-site WebSocket hijacking and malformed upgrades

/// Sends a raw upgrade request and reads only the response head: its status.
async fn upgrade_status(server: &Server, request: &str) -> u16 {
    let mut s = common::connect_from(server.addr(), None).await;
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = timeout(WAIT, s.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "closed without an answer to {request:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

fn upgrade(server: &Server, method_target: &str, headers: &[&str]) -> String {
    let mut req = format!(
        "{method_target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        server.port
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
const UPGRADE: [&str; 3] = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
];

#[tokio::test]
async fn hijacked_or_malformed_upgrades_are_refused() {
    let mut arena = Arena::start(OPEN).await;
    let origin = format!("Origin: {}", arena.server.origin);
    let lookalike = format!("Origin: {}.evil.example", arena.server.origin);
    let cases: Vec<(&'static str, Vec<String>, &str, u16)> = vec![
        (
            "foreign Origin (cross-site WebSocket hijacking)",
            vec!["Origin: https://evil.example".into()],
            "GET /ws",
            403,
        ),
        ("look-alike Origin", vec![lookalike], "GET /ws", 403),
        (
            "Origin: null (sandboxed frame)",
            vec!["Origin: null".into()],
            "GET /ws",
            403,
        ),
        ("missing Origin", vec![], "GET /ws", 403),
        (
            "room id in the query string",
            vec![origin.clone()],
            "GET /ws?roomId=ab12",
            400,
        ),
        ("no Sec-WebSocket-Key", vec![origin.clone()], "GET /ws", 400),
        (
            "WebSocket version 8",
            vec![
                origin.clone(),
                "Sec-WebSocket-Version: 8".into(),
                KEY.into(),
                "Upgrade: websocket".into(),
                "Connection: Upgrade".into(),
            ],
            "GET /ws",
            400,
        ),
        ("POST upgrade", vec![origin.clone()], "POST /ws", 405),
    ];
    for (case, extra, target, status) in cases {
        let mut headers: Vec<&str> = extra.iter().map(String::as_str).collect();
        if case != "WebSocket version 8" {
            headers.extend(UPGRADE);
            if case != "no Sec-WebSocket-Key" {
                headers.push(KEY);
            }
        }
        let req = upgrade(&arena.server, target, &headers);
        assert_eq!(upgrade_status(&arena.server, &req).await, status, "{case}");
        arena.check(case).await;
    }
    arena.done("hijacked_or_malformed_upgrades_are_refused");
}

// ---------------------------------------------------------------------------------------------
// POST /rooms: CSRF and oversized bodies

#[tokio::test]
async fn cross_site_and_oversized_room_registrations_are_refused() {
    let mut arena = Arena::start("").await;
    let origin = arena.server.origin.clone();
    let body = json!({"roomId": room_id()}).to_string();
    // Content types an HTML form (or a no-cors fetch) can send without a CORS preflight.
    for (case, ct, status) in [
        (
            "text/plain (CSRF without preflight)",
            Some("text/plain"),
            415,
        ),
        (
            "multipart/form-data (CSRF form)",
            Some("multipart/form-data; boundary=x"),
            415,
        ),
        (
            "application/x-www-form-urlencoded (CSRF form)",
            Some("application/x-www-form-urlencoded"),
            415,
        ),
        (
            "application/jsonp (prefix look-alike)",
            Some("application/jsonp"),
            415,
        ),
        ("no Content-Type", None, 415),
    ] {
        let r = arena
            .server
            .post_rooms_full(None, &body, Some(&origin), ct, &[])
            .await;
        assert_eq!(r.status, status, "{case}: {}", r.text());
        arena.check(case).await;
    }
    let case = "Origin: null with JSON";
    let r = arena
        .server
        .post_rooms_full(None, &body, Some("null"), Some("application/json"), &[])
        .await;
    assert_eq!(r.status, 403, "{case}");
    arena.check(case).await;
    let case = "CORS preflight OPTIONS /rooms";
    let r = arena
        .server
        .http_raw(&format!(
            "OPTIONS /rooms HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: https://evil.example\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n\
             Connection: close\r\n\r\n",
            arena.server.port
        ))
        .await;
    assert_eq!(r.status, 405, "{case}");
    assert!(
        !r.headers
            .iter()
            .any(|(k, _)| k.starts_with("access-control-")),
        "{case}: {:?}",
        r.headers
    );
    arena.check(case).await;
    let case = "a 1 MiB body announced by Content-Length";
    let r = arena
        .server
        .http_raw(&format!(
            "POST /rooms HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
             Content-Type: application/json\r\nContent-Length: 1048576\r\nConnection: close\r\n\r\n",
            arena.server.port
        ))
        .await;
    assert_eq!(r.status, 413, "{case}");
    arena.check(case).await;
    let case = "a chunked body without Content-Length";
    let r = arena
        .server
        .http_raw(&format!(
            "POST /rooms HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {origin}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             {:x}\r\n{body}\r\n0\r\n\r\n",
            arena.server.port,
            body.len()
        ))
        .await;
    assert_eq!(r.status, 411, "{case}");
    arena.check(case).await;
    let case = "1,000 nested arrays as the body";
    let r = arena
        .server
        .post_rooms_full(
            None,
            &"[".repeat(1000),
            Some(&origin),
            Some("application/json"),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{case}");
    arena.check(case).await;
    arena.done("cross_site_and_oversized_room_registrations_are_refused");
}

// ---------------------------------------------------------------------------------------------
// HTTP parsing: static paths, header floods

#[tokio::test]
async fn traversal_and_oversized_requests_are_refused() {
    let mut arena = Arena::start("").await;
    for (case, path) in [
        ("encoded ../ traversal", "/%2e%2e%2fCargo.toml"),
        (
            "double-encoded traversal",
            "/%252e%252e/%252e%252e/etc/passwd",
        ),
        (
            "overlong UTF-8 dots",
            "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        ),
        ("NUL-truncated extension", "/index.html%00.js"),
        ("dot-segment with encoded dot", "/.%2e/.%2e/etc/passwd"),
        ("backslash traversal", "/..\\..\\etc\\passwd"),
    ] {
        let r = arena.server.get(path, &[]).await;
        assert_eq!(r.status, 404, "{case}: {path}: {}", r.text());
        assert!(
            !r.text().contains("root:") && !r.text().contains("[package]"),
            "{case}"
        );
        arena.check(case).await;
    }
    let port = arena.server.port;
    let many: String = (0..150).map(|i| format!("X-Flood-{i}: y\r\n")).collect();
    for (case, req, status) in [
        (
            "150 header lines",
            format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{many}Connection: close\r\n\r\n"),
            431,
        ),
        (
            "one header of 512 KiB",
            format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "b".repeat(512 * 1024)
            ),
            431,
        ),
        (
            "request target of 70 KB",
            format!(
                "GET /{} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n",
                "u".repeat(70_000)
            ),
            414,
        ),
    ] {
        let r = arena.server.http_raw(&req).await;
        assert_eq!(r.status, status, "{case}");
        arena.check(case).await;
    }
    arena.done("traversal_and_oversized_requests_are_refused");
}

// ---------------------------------------------------------------------------------------------
// Slow clients: the header read timeout (`server::HEADER_READ_TIMEOUT`, 10 s)

/// What a slow client saw: how long until the server closed, and what it had sent back.
async fn held_until_closed(mut s: tokio::net::TcpStream, trickle: Vec<u8>) -> (Duration, Vec<u8>) {
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut next = 0;
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "still open after 20 s"
        );
        // One byte every 250 ms, while the server listens.
        if next < trickle.len() {
            if s.write_all(&trickle[next..=next]).await.is_err() {
                return (t0.elapsed(), got);
            }
            next += 1;
        }
        match timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (t0.elapsed(), got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
}

/// Slow-loris clients that reach the listener directly (behind nginx, `client_header_timeout`
/// bounds them first): each is closed, without a response, once it has spent 10 s without
/// completing a request head.
#[tokio::test]
async fn slow_loris_connections_are_closed_after_the_header_timeout() {
    let mut arena = Arena::start(OPEN).await;
    let port = arena.server.port;
    let origin = arena.server.origin.clone();
    let addr = arena.server.addr();
    let cases: Vec<(&'static str, Vec<u8>, bool)> = vec![
        ("connect and send nothing", Vec::new(), false),
        (
            "request head trickled one byte per 250 ms",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: {}\r\n\r\n",
                "s".repeat(80)
            )
            .into_bytes(),
            false,
        ),
        (
            "upgrade request whose head never ends",
            format!(
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {origin}\r\n{KEY}\r\n{}\r\n",
                UPGRADE.join("\r\n")
            )
            .into_bytes(),
            false,
        ),
        (
            "idle keep-alive connection after one request",
            format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").into_bytes(),
            true,
        ),
    ];
    let mut held = Vec::new();
    for (case, bytes, answered) in cases {
        let mut s = common::connect_from(addr, None).await;
        if answered {
            // Sent at once: answered, then the connection idles.
            s.write_all(&bytes).await.unwrap();
            held.push((
                case,
                answered,
                tokio::spawn(held_until_closed(s, Vec::new())),
            ));
        } else {
            held.push((case, answered, tokio::spawn(held_until_closed(s, bytes))));
        }
    }
    for (case, answered, task) in held {
        let (took, got) = task.await.unwrap();
        assert!(
            took >= Duration::from_millis(9_500) && took < Duration::from_secs(13),
            "{case}: closed after {took:?}"
        );
        if answered {
            assert!(
                got.starts_with(b"HTTP/1.1 200"),
                "{case}: {:?}",
                String::from_utf8_lossy(&got)
            );
        } else {
            assert!(
                got.is_empty(),
                "{case}: answered {:?}",
                String::from_utf8_lossy(&got)
            );
        }
        eprintln!("{case}: closed after {took:?}");
        arena.check(case).await;
    }
    arena.done("slow_loris_connections_are_closed_after_the_header_timeout");
}

// ---------------------------------------------------------------------------------------------
// Through the rendered nginx site: request smuggling, query strings in logs

/// One raw request to nginx: the statuses answered, in order, and the whole answer as text.
async fn via_nginx(site: &support::Site, request: &str) -> (Vec<u16>, String) {
    let bytes = site.tls_raw(request.as_bytes()).await;
    (
        support::statuses(&bytes),
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// Request-smuggling shapes sent over TLS to the real nginx running the rendered site, in front
/// of the real server. nginx refuses each ambiguous framing itself; a request hidden in a body
/// never reaches `alisay serve` (it would register a room: afterwards that room is still new).
#[tokio::test]
async fn smuggling_through_the_rendered_nginx_site_is_refused() {
    let (https_port, http_port) = support::Site::ports();
    let origin = format!("https://{}:{https_port}", support::SITE_NAME);
    let mut arena = Arena::start(&format!("allowed_origins: [\"{origin}\"]")).await;
    let site = support::Site::start(arena.server.port, https_port, http_port);
    let host = format!("Host: {}", support::SITE_NAME);
    let smuggled_room = room_id();
    let smuggled_body = json!({"roomId": smuggled_room}).to_string();
    let smuggled = format!(
        "POST /rooms HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{smuggled_body}",
        smuggled_body.len()
    );
    let post = format!(
        "POST /rooms HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n"
    );
    let body = json!({"roomId": room_id()}).to_string();
    let cases: Vec<(&'static str, String, Vec<u16>)> = vec![
        (
            "Content-Length and Transfer-Encoding together (CL.TE), smuggled request in the body",
            format!(
                "{post}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}",
                5 + smuggled.len()
            ),
            vec![400],
        ),
        (
            "Transfer-Encoding before Content-Length (TE.CL), smuggled request in the chunk",
            format!(
                "{post}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
                smuggled.len()
            ),
            vec![400],
        ),
        (
            "two different Content-Length headers",
            format!(
                "{post}Content-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
                body.len()
            ),
            vec![400],
        ),
        (
            "Transfer-Encoding: xchunked",
            format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
            vec![501],
        ),
        (
            "Transfer-Encoding: chunked, identity",
            format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
            vec![501],
        ),
        (
            "obsolete line folding of Transfer-Encoding",
            format!(
                "{post}Content-Length: {}\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\n\r\n{body}",
                body.len()
            ),
            vec![400],
        ),
        (
            "Transfer-Encoding on an HTTP/1.0 request",
            format!(
                "POST /rooms HTTP/1.0\r\n{host}\r\nOrigin: {origin}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            vec![400],
        ),
        (
            "chunk size that overflows 64 bits",
            format!(
                "{post}Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n{body}\r\n0\r\n\r\n"
            ),
            vec![400],
        ),
        (
            "/ws with a query string",
            format!(
                "GET /ws?roomId={smuggled_room} HTTP/1.1\r\n{host}\r\nOrigin: {origin}\r\n{KEY}\r\n{}\r\n\r\n",
                UPGRADE.join("\r\n")
            ),
            vec![400],
        ),
    ];
    for (case, request, want) in &cases {
        let (got, text) = via_nginx(&site, request).await;
        eprintln!("{case}: {got:?}");
        assert_eq!(&got, want, "{case}: {text}");
        if case.starts_with("/ws") {
            // Refused by alisay serve itself (nginx passed it on), before any upgrade.
            assert!(
                text.contains("no query string allowed on /ws"),
                "{case}: {text}"
            );
        }
        arena.check(case).await;
    }
    // The oracle works: a well-formed registration through nginx reaches the server, so the
    // same room posted directly afterwards is "already registered" (200).
    let case = "a well-formed POST /rooms through nginx (accepted)";
    let room = room_id();
    let body = json!({"roomId": room}).to_string();
    let (got, text) = via_nginx(
        &site,
        &format!(
            "{post}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(got, [201], "{case}: {text}");
    assert_eq!(arena.server.post_room(&room).await.status, 200, "{case}");
    arena.check(case).await;
    // The smuggled registration never reached the server: that room is still new.
    let r = arena.server.post_room(&smuggled_room).await;
    assert_eq!(r.status, 201, "a smuggled POST /rooms reached alisay serve");
    // The access log has every request, never a query string or the room id.
    drop(site.nginx);
    let access = std::fs::read_to_string(&site.access_log).unwrap();
    assert!(access.contains("\"GET /ws HTTP/1.1\" 400"), "{access}");
    assert!(
        !access.contains('?') && !access.contains(&smuggled_room),
        "{access}"
    );
    arena.done("smuggling_through_the_rendered_nginx_site_is_refused");
}

// ---------------------------------------------------------------------------------------------
// TURN is no one's relay: not to the host's own services either

/// Set (to anything) in the re-executed test inside its namespaces. Not `ALISAY_*`: the config
/// loader reads every variable with that prefix.
const IN_TURN_NETNS: &str = "HOSTILE_TURN_IN_NETNS";
/// The host's "public" address inside the test's namespace (outside every denied range).
const HOST_IP: &str = "100.128.0.1";
/// A service of the host's own, listening on its public address: a UDP echo.
const HOST_SERVICE_PORT: &str = "9999";
/// The cgroup the rendered nftables table names (systemd's for alisay-coturn.service).
const COTURN_CGROUP: &str = "system.slice/alisay-coturn.service";

/// coturn with the production policy relays, with valid credentials, to a service on the
/// host's own public address (it is not in any denied range: the finding). The rendered
/// nftables table (`nftables/alisay-coturn.nft`), loaded and with coturn in its unit's cgroup,
/// refuses exactly that, while a relay between two allocations (a relay-only call) still works
/// and other processes still reach the service.
///
/// Runs in network, mount and cgroup namespaces it creates (`unshare -n -m -C`, inside a
/// cgroup of its own that it removes afterwards): the host address exists only on a veth in
/// the namespace, and the cgroup `system.slice/alisay-coturn.service` only in that namespace's
/// view. Needs the kernel's nftables with `socket cgroupv2`, matching cgroup levels relative
/// to the cgroup namespace (as the 6.18 kernel it was written on does).
#[test]
fn turn_relays_nothing_to_the_hosts_own_services() {
    if std::env::var_os(IN_TURN_NETNS).is_some() {
        turn_host_in_namespace();
        return;
    }
    for program in [
        "unshare",
        "ip",
        "nft",
        "turnserver",
        "turnutils_uclient",
        "turnutils_peer",
    ] {
        support::require(program);
    }
    // A cgroup of our own at the root of the cgroup2 hierarchy; the namespace sees it as `/`.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let cgroup2 = mountinfo
        .lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next() == Some("cgroup2"))
                .then(|| pre.split_whitespace().nth(4))?
        })
        .expect("a cgroup2 mount (unified or hybrid hierarchy)")
        .to_owned();
    let cg = std::path::PathBuf::from(&cgroup2).join(format!(
        "alisay-hostile-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&cg).expect("create a test cgroup");
    let status = std::process::Command::new("timeout")
        .args(["120", "sh", "-c"])
        .arg("echo $$ > \"$TEST_CGROUP/cgroup.procs\" && exec unshare -n -m -C \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "turn_relays_nothing_to_the_hosts_own_services",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TEST_CGROUP", &cg)
        .env(IN_TURN_NETNS, "1")
        .status()
        .expect("run unshare");
    // Remove the test cgroup, deepest first (the namespace's processes have exited).
    for dir in [cg.join(COTURN_CGROUP), cg.join("system.slice"), cg.clone()] {
        let _ = std::fs::remove_dir(&dir);
    }
    assert!(!cg.exists(), "test cgroup {} left behind", cg.display());
    assert!(
        status.success(),
        "the TURN test inside the namespace failed: {status}"
    );
}

/// `(sent, received)` of the last totals line `turnutils_uclient` printed, if any.
fn try_uclient_totals(out: &str) -> Option<(u32, u32)> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("start_mclient: tot_send_msgs="))?;
    let num = |key: &str| -> Option<u32> {
        line.split(key)
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    Some((num("tot_send_msgs=")?, num("tot_recv_msgs=")?))
}

fn uclient_totals(out: &str) -> (u32, u32) {
    try_uclient_totals(out).unwrap_or_else(|| panic!("no totals in uclient output:\n{out}"))
}

/// `turnutils_uclient` with issued credentials; `peer` = None for client-to-client (`-y`).
fn uclient(creds: &alisay::turn::Credentials, peer: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("timeout");
    cmd.arg("20")
        .arg(support::require("turnutils_uclient"))
        .args(["-n", "3", "-m", "1", "-c", "-X"])
        .args(["-u", &creds.username, "-w", &creds.credential]);
    match peer {
        Some(p) => cmd.args(["-e", p, "-r", HOST_SERVICE_PORT]),
        None => cmd.arg("-y"),
    };
    let out = cmd.arg(HOST_IP).output().expect("run turnutils_uclient");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A datagram from this (un-cgrouped) process to the host service comes back.
fn host_service_echoes() -> bool {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(b"ping", format!("{HOST_IP}:{HOST_SERVICE_PORT}"))
        .unwrap();
    let mut buf = [0u8; 64];
    matches!(s.recv_from(&mut buf), Ok((4, _)))
}

fn sh(script: &str) {
    let o = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn turn_host_in_namespace() {
    use std::os::unix::fs::PermissionsExt;
    let links: Vec<String> = std::fs::read_to_string("/proc/self/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim().to_owned()))
        .collect();
    assert_eq!(links, ["lo"], "not in a fresh network namespace");
    // The namespace's own view of cgroups, with the unit's cgroup in it.
    sh(&format!(
        "mount -t cgroup2 none /sys/fs/cgroup && mkdir -p /sys/fs/cgroup/{COTURN_CGROUP}"
    ));
    // The host's public address, on a veth whose both ends stay in the namespace.
    sh(&format!(
        "ip link set lo up && ip link add h0 type veth peer name h1 && \
         ip addr add {HOST_IP}/24 dev h0 && ip link set h1 up && ip link set h0 up"
    ));

    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secret_path = tmp.path().join("turn-secret");
    std::fs::write(
        &secret_path,
        format!("host-{:016x}\n", rand::random::<u64>()),
    )
    .unwrap();
    std::fs::set_permissions(&secret_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile/turn-host.yaml");
    let alisay = std::path::Path::new(env!("CARGO_BIN_EXE_alisay"));
    let runtime = run_dir.join("turnserver.conf");
    let rendered = tmp.path().join("rendered");
    // coturn's runtime config as ExecStartPre writes it (runtime dir in the temp dir), and
    // the render as installed (the runtime dir stays the unit's /run/alisay-coturn).
    for (args, runtime_dir) in [
        (
            vec![
                "coturn-config",
                "--config",
                fixture.to_str().unwrap(),
                "--out",
                runtime.to_str().unwrap(),
            ],
            Some(&run_dir),
        ),
        (
            vec![
                "render",
                "--config",
                fixture.to_str().unwrap(),
                "--out",
                rendered.to_str().unwrap(),
            ],
            None,
        ),
    ] {
        let mut cmd = std::process::Command::new(alisay);
        cmd.args(&args)
            .env("ALISAY_TURN__SECRET_FILE", &secret_path);
        if let Some(dir) = runtime_dir {
            cmd.env("ALISAY_PATHS__COTURN_RUNTIME_DIR", dir);
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "alisay {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let nft_file = rendered.join("nftables/alisay-coturn.nft");
    let secret = alisay::turn::TurnSecret::from_file(&secret_path).unwrap();
    let issue = || {
        alisay::turn::credentials(
            &secret,
            &format!("{:012x}", rand::random::<u64>() >> 16),
            std::time::SystemTime::now(),
            Duration::from_secs(3600),
        )
    };

    let _service = support::Proc::spawn(
        "host service (UDP echo)",
        std::process::Command::new(support::require("turnutils_peer")).args([
            "-L",
            HOST_IP,
            "-p",
            HOST_SERVICE_PORT,
        ]),
        &tmp.path().join("service.log"),
    );
    let mut ready = false;
    for _ in 0..20 {
        if host_service_echoes() {
            ready = true;
            break;
        }
    }
    assert!(ready, "the host service does not echo");
    let start_coturn = |in_cgroup: bool, log: &str| {
        let cgroup = if in_cgroup {
            format!("echo $$ > /sys/fs/cgroup/{COTURN_CGROUP}/cgroup.procs && ")
        } else {
            String::new()
        };
        let coturn = support::Proc::spawn(
            "coturn",
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("{cgroup}exec \"$0\" -c \"$1\""))
                .arg(support::require("turnserver"))
                .arg(&runtime)
                .current_dir(tmp.path()),
            &tmp.path().join(log),
        );
        // Ready when an allocation with issued credentials relays between two allocations.
        for _ in 0..40 {
            if try_uclient_totals(&uclient(&issue(), None)).is_some_and(|(_, got)| got > 0) {
                return coturn;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("coturn did not relay:\n{}", coturn.output());
    };

    // 1. The finding: the production policy alone relays to the host's own service.
    let mut coturn = start_coturn(false, "coturn-without-nft.log");
    let out = uclient(&issue(), Some(HOST_IP));
    let without = uclient_totals(&out);
    assert_eq!(
        without,
        (3, 3),
        "relay to the host service without the table:\n{out}"
    );
    coturn.stop();
    eprintln!(
        "without the nftables table: relay to {HOST_IP}:{HOST_SERVICE_PORT} echoed {}/{}",
        without.1, without.0
    );

    // 2. The rendered table, loaded as the unit loads it, with coturn in its unit's cgroup.
    let nft = support::require("nft");
    support::run_ok(&nft, &["-c", "-f", nft_file.to_str().unwrap()]);
    support::run_ok(&nft, &["-f", nft_file.to_str().unwrap()]);
    // Loading again replaces the table (each service start reloads it).
    support::run_ok(&nft, &["-f", nft_file.to_str().unwrap()]);
    let coturn = start_coturn(true, "coturn-with-nft.log");
    let cgroup_line = std::fs::read_to_string(format!("/proc/{}/cgroup", coturn.pid())).unwrap();
    assert!(
        cgroup_line.contains(&format!("0::/{COTURN_CGROUP}\n")),
        "{cgroup_line}"
    );
    let out = uclient(&issue(), Some(HOST_IP));
    let with = uclient_totals(&out);
    assert_eq!(
        with,
        (3, 0),
        "relay to the host service with the table:\n{out}"
    );
    // A relay-only call: two allocations relaying to each other, on the relay port range.
    let out = uclient(&issue(), None);
    let call = uclient_totals(&out);
    assert_eq!(
        call,
        (6, 6),
        "relay between two allocations with the table:\n{out}"
    );
    // The table looks at coturn only: this process still reaches the service.
    assert!(
        host_service_echoes(),
        "the table blocked a process outside coturn's cgroup"
    );
    let listing = support::run_ok(
        &nft,
        &["list", "chain", "inet", "alisay_coturn", "coturn_to_host"],
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    let dropped: u64 = listing
        .split("counter packets ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no drop counter in {listing}"));
    assert!(dropped > 0, "nothing dropped:\n{listing}");
    eprintln!(
        "with the nftables table: relay to the host service echoed {}/{} ({dropped} packets dropped), \
         relay between two allocations {}/{}, direct clients unaffected",
        with.1, with.0, call.1, call.0
    );
    drop(coturn);
    sh(&format!(
        "rmdir /sys/fs/cgroup/{COTURN_CGROUP} /sys/fs/cgroup/system.slice"
    ));
}
