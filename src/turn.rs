//! TURN REST ephemeral credentials (the scheme coturn implements as `use-auth-secret`,
//! draft-uberti-behave-turn-rest-00): `username = "<unix expiry>:<label>"`,
//! `credential = base64(HMAC-SHA1(secret, username))`. The label is random per session and
//! never the room id. Also loads the shared secret from its file with a permission check.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha1::Sha1;

/// The shared TURN secret (coturn `static-auth-secret`). Its `Debug` never shows the value.
#[derive(Clone)]
pub struct TurnSecret(Vec<u8>);

impl fmt::Debug for TurnSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TurnSecret(<redacted>)")
    }
}

/// Why the secret file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read TURN secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TURN secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error(
        "TURN secret file {path} has mode {mode:04o}: it must not be readable by group or others (chmod 600)"
    )]
    Permissions { path: PathBuf, mode: u32 },
}

impl TurnSecret {
    /// Wraps secret bytes (tests, `alisay coturn-config`).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        TurnSecret(bytes.into())
    }

    /// Reads the secret from `path`: the file must exist, have no group/other permission bits
    /// (checked with `stat`), and hold a non-empty secret (surrounding whitespace is trimmed).
    ///
    /// # Errors
    /// [`SecretError`] naming the path (and the mode when it is too open).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let read = |source| SecretError::Read {
            path: path.to_owned(),
            source,
        };
        let stat = nix::sys::stat::stat(path).map_err(|e| read(std::io::Error::from(e)))?;
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = std::fs::read(path).map_err(read)?;
        let trimmed = text.trim_ascii();
        if trimmed.is_empty() {
            return Err(SecretError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(TurnSecret(trimmed.to_vec()))
    }

    /// The secret as text, for writing coturn's runtime config (`static-auth-secret=`).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

/// One set of TURN REST credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `<unix expiry seconds>:<label>`.
    pub username: String,
    /// base64 (standard, padded) of HMAC-SHA1(secret, username).
    pub credential: String,
    /// Unix seconds after which coturn refuses them.
    pub expires_at: u64,
}

/// Computes credentials for `label` valid until `now + ttl`.
pub fn credentials(
    secret: &TurnSecret,
    label: &str,
    now: SystemTime,
    ttl: Duration,
) -> Credentials {
    let expires_at = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ttl)
        .as_secs();
    let username = format!("{expires_at}:{label}");
    Credentials {
        credential: password(secret, &username),
        username,
        expires_at,
    }
}

/// base64(HMAC-SHA1(secret, username)): the password coturn expects for `username`.
pub fn password(secret: &TurnSecret, username: &str) -> String {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// A W3C `RTCIceServer` dictionary as the browser takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The `iceServers` list for a session: the TURN URLs with fresh credentials (if a secret and
/// URLs are configured), then the STUN URLs (only if configured). Returns the list and the
/// credentials' expiry.
pub fn ice_servers(
    turn_urls: &[String],
    stun_urls: &[String],
    secret: Option<&TurnSecret>,
    label: &str,
    now: SystemTime,
    ttl: Duration,
) -> (Vec<IceServer>, Option<u64>) {
    let mut list = Vec::with_capacity(2);
    let mut expires = None;
    if let (Some(secret), false) = (secret, turn_urls.is_empty()) {
        let c = credentials(secret, label, now, ttl);
        expires = Some(c.expires_at);
        list.push(IceServer {
            urls: turn_urls.to_vec(),
            username: Some(c.username),
            credential: Some(c.credential),
        });
    }
    if !stun_urls.is_empty() {
        list.push(IceServer {
            urls: stun_urls.to_vec(),
            username: None,
            credential: None,
        });
    }
    (list, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn credential_matches_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib,base64;print(base64.b64encode(hmac.new(b"s3cret",b"1700000000:abc",hashlib.sha1).digest()).decode())'
        let secret = TurnSecret::new("s3cret");
        assert_eq!(
            password(&secret, "1700000000:abc"),
            "7fjbb9kXxh7Rto8MZNnWJnSP8uE="
        );
        let c = credentials(
            &secret,
            "abc",
            UNIX_EPOCH + Duration::from_secs(1_699_996_400),
            Duration::from_secs(3600),
        );
        assert_eq!(c.username, "1700000000:abc");
        assert_eq!(c.expires_at, 1_700_000_000);
    }

    #[test]
    fn secret_file_must_be_private_and_non_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "  \n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            TurnSecret::from_file(&path),
            Err(SecretError::Empty { .. })
        ));
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(TurnSecret::from_file(&path).unwrap().expose(), b"abc");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = TurnSecret::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("0640"), "{err}");
        assert!(matches!(
            TurnSecret::from_file(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}
