//! A small TURN client (RFC 8656) over UDP, TCP or TLS, enough to check a deployed coturn:
//! Allocate with long-term credentials (the 401 REALM/NONCE challenge, 438 stale nonce),
//! CreatePermission towards a peer, Send and Data indications (data to and from a peer, e.g.
//! another allocation: the path of a Relay-only call), and Refresh with lifetime 0 to release
//! the allocation.
//!
//! Every success response to an authenticated request must carry a valid MESSAGE-INTEGRITY:
//! that proves the server derived the same key, i.e. shares our TURN secret.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;

use super::net::{self, NetError, Stream};
use super::stun::{self, Class, Decoded, HEADER_LEN, Message, StunError, attr, method};

/// First UDP retransmission timeout (RFC 8489 §6.2.1 suggests 500 ms); doubled each time.
const FIRST_RTO: Duration = Duration::from_millis(500);
/// How long a Binding request may take when choosing among a host's UDP addresses.
const UDP_PING: Duration = Duration::from_millis(1500);
/// REQUESTED-TRANSPORT value for UDP relaying (protocol number 17).
const UDP: u8 = 17;

/// How the client reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

/// A `turn:`/`turns:` URL (RFC 7065): host, port and transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnUrl {
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    /// The URL as written, for the report.
    text: String,
}

/// What went wrong talking to a TURN server (not a TURN error response: see [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("`{0}` is not a turn:/turns: URL with udp or tcp transport")]
    Url(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("malformed answer: {0}")]
    Stun(#[from] StunError),
    #[error("the server closed the connection")]
    Closed,
    #[error("401 without REALM and NONCE")]
    NoChallenge,
    #[error("success response without a valid MESSAGE-INTEGRITY: {0}")]
    Unauthenticated(StunError),
    #[error("success response without {0}")]
    Missing(&'static str),
    #[error("the server kept refusing our nonce")]
    StaleNonce,
}

impl TurnUrl {
    /// Parses `turn:host[:port][?transport=udp|tcp]` or `turns:host[:port][?transport=tcp]`
    /// (default ports 3478 and 5349; default transport udp for `turn:`, tcp for `turns:`).
    ///
    /// # Errors
    /// [`TurnError::Url`] for anything else, including DTLS (`turns:` with udp).
    pub fn parse(text: &str) -> Result<TurnUrl, TurnError> {
        let bad = || TurnError::Url(text.to_owned());
        let (secure, rest) = if let Some(r) = text.strip_prefix("turns:") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("turn:") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
        let transport = match query {
            "" if secure => Transport::Tls,
            "" | "transport=udp" if !secure => Transport::Udp,
            "transport=tcp" if secure => Transport::Tls,
            "transport=tcp" => Transport::Tcp,
            _ => return Err(bad()),
        };
        let default_port = if secure { 5349 } else { 3478 };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            (host, port)
        } else {
            match hostport.split_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
                None => (hostport, default_port),
            }
        };
        if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
            return Err(bad());
        }
        Ok(TurnUrl {
            host: host.to_owned(),
            port,
            transport,
            text: text.to_owned(),
        })
    }
}

impl fmt::Display for TurnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A UDP socket connected to `server`.
async fn udp_socket(server: SocketAddr) -> Result<UdpSocket, TurnError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    Ok(socket)
}

/// A connection to the TURN server.
enum Conn {
    Udp(UdpSocket),
    Stream(Box<Stream>),
}

impl Conn {
    async fn open(url: &TurnUrl, tls: Option<&TlsConnector>) -> Result<Conn, TurnError> {
        match url.transport {
            Transport::Udp => {
                let servers = net::resolve_all(&url.host, url.port).await?;
                if let [only] = servers[..] {
                    return Ok(Conn::Udp(udp_socket(only).await?));
                }
                // Several addresses (`localhost` is often ::1 and 127.0.0.1): use the first that
                // answers a Binding request, as a browser would find by trying them all.
                for server in &servers {
                    let mut conn = Conn::Udp(udp_socket(*server).await?);
                    let ping = Message::new(Class::Request, method::BINDING);
                    let bytes = ping.encode(None, true)?;
                    if conn
                        .transact(&bytes, ping.transaction_id, UDP_PING)
                        .await
                        .is_ok()
                    {
                        return Ok(conn);
                    }
                }
                Ok(Conn::Udp(udp_socket(servers[0]).await?))
            }
            Transport::Tcp => Ok(Conn::Stream(Box::new(
                net::connect(&url.host, url.port, None).await?,
            ))),
            Transport::Tls => {
                let connector = tls.ok_or(TurnError::Url(url.text.clone()))?;
                Ok(Conn::Stream(Box::new(
                    net::connect(&url.host, url.port, Some(connector)).await?,
                )))
            }
        }
    }

