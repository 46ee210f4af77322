//! Shared helpers for the integration tests (`tests/signaling.rs`, `tests/http.rs`): start the
//! real `alisay` binary on a free loopback port with a YAML config, capture its logs, and talk
//! plain HTTP/1.1, WebSocket (tokio-tungstenite) and hand-made WebSocket frames to it.
//!
//! Every wait here is bounded: a test that hangs is a failure with a message, never a stall.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A fresh room: a 32-byte random token (base64url, as the browser makes it) and its room id
/// `sha256(token)` in lowercase hex (SPEC §2).
pub fn new_room() -> (String, String) {
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let id = hex::encode(Sha256::digest(token.as_bytes()));
    (token, id)
}

/// Just a fresh room id.
pub fn room_id() -> String {
    new_room().1
}

/// A running `alisay serve` child process.
pub struct Server {
    child: Child,
    pub port: u16,
    /// `http://127.0.0.1:PORT`: the `public_origin`, so an allowed `Origin`.
    pub origin: String,
    /// The TURN secret written to `secret_file` (mode 0600) in the temp dir.
    pub secret: String,
    pub secret_file: PathBuf,
    /// The YAML the server was started with.
    pub yaml: String,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// Deep-merges `over` into `base` (maps merge, everything else replaces).
fn merge(base: &mut serde_yaml::Value, over: serde_yaml::Value) {
    match (base, over) {
        (serde_yaml::Value::Mapping(b), serde_yaml::Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

impl Server {
    /// Starts the server with the base test config merged with `overrides` (YAML text; the
    /// placeholder `@SECRET_FILE@` stands for the path of the private TURN secret file).
    ///
    /// Base config: development mode, `public_origin` and `listen` on 127.0.0.1 with a free
    /// port, `http://localhost:PORT` also allowed, rooms neither open nor allowlisted,
    /// logging at `debug`.
    pub async fn start(overrides: &str) -> Server {
        let mut last = String::new();
        // A free port may be taken by a parallel test between our probe and the server's bind.
        for _ in 0..5 {
            match Self::try_start(overrides).await {
                Ok(s) => return s,
                Err(why) => last = why,
            }
        }
        panic!("the server did not start: {last}");
    }

    async fn try_start(overrides: &str) -> Result<Server, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let secret = hex::encode(rand::random::<[u8; 24]>());
        let secret_file = dir.path().join("turn-secret");
        std::fs::write(&secret_file, &secret).expect("write secret");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o600))
                .expect("chmod 600");
        }
        let port = free_port();
        let origin = format!("http://127.0.0.1:{port}");
        let base = format!(
            "mode: development\n\
             public_origin: \"{origin}\"\n\
             allowed_origins: [\"http://localhost:{port}\"]\n\
             server:\n  listen: \"127.0.0.1:{port}\"\n  shutdown_grace: 3s\n\
             rooms:\n  allow_open_rooms: false\n\
             logging:\n  level: debug\n"
        );
        let mut value: serde_yaml::Value = serde_yaml::from_str(&base).expect("base yaml");
        let overrides = overrides.replace("@SECRET_FILE@", &secret_file.display().to_string());
        if !overrides.trim().is_empty() {
            merge(
                &mut value,
                serde_yaml::from_str(&overrides).expect("override yaml"),
            );
        }
        let yaml = serde_yaml::to_string(&value).expect("yaml");
        let config = dir.path().join("alisay.yaml");
        std::fs::write(&config, &yaml).expect("write config");

        let mut cmd = Command::new(env!("CARGO_BIN_EXE_alisay"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ALISAY_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawn alisay");
        let stderr = Arc::new(Mutex::new(String::new()));
        let stdout = Arc::new(Mutex::new(String::new()));
        collect(child.stderr.take().expect("stderr"), stderr.clone());
        collect(child.stdout.take().expect("stdout"), stdout.clone());
        let server = Server {
            child,
            port,
            origin,
            secret,
            secret_file,
            yaml,
            stderr,
            stdout,
            _dir: dir,
        };
        let ready = format!("serving on http://127.0.0.1:{port}/");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut server = server;
        loop {
            if server.stdout().contains(&ready) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                sleep(Duration::from_millis(50)).await; // let the readers finish
                return Err(format!("exited with {status}: {}", server.stderr()));
            }
            if Instant::now() > deadline {
                return Err(format!("no listening line in 15 s: {}", server.stderr()));
            }
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Everything the server wrote to stderr so far (its logs).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the server wrote to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("kill -TERM");
    }

    /// Waits (bounded by `within`) for the process to exit; returns its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        match timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => panic!("the server did not exit within {within:?}"),
        }
    }

    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Opens a WebSocket on `/ws` with the allowed `Origin`.
    pub async fn ws(&self) -> Client {
        self.ws_with("/ws", Some(&self.origin.clone()), None)
            .await
            .expect("websocket upgrade")
    }

