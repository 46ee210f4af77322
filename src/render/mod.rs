//! Renders the host's artifacts from one [`Config`]: the Nginx site, the coturn config and the
//! systemd units (SPEC §8). Deterministic and atomic.

use std::path::{Path, PathBuf};

use crate::config::Config;

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("not implemented yet")]
    Unimplemented,
}

/// Renders every artifact into `out` (replaced atomically); returns the files written.
///
/// # Errors
/// [`RenderError`].
pub fn render_to_dir(_config: &Config, _out: &Path) -> Result<Vec<PathBuf>, RenderError> {
    Err(RenderError::Unimplemented)
}

/// Writes coturn's runtime config (rendered config plus `static-auth-secret`) to `out`, 0600.
///
/// # Errors
/// [`RenderError`].
pub fn write_coturn_runtime(_config: &Config, _out: &Path) -> Result<(), RenderError> {
    Err(RenderError::Unimplemented)
}