    /// Sends one message and expects no answer (an indication).
    async fn send_only(&mut self, bytes: &[u8]) -> Result<(), TurnError> {
        match self {
            Conn::Udp(socket) => {
                socket.send(bytes).await?;
            }
            Conn::Stream(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await?;
            }
        }
        Ok(())
    }

    /// The next STUN message from the server, until `deadline`: `Ok(None)` when none came.
    /// UDP datagrams that are not STUN are skipped.
    async fn next_message(&mut self, deadline: Instant) -> Result<Option<Decoded>, TurnError> {
        match self {
            Conn::Udp(socket) => {
                let mut buf = vec![0u8; 2048];
                loop {
                    match timeout_at(deadline, socket.recv(&mut buf)).await {
                        Err(_) => return Ok(None),
                        Ok(Err(e)) => return Err(e.into()),
                        Ok(Ok(n)) => {
                            if let Ok(d) = Decoded::parse(&buf[..n]) {
                                return Ok(Some(d));
                            }
                        }
                    }
                }
            }
            Conn::Stream(stream) => {
                let work = async {
                    let mut header = [0u8; HEADER_LEN];
                    stream.read_exact(&mut header).await?;
                    let total = Decoded::framed_len(&header).ok_or(StunError::NotStun)?;
                    let mut msg = header.to_vec();
                    msg.resize(total, 0);
                    stream.read_exact(&mut msg[HEADER_LEN..]).await?;
                    Ok::<_, TurnError>(Decoded::parse(&msg)?)
                };
                match timeout_at(deadline, work).await {
                    Err(_) => Ok(None),
                    Ok(r) => r.map(Some),
                }
            }
        }
    }

    /// Sends `request` and returns the response with transaction id `tid`. UDP retransmits
    /// (500 ms, doubling) until `limit`; streams send once and wait until `limit`.
    async fn transact(
        &mut self,
        request: &[u8],
        tid: [u8; 12],
        limit: Duration,
    ) -> Result<Decoded, TurnError> {
        let deadline = Instant::now() + limit;
        match self {
            Conn::Udp(socket) => {
                let mut rto = FIRST_RTO;
                let mut buf = vec![0u8; 2048];
                loop {
                    socket.send(request).await?;
                    let resend_at = (Instant::now() + rto).min(deadline);
                    loop {
                        match timeout_at(resend_at, socket.recv(&mut buf)).await {
                            Err(_) => break,
                            // Includes ICMP port unreachable (ConnectionRefused): nobody
                            // listens there, a definite answer.
                            Ok(Err(e)) => return Err(e.into()),
                            Ok(Ok(n)) => {
                                if let Ok(d) = Decoded::parse(&buf[..n])
                                    && d.transaction_id == tid
                                {
                                    return Ok(d);
                                }
                            }
                        }
                    }
                    if Instant::now() >= deadline {
                        return Err(TurnError::Timeout(limit));
                    }
                    rto *= 2;
                }
            }
            Conn::Stream(stream) => {
                let work = async {
                    stream.write_all(request).await?;
                    stream.flush().await?;
                    loop {
                        let mut header = [0u8; HEADER_LEN];
                        match stream.read_exact(&mut header).await {
                            Ok(_) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                                return Err(TurnError::Closed);
                            }
                            Err(e) => return Err(e.into()),
                        }
                        let total = Decoded::framed_len(&header).ok_or(StunError::NotStun)?;
                        let mut msg = header.to_vec();
                        msg.resize(total, 0);
                        stream.read_exact(&mut msg[HEADER_LEN..]).await?;
                        let d = Decoded::parse(&msg)?;
                        if d.transaction_id == tid {
                            return Ok(d);
                        }
                    }
                };
                timeout(limit, work)
                    .await
                    .map_err(|_| TurnError::Timeout(limit))?
            }
        }
    }
}