    /// Opens a WebSocket from a chosen loopback source address, with extra headers.
    pub async fn ws_from(&self, from: IpAddr, headers: &[(&str, &str)]) -> Client {
        let stream = connect_from(self.addr(), Some(from)).await;
        let mut req = format!("ws://127.0.0.1:{}/ws", self.port)
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "origin",
            HeaderValue::from_str(&self.origin).expect("origin"),
        );
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        let (ws, _) = timeout(WAIT, tokio_tungstenite::client_async(req, stream))
            .await
            .expect("upgrade in time")
            .expect("upgrade");
        Client { ws }
    }

    /// Opens a WebSocket on `path` with an optional `Origin`; the upgrade may fail.
    pub async fn ws_with(
        &self,
        path: &str,
        origin: Option<&str>,
        max_message: Option<usize>,
    ) -> Result<Client, tungstenite::Error> {
        let stream = connect_from(self.addr(), None).await;
        let mut req = format!("ws://127.0.0.1:{}{path}", self.port)
            .into_client_request()
            .expect("request");
        if let Some(o) = origin {
            req.headers_mut()
                .insert("origin", HeaderValue::from_str(o).expect("origin"));
        }
        let config = max_message.map(|m| {
            tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(m))
                .max_frame_size(Some(m))
        });
        let (ws, _) = timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(req, stream, config),
        )
        .await
        .expect("upgrade in time")?;
        Ok(Client { ws })
    }

    /// A hand-made WebSocket client that never answers pings (see [`RawWs`]).
    pub async fn raw_ws(&self) -> RawWs {
        RawWs::connect(self).await
    }

    /// Sends one raw HTTP/1.1 request text (must end with the blank line, plus any body) and
    /// reads the whole response (`Connection: close` is expected in the request).
    pub async fn http_raw(&self, request: &str) -> Response {
        self.http_raw_from(None, request).await
    }

    /// Like [`Server::http_raw`] from a chosen loopback source address.
    pub async fn http_raw_from(&self, from: Option<IpAddr>, request: &str) -> Response {
        let mut stream = connect_from(self.addr(), from).await;
        timeout(WAIT, stream.write_all(request.as_bytes()))
            .await
            .expect("write in time")
            .expect("write request");
        let mut buf = Vec::new();
        timeout(WAIT, stream.read_to_end(&mut buf))
            .await
            .expect("response in time")
            .expect("read response");
        Response::parse(&buf)
    }

    /// `GET path` with extra header lines.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
            self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.http_raw(&req).await
    }

    /// `POST /rooms` with `body`, an optional `Origin` and `Content-Type`, from `from`.
    pub async fn post_rooms_full(
        &self,
        from: Option<IpAddr>,
        body: &str,
        origin: Option<&str>,
        content_type: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut req = format!(
            "POST /rooms HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if let Some(o) = origin {
            req.push_str(&format!("Origin: {o}\r\n"));
        }
        if let Some(c) = content_type {
            req.push_str(&format!("Content-Type: {c}\r\n"));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(body);
        self.http_raw_from(from, &req).await
    }

    /// A same-origin JSON `POST /rooms {"roomId": id}`.
    pub async fn post_room(&self, id: &str) -> Response {
        self.post_rooms_full(
            None,
            &json!({ "roomId": id }).to_string(),
            Some(&self.origin.clone()),
            Some("application/json"),
            &[],
        )
        .await
    }

    /// Asserts that none of `needles` occurs in the server's stderr (its logs) or stdout.
    pub fn assert_logs_free_of(&self, needles: &[(&str, &str)]) {
        let logs = format!("{}\n{}", self.stderr(), self.stdout());
        for (what, needle) in needles {
            assert!(!needle.is_empty(), "empty needle for {what}");
            // Report what leaked, never the value itself.
            assert!(!logs.contains(needle), "the server log contains the {what}");
        }
    }
}

