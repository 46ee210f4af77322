//! A minimal STUN message codec (RFC 8489) with the TURN pieces `alisay probe` needs
//! (RFC 8656): encode a request with MESSAGE-INTEGRITY (HMAC-SHA1) and FINGERPRINT (CRC-32),
//! decode a response, verify both, and read the attributes a client acts on (ERROR-CODE, REALM,
//! NONCE, XOR-*-ADDRESS, LIFETIME).
//!
//! Why our own and not a crate: the probe sends four request types and reads six attributes;
//! the maintained TURN crates bring a whole WebRTC stack along, and the small STUN ones an
//! older error/codec framework. The encoder is checked byte for byte against the RFC 5769 test
//! vectors (see the tests at the end).
//!
//! Credentials: TURN uses the long-term mechanism, key = MD5(`username:realm:password`)
//! (RFC 8489 §9.2.2). SASLprep of the password is not applied: TURN REST passwords are base64
//! (plain ASCII), which SASLprep leaves unchanged.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;

/// The fixed magic cookie of every RFC 5389/8489 message.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
/// XORed into the CRC-32 of a FINGERPRINT attribute ("STUN").
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Bytes in a message header.
pub const HEADER_LEN: usize = 20;
/// Bytes of a MESSAGE-INTEGRITY attribute, header included.
const INTEGRITY_LEN: usize = 4 + 20;
/// Bytes of a FINGERPRINT attribute, header included.
const FINGERPRINT_LEN: usize = 4 + 4;

/// STUN/TURN methods (12 bits).
pub mod method {
    /// RFC 8489 Binding.
    pub const BINDING: u16 = 0x001;
    /// RFC 8656 Allocate.
    pub const ALLOCATE: u16 = 0x003;
    /// RFC 8656 Refresh.
    pub const REFRESH: u16 = 0x004;
    /// RFC 8656 Send (indication: client to server, data for a peer).
    pub const SEND: u16 = 0x006;
    /// RFC 8656 Data (indication: server to client, data from a peer).
    pub const DATA: u16 = 0x007;
    /// RFC 8656 CreatePermission.
    pub const CREATE_PERMISSION: u16 = 0x008;
}

/// Attribute types used here (RFC 8489 §18.3, RFC 8656 §18).
pub mod attr {
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
}

/// The class of a message (the C0/C1 bits of the type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

impl Class {
    fn bits(self) -> u16 {
        match self {
            Class::Request => 0x0000,
            Class::Indication => 0x0010,
            Class::Success => 0x0100,
            Class::Error => 0x0110,
        }
    }
}

/// Packs a method and a class into the 14-bit message type (RFC 8489 §5, figure 3).
fn message_type(class: Class, method: u16) -> u16 {
    let m = method & 0x0FFF;
    (m & 0x000F) | ((m & 0x0070) << 1) | ((m & 0x0F80) << 2) | class.bits()
}

/// Unpacks a message type into method and class.
fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000F) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0F80);
    let class = match t & 0x0110 {
        0x0000 => Class::Request,
        0x0010 => Class::Indication,
        0x0100 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

/// Why bytes are not an acceptable STUN message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    #[error("message shorter than a STUN header")]
    TooShort,
    #[error("not a STUN message (leading bits or magic cookie wrong)")]
    NotStun,
    #[error("header length {declared} does not match the {actual} bytes received")]
    Length { declared: usize, actual: usize },
    #[error("attribute 0x{0:04x} runs past the end of the message")]
    AttributeOverrun(u16),
    #[error("MESSAGE-INTEGRITY does not match (wrong key, or the message was altered)")]
    IntegrityMismatch,
    #[error("FINGERPRINT does not match the message")]
    FingerprintMismatch,
    #[error("attribute 0x{0:04x} is not a valid address")]
    BadAddress(u16),
    #[error("message too long to encode")]
    TooLong,
}

