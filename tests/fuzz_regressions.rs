//! Regression tests for what the fuzz targets in `fuzz/` found (`bash tests/fuzz/run.sh`).
//! Each test names the target and the input shape that failed, and checks the fixed
//! behaviour against the real code: the hub in-process, the server as the real binary.
//!
//! 1. `hub`: `rooms.idle_ttl` and `rooms.generated.reservation_ttl` have no upper bound, and
//!    `Instant + Duration` panics past the clock's range: `POST /rooms` panicked in
//!    `Hub::register_room` under a config that `alisay check` accepts. The same holds for
//!    `signaling.heartbeat_interval` when a WebSocket session starts (`http::ws`). A TTL that
//!    fits the monotonic clock but not the wall clock then panicked in `SystemTime + Duration`
//!    when the hub turned the expiry into unix seconds.
//! 2. `config`: tracing-subscriber scans each filter directive trimmed but slices it untrimmed,
//!    so `logging.level: "info, é=debug"` panicked `Config::load_str` (and `alisay check`,
//!    `alisay serve`), and a directive with leading whitespace silently named another target.
//! 3. `config` (slow inputs): each problem's source was looked up with
//!    `Figment::find_metadata`, which merges every provider again: quadratic in the number of
//!    problems (8000 unknown keys, 70 KB, took 18 s in `alisay check`).
//! 4. `config` (slow inputs): libyaml's scanner is quadratic in `[`/`{` nesting depth, before
//!    serde_yaml's depth limit applies (80 KB of `[` took 20 s). Files are now capped at
//!    `MAX_CONFIG_BYTES` and flow nesting at 64 levels, checked before parsing.

mod common;

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alisay::config::{Config, LoadError, MAX_CONFIG_BYTES, log_filter};
use alisay::signaling::hub::{Action, Event, Hub, HubConfig, Registration};
use alisay::signaling::protocol::{ClientMsg, ServerMsg};
use common::{Server, room_id, unix_now};
use serde_json::json;
use tokio::time::Instant;

/// The largest duration humantime reads: `u64::MAX` seconds.
const FOREVER: &str = "18446744073709551615s";
/// Just under it: `heartbeat_interval` must be shorter than `idle_ttl`.
const ALMOST_FOREVER: &str = "18446744073709551614s";

/// Thirty years, the horizon the hub falls back to when `now + ttl` overflows.
const THIRTY_YEARS: u64 = 30 * 365 * 86_400;

/// `Config::load_str(yaml)` with no `ALISAY_*` variable in the environment, and how long it took.
fn try_load(yaml: &str) -> (Result<Config, LoadError>, Duration) {
    let started = Instant::now();
    let mut result = None;
    // figment's signature: its error type is large, and only ever `Ok` here.
    #[allow(clippy::result_large_err)]
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        result = Some(Config::load_str(yaml));
        Ok(())
    });
    (result.expect("loaded"), started.elapsed())
}

/// Loads `yaml` with no `ALISAY_*` variable in the environment.
fn load(yaml: &str) -> Config {
    try_load(yaml).0.expect("the config is valid")
}

fn unbounded_ttls_yaml() -> String {
    format!(
        "mode: development\n\
         public_origin: \"http://127.0.0.1:8787\"\n\
         rooms:\n  idle_ttl: {FOREVER}\n  generated:\n    reservation_ttl: {FOREVER}\n\
         signaling:\n  heartbeat_interval: {ALMOST_FOREVER}\n"
    )
}

#[test]
fn hub_registers_and_joins_rooms_under_unbounded_ttls() {
    let config = load(&unbounded_ttls_yaml());
    assert_eq!(config.rooms.idle_ttl, Duration::from_secs(u64::MAX));
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // u64::MAX seconds overflows the monotonic clock (`Instant + Duration`); the second TTL
    // fits the monotonic clock (counted from boot) but not the wall clock (counted from
    // 1970), so only `SystemTime + Duration` overflowed (the fuzzer's second finding).
    let wall_clock_overflow = u64::try_from(i64::MAX).expect("positive") - unix + 1_000;
    for ttl in [u64::MAX, wall_clock_overflow] {
        let mut hub_config = HubConfig::from_config(&config);
        hub_config.idle_ttl = Duration::from_secs(ttl);
        hub_config.reservation_ttl = Duration::from_secs(ttl);
        registers_and_joins(Hub::new(hub_config, None), unix);
    }
}

