//! The embedded browser client (`public/`, via rust-embed) and the security headers every
//! response carries (SPEC §4): CSP, `Referrer-Policy`, `X-Content-Type-Options`,
//! `Permissions-Policy`, `Cross-Origin-Opener-Policy`.

use rust_embed::RustEmbed;
use warp::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use warp::reply::Response as Reply;

use crate::config::Config;

/// The files of `public/`, compiled into the binary.
#[derive(RustEmbed)]
#[folder = "public/"]
// public/README.md documents the client for developers; it is not part of the site.
#[exclude = "*.md"]
struct Public;

/// `Content-Security-Policy` for this deployment: everything from our own origin only, plus
/// the WebSocket form of the public origin for `connect-src`.
pub fn content_security_policy(config: &Config) -> String {
    let ws_origin = config
        .public_origin
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         media-src 'self' blob: mediastream:; connect-src 'self' {ws_origin}; \
         object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// `Permissions-Policy`: camera and microphone for this origin only, and nothing else a call
/// page never needs. Only features every Chromium since 100 knows: Chromium logs "Error with
/// Permissions-Policy header: Unrecognized feature" on every page for any other name
/// (`speaker-selection`, `interest-cohort` did that). Firefox and Safari do not read the header.
/// The speaker picker (`setSinkId`) needs no feature: its default allowlist is `self`.
pub const PERMISSIONS_POLICY: &str =
    "camera=(self), microphone=(self), display-capture=(), geolocation=(), payment=(), usb=()";

/// Adds the security headers to a response.
pub fn secure(mut resp: Reply, csp: &str) -> Reply {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// Serves `path` from the embedded client: `/` is `index.html`; strong ETags from the file's
/// SHA-256, `304` on `If-None-Match`, `Cache-Control: no-cache` (names carry no hash, so
/// browsers revalidate). Unknown paths get 404; `..` never resolves (paths are map keys).
pub fn serve(path: &str, headers: &HeaderMap, head: bool) -> Reply {
    let name = path.trim_start_matches('/');
    let name = if name.is_empty() { "index.html" } else { name };
    let Some(file) = Public::get(name) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, "no-cache");
    let body = if not_modified {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        Vec::new()
    } else {
        let content_type = if mime.type_() == "text" || mime.subtype() == "javascript" {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        builder = builder
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, file.data.len());
        if head {
            Vec::new()
        } else {
            file.data.into_owned()
        }
    };
    builder
        .body(body.into())
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "error\n"))
}

/// A small text response.
pub fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut r = Reply::new(text.into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut r = Reply::new(value.to_string().into());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
