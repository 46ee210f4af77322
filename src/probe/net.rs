//! The probe's network plumbing: the origin under test, TCP or TLS connections (rustls with the
//! system roots plus an optional `--ca-file`), one-shot HTTP/1.1 requests whose request line is
//! sent exactly as written (hyper's connection-level client, so `/ws?` keeps its `?`), and the
//! WebSocket handshake for the real join.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_util::either::Either;

/// Largest response body the probe reads (the client's pages are small).
const MAX_BODY: usize = 1024 * 1024;

/// A TCP connection, maybe wrapped in TLS.
pub type Stream = Either<TcpStream, TlsStream<TcpStream>>;

/// Why a connection or request failed. Messages name the host, never a secret.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("`{0}` is not an origin: expected http://host[:port] or https://host[:port]")]
    BadOrigin(String),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddress { host: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("`{0}` is not a valid TLS server name")]
    ServerName(String),
    #[error("cannot read CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("no trusted root certificates (system store empty and no --ca-file)")]
    NoRoots,
    #[error("HTTP request failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the HTTP request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("reading the response body failed: {0}")]
    Body(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The origin under test, normalised as a browser sends it in `Origin` (lowercase scheme and
/// host, default port omitted, no path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https` (TLS) or plain `http`.
    pub https: bool,
    /// Host name or IP literal without brackets.
    pub host: String,
    pub port: u16,
}

impl Origin {
    /// Parses `http(s)://host[:port]`, with at most a trailing `/`.
    ///
    /// # Errors
    /// [`NetError::BadOrigin`] for anything else (paths, queries, user info, other schemes).
    pub fn parse(text: &str) -> Result<Origin, NetError> {
        let bad = || NetError::BadOrigin(text.to_owned());
        let (scheme, rest) = text.split_once("://").ok_or_else(bad)?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(bad()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
            return Err(bad());
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            (host.to_owned(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| bad())?),
                None => (authority.to_owned(), default_port),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host[:port]` as in a `Host` header (port omitted when default, IPv6 bracketed).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The `Origin` header value a browser on this site sends.
    pub fn header(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.authority()
        )
    }

    /// The WebSocket URL of `/ws` on this origin.
    pub fn ws_url(&self) -> String {
        format!(
            "{}://{}/ws",
            if self.https { "wss" } else { "ws" },
            self.authority()
        )
    }
}

/// A TLS client configuration: system roots plus the certificates of `ca_file` (PEM).
///
/// # Errors
/// [`NetError::CaFile`] when the file cannot be read or holds no certificate,
/// [`NetError::NoRoots`] when nothing at all is trusted.
pub fn tls_connector(ca_file: Option<&Path>) -> Result<TlsConnector, NetError> {
    let mut roots = RootCertStore::empty();
    // Unreadable entries in the system store are skipped; what loaded is used.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let ca_err = |reason: String| NetError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_err(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| ca_err(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_err("no PEM certificate in it".to_owned()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
        }
    }
    if roots.is_empty() {
        return Err(NetError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Tls {
            host: String::new(),
            source: std::io::Error::other(e),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Resolves `host:port` to all its addresses, in resolver order.
///
/// # Errors
/// [`NetError::Resolve`] or [`NetError::NoAddress`].
pub async fn resolve_all(host: &str, port: u16) -> Result<Vec<SocketAddr>, NetError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| NetError::Resolve {
            host: host.to_owned(),
            source,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(NetError::NoAddress {
            host: host.to_owned(),
        });
    }
    Ok(addrs)
}

/// Resolves `host:port` to its first address (for UDP, where "connected" proves nothing).
///
/// # Errors
/// [`NetError::Resolve`] or [`NetError::NoAddress`].
pub async fn resolve(host: &str, port: u16) -> Result<SocketAddr, NetError> {
    Ok(resolve_all(host, port).await?[0])
}

/// Opens a TCP connection to `host:port` (each resolved address in turn until one answers),
/// with TLS (SNI and certificate check for `host`) when `tls` is given.
///
/// # Errors
/// Resolution, connection (the last address's error) or TLS handshake failures.
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&TlsConnector>,
) -> Result<Stream, NetError> {
    let mut last = None;
    let mut tcp = None;
    for addr in resolve_all(host, port).await? {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(source) => last = Some(NetError::Connect { addr, source }),
        }
    }
    let Some(tcp) = tcp else {
        return Err(last.unwrap_or_else(|| NetError::NoAddress {
            host: host.to_owned(),
        }));
    };
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Either::Left(tcp)),
        Some(connector) => {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| NetError::ServerName(host.to_owned()))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|source| NetError::Tls {
                    host: host.to_owned(),
                    source,
                })?;
            Ok(Either::Right(stream))
        }
    }
}

/// A response as the probe needs it.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The HTTP side of the probe: the origin, its TLS settings and a time limit per request.
#[derive(Clone)]
pub struct Client {
    pub origin: Origin,
    tls: Option<TlsConnector>,
    pub limit: Duration,
}

impl Client {
    /// A client for `origin`; `tls` is required for `https` origins.
    pub fn new(origin: Origin, tls: Option<TlsConnector>, limit: Duration) -> Client {
        Client { origin, tls, limit }
    }

    /// A fresh connection to the origin.
    ///
    /// # Errors
    /// As [`connect`], or [`NetError::Timeout`].
    pub async fn connect(&self) -> Result<Stream, NetError> {
        let tls = if self.origin.https {
            self.tls.as_ref()
        } else {
            None
        };
        timeout(
            self.limit,
            connect(&self.origin.host, self.origin.port, tls),
        )
        .await
        .map_err(|_| NetError::Timeout(self.limit))?
    }

    /// Sends one request on a fresh connection; `target` is the request-target exactly as it
    /// goes on the wire (e.g. `/ws?`). A `101` response is returned as is (the upgraded
    /// connection is dropped).
    ///
    /// # Errors
    /// Connection, protocol or body errors, or [`NetError::Timeout`].
    pub async fn request(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, NetError> {
        timeout(
            self.limit,
            self.request_inner(method, target, headers, body),
        )
        .await
        .map_err(|_| NetError::Timeout(self.limit))?
    }

    async fn request_inner(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, NetError> {
        let stream = self.connect().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(conn.with_upgrades());
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, self.origin.authority())
            .header(hyper::header::USER_AGENT, "alisay-probe");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                driver.abort();
                return Err(e.into());
            }
        };
        let (parts, body) = resp.into_parts();
        let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            Bytes::new()
        } else {
            Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| NetError::Body(e.to_string()))?
                .to_bytes()
        };
        driver.abort();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalised_like_browsers_send_them() {
        let o = Origin::parse("HTTPS://Call.Example.org:443/").unwrap();
        assert_eq!(o.header(), "https://call.example.org");
        assert_eq!(o.ws_url(), "wss://call.example.org/ws");
        let o = Origin::parse("http://127.0.0.1:8787").unwrap();
        assert_eq!((o.https, o.port), (false, 8787));
        assert_eq!(o.header(), "http://127.0.0.1:8787");
        let o = Origin::parse("https://[::1]:8443").unwrap();
        assert_eq!(o.host, "::1");
        assert_eq!(o.authority(), "[::1]:8443");
        for bad in [
            "call.example.org",
            "ftp://x",
            "https://x/path",
            "https://x?q",
            "https://u@x",
            "https://",
            "https://x:0",
            "https://x:99999",
            "https://[::1",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_query_survives_as_a_request_target() {
        // The probe relies on `/ws?` reaching the server with its `?`.
        let uri: hyper::Uri = "/ws?".parse().unwrap();
        assert_eq!(uri.path_and_query().unwrap().as_str(), "/ws?");
        assert_eq!(uri.query(), Some(""));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(matches!(
            tls_connector(Some(&path)),
            Err(NetError::CaFile { .. })
        ));
        assert!(matches!(
            tls_connector(Some(&dir.path().join("missing.pem"))),
            Err(NetError::CaFile { .. })
        ));
    }
}
