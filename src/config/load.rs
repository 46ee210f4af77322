//! Loading a [`Config`] with figment and reporting *every* mistake in one go.
//!
//! serde stops at the first unknown field or wrong type, so an administrator fixing a file
//! would otherwise meet its mistakes one run at a time. Instead the merged figment value
//! (defaults, file, environment) is walked against the key tree of [`Config::default()`]:
//! every key that is not in the schema is reported with its full path, and, if extraction
//! failed, every known leaf is re-checked on its own against the defaults, so each wrong type
//! is reported too. Each problem names where its value came from (the file, or the `ALISAY_*`
//! variable) when figment knows. The structs keep `deny_unknown_fields` as the last line.

use figment::error::Kind;
use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::validate::{Problem, Problems};
use super::{Config, LoadError};

/// Prefix of environment overrides (`ALISAY_SIGNALING__JOIN_TIMEOUT=2s`).
const ENV_PREFIX: &str = "ALISAY_";
/// Separator of nested keys in environment overrides.
const ENV_SPLIT: &str = "__";

/// Defaults, then `provider`, then the `ALISAY_*` environment.
fn figment(provider: impl Provider) -> Figment {
    Figment::from(Serialized::defaults(Config::default()))
        .merge(EmptySectionsAreDefaults(provider))
        .merge(Env::prefixed(ENV_PREFIX).split(ENV_SPLIT))
}

/// A YAML section left empty (`turn:` with every line below it commented out) is `null`; it
/// means "all defaults", not "a `null` where a mapping belongs". This provider drops such
/// `null`s where the schema has a section, so the defaults underneath stay.
struct EmptySectionsAreDefaults<P>(P);

impl<P: Provider> Provider for EmptySectionsAreDefaults<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> figment::Result<Map<Profile, Dict>> {
        fn prune(dict: &mut Dict, known: &serde_json::Map<String, serde_json::Value>) {
            dict.retain(|key, value| {
                let section = known.get(key).and_then(serde_json::Value::as_object);
                match (section, value) {
                    (Some(_), Value::Empty(..)) => false,
                    (Some(fields), Value::Dict(_, inner)) => {
                        prune(inner, fields);
                        true
                    }
                    _ => true,
                }
            });
        }
        let known = serde_json::to_value(Config::default()).expect("the defaults serialize");
        let mut data = self.0.data()?;
        if let Some(fields) = known.as_object() {
            for dict in data.values_mut() {
                prune(dict, fields);
            }
        }
        Ok(data)
    }
}

/// Loads, reports every unknown key and wrong type, then validates.
pub(super) fn load(provider: impl Provider) -> Result<Config, LoadError> {
    let fig = figment(provider);
    let root = match fig.find_value("") {
        Ok(root) => root,
        Err(err) => return Err(LoadError::Parse(figment_problems(&fig, err))),
    };
    let known = serde_json::to_value(Config::default()).expect("the defaults serialize");
    let extracted = fig.extract::<Config>();
    let mut problems = Problems::default();
    walk(
        &fig,
        &root,
        &root,
        &known,
        "",
        extracted.is_err(),
        &mut problems,
    );
    match extracted {
        Ok(config) if problems.0.is_empty() => match config.validate() {
            Ok(()) => Ok(config),
            Err(mut invalid) => {
                for p in &mut invalid.0 {
                    p.message = with_source(&p.message, source_of(&fig, &root, &p.path));
                }
                Err(LoadError::Invalid(invalid))
            }
        },
        Ok(_) => Err(LoadError::Parse(problems)),
        Err(err) => {
            if problems.0.is_empty() {
                // Not attributable to one leaf (should not happen): show figment's own words.
                problems = figment_problems(&fig, err);
            }
            Err(LoadError::Parse(problems))
        }
    }
}

