//! Semantic validation of a loaded [`Config`]: every rule checked, every problem reported with
//! its key path, nothing short-circuited.

use std::fmt;

use super::{Config, Mode};

/// One broken rule: the key path (`turn.secret_file`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// All problems of one config, in key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

impl Problems {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

impl Config {
    /// Checks every semantic rule.
    ///
    /// # Errors
    /// All broken rules at once, each with its key path.
    pub fn validate(&self) -> Result<(), Problems> {
        let mut p = Problems::default();
        if self.mode == Mode::Production && !self.public_origin.starts_with("https://") {
            p.push("public_origin", "must be an https:// origin in production");
        }
        for (i, id) in self.rooms.allowlist.iter().enumerate() {
            if !crate::signaling::protocol::is_room_id(id) {
                p.push(
                    &format!("rooms.allowlist[{i}]"),
                    "must be 64 lowercase hex characters (sha256 of the token)",
                );
            }
        }
        if p.0.is_empty() { Ok(()) } else { Err(p) }
    }
}
