//! The signaling protocol (`docs/protocol.md`, SPEC §5-§6) against the real `alisay serve`
//! binary over real WebSockets: every rule and every error/close code has a test here that
//! fails if the rule breaks.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Got, Server, WAIT, op, room_id, started_pair, unix_now};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha1::Sha1;
use tokio::time::{Instant, sleep};

/// Open rooms on loopback: any well-formed room id is admitted (development only).
const OPEN: &str = "rooms: {allow_open_rooms: true}";

fn allowlist(ids: &[&str]) -> String {
    format!("rooms: {{allowlist: {ids:?}}}")
}

// ---------------------------------------------------------------------------------------------
// Admission

#[tokio::test]
async fn allowlisted_room_is_admitted_and_joined_describes_the_session() {
    let room = room_id();
    let server = Server::start(&allowlist(&[&room])).await;
    let mut a = server.ws().await;
    let joined = a.join(&room).await;
    let sid = joined["sessionId"].as_str().expect("sessionId");
    assert!(
        sid.len() == 32
            && sid
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "sessionId is 32 lowercase hex"
    );
    assert_eq!(joined["peerPresent"], false);
    assert_eq!(
        joined["iceServers"],
        json!([]),
        "no TURN, no STUN configured"
    );
    assert_eq!(joined["relayAvailable"], false, "no TURN configured");
    assert_eq!(joined["credentialExpiresAt"], Value::Null);
    assert_eq!(
        joined["heartbeatSeconds"], 20,
        "the default heartbeat_interval"
    );
    a.ping_pong().await;
}

#[tokio::test]
async fn rooms_neither_registered_nor_allowlisted_are_refused_4003() {
    let listed = room_id();
    let server = Server::start(&allowlist(&[&listed])).await;
    let mut a = server.ws().await;
    a.send(json!({"type": "join", "roomId": room_id()})).await;
    a.expect_error("room-not-allowed", 4003).await;
    // A registered room is admitted without being allowlisted.
    let generated = room_id();
    assert_eq!(server.post_room(&generated).await.status, 201);
    let mut b = server.ws().await;
    b.join(&generated).await;
}

#[tokio::test]
async fn heartbeat_gets_heartbeat_ack() {
    let server = Server::start(OPEN).await;
    let mut a = server.ws().await;
    a.join(&room_id()).await;
    for _ in 0..3 {
        a.ping_pong().await;
    }
}

#[tokio::test]
async fn third_joiner_gets_room_full_and_the_pair_notices_nothing() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let (mut a, mut b) = started_pair(&server, &room).await;
    let mut c = server.ws().await;
    c.send(json!({"type": "join", "roomId": room})).await;
    c.expect_error("room-full", 4004).await;
    // The two in the room got nothing at all: the next message each sees is its own ack.
    a.ping_pong().await;
    b.ping_pong().await;
    // And they still talk to each other.
    a.send(json!({"type": "offer", "sdp": "v=0\r\n"})).await;
    assert_eq!(b.expect("offer").await["sdp"], "v=0\r\n");
}

#[tokio::test]
async fn join_timeout_closes_4001() {
    let server = Server::start("signaling: {join_timeout: 300ms}").await;
    let mut a = server.ws().await;
    let t0 = Instant::now();
    a.expect_error("join-timeout", 4001).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "closed after {took:?}, configured 300ms"
    );
    // A socket that joins in time is not affected by the deadline.
    let mut b = server.ws().await;
    b.send(json!({"type": "join", "roomId": room_id()})).await;
    b.expect_error("room-not-allowed", 4003).await;
    let server = Server::start(&format!("{OPEN}\nsignaling: {{join_timeout: 300ms}}")).await;
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    sleep(Duration::from_millis(500)).await;
    c.ping_pong().await;
}

// ---------------------------------------------------------------------------------------------
// Strict parsing

