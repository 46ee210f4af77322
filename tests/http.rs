//! The HTTP surface (SPEC §4) of the real `alisay serve` binary, over raw HTTP/1.1: the `/ws`
//! upgrade checks, `POST /rooms`, `/turn-credentials`, `/healthz`, the static client with its
//! security headers and ETags, path traversal, and which client address counts
//! (`X-Forwarded-For` only from trusted proxies).

mod common;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Server, room_id, unix_now};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;
use sha1::Sha1;

fn upgrade_request(server: &Server, target: &str, origin: Option<&str>) -> String {
    let mut req = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
        server.port
    );
    if let Some(o) = origin {
        req.push_str(&format!("Origin: {o}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// Sends an upgrade request and reads only the response head (a 101 keeps the socket open).
async fn upgrade_status(server: &Server, target: &str, origin: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = common::connect_from(server.addr(), None).await;
    s.write_all(upgrade_request(server, target, origin).as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(common::WAIT, s.read(&mut chunk))
            .await
            .expect("answer in time")
            .unwrap();
        assert!(n > 0, "closed without an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn ws_with_any_query_string_is_400() {
    let server = Server::start("rooms: {allow_open_rooms: true}").await;
    let origin = server.origin.clone();
    assert_eq!(upgrade_status(&server, "/ws", Some(&origin)).await, 101);
    for target in [
        "/ws?",
        "/ws?x=1",
        "/ws?room=ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "/ws?&",
    ] {
        assert_eq!(
            upgrade_status(&server, target, Some(&origin)).await,
            400,
            "{target}"
        );
    }
    // Even before the Origin check.
    assert_eq!(upgrade_status(&server, "/ws?x", None).await, 400);
    // A tungstenite client sees the refusal too.
    assert!(
        server
            .ws_with("/ws?", Some(&origin), None)
            .await
            .err()
            .is_some_and(|e| e.to_string().contains("400"))
    );
}

#[tokio::test]
async fn ws_from_a_foreign_or_missing_origin_is_403() {
    let server = Server::start("rooms: {allow_open_rooms: true}").await;
    let port = server.port;
    for origin in [
        Some("https://evil.example".to_owned()),
        Some("null".to_owned()),
        Some(format!("http://127.0.0.1:{}", port + 1)),
        Some(format!("https://127.0.0.1:{port}")),
        Some(format!("http://127.0.0.1:{port}/")),
        Some(format!("HTTP://127.0.0.1:{port}")),
        Some(String::new()),
        None,
    ] {
        assert_eq!(
            upgrade_status(&server, "/ws", origin.as_deref()).await,
            403,
            "origin {origin:?}"
        );
    }
    // The public origin and every allowed origin are admitted.
    for origin in [server.origin.clone(), format!("http://localhost:{port}")] {
        assert_eq!(upgrade_status(&server, "/ws", Some(&origin)).await, 101);
        let mut c = server
            .ws_with("/ws", Some(&origin), None)
            .await
            .expect("upgrade");
        c.join(&room_id()).await;
    }
}

#[tokio::test]
async fn post_rooms_checks_origin_content_type_and_body() {
    let server = Server::start("").await;
    let origin = server.origin.clone();
    let id = room_id();
    let body = json!({"roomId": id}).to_string();
    let post = |body: String, origin: Option<String>, ct: Option<&'static str>| {
        let server = &server;
        async move {
            server
                .post_rooms_full(None, &body, origin.as_deref(), ct, &[])
                .await
                .status
        }
    };
    let json_ct = Some("application/json");
    // Origin: foreign, missing, opaque.
    assert_eq!(
        post(body.clone(), Some("https://evil.example".into()), json_ct).await,
        403
    );
    assert_eq!(post(body.clone(), None, json_ct).await, 403);
    assert_eq!(post(body.clone(), Some("null".into()), json_ct).await, 403);
    // Content types a cross-site form or a simple request can send: refused (CSRF).
    for ct in [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-patch+json",
    ] {
        assert_eq!(
            post(body.clone(), Some(origin.clone()), Some(ct)).await,
            415,
            "{ct}"
        );
    }
    assert_eq!(post(body.clone(), Some(origin.clone()), None).await, 415);
    // Bad bodies.
    for bad in [
        "".to_owned(),
        "not json".to_owned(),
        "[]".to_owned(),
        json!({}).to_string(),
        json!({"roomId": id.to_uppercase()}).to_string(),
        json!({"roomId": &id[..63]}).to_string(),
        json!({"roomId": format!("{id}0")}).to_string(),
        json!({"roomId": format!("{}g", &id[..63])}).to_string(),
        json!({"roomId": 5}).to_string(),
        json!({"roomId": id, "name": "x"}).to_string(),
    ] {
        assert_eq!(
            post(bad.clone(), Some(origin.clone()), json_ct).await,
            400,
            "{bad}"
        );
    }
    // A body over the limit.
    let big = format!(r#"{{"roomId":"{id}","pad":"{}"}}"#, "x".repeat(4096));
    assert_eq!(post(big, Some(origin.clone()), json_ct).await, 413);
    // A body without a length (chunked) is refused too.
    let chunked = server
        .http_raw(&format!(
            "POST /rooms HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\
             Origin: {origin}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            server.port,
            body.len()
        ))
        .await;
    assert_eq!(chunked.status, 411);
    // 201, then 200, both with expiresAt; charset parameters are fine.
    let r = server
        .post_rooms_full(None, &body, Some(&origin), json_ct, &[])
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let expires = r.json()["expiresAt"].as_u64().expect("expiresAt");
    let now = unix_now();
    assert!(
        (now + 590..=now + 601).contains(&expires),
        "expiresAt {expires} is now + reservation_ttl (10m)"
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = server
        .post_rooms_full(
            None,
            &body,
            Some(&format!("http://localhost:{}", server.port)),
            Some("application/json; charset=utf-8"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["expiresAt"].is_u64());
    // GET is not a way in (it is just a path with no file).
    assert_eq!(
        server.get("/rooms", &[("Origin", &origin)]).await.status,
        404
    );
    // Registered: the room admits.
    let mut c = server.ws().await;
    c.join(&id).await;
}

#[tokio::test]
async fn post_rooms_per_ip_cap_is_429_and_capacity_is_503() {
    let server = Server::start("rooms: {max_active: 3, generated: {per_ip: 2}}").await;
    let other = IpAddr::from([127, 0, 0, 2]);
    let origin = server.origin.clone();
    let post_from = |from: IpAddr, id: String| {
        let server = &server;
        let origin = origin.clone();
        async move {
            server
                .post_rooms_full(
                    Some(from),
                    &json!({"roomId": id}).to_string(),
                    Some(&origin),
                    Some("application/json"),
                    &[],
                )
                .await
                .status
        }
    };
    let local = IpAddr::from([127, 0, 0, 1]);
    let first = room_id();
    assert_eq!(post_from(local, first.clone()).await, 201);
    assert_eq!(post_from(local, room_id()).await, 201);
    assert_eq!(post_from(local, room_id()).await, 429, "per_ip: 2");
    // Re-registering one's own room is not a new room.
    assert_eq!(post_from(local, first.clone()).await, 200);
    // Another address has its own allowance, until capacity runs out.
    assert_eq!(post_from(other, room_id()).await, 201);
    assert_eq!(post_from(other, room_id()).await, 503, "max_active: 3");
}

#[tokio::test]
async fn post_rooms_404_when_generated_rooms_are_disabled() {
    let server =
        Server::start("rooms: {generated: {enabled: false}, allow_open_rooms: true}").await;
    assert_eq!(server.post_room(&room_id()).await.status, 404);
}

/// X-Forwarded-For counts only from a trusted proxy: here 127.0.0.1 is trusted and 127.0.0.2
/// (a direct client) is not. Observed through `rooms.generated.per_ip: 1`.
#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_proxies() {
    let server = Server::start(
        "server: {trusted_proxies: [\"127.0.0.1/32\"]}\nrooms: {generated: {per_ip: 1}}",
    )
    .await;
    let origin = server.origin.clone();
    let post = |from: [u8; 4], xff: &'static str| {
        let server = &server;
        let origin = origin.clone();
        async move {
            server
                .post_rooms_full(
                    Some(IpAddr::from(from)),
                    &json!({"roomId": room_id()}).to_string(),
                    Some(&origin),
                    Some("application/json"),
                    &[("X-Forwarded-For", xff)],
                )
                .await
                .status
        }
    };
    // Untrusted peer: its header is ignored, so both requests are 127.0.0.2's.
    assert_eq!(post([127, 0, 0, 2], "198.51.100.1").await, 201);
    assert_eq!(post([127, 0, 0, 2], "198.51.100.2").await, 429);
    // Trusted proxy: each forwarded client has its own cap...
    assert_eq!(post([127, 0, 0, 1], "198.51.100.1").await, 201);
    assert_eq!(post([127, 0, 0, 1], "198.51.100.2").await, 201);
    assert_eq!(post([127, 0, 0, 1], "198.51.100.2").await, 429);
    // ...and the right-most untrusted hop counts: a forged left hop changes nothing.
    assert_eq!(
        post([127, 0, 0, 1], "203.0.113.50, 198.51.100.2").await,
        429
    );
    assert_eq!(post([127, 0, 0, 1], "198.51.100.3, 127.0.0.1").await, 201);
    assert_eq!(post([127, 0, 0, 1], "198.51.100.3").await, 429);

    // With no trusted proxies at all, loopback's header is ignored too.
    let server =
        Server::start("server: {trusted_proxies: []}\nrooms: {generated: {per_ip: 1}}").await;
    let r = server
        .post_rooms_full(
            None,
            &json!({"roomId": room_id()}).to_string(),
            Some(&server.origin),
            Some("application/json"),
            &[("X-Forwarded-For", "198.51.100.1")],
        )
        .await;
    assert_eq!(r.status, 201);
    let r = server
        .post_rooms_full(
            None,
            &json!({"roomId": room_id()}).to_string(),
            Some(&server.origin),
            Some("application/json"),
            &[("X-Forwarded-For", "198.51.100.2")],
        )
        .await;
    assert_eq!(r.status, 429);
}

/// One IPv6 client holds a whole /64: per-IP caps count the /64, or they would cap nothing.
#[tokio::test]
async fn ipv6_clients_are_capped_per_64() {
    let server = Server::start("rooms: {generated: {per_ip: 1}}").await;
    let origin = server.origin.clone();
    let post = |xff: &'static str| {
        let server = &server;
        let origin = origin.clone();
        async move {
            server
                .post_rooms_full(
                    None,
                    &json!({"roomId": room_id()}).to_string(),
                    Some(&origin),
                    Some("application/json"),
                    &[("X-Forwarded-For", xff)],
                )
                .await
                .status
        }
    };
    assert_eq!(post("2001:db8:1:2::1").await, 201);
    assert_eq!(post("2001:db8:1:2::2").await, 429);
    assert_eq!(post("2001:db8:1:2:ffff:ffff:ffff:ffff").await, 429);
    assert_eq!(post("2001:db8:1:3::1").await, 201);
    // IPv4 addresses are still one each.
    assert_eq!(post("198.51.100.1").await, 201);
    assert_eq!(post("198.51.100.2").await, 201);
}

#[tokio::test]
async fn turn_credentials_endpoint_is_off_by_default_and_correct_when_on() {
    let turn = "turn:\n  urls: [\"turn:127.0.0.1:3478\"]\n  secret_file: \"@SECRET_FILE@\"\n  credential_ttl: 15m\n";
    let server = Server::start(turn).await;
    assert_eq!(server.get("/turn-credentials", &[]).await.status, 404);

    let server = Server::start(&format!("{turn}  test_endpoint: true\n")).await;
    let r = server.get("/turn-credentials", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let v = r.json();
    let entry = &v["iceServers"][0];
    assert_eq!(entry["urls"], json!(["turn:127.0.0.1:3478"]));
    let username = entry["username"].as_str().expect("username");
    let (expiry, label) = username.split_once(':').expect("<expiry>:<label>");
    let expiry: u64 = expiry.parse().expect("unix seconds");
    let now = unix_now();
    assert!(
        (now + 895..=now + 901).contains(&expiry),
        "expiry {expiry} = now + 15m"
    );
    assert_eq!(v["credentialExpiresAt"], expiry);
    assert!(!label.is_empty());
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(server.secret.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    assert_eq!(
        entry["credential"],
        STANDARD.encode(mac.finalize().into_bytes()),
        "base64(HMAC-SHA1(secret, username))"
    );
    // Fresh each time.
    let again = server.get("/turn-credentials", &[]).await.json();
    assert_ne!(again["iceServers"][0]["username"], entry["username"]);
}

#[tokio::test]
async fn healthz_is_json_with_version_and_no_room_data() {
    let room = room_id();
    let server = Server::start(&format!("rooms: {{allowlist: [\"{room}\"]}}")).await;
    let mut c = server.ws().await;
    c.join(&room).await;
    let r = server.get("/healthz", &[]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptimeSeconds"].is_u64());
    assert!(!r.text().contains(&room[..8]));
}

#[tokio::test]
async fn static_client_has_security_headers_etag_and_304() {
    let server = Server::start("").await;
    let r = server.get("/", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text().contains("<html")
            || r.text().contains("<!doctype")
            || r.text().contains("<!DOCTYPE")
    );
    let csp = r.header("content-security-policy").expect("CSP");
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
        "script-src 'self'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    let connect = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("connect-src"))
        .expect("connect-src");
    assert_eq!(
        connect,
        format!("connect-src 'self' ws://127.0.0.1:{}", server.port)
    );
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(r.header("cross-origin-opener-policy"), Some("same-origin"));
    let pp = r.header("permissions-policy").expect("Permissions-Policy");
    assert!(
        pp.contains("camera=(self)") && pp.contains("microphone=(self)"),
        "{pp}"
    );
    assert!(pp.contains("geolocation=()"), "{pp}");
    // Only features Chromium has known for years: any other name makes it log "Error with
    // Permissions-Policy header: Unrecognized feature" on every page (issue 14 saw
    // `speaker-selection`). tests/e2e/call.test.js checks a real Chromium's log as well.
    const KNOWN: [&str; 6] = [
        "camera",
        "microphone",
        "display-capture",
        "geolocation",
        "payment",
        "usb",
    ];
    for item in pp.split(',') {
        let feature = item.trim().split('=').next().unwrap_or_default();
        assert!(
            KNOWN.contains(&feature),
            "unexpected feature {feature:?} in {pp}"
        );
    }
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let etag = r.header("etag").expect("ETag").to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    // Revalidation.
    let r304 = server.get("/", &[("If-None-Match", &etag)]).await;
    assert_eq!(r304.status, 304);
    assert!(r304.body.is_empty());
    assert_eq!(r304.header("etag"), Some(etag.as_str()));
    assert!(r304.header("content-security-policy").is_some());
    let r_list = server
        .get("/", &[("If-None-Match", &format!("\"nope\", {etag}"))])
        .await;
    assert_eq!(r_list.status, 304);
    let r200 = server.get("/", &[("If-None-Match", "\"other\"")]).await;
    assert_eq!(r200.status, 200);
    // Every response carries the headers, errors included.
    for path in ["/healthz", "/no-such-file", "/index.html"] {
        let r = server.get(path, &[]).await;
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert!(r.header("content-security-policy").is_some(), "{path}");
    }
    // Scripts are served as JavaScript.
    let js = server.get("/js/main.js", &[]).await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").unwrap().contains("javascript"));
    // HEAD: headers without a body.
    let head = server
        .http_raw(&format!(
            "HEAD / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            server.port
        ))
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), Some(etag.as_str()));
}

#[tokio::test]
async fn path_traversal_finds_nothing() {
    let server = Server::start("").await;
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/Cargo.toml",
        "/..%2fCargo.toml",
        "/js/../../Cargo.toml",
        "/js/%2e%2e/%2e%2e/Cargo.toml",
        "/..%5cCargo.toml",
        "//etc/passwd",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/public/index.html",
        "/src/main.rs",
        "/.git/config",
    ] {
        let r = server.get(path, &[]).await;
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(
            !r.text().contains("[package]") && !r.text().contains("root:"),
            "{path}"
        );
    }
}
