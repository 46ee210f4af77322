//! Room tokens, invite links and room ids (SPEC §2).
//!
//! The token is 32 random bytes, base64url without padding, kept only in the invite link's
//! fragment. The room id the server sees is `sha256(token)` as 64 lowercase hex characters,
//! computed over the token's ASCII text (not its decoded bytes), exactly as the browser does
//! with `SubtleCrypto.digest`. [`RoomId`] is that id parsed once, wherever it enters (a `join`,
//! `POST /rooms`, `rooms.allowlist`); past that point nothing checks hex again.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// A room id: the 32 bytes of `sha256(token)`, written as 64 lowercase hex characters.
///
/// The only constructors are [`RoomId::parse`] (the text form, strictly) and
/// [`RoomId::of_token`]. `Debug` does not show the id (it is a secret: whoever knows it may
/// join); the text form comes only from [`RoomId::to_hex`] and serialization.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoomId([u8; 32]);

/// Why a text is not a room id. The message never contains the text (a near-miss room id is
/// still a secret); it completes "this entry …" / "the room id …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RoomIdError {
    /// Not 64 characters long.
    #[error("has {0} characters")]
    Length(usize),
    /// 64 hex digits, some of them `A`-`F`.
    #[error("has uppercase letters")]
    Uppercase,
    /// 64 characters, some not hex digits.
    #[error("has characters other than 0-9 and a-f")]
    NotHex,
}

impl RoomId {
    /// What a room id looks like, as the protocol's error message says it.
    pub const RULE: &'static str = "roomId must be 64 lowercase hex characters";

    /// Parses exactly 64 lowercase hex characters.
    ///
    /// # Errors
    /// [`RoomIdError`] saying what is wrong, without the text.
    pub fn parse(s: &str) -> Result<RoomId, RoomIdError> {
        let mut bytes = [0u8; 32];
        if s.len() == 64 {
            let mut ok = true;
            for (out, pair) in bytes.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
                match (nibble(pair[0]), nibble(pair[1])) {
                    (Some(hi), Some(lo)) => *out = (hi << 4) | lo,
                    _ => ok = false,
                }
            }
            if ok {
                return Ok(RoomId(bytes));
            }
        }
        Err(match s.chars().count() {
            64 if s.bytes().all(|b| b.is_ascii_hexdigit()) => RoomIdError::Uppercase,
            64 => RoomIdError::NotHex,
            n => RoomIdError::Length(n),
        })
    }

    /// The room id of `token`: `sha256` of the token's text.
    pub fn of_token(token: &str) -> RoomId {
        RoomId(Sha256::digest(token.as_bytes()).into())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The text form: 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// One lowercase hex digit's value.
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Debug for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoomId(…)")
    }
}

impl Serialize for RoomId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(serde::ser::Error::custom)?;
        s.serialize_str(std::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for RoomId {
    /// Strictly, as [`RoomId::parse`]; the error is [`RoomId::RULE`] (never the value).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RoomId, D::Error> {
        struct Hex;
        impl Visitor<'_> for Hex {
            type Value = RoomId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a room id")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RoomId, E> {
                RoomId::parse(s).map_err(|_| E::custom(RoomId::RULE))
            }
        }
        d.deserialize_str(Hex)
    }
}

/// Whether `s` is a room id: exactly 64 lowercase hex characters.
pub fn is_room_id(s: &str) -> bool {
    RoomId::parse(s).is_ok()
}

/// A fresh room token: 32 bytes from the OS RNG, base64url, no padding (43 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The room id of `token` in its text form: lowercase hex of `sha256(token)`.
pub fn room_id(token: &str) -> String {
    RoomId::of_token(token).to_hex()
}

/// The invite link for `token` on `public_origin` (`https://call.example.org/#<token>`).
pub fn invite_link(public_origin: &str, token: &str) -> String {
    format!("{}/#{token}", public_origin.trim_end_matches('/'))
}

/// Whether `token` looks like a token this appliance makes (43 base64url characters).
pub fn is_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_id_is_sha256_of_the_token_text() {
        // Independent value: printf %s abc | sha256sum
        assert_eq!(
            room_id("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = new_token();
        assert!(is_token(&t), "{}", t.len());
        assert_eq!(
            invite_link("https://call.example.org/", "x"),
            "https://call.example.org/#x"
        );
    }

    #[test]
    fn room_ids_parse_strictly_and_round_trip() {
        let hex = room_id("abc");
        let id = RoomId::parse(&hex).unwrap();
        assert_eq!(id, RoomId::of_token("abc"));
        assert_eq!(id.to_hex(), hex);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
        assert_eq!(
            serde_json::from_str::<RoomId>(&format!("\"{hex}\"")).unwrap(),
            id
        );
        assert_eq!(
            RoomId::parse(&hex.to_uppercase()),
            Err(RoomIdError::Uppercase)
        );
        assert_eq!(RoomId::parse(&hex[..63]), Err(RoomIdError::Length(63)));
        assert_eq!(
            RoomId::parse(&format!("{}g", &hex[..63])),
            Err(RoomIdError::NotHex)
        );
        // Multi-byte characters: counted as characters, never sliced.
        assert_eq!(RoomId::parse(&"é".repeat(32)), Err(RoomIdError::Length(32)));
        assert_eq!(
            RoomId::parse(&format!("{}éA", &hex[..62])),
            Err(RoomIdError::NotHex)
        );
        let e = serde_json::from_str::<RoomId>("\"xyz\"").unwrap_err();
        assert!(e.to_string().starts_with(RoomId::RULE), "{e}");
        assert!(!format!("{id:?}").contains(&hex[..8]), "Debug hides the id");
    }
}
