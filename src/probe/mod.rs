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
//! - `turn-deny <ip>`: CreatePermission towards a sample address of every built-in denied
//!   range (loopback, private, link-local incl. 169.254.169.254, CGNAT, ...; IPv6 ones when the
//!   server relays IPv6) gets 403; `turn-allow-public-peer <ip>`: a public address is
//!   permitted, so the 403s are not a blanket refusal.
//! - `turn-wrong-password`, `turn-expired-username` (with the secret file): 401.
//!
//! Secrets: the room id is printed only as an 8-hex prefix, and it is read from a file (never
//! from the command line, where `ps` would show it); credentials and the secret never appear.

pub mod net;
pub mod stun;
pub mod turn;

use std::fmt;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::{Message as WsMessage, http::HeaderValue};

use self::net::{Client, NetError, Origin};
use self::turn::{Outcome, Session, TurnUrl};
use crate::config::peers::{DEFAULT_DENIED_PEER_RANGES, default_denied};
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
        let check = Check {
            status,
            name: name.into(),
            detail: detail.into(),
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
    if crate::signaling::protocol::is_room_id(token) {
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
    healthz(client, &mut report).await;
    websocket_rules(client, &mut report).await;
    rooms_foreign_origin(client, &mut report).await;
    turn_credentials_hidden(client, &mut report).await;
    security_headers(client, &mut report).await;

    let joined = if args.no_join {
        report.skip("join", "skipped (--no-join)");
        None
    } else {
        join(client, setup.room_id.as_deref(), &mut report).await
    };
    if args.no_turn {
        report.skip("turn", "skipped (--no-turn)");
    } else {
        turn_checks(args, &setup, joined.as_ref(), &mut report).await;
    }
    Ok(report)
}

/// The `error` or short description of a failed request, for a detail column.
fn net_detail(e: &NetError) -> String {
    format!("request failed: {e}")
}

async fn healthz(client: &Client, report: &mut Report) {
    const NAME: &str = "healthz";
    match client.request(Method::GET, "/healthz", &[], None).await {
        Err(e) => report.fail(NAME, net_detail(&e)),
        Ok(r) if r.status != StatusCode::OK => {
            report.fail(NAME, format!("status {} (want 200)", r.status.as_u16()));
        }
        Ok(r) => match serde_json::from_slice::<Value>(&r.body) {
            Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => {
                let version = v.get("version").and_then(Value::as_str).unwrap_or("?");
                report.pass(NAME, format!("200, ok: true, version {version}"));
            }
            Ok(_) => report.fail(NAME, "200 but the JSON has no \"ok\": true"),
            Err(_) => report.fail(NAME, "200 but the body is not JSON"),
        },
    }
}

/// The headers of a WebSocket upgrade request, with `origin` if given; returns them and the
/// accept key the server must answer with.
fn upgrade_headers(origin: Option<&str>) -> (Vec<(&'static str, String)>, String) {
    let key = STANDARD.encode(rand::random::<[u8; 16]>());
    let accept = derive_accept_key(key.as_bytes());
    let mut h = vec![
        ("connection", "Upgrade".to_owned()),
        ("upgrade", "websocket".to_owned()),
        ("sec-websocket-version", "13".to_owned()),
        ("sec-websocket-key", key),
    ];
    if let Some(o) = origin {
        h.push(("origin", o.to_owned()));
    }
    (h, accept)
}

async fn upgrade_status(
    client: &Client,
    target: &str,
    origin: Option<&str>,
) -> Result<(StatusCode, bool), NetError> {
    let (headers, accept) = upgrade_headers(origin);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = client.request(Method::GET, target, &pairs, None).await?;
    let accept_ok = r
        .headers
        .get("sec-websocket-accept")
        .is_some_and(|v| v.as_bytes() == accept.as_bytes());
    Ok((r.status, accept_ok))
}

async fn websocket_rules(client: &Client, report: &mut Report) {
    let ours = client.origin.header();
    match upgrade_status(client, "/ws", Some(&ours)).await {
        Err(e) => report.fail("ws-upgrade", net_detail(&e)),
        Ok((StatusCode::SWITCHING_PROTOCOLS, true)) => {
            report.pass("ws-upgrade", format!("101 for /ws with Origin {ours}"));
        }
        Ok((StatusCode::SWITCHING_PROTOCOLS, false)) => {
            report.fail("ws-upgrade", "101 but a wrong Sec-WebSocket-Accept");
        }
        Ok((s, _)) => report.fail(
            "ws-upgrade",
            format!(
                "status {} for /ws with Origin {ours} (want 101)",
                s.as_u16()
            ),
        ),
    }
    let refusals: [(&str, &str, Option<&str>, StatusCode, &str); 4] = [
        (
            "ws-query-refused",
            "/ws?x",
            Some(&ours),
            StatusCode::BAD_REQUEST,
            "a query string",
        ),
        (
            "ws-empty-query-refused",
            "/ws?",
            Some(&ours),
            StatusCode::BAD_REQUEST,
            "an empty query string",
        ),
        (
            "ws-foreign-origin-refused",
            "/ws",
            Some(FOREIGN_ORIGIN),
            StatusCode::FORBIDDEN,
            "Origin https://evil.example",
        ),
        (
            "ws-no-origin-refused",
            "/ws",
            None,
            StatusCode::FORBIDDEN,
            "no Origin",
        ),
    ];
    for (name, target, origin, want, what) in refusals {
        match upgrade_status(client, target, origin).await {
            Err(e) => report.fail(name, net_detail(&e)),
            Ok((s, _)) if s == want => {
                report.pass(name, format!("{} for {target} with {what}", s.as_u16()));
            }
            Ok((s, _)) => report.fail(
                name,
                format!(
                    "status {} for {target} with {what} (want {})",
                    s.as_u16(),
                    want.as_u16()
                ),
            ),
        }
    }
}

fn room_body(room_id: &str) -> Vec<u8> {
    serde_json::json!({ "roomId": room_id })
        .to_string()
        .into_bytes()
}

async fn rooms_foreign_origin(client: &Client, report: &mut Report) {
    const NAME: &str = "rooms-foreign-origin-refused";
    let id = hex::encode(rand::random::<[u8; 32]>());
    let headers = [
        ("origin", FOREIGN_ORIGIN),
        ("content-type", "application/json"),
    ];
    match client
        .request(Method::POST, "/rooms", &headers, Some(room_body(&id)))
        .await
    {
        Err(e) => report.fail(NAME, net_detail(&e)),
        Ok(r) if r.status == StatusCode::FORBIDDEN => {
            report.pass(NAME, "403 for POST /rooms with Origin https://evil.example");
        }
        Ok(r) => report.fail(
            NAME,
            format!(
                "status {} for POST /rooms with Origin https://evil.example (want 403)",
                r.status.as_u16()
            ),
        ),
    }
}

async fn turn_credentials_hidden(client: &Client, report: &mut Report) {
    const NAME: &str = "turn-credentials-hidden";
    match client
        .request(Method::GET, "/turn-credentials", &[], None)
        .await
    {
        Err(e) => report.fail(NAME, net_detail(&e)),
        Ok(r) if r.status == StatusCode::NOT_FOUND => {
            report.pass(NAME, "404 for /turn-credentials");
        }
        Ok(r) => report.fail(
            NAME,
            format!(
                "status {} for /turn-credentials (want 404): the test endpoint is exposed",
                r.status.as_u16()
            ),
        ),
    }
}

/// The directives of a CSP value, as `(name, sources)`.
fn csp_directives(csp: &str) -> Vec<(String, Vec<String>)> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.map(str::to_owned).collect()))
        })
        .collect()
}