/// Walks the merged `value` against the `known` key tree at `path` (`root` is the whole
/// merged value, for [`source_of`]).
fn walk(
    fig: &Figment,
    root: &Value,
    value: &Value,
    known: &serde_json::Value,
    path: &str,
    check_types: bool,
    out: &mut Problems,
) {
    match (value, known) {
        (Value::Dict(_, dict), serde_json::Value::Object(fields)) => {
            for (key, child) in dict {
                let child_path = join(path, key);
                match fields.get(key) {
                    Some(known_child) => {
                        walk(fig, root, child, known_child, &child_path, check_types, out);
                    }
                    None => out.0.push(Problem {
                        message: with_source(
                            &unknown_key_message(key, fields.keys().map(String::as_str)),
                            source_of(fig, root, &child_path),
                        ),
                        path: child_path,
                    }),
                }
            }
        }
        _ if check_types => type_problems(fig, root, path, value, known.is_array(), out),
        _ => {}
    }
}

/// Reports why the known leaf `value` at `path` does not deserialize, if it does not. A list
/// is checked item by item, so the problem names the bad item (`turn.urls[2]`).
fn type_problems(
    fig: &Figment,
    root: &Value,
    path: &str,
    value: &Value,
    is_list: bool,
    out: &mut Problems,
) {
    let Err(err) = check_leaf(path, value) else {
        return;
    };
    let source = source_of(fig, root, path);
    if let (true, Value::Array(tag, items)) = (is_list, value) {
        let before = out.0.len();
        for (i, item) in items.iter().enumerate() {
            let single = Value::Array(*tag, vec![item.clone()]);
            if let Err(item_err) = check_leaf(path, &single) {
                for e in *item_err {
                    out.0.push(Problem {
                        path: format!("{path}[{i}]"),
                        message: with_source(
                            &describe(&e.kind, &format!("{path}[{i}]")),
                            source.clone(),
                        ),
                    });
                }
            }
        }
        if out.0.len() > before {
            return;
        }
    }
    for e in *err {
        out.0.push(Problem {
            path: path.to_owned(),
            message: with_source(&describe(&e.kind, path), source.clone()),
        });
    }
}

/// figment's error kind in this project's words: lowercase, what was found and what would be
/// valid. Room ids are secrets, so nothing under `rooms.allowlist` is echoed.
fn describe(kind: &Kind, path: &str) -> String {
    if path.starts_with("rooms.allowlist[") {
        return "must be a room id: a string of 64 lowercase hex characters".to_owned();
    }
    if path.starts_with("rooms.allowlist") {
        return "must be a list of room ids, each a string of 64 lowercase hex characters"
            .to_owned();
    }
    match kind {
        Kind::InvalidType(actual, expected) => {
            format!(
                "wrong type: found {actual}, expected {}",
                expected_text(expected)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {actual}, expected {}",
                expected_text(expected)
            )
        }
        Kind::UnknownVariant(found, valid) => {
            let valid: Vec<String> = valid.iter().map(|v| format!("`{v}`")).collect();
            format!("unknown value `{found}`; use {}", valid.join(" or "))
        }
        Kind::Message(m) if m == "invalid IP address syntax" => "not an ip address".to_owned(),
        Kind::Message(m) if m == "invalid socket address syntax" => {
            "not a socket address; write `ip:port`, e.g. `127.0.0.1:8787` or `[::1]:8787`"
                .to_owned()
        }
        other => other.to_string(),
    }
}

/// serde's `expected ...` text (Rust type names) as a reader of the YAML would say it.
fn expected_text(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "u64" | "usize" => "a whole number of 0 or more",
        "f32" | "f64" => "a number",
        "a boolean" => "`true` or `false`",
        "a sequence" => "a list such as `[a, b]`",
        "path string" => "a path",
        "socket address" => "an `ip:port` socket address such as `127.0.0.1:8787`",
        "IP address" => "an ip address",
        "a duration" => "a duration such as `5s`, `10m` or `2h`",
        "parsable string" | "an integer or string" => {
            "a size such as `64KiB`, `1 MiB` or a number of bytes"
        }
        other if other.starts_with("struct ") => "a mapping of keys",
        other => other,
    }
    .to_owned()
}