/// An outgoing message: type, transaction id and attributes in order. MESSAGE-INTEGRITY and
/// FINGERPRINT are added by [`Message::encode`], never pushed by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub class: Class,
    pub method: u16,
    pub transaction_id: [u8; 12],
    /// `(type, value)` without padding.
    pub attributes: Vec<(u16, Vec<u8>)>,
}

impl Message {
    /// A message with a fresh random transaction id.
    pub fn new(class: Class, method: u16) -> Self {
        Message {
            class,
            method,
            transaction_id: rand::random(),
            attributes: Vec::new(),
        }
    }

    /// Appends an attribute with a raw value.
    pub fn push(&mut self, typ: u16, value: impl Into<Vec<u8>>) -> &mut Self {
        self.attributes.push((typ, value.into()));
        self
    }

    /// Appends an XOR-*-ADDRESS attribute (RFC 8489 §14.2) for `addr`.
    pub fn push_xor_address(&mut self, typ: u16, addr: SocketAddr) -> &mut Self {
        let value = xor_address(addr, &self.transaction_id);
        self.push(typ, value)
    }

    /// The wire form: attributes padded to 4 bytes with zeros, then MESSAGE-INTEGRITY when
    /// `key` is given (HMAC-SHA1 over the message with the length covering it, RFC 8489
    /// §14.5), then FINGERPRINT when asked (CRC-32 XOR 0x5354554E, §14.7).
    ///
    /// # Errors
    /// [`StunError::TooLong`] if the message exceeds the 16-bit length field.
    pub fn encode(&self, key: Option<&[u8]>, fingerprint: bool) -> Result<Vec<u8>, StunError> {
        self.encode_padded(key, fingerprint, 0)
    }

    /// [`Message::encode`] with a chosen padding byte (RFC 8489 lets senders use any value;
    /// the RFC 5769 vectors use 0x20, which the tests need to reproduce them).
    fn encode_padded(
        &self,
        key: Option<&[u8]>,
        fingerprint: bool,
        pad: u8,
    ) -> Result<Vec<u8>, StunError> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&message_type(self.class, self.method).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id);
        for (typ, value) in &self.attributes {
            let len = u16::try_from(value.len()).map_err(|_| StunError::TooLong)?;
            out.extend_from_slice(&typ.to_be_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(value);
            out.resize(out.len() + padding(value.len()), pad);
        }
        if let Some(key) = key {
            let len = out.len() - HEADER_LEN + INTEGRITY_LEN;
            set_length(&mut out, len)?;
            let mac = hmac_sha1(key, &out);
            out.extend_from_slice(&attr::MESSAGE_INTEGRITY.to_be_bytes());
            out.extend_from_slice(&20u16.to_be_bytes());
            out.extend_from_slice(&mac);
        }
        if fingerprint {
            let len = out.len() - HEADER_LEN + FINGERPRINT_LEN;
            set_length(&mut out, len)?;
            let crc = crc32fast::hash(&out) ^ FINGERPRINT_XOR;
            out.extend_from_slice(&attr::FINGERPRINT.to_be_bytes());
            out.extend_from_slice(&4u16.to_be_bytes());
            out.extend_from_slice(&crc.to_be_bytes());
        }
        let len = out.len() - HEADER_LEN;
        set_length(&mut out, len)?;
        Ok(out)
    }
}

fn padding(len: usize) -> usize {
    (4 - len % 4) % 4
}

