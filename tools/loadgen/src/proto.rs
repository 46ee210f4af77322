//! What the generator says and understands, for the two protocols it speaks:
//!
//! - [`Protocol::Alisay`]: `docs/protocol.md` (`join`, `ready`, `start`, relayed `ice`/`offer`,
//!   `heartbeat`, `hangup`). `alisay serve` speaks it in full; the minimal peer relays
//!   (`rawrelay`, `tools/compare/node-relay.mjs`, `tools/compare/bun-relay.js`) speak the same
//!   subset without validation.
//! - [`Protocol::PeerJs`]: the PeerJS server's protocol (npm `peer`): the id goes in the URL,
//!   the server answers `OPEN`, messages name their destination (`dst`).
//!
//! Relayed messages carry their send time (nanoseconds since [`epoch`]) where a browser's would
//! carry an ICE foundation or an SDP session id, so the receiver reads one-way latency from the
//! payload.

use std::sync::OnceLock;

use tokio::time::Instant;

/// Which server protocol the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// `docs/protocol.md` (alisay and the minimal relays).
    Alisay,
    /// PeerJS server (npm `peer`).
    PeerJs,
}

/// The size class of a relayed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Size {
    /// A trickled ICE candidate, about 240 bytes of JSON.
    Ice,
    /// An SDP offer of about 5 KB (audio and video sections).
    Sdp,
}

/// The process-wide time origin of the timestamps in payloads.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`].
pub fn now_ns() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Identity of one virtual client: client `index` is side `index % 2` of pair `index / 2`.
#[derive(Debug, Clone, Copy)]
pub struct Who {
    /// Distinguishes this run's rooms and ids from any earlier run against the same server.
    pub nonce: u64,
    pub index: u64,
}

impl Who {
    pub fn pair(self) -> u64 {
        self.index / 2
    }

    /// The other client of the pair.
    pub fn peer(self) -> Who {
        Who {
            index: self.index ^ 1,
            ..self
        }
    }

    /// A room id: 64 lowercase hex characters, unique per pair and run.
    pub fn room_id(self) -> String {
        format!("{:016x}{:048x}", self.nonce, self.pair())
    }

    fn peerjs_id(self) -> String {
        format!("lg{:x}-{}", self.nonce, self.index)
    }
}

/// What an incoming text frame is, as far as the scenarios care.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Admission (`joined`, PeerJS `OPEN`).
    Joined,
    /// `start`: relaying may begin.
    Start,
    /// A relayed message, with the sender's timestamp if one was found.
    Relayed(Option<u64>),
    /// `heartbeat-ack`.
    Ack,
    /// Expected chatter that needs no action (`peer-joined`, `peer-left`, `hangup`).
    Other,
    /// `error`, `bye`, `ID-TAKEN`, or anything unknown: named for the error summary.
    Unexpected(String),
}

impl Protocol {
    /// The WebSocket URL for client `who` under `base` (`ws://127.0.0.1:PORT`).
    pub fn url(self, base: &str, who: Who) -> String {
        match self {
            Protocol::Alisay => format!("{base}/ws"),
            Protocol::PeerJs => format!(
                "{base}/peerjs?key=peerjs&id={}&token=t{}",
                who.peerjs_id(),
                who.index
            ),
        }
    }

