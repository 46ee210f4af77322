//! Semantic validation of a loaded [`Config`]: every rule checked, every problem reported with
//! its key path, nothing short-circuited. Each message is lowercase, names what is wrong and
//! says what would be valid. `docs/config.md` lists the rules next to each key.
//!
//! What is checked here is what can be known from the file alone: the secret file and TLS
//! files are only named here; `serve` and `render` open them (and check the secret file's
//! mode) when they use them.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;

use super::peers::{self, NEVER_ALLOWED_IN_PRODUCTION};
use super::{Config, IpRange, Mode, Rate};

/// One broken rule: the key path (`turn.secret_file`, `rooms.allowlist[2]`) and what is wrong
/// with it. The loader appends where the value came from to the message, when it knows
/// (` (in /etc/alisay/alisay.yaml)`, ` (from environment variable ALISAY_TURN__URLS)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, with `[i]` for list items; empty for the file as a whole.
    pub path: String,
    /// Lowercase, specific, says what would be valid. Never contains a room id or secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All problems of one config. `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Top-level keys in schema order, to sort problems by section.
const SECTIONS: [&str; 10] = [
    "mode",
    "public_origin",
    "allowed_origins",
    "server",
    "rooms",
    "signaling",
    "turn",
    "nginx",
    "paths",
    "logging",
];

