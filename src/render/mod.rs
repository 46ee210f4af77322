//! Renders the host's artifacts from one [`Config`]: the Nginx site, the coturn config, the
//! systemd units (SPEC §8) and the nftables table that keeps coturn off the host's own
//! services, plus coturn's secret-bearing runtime config (`alisay coturn-config`).
//!
//! Templates are files (`nginx/`, `coturn/`, `src/render/units/`) embedded with `include_str!`,
//! addressed by the constants below and rendered with minijinja in strict-undefined mode, from
//! small context structs built here. Every value that reaches a template is checked first
//! (paths, names, ranges), so a config cannot inject directives into nginx, coturn or systemd
//! syntax. Output is deterministic (same config, byte-identical files) and never contains the
//! TURN secret; [`render_to_dir`] replaces its output directory atomically.
//!
//! Layout: `context` builds the template contexts, `ranges` holds the denied-peer table,
//! `atomic` writes files and directories crash-safely.

mod atomic;
mod context;
pub mod ranges;

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior, syntax::SyntaxConfig};

use crate::config::{Config, Problems};
use crate::turn::{SecretError, TurnSecret};

/// Template of `nginx/alisay.conf`: the Nginx site (TLS, WebSocket proxy, ACME, rate limit).
pub const NGINX_SITE: &str = "nginx/alisay.conf.j2";
/// Template of `coturn/turnserver.conf`: coturn without the secret.
pub const COTURN_CONFIG: &str = "coturn/turnserver.conf.j2";
/// Template of `systemd/alisay.service`: the `alisay serve` process.
pub const UNIT_SERVER: &str = "units/alisay.service.j2";
/// Template of `systemd/alisay-coturn.service`: the application's own coturn instance.
pub const UNIT_COTURN: &str = "units/alisay-coturn.service.j2";
/// The sandbox settings both units include.
pub const UNIT_HARDENING: &str = "units/hardening.j2";
/// Template of `nftables/alisay-coturn.nft`: coturn's sockets reach the host's own addresses
/// only on the relay port range (docs/security.md, "TURN is no one's relay").
pub const COTURN_NFT: &str = "coturn/alisay-coturn.nft.j2";

/// Every embedded template: `(name, source)`.
pub const TEMPLATES: &[(&str, &str)] = &[
    (NGINX_SITE, include_str!("../../nginx/alisay.conf.j2")),
    (
        COTURN_CONFIG,
        include_str!("../../coturn/turnserver.conf.j2"),
    ),
    (UNIT_SERVER, include_str!("units/alisay.service.j2")),
    (UNIT_COTURN, include_str!("units/alisay-coturn.service.j2")),
    (UNIT_HARDENING, include_str!("units/hardening.j2")),
    (
        COTURN_NFT,
        include_str!("../../coturn/alisay-coturn.nft.j2"),
    ),
];

/// What [`render_to_dir`] writes: `(path relative to the output directory, template)`.
pub const OUTPUTS: &[(&str, &str)] = &[
    ("nginx/alisay.conf", NGINX_SITE),
    ("coturn/turnserver.conf", COTURN_CONFIG),
    ("systemd/alisay.service", UNIT_SERVER),
    ("systemd/alisay-coturn.service", UNIT_COTURN),
    ("nftables/alisay-coturn.nft", COTURN_NFT),
];

/// The line `alisay coturn-config` appends to the rendered coturn config.
const SECRET_KEY: &str = "static-auth-secret=";

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Config values that cannot be rendered safely (all of them, each with its key path).
    #[error("cannot render this configuration:\n{0}")]
    Invalid(Problems),
    /// A template failed to render (a bug in a template, caught by the tests).
    #[error("template {name}: {source}")]
    Template {
        name: &'static str,
        source: minijinja::Error,
    },
    /// Reading or writing the output failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The output path exists and is not a directory (a symlink counts as not a directory).
    #[error("{path} exists and is not a directory; refusing to replace it")]
    NotADirectory { path: PathBuf },
    /// The output directory holds something `alisay render` did not write; it is never replaced
    /// (so a mistyped `--out /etc/nginx` cannot delete a host's configuration).
    #[error(
        "{path} contains {entry}, which alisay render does not write; refusing to replace it (choose an empty or new directory)"
    )]
    ForeignContent { path: PathBuf, entry: PathBuf },
    /// `alisay coturn-config` needs `turn.secret_file`.
    #[error("turn.secret_file is not set: coturn needs the shared secret")]
    NoSecretFile,
    /// The secret file could not be used.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The secret is not one line of printable ASCII, so it cannot be written as a coturn
    /// config line without changing the config's meaning.
    #[error(
        "the TURN secret in {path} contains spaces or non-printable characters; use printable ASCII (e.g. `openssl rand -hex 32`)"
    )]
    SecretNotPrintable { path: PathBuf },
}

/// One rendered file: its path relative to the output directory and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Relative to the output directory, e.g. `nginx/alisay.conf` (one of [`OUTPUTS`]).
    pub path: &'static str,
    /// The whole file, ending with exactly one newline.
    pub text: String,
}

