//! RFC 6455 §5 framing for the server side of `/ws`, written so that an idle socket holds no
//! buffer at all.
//!
//! tungstenite keeps a read buffer (its `read_buffer_size`, allocated up front) and a write
//! buffer (grown to the largest frame sent, never shrunk) for the life of every socket: with
//! thousands of idle sockets that was most of the server's memory. Here the session task reads
//! into a scratch buffer on its stack, decodes every complete frame in place, and keeps only
//! the bytes of an unfinished frame (or fragmented message) in [`Decoder`], freeing them as soon
//! as the frame is complete. Outgoing frames are built by [`OutFrame`] in the buffer the JSON is
//! serialized into, header included, so a message is written with one `write` and no copy.
//!
//! What a browser can never send is refused as a [`Violation`]: unmasked frames, reserved bits
//! or opcodes, fragmented or oversized control frames, continuation frames out of place (§5.2,
//! §5.4, §5.5), text that is not UTF-8 (§8.1), frames or messages over the size limit.

use std::ops::ControlFlow;

use serde::Serialize;

/// Continuation frame opcode (§5.2).
const OP_CONTINUATION: u8 = 0x0;
/// Text frame opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary frame opcode.
const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub const OP_PONG: u8 = 0xA;
/// The longest frame header the server writes (8-byte length, no mask).
const MAX_SERVER_HEADER: usize = 10;
/// The largest control frame payload (§5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;
/// Close code "protocol error" (§7.4.1).
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code "invalid frame payload data" (§7.4.1): a close reason that is not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;

/// One complete frame (or reassembled message) from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text message (fragments reassembled), valid UTF-8.
    Text(&'a str),
    /// A binary frame (refused by the protocol, so its payload is not kept).
    Binary,
    /// A ping with its payload (at most 125 bytes), to be answered with a pong.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame: `None` without a status code, else the code and the reason text.
    Close(Option<(u16, &'a str)>),
}

/// Why the client's bytes are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A frame or a reassembled message over the size limit.
    #[error("frame or message over the size limit")]
    TooBig,
    /// A text message or a close reason that is not UTF-8.
    #[error("text is not utf-8")]
    NotUtf8,
    /// Framing a conforming client never sends.
    #[error("websocket protocol violation: {0}")]
    Protocol(&'static str),
    /// A malformed close frame (one byte of payload, or a reason that is not UTF-8): the
    /// client is closing, so it is answered with a bare close frame of this code (1002 or 1007,
    /// RFC 6455 §7.4.1) rather than an `error` message it would not read.
    #[error("malformed close frame")]
    BadClose(u16),
}

/// Incremental decoder of client frames. Holds memory only while a frame or a fragmented
/// message is unfinished: otherwise it is one null pointer.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Option<Box<Pending>>,
}

/// What an unfinished frame or message keeps between reads.
#[derive(Debug, Default)]
struct Pending {
    /// Bytes of an unfinished frame.
    partial: Vec<u8>,
    /// The payload so far of a fragmented text message.
    message: Vec<u8>,
    /// Whether a fragmented text message is being reassembled.
    fragmented: bool,
}

/// A parsed frame header.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header length in bytes (mask included).
    len: usize,
    payload: usize,
}