/// Bounds of `signaling.max_message_bytes`.
const MIN_MESSAGE: ByteSize = ByteSize::kib(1);
const MAX_MESSAGE: ByteSize = ByteSize::mib(1);
/// Smallest `signaling.max_sdp_bytes`.
const MIN_SDP: ByteSize = ByteSize::kib(1);
/// `turn.credential_ttl` bounds: production, and the lower bound in development (tests).
const MIN_TTL: Duration = Duration::from_secs(60);
const MIN_TTL_DEVELOPMENT: Duration = Duration::from_secs(10);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest `server.shutdown_grace` (systemd's stop timeout must cover it).
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(600);
/// Smallest `signaling.outbox_messages`: `joined`, `peer-joined`, `start` and an offer must fit.
const MIN_OUTBOX: usize = 4;
/// Lowest port of the TURN relay range and listeners of our coturn (unprivileged range).
const MIN_TURN_PORT: u16 = 1024;

impl Config {
    /// Checks every semantic rule.
    ///
    /// # Errors
    /// All broken rules at once, each with its key path, grouped by section in schema order.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        self.check_origins(&mut p);
        self.check_server(&mut p);
        self.check_rooms(&mut p);
        self.check_signaling(&mut p);
        self.check_turn(&mut p);
        self.check_nginx(&mut p);
        self.check_paths(&mut p);
        self.check_listeners(&mut p);
        self.check_logging(&mut p);
        if p.0.is_empty() {
            return Ok(());
        }
        // Group by section in schema order; rules keep their order within a section.
        p.0.sort_by_key(|problem| {
            let top = problem.path.split(['.', '[']).next().unwrap_or("");
            SECTIONS
                .iter()
                .position(|s| *s == top)
                .unwrap_or(SECTIONS.len())
        });
        Err(p)
    }

    fn production(&self) -> bool {
        self.mode == Mode::Production
    }

    fn check_origins(&self, p: &mut Problems) {
        match origin_problem(&self.public_origin) {
            Some(why) => p.push("public_origin", why),
            None if self.production() && !self.public_origin.starts_with("https://") => p.push(
                "public_origin",
                format!(
                    "must be an https:// origin in production (browsers give camera and \
                     microphone only to secure pages), not `{}`",
                    self.public_origin
                ),
            ),
            None => {}
        }
        let mut seen: HashMap<&str, String> = HashMap::new();
        seen.insert(self.public_origin.as_str(), "public_origin".to_owned());
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            let path = format!("allowed_origins[{i}]");
            if let Some(why) = origin_problem(origin) {
                p.push(&path, why);
            } else if self.production() && !origin.starts_with("https://") {
                p.push(
                    &path,
                    format!(
                        "must be an https:// origin in production (a plain http page can be \
                         altered in transit), not `{origin}`"
                    ),
                );
            }
            if let Some(first) = seen.get(origin.as_str()) {
                p.push(&path, format!("repeats {first}; list each origin once"));
            } else {
                seen.insert(origin, path);
            }
        }
    }

    fn check_server(&self, p: &mut Problems) {
        let s = &self.server;
        if s.listen.port() == 0 {
            p.push(
                "server.listen",
                "port 0 would pick a random port nginx cannot know; give a fixed port, e.g. \
                 `127.0.0.1:8787`",
            );
        }
        if s.shutdown_grace > MAX_SHUTDOWN_GRACE {
            p.push(
                "server.shutdown_grace",
                format!(
                    "must be at most 10m (is {}); `0s` closes sockets at once",
                    super::duration::format(s.shutdown_grace)
                ),
            );
        }
        if s.max_connections < 2 {
            p.push(
                "server.max_connections",
                format!(
                    "must be at least 2 (one call needs two sockets), is {}",
                    s.max_connections
                ),
            );
        }
        if let Some(metrics) = s.metrics_listen {
            if !metrics.ip().is_loopback() {
                p.push(
                    "server.metrics_listen",
                    format!(
                        "must be a loopback address such as `127.0.0.1:9090` (metrics are not \
                         for the public), not `{metrics}`"
                    ),
                );
            }
            if metrics.port() == 0 {
                p.push(
                    "server.metrics_listen",
                    "port 0 would pick a random port; give a fixed port, e.g. `127.0.0.1:9090`",
                );
            }
        }
        for (i, range) in s.trusted_proxies.iter().enumerate() {
            if contains_everything(range) {
                p.push(
                    format!("server.trusted_proxies[{i}]"),
                    format!(
                        "`{range}` trusts every address, so any client could forge \
                         X-Forwarded-For; list only the proxies in front of alisay (nginx runs \
                         on loopback)"
                    ),
                );
            }
        }
    }

    fn check_rooms(&self, p: &mut Problems) {
        let r = &self.rooms;
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, id) in r.allowlist.iter().enumerate() {
            let path = format!("rooms.allowlist[{i}]");
            // Never echo the value: a near-miss room id is still a secret (the error does not).
            if let Err(what) = crate::room::RoomId::parse(id) {
                p.push(
                    &path,
                    format!(
                        "must be 64 lowercase hex characters (the sha256 of a room token, as \
                         `alisay room new` prints it); this entry {what}"
                    ),
                );
            }
            if let Some(first) = seen.get(id.as_str()) {
                p.push(
                    &path,
                    format!("repeats rooms.allowlist[{first}]; list each room id once"),
                );
            } else {
                seen.insert(id, i);
            }
        }
        if r.allow_open_rooms {
            if self.production() {
                p.push(
                    "rooms.allow_open_rooms",
                    "must be false in production (open rooms admit any room id without \
                     registration); set `mode: development` to try open rooms locally",
                );
            } else if !self.server.listen.ip().is_loopback() {
                p.push(
                    "rooms.allow_open_rooms",
                    format!(
                        "open rooms are served only on loopback, but server.listen is `{}`; \
                         listen on `127.0.0.1` or set this to false",
                        self.server.listen
                    ),
                );
            }
        }
        if r.max_active < 1 {
            p.push("rooms.max_active", "must be at least 1");
        }
        if r.idle_ttl <= self.signaling.heartbeat_interval {
            p.push(
                "rooms.idle_ttl",
                format!(
                    "must be longer than signaling.heartbeat_interval ({}), else a room whose \
                     peers only send heartbeats is closed between two of them; is {}",
                    super::duration::format(self.signaling.heartbeat_interval),
                    super::duration::format(r.idle_ttl)
                ),
            );
        }
        if r.generated.enabled && r.generated.reservation_ttl.is_zero() {
            p.push(
                "rooms.generated.reservation_ttl",
                "must be longer than 0s (a registration must live until the caller joins), \
                 e.g. `10m`",
            );
        }
        if r.generated.per_ip < 1 {
            p.push(
                "rooms.generated.per_ip",
                "must be at least 1; set rooms.generated.enabled to false to turn off \
                 generated rooms",
            );
        }
    }

    fn check_signaling(&self, p: &mut Problems) {
        let s = &self.signaling;
        if s.max_message_bytes < MIN_MESSAGE || s.max_message_bytes > MAX_MESSAGE {
            p.push(
                "signaling.max_message_bytes",
                format!(
                    "must be between 1 KiB and 1 MiB, is {}",
                    super::bytes::format(s.max_message_bytes)
                ),
            );
        }
        if s.max_sdp_bytes >= s.max_message_bytes {
            p.push(
                "signaling.max_sdp_bytes",
                format!(
                    "must be smaller than signaling.max_message_bytes ({}), since the sdp \
                     travels inside a message; is {}",
                    super::bytes::format(s.max_message_bytes),
                    super::bytes::format(s.max_sdp_bytes)
                ),
            );
        }
        if s.max_sdp_bytes < MIN_SDP {
            p.push(
                "signaling.max_sdp_bytes",
                format!(
                    "must be at least 1 KiB (a real session description is several KiB), is {}",
                    super::bytes::format(s.max_sdp_bytes)
                ),
            );
        }
        if s.join_timeout.is_zero() {
            p.push(
                "signaling.join_timeout",
                "must be longer than 0s (every socket would be closed before its join), e.g. `5s`",
            );
        }
        let hb = s.heartbeat_interval;
        if hb < Duration::from_secs(1) || hb.subsec_nanos() != 0 {
            p.push(
                "signaling.heartbeat_interval",
                format!(
                    "must be a whole number of seconds, at least 1s (clients receive it as \
                     heartbeatSeconds), is {}",
                    super::duration::format(hb)
                ),
            );
        }
        rate_problems(p, "signaling.message_rate", &s.message_rate);
        rate_problems(p, "signaling.join_rate", &s.join_rate);
        if s.outbox_messages < MIN_OUTBOX {
            p.push(
                "signaling.outbox_messages",
                format!(
                    "must be at least {MIN_OUTBOX} (joined, peer-joined, start and an offer \
                     must fit), is {}",
                    s.outbox_messages
                ),
            );
        }
    }

    fn check_turn(&self, p: &mut Problems) {
        let t = &self.turn;
        let mut has_turn_url = false;
        for (i, url) in t.urls.iter().enumerate() {
            let path = format!("turn.urls[{i}]");
            match ice_url_problem(url, &["turn:", "turns:"]) {
                Some(why) => p.push(&path, why),
                None => has_turn_url = true,
            }
            if url.starts_with("turns:") && (t.tls_cert.is_none() || t.tls_key.is_none()) {
                p.push(
                    &path,
                    "a turns: url needs turn.tls_cert and turn.tls_key (coturn serves TURN over \
                     TLS only with them); set both or use a turn: url",
                );
            }
        }
        for (i, url) in t.stun_urls.iter().enumerate() {
            if let Some(why) = ice_url_problem(url, &["stun:", "stuns:"]) {
                p.push(format!("turn.stun_urls[{i}]"), why);
            }
        }
        if self.production() {
            if t.secret_file.is_none() {
                p.push(
                    "turn.secret_file",
                    "production requires TURN: name the file holding the shared secret, e.g. \
                     `/etc/alisay/turn-secret`",
                );
            }
            if !has_turn_url {
                p.push(
                    "turn.urls",
                    "production requires TURN: list at least one turn: or turns: url, e.g. \
                     `turns:call.example.org:5349`",
                );
            }
        } else if !t.urls.is_empty() && t.secret_file.is_none() {
            p.push(
                "turn.secret_file",
                "turn.urls are set, so credentials must be issued: name the file holding the \
                 shared secret",
            );
        }
        if t.test_endpoint {
            if self.production() {
                p.push(
                    "turn.test_endpoint",
                    "must be false in production (it hands TURN credentials to anyone who asks)",
                );
            } else if !self.server.listen.ip().is_loopback() {
                p.push(
                    "turn.test_endpoint",
                    format!(
                        "is served only on loopback, but server.listen is `{}`; listen on \
                         `127.0.0.1` or set this to false",
                        self.server.listen
                    ),
                );
            }
            if t.secret_file.is_none() {
                p.push(
                    "turn.test_endpoint",
                    "needs turn.secret_file to issue credentials",
                );
            }
        }
        let min_ttl = if self.production() {
            MIN_TTL
        } else {
            MIN_TTL_DEVELOPMENT
        };
        if t.credential_ttl < min_ttl || t.credential_ttl > MAX_TTL {
            p.push(
                "turn.credential_ttl",
                format!(
                    "must be between {} and 24h{}, is {}",
                    super::duration::format(min_ttl),
                    if self.production() {
                        " in production"
                    } else {
                        ""
                    },
                    super::duration::format(t.credential_ttl)
                ),
            );
        }
        if !t.realm.is_empty() && !is_dns_name(&t.realm) {
            p.push(
                "turn.realm",
                format!(
                    "must be a lowercase dns name such as `call.example.org`, not `{}`",
                    t.realm.escape_debug()
                ),
            );
        }
        for (key, port) in [
            ("turn.listening_port", t.listening_port),
            ("turn.tls_listening_port", t.tls_listening_port),
            ("turn.min_port", t.min_port),
            ("turn.max_port", t.max_port),
        ] {
            if port < MIN_TURN_PORT {
                p.push(
                    key,
                    format!(
                        "must be between {MIN_TURN_PORT} and 65535 (coturn runs without \
                         privileges), is {port}"
                    ),
                );
            }
        }
        if t.min_port > t.max_port {
            p.push(
                "turn.min_port",
                format!(
                    "must not be above turn.max_port ({}), is {}",
                    t.max_port, t.min_port
                ),
            );
        }
        if t.listening_port == t.tls_listening_port {
            p.push(
                "turn.tls_listening_port",
                format!(
                    "must differ from turn.listening_port (both are {})",
                    t.listening_port
                ),
            );
        }
        both_or_neither(
            p,
            ("turn.tls_cert", t.tls_cert.as_deref()),
            ("turn.tls_key", t.tls_key.as_deref()),
        );
        self.check_peer_ranges(p);
    }

    /// Keeps coturn from becoming a relay into the host or its network (SPEC §6).
    fn check_peer_ranges(&self, p: &mut Problems) {
        let t = &self.turn;
        for (key, list) in [
            ("turn.denied_peer_ips", &t.denied_peer_ips),
            ("turn.allowed_peer_ips", &t.allowed_peer_ips),
        ] {
            for (i, range) in list.iter().enumerate() {
                if range.start.is_ipv6() && range.as_prefix().is_none() {
                    p.push(
                        format!("{key}[{i}]"),
                        format!(
                            "`{range}` is not one CIDR block; write ipv6 ranges as CIDR blocks \
                             (coturn before 4.16 misreads unaligned ipv6 ranges)"
                        ),
                    );
                }
            }
        }
        if self.production() {
            for (i, range) in t.allowed_peer_ips.iter().enumerate() {
                let bad: Vec<&str> = NEVER_ALLOWED_IN_PRODUCTION
                    .iter()
                    .filter(|n| peers::overlaps(range, &n.range()))
                    .map(|n| n.what)
                    .collect();
                if let Some(first) = bad.first() {
                    p.push(
                        format!("turn.allowed_peer_ips[{i}]"),
                        format!(
                            "`{range}` includes {first}; in production the relay must never \
                             reach loopback, unspecified or metadata addresses, so allow only \
                             the specific addresses you need"
                        ),
                    );
                }
            }
        }
        let allowed = |ip: IpAddr| t.allowed_peer_ips.iter().any(|r| r.contains(ip));
        let denied = |ip: IpAddr| -> Option<String> {
            if let Some(what) = peers::default_denied(ip) {
                return Some(format!("a default-denied range ({what})"));
            }
            t.denied_peer_ips
                .iter()
                .find(|r| r.contains(ip))
                .map(|r| format!("turn.denied_peer_ips entry `{r}`"))
        };
        // The addresses peers relay to: external_ip (behind 1:1 NAT, where the relay address
        // of its family is private and admitted by the render, see peers::nat_relay), and
        // every relay address of another family, which peers see as it is.
        let mut relay_addresses: Vec<(String, IpAddr)> = Vec::new();
        if let Some(ip) = t.external_ip {
            relay_addresses.push(("turn.external_ip".to_owned(), ip));
            if let Err(e) = peers::nat_relay(t) {
                p.push("turn.external_ip", e.to_string());
            }
        }
        for (i, ip) in t.relay_ips.iter().enumerate() {
            if t.external_ip.is_none_or(|e| e.is_ipv4() != ip.is_ipv4()) {
                relay_addresses.push((format!("turn.relay_ips[{i}]"), *ip));
            }
        }
        for (path, ip) in relay_addresses {
            if ip.is_unspecified() || ip.is_multicast() {
                p.push(
                    &path,
                    format!("`{ip}` cannot be a relay address; give the host's own address"),
                );
            } else if let Some(range) = denied(ip).filter(|_| !allowed(ip)) {
                p.push(
                    &path,
                    format!(
                        "`{ip}` is in {range}, so coturn would refuse to relay between two \
                         callers on this server; use a public address (with turn.external_ip \
                         behind 1:1 nat) or add exactly `{ip}` to turn.allowed_peer_ips"
                    ),
                );
            }
        }
    }

    fn check_nginx(&self, p: &mut Problems) {
        let n = &self.nginx;
        if !n.server_name.is_empty() && !is_dns_name(&n.server_name) {
            p.push(
                "nginx.server_name",
                format!(
                    "must be one lowercase dns name such as `call.example.org` (or empty for the \
                     host of public_origin), not `{}`",
                    n.server_name.escape_debug()
                ),
            );
        }
        if n.listen_address != "*" && parse_listen_address(&n.listen_address).is_none() {
            p.push(
                "nginx.listen_address",
                format!(
                    "must be `*` or one ip address (`[...]` allowed for ipv6), not `{}`",
                    n.listen_address.escape_debug()
                ),
            );
        }
        for (key, port) in [
            ("nginx.https_port", n.https_port),
            ("nginx.http_port", n.http_port),
        ] {
            if port == 0 {
                p.push(key, "must be a port between 1 and 65535");
            }
        }
        if n.https_port == n.http_port {
            p.push(
                "nginx.http_port",
                format!(
                    "must differ from nginx.https_port (both are {})",
                    n.https_port
                ),
            );
        }
        both_or_neither(
            p,
            ("nginx.tls_cert", n.tls_cert.as_deref()),
            ("nginx.tls_key", n.tls_key.as_deref()),
        );
        if self.production() {
            for (key, value) in [
                ("nginx.tls_cert", &n.tls_cert),
                ("nginx.tls_key", &n.tls_key),
            ] {
                if value.is_none() {
                    p.push(
                        key,
                        "production requires the site's tls certificate and key (pem files, \
                         e.g. from certbot under /etc/letsencrypt/live/<name>/)",
                    );
                }
            }
        }
        if !is_nginx_rate(&n.rooms_rate) {
            p.push(
                "nginx.rooms_rate",
                format!(
                    "must be an nginx rate such as `10r/m` or `1r/s` (a positive whole number), \
                     not `{}`",
                    n.rooms_rate.escape_debug()
                ),
            );
        }
    }

    /// Path syntax: the rendered units and configs embed these paths.
    fn check_paths(&self, p: &mut Problems) {
        let t = &self.turn;
        let n = &self.nginx;
        let paths = &self.paths;
        let all: [(&str, Option<&Path>); 15] = [
            ("turn.secret_file", t.secret_file.as_deref()),
            ("turn.tls_cert", t.tls_cert.as_deref()),
            ("turn.tls_key", t.tls_key.as_deref()),
            ("nginx.tls_cert", n.tls_cert.as_deref()),
            ("nginx.tls_key", n.tls_key.as_deref()),
            ("nginx.acme_root", n.acme_root.as_deref()),
            ("nginx.access_log", Some(&n.access_log)),
            ("nginx.error_log", Some(&n.error_log)),
            ("paths.binary", Some(&paths.binary)),
            ("paths.config", Some(&paths.config)),
            ("paths.turnserver", Some(&paths.turnserver)),
            ("paths.state_dir", Some(&paths.state_dir)),
            ("paths.coturn_runtime_dir", Some(&paths.coturn_runtime_dir)),
            ("paths.nft", Some(&paths.nft)),
            ("paths.coturn_nft", Some(&paths.coturn_nft)),
        ];
        for (key, path) in all {
            let Some(path) = path else { continue };
            let text = path.to_string_lossy();
            if text.is_empty() {
                p.push(key, "must not be empty; give an absolute path");
                continue;
            }
            if let Some(c) = text.chars().find(|c| !is_safe_path_char(*c)) {
                p.push(
                    key,
                    format!(
                        "contains `{}`; paths are written into nginx, coturn and systemd files, \
                         so use only ascii letters, digits and `/._-+@`",
                        c.escape_debug()
                    ),
                );
            } else if self.production() && !path.is_absolute() {
                p.push(
                    key,
                    format!("must be an absolute path in production, not `{text}`"),
                );
            }
        }
    }

    /// No two listeners of this host (alisay, metrics, nginx, coturn) share a port on an
    /// overlapping address.
    fn check_listeners(&self, p: &mut Problems) {
        let s = &self.server;
        let n = &self.nginx;
        let t = &self.turn;
        let nginx_addr = if n.listen_address == "*" {
            vec![]
        } else {
            parse_listen_address(&n.listen_address)
                .into_iter()
                .collect()
        };
        let mut listeners = vec![Listener::one("server.listen", s.listen)];
        if let Some(m) = s.metrics_listen {
            listeners.push(Listener::one("server.metrics_listen", m));
        }
        listeners.push(Listener::new(
            "nginx.https_port",
            &nginx_addr,
            n.https_port..=n.https_port,
        ));
        listeners.push(Listener::new(
            "nginx.http_port",
            &nginx_addr,
            n.http_port..=n.http_port,
        ));
        listeners.push(Listener::new(
            "turn.listening_port",
            &t.listening_ips,
            t.listening_port..=t.listening_port,
        ));
        listeners.push(Listener::new(
            "turn.tls_listening_port",
            &t.listening_ips,
            t.tls_listening_port..=t.tls_listening_port,
        ));
        if t.min_port <= t.max_port {
            listeners.push(Listener::new(
                "turn.min_port",
                &t.relay_ips,
                t.min_port..=t.max_port,
            ));
        }
        // Pairs already reported by a dedicated rule.
        let dedicated = [
            ("nginx.https_port", "nginx.http_port"),
            ("turn.listening_port", "turn.tls_listening_port"),
        ];
        for (i, a) in listeners.iter().enumerate() {
            for b in &listeners[i + 1..] {
                if dedicated.contains(&(a.key, b.key)) || !a.clashes(b) {
                    continue;
                }
                let what = if b.key == "turn.min_port" {
                    "the turn relay port range (turn.min_port..turn.max_port)".to_owned()
                } else {
                    b.key.to_owned()
                };
                p.push(
                    a.key,
                    format!(
                        "uses port {} on an address that {what} also listens on; give one of \
                         them another port or address",
                        a.ports.start().max(b.ports.start())
                    ),
                );
            }
        }
    }

    fn check_logging(&self, p: &mut Problems) {
        let level = self.logging.level.trim();
        if level.is_empty() {
            p.push(
                "logging.level",
                "must not be empty; use a level such as `info` or directives such as \
                 `warn,alisay=debug`",
            );
            return;
        }
        const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
        for directive in level.split(',').map(str::trim) {
            let bare_word = !directive.is_empty()
                && directive
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-');
            if bare_word && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
                p.push(
                    "logging.level",
                    format!(
                        "`{directive}` is not a level; use one of off, error, warn, info, \
                         debug, trace, or `target=level`"
                    ),
                );
                return;
            }
        }
        if let Err(e) = super::log_filter(level) {
            p.push(
                "logging.level",
                format!(
                    "is not a tracing filter ({e}); use a level such as `info` or directives \
                     such as `warn,alisay=debug`"
                ),
            );
        }
    }
}

