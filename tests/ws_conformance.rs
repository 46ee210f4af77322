//! RFC 6455 conformance of the server's own WebSocket framing (`src/http/frame.rs`,
//! `src/http/ws.rs`), against the real `alisay serve` with hand-built frames on raw TCP.
//!
//! What `tests/hostile.rs` already covers (unmasked frames, RSV1, opcode 0x3, a continuation
//! without a start, a new message inside a fragmented one, a fragmented or 126-byte ping,
//! close code 999, invalid UTF-8 within and across fragments, a 2^62-byte header, 70,000
//! one-byte fragments) is not repeated here. This file adds: ping/pong echo, the close
//! handshake in both directions with every close code class, malformed close frames, the
//! 64-bit length's top bit, the remaining reserved bits and opcodes, a length over the limit
//! refused before its payload is sent, lengths not minimally encoded, UTF-8 split across
//! fragments, empty fragments, frames split across and packed into TCP writes, and the shape
//! of every frame the server sends (FIN set, RSV clear, unmasked, minimal length, control
//! frames of at most 125 bytes).
//!
//! Failing the connection follows `docs/protocol.md`: framing a browser never sends gets
//! `error invalid-message` then close 4000; a frame or message over the limit gets
//! `error message-too-big` then close 4009; a close frame the server cannot echo is answered
//! with a bare close 1002 (bad code or length) or 1007 (reason not UTF-8).

mod common;

use std::time::Duration;

use common::{Server, WAIT, op, room_id};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

const OPEN: &str = "rooms: {allow_open_rooms: true}";

/// One frame as the server sent it, with every header bit kept for checking.
#[derive(Debug)]
struct ServerFrame {
    opcode: u8,
    payload: Vec<u8>,
}

/// A raw client connection (after the `101`), reading server frames byte-exactly.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// How a masked client frame's length is encoded.
#[derive(Clone, Copy)]
enum Len {
    /// The shortest form (what a browser sends).
    Minimal,
    /// The 16-bit form, whatever the length.
    Sixteen,
    /// The 64-bit form, whatever the length.
    SixtyFour,
}

