//! Runs the service.
use crate::config::Config;
use std::process::ExitCode;
/// Entry for `alisay serve`.
pub fn main(_config: Config) -> ExitCode {
    ExitCode::FAILURE
}
