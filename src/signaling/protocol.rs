//! The signaling protocol (`docs/protocol.md`): [`ClientMsg`] and [`ServerMsg`], each an
//! internally tagged enum (`"type"`, kebab-case variant names, camelCase fields), plus the
//! limits every client message is validated against before the hub sees it.
//!
//! Parsing is strict: unknown types and unknown fields are errors, and relayed values are
//! re-serialized from these types, so the server never forwards raw client bytes.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::close::CloseCode;
use crate::room::RoomId;
use crate::turn::IceServer;

/// Largest `candidate.candidate` string, in bytes.
pub const MAX_CANDIDATE_BYTES: usize = 1024;
/// Largest `candidate.sdpMid`, in bytes.
pub const MAX_SDP_MID_BYTES: usize = 64;
/// Largest `candidate.usernameFragment`, in bytes.
pub const MAX_UFRAG_BYTES: usize = 256;
/// Largest `auth` (base64url characters).
pub const MAX_AUTH_CHARS: usize = 128;

/// A message from a browser.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMsg {
    // Field-less messages are empty struct variants: serde ignores extra fields on unit
    // variants of internally tagged enums, and `{}` makes `deny_unknown_fields` apply.
    /// First message: enter room `roomId`; `resume` takes back an earlier `sessionId`'s slot.
    #[serde(rename_all = "camelCase")]
    Join {
        room_id: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<String>,
    },
    /// Signaling, ICE servers, relay preflight and local media are in place.
    Ready {},
    /// An SDP offer for the peer; `auth` is opaque to the server.
    Offer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    /// An SDP answer for the peer.
    Answer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    /// A trickled ICE candidate for the peer; `null` ends the candidates.
    Ice {
        #[serde(deserialize_with = "candidate_object")]
        candidate: Option<IceCandidate>,
    },
    /// Leave the room.
    Hangup {},
    /// Ask for fresh TURN credentials.
    RefreshIce {},
    /// Keep the socket and the room active.
    Heartbeat {},
}

/// `RTCIceCandidateInit` (W3C WebRTC §4.8.1), as the browser serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Reads `candidate` as an object or `null` only: serde's derived structs would also take a
/// JSON array (fields by position), which is not the protocol.
fn candidate_object<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IceCandidate>, D::Error> {
    struct ObjectOrNull;
    impl<'de> Visitor<'de> for ObjectOrNull {
        type Value = Option<IceCandidate>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a candidate object or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<S: Deserializer<'de>>(self, d: S) -> Result<Self::Value, S::Error> {
            d.deserialize_map(self)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IceCandidate::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_option(ObjectOrNull)
}

/// A message to a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMsg {
    /// Admission: the session, whether the peer is already here, and ICE servers.
    #[serde(rename_all = "camelCase")]
    Joined {
        session_id: String,
        peer_present: bool,
        ice_servers: Vec<IceServer>,
        relay_available: bool,
        credential_expires_at: Option<u64>,
        heartbeat_seconds: u64,
    },
    /// The other caller entered the room.
    PeerJoined,
    /// The other caller's slot was freed.
    PeerLeft,
    /// Both are ready: negotiate; exactly one side is polite.
    Start { polite: bool },
    /// Relayed offer.
    Offer {
        sdp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    /// Relayed answer.
    Answer {
        sdp: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        auth: Option<String>,
    },
    /// Relayed ICE candidate (`null` = end of candidates).
    Ice { candidate: Option<IceCandidate> },
    /// The peer hung up.
    Hangup,
    /// Fresh TURN credentials (answer to `refresh-ice`).
    #[serde(rename_all = "camelCase")]
    IceServers {
        ice_servers: Vec<IceServer>,
        credential_expires_at: Option<u64>,
    },
    /// Answer to `heartbeat`.
    HeartbeatAck,
    /// A protocol error; all but `not-ready` are followed by a close.
    Error { code: ErrorCode, message: String },
    /// The server closes this socket on purpose.
    Bye { reason: ByeReason },
}

/// Error codes of `error` messages, with their close codes (`docs/protocol.md`). On the wire
/// each is its close code's name ([`CloseCode::name`]); `not-ready` has no close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidMessage,
    JoinTimeout,
    RoomNotAllowed,
    RoomFull,
    NotReady,
    RateLimited,
    MessageTooBig,
    ServerBusy,
}