/// A masked client frame: `b0` is the whole first byte (FIN, RSV, opcode).
fn frame(b0: u8, payload: &[u8], len: Len) -> Vec<u8> {
    let mut out = vec![b0];
    let n = payload.len();
    match len {
        Len::Minimal if n < 126 => out.push(0x80 | n as u8),
        Len::Minimal | Len::Sixteen if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A final masked frame with the minimal length.
fn fin(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(0x80 | opcode, payload, Len::Minimal)
}

/// A close frame payload: the code and the reason bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

fn join_text() -> String {
    json!({"type": "join", "roomId": room_id()}).to_string()
}

impl Conn {
    async fn open(server: &Server) -> Conn {
        let raw = server.raw_ws().await;
        // The server sends nothing before the client's first message, so nothing is buffered.
        let stream = raw.stream;
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(WAIT, self.stream.write_all(bytes))
            .await
            .expect("write in time")
            .expect("write");
    }

    /// The next server frame within `within`, after checking its header: FIN set (the server
    /// never fragments), RSV clear, unmasked, the shortest length encoding, and control
    /// frames at most 125 bytes. `None` at the end of the stream; a timeout fails the test.
    async fn frame(&mut self, within: Duration) -> Option<ServerFrame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((f, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(f);
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(self.buf.is_empty(), "stream ended inside a frame");
                    return None;
                }
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => panic!("no frame from the server within {within:?}"),
            }
        }
    }

    /// The next text message as JSON (server pings are skipped).
    async fn text(&mut self) -> Value {
        loop {
            match self.frame(WAIT).await {
                Some(ServerFrame {
                    opcode: op::TEXT,
                    payload,
                }) => return serde_json::from_slice(&payload).expect("json"),
                Some(ServerFrame {
                    opcode: op::PING, ..
                }) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Text messages up to the server's close frame: `(texts, close payload)`.
    async fn until_close(&mut self) -> (Vec<Value>, Vec<u8>) {
        let mut texts = Vec::new();
        loop {
            match self.frame(WAIT).await {
                Some(ServerFrame {
                    opcode: op::TEXT,
                    payload,
                }) => texts.push(serde_json::from_slice(&payload).expect("json")),
                Some(ServerFrame {
                    opcode: op::CLOSE,
                    payload,
                }) => return (texts, payload),
                Some(ServerFrame {
                    opcode: op::PING, ..
                }) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Asserts that the server closes the TCP connection (EOF or reset) within `WAIT`, with no
    /// further frame.
    async fn expect_eof(&mut self, case: &str) {
        let f = self.frame(WAIT).await;
        assert!(f.is_none(), "{case}: a frame after the close: {f:?}");
    }

    /// `error {code}` then close `close`; then the client echoes the close and the server ends
    /// the TCP connection.
    async fn expect_failed(&mut self, case: &str, code: &str, close: u16) {
        let (texts, payload) = self.until_close().await;
        assert_eq!(texts.len(), 1, "{case}: one error message: {texts:?}");
        assert_eq!(texts[0]["type"], "error", "{case}");
        assert_eq!(texts[0]["code"], code, "{case}");
        assert_eq!(close_code(&payload), Some(close), "{case}");
        let _ = timeout(WAIT, self.stream.write_all(&fin(op::CLOSE, &payload[..2]))).await;
        self.expect_eof(case).await;
    }
}

fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// Parses one server frame, asserting RFC 6455 §5 for a server: FIN, no RSV, no mask, the
/// minimal length, control frames ≤ 125 bytes.
fn parse(buf: &[u8]) -> Option<(ServerFrame, usize)> {
    let [b0, b1, ..] = *buf else {
        return None;
    };
    assert_eq!(b0 & 0x80, 0x80, "server frames are final: {b0:#04x}");
    assert_eq!(b0 & 0x70, 0, "server frames have no RSV bits: {b0:#04x}");
    assert_eq!(b1 & 0x80, 0, "server frames are unmasked");
    let opcode = b0 & 0x0F;
    assert!(
        matches!(opcode, 0x1 | 0x8 | 0x9 | 0xA),
        "the server sends text and control frames only: {opcode:#x}"
    );
    let (len, head) = match b1 & 0x7F {
        126 => {
            let n = usize::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]));
            assert!(n >= 126, "16-bit length {n} is not minimal");
            (n, 4)
        }
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().unwrap();
            let n = u64::from_be_bytes(bytes);
            assert!(n > 0xFFFF, "64-bit length {n} is not minimal");
            (usize::try_from(n).unwrap(), 10)
        }
        n => (usize::from(n), 2),
    };
    if opcode >= 0x8 {
        assert!(len <= 125, "control frame of {len} bytes");
    }
    let payload = buf.get(head..head + len)?.to_vec();
    Some((ServerFrame { opcode, payload }, head + len))
}

#[tokio::test]
async fn pings_are_answered_with_their_payload_and_pongs_ignored() {
    let server = Server::start(OPEN).await;
    let mut c = Conn::open(&server).await;
    for payload in [&b""[..], b"hello", &[0xFF; 125], &[0, 1, 2, 0xC3]] {
        c.send(&fin(op::PING, payload)).await;
        let f = c.frame(WAIT).await.expect("a pong");
        assert_eq!(f.opcode, op::PONG, "answer to a ping of {}", payload.len());
        assert_eq!(f.payload, payload, "a pong carries the ping's payload");
    }
    // An unsolicited pong is a heartbeat (§5.5.3): no answer, the socket stays usable.
    c.send(&fin(op::PONG, b"unsolicited")).await;
    c.send(&fin(op::TEXT, join_text().as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined");
    // A ping between a message's fragments is answered, and the message still arrives.
    let hb = br#"{"type":"heartbeat"}"#;
    c.send(&frame(op::TEXT, &hb[..5], Len::Minimal)).await;
    c.send(&fin(op::PING, b"mid")).await;
    c.send(&frame(0x80, &hb[5..], Len::Minimal)).await;
    let pong = c.frame(WAIT).await.expect("pong");
    assert_eq!((pong.opcode, pong.payload), (op::PONG, b"mid".to_vec()));
    assert_eq!(c.text().await["type"], "heartbeat-ack");
}

#[tokio::test]
async fn the_client_close_is_echoed_and_the_server_ends_the_connection() {
    let server = Server::start(OPEN).await;
    // Every code an endpoint may send (§7.4.1-2; 1012-1013 registered since) is echoed with
    // its reason.
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999,
    ] {
        let mut c = Conn::open(&server).await;
        c.send(&fin(op::CLOSE, &close_payload(code, "done é".as_bytes())))
            .await;
        let (texts, payload) = c.until_close().await;
        assert!(texts.is_empty(), "close {code}: {texts:?}");
        assert_eq!(close_code(&payload), Some(code), "close {code} echoed");
        assert_eq!(
            &payload[2..],
            "done é".as_bytes(),
            "close {code}: reason echoed"
        );
        c.expect_eof(&format!("close {code}")).await;
    }
    // Codes no endpoint may send (reserved, unassigned, out of range): answered 1002.
    for code in [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut c = Conn::open(&server).await;
        c.send(&fin(op::CLOSE, &close_payload(code, b""))).await;
        let (texts, payload) = c.until_close().await;
        assert!(texts.is_empty(), "close {code}: {texts:?}");
        assert_eq!(close_code(&payload), Some(1002), "close {code}");
        c.expect_eof(&format!("close {code}")).await;
    }
    // No status code: answered with an empty close.
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::CLOSE, b"")).await;
    let (_, payload) = c.until_close().await;
    assert!(
        payload.is_empty(),
        "an empty close is echoed empty: {payload:?}"
    );
    c.expect_eof("empty close").await;
    // A one-byte close payload cannot hold a code: 1002.
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::CLOSE, &[0x03])).await;
    let (texts, payload) = c.until_close().await;
    assert!(texts.is_empty(), "one-byte close: {texts:?}");
    assert_eq!(close_code(&payload), Some(1002), "one-byte close");
    c.expect_eof("one-byte close").await;
    // A reason that is not UTF-8: 1007 (§8.1).
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::CLOSE, &close_payload(1000, &[b'a', 0xC3, 0x28])))
        .await;
    let (texts, payload) = c.until_close().await;
    assert!(texts.is_empty(), "non-UTF-8 reason: {texts:?}");
    assert_eq!(close_code(&payload), Some(1007), "non-UTF-8 reason");
    c.expect_eof("non-UTF-8 reason").await;
    // What follows a close in the same write is not handled (§5.5.1: no data after a close).
    let mut c = Conn::open(&server).await;
    let mut bytes = fin(op::CLOSE, &close_payload(1000, b""));
    bytes.extend(fin(op::TEXT, join_text().as_bytes()));
    c.send(&bytes).await;
    let (texts, payload) = c.until_close().await;
    assert!(
        texts.is_empty(),
        "no answer to a join after a close: {texts:?}"
    );
    assert_eq!(close_code(&payload), Some(1000));
    c.expect_eof("data after a close").await;
}

