//! `GET /ws`: the upgrade, answered by hand so each socket gets a small read buffer (warp's
//! `ws()` fixes 128 KiB per socket), and the per-socket session task.
//!
//! One task per socket: it `select!`s on shutdown, its outbox (messages the hub addressed to
//! it), the next frame, the join deadline and the ping interval. Frames are parsed and
//! validated here (`protocol::parse_client`), then handed to the hub under a short lock.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response as Reply;

use super::assets::plain;
use super::{App, Outgoing};
use crate::signaling::hub::{Event, PeerId};
use crate::signaling::protocol::{ByeReason, ClientMsg, ErrorCode, ServerMsg, close, parse_client};
use crate::signaling::rate::TokenBucket;

/// Bytes read from the socket at a time. Small: an idle socket should cost little memory.
const READ_BUFFER: usize = 4 * 1024;
/// How long one write may block before the socket is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket waits for the client's side of the close handshake.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// Sockets beyond `server.max_connections` that are still upgraded, only to be told
/// `server-busy` (4013) and closed at once; past these, upgrades get a plain 503.
const BUSY_SOCKETS: usize = 64;

/// Checks and answers the upgrade: 400 with any query string (room ids never go in URLs),
/// 403 for a foreign or missing `Origin`, 400 for a malformed upgrade; otherwise 101 and a
/// session task. When `server.max_connections` sockets are open, the socket is told
/// `error server-busy` and closed with 4013 (what a browser can see; it cannot read a 503),
/// and past a few dozen such sockets more, upgrades get 503.
pub fn upgrade(
    app: Arc<App>,
    ip: IpAddr,
    query: Option<String>,
    headers: HeaderMap,
    on_upgrade: Option<OnUpgrade>,
) -> Reply {
    if query.is_some() {
        return plain(StatusCode::BAD_REQUEST, "no query string allowed on /ws\n");
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !app.origin_allowed(origin) {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = headers.get(header::SEC_WEBSOCKET_KEY);
    let (Some(key), true, true, true, Some(on_upgrade)) = (
        key,
        has(header::CONNECTION, "upgrade"),
        has(header::UPGRADE, "websocket"),
        has(header::SEC_WEBSOCKET_VERSION, "13"),
        on_upgrade,
    ) else {
        return plain(StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n");
    };
    let max = app.config.server.max_connections;
    let open = app.connections.fetch_add(1, Ordering::AcqRel);
    if open >= max.saturating_add(BUSY_SOCKETS) {
        app.connections.fetch_sub(1, Ordering::AcqRel);
        return plain(StatusCode::SERVICE_UNAVAILABLE, "server at capacity\n");
    }
    let busy = open >= max;
    let accept = derive_accept_key(key.as_bytes());
    let peer = app.next_peer_id();
    let task_app = app.clone();
    app.tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) if busy => refuse_busy(&task_app, upgraded).await,
            Ok(upgraded) => session(&task_app, peer, ip, upgraded).await,
            Err(e) => debug!(cause = %e, "upgrade failed"),
        }
        task_app.connections.fetch_sub(1, Ordering::AcqRel);
    });
    let mut resp = Reply::new(Vec::<u8>::new().into());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        header::UPGRADE,
        header::HeaderValue::from_static("websocket"),
    );
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a session ended (for the log and the close code).
enum End {
    /// Closed by the client or the network.
    Gone,
    /// We close with this code (after any message already sent).
    Close(u16),
}

/// The server side of an upgraded connection, with our buffer sizes and message limits.
async fn server_socket(app: &App, upgraded: hyper::upgrade::Upgraded) -> Socket {
    let max_message =
        usize::try_from(app.config.signaling.max_message_bytes.as_u64()).unwrap_or(usize::MAX);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(max_message.saturating_mul(4).max(256 * 1024))
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config)).await
}

/// A socket over `server.max_connections`: `error server-busy`, close 4013.
async fn refuse_busy(app: &App, upgraded: hyper::upgrade::Upgraded) {
    let mut ws = server_socket(app, upgraded).await;
    debug!("refusing a socket: server.max_connections reached");
    if error(&mut ws, ErrorCode::ServerBusy, "the server is at capacity")
        .await
        .is_ok()
    {
        close_socket(&mut ws, close::SERVER_BUSY).await;
    }
}

