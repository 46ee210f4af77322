//! The `alisay` command line (clap): `serve`, `check`, `render`, `coturn-config`, `room`,
//! `probe`.
//! Exit codes follow sysexits: 64 (`EX_USAGE`) for a bad config, 1 for runtime failures.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, LoadError};

/// Exit code for a configuration the user must fix (sysexits `EX_USAGE`).
pub const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "alisay",
    version,
    about = "Alisay Call: a self-hosted two-person call appliance"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the browser client and the signaling WebSocket (the default command).
    Serve {
        /// The `alisay.yaml` to load; without it, the embedded development default.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a config and print the effective configuration with secrets redacted.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Show allowlisted room ids as 8-hex prefixes instead of a count.
        #[arg(long)]
        show_room_prefixes: bool,
        /// Print the listeners a deployment of this config opens (port, protocol, addresses,
        /// unit, config key) and the ports to open in the host firewall, instead of the config.
        #[arg(long)]
        listeners: bool,
        /// With --listeners: print them as JSON (what the Ansible role's pre-flight reads).
        #[arg(long, requires = "listeners")]
        json: bool,
        /// With --listeners: from this machine (run it OUTSIDE the host), check that every
        /// public TURN and nginx port of HOST answers (STUN binding over UDP, TCP connect);
        /// exits 1 naming each port the host firewall must open.
        #[arg(long, requires = "listeners", value_name = "HOST")]
        reach: Option<String>,
    },
    /// Write the Nginx site, the coturn config and the systemd units for this config.
    Render {
        #[arg(long, short)]
        config: PathBuf,
        /// Output directory (created; replaced atomically).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Write coturn's runtime config (rendered config + secret, mode 0600); for ExecStartPre.
    CoturnConfig {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Print the JSON Schema of alisay.yaml (for editors; see docs/config.md).
    Schema,
    /// Room tokens, invite links and room ids.
    Room {
        #[command(subcommand)]
        command: RoomCommand,
    },
    /// Check a deployed site from outside: HTTP surface, WebSocket rules, a join, TURN.
    Probe(crate::probe::ProbeArgs),
}

#[derive(Debug, Subcommand)]
enum RoomCommand {
    /// Print a fresh token, its invite link and its room id (for `rooms.allowlist`).
    New {
        /// Build the invite link for this config's `public_origin`.
        #[arg(long, short, conflicts_with = "origin")]
        config: Option<PathBuf>,
        /// Build the invite link for this origin instead (e.g. `https://call.example.org`,
        /// when the config lives in Ansible variables). One of --config or --origin is needed.
        #[arg(long)]
        origin: Option<String>,
    },
    /// Print the room id of a token (read from standard input if not given).
    Id { token: Option<String> },
}

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve { config: None }) {
        Command::Serve { config } => {
            let config = match load(config.as_deref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::server::main(config)
        }
        Command::Check {
            config,
            show_room_prefixes,
            listeners,
            json,
            reach,
        } => match load(Some(&config)) {
            Ok(c) if listeners => {
                if json {
                    print!("{}", c.listeners_json());
                } else {
                    print!("{}", c.listeners_text());
                }
                match reach {
                    Some(host) => crate::reach::main(&c, &host),
                    None => ExitCode::SUCCESS,
                }
            }
            Ok(c) => {
                print!("{}", c.effective_yaml(show_room_prefixes));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Render { config, out } => {
            let config = match load(Some(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::render::render_to_dir(&config, &out) {
                Ok(files) => {
                    for f in files {
                        println!("{}", f.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("alisay render: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CoturnConfig { config, out } => {
            let config = match load(Some(&config)) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match crate::render::write_coturn_runtime(&config, &out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("alisay coturn-config: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Room { command } => room(command),
        Command::Schema => {
            print!("{}", crate::config::json_schema());
            ExitCode::SUCCESS
        }
        Command::Probe(args) => crate::probe::main(args),
    }
}

fn room(command: RoomCommand) -> ExitCode {
    match command {
        RoomCommand::New { config, origin } => {
            // Without either, the link would silently name the development default's
            // http://127.0.0.1:8787, which nobody else can open.
            let origin = match (config, origin) {
                (Some(path), _) => match load(Some(&path)) {
                    Ok(c) => c.public_origin,
                    Err(code) => return code,
                },
                (None, Some(origin)) => {
                    let o = origin.trim_end_matches('/');
                    if !(o.starts_with("https://") || o.starts_with("http://")) || o.contains('#') {
                        eprintln!(
                            "alisay room new: --origin must be an origin such as \
                             https://call.example.org, not `{origin}`"
                        );
                        return ExitCode::from(EX_USAGE);
                    }
                    o.to_owned()
                }
                (None, None) => {
                    eprintln!(
                        "alisay room new: give --config FILE (the link uses its public_origin) \
                         or --origin https://your.site"
                    );
                    return ExitCode::from(EX_USAGE);
                }
            };
            let token = crate::room::new_token();
            println!("token:   {token}");
            println!("invite:  {}", crate::room::invite_link(&origin, &token));
            println!("room id: {}", crate::room::room_id(&token));
            println!("# Add the room id to rooms.allowlist; send the invite link to both callers.");
            println!("# All three lines are secrets: whoever has one can join the room.");
            ExitCode::SUCCESS
        }
        RoomCommand::Id { token } => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    if std::io::stdin().read_line(&mut line).is_err() {
                        eprintln!("alisay room id: cannot read a token from standard input");
                        return ExitCode::from(EX_USAGE);
                    }
                    line.trim().to_owned()
                }
            };
            // Accept a whole invite link too: the token is what follows '#'.
            let token = token.rsplit_once('#').map_or(token.as_str(), |(_, t)| t);
            if !crate::room::is_token(token) {
                eprintln!("alisay room id: not a room token (43 base64url characters)");
                return ExitCode::from(EX_USAGE);
            }
            println!("{}", crate::room::room_id(token));
            ExitCode::SUCCESS
        }
    }
}

/// Loads `path`, or the embedded development default; on failure prints every problem to
/// stderr and returns exit code 64.
fn load(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    let result = match path {
        Some(p) => Config::load_file(p),
        None => Config::development_default(),
    };
    result.map_err(|e| {
        let what = path.map_or_else(
            || "the embedded development default".to_owned(),
            |p| p.display().to_string(),
        );
        match e {
            LoadError::Parse(_) | LoadError::Invalid(_) => {
                eprintln!("alisay: invalid configuration in {what}:");
                for line in e.to_string().lines() {
                    eprintln!("  - {line}");
                }
            }
        }
        ExitCode::from(EX_USAGE)
    })
}