#[tokio::test]
async fn the_server_close_waits_for_the_echo_then_ends_the_connection() {
    let server = Server::start(OPEN).await;
    // `hangup` ends the session with 1000; the client echoes; the server ends the TCP
    // connection promptly (it does not wait out its linger once the echo arrived).
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::TEXT, join_text().as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined");
    c.send(&fin(op::TEXT, br#"{"type":"hangup"}"#)).await;
    let (texts, payload) = c.until_close().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(close_code(&payload), Some(1000), "hangup closes with 1000");
    let t0 = Instant::now();
    c.send(&fin(op::CLOSE, &payload[..2])).await;
    c.expect_eof("hangup").await;
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "the server ended the connection {:?} after the echo",
        t0.elapsed()
    );
    // A client that never echoes is cut off after a bounded linger.
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::TEXT, join_text().as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined");
    c.send(&fin(op::TEXT, br#"{"type":"hangup"}"#)).await;
    let (_, payload) = c.until_close().await;
    assert_eq!(close_code(&payload), Some(1000));
    c.expect_eof("no echo").await;
}

#[tokio::test]
async fn framing_violations_fail_the_connection_with_the_documented_codes() {
    let server = Server::start(OPEN).await;
    let join = join_text();
    let mut top_bit = vec![0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 16];
    top_bit.extend_from_slice(&[1, 2, 3, 4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("RSV2 set", frame(0xA1, join.as_bytes(), Len::Minimal)),
        ("RSV3 set", frame(0x91, join.as_bytes(), Len::Minimal)),
        ("reserved data opcode 0x7", fin(0x7, b"x")),
        ("reserved control opcode 0xB", fin(0xB, b"x")),
        ("reserved control opcode 0xF", fin(0xF, b"")),
        ("64-bit length with its top bit set", top_bit),
        (
            "fragmented binary message",
            frame(op::BINARY, b"x", Len::Minimal),
        ),
        ("close frame of 126 bytes", fin(op::CLOSE, &[b'c'; 126])),
        (
            "fragmented close",
            frame(op::CLOSE, &[0x03, 0xE8], Len::Minimal),
        ),
        ("empty text message", fin(op::TEXT, b"")),
    ];
    for (case, bytes) in cases {
        let mut c = Conn::open(&server).await;
        c.send(&bytes).await;
        c.expect_failed(case, "invalid-message", 4000).await;
    }
    // The same after admission, mid-message: a reserved opcode between fragments.
    let case = "reserved opcode between fragments";
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::TEXT, join.as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined", "{case}");
    let mut bytes = frame(op::TEXT, b"{\"type\"", Len::Minimal);
    bytes.extend(fin(0x3, b"x"));
    c.send(&bytes).await;
    c.expect_failed(case, "invalid-message", 4000).await;
}

#[tokio::test]
async fn a_length_over_the_limit_is_refused_before_its_payload() {
    let server = Server::start(OPEN).await;
    // Headers alone (no payload follows): the server must answer at once, not wait for
    // 70,000 bytes it would refuse anyway.
    for (case, head) in [
        ("64-bit length 70,000 (limit 64 KiB)", {
            let mut h = vec![0x81, 0x80 | 127];
            h.extend_from_slice(&70_000u64.to_be_bytes());
            h
        }),
        ("64-bit length 65,537 in a first fragment", {
            let mut h = vec![0x01, 0x80 | 127];
            h.extend_from_slice(&65_537u64.to_be_bytes());
            h
        }),
    ] {
        let mut c = Conn::open(&server).await;
        let mut head = head;
        head.extend_from_slice(&[9, 8, 7, 6]);
        c.send(&head).await;
        c.expect_failed(case, "message-too-big", 4009).await;
    }
    // After an admitted join, a continuation that takes the message over the limit.
    let case = "continuation over the limit";
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::TEXT, join_text().as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined", "{case}");
    c.send(&frame(op::TEXT, &[b' '; 40_000], Len::Minimal))
        .await;
    let mut head = vec![0x80, 0x80 | 126];
    head.extend_from_slice(&30_000u16.to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    c.send(&head).await;
    c.expect_failed(case, "message-too-big", 4009).await;
}

#[tokio::test]
async fn lengths_fragments_and_tcp_splits_a_client_may_send_are_accepted() {
    let server = Server::start(OPEN).await;
    let join = join_text();
    // Lengths need not be minimally encoded by a client (§5.2 asks it only of the sender's
    // choice; the server must take any valid encoding).
    let mut c = Conn::open(&server).await;
    c.send(&frame(0x81, join.as_bytes(), Len::Sixteen)).await;
    assert_eq!(
        c.text().await["type"],
        "joined",
        "16-bit length of a short join"
    );
    c.send(&frame(0x81, br#"{"type":"heartbeat"}"#, Len::SixtyFour))
        .await;
    assert_eq!(c.text().await["type"], "heartbeat-ack", "64-bit length");
    c.send(&frame(0x89, b"p", Len::Sixteen)).await;
    assert_eq!(c.frame(WAIT).await.unwrap().opcode, op::PONG, "16-bit ping");

    // Empty fragments around the text, and a multi-byte character split across fragments
    // (UTF-8 is checked on the whole message). An offer before `start` is parsed, then
    // refused with `not-ready`, which keeps the socket: proof the text arrived whole.
    let sdp = "v=0 é € 😀";
    let text = json!({"type": "offer", "sdp": sdp}).to_string();
    let bytes = text.as_bytes();
    let cut = text.find('€').unwrap() + 1;
    let cut2 = text.find('😀').unwrap() + 2;
    let mut burst = frame(op::TEXT, b"", Len::Minimal);
    burst.extend(frame(op::CONT, &bytes[..cut], Len::Minimal));
    burst.extend(frame(op::CONT, b"", Len::Minimal));
    burst.extend(frame(op::CONT, &bytes[cut..cut2], Len::Minimal));
    burst.extend(frame(0x80, &bytes[cut2..], Len::Minimal));
    c.send(&burst).await;
    let got = c.text().await;
    assert_eq!(
        (got["type"].as_str(), got["code"].as_str()),
        (Some("error"), Some("not-ready")),
        "{got}"
    );

    // Several frames in one write, and one frame across many writes (a byte at a time).
    let mut c = Conn::open(&server).await;
    let mut both = fin(op::TEXT, join_text().as_bytes());
    both.extend(fin(op::TEXT, br#"{"type":"heartbeat"}"#));
    c.send(&both).await;
    assert_eq!(c.text().await["type"], "joined");
    assert_eq!(c.text().await["type"], "heartbeat-ack");
    let mut c = Conn::open(&server).await;
    for b in frame(0x81, join_text().as_bytes(), Len::SixtyFour) {
        c.send(&[b]).await;
        sleep(Duration::from_micros(200)).await;
    }
    assert_eq!(c.text().await["type"], "joined", "a byte per write");

    // A big message (a 30 KB SDP, 16-bit length) across a few writes: relayed intact.
    let room = room_id();
    let mut a = Conn::open(&server).await;
    let mut b = Conn::open(&server).await;
    for (c, peer_present) in [(&mut a, false), (&mut b, true)] {
        c.send(&fin(
            op::TEXT,
            json!({"type": "join", "roomId": room})
                .to_string()
                .as_bytes(),
        ))
        .await;
        let j = c.text().await;
        assert_eq!(
            (j["type"].as_str(), j["peerPresent"].as_bool()),
            (Some("joined"), Some(peer_present))
        );
    }
    assert_eq!(a.text().await["type"], "peer-joined");
    for c in [&mut a, &mut b] {
        c.send(&fin(op::TEXT, br#"{"type":"ready"}"#)).await;
    }
    assert_eq!(a.text().await["type"], "start");
    assert_eq!(b.text().await["type"], "start");
    let sdp = "a=x\r\n".repeat(6000);
    let offer = fin(
        op::TEXT,
        json!({"type": "offer", "sdp": sdp}).to_string().as_bytes(),
    );
    for piece in offer.chunks(7000) {
        a.send(piece).await;
        sleep(Duration::from_millis(5)).await;
    }
    let got = b.text().await;
    assert_eq!(
        (got["type"].as_str(), got["sdp"].as_str()),
        (Some("offer"), Some(sdp.as_str()))
    );
}

#[tokio::test]
async fn server_pings_are_well_formed_and_a_pong_keeps_the_socket() {
    let server = Server::start(
        "rooms: {allow_open_rooms: true, idle_ttl: 10s}\nsignaling: {heartbeat_interval: 1s}",
    )
    .await;
    let mut c = Conn::open(&server).await;
    c.send(&fin(op::TEXT, join_text().as_bytes())).await;
    assert_eq!(c.text().await["type"], "joined");
    // Answer every ping for 4 s (past 3 × heartbeat): the socket stays open.
    let end = Instant::now() + Duration::from_secs(4);
    let mut pings = 0;
    while Instant::now() < end {
        let f = c.frame(Duration::from_secs(3)).await.expect("a ping");
        assert_eq!(f.opcode, op::PING, "only pings while idle: {f:?}");
        pings += 1;
        c.send(&fin(op::PONG, &f.payload)).await;
    }
    assert!(pings >= 3, "a ping each heartbeat interval: {pings} in 4 s");
    // Stop answering: the server gives up after 3 × heartbeat with 4002 (liveness).
    let (texts, payload) = c.until_close().await;
    assert!(texts.is_empty(), "{texts:?}");
    assert_eq!(close_code(&payload), Some(4002));
}