fn set_length(msg: &mut [u8], len: usize) -> Result<(), StunError> {
    let len = u16::try_from(len).map_err(|_| StunError::TooLong)?;
    msg[2..4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The long-term credential key, MD5(`username:realm:password`) (RFC 8489 §9.2.2), without
/// SASLprep (see the module doc).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    Md5::digest(format!("{username}:{realm}:{password}").as_bytes()).into()
}

/// The value of an XOR-*-ADDRESS attribute for `addr` (RFC 8489 §14.2).
fn xor_address(addr: SocketAddr, tid: &[u8; 12]) -> Vec<u8> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    let mut v = vec![0];
    match addr.ip() {
        IpAddr::V4(ip) => {
            v.push(0x01);
            v.extend_from_slice(&port.to_be_bytes());
            v.extend(ip.octets().iter().zip(cookie).map(|(a, b)| a ^ b));
        }
        IpAddr::V6(ip) => {
            v.push(0x02);
            v.extend_from_slice(&port.to_be_bytes());
            let mask = cookie.iter().chain(tid.iter());
            v.extend(ip.octets().iter().zip(mask).map(|(a, b)| a ^ b));
        }
    }
    v
}

/// One attribute of a received message: its type and where its value lies in the raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawAttr {
    typ: u16,
    /// Offset of the attribute header from the start of the message.
    start: usize,
    /// Length of the value (without padding).
    len: usize,
}

/// A received message, kept raw so that MESSAGE-INTEGRITY and FINGERPRINT can be checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub class: Class,
    pub method: u16,
    pub transaction_id: [u8; 12],
    raw: Vec<u8>,
    /// Attributes in order; after MESSAGE-INTEGRITY only FINGERPRINT is kept (RFC 8489 §14.5:
    /// anything else there is ignored).
    attrs: Vec<RawAttr>,
}

impl Decoded {
    /// Parses one whole message (`bytes` must be exactly the message).
    ///
    /// # Errors
    /// [`StunError`] for anything that is not a well-formed STUN message.
    pub fn parse(bytes: &[u8]) -> Result<Decoded, StunError> {
        if bytes.len() < HEADER_LEN {
            return Err(StunError::TooShort);
        }
        let t = u16::from_be_bytes([bytes[0], bytes[1]]);
        let cookie = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        if t & 0xC000 != 0 || cookie != MAGIC_COOKIE {
            return Err(StunError::NotStun);
        }
        let declared = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if declared % 4 != 0 || declared != bytes.len() - HEADER_LEN {
            return Err(StunError::Length {
                declared,
                actual: bytes.len() - HEADER_LEN,
            });
        }
        let (method, class) = split_type(t);
        let mut attrs = Vec::new();
        let mut pos = HEADER_LEN;
        let mut after_integrity = false;
        while pos + 4 <= bytes.len() {
            let typ = u16::from_be_bytes([bytes[pos], bytes[pos + 1]]);
            let len = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
            let end = pos + 4 + len;
            if end > bytes.len() {
                return Err(StunError::AttributeOverrun(typ));
            }
            if !after_integrity || typ == attr::FINGERPRINT {
                attrs.push(RawAttr {
                    typ,
                    start: pos,
                    len,
                });
            }
            after_integrity |= typ == attr::MESSAGE_INTEGRITY;
            pos = end + padding(len);
        }
        if pos != bytes.len() {
            return Err(StunError::AttributeOverrun(0));
        }
        let mut transaction_id = [0; 12];
        transaction_id.copy_from_slice(&bytes[8..20]);
        Ok(Decoded {
            class,
            method,
            transaction_id,
            raw: bytes.to_vec(),
            attrs,
        })
    }

    /// The total length a message starting with `header` has (header included), or `None` if
    /// `header` is not a STUN header. For stream transports (TCP/TLS) that frame by length.
    pub fn framed_len(header: &[u8; HEADER_LEN]) -> Option<usize> {
        let cookie = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        (header[0] & 0xC0 == 0 && cookie == MAGIC_COOKIE)
            .then(|| HEADER_LEN + usize::from(u16::from_be_bytes([header[2], header[3]])))
    }

