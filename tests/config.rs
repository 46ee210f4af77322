//! The configuration core against real files and the real binary: loading (figment, with
//! `ALISAY_*` overrides in a `figment::Jail`), unknown keys and wrong types reported all at
//! once, one failing case per validation rule, the examples and the embedded default, the
//! secret-free `alisay check` output, the JSON Schema, and `docs/config.md` covering every key.
//!
//! Every test that loads a config runs inside `figment::Jail` without `ALISAY_*` variables, so
//! a stray override (or another test's) can never change the outcome. Golden files:
//! `tests/fixtures/config/{valid,invalid}/*.yaml`, snapshots in
//! `tests/fixtures/config/snapshots/` (review new ones with `cargo insta review`; CI never
//! writes snapshots).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use alisay::config::{Config, LoadError, Mode};
use figment::Jail;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// Two well-formed (made-up) room ids, for tests of redaction.
const ID_A: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ID_B: &str = "a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796";

/// The smallest valid production file.
const PRODUCTION: &str = r#"
mode: production
public_origin: "https://call.example.org"
turn:
  urls: ["turn:call.example.org:3478"]
  secret_file: "/run/credentials/alisay.service/turn-secret"
nginx:
  tls_cert: "/etc/ssl/alisay/fullchain.pem"
  tls_key: "/etc/ssl/alisay/privkey.pem"
"#;

/// The smallest valid development file.
const DEVELOPMENT: &str = r#"
mode: development
public_origin: "http://127.0.0.1:8787"
"#;

fn root() -> PathBuf {
    PathBuf::from(MANIFEST)
}

/// Runs `f` in a jail (figment's global lock, restored environment) without any `ALISAY_*`
/// variable. Other variables stay: insta reads `INSTA_UPDATE` and `CI` from them.
fn jailed(f: impl FnOnce(&mut Jail)) {
    in_jail(|jail| {
        scrub(jail);
        f(jail);
    });
}

/// `Jail::expect_with` for closures that assert instead of returning figment errors.
fn in_jail(f: impl FnOnce(&mut Jail)) {
    // The signature is figment's: its error type is large, and only ever `Ok` here.
    #[allow(clippy::result_large_err)]
    Jail::expect_with(|jail| {
        f(jail);
        Ok(())
    });
}

/// Removes every `ALISAY_*` variable (any case) from the jail's environment.
fn scrub(jail: &mut Jail) {
    let keep: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.to_ascii_uppercase().starts_with("ALISAY_"))
        .collect();
    jail.clear_env();
    for (k, v) in keep {
        jail.set_env(k, v);
    }
}

/// `base` with `overlay` merged into it (mappings merged key by key, anything else replaced).
fn merged(base: &str, overlay: &str) -> String {
    fn merge(into: &mut serde_yaml::Value, from: serde_yaml::Value) {
        match (into, from) {
            (serde_yaml::Value::Mapping(a), serde_yaml::Value::Mapping(b)) => {
                for (k, v) in b {
                    match a.get_mut(&k) {
                        Some(slot) => merge(slot, v),
                        None => {
                            a.insert(k, v);
                        }
                    }
                }
            }
            (slot, v) => *slot = v,
        }
    }
    let mut value: serde_yaml::Value = serde_yaml::from_str(base).expect("base yaml");
    let overlay: serde_yaml::Value = serde_yaml::from_str(overlay).expect("overlay yaml");
    if !overlay.is_null() {
        merge(&mut value, overlay);
    }
    serde_yaml::to_string(&value).expect("yaml")
}

