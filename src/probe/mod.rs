//! `alisay probe ORIGIN`: the check an operator runs against a deployed site, from outside,
//! after every deploy (and what the tests run against a real stack). It prints one line per
//! check, `PASS`/`FAIL`/`SKIP`, a name and a detail, and exits 1 if any check failed.
//!
//! Checks, in order (names as printed):
//! - `healthz`: `GET /healthz` is 200 JSON with `ok: true`.
//! - `ws-upgrade`: `/ws` with our `Origin` and no query upgrades (101, correct accept key).
//! - `ws-query-refused`, `ws-empty-query-refused`: `/ws?x` and `/ws?` are 400 (room ids never
//!   go in URLs).
//! - `ws-foreign-origin-refused`, `ws-no-origin-refused`: 403 for `Origin:
//!   https://evil.example` and for no `Origin`.
//! - `rooms-foreign-origin-refused`: `POST /rooms` from the foreign origin is 403.
//! - `turn-credentials-hidden`: `/turn-credentials` is 404 (the development test endpoint).
//! - `header-*`: on `/`, CSP (`default-src 'self'`, `frame-ancestors 'none'`,
//!   `base-uri 'none'`), `X-Content-Type-Options`, `Referrer-Policy`, `Permissions-Policy`,
//!   `Cross-Origin-Opener-Policy`, and `Strict-Transport-Security` for https origins (`SKIP`,
//!   "n/a (http)", for plain http).
//! - `rooms-register`, `join`, `relay-available`, `ice-servers`: a real join over the
//!   WebSocket, in a fresh random room registered with `POST /rooms` (or the allowlisted room
//!   named by `--room-id-file`); `joined` must offer TURN with credentials.
//! - `turn-secret-matches` (with `--turn-secret-file`): the issued credential is
//!   HMAC-SHA1(secret, username), so alisay and the file agree.
//! - `turn-allocate <url>`: each TURN URL accepts the issued credentials (UDP, TCP, TLS).
//! - `turn-relay-to-relay <url>`: the path of a Relay-only call: two allocations of our own on
//!   the first UDP URL (else the first), a permission for each other's relayed address, data
//!   both ways. Fails on a server behind 1:1 NAT whose coturn cannot reach its own relays.
//! - `turn-deny <ip>`: CreatePermission towards a sample address of every built-in denied
//!   range (loopback, private, link-local incl. 169.254.169.254, CGNAT, ...; IPv6 ones when the
//!   server relays IPv6) gets 403; `turn-allow-public-peer <ip>`: a public address is
//!   permitted, so the 403s are not a blanket refusal.
//! - `turn-wrong-password`, `turn-expired-username` (with the secret file): 401.
//!
//! Secrets: the room id is printed only as an 8-hex prefix, and it is read from a file (never
//! from the command line, where `ps` would show it); credentials and the secret never appear.

pub mod net;
mod relay;
mod site;
pub mod stun;
pub mod turn;

use std::fmt;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_rustls::TlsConnector;

use self::net::{Client, NetError, Origin};
use self::turn::TurnUrl;
use crate::turn::TurnSecret;

/// The foreign origin the probe presents where the site must refuse it.
pub const FOREIGN_ORIGIN: &str = "https://evil.example";

/// Command-line options of `alisay probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// The site's public origin, e.g. https://call.example.org (http:// only for local
    /// tests: the HSTS check is then n/a).
    pub origin: String,
    /// Join this allowlisted room instead of a fresh registered one: a file holding its room
    /// id (or its token, or invite link); `-` reads standard input. Never put a room id on the
    /// command line. Anyone in that room sees the probe come and go.
    #[arg(long, value_name = "FILE")]
    pub room_id_file: Option<PathBuf>,
    /// Do not join a room (and so skip the TURN checks unless --turn-secret-file and --turn
    /// are given).
    #[arg(long)]
    pub no_join: bool,
    /// The TURN shared secret (the file `turn.secret_file` names): adds the credential
    /// cross-check, the expired-username check, and TURN checks without a join.
    #[arg(long, value_name = "FILE")]
    pub turn_secret_file: Option<PathBuf>,
    /// A TURN URL to check instead of those in `joined` (repeatable), e.g.
    /// turn:turn.example.org:3478?transport=udp.
    #[arg(long = "turn", value_name = "URL")]
    pub turn_urls: Vec<String>,
    /// Skip every TURN check.
    #[arg(long)]
    pub no_turn: bool,
    /// Extra trusted CA certificates (PEM) for https, wss and turns, besides the system roots.
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Public addresses TURN must be allowed to relay to (the control for the deny checks;
    /// CreatePermission sends no packet to them). Repeatable; the first of each address family
    /// is used.
    #[arg(long = "public-peer", value_name = "IP", default_values = ["1.1.1.1", "2606:4700:4700::1111"])]
    pub public_peers: Vec<IpAddr>,
    /// Time limit for each network step (`5s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// Not applicable or not possible with the options given; never counts as a failure.
    Skip,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub status: Status,
    /// Stable, machine-matchable name (`ws-upgrade`, `turn-deny 10.0.0.1`, ...).
    pub name: String,
    /// What was seen, for a human; never a secret.
    pub detail: String,
}

/// Every check run so far; printed line by line as they complete.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
    echo: bool,
}

