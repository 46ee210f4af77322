//! Privacy: a whole call's worth of signaling through the rendered nginx site to the real
//! `alisay serve` (production config, logging at `debug`), TURN allocations on the real coturn
//! with the credentials that call was issued, and a burst of hostile input carrying the same
//! secrets; then every log (alisay, nginx's access and error logs, coturn) and every rendered
//! file is searched for the room id, the room token, the session ids, the TURN secret and the
//! issued TURN password, SDP text and the candidates' IP addresses. None may be found.
//!
//! The search is proven first: a planted string that the test sends through nginx is found in
//! the access log by the very same search.
//!
//! Everything runs in a network namespace the test creates (`unshare -n`, loopback plus a veth
//! for coturn's public address), so no packet leaves the machine. Programs (apt): nginx,
//! coturn, openssl, iproute2, util-linux; a missing one FAILS the test.

#[path = "hostile/support.rs"]
mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{Proc, require, run_ok, wait_tcp};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Set (to anything) in the re-executed test inside the namespace. Not `ALISAY_*`: the config
/// loader reads every variable with that prefix.
const IN_NETNS: &str = "PRIVACY_IN_NETNS";
const ORIGIN: &str = "https://call.example.org";
/// coturn's public address, on a veth inside the namespace.
const TURN_IP: &str = "100.128.0.1";

#[test]
fn no_log_or_rendered_file_holds_a_secret_sdp_or_candidate_address() {
    if std::env::var_os(IN_NETNS).is_some() {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(call_in_namespace());
        return;
    }
    for program in ["unshare", "ip", "nginx", "turnserver", "openssl"] {
        require(program);
    }
    let status = Command::new("timeout")
        .arg("120")
        .arg(require("unshare"))
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && ip link add p0 type veth peer name p1 \
             && ip addr add 100.128.0.1/24 dev p0 && ip link set p1 up && ip link set p0 up \
             && exec \"$0\" \"$@\"",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_log_or_rendered_file_holds_a_secret_sdp_or_candidate_address",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(IN_NETNS, "1")
        .status()
        .expect("run unshare");
    assert!(
        status.success(),
        "the privacy test inside the namespace failed: {status}"
    );
}

/// The production config of this deployment: one file for `alisay serve`, `alisay render`
/// and `alisay coturn-config`, as on a host.
fn config_yaml(dir: &Path, secret: &Path, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        "mode: production\npublic_origin: \"{ORIGIN}\"\n\
         server:\n  listen: \"127.0.0.1:8787\"\n\
         turn:\n  urls: [\"turn:{TURN_IP}:3478?transport=udp\"]\n  secret_file: \"{}\"\n  \
         realm: call.example.org\n  listening_ips: [\"{TURN_IP}\"]\n  relay_ips: [\"{TURN_IP}\"]\n  \
         min_port: 49160\n  max_port: 49200\n\
         nginx:\n  tls_cert: \"{}\"\n  tls_key: \"{}\"\n  access_log: \"{d}/logs/alisay.access.log\"\n  \
         error_log: \"{d}/logs/alisay.error.log\"\n\
         logging:\n  level: debug\n",
        secret.display(),
        cert.display(),
        key.display(),
    )
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to nginx on 127.0.0.1:443 for `call.example.org`.
async fn tls(ca: &Path) -> Tls {
    let connector = alisay::probe::net::tls_connector(Some(ca)).unwrap();
    let tcp = TcpStream::connect("127.0.0.1:443").await.unwrap();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("call.example.org").unwrap();
    connector.connect(name, tcp).await.expect("TLS to nginx")
}

/// A browser-like WebSocket through nginx (TLS, the site's Origin, forwarded as `client_ip`).
struct Caller(WebSocketStream<Tls>);

impl Caller {
    async fn connect(ca: &Path) -> Caller {
        let mut req = "ws://call.example.org/ws".into_client_request().unwrap();
        req.headers_mut()
            .insert("origin", HeaderValue::from_static(ORIGIN));
        let (ws, _) = timeout(
            Duration::from_secs(5),
            tokio_tungstenite::client_async(req, tls(ca).await),
        )
        .await
        .expect("upgrade in time")
        .expect("upgrade through nginx");
        Caller(ws)
    }

