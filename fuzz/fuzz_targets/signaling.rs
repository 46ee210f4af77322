//! Fuzzes the signaling parser and validator, `parse_client`, on arbitrary text frames.
//!
//! Input: the frame's bytes (non-UTF-8 input is read lossily, as a browser can only send
//! UTF-8 text frames). Checked for every input, at the default `max_sdp_bytes` (32 KiB, see
//! `docs/protocol.md`) and at a small limit:
//! - no panic, and a rejection's message is one of the fixed texts (never the input's bytes);
//! - an accepted message is within every documented limit;
//! - re-serializing an accepted message parses back to the same value (what the server relays
//!   is what it accepted), and the relayed `ServerMsg` round-trips through JSON too;
//! - a smaller `max_sdp_bytes` only ever turns acceptance into `message-too-big`.

#![no_main]

use alisay::signaling::protocol::{
    self, ClientMsg, ErrorCode, MAX_AUTH_CHARS, MAX_CANDIDATE_BYTES, MAX_SDP_MID_BYTES,
    MAX_UFRAG_BYTES, ServerMsg, parse_client,
};
use libfuzzer_sys::fuzz_target;

/// `signaling.max_sdp_bytes` by default (32 KiB).
const DEFAULT_MAX_SDP: usize = 32 * 1024;
/// A small limit, so that short inputs reach the size checks.
const SMALL_MAX_SDP: usize = 16;

/// Every rejection text `parse_client` may give, apart from `sdp is over N bytes`. A new
/// text must be added here after checking that it cannot echo the client's bytes.
const REJECTIONS: &[&str] = &[
    "message is not a JSON object",
    "message is not valid JSON",
    "message does not match the protocol",
    "roomId must be 64 lowercase hex characters",
    "resume must be a sessionId",
    "sdp is empty",
    "auth must be 1 to 128 base64url characters",
    "candidate is over 1024 bytes",
    "sdpMid or usernameFragment too long",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let big = check(&text, DEFAULT_MAX_SDP);
    let small = check(&text, SMALL_MAX_SDP);
    match (&big, &small) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "the sdp limit changed an accepted message"),
        // The size check comes first, so the smaller limit may give `message-too-big` instead.
        (Err(a), Err(b)) => assert!(
            a == b || *b == ErrorCode::MessageTooBig,
            "the sdp limit changed the rejection from {a:?} to {b:?}"
        ),
        (Ok(_), Err(code)) => {
            assert_eq!(
                *code,
                ErrorCode::MessageTooBig,
                "a smaller limit gave {code:?}"
            );
        }
        (Err(code), Ok(_)) => panic!("accepted under the smaller limit only, rejected {code:?}"),
    }
});

/// Parses `text`, checks the invariants, and returns the message or the error code.
fn check(text: &str, max_sdp: usize) -> Result<ClientMsg, ErrorCode> {
    let msg = match parse_client(text, max_sdp) {
        Ok(msg) => msg,
        Err(rejected) => {
            let m = rejected.message.as_str();
            let sdp_limit = format!("sdp is over {max_sdp} bytes");
            assert!(
                REJECTIONS.contains(&m) || m == sdp_limit,
                "unexpected rejection text (may echo input): {m:?}"
            );
            if m == sdp_limit {
                assert_eq!(rejected.code, ErrorCode::MessageTooBig);
            }
            return Err(rejected.code);
        }
    };
    within_limits(&msg, max_sdp);

    // What is relayed is re-serialized from the value: it must parse back to the same value.
    let json = serde_json::to_string(&msg).expect("a client message serializes");
    assert!(
        json.len() <= text.len() * 6 + 64,
        "re-serialization blew up"
    );
    let again = parse_client(&json, max_sdp).expect("a re-serialized message parses");
    assert_eq!(again, msg, "re-serialization changed the message");

    // The hub relays offer/answer/ice as server messages; the peer must read them back.
    let relayed = match msg.clone() {
        ClientMsg::Offer { sdp, auth } => Some(ServerMsg::Offer { sdp, auth }),
        ClientMsg::Answer { sdp, auth } => Some(ServerMsg::Answer { sdp, auth }),
        ClientMsg::Ice { candidate } => Some(ServerMsg::Ice { candidate }),
        _ => None,
    };
    if let Some(server) = relayed {
        let json = serde_json::to_string(&server).expect("a server message serializes");
        let back: ServerMsg = serde_json::from_str(&json).expect("a server message parses");
        assert_eq!(back, server, "a relayed message does not round-trip");
    }
    Ok(msg)
}

/// Every documented limit (`docs/protocol.md`, "Limits") holds for an accepted message.
fn within_limits(msg: &ClientMsg, max_sdp: usize) {
    match msg {
        ClientMsg::Join { room_id, resume } => {
            assert!(alisay::room::is_room_id(&room_id.to_hex()));
            assert!(resume.as_deref().is_none_or(protocol::is_session_id));
        }
        ClientMsg::Offer { sdp, auth } | ClientMsg::Answer { sdp, auth } => {
            assert!(!sdp.is_empty() && sdp.len() <= max_sdp);
            if let Some(a) = auth {
                assert!(!a.is_empty() && a.len() <= MAX_AUTH_CHARS);
                assert!(
                    a.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                );
            }
        }
        ClientMsg::Ice { candidate: Some(c) } => {
            assert!(c.candidate.len() <= MAX_CANDIDATE_BYTES);
            assert!(
                c.sdp_mid
                    .as_ref()
                    .is_none_or(|m| m.len() <= MAX_SDP_MID_BYTES)
            );
            assert!(
                c.username_fragment
                    .as_ref()
                    .is_none_or(|u| u.len() <= MAX_UFRAG_BYTES)
            );
        }
        ClientMsg::Ice { candidate: None }
        | ClientMsg::Ready {}
        | ClientMsg::Hangup {}
        | ClientMsg::RefreshIce {}
        | ClientMsg::Heartbeat {} => {}
    }
}
