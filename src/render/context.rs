//! Builds the template contexts from a [`Config`], checking every value on the way: a value
//! that reaches nginx, coturn or systemd syntax must be a plain token (no whitespace, quotes,
//! `;`, braces, `%`, `#` or newlines), so nothing in `alisay.yaml` can add a directive.
//! Problems are collected, never short-circuited, each with its key path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::ranges::{self, PeerRange};
use crate::config::{Config, Problem, Problems, peers};

/// Mozilla "intermediate" TLS 1.2 suites (forward secret AEAD only); TLS 1.3 suites are
/// OpenSSL's defaults, which are all strong.
const TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Descriptors beyond the per-connection estimate (listeners, logs, libraries).
const NOFILE_HEADROOM: usize = 1024;

/// Every template's context.
pub(super) struct Contexts {
    pub nginx: NginxCtx,
    pub coturn: CoturnCtx,
    /// Only when asked for (`alisay coturn-config` does not need, or check, the unit values).
    pub units: Option<UnitsCtx>,
}

/// Context of `nginx/alisay.conf.j2`.
#[derive(Serialize)]
pub(super) struct NginxCtx {
    server_name: String,
    /// Full `listen` arguments, e.g. `443 ssl`, `[::]:443 ssl`.
    listen_https: Vec<String>,
    listen_http: Vec<String>,
    http_port: u16,
    https_port: u16,
    /// Where port 80 redirects to: `https://<server_name>[:<https_port>]`.
    https_origin: String,
    tls_cert: String,
    tls_key: String,
    tls12_ciphers: &'static str,
    acme_root: Option<String>,
    rooms_rate: String,
    hsts_max_age: u64,
    /// `server.listen`, with an unspecified address replaced by loopback.
    upstream: String,
    heartbeat_seconds: u64,
    ws_timeout_seconds: u64,
    access_log: String,
    error_log: String,
}

/// Context of `coturn/turnserver.conf.j2`.
#[derive(Serialize)]
pub(super) struct CoturnCtx {
    realm: String,
    runtime_config: String,
    listening_port: u16,
    listening_ips: Vec<String>,
    tls: bool,
    tls_listening_port: u16,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    relay_ips: Vec<String>,
    /// Behind 1:1 NAT (`turn.external_ip`): the mapping coturn needs, see [`NatCtx`].
    nat: Option<NatCtx>,
    min_port: u16,
    max_port: u16,
    user_quota: u32,
    total_quota: u32,
    max_bps: u64,
    pidfile: String,
    userdb: String,
    allowed: Vec<PeerRange>,
    denied: Vec<PeerRange>,
}

/// coturn behind 1:1 NAT, derived by [`peers::nat_relay`]: rendered as
/// `external-ip=<external>/<private>`, the derived `allowed-peer-ip` and the nftables lines.
#[derive(Serialize)]
pub(super) struct NatCtx {
    /// `turn.external_ip`.
    external: String,
    /// The private relay address it maps to.
    private: String,
    /// Where `private` comes from (`turn.relay_ips[0]`).
    source: String,
    /// `ip` or `ip6`: the nftables address family of both addresses.
    nft_family: &'static str,
}

/// Contexts of the two units.
pub(super) struct UnitsCtx {
    pub server: ServerUnitCtx,
    pub coturn: CoturnUnitCtx,
}

/// Context of `units/alisay.service.j2` (and the shared `units/hardening.j2`).
#[derive(Serialize)]
pub(super) struct ServerUnitCtx {
    binary: String,
    config: String,
    secret_source: Option<String>,
    stop_timeout_seconds: u64,
    nofile: usize,
    listen: String,
    address_families: &'static str,
    /// `IPAddressAllow=` value when the listener is loopback-only; `None` disables the
    /// IP firewall (remote clients must reach the listener).
    ip_allow: Option<&'static str>,
    bind_privileged: bool,
}

/// Context of `units/alisay-coturn.service.j2` (and the shared `units/hardening.j2`).
#[derive(Serialize)]
pub(super) struct CoturnUnitCtx {
    binary: String,
    config: String,
    turnserver: String,
    secret_source: Option<String>,
    tls: bool,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    runtime_config: String,
    runtime_directory: String,
    nofile: usize,
    address_families: &'static str,
    bind_privileged: bool,
    /// `turn.host_firewall`: load the nftables table at start, delete it at stop.
    host_firewall: bool,
    /// `paths.nft`.
    nft: String,
    /// `paths.coturn_nft`: the installed `nftables/alisay-coturn.nft`.
    coturn_nft: String,
}

/// Collects problems while values are checked.
#[derive(Default)]
struct Check(Vec<Problem>);

