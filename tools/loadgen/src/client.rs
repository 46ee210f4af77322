//! One virtual client's WebSocket: loopback-only connect, small buffers, bounded waits, and a
//! tally of everything that went wrong.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::proto::{Incoming, Protocol};

pub type Ws = WebSocketStream<TcpStream>;

/// How long one connect, upgrade or expected answer may take before it counts as an error.
pub const STEP: Duration = Duration::from_secs(10);

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `ws://127.0.0.1:PORT` (no path).
    pub base: String,
    pub addr: SocketAddr,
    /// The `Origin` header (alisay refuses upgrades from other origins).
    pub origin: String,
    pub protocol: Protocol,
}

impl Target {
    /// Parses `ws://HOST:PORT` and refuses anything but a loopback address.
    ///
    /// # Errors
    /// A URL that is not `ws://<loopback ip>:<port>`.
    pub fn new(base: &str, origin: Option<String>, protocol: Protocol) -> anyhow::Result<Target> {
        let base = base.trim_end_matches('/');
        let hostport = base
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow::anyhow!("the url must start with ws://"))?;
        let addr: SocketAddr = hostport
            .parse()
            .map_err(|_| anyhow::anyhow!("the url must be ws://<ip>:<port>, not {base}"))?;
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "the load generator only talks to loopback addresses"
        );
        let origin = origin.unwrap_or_else(|| format!("http://{hostport}"));
        Ok(Target {
            base: base.to_owned(),
            addr,
            origin,
            protocol,
        })
    }
}

/// Opens a WebSocket for `url` (under `target.base`) with `TCP_NODELAY` and small buffers.
///
/// # Errors
/// A short description (connect, upgrade or timeout) for the error tally.
pub async fn connect(target: &Target, url: &str) -> Result<Ws, String> {
    let stream = timeout(STEP, TcpStream::connect(target.addr))
        .await
        .map_err(|_| "connect timeout".to_owned())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("request: {e}"))?;
    if let Ok(v) = HeaderValue::from_str(&target.origin) {
        request.headers_mut().insert("origin", v);
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20));
    let (ws, _) = timeout(
        STEP,
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)),
    )
    .await
    .map_err(|_| "upgrade timeout".to_owned())?
    .map_err(|e| format!("upgrade: {}", short(&e.to_string())))?;
    Ok(ws)
}

/// Sends one text message.
///
/// # Errors
/// The socket failed or the write took longer than [`STEP`].
pub async fn send(ws: &mut Ws, text: impl Into<Utf8Bytes>) -> Result<(), String> {
    match timeout(STEP, ws.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("send: {}", short(&e.to_string()))),
        Err(_) => Err("send timeout".into()),
    }
}

/// The next text message, classified. Pings are answered by tungstenite as it reads.
///
/// # Errors
/// Close, end of stream, a socket error, a binary frame, or the deadline.
pub async fn next(ws: &mut Ws, protocol: Protocol, deadline: Instant) -> Result<Incoming, String> {
    loop {
        match timeout_at(deadline, ws.next()).await {
            Err(_) => return Err("timeout waiting for the server".into()),
            Ok(None) => return Err("closed by the server".into()),
            Ok(Some(Err(e))) => return Err(format!("socket: {}", short(&e.to_string()))),
            Ok(Some(Ok(Message::Text(t)))) => return Ok(protocol.classify(&t)),
            Ok(Some(Ok(Message::Close(c)))) => {
                return Err(format!("closed {}", c.map_or(0, |c| u16::from(c.code))));
            }
            Ok(Some(Ok(Message::Binary(_)))) => return Err("binary frame".into()),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// Waits for `want`, treating other chatter (`peer-joined`, acks) as harmless.
///
/// # Errors
/// As [`next`], or an unexpected message.
pub async fn expect(
    ws: &mut Ws,
    protocol: Protocol,
    want: &Incoming,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        match next(ws, protocol, deadline).await? {
            got if &got == want => return Ok(()),
            Incoming::Other | Incoming::Ack => {}
            Incoming::Unexpected(what) => return Err(format!("unexpected {what}")),
            got => return Err(format!("unexpected {got:?}")),
        }
    }
}

/// Leaves politely: `hangup` where the protocol has it (the server then closes), else a close
/// frame; then waits (bounded) for the end of the stream.
pub async fn leave(ws: &mut Ws, protocol: Protocol) -> Result<(), String> {
    match protocol.hangup() {
        Some(h) => send(ws, h).await?,
        None => {
            let _ = timeout(STEP, ws.close(None)).await;
        }
    }
    drain(ws).await
}

/// Reads until the server's close (answered by tungstenite) and the end of the stream.
///
/// # Errors
/// The stream did not end within [`STEP`].
pub async fn drain(ws: &mut Ws) -> Result<(), String> {
    timeout(STEP, async { while let Some(Ok(_)) = ws.next().await {} })
        .await
        .map_err(|_| "close timeout".to_owned())
}

/// Closes without waiting for anything in particular (end of a hold).
pub async fn close(mut ws: Ws) {
    let _ = timeout(STEP, ws.close(None)).await;
    let _ = drain(&mut ws).await;
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Counts errors by kind, for the summary (a run with errors is reported, never hidden).
#[derive(Debug, Default)]
pub struct Errors(Mutex<BTreeMap<String, u64>>);

impl Errors {
    pub fn add(&self, what: impl Into<String>) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry(what.into()).or_default() += 1;
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}
