//! The `alisay.yaml` schema: one struct tree, every struct `deny_unknown_fields`, every field
//! with a default so a small file is a valid file. Semantic rules (production requirements,
//! ranges, clashes) live in `validate.rs`; this file only says what each key is and why.
//!
//! Units: durations are human strings (`5s`, `10m`, `2h`, via `humantime`), sizes are bytes or
//! strings such as `64KiB` (via `bytesize`), IP ranges are CIDR (`10.0.0.0/8`) or `a-b`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bytesize::ByteSize;
use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The whole deployment, as one administrator reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `production` enforces the safe settings (https origin, no open rooms, TURN configured,
    /// no test endpoint). Defaults to `production` so that a forgotten key fails closed.
    pub mode: Mode,
    /// The origin callers type into their browser, e.g. `https://call.example.org`. Invite
    /// links are built from it and it is always an allowed WebSocket/`POST /rooms` origin.
    pub public_origin: String,
    /// Further origins allowed to open `/ws` and `POST /rooms` (exact `scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
    /// The `alisay serve` process: listener, proxies, shutdown, connection cap, metrics.
    pub server: ServerConfig,
    /// Static and generated rooms, and how many may exist.
    pub rooms: RoomsConfig,
    /// Limits of the signaling WebSocket.
    pub signaling: SignalingConfig,
    /// TURN credentials and the coturn instance.
    pub turn: TurnConfig,
    /// The Nginx site in front of `alisay serve`.
    pub nginx: NginxConfig,
    /// Where things live on the host.
    pub paths: PathsConfig,
    /// Process logging.
    pub logging: LoggingConfig,
}

/// Deployment mode: see [`Config::mode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A public deployment: every safety rule is enforced.
    #[default]
    Production,
    /// A trial on this machine: open rooms and the TURN test endpoint may be enabled (on
    /// loopback only), `http://` origins are fine.
    Development,
}

/// The `alisay serve` process itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where `alisay serve` listens; normally loopback behind nginx.
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` is believed (nginx runs locally, so loopback only).
    pub trusted_proxies: Vec<IpRange>,
    /// How long a graceful shutdown waits for sockets to say `bye` before exiting.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub shutdown_grace: Duration,
    /// Open WebSockets at most; further upgrades get 503. Keeps one host from being exhausted.
    pub max_connections: usize,
    /// Optional Prometheus listener (loopback only); `null` disables `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

/// Which rooms exist and how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoomsConfig {
    /// Static room ids (`sha256(token)`, 64 lowercase hex). Secrets: whoever knows one may join.
    pub allowlist: Vec<String>,
    /// Admit any well-formed room id without registration. Development only.
    pub allow_open_rooms: bool,
    /// Active rooms plus pending reservations never exceed this.
    pub max_active: usize,
    /// A room with no message and no heartbeat for this long is closed.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub idle_ttl: Duration,
    /// Rooms registered by browsers with `POST /rooms`.
    pub generated: GeneratedRoomsConfig,
}

/// Rooms that browsers register with `POST /rooms` (the **Generate room** button).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GeneratedRoomsConfig {
    /// Whether `POST /rooms` is served at all (404 otherwise).
    pub enabled: bool,
    /// A registration nobody joins is dropped after this long.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub reservation_ttl: Duration,
    /// Per client IP: active generated rooms plus unjoined reservations never exceed this.
    pub per_ip: usize,
}

/// Limits of the signaling WebSocket (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SignalingConfig {
    /// Largest WebSocket message (and frame) accepted.
    #[serde(with = "super::units::bytes")]
    #[schemars(schema_with = "super::units::bytes_schema")]
    pub max_message_bytes: ByteSize,
    /// Largest `sdp` in an `offer` or `answer`.
    #[serde(with = "super::units::bytes")]
    #[schemars(schema_with = "super::units::bytes_schema")]
    pub max_sdp_bytes: ByteSize,
    /// The first message must be `join` within this time of the upgrade.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub join_timeout: Duration,
    /// Sent to clients as `heartbeatSeconds`; the server pings at this interval and closes a
    /// socket silent for three intervals.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub heartbeat_interval: Duration,
    /// Per-socket message rate (token bucket).
    pub message_rate: Rate,
    /// Per-client-IP rate of joins and `POST /rooms` (token bucket).
    pub join_rate: Rate,
    /// Outgoing messages queued per socket; a socket whose queue is full is closed (4012).
    pub outbox_messages: usize,
}

/// A token bucket: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Tokens added per second (may be fractional, e.g. `0.5`).
    pub per_second: f64,
    /// Bucket size: how many events may come at once after a quiet spell.
    pub burst: u32,
}

