//! Configuration: the `alisay.yaml` schema (`schema`), loading with figment (YAML file, then
//! `ALISAY_`-prefixed environment overrides, nested keys split on `__`), and semantic
//! validation that reports every problem at once (`validate`).

mod schema;
mod validate;

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};

pub use schema::*;
pub use validate::{Problem, Problems};

/// The embedded development default (`src/config/default.yaml`), used when `serve` is given
/// no `--config`.
pub const DEVELOPMENT_DEFAULT: &str = include_str!("default.yaml");

/// Why a configuration could not be loaded: every problem found, each naming its key path.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read or parsed, or a key has the wrong type or is unknown.
    #[error("{}", format_figment(.0))]
    Parse(Box<figment::Error>),
    /// The file parsed but breaks semantic rules (see `validate.rs`).
    #[error("{0}")]
    Invalid(Problems),
}

fn format_figment(err: &figment::Error) -> String {
    err.clone()
        .into_iter()
        .map(|e| {
            let path = if e.path.is_empty() {
                String::from("<root>")
            } else {
                e.path.join(".")
            };
            let source = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| format!(" (in {s})"))
                .unwrap_or_default();
            format!("{path}: {}{source}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Loads `path` (YAML), then `ALISAY_*` environment overrides, then validates.
    ///
    /// # Errors
    /// [`LoadError::Parse`] for unreadable files, bad YAML, wrong types or unknown keys;
    /// [`LoadError::Invalid`] for semantic problems (all of them, with their key paths).
    pub fn load_file(path: &Path) -> Result<Config, LoadError> {
        Self::load_figment(Figment::new().merge(Yaml::file_exact(path)))
    }

    /// Like [`Config::load_file`], from YAML text (the embedded default, tests).
    ///
    /// # Errors
    /// As [`Config::load_file`].
    pub fn load_str(yaml: &str) -> Result<Config, LoadError> {
        Self::load_figment(Figment::new().merge(Yaml::string(yaml)))
    }

    /// The embedded development default (with environment overrides applied).
    ///
    /// # Errors
    /// Only if an `ALISAY_*` override breaks it.
    pub fn development_default() -> Result<Config, LoadError> {
        Self::load_str(DEVELOPMENT_DEFAULT)
    }

    fn load_figment(figment: Figment) -> Result<Config, LoadError> {
        let config: Config = figment
            .merge(Env::prefixed("ALISAY_").split("__"))
            .extract()
            .map_err(|e| LoadError::Parse(Box::new(e)))?;
        config.validate().map_err(LoadError::Invalid)?;
        Ok(config)
    }

    /// Every origin allowed to open `/ws` and `POST /rooms`: `public_origin` first, then
    /// `allowed_origins`.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.public_origin.as_str())
            .chain(self.allowed_origins.iter().map(String::as_str))
    }
}

impl Config {
    /// The effective configuration as YAML, for `alisay check`: the secret file path is shown
    /// but never its content, allowlisted room ids only as a count (or 8-hex prefixes).
    pub fn effective_yaml(&self, show_room_prefixes: bool) -> String {
        let mut shown = self.clone();
        shown.rooms.allowlist = if show_room_prefixes {
            self.rooms
                .allowlist
                .iter()
                .map(|id| format!("{}…", &id[..8.min(id.len())]))
                .collect()
        } else {
            vec![format!("<{} room ids>", self.rooms.allowlist.len())]
        };
        serde_yaml::to_string(&shown).unwrap_or_default()
    }
}
