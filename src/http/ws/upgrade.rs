//! `GET /ws`: the upgrade, checked and answered by hand (`101` with the accept key on hyper's
//! `OnUpgrade`), and the spawn of the socket's task on the tracked task set.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response as Reply;

use super::closing::{close_socket, error_frame};
use super::session::Session;
use super::{WRITE_TIMEOUT, write};
use crate::http::App;
use crate::http::assets::plain;
use crate::http::frame::Decoder;
use crate::signaling::close::CloseCode;
use crate::signaling::protocol::ErrorCode;

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
    // The task's future is as small as it can be (it is most of an idle socket's memory): the
    // session's state, a reference to it in `run`, and boxes for everything else.
    let task_app = app.clone();
    let fut = async move {
        match on_upgrade.await {
            Ok(upgraded) if busy => Box::pin(refuse_busy(&task_app, upgraded)).await,
            Ok(upgraded) => {
                let mut s = Session::start(task_app, peer, ip, upgraded);
                let end = s.run().await;
                Box::pin(s.finish(end)).await;
            }
            Err(e) => {
                debug!(cause = %e, "upgrade failed");
                task_app.connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    };
    app.tasks.spawn(fut);
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

/// A socket over `server.max_connections`: `error server-busy`, close 4013.
async fn refuse_busy(app: &App, upgraded: hyper::upgrade::Upgraded) {
    let mut io = TokioIo::new(upgraded);
    debug!("refusing a socket: server.max_connections reached");
    let busy = error_frame(ErrorCode::ServerBusy, "the server is at capacity");
    if write(&mut io, busy.bytes(), WRITE_TIMEOUT).await {
        close_socket(&mut io, &mut Decoder::default(), CloseCode::ServerBusy).await;
    }
    app.connections.fetch_sub(1, Ordering::AcqRel);
}