impl Decoder {
    /// Whether nothing is buffered (no unfinished frame or message).
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// Decodes `input` (freshly read bytes; unmasked in place) and calls `on` for every
    /// complete frame, until `on` breaks. Bytes of an unfinished frame are kept for the next
    /// call. Frames and reassembled messages over `max` bytes are refused.
    ///
    /// # Errors
    /// The first [`Violation`]; the connection is then beyond repair.
    pub fn feed<B>(
        &mut self,
        input: &mut [u8],
        max: usize,
        on: impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, Violation> {
        let mut state = self.pending.take().map(|b| *b).unwrap_or_default();
        let flow = state.feed(input, max, on);
        if !state.partial.is_empty() || state.fragmented {
            self.pending = Some(Box::new(state));
        }
        flow
    }
}

impl Pending {
    fn feed<B>(
        &mut self,
        input: &mut [u8],
        max: usize,
        mut on: impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, Violation> {
        if self.partial.is_empty() {
            let (used, flow) = self.parse(input, max, &mut on)?;
            if flow.is_continue() && used < input.len() {
                self.keep(&input[used..]);
            }
            return Ok(flow);
        }
        let mut data = std::mem::take(&mut self.partial);
        data.extend_from_slice(input);
        let (used, flow) = self.parse(&mut data, max, &mut on)?;
        if flow.is_continue() && used < data.len() {
            data.drain(..used);
            self.partial = data;
        }
        Ok(flow)
    }

    /// Keeps the start of an unfinished frame, with room for the whole frame when its header
    /// is already there (so a big frame is not regrown byte by byte).
    fn keep(&mut self, rest: &[u8]) {
        let whole = match parse_header(rest) {
            Ok(Some(h)) => h.len + h.payload,
            _ => rest.len(),
        };
        self.partial.reserve_exact(whole.max(rest.len()));
        self.partial.extend_from_slice(rest);
    }

    /// Decodes the complete frames at the start of `data`; returns how many bytes they took.
    fn parse<B>(
        &mut self,
        data: &mut [u8],
        max: usize,
        on: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Result<(usize, ControlFlow<B>), Violation> {
        let mut pos = 0;
        while pos < data.len() {
            let Some(h) = parse_header(&data[pos..])? else {
                break;
            };
            // Refused at the header, before any of the payload is waited for or kept: a
            // frame over the limit, or a continuation taking its message over it.
            let so_far = if h.opcode == OP_CONTINUATION {
                self.message.len()
            } else {
                0
            };
            if h.payload > max.saturating_sub(so_far) {
                return Err(Violation::TooBig);
            }
            if data.len() - pos < h.len + h.payload {
                break;
            }
            let start = pos + h.len;
            pos = start + h.payload;
            let payload = &mut data[start..pos];
            unmask(payload, h.mask);
            if let ControlFlow::Break(b) = self.frame(&h, payload, max, on)? {
                return Ok((pos, ControlFlow::Break(b)));
            }
        }
        Ok((pos, ControlFlow::Continue(())))
    }

    fn frame<B>(
        &mut self,
        h: &Header,
        payload: &[u8],
        max: usize,
        on: &mut impl FnMut(Frame<'_>) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, Violation> {
        Ok(match h.opcode {
            OP_TEXT if self.fragmented => {
                return Err(Violation::Protocol("new message inside a fragmented one"));
            }
            OP_TEXT if h.fin => on(Frame::Text(utf8(payload)?)),
            OP_TEXT => {
                self.message = payload.to_vec();
                self.fragmented = true;
                ControlFlow::Continue(())
            }
            OP_CONTINUATION if !self.fragmented => {
                return Err(Violation::Protocol("continuation without a start"));
            }
            OP_CONTINUATION => {
                if self.message.len() + payload.len() > max {
                    return Err(Violation::TooBig);
                }
                self.message.extend_from_slice(payload);
                if !h.fin {
                    return Ok(ControlFlow::Continue(()));
                }
                self.fragmented = false;
                let message = std::mem::take(&mut self.message);
                on(Frame::Text(utf8(&message)?))
            }
            OP_BINARY if self.fragmented => {
                return Err(Violation::Protocol("new message inside a fragmented one"));
            }
            OP_BINARY => on(Frame::Binary),
            OP_PING => on(Frame::Ping(payload)),
            OP_PONG => on(Frame::Pong),
            OP_CLOSE => match payload {
                [] => on(Frame::Close(None)),
                [_] => return Err(Violation::BadClose(CLOSE_PROTOCOL_ERROR)),
                [a, b, reason @ ..] => {
                    let reason = std::str::from_utf8(reason)
                        .map_err(|_| Violation::BadClose(CLOSE_INVALID_PAYLOAD))?;
                    on(Frame::Close(Some((u16::from_be_bytes([*a, *b]), reason))))
                }
            },
            _ => return Err(Violation::Protocol("reserved opcode")),
        })
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, Violation> {
    std::str::from_utf8(bytes).map_err(|_| Violation::NotUtf8)
}

/// Parses a client frame header (§5.2), or `None` if more bytes are needed.
fn parse_header(data: &[u8]) -> Result<Option<Header>, Violation> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(None);
    };
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    if b0 & 0x70 != 0 {
        return Err(Violation::Protocol(
            "reserved bits set without an extension",
        ));
    }
    if b1 & 0x80 == 0 {
        return Err(Violation::Protocol("unmasked client frame"));
    }
    let (payload, ext) = match b1 & 0x7F {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest {
            // §5.2: "the most significant bit MUST be 0".
            [a, ..] if a & 0x80 != 0 => {
                return Err(Violation::Protocol("64-bit length with its top bit set"));
            }
            [a, b, c, d, e, f, g, h, ..] => {
                (u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]), 8)
            }
            _ => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    if opcode >= OP_CLOSE {
        if !fin {
            return Err(Violation::Protocol("fragmented control frame"));
        }
        if payload > MAX_CONTROL_PAYLOAD as u64 {
            return Err(Violation::Protocol("control frame over 125 bytes"));
        }
    }
    let Some(mask) = rest.get(ext..ext + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len: 2 + ext + 4,
        // A length beyond memory is over any limit.
        payload: usize::try_from(payload).unwrap_or(usize::MAX),
    }))
}

/// XORs `payload` with the client's masking key (§5.3), eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
}

/// A frame as the server sends it (final, unmasked), header and payload in one buffer.
#[derive(Debug)]
pub struct OutFrame {
    buf: Vec<u8>,
    /// Where the header starts: the JSON is serialized after room for the longest header.
    start: usize,
}

impl OutFrame {
    /// A text frame holding `value` as JSON (`None` if it does not serialize).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Option<OutFrame> {
        let mut buf = Vec::with_capacity(192);
        buf.resize(MAX_SERVER_HEADER, 0);
        serde_json::to_writer(&mut buf, value).ok()?;
        Some(OutFrame::finish(buf, OP_TEXT))
    }