impl ErrorCode {
    /// Every error code.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::InvalidMessage,
        ErrorCode::JoinTimeout,
        ErrorCode::RoomNotAllowed,
        ErrorCode::RoomFull,
        ErrorCode::NotReady,
        ErrorCode::RateLimited,
        ErrorCode::MessageTooBig,
        ErrorCode::ServerBusy,
    ];

    /// The WebSocket close code that follows this error, or `None` for `not-ready`, which
    /// keeps the socket open.
    pub fn close_code(self) -> Option<CloseCode> {
        Some(match self {
            ErrorCode::InvalidMessage => CloseCode::InvalidMessage,
            ErrorCode::JoinTimeout => CloseCode::JoinTimeout,
            ErrorCode::RoomNotAllowed => CloseCode::RoomNotAllowed,
            ErrorCode::RoomFull => CloseCode::RoomFull,
            ErrorCode::NotReady => return None,
            ErrorCode::RateLimited => CloseCode::RateLimited,
            ErrorCode::MessageTooBig => CloseCode::MessageTooBig,
            ErrorCode::ServerBusy => CloseCode::ServerBusy,
        })
    }

    /// The kebab-case name, as sent on the wire: the close code's name.
    pub fn as_str(self) -> &'static str {
        self.close_code().map_or("not-ready", CloseCode::name)
    }
}

/// Why the server says `bye`; on the wire, the name of the close code that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByeReason {
    /// Graceful shutdown (close 1012): reconnect with backoff and `resume`.
    Restart,
    /// Another socket resumed this session (close 4010).
    Replaced,
    /// The room saw no activity for `rooms.idle_ttl` (close 4011).
    Idle,
}

impl ByeReason {
    /// Every reason.
    pub const ALL: [ByeReason; 3] = [ByeReason::Restart, ByeReason::Replaced, ByeReason::Idle];

    /// The close code that follows this `bye`.
    pub fn close_code(self) -> CloseCode {
        match self {
            ByeReason::Restart => CloseCode::Restart,
            ByeReason::Replaced => CloseCode::Replaced,
            ByeReason::Idle => CloseCode::Idle,
        }
    }

    /// The name on the wire (`restart`, `replaced`, `idle`).
    pub fn as_str(self) -> &'static str {
        self.close_code().name()
    }
}

/// Serializes and deserializes a name-only enum by its `as_str` (the close-code table), so that
/// no serde rename repeats the names.
macro_rules! by_name {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
                <$t>::ALL
                    .into_iter()
                    .find(|c| c.as_str() == name)
                    .ok_or_else(|| serde::de::Error::custom(concat!("unknown ", $what)))
            }
        }
    };
}

by_name!(ErrorCode, "error code");
by_name!(ByeReason, "bye reason");

/// A client message that failed parsing or validation: the error code and a human message
/// (never containing the offending bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejected {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejected {
            code,
            message: message.into(),
        }
    }
}

/// Whether `s` is a session id as the server issues them: 32 lowercase hex characters.
pub fn is_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses one text frame into a validated [`ClientMsg`].
///
/// # Errors
/// `invalid-message` for anything that is not exactly one known message with well-formed
/// fields; `message-too-big` for an SDP over `max_sdp_bytes` or a candidate over 1 KiB.
pub fn parse_client(text: &str, max_sdp_bytes: usize) -> Result<ClientMsg, Rejected> {
    // Derived internally tagged enums also read `["offer", "v=0"]` (tag, then fields by
    // position); every message is an object.
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(Rejected::new(
            ErrorCode::InvalidMessage,
            "message is not a JSON object",
        ));
    }
    let msg: ClientMsg = serde_json::from_str(text).map_err(|e| {
        // serde's message names the field or variant, never echoes a value back.
        // A bad `roomId` keeps its own message: `RoomId`'s deserializer fails with its rule.
        let what = match e.classify() {
            serde_json::error::Category::Data if e.to_string().starts_with(RoomId::RULE) => {
                RoomId::RULE
            }
            serde_json::error::Category::Data => "message does not match the protocol",
            _ => "message is not valid JSON",
        };
        Rejected::new(ErrorCode::InvalidMessage, what)
    })?;
    validate(&msg, max_sdp_bytes)?;
    Ok(msg)
}