/// TURN: the credentials `alisay serve` issues (TURN REST, coturn `use-auth-secret`) and the
/// coturn instance `alisay render` configures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TurnConfig {
    /// `turn:`/`turns:` URLs handed to browsers in `iceServers`. Empty = no relay available.
    pub urls: Vec<String>,
    /// `stun:` URLs, only if you want them (Relay-only mode never uses them).
    pub stun_urls: Vec<String>,
    /// File holding the shared secret (coturn `static-auth-secret`); mode 0600 or stricter.
    /// Typically a systemd credential. The secret itself is never in this YAML.
    pub secret_file: Option<PathBuf>,
    /// Lifetime of issued credentials (the `<expiry>` part of the username).
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub credential_ttl: Duration,
    /// `GET /turn-credentials` for trickle-ICE testing. Development only.
    pub test_endpoint: bool,
    /// coturn `realm`.
    pub realm: String,
    /// coturn `listening-port` (TURN over UDP and TCP).
    pub listening_port: u16,
    /// coturn `tls-listening-port` (TURN over TLS); used only if `tls_cert` is set.
    pub tls_listening_port: u16,
    /// coturn `listening-ip`s; empty = all.
    pub listening_ips: Vec<IpAddr>,
    /// coturn `relay-ip`s; empty = coturn's choice.
    pub relay_ips: Vec<IpAddr>,
    /// coturn `external-ip` (public address when behind 1:1 NAT).
    pub external_ip: Option<IpAddr>,
    /// coturn `min-port`/`max-port`: the relay port range. Two callers need few ports.
    pub min_port: u16,
    /// Last port of the relay range (see `min_port`).
    pub max_port: u16,
    /// Certificate and key for TURN over TLS (`cert`/`pkey`).
    pub tls_cert: Option<PathBuf>,
    /// Private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Ranges denied in addition to the built-in private/loopback/reserved list.
    pub denied_peer_ips: Vec<IpRange>,
    /// Ranges explicitly allowed (coturn `allowed-peer-ip`), e.g. the server's own relay address.
    pub allowed_peer_ips: Vec<IpRange>,
    /// coturn `user-quota`: allocations per TURN username (one username per caller and
    /// credential refresh). The default, 30, is what one honest caller holds at most: see
    /// [`DEFAULT_USER_QUOTA`].
    pub user_quota: u32,
    /// coturn `total-quota`: allocations on the whole server.
    pub total_quota: u32,
    /// coturn `max-bps` per session, 0 = unlimited.
    pub max_bps: u64,
    /// Load the rendered nftables table (`nftables/alisay-coturn.nft`, installed at
    /// `paths.coturn_nft`) with `paths.nft` each time `alisay-coturn.service` starts, and
    /// delete it when the service stops: coturn's sockets may then reach this host's own
    /// addresses only as replies or on the relay port range, so TURN credentials cannot relay
    /// to the host's other services on its public address (coturn's `denied-peer-ip` covers
    /// only private and reserved ranges). Needs nftables and the unified cgroup hierarchy
    /// (cgroup v2 at `/sys/fs/cgroup`); the service refuses to start if loading fails. `false`
    /// leaves the host's own services reachable through the relay.
    pub host_firewall: bool,
}

/// The Nginx site `alisay render` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NginxConfig {
    /// `server_name` of the site; defaults to the host of `public_origin` when empty.
    pub server_name: String,
    /// Address nginx listens on for HTTPS and HTTP (`*` = all).
    pub listen_address: String,
    /// Port of the HTTPS server block.
    pub https_port: u16,
    /// Port of the HTTP server block (redirects to HTTPS, serves ACME http-01).
    pub http_port: u16,
    /// TLS certificate chain and key (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Private key of `tls_cert` (PEM).
    pub tls_key: Option<PathBuf>,
    /// Directory served for ACME http-01 challenges on port 80.
    pub acme_root: Option<PathBuf>,
    /// `limit_req` rate for `POST /rooms` per client IP, in nginx syntax.
    pub rooms_rate: String,
    /// `Strict-Transport-Security` max-age.
    #[serde(with = "super::units::duration")]
    #[schemars(schema_with = "super::units::duration_schema")]
    pub hsts_max_age: Duration,
    /// Where nginx writes this site's logs.
    pub access_log: PathBuf,
    /// Where nginx writes this site's errors.
    pub error_log: PathBuf,
}

/// Where things live on the host (used by the renderer and the deployment packages).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// The installed `alisay` binary.
    pub binary: PathBuf,
    /// The installed config file (what the units pass to `--config`).
    pub config: PathBuf,
    /// coturn's `turnserver` binary.
    pub turnserver: PathBuf,
    /// State directory (owned by the service).
    pub state_dir: PathBuf,
    /// Runtime directory for coturn's generated config (contains the secret; tmpfs).
    pub coturn_runtime_dir: PathBuf,
    /// The `nft` binary (nftables) that loads the coturn unit's table (`turn.host_firewall`).
    pub nft: PathBuf,
    /// Where the deployment installs the rendered `nftables/alisay-coturn.nft`, which the
    /// coturn unit loads at start (`turn.host_firewall`).
    pub coturn_nft: PathBuf,
}