#[tracing::instrument(skip_all, fields(peer = peer))]
async fn session(app: &Arc<App>, peer: PeerId, ip: IpAddr, upgraded: hyper::upgrade::Upgraded) {
    let sig = &app.config.signaling;
    let max_sdp = usize::try_from(sig.max_sdp_bytes.as_u64()).unwrap_or(usize::MAX);
    let mut ws = server_socket(app, upgraded).await;

    let (tx, mut rx) = mpsc::channel(sig.outbox_messages.max(1));
    let overflow = CancellationToken::new();
    app.switchboard().register(peer, tx, overflow.clone());

    let heartbeat = sig.heartbeat_interval;
    let join_deadline = sleep(sig.join_timeout);
    tokio::pin!(join_deadline);
    // `signaling.heartbeat_interval` has no upper bound, and `Instant + Duration` panics on
    // overflow (as in `signaling::hub`, found by fuzzing): past the clock's range, 30 years.
    let first_ping = Instant::now()
        .checked_add(heartbeat)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(30 * 365 * 86_400));
    let mut ping = tokio::time::interval_at(first_ping, heartbeat);
    let mut last_seen = Instant::now();
    let mut bucket = TokenBucket::new(sig.message_rate, Instant::now());
    let mut joined = false;

    let end = loop {
        tokio::select! {
            biased;
            () = app.shutdown.cancelled() => {
                let _ = send(&mut ws, &ServerMsg::Bye { reason: ByeReason::Restart }).await;
                break End::Close(close::RESTART);
            }
            out = rx.recv() => match out {
                Some(Outgoing::Text(text)) => {
                    tokio::select! {
                        sent = timeout(WRITE_TIMEOUT, ws.send(Message::Text(text))) => {
                            if !matches!(sent, Ok(Ok(()))) {
                                break End::Gone;
                            }
                        }
                        // The client does not read and our outbox overflowed meanwhile.
                        () = overflow.cancelled() => break End::Close(close::SLOW_CONSUMER),
                    }
                }
                Some(Outgoing::Close(code)) => break End::Close(code),
                // The switchboard dropped our sender: we could not keep up.
                None => break End::Close(close::SLOW_CONSUMER),
            },
            frame = ws.next() => {
                let now = Instant::now();
                let text = match frame {
                    None => break End::Gone,
                    Some(Err(WsError::Capacity(_))) => {
                        let _ = error(&mut ws, ErrorCode::MessageTooBig, "message over the size limit").await;
                        break End::Close(close::MESSAGE_TOO_BIG);
                    }
                    Some(Err(WsError::Utf8(_))) => {
                        let _ = error(&mut ws, ErrorCode::InvalidMessage, "text frame is not UTF-8").await;
                        break End::Close(close::INVALID_MESSAGE);
                    }
                    // Framing a browser never sends (RFC 6455 §5: unmasked, reserved bits or
                    // opcodes, bad fragmentation): refused like any other invalid message.
                    Some(Err(WsError::Protocol(e))) if !matches!(e, ProtocolError::ResetWithoutClosingHandshake) => {
                        debug!(cause = %e, "websocket protocol violation");
                        let _ = error(&mut ws, ErrorCode::InvalidMessage, "websocket protocol violation").await;
                        break End::Close(close::INVALID_MESSAGE);
                    }
                    Some(Err(e)) => {
                        debug!(cause = %e, "socket error");
                        break End::Gone;
                    }
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let _ = error(&mut ws, ErrorCode::InvalidMessage, "binary frames are not accepted").await;
                        break End::Close(close::INVALID_MESSAGE);
                    }
                    Some(Ok(Message::Close(_))) => {
                        // tungstenite has queued the echo of the client's close frame
                        // (RFC 6455 §5.5.1); it goes out on the next flush.
                        let _ = timeout(CLOSE_LINGER, ws.flush()).await;
                        break End::Gone;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {
                        last_seen = now;
                        // Control frames draw from the same bucket: a ping flood is a flood.
                        if !bucket.try_take(now) {
                            let _ = error(&mut ws, ErrorCode::RateLimited, "too many messages").await;
                            break End::Close(close::RATE_LIMITED);
                        }
                        continue;
                    }
                };
                last_seen = now;
                if !bucket.try_take(now) {
                    let _ = error(&mut ws, ErrorCode::RateLimited, "too many messages").await;
                    break End::Close(close::RATE_LIMITED);
                }
                let msg = match parse_client(&text, max_sdp) {
                    Ok(msg) => msg,
                    Err(rejected) => {
                        let _ = error(&mut ws, rejected.code, &rejected.message).await;
                        break End::Close(rejected.code.close_code().unwrap_or(close::INVALID_MESSAGE));
                    }
                };
                if !joined && !matches!(msg, ClientMsg::Join { .. }) {
                    let _ = error(&mut ws, ErrorCode::InvalidMessage, "the first message must be join").await;
                    break End::Close(close::INVALID_MESSAGE);
                }
                let is_join = matches!(msg, ClientMsg::Join { .. });
                {
                    let mut sb = app.switchboard();
                    let outputs = sb.hub.handle(peer, Event::Message(msg, ip), now);
                    if is_join && !joined {
                        joined = outputs.iter().any(|(p, a)| {
                            *p == peer && matches!(a, crate::signaling::hub::Action::Send(ServerMsg::Joined { .. }))
                        });
                        if joined {
                            info!(ip_family = if ip.is_ipv4() { "v4" } else { "v6" }, "joined a room");
                        }
                    }
                    sb.dispatch(outputs);
                }
            }
            () = &mut join_deadline, if !joined => {
                let _ = error(&mut ws, ErrorCode::JoinTimeout, "no join in time").await;
                break End::Close(close::JOIN_TIMEOUT);
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > heartbeat.saturating_mul(3) {
                    break End::Close(close::LIVENESS);
                }
                if !matches!(timeout(WRITE_TIMEOUT, ws.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                    break End::Gone;
                }
            }
        }
    };

    {
        let mut sb = app.switchboard();
        sb.unregister(peer);
        let outputs = sb.hub.handle(peer, Event::Disconnected, Instant::now());
        sb.dispatch(outputs);
    }
    match end {
        End::Gone => debug!("socket closed by peer"),
        End::Close(code) => {
            debug!(code, "closing socket");
            close_socket(&mut ws, code).await;
        }
    }
}