/// The `max-age` of an HSTS value, if well-formed.
fn hsts_max_age(value: &str) -> Option<u64> {
    value.split(';').find_map(|d| {
        let (k, v) = d.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| v.trim().trim_matches('"').parse().ok())?
    })
}

async fn security_headers(client: &Client, report: &mut Report) {
    let r = match client.request(Method::GET, "/", &[], None).await {
        Ok(r) => r,
        Err(e) => {
            report.fail("header-csp", net_detail(&e));
            return;
        }
    };
    let get = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match get("content-security-policy") {
        None => report.fail("header-csp", "no Content-Security-Policy on /"),
        Some(csp) => {
            let dirs = csp_directives(&csp);
            let has = |name: &str, source: &str| {
                dirs.iter()
                    .any(|(n, s)| n == name && s.iter().any(|x| x == source))
            };
            let missing: Vec<&str> = [
                ("default-src", "'self'", "default-src 'self'"),
                ("frame-ancestors", "'none'", "frame-ancestors 'none'"),
                ("base-uri", "'none'", "base-uri 'none'"),
            ]
            .into_iter()
            .filter(|(n, s, _)| !has(n, s))
            .map(|(_, _, text)| text)
            .collect();
            if missing.is_empty() {
                report.pass(
                    "header-csp",
                    "default-src 'self', frame-ancestors 'none', base-uri 'none'",
                );
            } else {
                report.fail("header-csp", format!("CSP lacks {}", missing.join(", ")));
            }
        }
    }
    let exact = [
        ("header-nosniff", "x-content-type-options", "nosniff"),
        ("header-referrer-policy", "referrer-policy", "no-referrer"),
        ("header-coop", "cross-origin-opener-policy", "same-origin"),
    ];
    for (name, header, want) in exact {
        match get(header) {
            Some(v) if v.trim().eq_ignore_ascii_case(want) => {
                report.pass(name, format!("{header}: {want}"));
            }
            Some(v) => report.fail(name, format!("{header}: {v} (want {want})")),
            None => report.fail(name, format!("no {header} (want {want})")),
        }
    }
    match get("permissions-policy") {
        Some(v) => {
            let p: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            let ok = p.contains("camera=(self)") && p.contains("microphone=(self)");
            report.verdict(
                ok,
                "header-permissions-policy",
                if ok {
                    "camera and microphone for self only".to_owned()
                } else {
                    format!("permissions-policy: {v} (want camera=(self), microphone=(self))")
                },
            );
        }
        None => report.fail("header-permissions-policy", "no permissions-policy"),
    }
    if !client.origin.https {
        report.skip("header-hsts", "n/a (http)");
    } else {
        match get("strict-transport-security") {
            Some(v) => match hsts_max_age(&v) {
                Some(age) if age > 0 => {
                    report.pass("header-hsts", format!("max-age={age}"));
                }
                _ => report.fail("header-hsts", format!("{v} (want max-age > 0)")),
            },
            None => report.fail("header-hsts", "no strict-transport-security"),
        }
    }
}