fn registers_and_joins(mut hub: Hub, unix: u64) {
    let ip: IpAddr = "192.0.2.1".parse().expect("ip");
    let now = Instant::now();
    let id = "ab".repeat(32);
    let far = unix + THIRTY_YEARS - 60;

    // Registering a new room computed `now + reservation_ttl` (the panic the fuzzer found).
    let Registration::Created { expires_at } = hub.register_room(&id, ip, now) else {
        panic!("the room is created");
    };
    assert!(expires_at >= far, "expires far in the future");
    // Registering it again reads the reservation back.
    assert!(matches!(
        hub.register_room(&id, ip, now),
        Registration::Exists { expires_at: again } if again.abs_diff(expires_at) <= 1
    ));

    // Once joined, the room has no reservation: `last_activity + idle_ttl` is used instead.
    let out = hub.handle(
        1,
        Event::Message(
            ClientMsg::Join {
                room_id: alisay::room::RoomId::parse(&id).unwrap(),
                resume: None,
            },
            ip,
        ),
        now,
    );
    assert!(
        matches!(&out[0], (1, Action::Send(ServerMsg::Joined { .. }))),
        "{out:?}"
    );
    assert!(matches!(
        hub.register_room(&id, ip, now),
        Registration::Exists { expires_at } if expires_at >= far
    ));
    // So does registering a second room.
    assert!(matches!(
        hub.register_room(&"cd".repeat(32), ip, now),
        Registration::Created { expires_at } if expires_at >= far
    ));
    // Housekeeping a day later keeps the rooms (idle for far less than idle_ttl).
    assert!(hub.tick(now + Duration::from_secs(86_400)).is_empty());
    assert_eq!(hub.room_count(), 2);
    assert_eq!(hub.session_count(), 1);
}

#[tokio::test]
async fn server_serves_rooms_and_sockets_under_unbounded_ttls() {
    let server = Server::start(&format!(
        "rooms:\n  idle_ttl: {FOREVER}\n  generated:\n    reservation_ttl: {FOREVER}\n\
         signaling:\n  heartbeat_interval: {ALMOST_FOREVER}\n"
    ))
    .await;
    let id = room_id();
    let created = server.post_room(&id).await;
    assert_eq!(created.status, 201, "POST /rooms creates the room");
    let body: serde_json::Value = serde_json::from_slice(&created.body).expect("json body");
    let expires = body["expiresAt"].as_u64().expect("expiresAt");
    assert!(expires >= unix_now() + THIRTY_YEARS - 60, "{body}");
    assert_eq!(server.post_room(&id).await.status, 200, "registered again");

    // A WebSocket session computed `now + heartbeat_interval` for its first ping.
    let mut a = server.ws().await;
    let joined = a.join(&id).await;
    assert_eq!(joined["heartbeatSeconds"], json!(u64::MAX - 1));
    a.ping_pong().await;
    let mut b = server.ws().await;
    assert_eq!(b.join(&id).await["peerPresent"], true);
    a.expect("peer-joined").await;
    b.ping_pong().await;
    assert_eq!(server.post_room(&id).await.status, 200, "active room");

    let logs = server.stderr();
    assert!(!logs.contains("panicked"), "the server panicked:\n{logs}");
}

/// `logging.level` values the fuzzer's finding covers: whitespace after a comma or at the
/// start, before a multi-byte character (the panic) or an ASCII one (the wrong target).
const SPACED_LEVELS: [&str; 5] = [
    "info, é=debug",
    " é=debug",
    "warn,\u{a0}alisay[é]=debug",
    " info",
    "warn, alisay=debug",
];