    /// A control frame (close, ping, pong) with `payload` (at most 125 bytes).
    pub fn control(opcode: u8, payload: &[u8]) -> OutFrame {
        let payload = &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)];
        let mut buf = Vec::with_capacity(MAX_SERVER_HEADER + payload.len());
        buf.resize(MAX_SERVER_HEADER, 0);
        buf.extend_from_slice(payload);
        OutFrame::finish(buf, opcode)
    }

    /// A close frame with a status code and a reason (RFC 6455 §5.5.1).
    pub fn close(code: u16, reason: &str) -> OutFrame {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        OutFrame::control(OP_CLOSE, &payload)
    }

    fn finish(mut buf: Vec<u8>, opcode: u8) -> OutFrame {
        let len = buf.len() - MAX_SERVER_HEADER;
        let mut header = [0u8; MAX_SERVER_HEADER];
        header[0] = 0x80 | opcode;
        let n = if len < 126 {
            header[1] = len as u8;
            2
        } else if let Ok(short) = u16::try_from(len) {
            header[1] = 126;
            header[2..4].copy_from_slice(&short.to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_SERVER_HEADER - n;
        buf[start..MAX_SERVER_HEADER].copy_from_slice(&header[..n]);
        OutFrame { buf, start }
    }

    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![b0];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[derive(Debug, PartialEq)]
    enum Got {
        Text(String),
        Binary,
        Ping(Vec<u8>),
        Pong,
        Close(Option<(u16, String)>),
    }

    /// Feeds `bytes` in pieces of `step` bytes; collects frames or the first violation.
    fn decode(bytes: &[u8], step: usize, max: usize) -> Result<Vec<Got>, Violation> {
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for piece in bytes.chunks(step) {
            let mut piece = piece.to_vec();
            let _flow = d.feed(&mut piece, max, |f| {
                got.push(match f {
                    Frame::Text(t) => Got::Text(t.to_owned()),
                    Frame::Binary => Got::Binary,
                    Frame::Ping(p) => Got::Ping(p.to_vec()),
                    Frame::Pong => Got::Pong,
                    Frame::Close(c) => Got::Close(c.map(|(c, r)| (c, r.to_owned()))),
                });
                ControlFlow::<()>::Continue(())
            })?;
        }
        assert!(d.is_idle(), "nothing kept after whole frames");
        Ok(got)
    }

    #[test]
    fn frames_in_any_split_and_nothing_kept_after() {
        let big = "x".repeat(70_000);
        let mut bytes = client(0x81, b"{\"type\":\"ready\"}");
        bytes.extend(client(0x89, b"hi"));
        bytes.extend(client(0x81, "é".repeat(100).as_bytes()));
        bytes.extend(client(0x81, big.as_bytes()));
        bytes.extend(client(0x8A, b""));
        bytes.extend(client(0x88, &[0x03, 0xE8, b'o', b'k']));
        let want = vec![
            Got::Text("{\"type\":\"ready\"}".into()),
            Got::Ping(b"hi".to_vec()),
            Got::Text("é".repeat(100)),
            Got::Text(big.clone()),
            Got::Pong,
            Got::Close(Some((1000, "ok".into()))),
        ];
        for step in [1, 2, 3, 7, 100, 4096, bytes.len()] {
            assert_eq!(decode(&bytes, step, 1 << 20).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn fragmented_text_with_a_ping_between() {
        let mut bytes = client(0x01, b"{\"type\":");
        bytes.extend(client(0x89, b"p"));
        bytes.extend(client(0x00, b"\"rea"));
        bytes.extend(client(0x80, b"dy\"}"));
        let got = decode(&bytes, 5, 100).unwrap();
        assert_eq!(
            got,
            vec![
                Got::Ping(b"p".to_vec()),
                Got::Text("{\"type\":\"ready\"}".into())
            ]
        );
    }

    #[test]
    fn violations() {
        let v = |bytes: Vec<u8>| decode(&bytes, 3, 100).unwrap_err();
        assert_eq!(v(client(0x81, &[b'a'; 101])), Violation::TooBig);
        let mut frags = client(0x01, &[b'a'; 60]);
        frags.extend(client(0x80, &[b'a'; 60]));
        assert_eq!(
            v(frags),
            Violation::TooBig,
            "reassembled message over the limit"
        );
        // The continuation's header alone is enough to refuse it.
        let mut head_only = client(0x01, &[b'a'; 60]);
        head_only.extend(&client(0x80, &[b'a'; 60])[..6]);
        assert_eq!(
            v(head_only),
            Violation::TooBig,
            "refused at the continuation's header"
        );
        assert_eq!(v(client(0x81, &[0xC3, 0x28])), Violation::NotUtf8);
        assert_eq!(
            v(client(0x88, &[0x03, 0xE8, 0xFF])),
            Violation::BadClose(CLOSE_INVALID_PAYLOAD)
        );
        assert_eq!(
            v(client(0x88, &[3])),
            Violation::BadClose(CLOSE_PROTOCOL_ERROR)
        );
        let mut top_bit = vec![0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        top_bit.extend_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(v(top_bit), Violation::Protocol(_)));
        for (b0, payload) in [
            (0x80, &b"x"[..]),
            (0x09, b"ping"),
            (0x89, &[b'p'; 126]),
            (0xC1, b"x"),
            (0x83, b"x"),
            (0x8B, b"x"),
        ] {
            assert!(
                matches!(v(client(b0, payload)), Violation::Protocol(_)),
                "{b0:#x}"
            );
        }
        let mut unmasked = client(0x81, b"x");
        unmasked[1] &= 0x7F;
        assert!(matches!(
            decode(&unmasked, 10, 100),
            Err(Violation::Protocol(_))
        ));
        let mut inside = client(0x01, b"a");
        inside.extend(client(0x81, b"b"));
        assert!(matches!(v(inside), Violation::Protocol(_)));
    }

    #[test]
    fn a_break_stops_at_once() {
        let mut bytes = client(0x81, b"one");
        bytes.extend(client(0x81, b"two"));
        let mut d = Decoder::default();
        let mut seen = 0;
        let flow = d
            .feed(&mut bytes, 100, |_| {
                seen += 1;
                ControlFlow::Break(())
            })
            .unwrap();
        assert_eq!((flow, seen), (ControlFlow::Break(()), 1));
    }

    #[test]
    fn server_frames() {
        let f = OutFrame::json(&serde_json::json!({"type": "heartbeat-ack"})).unwrap();
        assert_eq!(f.bytes()[0], 0x81);
        assert_eq!(usize::from(f.bytes()[1]), f.bytes().len() - 2);
        assert_eq!(&f.bytes()[2..], br#"{"type":"heartbeat-ack"}"#);
        let long = OutFrame::json(&"y".repeat(300)).unwrap();
        assert_eq!(&long.bytes()[..4], &[0x81, 126, 0x01, 0x2E]);
        let huge = OutFrame::json(&"z".repeat(70_000)).unwrap();
        assert_eq!(&huge.bytes()[..2], &[0x81, 127]);
        assert_eq!(huge.bytes().len(), 70_002 + 10);
        assert_eq!(
            OutFrame::close(4000, "bye").bytes(),
            &[0x88, 5, 0x0F, 0xA0, b'b', b'y', b'e']
        );
        assert_eq!(OutFrame::control(OP_PING, b"").bytes(), &[0x89, 0]);
    }
}