/// The problem paths of a load error, in order.
fn paths(err: &LoadError) -> Vec<String> {
    err.problems().0.iter().map(|p| p.path.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Loading and environment overrides

#[test]
fn embedded_default_and_examples_load_and_validate() {
    jailed(|_| {
        let dev = Config::development_default().expect("embedded default");
        assert_eq!(dev.mode, Mode::Development);
        assert_eq!(dev.server.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(dev.public_origin, "http://127.0.0.1:8787");
        assert!(dev.rooms.allow_open_rooms);

        let example = Config::load_file(&root().join("examples/development.yaml"))
            .expect("examples/development.yaml");
        assert_eq!(example.mode, Mode::Development);
        assert_eq!(example.public_origin, dev.public_origin);
        assert_eq!(example.rooms.allow_open_rooms, dev.rooms.allow_open_rooms);

        let prod = Config::load_file(&root().join("examples/production.yaml"))
            .expect("examples/production.yaml");
        assert_eq!(prod.mode, Mode::Production);
        assert!(prod.public_origin.starts_with("https://"));
        assert!(!prod.rooms.allow_open_rooms && !prod.turn.test_endpoint);
        assert!(
            prod.rooms.allowlist.is_empty(),
            "the example lists no room id"
        );
        assert_eq!(
            prod.turn.secret_file.as_deref(),
            Some(Path::new("/etc/alisay/turn-secret"))
        );
        assert!(
            !Path::new("/etc/alisay/turn-secret").exists(),
            "validation must not need the secret file"
        );
        assert!(prod.turn.urls.iter().any(|u| u.starts_with("turns:")));
        assert!(prod.turn.urls.iter().any(|u| u.starts_with("turn:")));
    });
}

#[test]
fn environment_overrides_win_over_the_file() {
    jailed(|jail| {
        jail.set_env("ALISAY_SIGNALING__JOIN_TIMEOUT", "2s");
        jail.set_env("ALISAY_ROOMS__ALLOW_OPEN_ROOMS", "true");
        jail.set_env("ALISAY_SIGNALING__JOIN_RATE__BURST", "500");
        jail.set_env("ALISAY_ALLOWED_ORIGINS", "[http://localhost:8787]");
        let config = Config::load_str(DEVELOPMENT).expect("development with overrides");
        assert_eq!(config.signaling.join_timeout.as_secs(), 2);
        assert!(config.rooms.allow_open_rooms);
        assert_eq!(config.signaling.join_rate.burst, 500);
        assert_eq!(
            config.signaling.join_rate.per_second, 1.0,
            "the other half of the bucket keeps its default"
        );
        assert_eq!(config.allowed_origins, ["http://localhost:8787"]);

        // Lower-case variable names work too (figment matches the prefix without case).
        scrub(jail);
        jail.set_env("alisay_signaling__join_timeout", "3s");
        let config = Config::load_str(DEVELOPMENT).expect("lower-case override");
        assert_eq!(config.signaling.join_timeout.as_secs(), 3);
    });
}

#[test]
fn environment_problems_name_the_variable() {
    jailed(|jail| {
        let file = jail.directory().join("alisay.yaml");
        std::fs::write(&file, PRODUCTION).expect("write config");
        jail.set_env("ALISAY_ROOMS__ALLOW_OPEN_ROOMS", "true");
        let err = Config::load_file(&file).expect_err("open rooms in production");
        assert!(matches!(err, LoadError::Invalid(_)));
        assert_eq!(paths(&err), ["rooms.allow_open_rooms"]);
        assert!(
            err.to_string()
                .ends_with("(from environment variable ALISAY_ROOMS__ALLOW_OPEN_ROOMS)"),
            "{err}"
        );

        scrub(jail);
        jail.set_env("ALISAY_TURN__SECERT_FILE", "/x");
        jail.set_env("ALISAY_SIGNALING__JOIN_TIMEOUT", "soon");
        let err = Config::load_file(&file).expect_err("unknown env key");
        assert!(matches!(err, LoadError::Parse(_)));
        assert_eq!(paths(&err), ["signaling.join_timeout", "turn.secert_file"]);
        let text = err.to_string();
        assert!(
            text.contains("(from environment variable ALISAY_SIGNALING__JOIN_TIMEOUT)"),
            "{text}"
        );
        assert!(
            text.contains(
                "turn.secert_file: unknown key; did you mean `secret_file`? \
                 (from environment variable ALISAY_TURN__SECERT_FILE)"
            ),
            "{text}"
        );
        // A value from the file names the file.
        scrub(jail);
        std::fs::write(&file, merged(PRODUCTION, "rooms: {allow_open_rooms: true}"))
            .expect("write config");
        let err = Config::load_file(&file).expect_err("open rooms in production");
        assert!(
            err.to_string()
                .ends_with(&format!("(in {})", file.display())),
            "{err}"
        );
    });
}

#[test]
fn unknown_keys_at_every_depth_are_all_reported_with_types() {
    jailed(|_| {
        let yaml = r#"
mode: production
colour: blue
server: {listen_addr: "127.0.0.1:1"}
rooms: {generated: {per_iP: 3}}
signaling: {message_rate: {per_secnd: 5, burst: many}}
turn: {secert_file: /x, min_port: low}
logging: {levle: info}
"#;
        let err = Config::load_str(yaml).expect_err("unknown keys");
        assert!(matches!(err, LoadError::Parse(_)));
        assert_eq!(
            paths(&err),
            [
                "colour",
                "logging.levle",
                "rooms.generated.per_iP",
                "server.listen_addr",
                "signaling.message_rate.burst",
                "signaling.message_rate.per_secnd",
                "turn.min_port",
                "turn.secert_file",
            ]
        );
        let text = err.to_string();
        for hint in [
            "logging.levle: unknown key; did you mean `level`?",
            "rooms.generated.per_iP: unknown key; did you mean `per_ip`?",
            "signaling.message_rate.per_secnd: unknown key; did you mean `per_second`?",
            "turn.secert_file: unknown key; did you mean `secret_file`?",
            "colour: unknown key; valid keys here are `allowed_origins`",
        ] {
            assert!(text.contains(hint), "missing {hint:?} in\n{text}");
        }
        assert_eq!(text.lines().count(), 8, "one line per problem:\n{text}");
    });
}

#[test]
fn empty_sections_keep_their_defaults() {
    jailed(|_| {
        let plain = Config::load_str(DEVELOPMENT).expect("development");
        let emptied = format!(
            "{DEVELOPMENT}turn:\n  # urls: [turn:127.0.0.1]\nrooms:\n  generated:\nserver:\n  \
             metrics_listen:\n"
        );
        assert_eq!(Config::load_str(&emptied).expect("empty sections"), plain);
        // A leaf left empty is `null`: fine for optional keys, a type error elsewhere.
        let err = Config::load_str(&format!("{DEVELOPMENT}signaling:\n  join_timeout:\n"))
            .expect_err("null duration");
        assert_eq!(paths(&err), ["signaling.join_timeout"]);
    });
}

// ---------------------------------------------------------------------------------------------
// One failing case per validation rule

/// `(base, overlay, expected problem paths, a phrase of the first message)`.
type Case = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
);

#[rustfmt::skip]
const RULES: &[Case] = &[
    // Origins.
    (PRODUCTION, "public_origin: ''", &["public_origin"], "must be set"),
    (PRODUCTION, "public_origin: http://call.example.org", &["public_origin"], "https:// origin in production"),
    (PRODUCTION, "public_origin: https://call.example.org/", &["public_origin"], "no trailing slash"),
    (PRODUCTION, "public_origin: https://call.example.org:443", &["public_origin"], "no default port"),
    (PRODUCTION, "public_origin: https://Call.example.org", &["public_origin"], "lowercase host"),
    (PRODUCTION, "public_origin: https://call.example.org/x?y#z", &["public_origin"], "no path, query or fragment"),
    (PRODUCTION, "public_origin: https://u:p@call.example.org", &["public_origin"], "no user info"),
    (PRODUCTION, "public_origin: wss://call.example.org", &["public_origin"], "scheme http or https"),
    (PRODUCTION, "allowed_origins: [http://www.example.org]", &["allowed_origins[0]"], "https:// origin in production"),
    (PRODUCTION, "allowed_origins: [https://www.example.org/]", &["allowed_origins[0]"], "no trailing slash"),
    (PRODUCTION, "allowed_origins: [https://call.example.org]", &["allowed_origins[0]"], "repeats public_origin"),
    // Server.
    (DEVELOPMENT, "server: {listen: '127.0.0.1:0'}", &["server.listen"], "port 0"),
    (DEVELOPMENT, "server: {shutdown_grace: 11m}", &["server.shutdown_grace"], "at most 10m"),
    (DEVELOPMENT, "server: {max_connections: 1}", &["server.max_connections"], "at least 2"),
    (DEVELOPMENT, "server: {metrics_listen: '0.0.0.0:9090'}", &["server.metrics_listen"], "loopback"),
    (DEVELOPMENT, "server: {metrics_listen: '127.0.0.1:0'}", &["server.metrics_listen"], "port 0"),
    (DEVELOPMENT, "server: {trusted_proxies: ['::/0']}", &["server.trusted_proxies[0]"], "trusts every address"),
    // Rooms.
    (DEVELOPMENT, "rooms: {allowlist: [not-a-room-id]}", &["rooms.allowlist[0]"], "has 13 characters"),
    (DEVELOPMENT, "rooms: {allowlist: [0F1E2D3C4B5A69788796A5B4C3D2E1F00F1E2D3C4B5A69788796A5B4C3D2E1F0]}", &["rooms.allowlist[0]"], "uppercase"),
    (DEVELOPMENT, "rooms: {allowlist: [0g1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0]}", &["rooms.allowlist[0]"], "other than 0-9 and a-f"),
    (DEVELOPMENT, "rooms: {allowlist: [0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0, 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0]}", &["rooms.allowlist[1]"], "repeats rooms.allowlist[0]"),
    (PRODUCTION, "rooms: {allow_open_rooms: true}", &["rooms.allow_open_rooms"], "must be false in production"),
    (DEVELOPMENT, "{rooms: {allow_open_rooms: true}, server: {listen: '0.0.0.0:8787'}}", &["rooms.allow_open_rooms"], "only on loopback"),
    (DEVELOPMENT, "rooms: {max_active: 0}", &["rooms.max_active"], "at least 1"),
    (DEVELOPMENT, "rooms: {idle_ttl: 20s}", &["rooms.idle_ttl"], "longer than signaling.heartbeat_interval"),
    (DEVELOPMENT, "rooms: {generated: {reservation_ttl: 0s}}", &["rooms.generated.reservation_ttl"], "longer than 0s"),
    (DEVELOPMENT, "rooms: {generated: {per_ip: 0}}", &["rooms.generated.per_ip"], "at least 1"),
    // Signaling.
    (DEVELOPMENT, "signaling: {max_message_bytes: 2MiB}", &["signaling.max_message_bytes"], "between 1 KiB and 1 MiB"),
    (DEVELOPMENT, "signaling: {max_message_bytes: 512, max_sdp_bytes: 1KiB}", &["signaling.max_message_bytes", "signaling.max_sdp_bytes"], "between 1 KiB and 1 MiB"),
    (DEVELOPMENT, "signaling: {max_sdp_bytes: 64KiB}", &["signaling.max_sdp_bytes"], "smaller than signaling.max_message_bytes"),
    (DEVELOPMENT, "signaling: {max_sdp_bytes: 1000}", &["signaling.max_sdp_bytes"], "at least 1 KiB"),
    (DEVELOPMENT, "signaling: {join_timeout: 0s}", &["signaling.join_timeout"], "longer than 0s"),
    (DEVELOPMENT, "signaling: {heartbeat_interval: 1500ms}", &["signaling.heartbeat_interval"], "whole number of seconds"),
    (DEVELOPMENT, "signaling: {heartbeat_interval: 0s}", &["signaling.heartbeat_interval"], "at least 1s"),
    (DEVELOPMENT, "signaling: {message_rate: {per_second: 0}}", &["signaling.message_rate.per_second"], "positive"),
    (DEVELOPMENT, "signaling: {join_rate: {per_second: -0.5}}", &["signaling.join_rate.per_second"], "positive"),
    (DEVELOPMENT, "signaling: {message_rate: {burst: 0}}", &["signaling.message_rate.burst"], "at least 1"),
    (DEVELOPMENT, "signaling: {join_rate: {burst: 0}}", &["signaling.join_rate.burst"], "at least 1"),
    (DEVELOPMENT, "signaling: {outbox_messages: 3}", &["signaling.outbox_messages"], "at least 4"),
    // TURN: production requirements.
    (PRODUCTION, "turn: {secret_file: null}", &["turn.secret_file"], "production requires TURN"),
    (PRODUCTION, "turn: {urls: []}", &["turn.urls"], "production requires TURN"),
    (PRODUCTION, "turn: {urls: ['stun:call.example.org']}", &["turn.urls[0]", "turn.urls"], "must start with `turn:` or `turns:`"),
    (PRODUCTION, "turn: {test_endpoint: true}", &["turn.test_endpoint"], "must be false in production"),
    // TURN: general rules.
    (DEVELOPMENT, "turn: {urls: ['turn:127.0.0.1']}", &["turn.secret_file"], "turn.urls are set"),
    (DEVELOPMENT, "turn: {test_endpoint: true}", &["turn.test_endpoint"], "needs turn.secret_file"),
    (DEVELOPMENT, "{turn: {test_endpoint: true, secret_file: /tmp/s}, server: {listen: '192.0.2.1:8787'}}", &["turn.test_endpoint"], "only on loopback"),
    (PRODUCTION, "turn: {urls: ['turn:call.example.org?transport=sctp']}", &["turn.urls[0]", "turn.urls"], "only query allowed"),
    (PRODUCTION, "turn: {urls: ['turns:call.example.org:5349']}", &["turn.urls[0]"], "needs turn.tls_cert and turn.tls_key"),
    (DEVELOPMENT, "turn: {stun_urls: ['turn:127.0.0.1']}", &["turn.stun_urls[0]"], "`stun:` or `stuns:`"),
    (PRODUCTION, "turn: {credential_ttl: 30s}", &["turn.credential_ttl"], "between 1m and 24h in production"),
    (DEVELOPMENT, "turn: {credential_ttl: 5s}", &["turn.credential_ttl"], "between 10s and 24h"),
    (PRODUCTION, "turn: {credential_ttl: 25h}", &["turn.credential_ttl"], "between 1m and 24h"),
    (DEVELOPMENT, "turn: {realm: 'Alisay Realm'}", &["turn.realm"], "lowercase dns name"),
    (DEVELOPMENT, "turn: {listening_port: 999}", &["turn.listening_port"], "between 1024 and 65535"),
    (DEVELOPMENT, "turn: {tls_listening_port: 1000}", &["turn.tls_listening_port"], "between 1024 and 65535"),
    (DEVELOPMENT, "turn: {min_port: 50000, max_port: 49999}", &["turn.min_port"], "must not be above turn.max_port"),
    (DEVELOPMENT, "turn: {min_port: 1000, max_port: 1030}", &["turn.min_port"], "between 1024 and 65535"),
    (DEVELOPMENT, "turn: {tls_listening_port: 3478}", &["turn.tls_listening_port"], "must differ from turn.listening_port"),
    (DEVELOPMENT, "turn: {tls_cert: /etc/ssl/turn.pem}", &["turn.tls_key"], "must be set because turn.tls_cert is set"),
    (DEVELOPMENT, "turn: {tls_key: /etc/ssl/turn.key}", &["turn.tls_cert"], "must be set because turn.tls_key is set"),
    // TURN: never an open relay into the host (issue 3).
    (PRODUCTION, "turn: {allowed_peer_ips: ['127.0.0.1']}", &["turn.allowed_peer_ips[0]"], "includes loopback"),
    (PRODUCTION, "turn: {allowed_peer_ips: ['0.0.0.0/0']}", &["turn.allowed_peer_ips[0]"], "includes the unspecified address"),
    (PRODUCTION, "turn: {allowed_peer_ips: ['::']}", &["turn.allowed_peer_ips[0]"], "unspecified"),
    (PRODUCTION, "turn: {allowed_peer_ips: ['::ffff:127.0.0.1']}", &["turn.allowed_peer_ips[0]"], "loopback (ipv4-mapped)"),
    (PRODUCTION, "turn: {allowed_peer_ips: ['169.254.169.254']}", &["turn.allowed_peer_ips[0]"], "metadata"),
    (PRODUCTION, "turn: {relay_ips: ['10.0.0.5']}", &["turn.relay_ips[0]"], "default-denied range (private (rfc 1918))"),
    (PRODUCTION, "turn: {relay_ips: ['198.20.0.10'], denied_peer_ips: ['198.20.0.0/16']}", &["turn.relay_ips[0]"], "turn.denied_peer_ips entry"),
    (PRODUCTION, "turn: {external_ip: '100.64.1.1', relay_ips: ['10.0.0.5']}", &["turn.external_ip"], "cgnat"),
    (PRODUCTION, "turn: {external_ip: '0.0.0.0', relay_ips: ['10.0.0.5']}", &["turn.external_ip"], "cannot be a relay address"),
    // Behind 1:1 NAT the render needs the one private relay address external_ip maps to (issue 17).
    (PRODUCTION, "turn: {external_ip: '198.20.0.10'}", &["turn.external_ip"], "the private address it maps to is unknown: set turn.relay_ips"),
    (PRODUCTION, "turn: {external_ip: '198.20.0.10', relay_ips: ['10.0.0.5', '10.0.0.6']}", &["turn.external_ip"], "maps to exactly one private address, but turn.relay_ips lists 2 ipv4 addresses"),
    (PRODUCTION, "turn: {external_ip: '198.20.0.10', relay_ips: ['127.0.0.1']}", &["turn.external_ip"], "cannot be a relay address: it is loopback"),
    (PRODUCTION, "turn: {external_ip: '198.20.0.10', relay_ips: ['10.0.0.5', 'fd00::5']}", &["turn.relay_ips[1]"], "unique local"),
    (DEVELOPMENT, "turn: {relay_ips: ['127.0.0.1']}", &["turn.relay_ips[0]"], "loopback"),
    (PRODUCTION, "turn: {denied_peer_ips: ['2001:db8::1-2001:db8::3']}", &["turn.denied_peer_ips[0]"], "not one CIDR block"),
    (DEVELOPMENT, "turn: {allowed_peer_ips: ['fd00::1-fd00::2']}", &["turn.allowed_peer_ips[0]"], "not one CIDR block"),
    // nginx.
    (DEVELOPMENT, "nginx: {server_name: 'call example'}", &["nginx.server_name"], "one lowercase dns name"),
    (DEVELOPMENT, "nginx: {listen_address: 'any'}", &["nginx.listen_address"], "`*` or one ip address"),
    (DEVELOPMENT, "nginx: {https_port: 0}", &["nginx.https_port"], "between 1 and 65535"),
    (DEVELOPMENT, "nginx: {http_port: 443}", &["nginx.http_port"], "must differ from nginx.https_port"),
    (DEVELOPMENT, "nginx: {tls_cert: /etc/ssl/a.pem}", &["nginx.tls_key"], "must be set because nginx.tls_cert is set"),
    (PRODUCTION, "nginx: {tls_cert: null, tls_key: null}", &["nginx.tls_cert", "nginx.tls_key"], "production requires the site's tls"),
    (DEVELOPMENT, "nginx: {rooms_rate: '10/m'}", &["nginx.rooms_rate"], "nginx rate"),
    (DEVELOPMENT, "nginx: {rooms_rate: '0r/s'}", &["nginx.rooms_rate"], "positive whole number"),
    // Paths.
    (PRODUCTION, "paths: {state_dir: var/lib/alisay}", &["paths.state_dir"], "absolute path in production"),
    (DEVELOPMENT, "nginx: {access_log: '/var/log/nginx/a b.log'}", &["nginx.access_log"], "contains ` `"),
    (DEVELOPMENT, "turn: {secret_file: '/run/cred;rm'}", &["turn.secret_file"], "contains `;`"),
    (DEVELOPMENT, "paths: {binary: '/usr/bin/%n'}", &["paths.binary"], "contains `%`"),
    (DEVELOPMENT, "paths: {config: ''}", &["paths.config"], "must not be empty"),
    // Listeners of one host.
    (DEVELOPMENT, "{public_origin: 'http://127.0.0.1:443', server: {listen: '127.0.0.1:443'}}", &["server.listen"], "nginx.https_port"),
    (DEVELOPMENT, "{public_origin: 'http://127.0.0.1:3478', server: {listen: '127.0.0.1:3478'}}", &["server.listen"], "turn.listening_port"),
    (DEVELOPMENT, "{public_origin: 'http://127.0.0.1:49199', server: {listen: '127.0.0.1:49199'}}", &["server.listen"], "turn relay port range"),
    (DEVELOPMENT, "server: {metrics_listen: '127.0.0.1:8787'}", &["server.listen"], "server.metrics_listen"),
    (DEVELOPMENT, "server: {metrics_listen: '127.0.0.1:80'}", &["server.metrics_listen"], "nginx.http_port"),
    (DEVELOPMENT, "nginx: {https_port: 5349}", &["nginx.https_port"], "turn.tls_listening_port"),
    (DEVELOPMENT, "turn: {listening_port: 49170}", &["turn.listening_port"], "turn relay port range"),
    // Logging.
    (DEVELOPMENT, "logging: {level: ''}", &["logging.level"], "must not be empty"),
    (DEVELOPMENT, "logging: {level: verbose}", &["logging.level"], "`verbose` is not a level"),
    (DEVELOPMENT, "logging: {level: 'alisay=loud'}", &["logging.level"], "is not a tracing filter"),
];

/// Changes that are fine: each must load without a problem.
#[rustfmt::skip]
const ALLOWED: &[(&str, &str)] = &[
    (PRODUCTION, ""),
    (DEVELOPMENT, ""),
    (DEVELOPMENT, "{rooms: {allow_open_rooms: true}, turn: {test_endpoint: true, secret_file: /tmp/s, credential_ttl: 10s}}"),
    (DEVELOPMENT, "turn: {allowed_peer_ips: ['127.0.0.1'], relay_ips: ['127.0.0.1']}"),
    (PRODUCTION, "turn: {relay_ips: ['10.0.0.5'], allowed_peer_ips: ['10.0.0.5']}"),
    (PRODUCTION, "turn: {relay_ips: ['10.0.0.5'], external_ip: '198.20.0.10'}"),
    (PRODUCTION, "turn: {listening_ips: ['10.0.0.5'], external_ip: '198.20.0.10'}"),
    (PRODUCTION, "turn: {relay_ips: ['10.0.0.5', '2001:db8:1::5'], external_ip: '198.20.0.10', allowed_peer_ips: ['2001:db8:1::5']}"),
    (PRODUCTION, "turn: {denied_peer_ips: ['2001:db8::/48', '192.0.2.1-192.0.2.7']}"),
    (PRODUCTION, "{public_origin: 'https://[2001:db8::1]:8443', allowed_origins: ['https://www.example.org']}"),
    (PRODUCTION, "{server: {listen: '127.0.0.1:443'}, nginx: {listen_address: '192.0.2.1'}}"),
    (PRODUCTION, "{server: {listen: '[::1]:8787', metrics_listen: '[::1]:9090'}, turn: {listening_ips: ['192.0.2.1']}}"),
    (PRODUCTION, "rooms: {generated: {enabled: false, reservation_ttl: 0s}}"),
    (PRODUCTION, "server: {shutdown_grace: 0s}"),
    (PRODUCTION, "logging: {level: 'warn,alisay=debug,tower=off'}"),
    (DEVELOPMENT, "signaling: {max_message_bytes: 1MiB, max_sdp_bytes: 1023KiB, heartbeat_interval: 1s}"),
];

#[test]
fn every_rule_has_a_failing_case_and_reports_only_its_own_path() {
    jailed(|_| {
        let mut failures = Vec::new();
        for (base, overlay, expected, phrase) in RULES {
            let yaml = merged(base, overlay);
            match Config::load_str(&yaml) {
                Ok(_) => failures.push(format!("{overlay}: accepted")),
                Err(err) => {
                    let got = paths(&err);
                    if !matches!(err, LoadError::Invalid(_)) || got != *expected {
                        failures.push(format!("{overlay}: expected {expected:?}, got:\n{err}"));
                    } else if !err.problems().0[0].message.contains(phrase) {
                        failures.push(format!("{overlay}: no {phrase:?} in:\n{err}"));
                    }
                    for p in &err.problems().0 {
                        let first = p.message.chars().next().unwrap_or('x');
                        if first.is_uppercase() || p.message.ends_with('.') {
                            failures.push(format!("{overlay}: message style: {}", p.message));
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    });
}

#[test]
fn sensible_variations_are_accepted() {
    jailed(|_| {
        for (base, overlay) in ALLOWED {
            if let Err(err) = Config::load_str(&merged(base, overlay)) {
                panic!("{overlay}: refused:\n{err}");
            }
        }
    });
}

#[test]
fn all_problems_are_reported_at_once() {
    jailed(|_| {
        let overlay = "{public_origin: 'http://x.example', rooms: {allow_open_rooms: true}, \
                       turn: {urls: [], secret_file: null, test_endpoint: true}, \
                       signaling: {outbox_messages: 1}}";
        let err = Config::load_str(&merged(PRODUCTION, overlay)).expect_err("broken");
        assert_eq!(
            paths(&err),
            [
                "public_origin",
                "rooms.allow_open_rooms",
                "signaling.outbox_messages",
                "turn.secret_file",
                "turn.urls",
                "turn.test_endpoint",
                "turn.test_endpoint",
            ]
        );
    });
}

#[test]
fn room_ids_never_appear_in_problems() {
    jailed(|_| {
        // Near misses of a room id are secrets too: one character short, upper case, repeated.
        let near = &ID_A[..63];
        let upper = ID_B.to_uppercase();
        let overlay = format!(
            "{{rooms: {{allowlist: ['{near}', '{upper}', '{ID_A}', '{ID_A}']}}, \
             public_origin: 'http://x'}}"
        );
        let err = Config::load_str(&merged(PRODUCTION, &overlay)).expect_err("bad ids");
        let text = err.to_string();
        assert!(text.contains("rooms.allowlist[0]") && text.contains("rooms.allowlist[3]"));
        for secret in [near, upper.as_str(), ID_A, &ID_A[..16], &upper[..16]] {
            assert!(!text.contains(secret), "a room id leaked into a problem");
        }
        // A wrong type in the allowlist does not echo the value either.
        let err = Config::load_str(&merged(PRODUCTION, "rooms: {allowlist: [{id: 1234567}]}"))
            .expect_err("wrong type");
        assert!(!err.to_string().contains("1234567"), "{err}");
    });
}

// ---------------------------------------------------------------------------------------------
// Golden files

/// The load result of a fixture, as text that does not depend on where the checkout lives.
fn describe_fixture(path: &Path) -> String {
    let dir = path.parent().expect("fixture dir").display().to_string();
    match Config::load_file(path) {
        Ok(config) => config.effective_yaml(false),
        Err(err) => {
            let stage = match err {
                LoadError::Parse(_) => "parse",
                LoadError::Invalid(_) => "invalid",
            };
            format!(
                "{stage}:\n{}\n",
                err.to_string().replace(&dir, "<fixtures>")
            )
        }
    }
}

#[test]
fn valid_fixtures_match_their_effective_yaml() {
    jailed(|_| {
        insta::with_settings!({snapshot_path => "fixtures/config/snapshots", prepend_module_to_snapshot => false}, {
            insta::glob!("fixtures/config/valid/*.yaml", |path| {
                let text = describe_fixture(path);
                assert!(!text.starts_with("parse:") && !text.starts_with("invalid:"), "{text}");
                insta::assert_snapshot!(text);
            });
        });
    });
}

#[test]
fn invalid_fixtures_match_their_error_text() {
    jailed(|_| {
        insta::with_settings!({snapshot_path => "fixtures/config/snapshots", prepend_module_to_snapshot => false}, {
            insta::glob!("fixtures/config/invalid/*.yaml", |path| {
                let text = describe_fixture(path);
                assert!(text.starts_with("parse:") || text.starts_with("invalid:"), "{text}");
                insta::assert_snapshot!(text);
            });
        });
    });
}

// ---------------------------------------------------------------------------------------------
// `alisay check` output

#[test]
fn effective_yaml_hides_room_ids_and_round_trips() {
    jailed(|_| {
        let yaml = merged(
            PRODUCTION,
            &format!("rooms: {{allowlist: ['{ID_A}', '{ID_B}']}}"),
        );
        let config = Config::load_str(&yaml).expect("valid");
        let counted = config.effective_yaml(false);
        assert!(counted.contains("allowlist: <2 room ids>"), "{counted}");
        let prefixed = config.effective_yaml(true);
        assert!(
            prefixed.contains(&format!("- {}...", &ID_A[..8])),
            "{prefixed}"
        );
        assert!(
            prefixed.contains(&format!("- {}...", &ID_B[..8])),
            "{prefixed}"
        );
        for text in [&counted, &prefixed] {
            for id in [ID_A, ID_B] {
                assert!(
                    !text.contains(&id[..9]),
                    "more than 8 hex of a room id shown"
                );
            }
        }
        assert_eq!(counted, config.effective_yaml(false), "deterministic");
        assert!(counted.contains("secret_file: /run/credentials/alisay.service/turn-secret"));
        assert!(counted.contains("max_message_bytes: 64 KiB"), "{counted}");
        assert!(counted.contains("hsts_max_age: 730d"), "{counted}");
        assert!(
            counted.contains("server_name: call.example.org"),
            "{counted}"
        );
        assert!(counted.contains("realm: call.example.org"), "{counted}");

        // Without an allowlist, the output is itself a config that loads to the same values.
        let config = Config::load_file(&root().join("examples/production.yaml")).expect("ok");
        let again = Config::load_str(&config.effective_yaml(false)).expect("reloads");
        assert_eq!(again, config);
        let dev = Config::development_default().expect("ok");
        let mut expected = dev.clone();
        expected.nginx.server_name = "127.0.0.1".to_owned();
        expected.turn.realm = "127.0.0.1".to_owned();
        assert_eq!(
            Config::load_str(&dev.effective_yaml(true)).expect("ok"),
            expected
        );
    });
}

fn alisay(args: &[&str]) -> Output {
    // An empty environment: nothing from the test process (or a jail) leaks in.
    Command::new(env!("CARGO_BIN_EXE_alisay"))
        .args(args)
        .env_clear()
        .output()
        .expect("run alisay")
}

#[test]
fn alisay_check_exits_64_listing_every_problem() {
    let file = root().join("tests/fixtures/config/invalid/production-unsafe.yaml");
    let out = alisay(&["check", "--config", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "nothing on stdout for a bad config");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    let listed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("  - ")).collect();
    let expected = [
        "public_origin:",
        "allowed_origins[0]:",
        "rooms.allow_open_rooms:",
        "turn.secret_file:",
        "turn.urls:",
        "turn.test_endpoint:",
        "turn.test_endpoint:",
        "turn.credential_ttl:",
        "nginx.tls_cert:",
        "nginx.tls_key:",
        "paths.binary:",
    ];
    assert_eq!(listed.len(), expected.len(), "{stderr}");
    for (line, path) in listed.iter().zip(expected) {
        assert!(line.starts_with(&format!("  - {path}")), "{line} / {path}");
    }

    let file = root().join("tests/fixtures/config/invalid/unknown-keys.yaml");
    let out = alisay(&["check", "--config", file.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    for path in [
        "colour",
        "server.listen_addr",
        "rooms.generated.per_iP",
        "signaling.message_rate.per_secnd",
        "turn.secert_file",
        "turn.min_port",
    ] {
        assert!(
            stderr.contains(&format!("  - {path}: ")),
            "{path} missing:\n{stderr}"
        );
    }

    let out = alisay(&["check", "--config", "/nonexistent/alisay.yaml"]);
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(stderr.contains("cannot load the configuration"), "{stderr}");
}

#[test]
fn alisay_check_prints_a_secret_free_effective_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("alisay.yaml");
    let yaml = merged(PRODUCTION, &format!("rooms: {{allowlist: ['{ID_A}']}}"));
    std::fs::write(&file, yaml).expect("write config");
    let file = file.to_str().expect("utf-8 path");

    let out = alisay(&["check", "--config", file]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains("allowlist: <1 room id>"), "{stdout}");
    assert!(
        !stdout.contains(&ID_A[..9]),
        "a room id in alisay check output"
    );
    let parsed: serde_yaml::Value = serde_yaml::from_str(&stdout).expect("stdout is YAML");
    assert_eq!(
        parsed["public_origin"].as_str(),
        Some("https://call.example.org")
    );

    let out = alisay(&["check", "--config", file, "--show-room-prefixes"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(stdout.contains(&format!("- {}...", &ID_A[..8])), "{stdout}");
    assert!(!stdout.contains(&ID_A[..9]), "more than a prefix shown");
}

// ---------------------------------------------------------------------------------------------
// Documentation and JSON Schema cover every key

/// Every key path of the schema (`turn`, `turn.urls`, `signaling.message_rate.burst`, ...),
/// with the default value for leaves.
fn key_tree() -> Vec<(String, Option<serde_json::Value>)> {
    fn walk(
        prefix: &str,
        value: &serde_json::Value,
        out: &mut Vec<(String, Option<serde_json::Value>)>,
    ) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                if v.is_object() {
                    out.push((path.clone(), None));
                    walk(&path, v, out);
                } else {
                    out.push((path, Some(v.clone())));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        "",
        &serde_json::to_value(Config::default()).expect("defaults"),
        &mut out,
    );
    out
}

/// How docs/config.md writes a default value.
fn doc_default(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) if s.is_empty() => "\"\"".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(doc_default).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Number(n) if n.is_f64() => format!("{:.1}", n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

#[test]
fn docs_config_md_documents_every_key_with_its_default() {
    let doc = std::fs::read_to_string(root().join("docs/config.md")).expect("docs/config.md");
    // The reference tables: `| `key` | type | `default` | meaning |`.
    let mut rows = std::collections::BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        if cells.len() >= 4 {
            rows.insert(key.to_owned(), cells[2].trim_matches('`').to_owned());
        }
    }
    let tree = key_tree();
    let mut missing = Vec::new();
    for (path, default) in &tree {
        match default {
            None => {
                if !doc.contains(&format!("`{path}`")) {
                    missing.push(format!("section `{path}` is not mentioned"));
                }
            }
            Some(value) => match rows.get(path) {
                None => missing.push(format!("key `{path}` has no row")),
                Some(cell) if *cell != doc_default(value) => missing.push(format!(
                    "key `{path}`: documented default `{cell}`, actual `{}`",
                    doc_default(value)
                )),
                Some(_) => {}
            },
        }
    }
    // And no row documents a key that does not exist.
    for key in rows.keys() {
        let is_key = tree.iter().any(|(p, _)| p == key);
        let is_range = key.contains('/');
        if !is_key && !is_range {
            missing.push(format!("row `{key}` is not a key of the schema"));
        }
    }
    // The built-in denied ranges are listed too.
    for range in alisay::config::peers::DEFAULT_DENIED_PEER_RANGES {
        if !doc.contains(&format!("| `{}` |", range.cidr)) {
            missing.push(format!("denied range `{}` is not listed", range.cidr));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/config.md is stale:\n{}",
        missing.join("\n")
    );
}

/// The schema node of `path`, following `$ref`s into `$defs`.
fn schema_node<'a>(schema: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    fn resolve<'a>(
        root: &'a serde_json::Value,
        mut node: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        while let Some(r) = node.get("$ref").and_then(|r| r.as_str()) {
            let name = r.trim_start_matches("#/$defs/");
            node = &root["$defs"][name];
        }
        node
    }
    let mut node = resolve(schema, schema);
    for key in path.split('.') {
        node = resolve(schema, node.get("properties")?.get(key)?);
    }
    Some(node)
}

#[test]
fn json_schema_describes_every_key_and_forbids_unknown_ones() {
    let text = alisay::config::json_schema();
    let schema: serde_json::Value = serde_json::from_str(&text).expect("the schema is JSON");
    for (path, default) in key_tree() {
        let node = schema_node(&schema, &path)
            .unwrap_or_else(|| panic!("`{path}` is not in the JSON Schema"));
        if default.is_none() {
            assert_eq!(
                node["additionalProperties"],
                serde_json::Value::Bool(false),
                "`{path}` must forbid unknown keys"
            );
        }
        assert!(
            node.get("description").is_some(),
            "`{path}` has no description"
        );
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
    for duration in [
        "signaling.join_timeout",
        "rooms.idle_ttl",
        "turn.credential_ttl",
    ] {
        assert_eq!(
            schema_node(&schema, duration).expect("node")["type"],
            "string",
            "{duration}"
        );
    }
    assert!(schema_node(&schema, "signaling.max_message_bytes").expect("node")["anyOf"].is_array());
    assert_eq!(
        schema_node(&schema, "server.trusted_proxies").expect("node")["type"],
        "array"
    );
}

#[test]
fn the_shipped_schema_file_is_current() {
    // Inside a jail (without clearing it) so that no other test's jail is changing the
    // environment while UPDATE_SCHEMA is read.
    in_jail(|_| {
        let file = root().join("examples/alisay.schema.json");
        let current = alisay::config::json_schema();
        let shipped = std::fs::read_to_string(&file).unwrap_or_default();
        if shipped != current {
            if std::env::var_os("UPDATE_SCHEMA").is_some() {
                std::fs::write(&file, &current).expect("write examples/alisay.schema.json");
            } else {
                panic!(
                    "examples/alisay.schema.json is stale; regenerate it with \
                     `UPDATE_SCHEMA=1 cargo test --test config the_shipped_schema_file_is_current` \
                     and commit it"
                );
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The listeners a deployment opens (`alisay check --listeners`): the list the Ansible role's
// pre-flight and an administrator opening the host firewall both use.

#[test]
fn alisay_check_listeners_lists_every_port_with_its_key_and_unit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("alisay.yaml");
    let yaml = merged(
        PRODUCTION,
        "server: {metrics_listen: '127.0.0.1:9100'}\n\
         turn: {tls_cert: /etc/ssl/alisay/fullchain.pem, tls_key: /etc/ssl/alisay/privkey.pem, \
         tls_listening_port: 5349, relay_ips: ['192.0.2.10'], allowed_peer_ips: ['192.0.2.10']}",
    );
    std::fs::write(&file, yaml).expect("write config");
    let file = file.to_str().expect("utf-8 path");

    let out = alisay(&["check", "--config", file, "--listeners", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let rows: Vec<String> = json["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| {
            format!(
                "{} {}-{}/{} {} {}",
                l["key"].as_str().unwrap(),
                l["port_min"],
                l["port_max"],
                l["protocol"].as_str().unwrap(),
                l["unit"].as_str().unwrap(),
                l["addresses"]
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "server.listen 8787-8787/tcp alisay.service [\"127.0.0.1\"]",
            "server.metrics_listen 9100-9100/tcp alisay.service [\"127.0.0.1\"]",
            "nginx.https_port 443-443/tcp nginx.service []",
            "nginx.http_port 80-80/tcp nginx.service []",
            "turn.listening_port 3478-3478/udp alisay-coturn.service []",
            "turn.listening_port 3478-3478/tcp alisay-coturn.service []",
            "turn.tls_listening_port 5349-5349/tcp alisay-coturn.service []",
            "turn.min_port 49160-49200/udp alisay-coturn.service [\"192.0.2.10\"]",
        ]
    );
    assert_eq!(
        json["firewall"],
        serde_json::json!([
            "443/tcp",
            "80/tcp",
            "3478/udp",
            "3478/tcp",
            "5349/tcp",
            "49160-49200/udp"
        ])
    );

    let out = alisay(&["check", "--config", file, "--listeners"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.contains(
            "# open in the host firewall: 443/tcp 80/tcp 3478/udp 3478/tcp 5349/tcp 49160-49200/udp"
        ),
        "{text}"
    );
    assert!(
        text.contains("shared with the host's other nginx sites"),
        "{text}"
    );

    // Without turn.tls_cert coturn opens no TLS listener, so the port is not listed.
    let file2 = dir.path().join("plain.yaml");
    std::fs::write(&file2, PRODUCTION).expect("write config");
    let out = alisay(&["check", "--config", file2.to_str().unwrap(), "--listeners"]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!text.contains("5349"), "{text}");
}

#[test]
fn alisay_check_reach_names_each_port_the_firewall_must_open() {
    // Ports nothing listens on, on loopback: a closed port answers like a firewalled one.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("alisay.yaml");
    let yaml = merged(
        PRODUCTION,
        "turn: {listening_port: 39478}\nnginx: {https_port: 39443, http_port: 39080}",
    );
    std::fs::write(&file, yaml).expect("write config");
    let out = alisay(&[
        "check",
        "--config",
        file.to_str().unwrap(),
        "--listeners",
        "--reach",
        "127.0.0.1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    for port in ["39478/udp", "39478/tcp", "39443/tcp", "39080/tcp"] {
        assert!(
            text.contains(&format!(
                "FAIL  {port} unreachable from outside: open it in the host firewall"
            )),
            "{port}: {text}"
        );
    }
    assert!(text.contains("SKIP  49160-49200/udp"), "{text}");

    // A port that answers passes: a TCP listener here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let yaml = merged(
        PRODUCTION,
        &format!(
            "turn: {{listening_port: 39478}}\nnginx: {{https_port: {port}, http_port: 39080}}"
        ),
    );
    std::fs::write(&file, yaml).expect("write config");
    let out = alisay(&[
        "check",
        "--config",
        file.to_str().unwrap(),
        "--listeners",
        "--reach",
        "127.0.0.1",
    ]);
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        text.contains(&format!("PASS  {port}/tcp reachable")),
        "{text}"
    );
}

#[test]
fn host_bits_in_a_cidr_block_are_named() {
    let err = Config::load_str(&merged(
        PRODUCTION,
        "turn: {denied_peer_ips: ['10.1.2.3/8']}",
    ))
    .expect_err("host bits set");
    let text = err.to_string();
    assert!(
        text.contains("`10.1.2.3/8` has host bits set: its network is `10.0.0.0/8`"),
        "{text}"
    );
}

#[test]
fn room_new_needs_a_config_or_an_origin() {
    let out = alisay(&["room", "new"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(out.stdout.is_empty(), "no link without an origin");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    assert!(stderr.contains("give --config FILE"), "{stderr}");

    let out = alisay(&["room", "new", "--origin", "https://call.example.org/"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("invite:  https://call.example.org/#")),
        "{stdout}"
    );

    let out = alisay(&["room", "new", "--origin", "call.example.org"]);
    assert_eq!(out.status.code(), Some(64));
}
