//! The WebSocket close codes the server sends, each with its number and its name: the one
//! table behind the close frames' reason text, the `error` and `bye` names on the wire
//! ([`super::protocol::ErrorCode`], [`super::protocol::ByeReason`]) and the browser's copy in
//! `public/js/codes.js` (a test below keeps that file equal to this table).
//!
//! Numbers follow RFC 6455 §7.4 (1000, 1012) and `docs/protocol.md` (the 4000 range is ours).
//! The codes the server only echoes (1002, 1007 for a malformed client close) belong to the
//! framing, `http::frame`.

/// A close code the server sends, with its number ([`CloseCode::code`]) and name
/// ([`CloseCode::name`], also the close frame's reason text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1000 `bye`: after `hangup`.
    Normal,
    /// 1012 `restart`: graceful shutdown, after `bye {reason: "restart"}`.
    Restart,
    /// 4000 `invalid-message`.
    InvalidMessage,
    /// 4001 `join-timeout`: no `join` within `signaling.join_timeout`.
    JoinTimeout,
    /// 4002 `liveness`: nothing received for three heartbeat intervals.
    Liveness,
    /// 4003 `room-not-allowed`.
    RoomNotAllowed,
    /// 4004 `room-full`.
    RoomFull,
    /// 4008 `rate-limited`.
    RateLimited,
    /// 4009 `message-too-big`.
    MessageTooBig,
    /// 4010 `replaced`: another socket resumed this session.
    Replaced,
    /// 4011 `idle`: the room saw no activity for `rooms.idle_ttl`.
    Idle,
    /// 4012 `slow-consumer`: the socket's outbox overflowed.
    SlowConsumer,
    /// 4013 `server-busy`.
    ServerBusy,
}

impl CloseCode {
    /// Every code, in number order.
    pub const ALL: [CloseCode; 13] = [
        CloseCode::Normal,
        CloseCode::Restart,
        CloseCode::InvalidMessage,
        CloseCode::JoinTimeout,
        CloseCode::Liveness,
        CloseCode::RoomNotAllowed,
        CloseCode::RoomFull,
        CloseCode::RateLimited,
        CloseCode::MessageTooBig,
        CloseCode::Replaced,
        CloseCode::Idle,
        CloseCode::SlowConsumer,
        CloseCode::ServerBusy,
    ];

    /// The number in the close frame.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::Restart => 1012,
            CloseCode::InvalidMessage => 4000,
            CloseCode::JoinTimeout => 4001,
            CloseCode::Liveness => 4002,
            CloseCode::RoomNotAllowed => 4003,
            CloseCode::RoomFull => 4004,
            CloseCode::RateLimited => 4008,
            CloseCode::MessageTooBig => 4009,
            CloseCode::Replaced => 4010,
            CloseCode::Idle => 4011,
            CloseCode::SlowConsumer => 4012,
            CloseCode::ServerBusy => 4013,
        }
    }

    /// The kebab-case name: the close frame's reason text, and the `error` code or `bye`
    /// reason that goes with it on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            CloseCode::Normal => "bye",
            CloseCode::Restart => "restart",
            CloseCode::InvalidMessage => "invalid-message",
            CloseCode::JoinTimeout => "join-timeout",
            CloseCode::Liveness => "liveness",
            CloseCode::RoomNotAllowed => "room-not-allowed",
            CloseCode::RoomFull => "room-full",
            CloseCode::RateLimited => "rate-limited",
            CloseCode::MessageTooBig => "message-too-big",
            CloseCode::Replaced => "replaced",
            CloseCode::Idle => "idle",
            CloseCode::SlowConsumer => "slow-consumer",
            CloseCode::ServerBusy => "server-busy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The browser's table, `public/js/codes.js`: one `'name': number,` line per code.
    const CODES_JS: &str = include_str!("../../public/js/codes.js");

    #[test]
    fn the_table_is_in_number_order_without_repeats() {
        for pair in CloseCode::ALL.windows(2) {
            assert!(pair[0].code() < pair[1].code(), "{pair:?}");
        }
        let mut names: Vec<_> = CloseCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CloseCode::ALL.len());
    }

    #[test]
    fn the_browser_table_matches() {
        let js: Vec<(String, u16)> = CODES_JS
            .lines()
            .filter_map(|line| {
                let (name, number) = line.trim().strip_suffix(',')?.split_once(": ")?;
                let name = name.strip_prefix('\'')?.strip_suffix('\'')?;
                Some((name.to_owned(), number.parse().ok()?))
            })
            .collect();
        let rust: Vec<(String, u16)> = CloseCode::ALL
            .iter()
            .map(|c| (c.name().to_owned(), c.code()))
            .collect();
        assert_eq!(
            js, rust,
            "public/js/codes.js must list every CloseCode, in order, as `'name': number,`"
        );
    }
}