    /// The value of the first attribute of type `typ`.
    pub fn get(&self, typ: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|a| a.typ == typ)
            .map(|a| &self.raw[a.start + 4..a.start + 4 + a.len])
    }

    /// A UTF-8 attribute (REALM, NONCE, SOFTWARE, USERNAME).
    pub fn text(&self, typ: u16) -> Option<&str> {
        self.get(typ).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// ERROR-CODE as `(code, reason)`, e.g. `(403, "Forbidden IP")` (RFC 8489 §14.8).
    pub fn error_code(&self) -> Option<(u16, String)> {
        let v = self.get(attr::ERROR_CODE)?;
        if v.len() < 4 {
            return None;
        }
        let code = u16::from(v[2] & 0x07) * 100 + u16::from(v[3]);
        // Some servers pad the reason phrase with NULs or spaces.
        let reason = String::from_utf8_lossy(&v[4..]);
        Some((code, reason.trim_end_matches(['\0', ' ']).to_owned()))
    }

    /// A 32-bit attribute such as LIFETIME (seconds).
    pub fn u32(&self, typ: u16) -> Option<u32> {
        let v = self.get(typ)?;
        Some(u32::from_be_bytes(v.try_into().ok()?))
    }

    /// An XOR-*-ADDRESS attribute, decoded.
    ///
    /// # Errors
    /// [`StunError::BadAddress`] when present but malformed; `Ok(None)` when absent.
    pub fn xor_address(&self, typ: u16) -> Result<Option<SocketAddr>, StunError> {
        let Some(v) = self.get(typ) else {
            return Ok(None);
        };
        let bad = || StunError::BadAddress(typ);
        if v.len() < 4 {
            return Err(bad());
        }
        let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let ip = match (v[1], v.len()) {
            (0x01, 8) => {
                let mut o = [0u8; 4];
                for (i, b) in o.iter_mut().enumerate() {
                    *b = v[4 + i] ^ cookie[i];
                }
                IpAddr::V4(Ipv4Addr::from(o))
            }
            (0x02, 20) => {
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&cookie);
                mask[4..].copy_from_slice(&self.transaction_id);
                let mut o = [0u8; 16];
                for (i, b) in o.iter_mut().enumerate() {
                    *b = v[4 + i] ^ mask[i];
                }
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(bad()),
        };
        Ok(Some(SocketAddr::new(ip, port)))
    }

    /// Whether the message carries MESSAGE-INTEGRITY.
    pub fn has_integrity(&self) -> bool {
        self.attrs.iter().any(|a| a.typ == attr::MESSAGE_INTEGRITY)
    }

    /// Checks MESSAGE-INTEGRITY with `key` (the long-term key, or the password for short-term
    /// credentials), constant-time.
    ///
    /// # Errors
    /// [`StunError::IntegrityMismatch`] when absent or wrong.
    pub fn verify_integrity(&self, key: &[u8]) -> Result<(), StunError> {
        let a = self
            .attrs
            .iter()
            .find(|a| a.typ == attr::MESSAGE_INTEGRITY && a.len == 20)
            .ok_or(StunError::IntegrityMismatch)?;
        let mut covered = self.raw[..a.start].to_vec();
        set_length(&mut covered, a.start - HEADER_LEN + INTEGRITY_LEN)?;
        let mut mac =
            <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(&covered);
        mac.verify_slice(&self.raw[a.start + 4..a.start + 24])
            .map_err(|_| StunError::IntegrityMismatch)
    }

    /// Checks FINGERPRINT if present: `Ok(false)` when absent, `Ok(true)` when it matches.
    ///
    /// # Errors
    /// [`StunError::FingerprintMismatch`] when present and wrong.
    pub fn verify_fingerprint(&self) -> Result<bool, StunError> {
        let Some(a) = self
            .attrs
            .iter()
            .find(|a| a.typ == attr::FINGERPRINT && a.len == 4)
        else {
            return Ok(false);
        };
        let want = u32::from_be_bytes(
            self.raw[a.start + 4..a.start + 8]
                .try_into()
                .expect("four bytes"),
        );
        let mut covered = self.raw[..a.start].to_vec();
        set_length(&mut covered, a.start - HEADER_LEN + FINGERPRINT_LEN)?;
        if crc32fast::hash(&covered) ^ FINGERPRINT_XOR == want {
            Ok(true)
        } else {
            Err(StunError::FingerprintMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex with whitespace ignored, as the RFC prints its dumps.
    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        ::hex::decode(s).unwrap()
    }

    // RFC 5769 §2.1: sample request, short-term credential, padding 0x20.
    const REQUEST: &str = "
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf";
    // RFC 5769 §2.2: sample IPv4 response.
    const RESPONSE_V4: &str = "
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96";
    // RFC 5769 §2.3: sample IPv6 response.
    const RESPONSE_V6: &str = "
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c";
    // RFC 5769 §2.4: sample request with long-term authentication (no FINGERPRINT).
    const REQUEST_LONG_TERM: &str = "
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66";
    const SHORT_TERM_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    fn tid(bytes: &[u8]) -> [u8; 12] {
        bytes[8..20].try_into().unwrap()
    }

    #[test]
    fn rfc5769_sample_request_encodes_byte_for_byte() {
        let want = hex(REQUEST);
        let mut m = Message::new(Class::Request, method::BINDING);
        m.transaction_id = tid(&want);
        m.push(attr::SOFTWARE, "STUN test client")
            .push(0x0024, hex("6e 00 01 ff")) // PRIORITY
            .push(0x8029, hex("93 2f f9 b1 51 26 3b 36")) // ICE-CONTROLLED
            .push(attr::USERNAME, "evtj:h6vY");
        let got = m
            .encode_padded(Some(SHORT_TERM_PASSWORD), true, 0x20)
            .unwrap();
        assert_eq!(::hex::encode(&got), ::hex::encode(&want));

        let d = Decoded::parse(&want).unwrap();
        assert_eq!((d.class, d.method), (Class::Request, method::BINDING));
        assert_eq!(d.text(attr::USERNAME), Some("evtj:h6vY"));
        d.verify_integrity(SHORT_TERM_PASSWORD).unwrap();
        assert!(d.verify_fingerprint().unwrap());
        assert_eq!(
            d.verify_integrity(b"wrong"),
            Err(StunError::IntegrityMismatch)
        );
    }

    #[test]
    fn rfc5769_sample_responses_decode_and_verify() {
        for (text, addr) in [
            (RESPONSE_V4, "192.0.2.1:32853"),
            (RESPONSE_V6, "[2001:db8:1234:5678:11:2233:4455:6677]:32853"),
        ] {
            let bytes = hex(text);
            let d = Decoded::parse(&bytes).unwrap();
            assert_eq!((d.class, d.method), (Class::Success, method::BINDING));
            assert_eq!(d.text(attr::SOFTWARE), Some("test vector"));
            assert_eq!(
                d.xor_address(attr::XOR_MAPPED_ADDRESS).unwrap(),
                Some(addr.parse().unwrap())
            );
            d.verify_integrity(SHORT_TERM_PASSWORD).unwrap();
            assert!(d.verify_fingerprint().unwrap());

            // Our encoder produces the same bytes from the decoded parts.
            let mut m = Message::new(Class::Success, method::BINDING);
            m.transaction_id = d.transaction_id;
            m.push(attr::SOFTWARE, "test vector");
            m.push_xor_address(attr::XOR_MAPPED_ADDRESS, addr.parse().unwrap());
            let got = m
                .encode_padded(Some(SHORT_TERM_PASSWORD), true, 0x20)
                .unwrap();
            assert_eq!(::hex::encode(&got), ::hex::encode(&bytes));
        }
    }

    #[test]
    fn rfc5769_long_term_request_encodes_byte_for_byte() {
        let want = hex(REQUEST_LONG_TERM);
        let username = "\u{30de}\u{30c8}\u{30ea}\u{30c3}\u{30af}\u{30b9}";
        // The RFC's password "The<U+00AD>M<U+00AA>tr<U+2168>" after SASLprep.
        let key = long_term_key(username, "example.org", "TheMatrIX");
        let mut m = Message::new(Class::Request, method::BINDING);
        m.transaction_id = tid(&want);
        m.push(attr::USERNAME, username)
            .push(attr::NONCE, "f//499k954d6OL34oL9FSTvy64sA")
            .push(attr::REALM, "example.org");
        let got = m.encode(Some(&key), false).unwrap();
        assert_eq!(::hex::encode(&got), ::hex::encode(&want));

        let d = Decoded::parse(&want).unwrap();
        d.verify_integrity(&key).unwrap();
        assert_eq!(d.verify_fingerprint(), Ok(false));
        assert_eq!(d.text(attr::REALM), Some("example.org"));
    }

    #[test]
    fn altered_messages_are_caught() {
        let mut bytes = hex(REQUEST);
        bytes[30] ^= 0x01; // inside SOFTWARE
        let d = Decoded::parse(&bytes).unwrap();
        assert_eq!(
            d.verify_integrity(SHORT_TERM_PASSWORD),
            Err(StunError::IntegrityMismatch)
        );
        assert_eq!(d.verify_fingerprint(), Err(StunError::FingerprintMismatch));

        let good = hex(REQUEST);
        assert_eq!(Decoded::parse(&good[..19]), Err(StunError::TooShort));
        assert!(matches!(
            Decoded::parse(&good[..good.len() - 4]),
            Err(StunError::Length { .. })
        ));
        let mut bad_cookie = good.clone();
        bad_cookie[4] = 0;
        assert_eq!(Decoded::parse(&bad_cookie), Err(StunError::NotStun));
        let header: [u8; HEADER_LEN] = good[..HEADER_LEN].try_into().unwrap();
        assert_eq!(Decoded::framed_len(&header), Some(good.len()));
    }

    #[test]
    fn turn_types_and_error_codes_round_trip() {
        // CreatePermission error response = 0x0118, Allocate success = 0x0103 (RFC 8656 §17).
        assert_eq!(
            message_type(Class::Error, method::CREATE_PERMISSION),
            0x0118
        );
        assert_eq!(message_type(Class::Success, method::ALLOCATE), 0x0103);
        assert_eq!(message_type(Class::Request, method::REFRESH), 0x0004);
        for t in [0x0001, 0x0111, 0x0118, 0x0103, 0x0004] {
            let (m, c) = split_type(t);
            assert_eq!(message_type(c, m), t);
        }

        let mut m = Message::new(Class::Error, method::CREATE_PERMISSION);
        m.push(
            attr::ERROR_CODE,
            [&[0, 0, 4, 3][..], b"Forbidden IP"].concat(),
        );
        let peer: SocketAddr = "[::ffff:127.0.0.1]:0".parse().unwrap();
        m.push_xor_address(attr::XOR_PEER_ADDRESS, peer);
        m.push(attr::LIFETIME, 600u32.to_be_bytes());
        let d = Decoded::parse(&m.encode(None, true).unwrap()).unwrap();
        assert_eq!(
            (d.class, d.method),
            (Class::Error, method::CREATE_PERMISSION)
        );
        assert_eq!(d.error_code(), Some((403, "Forbidden IP".to_owned())));
        assert_eq!(d.xor_address(attr::XOR_PEER_ADDRESS).unwrap(), Some(peer));
        assert_eq!(d.u32(attr::LIFETIME), Some(600));
        assert!(!d.has_integrity());
        assert!(d.verify_fingerprint().unwrap());
        // coturn pads some reason phrases with NULs.
        let mut m = Message::new(Class::Error, method::ALLOCATE);
        m.push(
            attr::ERROR_CODE,
            [&[0, 0, 4, 40][..], b"Unsupported address family\0\0"].concat(),
        );
        let d = Decoded::parse(&m.encode(None, false).unwrap()).unwrap();
        assert_eq!(
            d.error_code(),
            Some((440, "Unsupported address family".to_owned()))
        );
    }
}