    /// The message that asks to be admitted, if the protocol has one (PeerJS admits on
    /// connect).
    pub fn join(self, who: Who) -> Option<String> {
        match self {
            Protocol::Alisay => Some(format!(r#"{{"type":"join","roomId":"{}"}}"#, who.room_id())),
            Protocol::PeerJs => None,
        }
    }

    /// `ready`, if the protocol waits for both sides before relaying.
    pub fn ready(self) -> Option<&'static str> {
        match self {
            Protocol::Alisay => Some(r#"{"type":"ready"}"#),
            Protocol::PeerJs => None,
        }
    }

    pub fn heartbeat(self) -> &'static str {
        match self {
            Protocol::Alisay => r#"{"type":"heartbeat"}"#,
            Protocol::PeerJs => r#"{"type":"HEARTBEAT"}"#,
        }
    }

    /// `hangup`, after which the server closes; PeerJS has none (the client just closes).
    pub fn hangup(self) -> Option<&'static str> {
        match self {
            Protocol::Alisay => Some(r#"{"type":"hangup"}"#),
            Protocol::PeerJs => None,
        }
    }

    /// A relayed message from `from` to its peer, stamped with `ts` (see [`now_ns`]).
    pub fn relay(self, size: Size, from: Who, ts: u64) -> String {
        // The bodies are built once, around a placeholder for the stamp: the generator must
        // not spend its CPU formatting SDP while it measures the server.
        static ICE: OnceLock<(String, String)> = OnceLock::new();
        static SDP: OnceLock<(String, String)> = OnceLock::new();
        let split = |body: String| {
            let (a, b) = body.split_once(STAMP).expect("the body has a stamp");
            (a.to_owned(), b.to_owned())
        };
        let (head, tail) = match size {
            Size::Ice => ICE.get_or_init(|| split(ice_candidate(STAMP))),
            Size::Sdp => SDP.get_or_init(|| split(sdp_offer(STAMP))),
        };
        let body = format!("{head}{ts}{tail}");
        match (self, size) {
            (Protocol::Alisay, Size::Ice) => format!(r#"{{"type":"ice","candidate":{body}}}"#),
            (Protocol::Alisay, Size::Sdp) => format!(r#"{{"type":"offer","sdp":{body}}}"#),
            (Protocol::PeerJs, Size::Ice) => format!(
                r#"{{"type":"CANDIDATE","dst":"{}","payload":{{"candidate":{body},"type":"media","connectionId":"mc_loadgen"}}}}"#,
                from.peer().peerjs_id()
            ),
            (Protocol::PeerJs, Size::Sdp) => format!(
                r#"{{"type":"OFFER","dst":"{}","payload":{{"sdp":{{"type":"offer","sdp":{body}}},"type":"media","connectionId":"mc_loadgen"}}}}"#,
                from.peer().peerjs_id()
            ),
        }
    }

    /// Classifies one incoming text frame.
    pub fn classify(self, text: &str) -> Incoming {
        let Some(kind) = type_of(text) else {
            return Incoming::Unexpected("no type".into());
        };
        match (self, kind) {
            (Protocol::Alisay, "joined") | (Protocol::PeerJs, "OPEN") => Incoming::Joined,
            (Protocol::Alisay, "start") => Incoming::Start,
            (Protocol::Alisay, "ice" | "offer" | "answer")
            | (Protocol::PeerJs, "CANDIDATE" | "OFFER" | "ANSWER") => {
                Incoming::Relayed(read_stamp(text))
            }
            (Protocol::Alisay, "heartbeat-ack") => Incoming::Ack,
            (Protocol::Alisay, "peer-joined" | "peer-left" | "hangup")
            | (Protocol::PeerJs, "LEAVE" | "EXPIRE") => Incoming::Other,
            (Protocol::Alisay, "error") => {
                Incoming::Unexpected(format!("error {}", code_of(text).unwrap_or("?")))
            }
            (_, other) => Incoming::Unexpected(other.to_owned()),
        }
    }
}

/// The `"type"` of a message. Every server here writes it first; others are parsed.
fn type_of(text: &str) -> Option<&str> {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#) {
        return rest.split('"').next();
    }
    #[derive(serde::Deserialize)]
    struct Tagged<'a> {
        #[serde(rename = "type", borrow)]
        kind: &'a str,
    }
    serde_json::from_str::<Tagged<'_>>(text)
        .ok()
        .map(|t| t.kind)
}

fn code_of(text: &str) -> Option<&str> {
    let at = text.find(r#""code":""#)? + 8;
    text[at..].split('"').next()
}

/// The stamp written by [`ice_candidate`] or [`sdp_offer`].
pub fn read_stamp(text: &str) -> Option<u64> {
    let at = text
        .find("candidate:")
        .map(|i| i + "candidate:".len())
        .or_else(|| text.find("o=- ").map(|i| i + 4))?;
    let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
    text[at..at + digits].parse().ok()
}

/// Where the stamp goes in a body (digits never occur like this in either body).
const STAMP: &str = "@@STAMP@@";

/// An `RTCIceCandidateInit` as Chromium sends it, with `ts` as the foundation.
fn ice_candidate(ts: &str) -> String {
    format!(
        r#"{{"candidate":"candidate:{ts} 1 udp 1677729535 203.0.113.7 61234 typ srflx raddr 192.168.1.23 rport 61234 generation 0 ufrag EsAw network-id 1 network-cost 10","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"EsAw"}}"#
    )
}

/// A JSON string holding an audio+video SDP offer of about 5,000 bytes, with `ts` as the
/// session id (`o=` line).
fn sdp_offer(ts: &str) -> String {
    let mut sdp = format!(
        "v=0\r\no=- {ts} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
         a=extmap-allow-mixed\r\na=msid-semantic: WMS loadgen\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
         a=ice-options:trickle\r\na=fingerprint:sha-256 \
         D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r\n\
         a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    );
    let codecs = [
        "VP8/90000",
        "VP9/90000",
        "H264/90000",
        "AV1/90000",
        "rtx/90000",
        "red/90000",
        "ulpfec/90000",
    ];
    sdp.push_str(
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 102 103 104 105 106 107\r\n\
         c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:EsAw\r\n\
         a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\na=rtcp-rsize\r\n",
    );
    let mut pt = 96;
    while sdp.len() < 4_900 {
        let codec = codecs[pt % codecs.len()];
        sdp.push_str(&format!(
            "a=rtpmap:{pt} {codec}\r\na=rtcp-fb:{pt} goog-remb\r\na=rtcp-fb:{pt} transport-cc\r\n\
             a=rtcp-fb:{pt} ccm fir\r\na=rtcp-fb:{pt} nack\r\na=rtcp-fb:{pt} nack pli\r\n\
             a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        ));
        pt += 1;
    }
    sdp.push_str("a=ssrc-group:FID 1001 1002\r\na=ssrc:1001 cname:loadgen\r\n");
    serde_json::to_string(&sdp).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(index: u64) -> Who {
        Who { nonce: 7, index }
    }

    #[test]
    fn relayed_messages_carry_their_stamp_and_sizes_are_realistic() {
        for p in [Protocol::Alisay, Protocol::PeerJs] {
            let ice = p.relay(Size::Ice, who(0), 123_456);
            let sdp = p.relay(Size::Sdp, who(1), 987);
            assert!((200..420).contains(&ice.len()), "{}", ice.len());
            assert!((5_000..5_600).contains(&sdp.len()), "{}", sdp.len());
            assert_eq!(p.classify(&ice), Incoming::Relayed(Some(123_456)));
            assert_eq!(p.classify(&sdp), Incoming::Relayed(Some(987)));
            serde_json::from_str::<serde_json::Value>(&sdp).unwrap();
        }
    }

    #[test]
    fn room_ids_are_64_hex_and_pairs_share_them() {
        let a = who(4).room_id();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(a, who(5).room_id());
        assert_ne!(a, who(6).room_id());
        assert_eq!(who(5).peer().index, 4);
    }

    #[test]
    fn classifies_server_messages() {
        let a = Protocol::Alisay;
        assert_eq!(
            a.classify(r#"{"type":"joined","sessionId":"x"}"#),
            Incoming::Joined
        );
        assert_eq!(
            a.classify(r#"{"polite":true,"type":"start"}"#),
            Incoming::Start
        );
        assert_eq!(
            a.classify(r#"{"type":"error","code":"room-full","message":"m"}"#),
            Incoming::Unexpected("error room-full".into())
        );
        assert_eq!(
            Protocol::PeerJs.classify(r#"{"type":"OPEN"}"#),
            Incoming::Joined
        );
    }
}