    async fn send(&mut self, v: Value) {
        self.0
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    async fn send_text(&mut self, t: String) {
        self.0.send(Message::Text(t.into())).await.unwrap();
    }

    /// The next text message (JSON), or `{"close": code}` for a close frame.
    async fn recv(&mut self) -> Value {
        loop {
            match timeout(Duration::from_secs(5), self.0.next())
                .await
                .expect("a message in time")
            {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
                Some(Ok(Message::Close(c))) => {
                    return json!({"close": c.map(|c| u16::from(c.code))});
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended: {other:?}"),
            }
        }
    }

    async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }
}

/// Raw bytes over TLS to nginx; the answer, read until nginx closes or falls silent for 1 s.
async fn raw(ca: &Path, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tls(ca).await;
    s.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n)) = timeout(Duration::from_secs(1), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// Realistic SDP (what Chromium sends) with a recognisable fingerprint, ICE password and
/// host candidate addresses.
fn sdp(fingerprint: &str, ufrag: &str, pwd: &str, ip4: &str, ip6: &str) -> String {
    format!(
        "v=0\r\no=- 7731940266151728043 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS 4f2a\r\n\
         m=audio 54400 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 {ip4}\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=candidate:1467250027 1 udp 2122260223 {ip4} 54400 typ host generation 0 network-id 1\r\n\
         a=candidate:2999745851 1 udp 2122262783 {ip6} 54401 typ host generation 0 network-id 2\r\n\
         a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=ice-options:trickle\r\n\
         a=fingerprint:sha-256 {fingerprint}\r\na=setup:actpass\r\na=mid:0\r\n\
         a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n"
    )
}

/// Allocates on coturn with issued credentials and permits `peer`; returns the relayed address.
async fn allocate(
    creds: &Value,
    peer: Option<std::net::IpAddr>,
) -> (alisay::probe::turn::Session, std::net::SocketAddr) {
    use alisay::probe::turn::{Outcome, Session, TurnUrl};
    let url = TurnUrl::parse(creds["urls"][0].as_str().unwrap()).unwrap();
    let mut session = Session::open(
        &url,
        None,
        creds["username"].as_str().unwrap(),
        creds["credential"].as_str().unwrap(),
        Duration::from_secs(3),
    )
    .await
    .expect("open a TURN session");
    let relayed = match session.allocate(false).await.expect("an answer") {
        Outcome::Success(a) => a,
        Outcome::Refused(code, why) => panic!("issued credentials refused: {code} {why}"),
    };
    if let Some(p) = peer {
        let got = session.create_permission(p).await.expect("an answer");
        assert!(
            matches!(got, Outcome::Success(())),
            "CreatePermission: {got:?}"
        );
    }
    (session, relayed)
}

/// Every file under `dirs` whose content holds `needle`.
fn holders(files: &[PathBuf], needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| {
            fs::read(f)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        })
        .cloned()
        .collect()
}