/// What a successful join gave us.
struct Joined {
    turn_urls: Vec<String>,
    username: Option<String>,
    credential: Option<String>,
}

/// The first 8 hex digits of a room id: enough to tell rooms apart, useless to join one.
fn prefix(room_id: &str) -> &str {
    &room_id[..8]
}

async fn join(client: &Client, room_id: Option<&str>, report: &mut Report) -> Option<Joined> {
    let fresh;
    let room_id = match room_id {
        Some(id) => id,
        None => {
            fresh = hex::encode(rand::random::<[u8; 32]>());
            if !register_room(client, &fresh, report).await {
                return None;
            }
            &fresh
        }
    };
    match join_room(client, room_id).await {
        Err(detail) => {
            report.fail("join", detail);
            None
        }
        Ok(msg) => check_joined(&msg, room_id, report),
    }
}

async fn register_room(client: &Client, room_id: &str, report: &mut Report) -> bool {
    const NAME: &str = "rooms-register";
    let origin = client.origin.header();
    let headers = [
        ("origin", origin.as_str()),
        ("content-type", "application/json"),
    ];
    match client
        .request(Method::POST, "/rooms", &headers, Some(room_body(room_id)))
        .await
    {
        Err(e) => report.fail(NAME, net_detail(&e)),
        Ok(r) if r.status == StatusCode::CREATED => {
            report.pass(NAME, format!("201 for a fresh room {}…", prefix(room_id)));
            return true;
        }
        Ok(r) if r.status == StatusCode::NOT_FOUND => {
            report.skip(
                NAME,
                "generated rooms are disabled (404); use --room-id-file to join an allowlisted room",
            );
            report.skip("join", "no room to join");
        }
        Ok(r) => report.fail(
            NAME,
            format!("status {} for POST /rooms (want 201)", r.status.as_u16()),
        ),
    }
    false
}