impl Check {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: key.to_owned(),
            message: message.into(),
        });
    }

    /// An absolute path made only of `A-Z a-z 0-9 . _ - + @ /`: safe unquoted in nginx,
    /// coturn and systemd (no spaces, `;`, `#`, `%` specifiers, `:` credential separators).
    fn path(&mut self, key: &str, path: &Path) -> String {
        let text = path.to_string_lossy().into_owned();
        let safe = path.is_absolute()
            && path.to_str().is_some()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+@/".contains(c));
        if !safe {
            self.problem(
                key,
                format!(
                    "`{text}` must be an absolute path of letters, digits and . _ - + @ / only"
                ),
            );
        }
        text
    }

    /// A DNS name (or IPv4 literal): letters, digits, `-` and `.`, not starting with either.
    fn hostname(&mut self, key: &str, name: &str) -> String {
        let safe = !name.is_empty()
            && name.len() <= 253
            && !name.starts_with(['-', '.'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !safe {
            self.problem(
                key,
                format!("`{name}` must be one host name (letters, digits, - and .)"),
            );
        }
        name.to_owned()
    }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Contexts {
    /// Checks every value and builds the contexts; with `units` also the unit contexts.
    pub(super) fn build(config: &Config, units: bool) -> Result<Contexts, Problems> {
        let mut check = Check::default();
        let nginx = nginx(config, &mut check);
        let coturn = coturn(config, &mut check);
        let units = units.then(|| UnitsCtx {
            server: server_unit(config, &mut check),
            coturn: coturn_unit(config, &coturn, &mut check),
        });
        // The units repeat some checks (paths.binary, turn.secret_file): report each once.
        let mut problems: Vec<Problem> = Vec::with_capacity(check.0.len());
        for p in check.0 {
            if !problems.contains(&p) {
                problems.push(p);
            }
        }
        if problems.is_empty() {
            Ok(Contexts {
                nginx,
                coturn,
                units,
            })
        } else {
            Err(Problems(problems))
        }
    }
}

/// The host of `public_origin`, or a problem naming `key` (which defaults to it).
fn default_host(config: &Config, key: &str, check: &mut Check) -> String {
    match config.public_host() {
        "" => {
            check.problem(
                key,
                format!(
                    "is empty and public_origin `{}` has no host to default to",
                    config.public_origin
                ),
            );
            String::new()
        }
        host => check.hostname(key, host),
    }
}

fn nginx(config: &Config, check: &mut Check) -> NginxCtx {
    let n = &config.nginx;
    let server_name = if n.server_name.is_empty() {
        default_host(config, "nginx.server_name", check)
    } else {
        check.hostname("nginx.server_name", &n.server_name)
    };
    let listen = |port: u16, ssl: &str| -> Option<Vec<String>> {
        if n.listen_address == "*" {
            return Some(vec![format!("{port}{ssl}"), format!("[::]:{port}{ssl}")]);
        }
        let address = n
            .listen_address
            .trim_start_matches('[')
            .trim_end_matches(']');
        match address.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Some(vec![format!("{a}:{port}{ssl}")]),
            IpAddr::V6(a) => Some(vec![format!("[{a}]:{port}{ssl}")]),
        }
    };
    let (listen_https, listen_http) = match (listen(n.https_port, " ssl"), listen(n.http_port, ""))
    {
        (Some(https), Some(http)) => (https, http),
        _ => {
            check.problem(
                "nginx.listen_address",
                format!("`{}` must be `*` or one IP address", n.listen_address),
            );
            (Vec::new(), Vec::new())
        }
    };
    // Without explicit paths, the certbot layout for the server name.
    let live = Path::new("/etc/letsencrypt/live").join(&server_name);
    let tls_cert = match &n.tls_cert {
        Some(p) => check.path("nginx.tls_cert", p),
        None => check.path("nginx.tls_cert", &live.join("fullchain.pem")),
    };
    let tls_key = match &n.tls_key {
        Some(p) => check.path("nginx.tls_key", p),
        None => check.path("nginx.tls_key", &live.join("privkey.pem")),
    };
    let rate_ok = n
        .rooms_rate
        .strip_suffix("r/s")
        .or_else(|| n.rooms_rate.strip_suffix("r/m"))
        .is_some_and(|num| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()));
    if !rate_ok {
        check.problem(
            "nginx.rooms_rate",
            format!(
                "`{}` must be an nginx rate such as `10r/m` or `1r/s`",
                n.rooms_rate
            ),
        );
    }
    let heartbeat = config.signaling.heartbeat_interval;
    let https_origin = if n.https_port == 443 {
        format!("https://{server_name}")
    } else {
        format!("https://{server_name}:{}", n.https_port)
    };
    NginxCtx {
        listen_https,
        listen_http,
        http_port: n.http_port,
        https_port: n.https_port,
        https_origin,
        tls_cert,
        tls_key,
        tls12_ciphers: TLS12_CIPHERS,
        acme_root: n
            .acme_root
            .as_deref()
            .map(|p| check.path("nginx.acme_root", p)),
        rooms_rate: n.rooms_rate.clone(),
        hsts_max_age: n.hsts_max_age.as_secs(),
        upstream: loopback_if_unspecified(config.server.listen).to_string(),
        heartbeat_seconds: ceil_secs(heartbeat),
        // 4 x heartbeat > 3 x heartbeat, the server's own silence limit.
        ws_timeout_seconds: ceil_secs(heartbeat.saturating_mul(4)).max(1),
        access_log: check.path("nginx.access_log", &n.access_log),
        error_log: check.path("nginx.error_log", &n.error_log),
        server_name,
    }
}