impl Report {
    fn add(&mut self, status: Status, name: impl Into<String>, detail: impl Into<String>) {
        // Details quote what servers said: never let them drive the terminal.
        let clean = |s: String| -> String {
            s.chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect()
        };
        let check = Check {
            status,
            name: clean(name.into()),
            detail: clean(detail.into()),
        };
        if self.echo {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{:<4}  {:<34}  {}",
                check.status, check.name, check.detail
            );
            let _ = out.flush();
        }
        self.checks.push(check);
    }
    fn pass(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Pass, name, detail);
    }
    fn fail(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Fail, name, detail);
    }
    fn skip(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.add(Status::Skip, name, detail);
    }
    fn verdict(&mut self, ok: bool, name: impl Into<String>, detail: impl Into<String>) {
        self.add(if ok { Status::Pass } else { Status::Fail }, name, detail);
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Why the probe could not start (exit 64): the options, not the site, are wrong.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(transparent)]
    Origin(NetError),
    #[error(transparent)]
    Tls(NetError),
    #[error("cannot read the room id from {path}: {reason}")]
    RoomId { path: String, reason: String },
    #[error(transparent)]
    Secret(#[from] crate::turn::SecretError),
    #[error(transparent)]
    TurnUrl(turn::TurnError),
}

/// `alisay probe`: runs every check, prints the table and a summary; exit 0 when all passed,
/// 1 when any failed, 64 for unusable options.
pub fn main(args: ProbeArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alisay probe: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args, true)) {
        Ok(report) => {
            println!(
                "{} passed, {} failed, {} skipped",
                report.count(Status::Pass),
                report.count(Status::Fail),
                report.count(Status::Skip)
            );
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("alisay probe: {e}");
            ExitCode::from(crate::cli::EX_USAGE)
        }
    }
}

/// Everything the options give, checked before any network traffic.
struct Setup {
    client: Client,
    tls: Option<TlsConnector>,
    room_id: Option<String>,
    secret: Option<TurnSecret>,
    turn_urls: Vec<TurnUrl>,
}

fn setup(args: &ProbeArgs) -> Result<Setup, UsageError> {
    let origin = Origin::parse(&args.origin).map_err(UsageError::Origin)?;
    let tls = net::tls_connector(args.ca_file.as_deref()).map_err(UsageError::Tls)?;
    let room_id = match &args.room_id_file {
        Some(path) => Some(read_room_id(path)?),
        None => None,
    };
    let secret = match &args.turn_secret_file {
        Some(path) => Some(TurnSecret::from_file(path)?),
        None => None,
    };
    let turn_urls = args
        .turn_urls
        .iter()
        .map(|u| TurnUrl::parse(u))
        .collect::<Result<_, _>>()
        .map_err(UsageError::TurnUrl)?;
    Ok(Setup {
        client: Client::new(origin, Some(tls.clone()), args.timeout),
        tls: Some(tls),
        room_id,
        secret,
        turn_urls,
    })
}

/// Reads a room id, a token or an invite link from `path` (`-` = standard input) and returns
/// the room id.
fn read_room_id(path: &Path) -> Result<String, UsageError> {
    let err = |reason: String| UsageError::RoomId {
        path: path.display().to_string(),
        reason,
    };
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| err(e.to_string()))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    }
    let text = text.trim();
    let token = text.rsplit_once('#').map_or(text, |(_, t)| t);
    if crate::room::is_room_id(token) {
        Ok(token.to_owned())
    } else if crate::room::is_token(token) {
        Ok(crate::room::room_id(token))
    } else {
        Err(err(
            "expected a room id (64 lowercase hex), a room token or an invite link".to_owned(),
        ))
    }
}

/// Runs every check and returns the report; `echo` prints each line as it completes.
///
/// # Errors
/// [`UsageError`] when the options cannot be used (bad origin, unreadable files).
pub async fn run(args: &ProbeArgs, echo: bool) -> Result<Report, UsageError> {
    let setup = setup(args)?;
    let mut report = Report {
        checks: Vec::new(),
        echo,
    };
    if echo {
        println!("alisay probe {}", setup.client.origin.header());
    }
    let client = &setup.client;
    site::healthz(client, &mut report).await;
    site::websocket_rules(client, &mut report).await;
    site::rooms_foreign_origin(client, &mut report).await;
    site::turn_credentials_hidden(client, &mut report).await;
    site::security_headers(client, &mut report).await;

    let joined = if args.no_join {
        report.skip("join", "skipped (--no-join)");
        None
    } else {
        site::join(client, setup.room_id.as_deref(), &mut report).await
    };
    if args.no_turn {
        report.skip("turn", "skipped (--no-turn)");
    } else {
        relay::turn_checks(args, &setup, joined.as_ref(), &mut report).await;
    }
    Ok(report)
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_read_from_files_in_every_form() {
        let dir = tempfile::tempdir().unwrap();
        let token = crate::room::new_token();
        let id = crate::room::room_id(&token);
        for (i, text) in [
            format!("{id}\n"),
            token.clone(),
            format!("https://call.example.org/#{token}\n"),
        ]
        .iter()
        .enumerate()
        {
            let p = dir.path().join(i.to_string());
            std::fs::write(&p, text).unwrap();
            assert_eq!(read_room_id(&p).unwrap(), id);
        }
        let p = dir.path().join("bad");
        std::fs::write(&p, "ABC").unwrap();
        let e = read_room_id(&p).unwrap_err().to_string();
        assert!(!e.contains("ABC"), "{e}");
    }
}