/// Opens `/ws`, sends `join`, and returns the first message the server sends back; always
/// ends with `hangup` and a close so the room is freed at once.
async fn join_room(client: &Client, room_id: &str) -> Result<Value, String> {
    let limit = client.limit;
    let stream = client.connect().await.map_err(|e| net_detail(&e))?;
    let mut request = client
        .origin
        .ws_url()
        .into_client_request()
        .map_err(|e| format!("bad WebSocket URL: {e}"))?;
    let origin = HeaderValue::from_str(&client.origin.header())
        .map_err(|_| "the origin is not a valid header value".to_owned())?;
    request.headers_mut().insert("origin", origin);
    let (mut ws, _) = tokio::time::timeout(limit, tokio_tungstenite::client_async(request, stream))
        .await
        .map_err(|_| format!("WebSocket handshake timed out after {limit:?}"))?
        .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
    let join = serde_json::json!({ "type": "join", "roomId": room_id }).to_string();
    let answer = tokio::time::timeout(limit, async {
        ws.send(WsMessage::text(join))
            .await
            .map_err(|e| format!("sending join failed: {e}"))?;
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(WsMessage::Text(t)) => {
                    return serde_json::from_str::<Value>(&t)
                        .map_err(|_| "the server sent a non-JSON text frame".to_owned());
                }
                Ok(WsMessage::Close(c)) => {
                    return Err(format!(
                        "the server closed the socket ({})",
                        c.map_or_else(|| "no code".to_owned(), |c| u16::from(c.code).to_string())
                    ));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("socket error: {e}")),
            }
        }
        Err("the server closed the socket".to_owned())
    })
    .await
    .unwrap_or_else(|_| Err(format!("no answer to join within {limit:?}")));
    // Leave at once: the slot is freed and an empty room is deleted.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = ws.send(WsMessage::text(r#"{"type":"hangup"}"#)).await;
        let _ = ws.close(None).await;
    })
    .await;
    answer
}

fn check_joined(msg: &Value, room_id: &str, report: &mut Report) -> Option<Joined> {
    let kind = msg.get("type").and_then(Value::as_str).unwrap_or("?");
    if kind != "joined" {
        let code = msg.get("code").and_then(Value::as_str).unwrap_or(kind);
        report.fail(
            "join",
            format!("room {}…: got `{code}` instead of joined", prefix(room_id)),
        );
        return None;
    }
    let peer = msg.get("peerPresent").and_then(Value::as_bool);
    report.pass(
        "join",
        format!(
            "joined room {}…{}",
            prefix(room_id),
            if peer == Some(true) {
                " (a peer is present)"
            } else {
                ""
            }
        ),
    );
    let relay = msg.get("relayAvailable").and_then(Value::as_bool) == Some(true);
    report.verdict(
        relay,
        "relay-available",
        if relay {
            "relayAvailable: true"
        } else {
            "relayAvailable is not true: no TURN configured"
        },
    );
    let mut joined = Joined {
        turn_urls: Vec::new(),
        username: None,
        credential: None,
    };
    let servers = msg
        .get("iceServers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for s in &servers {
        let urls: Vec<String> = match s.get("urls") {
            Some(Value::String(u)) => vec![u.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let turn: Vec<String> = urls
            .into_iter()
            .filter(|u| u.starts_with("turn:") || u.starts_with("turns:"))
            .collect();
        let user = s.get("username").and_then(Value::as_str);
        let cred = s.get("credential").and_then(Value::as_str);
        if let (false, Some(u), Some(c)) = (turn.is_empty(), user, cred)
            && joined.username.is_none()
            && !u.is_empty()
            && !c.is_empty()
        {
            joined.turn_urls = turn;
            joined.username = Some(u.to_owned());
            joined.credential = Some(c.to_owned());
        }
    }
    let now = unix_now();
    let expires = msg.get("credentialExpiresAt").and_then(Value::as_u64);
    match (&joined.username, expires) {
        (Some(_), Some(e)) if e > now => report.pass(
            "ice-servers",
            format!(
                "{} TURN URL(s) with credentials, valid for {} s",
                joined.turn_urls.len(),
                e - now
            ),
        ),
        (Some(_), _) => report.fail(
            "ice-servers",
            "TURN credentials without a future credentialExpiresAt",
        ),
        (None, _) => report.fail(
            "ice-servers",
            "no turn:/turns: URL with username and credential in iceServers",
        ),
    }
    Some(joined)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// A sample address of every built-in denied range (the network address + 1, or the range's
/// own address when it has one), with the well-known ones spelled out, plus the unspecified
/// addresses. IPv4 first.
pub fn denied_samples() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec!["0.0.0.0".parse().expect("literal")];
    for r in DEFAULT_DENIED_PEER_RANGES {
        let range = r.range();
        let sample: IpAddr = match r.cidr {
            "169.254.0.0/16" => "169.254.169.254".parse().expect("literal"),
            "192.168.0.0/16" => "192.168.1.1".parse().expect("literal"),
            "::ffff:0:0/96" => "::ffff:127.0.0.1".parse().expect("literal"),
            _ if range.start == range.end => range.start,
            _ => match range.start {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 1).into()),
                IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 1).into()),
            },
        };
        out.push(sample);
    }
    out.push("::".parse().expect("literal"));
    out.push("::ffff:169.254.169.254".parse().expect("literal"));
    out.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    out.dedup();
    out
}