#[test]
fn log_levels_with_spaces_load_and_mean_what_they_say() {
    for level in SPACED_LEVELS {
        let yaml = format!(
            "mode: development\npublic_origin: \"http://127.0.0.1:8787\"\nlogging:\n  level: {}\n",
            serde_json::to_string(level).expect("a YAML string")
        );
        let config = load(&yaml);
        assert_eq!(config.logging.level, level);
        log_filter(level).expect("a valid filter");
    }
    // Each directive means what it says, spaces or not.
    let spaced = log_filter(" info").expect("valid").to_string();
    assert_eq!(spaced, log_filter("info").expect("valid").to_string());
    let spaced = log_filter("warn, alisay=debug").expect("valid").to_string();
    assert_eq!(
        spaced,
        log_filter("warn,alisay=debug").expect("valid").to_string()
    );
    // What was invalid stays invalid.
    for bad in ["alisay=loud", "info, alisay=loud", " ="] {
        assert!(log_filter(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn server_starts_and_logs_with_a_spaced_log_level() {
    // Leading space: before the fix, ` info` named the target " info" and nothing was logged;
    // `é` after it made `alisay serve` panic while loading its config.
    let server = Server::start("logging:\n  level: \" info, é=debug\"\n").await;
    let logs = server.stderr();
    assert!(
        logs.contains("listening"),
        "the info line is logged:\n{logs}"
    );
    assert!(!logs.contains("panicked"), "the server panicked:\n{logs}");
}

#[test]
fn thousands_of_problems_are_reported_in_linear_time() {
    let yaml: String = (0..8000).map(|i| format!("k{i}: 1\n")).collect();
    let (result, elapsed) = try_load(&yaml);
    let Err(LoadError::Parse(problems)) = result else {
        panic!("unknown keys are refused");
    };
    assert_eq!(problems.0.len(), 8000, "every unknown key is reported");
    assert!(problems.0.iter().any(|p| p.path == "k7999"));
    // About 1 s unoptimized after the fix; over a minute before it.
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
}

/// Loads `yaml` (in a jail without `ALISAY_*`) and returns the single whole-file problem.
fn refused_whole(yaml: &str) -> (String, Duration) {
    let (result, elapsed) = try_load(yaml);
    let Err(LoadError::Parse(problems)) = result else {
        panic!("refused");
    };
    assert_eq!(problems.0.len(), 1, "{problems}");
    assert_eq!(problems.0[0].path, "", "a whole-file problem");
    (problems.0[0].message.clone(), elapsed)
}

#[test]
fn deep_flow_nesting_is_refused_before_parsing() {
    for yaml in [
        format!("a: {}", "[".repeat(80_000)),
        format!("a: {}1{}", "{a: ".repeat(20_000), "}".repeat(20_000)),
        // Quotes do not hide brackets from the check (libyaml may not see a quote there).
        format!("a: b'\nc: {}", "[".repeat(80_000)),
    ] {
        let (message, elapsed) = refused_whole(&yaml);
        assert!(message.contains("nested more than 64 deep"), "{message}");
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    }
    // 64 levels are still parsed (and refused for what they are, not for their depth).
    let yaml = format!("turn: {{urls: {}{}}}", "[".repeat(63), "]".repeat(63));
    let Err(err) = try_load(&yaml).0 else {
        panic!("a list of lists is not a list of urls")
    };
    assert!(err.to_string().contains("turn.urls"), "{err}");
}

#[test]
fn oversized_configs_are_refused_before_parsing() {
    let header = "mode: development\npublic_origin: \"http://127.0.0.1:8787\"\n";
    let comment = format!("# {}\n", "x".repeat(98));
    let lines = (MAX_CONFIG_BYTES - header.len()) / comment.len();
    let fits = format!("{header}{}", comment.repeat(lines));
    assert!(fits.len() <= MAX_CONFIG_BYTES && fits.len() + comment.len() > MAX_CONFIG_BYTES);
    assert_eq!(load(&fits).public_origin, "http://127.0.0.1:8787");
    let (message, _) = refused_whole(&format!("{fits}{comment}"));
    assert_eq!(
        message,
        "cannot load the configuration: it is larger than 128 KiB"
    );
}

#[test]
fn alisay_check_refuses_a_huge_or_deep_file_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let huge = dir.path().join("huge.yaml");
    // 64 MiB of comments: only the first 128 KiB + 1 byte are read.
    let line = format!("# {}\n", "x".repeat(1022));
    std::fs::write(&huge, line.repeat(64 * 1024)).expect("write");
    let deep = dir.path().join("deep.yaml");
    std::fs::write(&deep, format!("a: {}", "[".repeat(100_000))).expect("write");
    for (file, what) in [
        (&huge, "it is larger than 128 KiB"),
        (&deep, "nested more than 64 deep"),
    ] {
        let started = Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_alisay"))
            .args(["check", "--config"])
            .arg(file)
            .env_clear()
            .output()
            .expect("run alisay check");
        let elapsed = started.elapsed();
        assert_eq!(out.status.code(), Some(64), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(what), "{stderr}");
        assert!(
            stderr.contains(&format!("(in {})", file.display())),
            "{stderr}"
        );
        assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    }
}