/// Each case is sent by a socket that has joined a room alone, where the well-formed version
/// of the message would be accepted silently or answered: only the defect can cause the error.
#[tokio::test]
async fn malformed_messages_after_join_close_4000() {
    let server = Server::start(OPEN).await;
    let cases = [
        ("not json", "this is not json"),
        ("truncated json", r#"{"type":"ready""#),
        ("json array", r#"["ready"]"#),
        ("no type", r#"{"sdp":"v=0"}"#),
        ("unknown type", r#"{"type":"dance"}"#),
        ("type of wrong case", r#"{"type":"Ready"}"#),
        ("unknown field on ready", r#"{"type":"ready","x":1}"#),
        (
            "unknown field on heartbeat",
            r#"{"type":"heartbeat","x":null}"#,
        ),
        (
            "unknown field on hangup",
            r#"{"type":"hangup","reason":"x"}"#,
        ),
        (
            "unknown field on refresh-ice",
            r#"{"type":"refresh-ice","x":{}}"#,
        ),
        (
            "unknown field on offer",
            r#"{"type":"offer","sdp":"v=0","x":1}"#,
        ),
        ("wrong type of sdp", r#"{"type":"offer","sdp":5}"#),
        ("missing sdp", r#"{"type":"answer"}"#),
        ("empty sdp", r#"{"type":"offer","sdp":""}"#),
        (
            "duplicate field",
            r#"{"type":"offer","sdp":"v=0","sdp":"v=1"}"#,
        ),
        (
            "auth with +",
            r#"{"type":"offer","sdp":"v=0","auth":"a+b"}"#,
        ),
        (
            "auth with =",
            r#"{"type":"offer","sdp":"v=0","auth":"YWJj="}"#,
        ),
        ("empty auth", r#"{"type":"offer","sdp":"v=0","auth":""}"#),
        (
            "auth over 128",
            &format!(
                r#"{{"type":"offer","sdp":"v=0","auth":"{}"}}"#,
                "a".repeat(129)
            ),
        ),
        (
            "unknown candidate field",
            r#"{"type":"ice","candidate":{"candidate":"x","foo":1}}"#,
        ),
        (
            "candidate of wrong type",
            r#"{"type":"ice","candidate":"candidate:1"}"#,
        ),
        ("missing candidate", r#"{"type":"ice"}"#),
        (
            "candidate as an array",
            r#"{"type":"ice","candidate":["candidate:1","0",0]}"#,
        ),
        ("message as an array with fields", r#"["offer","v=0"]"#),
        (
            "negative sdpMLineIndex",
            r#"{"type":"ice","candidate":{"candidate":"x","sdpMLineIndex":-1}}"#,
        ),
        (
            "sdpMid over 64",
            &format!(
                r#"{{"type":"ice","candidate":{{"candidate":"x","sdpMid":"{}"}}}}"#,
                "m".repeat(65)
            ),
        ),
        (
            "ufrag over 256",
            &format!(
                r#"{{"type":"ice","candidate":{{"candidate":"x","usernameFragment":"{}"}}}}"#,
                "u".repeat(257)
            ),
        ),
        ("server-only type", r#"{"type":"heartbeat-ack"}"#),
    ];
    for (what, text) in cases {
        let mut c = server.ws().await;
        c.join(&room_id()).await;
        c.send_text(text).await;
        let got = c.next_within(WAIT).await;
        let got = got.unwrap_or_else(|| panic!("{what}: no answer"));
        match got {
            Got::Json(v, _) => {
                assert_eq!(v["type"], "error", "{what}: got {v}");
                assert_eq!(v["code"], "invalid-message", "{what}: got {v}");
            }
            other => panic!("{what}: expected an error, got {other:?}"),
        }
        match c.next().await {
            Got::Close(Some(code)) => assert_eq!(code, 4000, "{what}"),
            other => panic!("{what}: expected close 4000, got {other:?}"),
        }
    }
    // The well-formed versions of the same messages are accepted (no error, socket open).
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    for ok in [
        r#"{"type":"ready"}"#,
        r#"{ "type" : "ready" }"#,
        r#"{"type":"refresh-ice"}"#,
    ] {
        c.send_text(ok).await;
    }
    // refresh-ice is answered (with an empty list: no TURN here).
    assert_eq!(c.expect("ice-servers").await["iceServers"], json!([]));
    c.ping_pong().await;
}

#[tokio::test]
async fn anything_but_join_first_closes_4000() {
    let server = Server::start(OPEN).await;
    for first in [
        json!({"type": "ready"}),
        json!({"type": "heartbeat"}),
        json!({"type": "refresh-ice"}),
        json!({"type": "offer", "sdp": "v=0"}),
        json!({"type": "ice", "candidate": null}),
        json!({"type": "hangup"}),
    ] {
        let mut c = server.ws().await;
        c.send(first.clone()).await;
        match c.next().await {
            Got::Json(v, _) => {
                assert_eq!(v["code"], "invalid-message", "first {first}: got {v}");
            }
            other => panic!("first {first}: got {other:?}"),
        }
        assert!(
            matches!(c.next().await, Got::Close(Some(4000))),
            "first {first}"
        );
    }
    // A bad join as the first message is refused the same way.
    for bad in [
        json!({"type": "join", "roomId": room_id().to_uppercase()}),
        json!({"type": "join", "roomId": &room_id()[..63]}),
        json!({"type": "join", "roomId": format!("{}0", room_id())}),
        json!({"type": "join", "roomId": room_id(), "resume": "not-a-session"}),
        json!({"type": "join", "roomId": room_id(), "extra": true}),
        json!({"type": "join"}),
    ] {
        let mut c = server.ws().await;
        c.send(bad.clone()).await;
        c.expect_error("invalid-message", 4000).await;
    }
}

#[tokio::test]
async fn join_twice_closes_4000_and_frees_the_slot() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut a = server.ws().await;
    a.join(&room).await;
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    b.send(json!({"type": "join", "roomId": room})).await;
    b.expect_error("invalid-message", 4000).await;
    a.expect("peer-left").await;
    // Also when the second join names another room.
    let mut c = server.ws().await;
    c.join(&room).await;
    a.expect("peer-joined").await;
    c.send(json!({"type": "join", "roomId": room_id()})).await;
    c.expect_error("invalid-message", 4000).await;
    a.expect("peer-left").await;
}

#[tokio::test]
async fn binary_frames_close_4000() {
    let server = Server::start(OPEN).await;
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    c.ws.send(tokio_tungstenite::tungstenite::Message::Binary(
        br#"{"type":"heartbeat"}"#.to_vec().into(),
    ))
    .await
    .expect("send binary");
    c.expect_error("invalid-message", 4000).await;
    // Before join too.
    let mut raw = server.raw_ws().await;
    raw.send_frame(true, op::BINARY, b"\x00\x01").await;
    let (texts, code) = raw.until_close(WAIT).await;
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0]["code"], "invalid-message");
    assert_eq!(code, Some(4000));
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_4000() {
    let server = Server::start(OPEN).await;
    let mut raw = server.raw_ws().await;
    raw.send_frame(true, op::TEXT, b"{\"type\":\"he\xffartbeat\"}")
        .await;
    let (texts, code) = raw.until_close(WAIT).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["code"], "invalid-message");
    assert_eq!(code, Some(4000));
}

// ---------------------------------------------------------------------------------------------
// Sizes

use futures_util::SinkExt;

const SMALL_LIMITS: &str = "rooms: {allow_open_rooms: true}\n\
     signaling: {max_message_bytes: 4KiB, max_sdp_bytes: 2KiB}";

fn offer_with_sdp(len: usize) -> String {
    // A real-looking SDP padded to exactly `len` bytes.
    let mut sdp = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=x:");
    while sdp.len() < len - 2 {
        sdp.push('p');
    }
    sdp.push_str("\r\n");
    assert_eq!(sdp.len(), len);
    json!({"type": "offer", "sdp": sdp}).to_string()
}

#[tokio::test]
async fn message_over_max_message_bytes_closes_4009() {
    let server = Server::start(SMALL_LIMITS).await;
    // One frame over 4 KiB.
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    c.send_text(format!(
        r#"{{"type":"heartbeat","x":"{}"}}"#,
        "a".repeat(4200)
    ))
    .await;
    c.expect_error("message-too-big", 4009).await;
    // A message of small fragments whose total is over 4 KiB.
    let mut raw = server.raw_ws().await;
    raw.send_text(&json!({"type": "join", "roomId": room_id()}).to_string())
        .await;
    assert_eq!(raw.recv().await["type"], "joined");
    let chunk = vec![b'a'; 1500];
    raw.send_frame(false, op::TEXT, &chunk).await;
    raw.send_frame(false, op::CONT, &chunk).await;
    raw.send_frame(true, op::CONT, &chunk).await;
    let (texts, code) = raw.until_close(WAIT).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0]["code"], "message-too-big");
    assert_eq!(code, Some(4009));
    // Before join as well.
    let mut d = server.ws().await;
    d.send_text("x".repeat(5000)).await;
    d.expect_error("message-too-big", 4009).await;
}

#[tokio::test]
async fn default_limits_64k_message_and_32k_sdp() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let (mut a, mut b) = started_pair(&server, &room).await;
    // An SDP of exactly 32 KiB is relayed.
    a.send_text(offer_with_sdp(32 * 1024)).await;
    assert_eq!(
        b.expect("offer").await["sdp"].as_str().unwrap().len(),
        32 * 1024
    );
    // One byte more is refused.
    a.send_text(offer_with_sdp(32 * 1024 + 1)).await;
    a.expect_error("message-too-big", 4009).await;
    b.expect("peer-left").await;
    // A 64 KiB + 1 message is refused.
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    let pad = 64 * 1024 + 1 - r#"{"type":"heartbeat","x":""}"#.len();
    c.send_text(format!(
        r#"{{"type":"heartbeat","x":"{}"}}"#,
        "a".repeat(pad)
    ))
    .await;
    c.expect_error("message-too-big", 4009).await;
}

#[tokio::test]
async fn sdp_over_max_sdp_bytes_and_big_candidates_close_4009() {
    let server = Server::start(SMALL_LIMITS).await;
    let room = room_id();
    let (mut a, mut b) = started_pair(&server, &room).await;
    // At the limit: relayed.
    a.send_text(offer_with_sdp(2048)).await;
    assert_eq!(b.expect("offer").await["sdp"].as_str().unwrap().len(), 2048);
    // A candidate of exactly 1 KiB is relayed.
    let cand = format!("candidate:{}", "1".repeat(1024 - 10));
    a.send(json!({"type": "ice", "candidate": {"candidate": cand}}))
        .await;
    assert_eq!(
        b.expect("ice").await["candidate"]["candidate"]
            .as_str()
            .unwrap()
            .len(),
        1024
    );
    // An answer SDP over 2 KiB (in a message under 4 KiB) is refused.
    b.send_text(offer_with_sdp(2049).replace("\"offer\"", "\"answer\""))
        .await;
    b.expect_error("message-too-big", 4009).await;
    a.expect("peer-left").await;
    // A candidate over 1 KiB is refused, also before `start`.
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    let cand = format!("candidate:{}", "1".repeat(1025 - 10));
    c.send(json!({"type": "ice", "candidate": {"candidate": cand}}))
        .await;
    c.expect_error("message-too-big", 4009).await;
}

// ---------------------------------------------------------------------------------------------
// Negotiation and relay

#[tokio::test]
async fn relay_before_start_is_not_ready_and_the_socket_stays_open() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut a = server.ws().await;
    a.join(&room).await;
    // Alone in the room.
    for msg in [
        json!({"type": "offer", "sdp": "v=0"}),
        json!({"type": "answer", "sdp": "v=0"}),
        json!({"type": "ice", "candidate": null}),
    ] {
        a.send(msg).await;
        let e = a.expect("error").await;
        assert_eq!(e["code"], "not-ready");
    }
    a.ping_pong().await;
    // With a peer that is not ready yet: still refused, and the peer is told nothing.
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    a.send(json!({"type": "ready"})).await;
    a.send(json!({"type": "offer", "sdp": "v=0"})).await;
    assert_eq!(a.expect("error").await["code"], "not-ready");
    a.ping_pong().await;
    b.ping_pong().await;
    // Once both are ready, the same offer goes through.
    b.send(json!({"type": "ready"})).await;
    a.expect("start").await;
    b.expect("start").await;
    a.send(json!({"type": "offer", "sdp": "v=0"})).await;
    b.expect("offer").await;
}

#[tokio::test]
async fn start_reaches_both_only_when_both_are_ready_and_the_later_joiner_is_polite() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut first = server.ws().await;
    first.join(&room).await;
    let mut second = server.ws().await;
    second.join(&room).await;
    first.expect("peer-joined").await;
    // The later joiner says ready first: nobody starts yet.
    second.send(json!({"type": "ready"})).await;
    second.ping_pong().await;
    first.ping_pong().await;
    first.send(json!({"type": "ready"})).await;
    assert_eq!(
        first.expect("start").await,
        json!({"type": "start", "polite": false})
    );
    assert_eq!(
        second.expect("start").await,
        json!({"type": "start", "polite": true})
    );
    // A peer leaves and a new one comes: start again once both are ready, the newcomer polite.
    drop(second);
    first.expect("peer-left").await;
    let mut third = server.ws().await;
    third.join(&room).await;
    first.expect("peer-joined").await;
    third.send(json!({"type": "ready"})).await;
    assert_eq!(first.expect("start").await["polite"], false);
    assert_eq!(third.expect("start").await["polite"], true);
}

#[tokio::test]
async fn offer_answer_and_ice_are_relayed_intact_and_reserialized() {
    let server = Server::start(OPEN).await;
    let (mut a, mut b) = started_pair(&server, &room_id()).await;
    let sdp = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\na=\"quoted\" \\ \u{e9}\r\n";
    // Odd spacing and key order: what arrives is the server's own serialization.
    a.send_text(format!(
        "  {{ \"auth\" : \"abc-_09\",\n \"sdp\": {}, \"type\":\"offer\" }} ",
        serde_json::to_string(sdp).unwrap()
    ))
    .await;
    match b.next().await {
        Got::Json(v, text) => {
            assert_eq!(v, json!({"type": "offer", "sdp": sdp, "auth": "abc-_09"}));
            assert_eq!(
                text,
                format!(
                    r#"{{"type":"offer","sdp":{},"auth":"abc-_09"}}"#,
                    serde_json::to_string(sdp).unwrap()
                ),
                "re-serialized by the server: type, sdp, auth, compact"
            );
        }
        other => panic!("expected the offer, got {other:?}"),
    }
    let auth = "A".repeat(128);
    b.send(json!({"type": "answer", "sdp": "v=0\r\n", "auth": auth}))
        .await;
    assert_eq!(
        a.expect("answer").await,
        json!({"type": "answer", "sdp": "v=0\r\n", "auth": auth})
    );
    // Without auth, no auth key appears.
    b.send(json!({"type": "answer", "sdp": "v=0\r\n"})).await;
    assert_eq!(
        a.expect("answer").await,
        json!({"type": "answer", "sdp": "v=0\r\n"})
    );
    let cand = json!({
        "candidate": "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sXv1",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "sXv1"
    });
    a.send(json!({"type": "ice", "candidate": cand})).await;
    assert_eq!(
        b.expect("ice").await,
        json!({"type": "ice", "candidate": cand})
    );
    // Only some fields: absent ones stay absent.
    let partial =
        json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMLineIndex": 1});
    b.send(json!({"type": "ice", "candidate": partial})).await;
    assert_eq!(
        a.expect("ice").await,
        json!({"type": "ice", "candidate": partial})
    );
    // End of candidates.
    a.send(json!({"type": "ice", "candidate": null})).await;
    match b.next().await {
        Got::Json(_, text) => assert_eq!(text, r#"{"type":"ice","candidate":null}"#),
        other => panic!("{other:?}"),
    }
    // The sender gets nothing back.
    a.ping_pong().await;
    b.ping_pong().await;
}

#[tokio::test]
async fn hangup_relays_hangup_then_peer_left_and_closes_1000() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let (mut a, mut b) = started_pair(&server, &room).await;
    a.send(json!({"type": "hangup"})).await;
    a.expect_close(1000).await;
    assert_eq!(b.recv().await, json!({"type": "hangup"}));
    assert_eq!(b.recv().await, json!({"type": "peer-left"}));
    b.ping_pong().await;
    // The slot is free: somebody else can come in.
    let mut c = server.ws().await;
    assert_eq!(c.join(&room).await["peerPresent"], true);
    b.expect("peer-joined").await;
}

/// Before `start` there is nothing to relay, but `hangup` still means "leave the room": the
/// slot is freed, the socket closed with 1000, and the peer hears only `peer-left`.
#[tokio::test]
async fn hangup_before_start_leaves_the_room_without_relaying() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut alone = server.ws().await;
    alone.join(&room).await;
    alone.send(json!({"type": "hangup"})).await;
    alone.expect_close(1000).await;
    let mut a = server.ws().await;
    assert_eq!(
        a.join(&room).await["peerPresent"],
        false,
        "the slot was freed"
    );
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    a.send(json!({"type": "ready"})).await;
    b.send(json!({"type": "hangup"})).await;
    b.expect_close(1000).await;
    assert_eq!(a.recv().await, json!({"type": "peer-left"}));
    a.ping_pong().await;
}

#[tokio::test]
async fn socket_close_sends_peer_left_at_once() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let (a, mut b) = started_pair(&server, &room).await;
    let t0 = Instant::now();
    drop(a); // TCP close without a close frame
    b.expect("peer-left").await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
    // And with a proper close handshake, which the server answers.
    let mut c = server.ws().await;
    c.join(&room).await;
    b.expect("peer-joined").await;
    c.ws.close(None).await.expect("close");
    match c.next().await {
        Got::Close(_) | Got::Ended(_) => {}
        other => panic!("{other:?}"),
    }
    b.expect("peer-left").await;
}

#[tokio::test]
async fn client_close_handshake_is_answered() {
    let server = Server::start(OPEN).await;
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    c.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000.into(),
        reason: "".into(),
    }))
    .await
    .expect("send close");
    // The server echoes the close frame (RFC 6455 §5.5.1), so the close is clean.
    match c.next().await {
        Got::Close(Some(code)) => assert_eq!(code, 1000),
        other => panic!("expected the echoed close frame, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Rates

#[tokio::test]
async fn per_socket_message_rate_closes_4008() {
    let server = Server::start(OPEN).await;
    let mut c = server.ws().await;
    c.join(&room_id()).await; // 1 token of the burst of 40
    // 44 more, back to back: 39 fit in the burst (plus whatever 20/s refills meanwhile, which
    // is well under one token per 50 ms), the rest do not.
    let t0 = Instant::now();
    for _ in 0..44 {
        if !c.try_send_text(r#"{"type":"heartbeat"}"#).await {
            break;
        }
    }
    let spread = t0.elapsed();
    let mut acks = 0;
    loop {
        match c.next().await {
            Got::Json(v, _) if v["type"] == "heartbeat-ack" => acks += 1,
            Got::Json(v, _) => {
                assert_eq!(v["code"], "rate-limited", "{v}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let refilled = (spread.as_secs_f64() * 20.0).ceil() as usize;
    assert!(
        (39..=39 + refilled + 1).contains(&acks),
        "{acks} acks for a burst of 40 (sent within {spread:?})"
    );
    c.expect_close(4008).await;
}

#[tokio::test]
async fn per_ip_join_rate_closes_4008() {
    let server = Server::start(
        "rooms: {allow_open_rooms: true}\nsignaling: {join_rate: {per_second: 0.01, burst: 3}}",
    )
    .await;
    for _ in 0..3 {
        let mut c = server.ws().await;
        c.join(&room_id()).await;
    }
    let mut c = server.ws().await;
    c.send(json!({"type": "join", "roomId": room_id()})).await;
    c.expect_error("rate-limited", 4008).await;
    // POST /rooms draws from the same bucket.
    assert_eq!(server.post_room(&room_id()).await.status, 429);
    // Another client address (as told by the trusted local proxy) has its own bucket.
    let mut d = server
        .ws_from(
            IpAddr::from([127, 0, 0, 1]),
            &[("x-forwarded-for", "198.51.100.20")],
        )
        .await;
    d.join(&room_id()).await;
}

#[tokio::test]
async fn refresh_ice_is_rate_limited_4008() {
    let server = Server::start(
        "rooms: {allow_open_rooms: true}\n\
         turn: {urls: [\"turn:127.0.0.1:3478?transport=udp\"], secret_file: \"@SECRET_FILE@\"}",
    )
    .await;
    let mut c = server.ws().await;
    c.join(&room_id()).await;
    for _ in 0..3 {
        c.send(json!({"type": "refresh-ice"})).await;
        c.expect("ice-servers").await;
    }
    c.send(json!({"type": "refresh-ice"})).await;
    c.expect_error("rate-limited", 4008).await;
}

// ---------------------------------------------------------------------------------------------
// TURN credentials

fn hmac_sha1_b64(secret: &[u8], text: &str) -> String {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).unwrap();
    mac.update(text.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks one `iceServers` list: the TURN entry has the configured URLs and TURN REST
/// credentials that verify with the secret; returns (username, expiry).
fn check_turn_entry(server: &Server, list: &Value, room: &str, ttl: u64) -> (String, u64) {
    let list = list.as_array().expect("iceServers array");
    assert_eq!(list.len(), 2, "TURN entry and STUN entry: {list:?}");
    let turn = &list[0];
    assert_eq!(
        turn["urls"],
        json!([
            "turn:127.0.0.1:3478?transport=udp",
            "turn:127.0.0.1:3478?transport=tcp"
        ])
    );
    let username = turn["username"].as_str().expect("username");
    let credential = turn["credential"].as_str().expect("credential");
    let (expiry, label) = username.split_once(':').expect("<expiry>:<label>");
    let expiry: u64 = expiry.parse().expect("expiry is unix seconds");
    let now = unix_now();
    assert!(
        expiry >= now + ttl - 5 && expiry <= now + ttl + 1,
        "expiry {expiry} is now ({now}) + {ttl}s"
    );
    assert!(!label.is_empty(), "a label");
    assert!(
        !room.contains(label) && !label.contains(&room[..16]),
        "label is not the room id"
    );
    assert_eq!(
        credential,
        hmac_sha1_b64(server.secret.as_bytes(), username),
        "credential = base64(HMAC-SHA1(secret, username))"
    );
    // STUN entry: only the URL, no credentials.
    assert_eq!(list[1], json!({"urls": ["stun:127.0.0.1:3478"]}));
    (username.to_owned(), expiry)
}

const TURN: &str = "rooms: {allow_open_rooms: true}\n\
    turn:\n  urls: [\"turn:127.0.0.1:3478?transport=udp\", \"turn:127.0.0.1:3478?transport=tcp\"]\n  \
    stun_urls: [\"stun:127.0.0.1:3478\"]\n  secret_file: \"@SECRET_FILE@\"\n  credential_ttl: 10m\n";

#[tokio::test]
async fn joined_and_refresh_ice_carry_turn_rest_credentials() {
    let server = Server::start(TURN).await;
    let room = room_id();
    let mut a = server.ws().await;
    let joined = a.join(&room).await;
    assert_eq!(joined["relayAvailable"], true);
    let (user1, expiry1) = check_turn_entry(&server, &joined["iceServers"], &room, 600);
    assert_eq!(joined["credentialExpiresAt"], expiry1);
    // Two sessions get different labels.
    let mut b = server.ws().await;
    let joined_b = b.join(&room).await;
    a.expect("peer-joined").await;
    let (user_b, _) = check_turn_entry(&server, &joined_b["iceServers"], &room, 600);
    assert_ne!(
        user1.split_once(':').unwrap().1,
        user_b.split_once(':').unwrap().1,
        "labels are per session"
    );
    // refresh-ice: fresh, valid credentials (a later expiry once a second has passed).
    sleep(Duration::from_millis(1100)).await;
    a.send(json!({"type": "refresh-ice"})).await;
    let fresh = a.expect("ice-servers").await;
    let (user2, expiry2) = check_turn_entry(&server, &fresh["iceServers"], &room, 600);
    assert_eq!(fresh["credentialExpiresAt"], expiry2);
    assert!(expiry2 > expiry1, "fresh credentials expire later");
    assert_ne!(user1, user2);
    server.assert_logs_free_of(&[("TURN secret", &server.secret), ("room id", &room)]);
}

// ---------------------------------------------------------------------------------------------
// Reconnecting

#[tokio::test]
async fn resume_replaces_the_old_socket_and_the_peer_is_not_told() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut a = server.ws().await;
    let sid = a.join(&room).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    a.send(json!({"type": "ready"})).await;
    b.send(json!({"type": "ready"})).await;
    a.expect("start").await;
    b.expect("start").await;
    // A's second socket resumes the session (a reload faster than the close).
    let mut a2 = server.ws().await;
    a2.send(json!({"type": "join", "roomId": room, "resume": sid}))
        .await;
    let joined = a2.expect("joined").await;
    assert_eq!(joined["sessionId"], sid.as_str(), "same session");
    assert_eq!(joined["peerPresent"], true);
    assert_eq!(a.recv().await, json!({"type": "bye", "reason": "replaced"}));
    a.expect_close(4010).await;
    // B was told nothing: no peer-left, no peer-joined.
    b.ping_pong().await;
    // Once the resumed side is ready again, both get start again with the same roles.
    a2.send(json!({"type": "ready"})).await;
    assert_eq!(a2.expect("start").await["polite"], false);
    assert_eq!(b.expect("start").await["polite"], true);
    a2.send(json!({"type": "offer", "sdp": "v=0"})).await;
    b.expect("offer").await;
    // The room is still full for strangers.
    let mut c = server.ws().await;
    c.send(json!({"type": "join", "roomId": room})).await;
    c.expect_error("room-full", 4004).await;
}

#[tokio::test]
async fn resume_of_another_rooms_or_an_unknown_session_is_a_plain_join() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let other = room_id();
    let mut a = server.ws().await;
    let sid_a = a.join(&room).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    // A session of `room` presented for `other`: a plain join there, nobody evicted.
    let mut c = server.ws().await;
    c.send(json!({"type": "join", "roomId": other, "resume": sid_a}))
        .await;
    let joined = c.expect("joined").await;
    assert_ne!(joined["sessionId"], sid_a.as_str());
    assert_eq!(joined["peerPresent"], false);
    // An unknown session for the full room: a plain join, so room-full.
    let mut d = server.ws().await;
    d.send(json!({"type": "join", "roomId": room, "resume": "0".repeat(32)}))
        .await;
    d.expect_error("room-full", 4004).await;
    a.ping_pong().await;
    b.ping_pong().await;
    // An unknown session for a room with space: a plain join with a new session.
    let mut e = server.ws().await;
    e.send(json!({"type": "join", "roomId": other, "resume": "f".repeat(32)}))
        .await;
    let joined = e.expect("joined").await;
    assert_ne!(joined["sessionId"], "f".repeat(32));
    assert_eq!(joined["peerPresent"], true);
    c.expect("peer-joined").await;
}

#[tokio::test]
async fn resume_after_the_slot_was_freed_is_a_plain_join() {
    let server = Server::start(OPEN).await;
    let room = room_id();
    let mut a = server.ws().await;
    let sid = a.join(&room).await["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut b = server.ws().await;
    b.join(&room).await;
    a.expect("peer-joined").await;
    drop(a);
    b.expect("peer-left").await;
    let mut a2 = server.ws().await;
    a2.send(json!({"type": "join", "roomId": room, "resume": sid}))
        .await;
    let joined = a2.expect("joined").await;
    assert_ne!(joined["sessionId"], sid.as_str(), "a new session");
    b.expect("peer-joined").await;
}

// ---------------------------------------------------------------------------------------------
// Capacity and expiry

#[tokio::test]
async fn max_active_rooms_gives_server_busy_4013() {
    let (r1, r2) = (room_id(), room_id());
    let server = Server::start(&format!(
        "rooms: {{allowlist: [\"{r1}\", \"{r2}\"], max_active: 1}}"
    ))
    .await;
    let mut a = server.ws().await;
    a.join(&r1).await;
    let mut b = server.ws().await;
    b.send(json!({"type": "join", "roomId": r2})).await;
    b.expect_error("server-busy", 4013).await;
    assert_eq!(server.post_room(&room_id()).await.status, 503);
    // The active room still admits its second caller.
    let mut c = server.ws().await;
    c.join(&r1).await;
    // Once the room empties, capacity is back.
    drop(a);
    drop(c);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut d = server.ws().await;
        d.send(json!({"type": "join", "roomId": r2})).await;
        match d.next().await {
            Got::Json(v, _) if v["type"] == "joined" => break,
            _ if Instant::now() < deadline => sleep(Duration::from_millis(50)).await,
            other => panic!("capacity not freed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn reservation_expires_after_reservation_ttl() {
    let server = Server::start("rooms: {generated: {reservation_ttl: 1s}}").await;
    let (stale, fresh) = (room_id(), room_id());
    let r = server.post_room(&stale).await;
    assert_eq!(r.status, 201);
    let expires = r.json()["expiresAt"].as_u64().expect("expiresAt");
    assert!(expires <= unix_now() + 2, "expiresAt is about now + 1s");
    sleep(Duration::from_millis(2300)).await; // ttl + one housekeeping tick + margin
    let mut a = server.ws().await;
    a.send(json!({"type": "join", "roomId": stale})).await;
    a.expect_error("room-not-allowed", 4003).await;
    // Within the ttl, a reservation admits.
    assert_eq!(server.post_room(&fresh).await.status, 201);
    let mut b = server.ws().await;
    b.join(&fresh).await;
    // A joined room no longer expires as a reservation.
    sleep(Duration::from_millis(2300)).await;
    b.ping_pong().await;
    let mut c = server.ws().await;
    assert_eq!(c.join(&fresh).await["peerPresent"], true);
}

#[tokio::test]
async fn idle_rooms_close_with_bye_idle_4011_and_heartbeats_keep_them() {
    let server = Server::start(
        "rooms: {allow_open_rooms: true, idle_ttl: 2s}\nsignaling: {heartbeat_interval: 1s}",
    )
    .await;
    let (idle, busy) = (room_id(), room_id());
    let mut a = server.ws().await;
    // The room's last activity is `a`'s join, which arrives no earlier than this.
    let t0 = Instant::now();
    a.join(&idle).await;
    let mut b = server.ws().await;
    b.join(&busy).await;
    // `b` sends heartbeats; `a` only answers pings (reads) and sends nothing.
    let keep = tokio::spawn(async move {
        for _ in 0..8 {
            b.ping_pong().await;
            sleep(Duration::from_millis(400)).await;
        }
        b
    });
    assert_eq!(a.recv().await, json!({"type": "bye", "reason": "idle"}));
    a.expect_close(4011).await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_millis(3500),
        "idle close after {took:?} for idle_ttl 2s"
    );
    let mut b = keep.await.expect("heartbeats kept the room");
    b.ping_pong().await;
    // The expired room is gone: joining it again starts a new, empty room.
    let mut c = server.ws().await;
    assert_eq!(c.join(&idle).await["peerPresent"], false);
}

// ---------------------------------------------------------------------------------------------
// Liveness, slow consumers, shutdown

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed_4002() {
    let server =
        Server::start("rooms: {allow_open_rooms: true}\nsignaling: {heartbeat_interval: 1s}").await;
    let room = room_id();
    // `dead` reads (to see what happens) but never answers a ping: a half-open client.
    let mut dead = server.raw_ws().await;
    // The server last hears from `dead` when its join arrives, so no earlier than this.
    let t0 = Instant::now();
    dead.send_text(&json!({"type": "join", "roomId": room}).to_string())
        .await;
    assert_eq!(dead.recv().await["type"], "joined");
    // `alive` only reads, so tungstenite answers the pings; it sends no message.
    let mut alive = server.ws().await;
    alive.join(&room).await;
    assert_eq!(dead.recv().await["type"], "peer-joined");
    let watcher = tokio::spawn(async move {
        // Reading keeps answering pings; the first message must be peer-left.
        match alive.next_within(Duration::from_secs(8)).await {
            Some(Got::Json(v, _)) => assert_eq!(v["type"], "peer-left"),
            other => panic!("alive got {other:?}"),
        }
        alive.ping_pong().await;
    });
    let mut pings = 0;
    let code = loop {
        match dead.read_frame(Duration::from_secs(6)).await {
            Some((op::PING, _)) => pings += 1,
            Some((op::CLOSE, p)) => break u16::from_be_bytes([p[0], p[1]]),
            Some((op::TEXT, t)) => panic!("unexpected {}", String::from_utf8_lossy(&t)),
            other => panic!("no close within 6 s: {other:?}"),
        }
    };
    let took = t0.elapsed();
    assert_eq!(code, 4002);
    assert!(pings >= 2, "the server pinged ({pings})");
    assert!(
        took >= Duration::from_millis(2950) && took < Duration::from_millis(5500),
        "closed after {took:?}, 3 x heartbeat is 3 s"
    );
    // The live client was kept, and told that the dead one left.
    watcher.await.expect("alive client kept and told");
}

#[tokio::test]
async fn a_peer_that_does_not_read_is_dropped_and_memory_stays_bounded() {
    let server = Server::start(
        "rooms: {allow_open_rooms: true}\n\
         signaling: {message_rate: {per_second: 100000, burst: 100000}, outbox_messages: 8}",
    )
    .await;
    let room = room_id();
    // `slow` joins and says ready, then never reads again.
    let mut slow = server.raw_ws().await;
    slow.send_text(&json!({"type": "join", "roomId": room}).to_string())
        .await;
    assert_eq!(slow.recv().await["type"], "joined");
    let mut fast = server.ws().await;
    fast.join(&room).await;
    assert_eq!(slow.recv().await["type"], "peer-joined");
    slow.send_text(r#"{"type":"ready"}"#).await;
    fast.send(json!({"type": "ready"})).await;
    fast.expect("start").await;
    let rss_before = rss_kib(server.pid());
    // Flood 30 KB offers until the server drops `slow` (fast then sees peer-left).
    let offer = offer_with_sdp(30 * 1024);
    let t0 = Instant::now();
    let mut sent = 0usize;
    let left = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "slow peer never dropped"
        );
        if sent < 4000 && fast.try_send_text(offer.clone()).await {
            sent += 1;
        }
        match fast.next_within(Duration::from_millis(1)).await {
            None => continue,
            Some(Got::Json(v, _)) if v["type"] == "peer-left" => break t0.elapsed(),
            Some(Got::Json(v, _)) if v["type"] == "error" && v["code"] == "not-ready" => continue,
            Some(other) => panic!("fast got {other:?}"),
        }
    };
    let rss_after = rss_kib(server.pid());
    eprintln!(
        "slow consumer dropped after {left:?}, {sent} offers sent; server RSS {rss_before} -> {rss_after} KiB"
    );
    // The outbox (8 messages) overflows within a few socket buffers' worth of offers; the
    // task must not wait out its 10 s write timeout on the blocked socket.
    assert!(
        left < Duration::from_secs(4),
        "slow peer dropped only after {left:?}"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "server memory grew by {} KiB",
        rss_after - rss_before
    );
    // The slow socket was closed (4012 close frame or a plain TCP close).
    let (_, code) = slow.until_close(Duration::from_secs(15)).await;
    assert!(matches!(code, Some(4012) | None), "close {code:?}");
    // Offers sent after the peer left were refused with not-ready; then the socket works.
    fast.send(json!({"type": "heartbeat"})).await;
    loop {
        let v = fast.recv().await;
        if v["type"] == "heartbeat-ack" {
            break;
        }
        assert_eq!(v["code"], "not-ready", "{v}");
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn sigterm_says_bye_restart_closes_1012_and_exits_0() {
    let mut server = Server::start(&format!("{OPEN}\nserver: {{shutdown_grace: 2s}}")).await;
    let room = room_id();
    let (mut a, mut b) = started_pair(&server, &room).await;
    let mut lone = server.ws().await;
    lone.join(&room_id()).await;
    let mut waiting = server.ws().await; // not joined yet
    let t0 = Instant::now();
    server.terminate();
    for c in [&mut a, &mut b, &mut lone, &mut waiting] {
        assert_eq!(c.recv().await, json!({"type": "bye", "reason": "restart"}));
        c.expect_close(1012).await;
    }
    let code = server.wait_exit(Duration::from_secs(4)).await;
    assert_eq!(code, Some(0), "exit status");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "exited within the grace"
    );
}

/// Clients that do not cooperate cannot hold the process past `server.shutdown_grace`: an
/// idle keep-alive HTTP connection, a request whose headers never finish, a WebSocket that
/// never reads or answers.
#[tokio::test]
async fn sigterm_exits_within_the_grace_despite_stuck_clients() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut server = Server::start(&format!("{OPEN}\nserver: {{shutdown_grace: 2s}}")).await;
    let mut keep_alive = common::connect_from(server.addr(), None).await;
    keep_alive
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, keep_alive.read(&mut buf))
        .await
        .expect("response in time")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut slow = common::connect_from(server.addr(), None).await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut deaf = server.raw_ws().await;
    deaf.send_text(&json!({"type": "join", "roomId": room_id()}).to_string())
        .await;
    assert_eq!(deaf.recv().await["type"], "joined");
    sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    server.terminate();
    let code = server.wait_exit(Duration::from_secs(6)).await;
    let took = t0.elapsed();
    assert_eq!(code, Some(0), "exit status");
    assert!(
        took < Duration::from_millis(2600),
        "exited after {took:?}, grace 2s"
    );
    drop((keep_alive, slow, deaf));
}

#[tokio::test]
async fn max_connections_gives_server_busy_4013() {
    let server = Server::start(&format!("{OPEN}\nserver: {{max_connections: 2}}")).await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    a.join(&room_id()).await;
    b.join(&room_id()).await;
    // Over the limit: told why (a browser cannot read an HTTP status on a failed upgrade).
    let mut c = server.ws().await;
    c.expect_error("server-busy", 4013).await;
    a.ping_pong().await;
    b.ping_pong().await;
    // Sockets that close free their places (the refused one lingers at most a second).
    drop(a);
    drop(c);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut d = server.ws().await;
        d.send(json!({"type": "join", "roomId": room_id()})).await;
        match d.next().await {
            Got::Json(v, _) if v["type"] == "joined" => break,
            _ if Instant::now() < deadline => sleep(Duration::from_millis(100)).await,
            other => panic!("no place freed: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logs

#[tokio::test]
async fn logs_at_debug_hold_no_room_id_token_sdp_candidate_or_secret() {
    let server = Server::start(
        "turn:\n  urls: [\"turn:127.0.0.1:3478\"]\n  secret_file: \"@SECRET_FILE@\"\n\
         logging: {level: debug}",
    )
    .await;
    let (token, room) = common::new_room();
    assert_eq!(server.post_room(&room).await.status, 201);
    let (mut a, mut b) = started_pair(&server, &room).await;
    let fingerprint = "a=fingerprint:sha-256 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB:4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF";
    let sdp = format!(
        "v=0\r\no=- 5498186869896684180 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 198.51.100.77\r\n\
         a=ice-ufrag:Zq9x\r\na=ice-pwd:secretIcePassword0123456789\r\n{fingerprint}\r\n"
    );
    a.send(json!({"type": "offer", "sdp": sdp, "auth": "QXV0aFRhZ1NlY3JldA"}))
        .await;
    b.expect("offer").await;
    b.send(json!({"type": "answer", "sdp": sdp.replace("Zq9x", "Yp8w")}))
        .await;
    a.expect("answer").await;
    let candidate =
        "candidate:3442447574 1 udp 2122260223 192.0.2.55 54321 typ host generation 0 ufrag Zq9x";
    a.send(json!({"type": "ice", "candidate": {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}})).await;
    b.expect("ice").await;
    let joined_user = {
        b.send(json!({"type": "refresh-ice"})).await;
        let v = b.expect("ice-servers").await;
        v["iceServers"][0]["username"].as_str().unwrap().to_owned()
    };
    let credential = {
        a.send(json!({"type": "refresh-ice"})).await;
        let v = a.expect("ice-servers").await;
        v["iceServers"][0]["credential"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // Errors and refusals must not echo what was sent either.
    let mut c = server.ws().await;
    c.send(json!({"type": "join", "roomId": room})).await;
    c.expect_error("room-full", 4004).await;
    let mut d = server.ws().await;
    d.send_text(format!(r#"{{"type":"jion","roomId":"{room}"}}"#))
        .await;
    d.expect_error("invalid-message", 4000).await;
    // A room id in a query string is refused; it must not be logged either.
    let r = server
        .get(
            &format!("/ws?room={room}"),
            &[("Origin", &server.origin.clone())],
        )
        .await;
    assert_eq!(r.status, 400);
    a.send(json!({"type": "hangup"})).await;
    a.expect_close(1000).await;
    b.expect("hangup").await;
    b.expect("peer-left").await;
    drop(b);
    sleep(Duration::from_millis(300)).await;
    let logs = server.stderr();
    assert!(
        logs.contains("DEBUG"),
        "debug logging is on: {} bytes of logs",
        logs.len()
    );
    assert!(logs.lines().count() > 6, "the server logged the call");
    assert!(
        !logs.contains('\x1b'),
        "no terminal colour codes in logs that go to a pipe (journald)"
    );
    server.assert_logs_free_of(&[
        ("room id", &room),
        ("room id prefix", &room[..16]),
        ("room token", &token),
        ("SDP origin line", "5498186869896684180"),
        ("SDP fingerprint", "4A:AD:B9:B1:3F:82"),
        ("SDP ice-pwd", "secretIcePassword0123456789"),
        ("SDP address", "198.51.100.77"),
        ("candidate", "candidate:3442447574"),
        ("candidate address", "192.0.2.55"),
        ("auth", "QXV0aFRhZ1NlY3JldA"),
        ("TURN secret", &server.secret),
        ("TURN username", &joined_user),
        ("TURN credential", &credential),
    ]);
}