/// The credentials the TURN checks use: the issued ones from `joined`, else ones made from
/// the secret file.
fn turn_credentials(
    joined: Option<&Joined>,
    secret: Option<&TurnSecret>,
) -> Option<(String, String)> {
    if let Some(Joined {
        username: Some(u),
        credential: Some(c),
        ..
    }) = joined
    {
        return Some((u.clone(), c.clone()));
    }
    let secret = secret?;
    let c = crate::turn::credentials(
        secret,
        "alisay-probe",
        SystemTime::now(),
        Duration::from_secs(600),
    );
    Some((c.username, c.credential))
}

async fn turn_checks(
    args: &ProbeArgs,
    setup: &Setup,
    joined: Option<&Joined>,
    report: &mut Report,
) {
    let secret = setup.secret.as_ref();
    if let (Some(secret), Some(j)) = (secret, joined)
        && let (Some(u), Some(c)) = (&j.username, &j.credential)
    {
        let ok = crate::turn::password(secret, u) == *c;
        report.verdict(
            ok,
            "turn-secret-matches",
            if ok {
                "the issued credential is HMAC-SHA1(secret file, username)"
            } else {
                "the issued credential does not match the secret file"
            },
        );
    }
    let urls: Vec<TurnUrl> = if setup.turn_urls.is_empty() {
        let mut urls = Vec::new();
        for u in joined.map(|j| j.turn_urls.as_slice()).unwrap_or_default() {
            match TurnUrl::parse(u) {
                Ok(url) => urls.push(url),
                Err(e) => report.fail(format!("turn-url {u}"), e.to_string()),
            }
        }
        urls
    } else {
        setup.turn_urls.clone()
    };
    let Some((username, password)) = turn_credentials(joined, secret) else {
        report.skip(
            "turn",
            "no TURN credentials: none from a join and no --turn-secret-file",
        );
        return;
    };
    if urls.is_empty() {
        report.skip("turn", "no TURN URLs: none in joined and no --turn");
        return;
    }
    let tls = setup.tls.as_ref();
    let limit = args.timeout;

    // Every URL accepts the credentials; the first UDP one (else the first) is kept for the
    // deny checks.
    let main_url = urls
        .iter()
        .find(|u| u.transport == turn::Transport::Udp)
        .unwrap_or(&urls[0])
        .clone();
    let mut kept: Option<Session> = None;
    for url in &urls {
        let name = format!("turn-allocate {url}");
        match allocate(url, tls, &username, &password, limit, false).await {
            Ok((mut s, relayed)) => {
                report.pass(&name, format!("allocated, relayed address {relayed}"));
                if kept.is_none() && *url == main_url {
                    kept = Some(s);
                } else {
                    s.release().await;
                }
            }
            Err(detail) => report.fail(&name, detail),
        }
    }

    let samples = denied_samples();
    match kept {
        None => report.fail(
            "turn-deny",
            format!("not tested: no allocation on {main_url}"),
        ),
        Some(mut s) => {
            for ip in samples.iter().filter(|ip| ip.is_ipv4()) {
                deny_check(&mut s, *ip, report).await;
            }
            allow_check(&mut s, &args.public_peers, false, report).await;
            s.release().await;
        }
    }

    // IPv6 peers need an IPv6 allocation.
    match allocate(&main_url, tls, &username, &password, limit, true).await {
        Ok((mut s, _)) => {
            for ip in samples.iter().filter(|ip| ip.is_ipv6()) {
                deny_check(&mut s, *ip, report).await;
            }
            allow_check(&mut s, &args.public_peers, true, report).await;
            s.release().await;
        }
        Err(detail) if detail.starts_with("440 ") => report.skip(
            "turn-deny ipv6",
            format!("n/a: the server has no IPv6 relay ({detail})"),
        ),
        Err(detail) => report.fail("turn-deny ipv6", format!("IPv6 allocation: {detail}")),
    }

    let wrong = format!("{}x", password.trim_end_matches('='));
    expect_401(
        "turn-wrong-password",
        &main_url,
        tls,
        &username,
        &wrong,
        limit,
        report,
    )
    .await;
    if let Some(secret) = secret {
        let past = SystemTime::now() - Duration::from_secs(3600);
        let old = crate::turn::credentials(secret, "alisay-probe", past, Duration::ZERO);
        expect_401(
            "turn-expired-username",
            &main_url,
            tls,
            &old.username,
            &old.credential,
            limit,
            report,
        )
        .await;
    }
}