/// Whether `value` at `path`, alone on top of the defaults, deserializes.
fn check_leaf(path: &str, value: &Value) -> Result<(), Box<figment::Error>> {
    Figment::from(Serialized::defaults(Config::default()))
        .merge(Serialized::default(path, value))
        .extract::<Config>()
        .map(drop)
        .map_err(Box::new)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `unknown key; did you mean `secret_file`?`, or the list of valid keys at that level.
fn unknown_key_message<'a>(key: &str, valid: impl Iterator<Item = &'a str> + Clone) -> String {
    let lower = key.to_ascii_lowercase();
    let best = valid
        .clone()
        .map(|k| (edit_distance(&lower, k), k))
        .min()
        .filter(|(d, k)| *d <= 2.max(k.len() / 4));
    match best {
        Some((_, k)) => format!("unknown key; did you mean `{k}`?"),
        None => {
            let all: Vec<String> = valid.map(|k| format!("`{k}`")).collect();
            format!("unknown key; valid keys here are {}", all.join(", "))
        }
    }
}

/// Levenshtein distance (keys are short ASCII; quadratic is fine).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Where the value at `path` (`rooms.allowlist[2]` counts as `rooms.allowlist`) came from:
/// `in FILE` or `from environment variable ALISAY_...`; `None` for built-in defaults and YAML
/// text. `root` is the merged value: looking `key` up in it (rather than with
/// `Figment::find_metadata`, which merges every provider again on each call) keeps a file with
/// thousands of problems from taking minutes (quadratic; found by fuzzing `Config::load_str`).
fn source_of(fig: &Figment, root: &Value, path: &str) -> Option<String> {
    let key = path.split('[').next().unwrap_or(path);
    if key.is_empty() {
        return None;
    }
    let metadata = fig.get_metadata(root.find_ref(key)?.tag())?;
    if metadata.name.ends_with("environment variable(s)") {
        return Some(format!("from environment variable {}", env_name(key)));
    }
    match &metadata.source {
        Some(Source::File(file)) => Some(format!("in {}", file.display())),
        _ => None,
    }
}

/// `message (source)`, or `message` when the source is unknown.
fn with_source(message: &str, source: Option<String>) -> String {
    match source {
        Some(source) => format!("{message} ({source})"),
        None => message.to_owned(),
    }
}

/// The `ALISAY_*` variable that sets `key` (`turn.secret_file` → `ALISAY_TURN__SECRET_FILE`).
fn env_name(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(str::to_ascii_uppercase).collect();
    format!("{ENV_PREFIX}{}", parts.join(ENV_SPLIT))
}

/// figment's own errors (unreadable file, YAML syntax), one problem each.
fn figment_problems(fig: &Figment, err: figment::Error) -> Problems {
    let root = fig.find_value("").ok();
    Problems(
        err.into_iter()
            .map(|e| {
                let path = e.path.join(".");
                let source = match e.metadata.as_ref().and_then(|m| m.source.as_ref()) {
                    Some(Source::File(file)) => Some(format!("in {}", file.display())),
                    _ => root.as_ref().and_then(|root| source_of(fig, root, &path)),
                };
                let message = if path.is_empty() {
                    format!("cannot load the configuration: {}", e.kind)
                } else {
                    e.kind.to_string()
                };
                Problem {
                    message: with_source(&message, source),
                    path,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_pick_the_nearest_key() {
        let keys = ["secret_file", "urls", "stun_urls"];
        assert_eq!(
            unknown_key_message("secert_file", keys.iter().copied()),
            "unknown key; did you mean `secret_file`?"
        );
        assert_eq!(
            unknown_key_message("url", keys.iter().copied()),
            "unknown key; did you mean `urls`?"
        );
        assert_eq!(
            unknown_key_message("colour", keys.iter().copied()),
            "unknown key; valid keys here are `secret_file`, `urls`, `stun_urls`"
        );
    }

    #[test]
    fn env_names_use_the_prefix_and_double_underscores() {
        assert_eq!(
            env_name("signaling.join_timeout"),
            "ALISAY_SIGNALING__JOIN_TIMEOUT"
        );
    }
}