/// nginx cannot proxy to `0.0.0.0`/`::`; the same-family loopback reaches such a listener.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(a) if a.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
        IpAddr::V6(a) if a.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

fn coturn(config: &Config, check: &mut Check) -> CoturnCtx {
    let t = &config.turn;
    let realm = if t.realm.is_empty() {
        default_host(config, "turn.realm", check)
    } else {
        check.hostname("turn.realm", &t.realm)
    };
    let tls = match (&t.tls_cert, &t.tls_key) {
        (Some(_), Some(_)) | (None, None) => t.tls_cert.is_some(),
        _ => {
            check.problem(
                "turn.tls_cert",
                "turn.tls_cert and turn.tls_key must be set together",
            );
            false
        }
    };
    let runtime = &config.paths.coturn_runtime_dir;

    // allowed-peer-ip: what the administrator lists (SPEC §6), never a range that reopens
    // loopback or the metadata service, plus the derived NAT exception below. (Validation
    // asks for a relay address peers see directly to be listed here when it lies in a denied
    // range, so relay-to-relay calls work.)
    let mut allowed: Vec<PeerRange> = Vec::new();
    // The one derived exception (SPEC §6): behind 1:1 NAT, this coturn's own private relay
    // address, to which it maps a peer at its public address (the other caller's relay).
    let nat = match peers::nat_relay(t) {
        Ok(nat) => nat,
        Err(e) => {
            check.problem("turn.external_ip", e.to_string());
            None
        }
    };
    if let Some(n) = nat.filter(|n| n.needs_allowance) {
        allowed.extend(ranges::peer_lines(
            &crate::config::IpRange {
                start: n.private,
                end: n.private,
            },
            &format!(
                "derived: this coturn's private relay address ({}[{}]) behind 1:1 nat \
                 (turn.external_ip), for relay-to-relay calls; the nftables table admits it \
                 on the relay ports only",
                n.source, n.index
            ),
        ));
    }
    for (i, range) in t.allowed_peer_ips.iter().enumerate() {
        if let Some(never) = ranges::reopens_forbidden(range) {
            check.problem(
                &format!("turn.allowed_peer_ips[{i}]"),
                format!("`{range}` would let TURN relay to {never}, which is never allowed"),
            );
            continue;
        }
        allowed.extend(ranges::peer_lines(range, "turn.allowed_peer_ips"));
    }

    let mut denied: Vec<PeerRange> = Vec::new();
    for builtin in peers::DEFAULT_DENIED_PEER_RANGES {
        denied.extend(ranges::peer_lines(&builtin.range(), builtin.what));
    }
    for range in &t.denied_peer_ips {
        denied.extend(ranges::peer_lines(range, "turn.denied_peer_ips"));
    }

    CoturnCtx {
        realm,
        runtime_config: check_join(check, runtime, "turnserver.conf"),
        listening_port: t.listening_port,
        listening_ips: t.listening_ips.iter().map(ToString::to_string).collect(),
        tls,
        tls_listening_port: t.tls_listening_port,
        tls_cert: t
            .tls_cert
            .as_deref()
            .map(|p| check.path("turn.tls_cert", p)),
        tls_key: t.tls_key.as_deref().map(|p| check.path("turn.tls_key", p)),
        relay_ips: t.relay_ips.iter().map(ToString::to_string).collect(),
        nat: nat.map(|n| NatCtx {
            external: n.external.to_string(),
            private: n.private.to_string(),
            source: format!("{}[{}]", n.source, n.index),
            nft_family: if n.external.is_ipv4() { "ip" } else { "ip6" },
        }),
        min_port: t.min_port,
        max_port: t.max_port,
        user_quota: t.user_quota,
        total_quota: t.total_quota,
        max_bps: t.max_bps,
        pidfile: check_join(check, runtime, "turnserver.pid"),
        userdb: check_join(check, runtime, "turndb"),
        allowed,
        denied,
    }
}