/// Opens a session on `url` and allocates; the error is a detail line (`"401 Unauthorized"`).
async fn allocate(
    url: &TurnUrl,
    tls: Option<&TlsConnector>,
    username: &str,
    password: &str,
    limit: Duration,
    ipv6: bool,
) -> Result<(Session, std::net::SocketAddr), String> {
    let mut s = Session::open(url, tls, username, password, limit)
        .await
        .map_err(|e| e.to_string())?;
    match s.allocate(ipv6).await {
        Ok(Outcome::Success(relayed)) => Ok((s, relayed)),
        Ok(Outcome::Refused(c, r)) => Err(format!("{c} {r}")),
        Err(e) => Err(e.to_string()),
    }
}

async fn deny_check(s: &mut Session, ip: IpAddr, report: &mut Report) {
    let name = format!("turn-deny {ip}");
    let what = default_denied(ip).unwrap_or("denied range");
    match s.create_permission(ip).await {
        Ok(Outcome::Refused(403, r)) => report.pass(name, format!("403 {r} ({what})")),
        Ok(Outcome::Success(())) => report.fail(
            name,
            format!("permission granted: the relay would reach {ip} ({what})"),
        ),
        Ok(Outcome::Refused(c, r)) => report.fail(name, format!("{c} {r} (want 403)")),
        Err(e) => report.fail(name, e.to_string()),
    }
}

/// The control: the first public peer of the allocation's family must be permitted.
async fn allow_check(s: &mut Session, peers: &[IpAddr], ipv6: bool, report: &mut Report) {
    let Some(ip) = peers.iter().find(|ip| ip.is_ipv6() == ipv6) else {
        return;
    };
    let name = format!("turn-allow-public-peer {ip}");
    match s.create_permission(*ip).await {
        Ok(Outcome::Success(())) => report.pass(name, "permission granted"),
        Ok(Outcome::Refused(c, r)) => {
            report.fail(name, format!("{c} {r}: the relay refuses public peers too"))
        }
        Err(e) => report.fail(name, e.to_string()),
    }
}

async fn expect_401(
    name: &str,
    url: &TurnUrl,
    tls: Option<&TlsConnector>,
    username: &str,
    password: &str,
    limit: Duration,
    report: &mut Report,
) {
    match allocate(url, tls, username, password, limit, false).await {
        Ok((mut s, _)) => {
            s.release().await;
            report.fail(name, "allocation succeeded (want 401)");
        }
        Err(d) if d.starts_with("401 ") => report.pass(name, d),
        Err(d) => report.fail(name, format!("{d} (want 401)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_every_denied_range_and_the_named_addresses() {
        let samples = denied_samples();
        for r in DEFAULT_DENIED_PEER_RANGES {
            assert!(
                samples.iter().any(|ip| r.range().contains(*ip)),
                "no sample in {}",
                r.cidr
            );
        }
        for named in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(samples.contains(&named.parse().unwrap()), "{named}");
        }
        assert!(samples.iter().all(|ip| default_denied(*ip).is_some()));
    }

    #[test]
    fn csp_and_hsts_values_are_read_by_directive() {
        let d = csp_directives("default-src 'self'; frame-ancestors 'none' ;base-uri 'none'");
        assert!(d.contains(&("frame-ancestors".to_owned(), vec!["'none'".to_owned()])));
        assert_eq!(
            hsts_max_age("max-age=63072000; includeSubDomains"),
            Some(63_072_000)
        );
        assert_eq!(hsts_max_age("includeSubDomains"), None);
    }

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
