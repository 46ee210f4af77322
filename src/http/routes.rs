//! One small function per route; [`routes`] joins them, maps every rejection to a plain status
//! and adds the security headers to every response.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use warp::Filter;
use warp::http::{HeaderMap, StatusCode, header};
use warp::reply::Response as Reply;

use super::assets::{self, json as json_reply, plain};
use super::client_ip::client_ip;
use super::{App, PeerAddr, ws};
use crate::room::is_room_id;
use crate::signaling::hub::Registration;

/// Every route of the service, with rejections recovered and security headers added.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let state = {
        let app = app.clone();
        warp::any().map(move || app.clone())
    };
    let client = warp::ext::optional::<PeerAddr>()
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .and(state.clone())
        .map(
            |remote: Option<PeerAddr>, xff: Option<String>, app: Arc<App>| {
                let peer = remote.map_or(IpAddr::from([127, 0, 0, 1]), |a| a.0.ip());
                client_ip(peer, xff.as_deref(), &app.trusted_proxies)
            },
        );
    let query = warp::query::raw()
        .map(Some)
        .or(warp::any().map(|| None))
        .unify();

    // GET /healthz
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(state.clone())
        .map(healthz);
    // POST /rooms
    let rooms = warp::path!("rooms")
        .and(warp::post())
        .and(state.clone())
        .and(client.clone())
        .and(warp::header::headers_cloned())
        .and(warp::body::content_length_limit(1024))
        .and(warp::body::bytes())
        .map(post_rooms);
    // GET /ws
    let ws = warp::path!("ws")
        .and(warp::get())
        .and(state.clone())
        .and(client)
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .map(ws::upgrade);
    // GET /turn-credentials
    let turn = warp::path!("turn-credentials")
        .and(warp::get())
        .and(state.clone())
        .map(turn_credentials);
    // GET|HEAD /<static file>
    let statics = warp::get()
        .map(|| false)
        .or(warp::head().map(|| true))
        .unify()
        .and(warp::path::full())
        .and(warp::header::headers_cloned())
        .map(
            |head: bool, path: warp::path::FullPath, headers: HeaderMap| {
                assets::serve(path.as_str(), &headers, head)
            },
        );

    let csp = app.csp.clone();
    healthz
        .or(rooms)
        .unify()
        .or(ws)
        .unify()
        .or(turn)
        .unify()
        .or(statics)
        .unify()
        .recover(recover)
        .unify()
        .map(move |r: Reply| assets::secure(r, &csp))
}

/// `GET /healthz`: `200 {"ok":true,"version":..,"uptimeSeconds":..}`; no room data.
fn healthz(app: Arc<App>) -> Reply {
    json_reply(
        StatusCode::OK,
        &json!({
            "ok": true,
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": app.started.elapsed().as_secs(),
        }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RoomRequest {
    room_id: String,
}

/// `POST /rooms` `{"roomId": "<64 hex>"}`: 403 foreign or missing `Origin`, 415 not
/// `application/json`, 400 bad body, 201 created / 200 already registered (`expiresAt`, unix
/// seconds), 429 per-IP cap or rate, 503 capacity, 404 when generated rooms are disabled.
fn post_rooms(app: Arc<App>, ip: IpAddr, headers: HeaderMap, body: Bytes) -> Reply {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if !app.origin_allowed(origin) {
        return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
    }
    if !app.config.rooms.generated.enabled {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/json\n",
        );
    }
    let Ok(req) = serde_json::from_slice::<RoomRequest>(&body) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "body must be {\"roomId\": \"<64 hex>\"}\n",
        );
    };
    if !is_room_id(&req.room_id) {
        return plain(
            StatusCode::BAD_REQUEST,
            "roomId must be 64 lowercase hex characters\n",
        );
    }
    let result = app
        .switchboard()
        .hub
        .register_room(&req.room_id, ip, Instant::now());
    match result {
        Registration::Created { expires_at } => {
            json_reply(StatusCode::CREATED, &json!({ "expiresAt": expires_at }))
        }
        Registration::Exists { expires_at } => {
            json_reply(StatusCode::OK, &json!({ "expiresAt": expires_at }))
        }
        Registration::PerIpCap => plain(
            StatusCode::TOO_MANY_REQUESTS,
            "too many rooms from your address\n",
        ),
        Registration::RateLimited => plain(StatusCode::TOO_MANY_REQUESTS, "slow down\n"),
        Registration::Full => plain(StatusCode::SERVICE_UNAVAILABLE, "server at capacity\n"),
    }
}

/// `GET /turn-credentials`: 404 unless `turn.test_endpoint` (development only); then fresh
/// credentials for trickle-ICE testing.
fn turn_credentials(app: Arc<App>) -> Reply {
    if !app.config.turn.test_endpoint {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let label = hex::encode(rand::random::<[u8; 8]>());
    let (servers, expires) = crate::turn::ice_servers(
        &app.config.turn.urls,
        &app.config.turn.stun_urls,
        app.secret.as_ref(),
        &label,
        SystemTime::now(),
        app.config.turn.credential_ttl,
    );
    json_reply(
        StatusCode::OK,
        &json!({ "iceServers": servers, "credentialExpiresAt": expires }),
    )
}

/// Maps warp's rejections to plain statuses (no internals in the body).
async fn recover(rejection: warp::Rejection) -> Result<Reply, Infallible> {
    // A combined rejection holds one cause per route tried: a body refused by `POST /rooms`
    // also carries "method not allowed" from the GET-only routes, so the body causes go first.
    let status = if rejection.is_not_found() {
        StatusCode::NOT_FOUND
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        StatusCode::PAYLOAD_TOO_LARGE
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        StatusCode::LENGTH_REQUIRED
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut r = plain(status, "");
    *r.body_mut() = format!("{}\n", status.canonical_reason().unwrap_or("error")).into();
    Ok(r)
}