/// Why `origin` is not a bare `scheme://host[:port]` origin as browsers send it in `Origin`,
/// or `None` if it is one. Fixable mistakes (trailing slash, path, user info, uppercase host,
/// default port) are all named at once, with the origin that was probably meant.
fn origin_problem(origin: &str) -> Option<String> {
    if origin.is_empty() {
        return Some(
            "must be set to the origin callers open, e.g. `https://call.example.org`".to_owned(),
        );
    }
    let bare = "must be a bare origin `scheme://host[:port]`";
    let shown = origin.escape_debug();
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some(format!("{bare}, not `{shown}`"));
    };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return Some(format!("{bare} with scheme http or https, not `{shown}`")),
    };
    let mut issues: Vec<String> = Vec::new();
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    match tail {
        "" => {}
        "/" => issues.push("no trailing slash".to_owned()),
        _ => issues.push("no path, query or fragment".to_owned()),
    }
    let authority = match authority.rsplit_once('@') {
        Some((_, host_port)) => {
            issues.push("no user info (`user@`)".to_owned());
            host_port
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Some(format!("{bare}; `{shown}` has an unclosed `[`"));
        };
        if addr.parse::<Ipv6Addr>().is_err() {
            return Some(format!(
                "{bare}; `[{}]` is not an ipv6 address",
                addr.escape_debug()
            ));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => {
                    return Some(format!(
                        "{bare}; unexpected `{}` after `]`",
                        p.escape_debug()
                    ));
                }
            },
        };
        (format!("[{}]", addr.to_ascii_lowercase()), port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Some(format!("{bare}; `{shown}` has no host"));
        }
        if !is_dns_name(&host.to_ascii_lowercase()) {
            return Some(format!(
                "host `{}` must be a dns name in ascii (punycode for international names) or                  an ip address",
                host.escape_debug()
            ));
        }
        (host.to_owned(), port)
    };
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        issues.push("a lowercase host".to_owned());
    }
    let mut port_text = String::new();
    if let Some(port) = port {
        let number = port
            .parse::<u16>()
            .ok()
            .filter(|n| *n != 0 && !port.starts_with('0'));
        match number {
            None => {
                return Some(format!(
                    "port `{}` must be a number between 1 and 65535",
                    port.escape_debug()
                ));
            }
            Some(n) if n == default_port => issues.push(format!(
                "no default port `:{n}` (browsers leave it out of the Origin header)"
            )),
            Some(n) => port_text = format!(":{n}"),
        }
    }
    if issues.is_empty() {
        return None;
    }
    Some(format!(
        "{bare} with {}; write `{scheme}://{}{port_text}`",
        issues.join(", "),
        host.to_ascii_lowercase()
    ))
}

