//! Configuration: the `alisay.yaml` schema (`schema`), loading with figment (built-in defaults,
//! then the YAML file, then `ALISAY_`-prefixed environment overrides with nested keys split on
//! `__`), and semantic validation that reports every problem at once (`validate`).
//!
//! Loading never stops at the first mistake: every unknown key (at any depth) and every value
//! of the wrong type is reported with its full key path (`turn.secert_file`) and where it came
//! from (the file or the `ALISAY_*` variable), and a config that parses is then checked against
//! every semantic rule. `docs/config.md` documents each key; [`json_schema`] describes them for
//! editors.

mod listeners;
mod load;
pub mod peers;
mod schema;
mod units;
mod validate;

use std::path::Path;

use figment::providers::{Format, Yaml};

pub use listeners::Listener;
pub use schema::*;
pub use units::{bytes, duration};
pub use validate::{Problem, Problems};

/// The embedded development default (`src/config/default.yaml`), used when `serve` is given
/// no `--config`.
pub const DEVELOPMENT_DEFAULT: &str = include_str!("default.yaml");

/// Why a configuration could not be loaded: every problem found, each naming its key path
/// and, when known, where the value came from. `Display` prints one problem per line.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or is not YAML, or keys are unknown or of the wrong type.
    /// A problem without a key path concerns the whole file.
    #[error("{0}")]
    Parse(Problems),
    /// The file parsed but breaks semantic rules (see `validate.rs`).
    #[error("{0}")]
    Invalid(Problems),
}

impl LoadError {
    /// Every problem, whichever stage found them.
    pub fn problems(&self) -> &Problems {
        match self {
            LoadError::Parse(p) | LoadError::Invalid(p) => p,
        }
    }
}

impl Config {
    /// Loads `path` (YAML), then `ALISAY_*` environment overrides, then validates.
    ///
    /// The file must exist; it need not set every key (each has a default, see
    /// `docs/config.md`). Files named by the config (`turn.secret_file`, TLS keys) are not
    /// opened here: `serve` and `render` check them when they use them.
    ///
    /// # Errors
    /// [`LoadError::Parse`] for unreadable files, bad YAML, unknown keys or wrong types (all
    /// of them); [`LoadError::Invalid`] for semantic problems (all of them).
    pub fn load_file(path: &Path) -> Result<Config, LoadError> {
        // An unreadable file is left to figment, which names the reason.
        if let Ok(bytes) = read_bounded(path) {
            check_shape(&bytes, Some(path))?;
        }
        load::load(Yaml::file_exact(path))
    }

    /// Like [`Config::load_file`], from YAML text (the embedded default, tests).
    ///
    /// # Errors
    /// As [`Config::load_file`].
    pub fn load_str(yaml: &str) -> Result<Config, LoadError> {
        check_shape(yaml.as_bytes(), None)?;
        load::load(Yaml::string(yaml))
    }

    /// The embedded development default (with environment overrides applied).
    ///
    /// # Errors
    /// Only if an `ALISAY_*` override breaks it.
    pub fn development_default() -> Result<Config, LoadError> {
        Self::load_str(DEVELOPMENT_DEFAULT)
    }

    /// Every origin allowed to open `/ws` and `POST /rooms`: `public_origin` first, then
    /// `allowed_origins`.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.public_origin.as_str())
            .chain(self.allowed_origins.iter().map(String::as_str))
    }

    /// The host part of `public_origin` (`call.example.org`, `127.0.0.1`, `[::1]`), or `""`
    /// if it has none.
    pub fn public_host(&self) -> &str {
        let rest = self
            .public_origin
            .split_once("://")
            .map_or("", |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        match authority.strip_prefix('[') {
            Some(v6) => v6.find(']').map_or(authority, |end| &authority[..end + 2]),
            None => authority.split(':').next().unwrap_or(""),
        }
    }

    /// The nginx `server_name`: `nginx.server_name`, or the host of `public_origin` when
    /// that is empty.
    pub fn nginx_server_name(&self) -> &str {
        if self.nginx.server_name.is_empty() {
            self.public_host()
        } else {
            &self.nginx.server_name
        }
    }

    /// The effective configuration as YAML, for `alisay check`.
    ///
    /// Secret-free by construction: the config holds no secret (only `turn.secret_file`, a
    /// path, which is shown), and allowlisted room ids, which admit whoever presents them, are
    /// shown only as a count (`<2 room ids>`) or, with `show_room_prefixes`, as their first 8
    /// hex characters (an empty list is shown as `[]`). Durations and sizes are printed as
    /// exact human strings; derived values (`nginx.server_name` and `turn.realm` default to the
    /// host of `public_origin`) are filled in; keys come in schema order. The output is
    /// deterministic, and loads back to the same config when the allowlist is empty.
    pub fn effective_yaml(&self, show_room_prefixes: bool) -> String {
        let mut shown = self.clone();
        shown.rooms.allowlist.clear();
        shown.nginx.server_name = self.nginx_server_name().to_owned();
        if shown.turn.realm.is_empty() {
            shown.turn.realm = self.public_host().to_owned();
        }
        let mut value = serde_yaml::to_value(&shown).expect("the config serializes");
        let ids = &self.rooms.allowlist;
        let allowlist = if ids.is_empty() {
            serde_yaml::Value::Sequence(Vec::new())
        } else if show_room_prefixes {
            serde_yaml::Value::Sequence(
                ids.iter()
                    .map(|id| {
                        let prefix: String = id.chars().take(8).collect();
                        serde_yaml::Value::String(format!("{prefix}..."))
                    })
                    .collect(),
            )
        } else {
            let noun = if ids.len() == 1 {
                "room id"
            } else {
                "room ids"
            };
            serde_yaml::Value::String(format!("<{} {noun}>", ids.len()))
        };
        value["rooms"]["allowlist"] = allowlist;
        let body = serde_yaml::to_string(&value).expect("YAML values serialize");
        let ids_note = if show_room_prefixes {
            "as 8-hex prefixes"
        } else {
            "as a count (--show-room-prefixes shows 8-hex prefixes)"
        };
        format!(
            "# alisay effective configuration (mode: {mode}).\n\
             # Every key with its effective value; rooms.allowlist is shown {ids_note}.\n\
             # The TURN secret is never in the config: only the path of its file is.\n\
             # turn.denied_peer_ips adds to the built-in denied ranges (docs/config.md).\n\
             {nat}{body}",
            mode = match self.mode {
                Mode::Production => "production",
                Mode::Development => "development",
            },
            nat = self.nat_summary(),
        )
    }

    /// The comment lines `alisay check` prints about TURN behind 1:1 NAT: what the render
    /// derives from `turn.external_ip` and why (see [`peers::nat_relay`]); empty without it.
    fn nat_summary(&self) -> String {
        let t = &self.turn;
        let Ok(Some(n)) = peers::nat_relay(t) else {
            return String::new();
        };
        let mut out = format!(
            "# TURN behind 1:1 NAT: peers see {ext} (turn.external_ip); coturn relays from \
             {private} ({source}[{index}]).\n\
             # The render maps {ext} to {private} (external-ip={ext}/{private}), so a \
             Relay-only call between\n\
             # two callers on this coturn works without the NAT hairpinning.\n",
            ext = n.external,
            private = n.private,
            source = n.source,
            index = n.index,
        );
        if n.needs_allowance {
            out.push_str(&format!(
                "# Derived allowance: allowed-peer-ip={private} (that exact address only, \
                 no other private one); the\n\
                 # coturn nftables table lets the relay reach it on ports {min}-{max} \
                 only{firewall}.\n",
                private = n.private,
                min = t.min_port,
                max = t.max_port,
                firewall = if t.host_firewall {
                    ""
                } else {
                    " (but turn.host_firewall is false: the table is not loaded, so every UDP \
                     service on that address is reachable through the relay)"
                },
            ));
        }
        out
    }
}