/// The template environment: every template loaded, strict undefined behaviour (a missing
/// variable is an error, never an empty string), `trim_blocks` + `lstrip_blocks` so block tags
/// leave no blank lines behind.
///
/// # Errors
/// A template that does not parse.
pub fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
        .map_err(|source| RenderError::Template {
            name: "syntax",
            source,
        })?;
    env.set_syntax(syntax);
    for &(name, source) in TEMPLATES {
        env.add_template(name, source)
            .map_err(|source| RenderError::Template { name, source })?;
    }
    Ok(env)
}

fn render_one<S: serde::Serialize>(
    env: &Environment<'_>,
    name: &'static str,
    ctx: &S,
) -> Result<String, RenderError> {
    let err = |source| RenderError::Template { name, source };
    let ctx = minijinja::Value::from(minijinja::value::Serde(ctx));
    let text = env
        .get_template(name)
        .map_err(err)?
        .render(ctx)
        .map_err(err)?;
    Ok(one_final_newline(&text))
}

/// `text` with trailing blank lines removed and exactly one final newline.
fn one_final_newline(text: &str) -> String {
    let mut out = text.trim_end_matches(['\n', ' ']).to_owned();
    out.push('\n');
    out
}

/// Renders every artifact in memory, in [`OUTPUTS`] order.
///
/// # Errors
/// [`RenderError::Invalid`] with every value that cannot be rendered safely, or a template
/// error.
pub fn render(config: &Config) -> Result<Vec<Rendered>, RenderError> {
    let ctx = context::Contexts::build(config, true).map_err(RenderError::Invalid)?;
    let env = environment()?;
    let units = ctx.units.as_ref().expect("built with units");
    Ok(vec![
        Rendered {
            path: OUTPUTS[0].0,
            text: render_one(&env, NGINX_SITE, &ctx.nginx)?,
        },
        Rendered {
            path: OUTPUTS[1].0,
            text: render_one(&env, COTURN_CONFIG, &ctx.coturn)?,
        },
        Rendered {
            path: OUTPUTS[2].0,
            text: render_one(&env, UNIT_SERVER, &units.server)?,
        },
        Rendered {
            path: OUTPUTS[3].0,
            text: render_one(&env, UNIT_COTURN, &units.coturn)?,
        },
        Rendered {
            path: OUTPUTS[4].0,
            text: render_one(&env, COTURN_NFT, &ctx.coturn)?,
        },
    ])
}

/// Renders every artifact into `out`, replacing it atomically: the files are written and
/// fsynced in a temporary directory beside `out`, which is then swapped into place
/// (`renameat2(RENAME_EXCHANGE)`), so readers see the old tree or the new one, never a mix.
/// An existing `out` is replaced only if it holds nothing but files `alisay render` writes.
/// Files are mode 0644, directories 0755 (nothing here is secret). Returns the files written.
///
/// # Errors
/// [`RenderError`]: invalid values, an `out` that is not a directory or holds foreign files,
/// or an I/O error.
pub fn render_to_dir(config: &Config, out: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let files = render(config)?;
    let pairs: Vec<(&str, &str)> = files.iter().map(|f| (f.path, f.text.as_str())).collect();
    atomic::replace_dir(out, &pairs)?;
    Ok(files.iter().map(|f| out.join(f.path)).collect())
}

/// The rendered coturn config alone (no secret), e.g. for `alisay coturn-config`.
///
/// # Errors
/// As [`render`], for the values coturn's config uses.
pub fn coturn_config(config: &Config) -> Result<String, RenderError> {
    let ctx = context::Contexts::build(config, false).map_err(RenderError::Invalid)?;
    render_one(&environment()?, COTURN_CONFIG, &ctx.coturn)
}

/// Writes coturn's runtime config to `out`: the rendered coturn config plus
/// `static-auth-secret=<secret>` read from `turn.secret_file` (mode 0600 or stricter, checked).
/// The file is created with mode 0600 from the start (never readable by others, not even
/// briefly), fsynced, and renamed over `out`.
///
/// # Errors
/// [`RenderError::NoSecretFile`], [`RenderError::Secret`], [`RenderError::SecretNotPrintable`],
/// invalid values, or an I/O error.
pub fn write_coturn_runtime(config: &Config, out: &Path) -> Result<(), RenderError> {
    let path = config
        .turn
        .secret_file
        .as_deref()
        .ok_or(RenderError::NoSecretFile)?;
    let secret = TurnSecret::from_file(path)?;
    if !secret.expose().iter().all(|b| b.is_ascii_graphic()) {
        return Err(RenderError::SecretNotPrintable {
            path: path.to_owned(),
        });
    }
    let mut text = coturn_config(config)?.into_bytes();
    text.extend_from_slice(
        b"\n# Added at service start by `alisay coturn-config` from turn.secret_file.\n",
    );
    text.extend_from_slice(SECRET_KEY.as_bytes());
    text.extend_from_slice(secret.expose());
    text.push(b'\n');
    atomic::write_private_file(out, &text)
}
