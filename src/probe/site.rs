//! The checks of the site itself, over HTTP(S) and its WebSocket: `/healthz`, the `/ws`
//! upgrade and its refusals, `POST /rooms` from a foreign origin, the hidden test endpoint,
//! the security headers, and a real join.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::{Message as WsMessage, http::HeaderValue};

use super::net::{Client, NetError};
use super::{FOREIGN_ORIGIN, Report, unix_now};

/// The `error` or short description of a failed request, for a detail column.
fn net_detail(e: &NetError) -> String {
    format!("request failed: {e}")
}

pub(super) async fn healthz(client: &Client, report: &mut Report) {
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

pub(super) async fn websocket_rules(client: &Client, report: &mut Report) {
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

pub(super) async fn rooms_foreign_origin(client: &Client, report: &mut Report) {
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

pub(super) async fn turn_credentials_hidden(client: &Client, report: &mut Report) {
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

pub(super) async fn security_headers(client: &Client, report: &mut Report) {
    let r = match client.request(Method::GET, "/", &[], None).await {
        Ok(r) => r,
        Err(e) => {
            for name in [
                "header-csp",
                "header-nosniff",
                "header-referrer-policy",
                "header-coop",
                "header-permissions-policy",
                "header-hsts",
            ] {
                report.fail(name, net_detail(&e));
            }
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
pub(super) struct Joined {
    pub(super) turn_urls: Vec<String>,
    pub(super) username: Option<String>,
    pub(super) credential: Option<String>,
}

/// The first 8 hex digits of a room id: enough to tell rooms apart, useless to join one.
fn prefix(room_id: &str) -> &str {
    &room_id[..8]
}

pub(super) async fn join(
    client: &Client,
    room_id: Option<&str>,
    report: &mut Report,
) -> Option<Joined> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