/// The end of one TURN transaction, as far as the server is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// A success response (authenticated with our key).
    Success(T),
    /// An error response: ERROR-CODE number and reason phrase.
    Refused(u16, String),
}

/// One client-server association with long-term credentials: learns REALM and NONCE from the
/// first 401 and signs every later request.
pub struct Session {
    conn: Conn,
    username: String,
    password: String,
    realm: Option<String>,
    nonce: Option<String>,
    key: Option<[u8; 16]>,
    limit: Duration,
    allocated: bool,
}

impl Session {
    /// Connects to `url` (TLS for `turns:`, verified with `tls`).
    ///
    /// # Errors
    /// Resolution, connection or TLS failures.
    pub async fn open(
        url: &TurnUrl,
        tls: Option<&TlsConnector>,
        username: &str,
        password: &str,
        limit: Duration,
    ) -> Result<Session, TurnError> {
        let conn = timeout(limit, Conn::open(url, tls))
            .await
            .map_err(|_| TurnError::Timeout(limit))??;
        Ok(Session {
            conn,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: None,
            nonce: None,
            key: None,
            limit,
            allocated: false,
        })
    }

    /// Sends a request built by `build`, answering a 401 challenge once and a 438 (stale
    /// nonce) once, and returns the final response.
    async fn request(
        &mut self,
        method: u16,
        build: impl Fn(&mut Message),
    ) -> Result<Outcome<Decoded>, TurnError> {
        let mut challenged = false;
        let mut refreshed = false;
        loop {
            let mut msg = Message::new(Class::Request, method);
            build(&mut msg);
            if let (Some(realm), Some(nonce)) = (&self.realm, &self.nonce) {
                msg.push(attr::USERNAME, self.username.as_bytes())
                    .push(attr::REALM, realm.as_bytes())
                    .push(attr::NONCE, nonce.as_bytes());
            }
            let bytes = msg.encode(self.key.as_ref().map(|k| &k[..]), true)?;
            let resp = self
                .conn
                .transact(&bytes, msg.transaction_id, self.limit)
                .await?;
            resp.verify_fingerprint()?;
            match resp.class {
                Class::Success => {
                    if let Some(key) = &self.key {
                        resp.verify_integrity(key)
                            .map_err(TurnError::Unauthenticated)?;
                    }
                    return Ok(Outcome::Success(resp));
                }
                Class::Error => {
                    let (code, reason) =
                        resp.error_code().unwrap_or((0, "no ERROR-CODE".to_owned()));
                    let learn = |s: &mut Session| -> Result<(), TurnError> {
                        let realm = resp.text(attr::REALM).ok_or(TurnError::NoChallenge)?;
                        let nonce = resp.text(attr::NONCE).ok_or(TurnError::NoChallenge)?;
                        s.key = Some(stun::long_term_key(&s.username, realm, &s.password));
                        s.realm = Some(realm.to_owned());
                        s.nonce = Some(nonce.to_owned());
                        Ok(())
                    };
                    match code {
                        401 if self.key.is_none() && !challenged => {
                            challenged = true;
                            learn(self)?;
                        }
                        438 if !refreshed => {
                            refreshed = true;
                            learn(self).map_err(|_| TurnError::StaleNonce)?;
                        }
                        _ => return Ok(Outcome::Refused(code, reason)),
                    }
                }
                // A request is answered by a response; anything else is not for us.
                Class::Request | Class::Indication => return Err(StunError::NotStun.into()),
            }
        }
    }

    /// Allocate (UDP relay); `ipv6` asks for an IPv6 relayed address (RFC 8656
    /// REQUESTED-ADDRESS-FAMILY). Returns the relayed address.
    ///
    /// # Errors
    /// Transport or protocol failures; TURN refusals are `Ok(Outcome::Refused)`.
    pub async fn allocate(&mut self, ipv6: bool) -> Result<Outcome<SocketAddr>, TurnError> {
        let out = self
            .request(method::ALLOCATE, |m| {
                m.push(attr::REQUESTED_TRANSPORT, [UDP, 0, 0, 0]);
                if ipv6 {
                    m.push(attr::REQUESTED_ADDRESS_FAMILY, [0x02, 0, 0, 0]);
                }
            })
            .await?;
        Ok(match out {
            Outcome::Success(d) => {
                let relayed = d
                    .xor_address(attr::XOR_RELAYED_ADDRESS)?
                    .ok_or(TurnError::Missing("XOR-RELAYED-ADDRESS"))?;
                self.allocated = true;
                Outcome::Success(relayed)
            }
            Outcome::Refused(c, r) => Outcome::Refused(c, r),
        })
    }