async fn call_in_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // nginx workers run as `nobody` when the master is root: let them into the temp dir.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    for sub in ["logs", "run"] {
        fs::create_dir_all(dir.join(sub)).unwrap();
    }
    fs::set_permissions(dir.join("run"), fs::Permissions::from_mode(0o700)).unwrap();
    let (ca, cert, key) = support::test_ca_and_leaf(dir, &["call.example.org"]);
    let secret = format!("privacy-secret-{:016x}", rand::random::<u64>());
    let secret_path = dir.join("turn-secret");
    fs::write(&secret_path, format!("{secret}\n")).unwrap();
    fs::set_permissions(&secret_path, fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("alisay.yaml");
    fs::write(&config, config_yaml(dir, &secret_path, &cert, &key)).unwrap();
    let alisay = Path::new(env!("CARGO_BIN_EXE_alisay"));
    let c = config.to_str().unwrap();
    run_ok(
        alisay,
        &[
            "render",
            "--config",
            c,
            "--out",
            dir.join("out").to_str().unwrap(),
        ],
    );
    let runtime = dir.join("run/turnserver.conf");
    let o = Command::new(alisay)
        .args([
            "coturn-config",
            "--config",
            c,
            "--out",
            runtime.to_str().unwrap(),
        ])
        .env("ALISAY_PATHS__COTURN_RUNTIME_DIR", dir.join("run"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::write(
        dir.join("nginx.conf"),
        support::nginx_main_conf(dir, &dir.join("out/nginx/alisay.conf")),
    )
    .unwrap();

    let mut serve = Proc::spawn(
        "alisay serve",
        Command::new(alisay)
            .args(["serve", "--config", c])
            .env_remove("RUST_LOG"),
        &dir.join("logs/serve.log"),
    );
    let mut coturn = Proc::spawn(
        "coturn",
        Command::new(require("turnserver"))
            .arg("-c")
            .arg(&runtime)
            .current_dir(dir.join("run")),
        &dir.join("logs/coturn.log"),
    );
    let mut nginx = Proc::spawn(
        "nginx",
        Command::new(require("nginx"))
            .args(["-p", dir.to_str().unwrap(), "-c"])
            .arg(dir.join("nginx.conf")),
        &dir.join("logs/nginx.log"),
    );
    wait_tcp("127.0.0.1:8787", &serve);
    wait_tcp("127.0.0.1:443", &nginx);
    wait_tcp(&format!("{TURN_IP}:3478"), &coturn);

    // The secrets and private data of this call.
    let (token, room) = {
        use base64::Engine;
        use sha2::Digest;
        let token =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let room = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        (token, room)
    };
    let fp_a = "9F:1C:3A:77:0D:5E:B2:41:C8:6A:13:F0:E4:92:5B:7D:20:AE:61:C3:38:D9:4F:B6:07:E2:95:1A:CC:53:8E:74";
    let fp_b = "B4:60:2D:E9:17:8C:F5:3B:A2:49:D0:6E:1F:87:C4:35:9A:0B:E8:72:5D:16:A3:CF:40:BB:29:F6:83:0E:D7:5C";
    let (ip_a4, ip_a6, ip_b4) = ("192.0.2.155", "2001:db8:4c7a::155", "198.51.100.177");
    let sdp_a = sdp(fp_a, "k9Qw", "qS1vX9pL2mN7rT4yZ8bC5dF3", ip_a4, ip_a6);
    let sdp_b = sdp(
        fp_b,
        "Zr7e",
        "hJ6kP0wE3uI9oA2sD5fG8jL1",
        ip_b4,
        "2001:db8:77e1::177",
    );
    let cand_a = format!(
        "candidate:3107625438 1 udp 1686052607 {ip_a4} 61234 typ srflx raddr 10.41.7.9 rport 61234 generation 0 ufrag k9Qw"
    );
    let auth = "cGxhbnRlZC1hdXRoLXRhZy0xMjM0NTY3ODk";

    // 0. The search works: a planted string sent through nginx is found in its access log.
    let planted = format!("planted-{:016x}", rand::random::<u64>());
    let r = raw(
        &ca,
        &format!("GET /{planted} HTTP/1.1\r\nHost: call.example.org\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status_of(&r), 404);

    // 1. A whole call: register, join, ready, start, offer/answer, candidates, TURN.
    let body = json!({"roomId": room}).to_string();
    let r = raw(
        &ca,
        &format!(
            "POST /rooms HTTP/1.1\r\nHost: call.example.org\r\nOrigin: {ORIGIN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert_eq!(status_of(&r), 201, "{r}");
    let mut a = Caller::connect(&ca).await;
    a.send(json!({"type": "join", "roomId": room})).await;
    let ja = a.expect("joined").await;
    let mut b = Caller::connect(&ca).await;
    b.send(json!({"type": "join", "roomId": room})).await;
    let jb = b.expect("joined").await;
    a.expect("peer-joined").await;
    a.send(json!({"type": "ready"})).await;
    b.send(json!({"type": "ready"})).await;
    a.expect("start").await;
    b.expect("start").await;
    a.send(json!({"type": "offer", "sdp": sdp_a, "auth": auth}))
        .await;
    assert_eq!(b.expect("offer").await["sdp"], sdp_a.as_str());
    b.send(json!({"type": "answer", "sdp": sdp_b})).await;
    assert_eq!(a.expect("answer").await["sdp"], sdp_b.as_str());
    a.send(json!({"type": "ice", "candidate": {"candidate": cand_a, "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "k9Qw"}})).await;
    b.expect("ice").await;
    b.send(json!({"type": "ice", "candidate": null})).await;
    a.expect("ice").await;
    b.send(json!({"type": "refresh-ice"})).await;
    let refreshed = b.expect("ice-servers").await;
    // TURN with the issued credentials: two relay allocations that permit each other.
    let (turn_a, turn_b) = (&ja["iceServers"][0], &refreshed["iceServers"][0]);
    let (mut sa, relay_a) = allocate(turn_a, None).await;
    let (mut sb, relay_b) = allocate(turn_b, Some(relay_a.ip())).await;
    let got = sa.create_permission(relay_b.ip()).await.expect("an answer");
    assert!(
        matches!(got, alisay::probe::turn::Outcome::Success(())),
        "{got:?}"
    );

    // 2. Hostile input that carries the same secrets.
    let mut hostile = Vec::new();
    for request in [
        format!(
            "GET /ws?roomId={room} HTTP/1.1\r\nHost: call.example.org\r\nOrigin: {ORIGIN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
        format!(
            "GET /?token={token} HTTP/1.1\r\nHost: call.example.org\r\nConnection: close\r\n\r\n"
        ),
        format!("GET /#{token} HTTP/1.1\r\nHost: call.example.org\r\nConnection: close\r\n\r\n"),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: call.example.org\r\nReferer: https://call.example.org/#{token}\r\nUser-Agent: {room}\r\nCookie: room={room}\r\nConnection: close\r\n\r\n"
        ),
        format!(
            "POST /rooms HTTP/1.1\r\nHost: call.example.org\r\nOrigin: {ORIGIN}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        format!(
            "POST /rooms HTTP/1.1\r\nHost: call.example.org\r\nOrigin: https://evil.example\r\nContent-Type: application/json\r\nX-Forwarded-For: {ip_b4}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        format!(
            "POST /rooms HTTP/1.1\r\nHost: call.example.org\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{body}",
            body.len() + 5
        ),
        format!(
            "GET /ws HTTP/1.1\r\nHost: call.example.org\r\nOrigin: https://{room}.evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
    ] {
        hostile.push(status_of(&raw(&ca, &request).await));
    }
    assert_eq!(
        hostile,
        [400, 200, 200, 200, 415, 403, 400, 403],
        "hostile HTTP statuses"
    );
    // Over the socket: a third caller with the room id (room-full), the room id and token in
    // broken messages, an unknown room, an SDP over the limit (message-too-big).
    let sid_a = ja["sessionId"].as_str().unwrap().to_owned();
    let mut c = Caller::connect(&ca).await;
    c.send(json!({"type": "join", "roomId": room})).await;
    assert_eq!(c.recv().await["code"], "room-full");
    for (text, code) in [
        (
            format!(r#"{{"type":"join","roomId":"{room}","x":"{token}"}}"#),
            "invalid-message",
        ),
        (
            format!(r#"{{"type":"join","roomId":"{}""#, room.to_uppercase()),
            "invalid-message",
        ),
        (
            format!(r#"{{"type":"offer","sdp":"{sdp_a}"}}"#),
            "invalid-message",
        ),
    ] {
        let mut c = Caller::connect(&ca).await;
        c.send_text(text).await;
        assert_eq!(c.recv().await["code"], code);
    }
    // The pair is untouched and still relays.
    a.send(json!({"type": "offer", "sdp": sdp_a})).await;
    b.expect("offer").await;
    let mut big = Caller::connect(&ca).await;
    big.send(json!({"type": "join", "roomId": super_room()}))
        .await;
    assert_eq!(big.recv().await["code"], "room-not-allowed");
    a.send(json!({"type": "offer", "sdp": format!("{sdp_a}{}", "a=x:pad\r\n".repeat(4000))}))
        .await;
    assert_eq!(a.recv().await["code"], "message-too-big");
    assert_eq!(b.expect("peer-left").await["type"], "peer-left");
    b.send(json!({"type": "hangup"})).await;
    sa.release().await;
    sb.release().await;

    // 3. Stop everything (logs flushed), then search every log and every rendered file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in [&mut nginx, &mut coturn, &mut serve] {
        p.stop();
    }
    let logs = support::files_under(&dir.join("logs"));
    let rendered = support::files_under(&dir.join("out"));
    assert!(!rendered.is_empty());
    let all: Vec<PathBuf> = logs.iter().chain(&rendered).cloned().collect();
    let size = |name: &str| {
        fs::metadata(dir.join("logs").join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    for name in ["serve.log", "coturn.log", "alisay.access.log"] {
        assert!(
            size(name) > 0,
            "{name} is empty: the search would prove nothing"
        );
    }
    let serve_log = fs::read_to_string(dir.join("logs/serve.log")).unwrap();
    assert!(serve_log.contains("DEBUG"), "alisay logged at debug");
    // The negative control: the same search finds the planted string.
    assert_eq!(
        holders(&all, &planted),
        [dir.join("logs/alisay.access.log")],
        "the search did not find the planted string where nginx logged it"
    );
    let turn_user = turn_a["username"].as_str().unwrap().to_owned();
    let label = turn_user.split(':').nth(1).unwrap().to_owned();
    let needles: Vec<(&str, String)> = vec![
        ("room id", room.clone()),
        ("room id prefix", room[..16].to_owned()),
        ("room id, upper case", room.to_uppercase()),
        ("room token", token.clone()),
        ("session id (a)", sid_a.clone()),
        (
            "session id (b)",
            jb["sessionId"].as_str().unwrap().to_owned(),
        ),
        ("TURN secret", secret.clone()),
        (
            "issued TURN password (a)",
            turn_a["credential"].as_str().unwrap().to_owned(),
        ),
        (
            "issued TURN password (b)",
            turn_b["credential"].as_str().unwrap().to_owned(),
        ),
        ("SDP session id", "7731940266151728043".into()),
        ("SDP fingerprint (a)", fp_a[..17].to_owned()),
        ("SDP fingerprint (b)", fp_b[..17].to_owned()),
        ("SDP ice-pwd", "qS1vX9pL2mN7rT4yZ8bC5dF3".into()),
        ("SDP line", "a=ice-options:trickle".into()),
        ("candidate foundation", "candidate:3107625438".into()),
        ("candidate IPv4 (a)", ip_a4.into()),
        ("candidate IPv6 (a)", ip_a6.into()),
        ("candidate IPv4 (b)", ip_b4.into()),
        ("candidate related address", "10.41.7.9".into()),
        ("auth tag", auth.into()),
        ("TURN username (a)", turn_user.clone()),
        ("TURN username label (a)", label.clone()),
        (
            "TURN username (b)",
            turn_b["username"].as_str().unwrap().to_owned(),
        ),
    ];
    let mut leaks = Vec::new();
    for (what, needle) in &needles {
        for f in holders(&all, needle) {
            leaks.push(format!(
                "{what} in {}",
                f.strip_prefix(dir).unwrap().display()
            ));
        }
    }
    // The runtime coturn config holds the secret by design: private, outside the logs.
    assert_eq!(
        fs::metadata(&runtime).unwrap().permissions().mode() & 0o777,
        0o600
    );
    println!(
        "searched {} logs ({} bytes) and {} rendered files for {} needles: {} found",
        logs.len(),
        logs.iter()
            .map(|f| fs::metadata(f).unwrap().len())
            .sum::<u64>(),
        rendered.len(),
        needles.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "found:\n{}", leaks.join("\n"));
    if std::env::var_os("PRIVACY_SHOW_LOGS").is_some() {
        for f in &logs {
            println!(
                "==> {}\n{}",
                f.display(),
                fs::read_to_string(f).unwrap_or_default()
            );
        }
    }
}

/// A room id nobody registered.
fn super_room() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}