fn validate(msg: &ClientMsg, max_sdp_bytes: usize) -> Result<(), Rejected> {
    match msg {
        // The room id was parsed strictly on the way in (`RoomId`).
        ClientMsg::Join { resume, .. } if resume.as_deref().is_some_and(|s| !is_session_id(s)) => {
            return Err(Rejected::new(
                ErrorCode::InvalidMessage,
                "resume must be a sessionId",
            ));
        }
        ClientMsg::Offer { sdp, auth } | ClientMsg::Answer { sdp, auth } => {
            if sdp.len() > max_sdp_bytes {
                return Err(Rejected::new(
                    ErrorCode::MessageTooBig,
                    format!("sdp is over {max_sdp_bytes} bytes"),
                ));
            }
            if sdp.is_empty() {
                return Err(Rejected::new(ErrorCode::InvalidMessage, "sdp is empty"));
            }
            if let Some(a) = auth
                && (a.is_empty() || a.len() > MAX_AUTH_CHARS || !is_base64url(a))
            {
                return Err(Rejected::new(
                    ErrorCode::InvalidMessage,
                    "auth must be 1 to 128 base64url characters",
                ));
            }
        }
        ClientMsg::Ice { candidate: Some(c) } => {
            if c.candidate.len() > MAX_CANDIDATE_BYTES {
                return Err(Rejected::new(
                    ErrorCode::MessageTooBig,
                    "candidate is over 1024 bytes",
                ));
            }
            if c.sdp_mid
                .as_ref()
                .is_some_and(|m| m.len() > MAX_SDP_MID_BYTES)
                || c.username_fragment
                    .as_ref()
                    .is_some_and(|u| u.len() > MAX_UFRAG_BYTES)
            {
                return Err(Rejected::new(
                    ErrorCode::InvalidMessage,
                    "sdpMid or usernameFragment too long",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn code(text: &str) -> ErrorCode {
        parse_client(text, 100).unwrap_err().code
    }

    #[test]
    fn parses_every_client_message() {
        let join = format!(r#"{{"type":"join","roomId":"{ROOM}"}}"#);
        assert!(matches!(
            parse_client(&join, 100),
            Ok(ClientMsg::Join { resume: None, .. })
        ));
        for t in ["ready", "hangup", "refresh-ice", "heartbeat"] {
            parse_client(&format!(r#"{{"type":"{t}"}}"#), 100).unwrap();
        }
        let ice = r#"{"type":"ice","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"ab"}}"#;
        let msg = parse_client(ice, 100).unwrap();
        // Re-serialization gives back the same fields.
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            serde_json::from_str::<serde_json::Value>(ice).unwrap()
        );
        parse_client(r#"{"type":"ice","candidate":null}"#, 100).unwrap();
        parse_client(r#"{"type":"offer","sdp":"v=0","auth":"abc-_"}"#, 100).unwrap();
    }

    #[test]
    fn a_bad_room_id_is_named_as_such() {
        for bad in [
            ROOM.to_uppercase(),
            ROOM[..63].to_owned(),
            format!("{ROOM}0"),
        ] {
            let r = parse_client(&format!(r#"{{"type":"join","roomId":"{bad}"}}"#), 100);
            let r = r.unwrap_err();
            assert_eq!(r.code, ErrorCode::InvalidMessage);
            assert_eq!(r.message, RoomId::RULE, "no echo of the value");
        }
        let ok = parse_client(&format!(r#"{{"type":"join","roomId":"{ROOM}"}}"#), 100);
        assert!(matches!(ok, Ok(ClientMsg::Join { room_id, .. }) if room_id.to_hex() == ROOM));
    }

    #[test]
    fn rejects_what_the_protocol_does_not_say() {
        assert_eq!(code("not json"), ErrorCode::InvalidMessage);
        assert_eq!(code(r#"{"type":"dance"}"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"ready","extra":1}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"heartbeat","x":null}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(&format!(r#"{{"type":"join","roomId":"{ROOM}","x":1}}"#)),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"join","roomId":"{}"}}"#,
                ROOM.to_uppercase()
            )),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"join","roomId":"{ROOM}","resume":"zz"}}"#
            )),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"offer","sdp":5}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(r#"{"type":"offer","sdp":"v=0","auth":"a+b"}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"offer","sdp":"{}"}}"#,
                "a".repeat(101)
            )),
            ErrorCode::MessageTooBig
        );
        assert_eq!(
            code(&format!(
                r#"{{"type":"ice","candidate":{{"candidate":"{}"}}}}"#,
                "a".repeat(1025)
            )),
            ErrorCode::MessageTooBig
        );
        assert_eq!(
            code(r#"{"type":"ice","candidate":{"candidate":"x","foo":1}}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code(&"[".repeat(10_000)), ErrorCode::InvalidMessage);
        // Objects only: serde would otherwise read arrays as fields by position.
        assert_eq!(code(r#"["ready"]"#), ErrorCode::InvalidMessage);
        assert_eq!(code(r#" ["offer","v=0"]"#), ErrorCode::InvalidMessage);
        assert_eq!(
            code(r#"{"type":"ice","candidate":["candidate:1","0",0]}"#),
            ErrorCode::InvalidMessage
        );
        assert_eq!(code(r#"{"type":"ice"}"#), ErrorCode::InvalidMessage);
    }

    #[test]
    fn server_messages_use_the_documented_names() {
        let m = ServerMsg::Error {
            code: ErrorCode::RoomFull,
            message: "room is full".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"type":"error","code":"room-full","message":"room is full"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMsg::PeerLeft).unwrap(),
            r#"{"type":"peer-left"}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerMsg::Bye {
                reason: ByeReason::Restart
            })
            .unwrap(),
            r#"{"type":"bye","reason":"restart"}"#
        );
        for c in ErrorCode::ALL {
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(json, serde_json::Value::String(c.as_str().into()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), c);
        }
        assert_eq!(ErrorCode::RoomFull.as_str(), "room-full");
        assert_eq!(ErrorCode::NotReady.as_str(), "not-ready");
        for r in ByeReason::ALL {
            let json = serde_json::to_value(r).unwrap();
            assert_eq!(serde_json::from_value::<ByeReason>(json).unwrap(), r);
        }
        assert!(serde_json::from_str::<ErrorCode>(r#""liveness""#).is_err());
    }
}