    /// CreatePermission for `peer` (port is irrelevant to permissions; 0 is sent).
    ///
    /// # Errors
    /// Transport or protocol failures; TURN refusals are `Ok(Outcome::Refused)`.
    pub async fn create_permission(&mut self, peer: IpAddr) -> Result<Outcome<()>, TurnError> {
        let out = self
            .request(method::CREATE_PERMISSION, |m| {
                m.push_xor_address(attr::XOR_PEER_ADDRESS, SocketAddr::new(peer, 0));
            })
            .await?;
        Ok(match out {
            Outcome::Success(_) => Outcome::Success(()),
            Outcome::Refused(c, r) => Outcome::Refused(c, r),
        })
    }

    /// Sends `data` to `peer` through the allocation in a Send indication (needs a permission
    /// for the peer's address). Nothing answers an indication.
    ///
    /// # Errors
    /// Transport failures.
    pub async fn send_to_peer(&mut self, peer: SocketAddr, data: &[u8]) -> Result<(), TurnError> {
        let mut msg = Message::new(Class::Indication, method::SEND);
        msg.push_xor_address(attr::XOR_PEER_ADDRESS, peer)
            .push(attr::DATA, data.to_vec());
        let bytes = msg.encode(None, true)?;
        self.conn.send_only(&bytes).await
    }

    /// Waits up to `limit` for a Data indication and returns the peer it came from and its
    /// data; `Ok(None)` when none arrived. Other messages (late responses) are skipped.
    ///
    /// # Errors
    /// Transport failures, or a Data indication without XOR-PEER-ADDRESS or DATA.
    pub async fn receive_from_peer(
        &mut self,
        limit: Duration,
    ) -> Result<Option<(SocketAddr, Vec<u8>)>, TurnError> {
        let deadline = Instant::now() + limit;
        while let Some(d) = self.conn.next_message(deadline).await? {
            if d.class != Class::Indication || d.method != method::DATA {
                continue;
            }
            let peer = d
                .xor_address(attr::XOR_PEER_ADDRESS)?
                .ok_or(TurnError::Missing("XOR-PEER-ADDRESS"))?;
            let data = d.get(attr::DATA).ok_or(TurnError::Missing("DATA"))?;
            return Ok(Some((peer, data.to_vec())));
        }
        Ok(None)
    }

    /// Releases the allocation (Refresh with LIFETIME 0), best effort.
    pub async fn release(&mut self) {
        if self.allocated {
            self.allocated = false;
            let _ = self
                .request(method::REFRESH, |m| {
                    m.push(attr::LIFETIME, 0u32.to_be_bytes());
                })
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_parse_as_rfc_7065_says() {
        let u = TurnUrl::parse("turn:turn.example.org").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.transport),
            ("turn.example.org", 3478, Transport::Udp)
        );
        let u = TurnUrl::parse("turn:127.0.0.1:3479?transport=tcp").unwrap();
        assert_eq!((u.port, u.transport), (3479, Transport::Tcp));
        let u = TurnUrl::parse("turns:turn.example.org:443?transport=tcp").unwrap();
        assert_eq!((u.port, u.transport), (443, Transport::Tls));
        let u = TurnUrl::parse("turns:[2001:db8::1]").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.transport),
            ("2001:db8::1", 5349, Transport::Tls)
        );
        assert_eq!(u.to_string(), "turns:[2001:db8::1]");
        for bad in [
            "stun:x",
            "turn:",
            "turns:x?transport=udp",
            "turn:x?transport=sctp",
            "turn:x:0",
            "turn:x:port",
            "turn:[::1",
            "turn://x",
        ] {
            assert!(TurnUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