fn collect<R: tokio::io::AsyncRead + Unpin + Send + 'static>(r: R, into: Arc<Mutex<String>>) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// A TCP connection to `to`, optionally from a chosen local address (any 127.0.0.0/8 works).
pub async fn connect_from(to: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).expect("bind source");
    }
    let s = timeout(WAIT, socket.connect(to))
        .await
        .expect("connect in time")
        .expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Header names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(buf: &[u8]) -> Response {
        let end = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(buf)));
        let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = buf[end + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            body,
        }
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = std::str::from_utf8(&data[..nl]).unwrap_or("0");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = nl + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
}

/// What a [`Client`] read.
#[derive(Debug)]
pub enum Got {
    /// A text message, parsed as JSON, and its exact text.
    Json(Value, String),
    /// A close frame's code (`None` for a close frame without a code).
    Close(Option<u16>),
    /// The connection ended without a close frame, or with a transport error.
    Ended(String),
    /// A binary message (the server never sends one).
    Binary,
}

/// A tokio-tungstenite client: answers pings on its own while reading.
pub struct Client {
    pub ws: WebSocketStream<TcpStream>,
}

impl Client {
    /// Sends a text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        timeout(WAIT, self.ws.send(Message::Text(text.into())))
            .await
            .expect("send in time")
            .expect("send");
    }

    /// Sends a JSON message.
    pub async fn send(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends without failing the test if the socket is already closed.
    pub async fn try_send_text(&mut self, text: impl Into<String>) -> bool {
        let text: String = text.into();
        matches!(
            timeout(WAIT, self.ws.send(Message::Text(text.into()))).await,
            Ok(Ok(()))
        )
    }

    /// Reads the next text message or close (pings and pongs are skipped), within `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Got> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = match timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(f) => f,
            };
            return Some(match frame {
                None => Got::Ended("stream ended".into()),
                Some(Err(e)) => Got::Ended(e.to_string()),
                Some(Ok(Message::Text(t))) => {
                    let v = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|e| panic!("server sent non-JSON text ({e}): {t}"));
                    Got::Json(v, t.to_string())
                }
                Some(Ok(Message::Binary(_))) => Got::Binary,
                Some(Ok(Message::Close(c))) => Got::Close(c.map(|c| u16::from(c.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            });
        }
    }

    /// The next event, which must come within [`WAIT`].
    pub async fn next(&mut self) -> Got {
        self.next_within(WAIT)
            .await
            .expect("a message or close within the wait")
    }

    /// The next message, which must be JSON.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Got::Json(v, _) => v,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// The next message must be of type `ty`; returns it.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.recv().await;
        assert_eq!(v["type"], ty, "expected a {ty} message, got {v}");
        v
    }

    /// The next event must be a close frame with `code`.
    pub async fn expect_close(&mut self, code: u16) {
        match self.next().await {
            Got::Close(Some(c)) => assert_eq!(c, code, "close code"),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// The next message must be `error {code}`, then a close frame with `close`.
    pub async fn expect_error(&mut self, code: &str, close: u16) {
        let v = self.recv().await;
        assert_eq!(v["type"], "error", "expected error {code}, got {v}");
        assert_eq!(v["code"], code, "error code in {v}");
        assert!(v["message"].is_string(), "error has a message: {v}");
        self.expect_close(close).await;
    }

    /// Nothing but pings may arrive within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        if let Some(got) = self.next_within(within).await {
            panic!("expected silence, got {got:?}");
        }
    }

    /// Sends `join {roomId}` and expects `joined`; returns it.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({"type": "join", "roomId": room})).await;
        self.expect("joined").await
    }

    /// Sends `heartbeat` and expects `heartbeat-ack` as the very next message: proves that
    /// nothing else was queued for this socket, and that it is still open.
    pub async fn ping_pong(&mut self) {
        self.send(json!({"type": "heartbeat"})).await;
        self.expect("heartbeat-ack").await;
    }
}