/// Process logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `tracing` filter directive (`info`, `alisay=debug`, ...). `RUST_LOG` wins if set.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Production,
            public_origin: String::new(),
            allowed_origins: Vec::new(),
            server: ServerConfig::default(),
            rooms: RoomsConfig::default(),
            signaling: SignalingConfig::default(),
            turn: TurnConfig::default(),
            nginx: NginxConfig::default(),
            paths: PathsConfig::default(),
            logging: LoggingConfig::default(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8787)),
            trusted_proxies: vec![
                IpRange::from_str("127.0.0.0/8").expect("literal"),
                IpRange::from_str("::1/128").expect("literal"),
            ],
            shutdown_grace: Duration::from_secs(5),
            max_connections: 20_000,
            metrics_listen: None,
        }
    }
}

impl Default for RoomsConfig {
    fn default() -> Self {
        RoomsConfig {
            allowlist: Vec::new(),
            allow_open_rooms: false,
            max_active: 1_000,
            idle_ttl: Duration::from_secs(2 * 3600),
            generated: GeneratedRoomsConfig::default(),
        }
    }
}

impl Default for GeneratedRoomsConfig {
    fn default() -> Self {
        GeneratedRoomsConfig {
            enabled: true,
            reservation_ttl: Duration::from_secs(600),
            per_ip: 10,
        }
    }
}

impl Default for SignalingConfig {
    fn default() -> Self {
        SignalingConfig {
            max_message_bytes: ByteSize::kib(64),
            max_sdp_bytes: ByteSize::kib(32),
            join_timeout: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(20),
            message_rate: Rate {
                per_second: 20.0,
                burst: 40,
            },
            join_rate: Rate {
                per_second: 1.0,
                burst: 30,
            },
            outbox_messages: 32,
        }
    }
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            urls: Vec::new(),
            stun_urls: Vec::new(),
            secret_file: None,
            credential_ttl: Duration::from_secs(3600),
            test_endpoint: false,
            realm: String::new(),
            listening_port: 3478,
            tls_listening_port: 5349,
            listening_ips: Vec::new(),
            relay_ips: Vec::new(),
            external_ip: None,
            min_port: 49_160,
            max_port: 49_200,
            tls_cert: None,
            tls_key: None,
            denied_peer_ips: Vec::new(),
            allowed_peer_ips: Vec::new(),
            user_quota: DEFAULT_USER_QUOTA,
            total_quota: 1_200,
            max_bps: 0,
            host_firewall: true,
        }
    }
}

/// Default `turn.user_quota`: the allocations one honest caller holds at once with the same
/// credentials. A browser allocates once per TURN URL (up to 3: `turn:` UDP, `turn:` TCP,
/// `turns:`) and per local network interface it gathers on (2 on a phone with Wi-Fi and
/// mobile data): 6 per ICE gathering. At most five gatherings are held at once: the network
/// check's (released when it closes, but coturn may count it a moment longer) and the call
/// connection's four ICE generations: a browser keeps every generation's allocations until the
/// connection closes, and the client restarts ICE in place up to three times per connection
/// (three network changes in one call, Wi-Fi to mobile and back, keep the connection, its DTLS
/// fingerprints and so its safety code), then replaces the connection, which releases them all
/// (`public/js/generations.js`). 5 x 6 = 30. Retries and restarts never need more; 12, the
/// old default, was used up by one caller's own restarts (issue 17).
pub const DEFAULT_USER_QUOTA: u32 = 30;

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            server_name: String::new(),
            listen_address: "*".to_owned(),
            https_port: 443,
            http_port: 80,
            tls_cert: None,
            tls_key: None,
            acme_root: Some(PathBuf::from("/var/lib/alisay/acme")),
            rooms_rate: "10r/m".to_owned(),
            hsts_max_age: Duration::from_secs(63_072_000),
            access_log: PathBuf::from("/var/log/nginx/alisay.access.log"),
            error_log: PathBuf::from("/var/log/nginx/alisay.error.log"),
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            binary: PathBuf::from("/usr/local/bin/alisay"),
            config: PathBuf::from("/etc/alisay/alisay.yaml"),
            turnserver: PathBuf::from("/usr/bin/turnserver"),
            state_dir: PathBuf::from("/var/lib/alisay"),
            coturn_runtime_dir: PathBuf::from("/run/alisay-coturn"),
            nft: PathBuf::from("/usr/sbin/nft"),
            coturn_nft: PathBuf::from("/etc/alisay/alisay-coturn.nft"),
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// An inclusive IP address range, written in YAML as CIDR (`10.0.0.0/8`, `::1/128`), a single
/// address, or `a-b` (coturn's own syntax). Both ends are of the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    pub start: IpAddr,
    pub end: IpAddr,
}