/// Sends a close frame with `code` and lingers (bounded) for the client's close.
async fn close_socket(ws: &mut Socket, code: u16) {
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: close_reason(code).into(),
    };
    // A client that does not read will not take a close frame either: don't wait long.
    let write_timeout = if code == close::SLOW_CONSUMER {
        CLOSE_LINGER
    } else {
        WRITE_TIMEOUT
    };
    if timeout(write_timeout, ws.close(Some(frame))).await.is_ok() {
        // Let the client answer the close so its `onclose` sees our code; bounded.
        let _ = timeout(CLOSE_LINGER, async {
            while let Some(Ok(_)) = ws.next().await {}
            // A refused frame ends the stream with its bytes unread, and closing a TCP
            // socket with unread input sends a reset, upon which the client's kernel may
            // discard our error and close frames before they are read. So: FIN, then
            // discard input until the client closes too.
            let io = ws.get_mut();
            let _ = io.shutdown().await;
            let mut scratch = [0u8; 4096];
            while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

async fn send(ws: &mut Socket, msg: &ServerMsg) -> Result<(), WsError> {
    let text = serde_json::to_string(msg).unwrap_or_default();
    match timeout(WRITE_TIMEOUT, ws.send(Message::Text(text.into()))).await {
        Ok(r) => r,
        Err(_) => Err(WsError::ConnectionClosed),
    }
}

async fn error(ws: &mut Socket, code: ErrorCode, message: &str) -> Result<(), WsError> {
    send(
        ws,
        &ServerMsg::Error {
            code,
            message: message.to_owned(),
        },
    )
    .await
}

/// The close frame's reason text (no secrets, just the code's name).
fn close_reason(code: u16) -> &'static str {
    match code {
        close::NORMAL => "bye",
        close::RESTART => "restart",
        close::INVALID_MESSAGE => "invalid-message",
        close::JOIN_TIMEOUT => "join-timeout",
        close::LIVENESS => "liveness",
        close::ROOM_NOT_ALLOWED => "room-not-allowed",
        close::ROOM_FULL => "room-full",
        close::RATE_LIMITED => "rate-limited",
        close::MESSAGE_TOO_BIG => "message-too-big",
        close::REPLACED => "replaced",
        close::IDLE => "idle",
        close::SLOW_CONSUMER => "slow-consumer",
        close::SERVER_BUSY => "server-busy",
        _ => "",
    }
}