fn check_join(check: &mut Check, dir: &Path, name: &str) -> String {
    check.path("paths.coturn_runtime_dir", &dir.join(name))
}

/// `turn.secret_file` as the units' `LoadCredential=` source: the secret's file on the host.
/// The units point the services at their private copy themselves (`%d/turn-secret`), so a
/// credential path here would be loaded from itself and never exist.
fn secret_source(config: &Config, check: &mut Check) -> Option<String> {
    let path = config.turn.secret_file.as_deref()?;
    if path.starts_with("/run/credentials") {
        check.problem(
            "turn.secret_file",
            format!(
                "`{}` is a systemd credential path; give the secret's file on the host (e.g. \
                 /etc/alisay/turn-secret, root 0600): the rendered units load it with \
                 LoadCredential= and point the services at their private copy",
                path.display()
            ),
        );
    }
    Some(check.path("turn.secret_file", path))
}

fn server_unit(config: &Config, check: &mut Check) -> ServerUnitCtx {
    let listen = config.server.listen;
    let loopback_only = listen.ip().is_loopback()
        && config
            .server
            .metrics_listen
            .is_none_or(|m| m.ip().is_loopback());
    ServerUnitCtx {
        binary: check.path("paths.binary", &config.paths.binary),
        config: check.path("paths.config", &config.paths.config),
        secret_source: secret_source(config, check),
        stop_timeout_seconds: ceil_secs(config.server.shutdown_grace) + 10,
        nofile: config
            .server
            .max_connections
            .saturating_add(NOFILE_HEADROOM),
        listen: listen.to_string(),
        address_families: "AF_INET AF_INET6",
        ip_allow: loopback_only.then_some("localhost"),
        bind_privileged: listen.port() < 1024
            || config
                .server
                .metrics_listen
                .is_some_and(|m| m.port() < 1024),
    }
}

fn coturn_unit(config: &Config, coturn: &CoturnCtx, check: &mut Check) -> CoturnUnitCtx {
    let runtime = &config.paths.coturn_runtime_dir;
    let runtime_directory = match runtime.strip_prefix("/run") {
        Ok(name) if name.components().count() == 1 => name.to_string_lossy().into_owned(),
        _ => {
            check.problem(
                "paths.coturn_runtime_dir",
                format!(
                    "`{}` must be one directory directly under /run (systemd RuntimeDirectory=)",
                    runtime.display()
                ),
            );
            String::new()
        }
    };
    let t = &config.turn;
    CoturnUnitCtx {
        binary: check.path("paths.binary", &config.paths.binary),
        config: check.path("paths.config", &config.paths.config),
        turnserver: check.path("paths.turnserver", &config.paths.turnserver),
        secret_source: secret_source(config, check),
        tls: coturn.tls,
        tls_cert: coturn.tls_cert.clone(),
        tls_key: coturn.tls_key.clone(),
        runtime_config: coturn.runtime_config.clone(),
        runtime_directory,
        nofile: (t.total_quota as usize)
            .saturating_mul(3)
            .saturating_add(NOFILE_HEADROOM),
        // coturn lists the host's addresses over netlink (getifaddrs) only when it has no
        // listening-ip; without AF_NETLINK it then finds none and exits.
        address_families: if t.listening_ips.is_empty() {
            "AF_INET AF_INET6 AF_NETLINK"
        } else {
            "AF_INET AF_INET6"
        },
        bind_privileged: t.listening_port < 1024 || (coturn.tls && t.tls_listening_port < 1024),
        host_firewall: t.host_firewall,
        nft: check.path("paths.nft", &config.paths.nft),
        coturn_nft: check.path("paths.coturn_nft", &config.paths.coturn_nft),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_values_are_all_reported() {
        let mut config = Config {
            public_origin: "https://call.example.org".into(),
            ..Config::default()
        };
        config.nginx.server_name = "a.example b.example".into();
        config.nginx.access_log = "/var/log/x; include /etc/shadow".into();
        config.nginx.rooms_rate = "10r/m; deny all".into();
        config.turn.realm = "x\nallow-loopback-peers".into();
        config.turn.allowed_peer_ips = vec!["127.0.0.1".parse().unwrap()];
        config.paths.binary = "relative/alisay".into();
        config.paths.coturn_runtime_dir = "/var/run/x/y".into();
        let problems = Contexts::build(&config, true).err().expect("refused").0;
        let keys: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for key in [
            "nginx.server_name",
            "nginx.access_log",
            "nginx.rooms_rate",
            "turn.realm",
            "turn.allowed_peer_ips[0]",
            "paths.binary",
            "paths.coturn_runtime_dir",
        ] {
            assert!(keys.contains(&key), "{key} not in {keys:?}");
        }
    }
}