/// Why `url` is not an ICE server url with one of `schemes`, or `None`.
fn ice_url_problem(url: &str, schemes: &[&str]) -> Option<String> {
    let expected = schemes
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(" or ");
    let Some(scheme) = schemes.iter().find(|s| url.starts_with(**s)) else {
        return Some(format!(
            "must start with {expected} (e.g. `{}call.example.org:3478`), not `{}`",
            schemes[0],
            url.escape_debug()
        ));
    };
    let rest = &url[scheme.len()..];
    let host_port = rest.split('?').next().unwrap_or("");
    if host_port.is_empty()
        || host_port.starts_with("//")
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Some(format!(
            "must be `{scheme}host[:port][?transport=udp|tcp]` (rfc 7064/7065), not `{}`",
            url.escape_debug()
        ));
    }
    if let Some(query) = rest.split_once('?').map(|(_, q)| q)
        && query != "transport=udp"
        && query != "transport=tcp"
    {
        return Some(format!(
            "the only query allowed is `?transport=udp` or `?transport=tcp`, not `?{}`",
            query.escape_debug()
        ));
    }
    None
}

fn rate_problems(p: &mut Problems, key: &str, rate: &Rate) {
    if !(rate.per_second.is_finite() && rate.per_second > 0.0) {
        p.push(
            format!("{key}.per_second"),
            format!(
                "must be a positive number of tokens per second, is {}",
                rate.per_second
            ),
        );
    }
    if rate.burst < 1 {
        p.push(
            format!("{key}.burst"),
            "must be at least 1 (the bucket must hold one token)",
        );
    }
}