/// Largest configuration accepted, in bytes: 25 times a fully commented `alisay.yaml`.
pub const MAX_CONFIG_BYTES: usize = 128 * 1024;

/// Deepest `[`/`{` flow nesting accepted (the schema needs two levels). The YAML scanner
/// (libyaml) rescans every open level on each token, so deep nesting is quadratic before
/// serde_yaml's own depth limit applies: 80 KB of `[` took 20 s (found by fuzzing
/// `Config::load_str`).
const MAX_FLOW_DEPTH: usize = 64;

/// Reads at most [`MAX_CONFIG_BYTES`] + 1 bytes of `path` (so a huge file or a device is not
/// read whole just to be refused).
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Refuses YAML over [`MAX_CONFIG_BYTES`] or nested deeper than [`MAX_FLOW_DEPTH`] before it is
/// parsed. Brackets are counted everywhere, quoted or not, so no quoting trick hides nesting;
/// a real config never has dozens of unclosed brackets.
fn check_shape(yaml: &[u8], file: Option<&Path>) -> Result<(), LoadError> {
    let problem = if yaml.len() > MAX_CONFIG_BYTES {
        Some(format!(
            "cannot load the configuration: it is larger than {} KiB",
            MAX_CONFIG_BYTES / 1024
        ))
    } else {
        let mut depth = 0usize;
        let mut deepest = 0usize;
        for b in yaml {
            match b {
                b'[' | b'{' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        (deepest > MAX_FLOW_DEPTH).then(|| {
            format!(
                "cannot load the configuration: `[`/`{{` nested more than {MAX_FLOW_DEPTH} deep"
            )
        })
    };
    match problem {
        None => Ok(()),
        Some(message) => Err(LoadError::Parse(Problems(vec![Problem {
            path: String::new(),
            message: match file {
                Some(file) => format!("{message} (in {})", file.display()),
                None => message,
            },
        }]))),
    }
}

/// Parses `tracing` filter directives (`logging.level`, `RUST_LOG`) into an `EnvFilter`,
/// allowing whitespace around the commas (`warn, alisay=debug`), as `env_logger` does.
///
/// tracing-subscriber (0.3.23) scans each directive trimmed but slices the untrimmed text at
/// those offsets: a directive with leading whitespace panicked on a multi-byte character
/// (`info, é=debug`, found by fuzzing `Config::load_str`) or turned into another target
/// (` info` set no level). Each directive is therefore trimmed before it is parsed.
///
/// # Errors
/// When a directive is not valid filter syntax.
pub fn log_filter(
    directives: &str,
) -> Result<tracing_subscriber::EnvFilter, tracing_subscriber::filter::ParseError> {
    let trimmed: Vec<&str> = directives.split(',').map(str::trim).collect();
    tracing_subscriber::EnvFilter::try_new(trimmed.join(","))
}

/// The JSON Schema (draft 2020-12) of `alisay.yaml`, pretty-printed, for editors (e.g. the
/// YAML language server's `# yaml-language-server: $schema=...`). Field descriptions are the
/// schema's doc comments; unknown keys are disallowed (`additionalProperties: false`).
/// Semantic rules (production requirements, ranges, clashes) are only in `validate()`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