/// Two clients in one room, both `ready`, `start` received by both. Returns (first, second).
pub async fn started_pair(server: &Server, room: &str) -> (Client, Client) {
    let mut a = server.ws().await;
    let ja = a.join(room).await;
    assert_eq!(ja["peerPresent"], false);
    let mut b = server.ws().await;
    let jb = b.join(room).await;
    assert_eq!(jb["peerPresent"], true);
    a.expect("peer-joined").await;
    a.send(json!({"type": "ready"})).await;
    b.send(json!({"type": "ready"})).await;
    assert_eq!(a.expect("start").await["polite"], false);
    assert_eq!(b.expect("start").await["polite"], true);
    (a, b)
}

/// WebSocket opcodes (RFC 6455 §5.2).
pub mod op {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A hand-made WebSocket client (RFC 6455 framing, masked client frames). It never answers
/// pings and only reads when asked, so it can play a dead or slow client, and it can send
/// frames tungstenite would not (fragments, odd opcodes).
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn connect(server: &Server) -> RawWs {
        let mut stream = connect_from(server.addr(), None).await;
        let key = STANDARD.encode(rand::random::<[u8; 16]>());
        let req = format!(
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            server.port, server.origin
        );
        stream
            .write_all(req.as_bytes())
            .await
            .expect("write upgrade");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            let n = timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("upgrade answer in time")
                .expect("read");
            assert!(n > 0, "connection closed during the upgrade");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        let rest = buf[end + 4..].to_vec();
        RawWs { stream, buf: rest }
    }

    /// Sends one frame (masked, as a client must).
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let bytes = frame_bytes(fin, opcode, payload);
        timeout(WAIT, self.stream.write_all(&bytes))
            .await
            .expect("write in time")
            .expect("write frame");
    }

    /// Writes without waiting for the peer to take the bytes; returns false when the socket
    /// would block or is closed (used to flood a server).
    pub fn try_send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<usize> {
        let bytes = frame_bytes(true, opcode, payload);
        self.stream.try_write(&bytes)
    }

    /// Sends a text message in one frame.
    pub async fn send_text(&mut self, text: &str) {
        self.send_frame(true, op::TEXT, text.as_bytes()).await;
    }

    /// Reads the next frame (any opcode) within `within`: `(opcode, payload)`; `None` on timeout
    /// or end of stream.
    pub async fn read_frame(&mut self, within: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// Reads frames until a text message arrives (pings are read and NOT answered).
    pub async fn recv(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left).await {
                Some((op::TEXT, p)) => return serde_json::from_slice(&p).expect("json"),
                Some((op::PING | op::PONG, _)) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    }

    /// Reads frames (ignoring pings, which are not answered) until a close frame; returns its
    /// code, or `None` if the TCP connection ended without one. Text messages before it are
    /// returned too, in order. Fails the test if neither happens within `within`.
    pub async fn until_close(&mut self, within: Duration) -> (Vec<Value>, Option<u16>) {
        let deadline = Instant::now() + within;
        let mut texts = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left).await {
                Some((op::TEXT, p)) => texts.push(serde_json::from_slice(&p).expect("json")),
                Some((op::CLOSE, p)) => {
                    let code = (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                    return (texts, code);
                }
                Some(_) => continue,
                None if Instant::now() >= deadline => panic!("no close within {within:?}"),
                None => return (texts, None),
            }
        }
    }
}

fn frame_bytes(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Parses one unmasked server frame from `buf`: `((opcode, payload), bytes used)`.
fn parse_server_frame(buf: &[u8]) -> Option<((u8, Vec<u8>), usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    assert!(!masked, "server frames are never masked");
    let (len, mut at) = match buf[1] & 0x7F {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if buf.len() < at + len {
        return None;
    }
    let payload = buf[at..at + len].to_vec();
    at += len;
    Some(((opcode, payload), at))
}

/// Unix time now, in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}