/// Why a string is not an [`IpRange`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpRangeError {
    #[error("`{0}` is not an IP address, a CIDR block or an `a-b` range")]
    Syntax(String),
    #[error("`{0}` mixes IPv4 and IPv6")]
    MixedFamilies(String),
    #[error("`{0}` ends before it starts")]
    Reversed(String),
    /// A CIDR block whose address has bits set past the prefix (`10.1.2.3/8`): almost always a
    /// host address typed where its network was meant.
    #[error("`{0}` has host bits set: its network is `{1}`")]
    HostBits(String, String),
}

impl IpRange {
    /// Whether `ip` lies inside the range (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.start, self.end, ip) {
            (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => a <= x && x <= b,
            (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => a <= x && x <= b,
            _ => false,
        }
    }

    /// The CIDR block this range is exactly, if it is one (what coturn 4.16+ requires of IPv6).
    pub fn as_prefix(&self) -> Option<IpNet> {
        let (start, end): (u128, u128) = match (self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a).into(), u32::from(b).into()),
            (IpAddr::V6(a), IpAddr::V6(b)) => (a.into(), b.into()),
            _ => return None,
        };
        let bits: u32 = if self.start.is_ipv4() { 32 } else { 128 };
        let size = end.checked_sub(start)?.checked_add(1);
        let host_bits = match size {
            None => 128, // the whole IPv6 space
            Some(n) if n.is_power_of_two() => n.trailing_zeros(),
            Some(_) => return None,
        };
        if host_bits < 128 && start & ((1u128 << host_bits) - 1) != 0 {
            return None;
        }
        IpNet::new(self.start, (bits - host_bits) as u8).ok()
    }
}

impl FromStr for IpRange {
    type Err = IpRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let syntax = || IpRangeError::Syntax(text.to_owned());
        let (start, end) = if let Some((a, b)) = text.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| syntax())?;
            let b: IpAddr = b.trim().parse().map_err(|_| syntax())?;
            (a, b)
        } else if text.contains('/') {
            let net: IpNet = text.parse().map_err(|_| syntax())?;
            if net.network() != net.addr() {
                return Err(IpRangeError::HostBits(
                    text.to_owned(),
                    net.trunc().to_string(),
                ));
            }
            (net.network(), net.broadcast())
        } else {
            let a: IpAddr = text.parse().map_err(|_| syntax())?;
            (a, a)
        };
        let range = IpRange { start, end };
        if start.is_ipv4() != end.is_ipv4() {
            return Err(IpRangeError::MixedFamilies(text.to_owned()));
        }
        if !range.contains(end) || !range.contains(start) {
            return Err(IpRangeError::Reversed(text.to_owned()));
        }
        Ok(range)
    }
}

impl fmt::Display for IpRange {
    /// CIDR when the range is a prefix, `a-b` otherwise (the form YAML readers expect).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_prefix() {
            Some(net) => write!(f, "{net}"),
            None => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_in_every_form() {
        let r: IpRange = "10.0.0.0/8".parse().unwrap();
        assert_eq!(r.start.to_string(), "10.0.0.0");
        assert_eq!(r.end.to_string(), "10.255.255.255");
        assert_eq!(r.to_string(), "10.0.0.0/8");
        let r: IpRange = "10.0.0.1-10.0.0.3".parse().unwrap();
        assert_eq!(r.to_string(), "10.0.0.1-10.0.0.3");
        assert!(r.contains("10.0.0.2".parse().unwrap()));
        assert!(!r.contains("10.0.0.4".parse().unwrap()));
        let r: IpRange = "::ffff:0:0/96".parse().unwrap();
        assert_eq!(r.end.to_string(), "::ffff:255.255.255.255");
        assert_eq!("::1".parse::<IpRange>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "10.1.2.3/8".parse::<IpRange>().unwrap_err().to_string(),
            "`10.1.2.3/8` has host bits set: its network is `10.0.0.0/8`"
        );
        assert!(matches!(
            "10.0.0.9-10.0.0.1".parse::<IpRange>(),
            Err(IpRangeError::Reversed(_))
        ));
        assert!(matches!(
            "10.0.0.1-::1".parse::<IpRange>(),
            Err(IpRangeError::MixedFamilies(_))
        ));
        assert!(matches!(
            "nonsense".parse::<IpRange>(),
            Err(IpRangeError::Syntax(_))
        ));
    }
}