fn both_or_neither(p: &mut Problems, a: (&str, Option<&Path>), b: (&str, Option<&Path>)) {
    match (a.1, b.1) {
        (Some(_), None) => p.push(b.0, format!("must be set because {} is set", a.0)),
        (None, Some(_)) => p.push(a.0, format!("must be set because {} is set", b.0)),
        _ => {}
    }
}

/// A lowercase DNS name or IP literal: `[a-z0-9-]` labels of 1-63 characters.
fn is_dns_name(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// `10r/m`, `1r/s`: what nginx's `limit_req_zone ... rate=` accepts.
fn is_nginx_rate(rate: &str) -> bool {
    let Some(number) = rate
        .strip_suffix("r/s")
        .or_else(|| rate.strip_suffix("r/m"))
    else {
        return false;
    };
    !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && number.parse::<u32>().is_ok_and(|n| n > 0)
}

/// `192.0.2.1`, `::1` or `[::1]`.
fn parse_listen_address(text: &str) -> Option<IpAddr> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    inner.parse().ok()
}

fn is_safe_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+@".contains(c)
}

/// Whether `range` spans a whole address family (`0.0.0.0/0`, `::/0`).
fn contains_everything(range: &IpRange) -> bool {
    match (range.start, range.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) == 0 && u32::from(b) == u32::MAX,
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) == 0 && u128::from(b) == u128::MAX,
        _ => false,
    }
}

