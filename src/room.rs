//! Room tokens, invite links and room ids (SPEC §2).
//!
//! The token is 32 random bytes, base64url without padding, kept only in the invite link's
//! fragment. The room id the server sees is `sha256(token)` as 64 lowercase hex characters,
//! computed over the token's ASCII text (not its decoded bytes), exactly as the browser does
//! with `SubtleCrypto.digest`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A fresh room token: 32 bytes from the OS RNG, base64url, no padding (43 characters).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The room id of `token`: lowercase hex of `sha256(token)`.
pub fn room_id(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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
}
