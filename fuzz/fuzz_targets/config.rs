//! Fuzzes the configuration loader and validator, `Config::load_str`, on arbitrary YAML text.
//!
//! Input: the file's bytes (non-UTF-8 input is read lossily; `load_file` refuses it anyway).
//! `ALISAY_*` environment overrides are merged as in production; the fuzz runner sets none.
//! Checked for every input:
//! - no panic, and bounded time and memory (libFuzzer's `-timeout` and `-rss_limit_mb`);
//! - an accepted config passes `validate()`, the hub runs with it and `alisay render` renders
//!   it (or refuses it) without a panic, its `alisay check` output (`effective_yaml`)
//!   shows no more of an allowlisted room id than its 8-hex prefix, and, with the allowlist
//!   left out, loads back to the same config (derived values filled in);
//! - a refused config reports at least one problem, and no problem text echoes a near-miss
//!   room id written under `rooms.allowlist`.

#![no_main]

use std::net::IpAddr;
use std::time::Duration;

use alisay::config::{Config, LoadError};
use alisay::signaling::hub::{Event, Hub, HubConfig};
use alisay::signaling::protocol::ClientMsg;
use alisay::turn::TurnSecret;
use libfuzzer_sys::fuzz_target;
use tokio::time::Instant;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::load_str(&text) {
        Ok(config) => accepted(&config),
        Err(err) => refused(&text, &err),
    }
});

fn accepted(config: &Config) {
    config.validate().expect("a loaded config validates");
    runs_with(config);
    let counted = config.effective_yaml(false);
    let mut without = config.clone();
    without.rooms.allowlist.clear();

    // Room ids are secrets: `alisay check` shows no more than 8 hex of each. Compare with the
    // same config without an allowlist, in case the id's text also appears in another key.
    let shown_without = if config.rooms.allowlist.is_empty() {
        counted
    } else {
        let prefixed = config.effective_yaml(true);
        let plain = without.effective_yaml(true);
        for id in &config.rooms.allowlist {
            let nine = &id[..9.min(id.len())];
            for shown in [&counted, &prefixed] {
                assert!(
                    shown.matches(nine).count() <= plain.matches(nine).count(),
                    "effective_yaml shows more than 8 hex of an allowlisted room id"
                );
            }
        }
        without.effective_yaml(false)
    };

    // Without an allowlist, `alisay check` output is a config that loads to the same values,
    // with the derived `nginx.server_name` and `turn.realm` filled in. (Removing the allowlist
    // may make a production config invalid; then there is nothing to compare.)
    if without.validate().is_ok() {
        let mut expected = without.clone();
        expected.nginx.server_name = without.nginx_server_name().to_owned();
        if expected.turn.realm.is_empty() {
            expected.turn.realm = without.public_host().to_owned();
        }
        match Config::load_str(&shown_without) {
            Ok(again) => assert_eq!(again, expected, "effective_yaml does not load back"),
            Err(err) => panic!("effective_yaml does not load back: {err}\n{shown_without}"),
        }
    }
}

/// What `alisay serve` and `alisay render` do first with an accepted config must not panic:
/// the hub takes its settings and runs a registration, a join and housekeeping a day later;
/// every artifact renders (or is refused with a `RenderError`).
fn runs_with(config: &Config) {
    let mut hub = Hub::new(HubConfig::from_config(config), Some(TurnSecret::new("s")));
    let now = Instant::now();
    let ip = IpAddr::from([192, 0, 2, 1]);
    let room = "ab".repeat(32);
    let _ = hub.register_room(&room, ip, now);
    let join = ClientMsg::Join {
        room_id: alisay::room::RoomId::parse(&room).expect("a room id"),
        resume: None,
    };
    let _ = hub.handle(1, Event::Message(join, ip), now);
    let _ = hub.handle(1, Event::Message(ClientMsg::RefreshIce {}, ip), now);
    let _ = hub.tick(now + Duration::from_secs(86_400));
    let _ = alisay::render::render(config);
}

fn refused(text: &str, err: &LoadError) {
    assert!(
        !err.problems().0.is_empty(),
        "a refused config names a problem"
    );
    let shown = err.to_string();
    assert!(!shown.is_empty());
    // A near-miss room id is still a secret: no problem may echo one. Only ids that appear
    // once in the whole input are checked (else another key may legitimately show the text),
    // and only room-id-like ones (16+ alphanumerics), which no fixed message contains.
    for id in allowlist_entries(text) {
        if id.len() >= 16
            && id.bytes().all(|b| b.is_ascii_alphanumeric())
            && text.matches(id.as_str()).count() == 1
        {
            assert!(
                !shown.contains(&id),
                "a problem echoes an allowlist entry: {shown}"
            );
        }
    }
}

/// The strings written under `rooms.allowlist` (a list, or a single string), if the input is
/// YAML that has any.
fn allowlist_entries(text: &str) -> Vec<String> {
    // Text the loader refuses unparsed (too deeply nested for the YAML scanner to be quick)
    // is not parsed here either.
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > 64 {
            return Vec::new();
        }
    }
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return Vec::new();
    };
    let list = value
        .get("rooms")
        .and_then(|rooms| rooms.get("allowlist"))
        .cloned()
        .unwrap_or(serde_yaml::Value::Null);
    match list {
        serde_yaml::Value::String(s) => vec![s],
        serde_yaml::Value::Sequence(items) => items
            .into_iter()
            .filter_map(|item| match item {
                serde_yaml::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