/// One listening socket (or port range) of the host.
struct Listener {
    key: &'static str,
    /// Empty means every address.
    addrs: Vec<IpAddr>,
    ports: RangeInclusive<u16>,
}

impl Listener {
    fn new(key: &'static str, addrs: &[IpAddr], ports: RangeInclusive<u16>) -> Self {
        let addrs = if addrs.iter().any(IpAddr::is_unspecified) {
            Vec::new()
        } else {
            addrs.to_vec()
        };
        Listener { key, addrs, ports }
    }

    fn one(key: &'static str, addr: SocketAddr) -> Self {
        Listener::new(key, &[addr.ip()], addr.port()..=addr.port())
    }

    fn clashes(&self, other: &Listener) -> bool {
        let ports =
            self.ports.start() <= other.ports.end() && other.ports.start() <= self.ports.end();
        let addrs = self.addrs.is_empty()
            || other.addrs.is_empty()
            || self.addrs.iter().any(|a| other.addrs.contains(a));
        ports && addrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_origins_are_accepted() {
        for ok in [
            "https://call.example.org",
            "https://call.example.org:8443",
            "http://127.0.0.1:8787",
            "http://localhost:8787",
            "http://[::1]:8787",
            "https://xn--bcher-kva.example",
        ] {
            assert_eq!(origin_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn everything_but_a_bare_origin_is_refused() {
        let cases = [
            ("", "must be set"),
            ("call.example.org", "bare origin"),
            ("ftp://call.example.org", "scheme http or https"),
            (
                "https://call.example.org/",
                "with no trailing slash; write `https://call.example.org`",
            ),
            ("https://call.example.org/app", "no path"),
            ("https://call.example.org?x=1", "no path, query"),
            ("https://call.example.org#x", "no path, query or fragment"),
            ("https://user@call.example.org", "no user info"),
            ("https://Call.Example.org", "lowercase host"),
            ("https://call.example.org:443", "no default port `:443`"),
            ("http://call.example.org:80", "no default port `:80`"),
            (
                "https://Call.Example.org:443/",
                "with no trailing slash, a lowercase host, no default port \
                 `:443` (browsers leave it out of the Origin header); write \
                 `https://call.example.org`",
            ),
            ("https://[::1]:8443/x", "write `https://[::1]:8443`"),
            ("https://call.example.org:0", "between 1 and 65535"),
            ("https://call.example.org:99999", "between 1 and 65535"),
            ("https://call.example.org:08443", "between 1 and 65535"),
            ("https://[::1", "unclosed"),
            ("https://[nope]:1", "not an ipv6"),
            ("https://ca ll.example.org", "dns name"),
            ("https://", "no host"),
            ("https://:8443", "no host"),
        ];
        for (origin, expect) in cases {
            let why = origin_problem(origin).unwrap_or_else(|| panic!("{origin} accepted"));
            assert!(why.contains(expect), "{origin}: {why}");
            assert_eq!(
                why,
                why.to_lowercase().replace("origin header", "Origin header")
            );
        }
    }

    #[test]
    fn ice_urls_need_their_scheme_and_a_host() {
        let turn = ["turn:", "turns:"];
        assert_eq!(ice_url_problem("turn:call.example.org:3478", &turn), None);
        assert_eq!(
            ice_url_problem("turns:call.example.org:5349?transport=tcp", &turn),
            None
        );
        assert!(ice_url_problem("stun:call.example.org", &turn).is_some());
        assert!(ice_url_problem("turn:", &turn).is_some());
        assert!(ice_url_problem("turn://x", &turn).is_some());
        assert!(ice_url_problem("turn:x?transport=sctp", &turn).is_some());
        assert!(ice_url_problem("turn:x y", &turn).is_some());
    }

    #[test]
    fn nginx_rates() {
        assert!(is_nginx_rate("10r/m") && is_nginx_rate("1r/s"));
        for bad in ["", "r/s", "0r/s", "10 r/m", "10r/h", "-1r/s", "10r/m;"] {
            assert!(!is_nginx_rate(bad), "{bad}");
        }
    }

    #[test]
    fn dns_names() {
        assert!(is_dns_name("call.example.org") && is_dns_name("a-b.c"));
        for bad in [
            "",
            "Call.example.org",
            "-a.b",
            "a..b",
            "a b",
            "a;b",
            "ä.org",
        ] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }
}
