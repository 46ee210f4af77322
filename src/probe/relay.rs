//! The TURN checks: the issued credentials work on every TURN URL, two allocations relay to
//! each other (the path of every Relay-only call), the relay refuses every built-in denied
//! peer range (403) but not a public peer, and bad credentials get 401.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use tokio_rustls::TlsConnector;

use super::site::Joined;
use super::turn::{self, Outcome, Session, TurnUrl};
use super::{ProbeArgs, Report, Setup};
use crate::config::peers::{DEFAULT_DENIED_PEER_RANGES, default_denied};
use crate::turn::TurnSecret;

/// A sample address of every built-in denied range (the network address + 1, or the range's
/// own address when it has one), with the well-known ones spelled out, plus the unspecified
/// addresses. IPv4 first.
pub fn denied_samples() -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec!["0.0.0.0".parse().expect("literal")];
    for r in DEFAULT_DENIED_PEER_RANGES {
        let range = r.range();
        let sample: IpAddr = match r.cidr {
            "169.254.0.0/16" => "169.254.169.254".parse().expect("literal"),
            "192.168.0.0/16" => "192.168.1.1".parse().expect("literal"),
            "::ffff:0:0/96" => "::ffff:127.0.0.1".parse().expect("literal"),
            _ if range.start == range.end => range.start,
            _ => match range.start {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 1).into()),
                IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 1).into()),
            },
        };
        out.push(sample);
    }
    out.push("::".parse().expect("literal"));
    out.push("::ffff:169.254.169.254".parse().expect("literal"));
    out.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    out.dedup();
    out
}

/// The credentials the TURN checks use: the issued ones from `joined`, else ones made from
/// the secret file.
fn turn_credentials(
    joined: Option<&Joined>,
    secret: Option<&TurnSecret>,
) -> Option<(String, String)> {
    if let Some(Joined {
        username: Some(u),
        credential: Some(c),
        ..
    }) = joined
    {
        return Some((u.clone(), c.clone()));
    }
    let secret = secret?;
    let c = crate::turn::credentials(
        secret,
        "alisay-probe",
        SystemTime::now(),
        Duration::from_secs(600),
    );
    Some((c.username, c.credential))
}

/// Every TURN check (see the module list in `probe/mod.rs`), with the credentials from the
/// join or the secret file and the URLs from `--turn` or the join; SKIPs when neither gives
/// credentials or URLs.
pub(super) async fn turn_checks(
    args: &ProbeArgs,
    setup: &Setup,
    joined: Option<&Joined>,
    report: &mut Report,
) {
    let secret = setup.secret.as_ref();
    if let (Some(secret), Some(j)) = (secret, joined)
        && let (Some(u), Some(c)) = (&j.username, &j.credential)
    {
        let ok = crate::turn::password(secret, u) == *c;
        report.verdict(
            ok,
            "turn-secret-matches",
            if ok {
                "the issued credential is HMAC-SHA1(secret file, username)"
            } else {
                "the issued credential does not match the secret file"
            },
        );
    }
    let urls: Vec<TurnUrl> = if setup.turn_urls.is_empty() {
        let mut urls = Vec::new();
        for u in joined.map(|j| j.turn_urls.as_slice()).unwrap_or_default() {
            match TurnUrl::parse(u) {
                Ok(url) => urls.push(url),
                Err(e) => report.fail(format!("turn-url {u}"), e.to_string()),
            }
        }
        urls
    } else {
        setup.turn_urls.clone()
    };
    let Some((username, password)) = turn_credentials(joined, secret) else {
        report.skip(
            "turn",
            "no TURN credentials: none from a join and no --turn-secret-file",
        );
        return;
    };
    if urls.is_empty() {
        report.skip("turn", "no TURN URLs: none in joined and no --turn");
        return;
    }
    let tls = setup.tls.as_ref();
    let limit = args.timeout;

    // Every URL accepts the credentials; the first UDP one (else the first) is kept for the
    // deny checks.
    let main_url = urls
        .iter()
        .find(|u| u.transport == turn::Transport::Udp)
        .unwrap_or(&urls[0])
        .clone();
    let mut kept: Option<Session> = None;
    for url in &urls {
        let name = format!("turn-allocate {url}");
        match allocate(url, tls, &username, &password, limit, false).await {
            Ok((mut s, relayed)) => {
                report.pass(&name, format!("allocated, relayed address {relayed}"));
                if kept.is_none() && *url == main_url {
                    kept = Some(s);
                } else {
                    s.release().await;
                }
            }
            Err(detail) => report.fail(&name, detail),
        }
    }

    relay_to_relay_check(&main_url, tls, &username, &password, limit, report).await;

    let samples = denied_samples();
    match kept {
        None => report.fail(
            "turn-deny",
            format!("not tested: no allocation on {main_url}"),
        ),
        Some(mut s) => {
            for ip in samples.iter().filter(|ip| ip.is_ipv4()) {
                deny_check(&mut s, *ip, report).await;
            }
            allow_check(&mut s, &args.public_peers, false, report).await;
            s.release().await;
        }
    }

    // IPv6 peers need an IPv6 allocation.
    match allocate(&main_url, tls, &username, &password, limit, true).await {
        Ok((mut s, _)) => {
            for ip in samples.iter().filter(|ip| ip.is_ipv6()) {
                deny_check(&mut s, *ip, report).await;
            }
            allow_check(&mut s, &args.public_peers, true, report).await;
            s.release().await;
        }
        Err(detail) if detail.starts_with("440 ") => report.skip(
            "turn-deny ipv6",
            format!("n/a: the server has no IPv6 relay ({detail})"),
        ),
        Err(detail) => report.fail("turn-deny ipv6", format!("IPv6 allocation: {detail}")),
    }

    let wrong = format!("{}x", password.trim_end_matches('='));
    expect_401(
        "turn-wrong-password",
        &main_url,
        tls,
        &username,
        &wrong,
        limit,
        report,
    )
    .await;
    if let Some(secret) = secret {
        let past = SystemTime::now() - Duration::from_secs(3600);
        let old = crate::turn::credentials(secret, "alisay-probe", past, Duration::ZERO);
        expect_401(
            "turn-expired-username",
            &main_url,
            tls,
            &old.username,
            &old.credential,
            limit,
            report,
        )
        .await;
    }
}

/// The exact path of a Relay-only call: two allocations of our own on the same TURN server,
/// each with a permission for the other's relayed address, send data both ways (Send and Data
/// indications). Fails where a Relay-only call would: e.g. a server behind 1:1 NAT without
/// hairpinning whose coturn does not map its public address to its private relay address, or
/// refuses that private address as a peer (issue 17).
async fn relay_to_relay_check(
    url: &TurnUrl,
    tls: Option<&TlsConnector>,
    username: &str,
    password: &str,
    limit: Duration,
    report: &mut Report,
) {
    let name = format!("turn-relay-to-relay {url}");
    let (mut a, relayed_a) = match allocate(url, tls, username, password, limit, false).await {
        Ok(x) => x,
        Err(d) => return report.fail(name, format!("not tested: first allocation: {d}")),
    };
    let (mut b, relayed_b) = match allocate(url, tls, username, password, limit, false).await {
        Ok(x) => x,
        Err(d) => {
            a.release().await;
            return report.fail(name, format!("not tested: second allocation: {d}"));
        }
    };
    let outcome = exchange(&mut a, relayed_a, &mut b, relayed_b, limit).await;
    a.release().await;
    b.release().await;
    match outcome {
        Ok(()) => report.pass(
            name,
            format!("data both ways between relayed addresses {relayed_a} and {relayed_b}"),
        ),
        Err(why) => report.fail(
            name,
            format!(
                "{why}: Relay-only calls between two callers on this server fail (behind 1:1 \
                 NAT: set turn.relay_ips to the private address and render again; \
                 docs/deploy.md, \"Behind 1:1 NAT\")"
            ),
        ),
    }
}

/// Permissions both ways, then a datagram A to B and one B to A (each sent up to three times:
/// UDP between the relays may drop one).
async fn exchange(
    a: &mut Session,
    relayed_a: SocketAddr,
    b: &mut Session,
    relayed_b: SocketAddr,
    limit: Duration,
) -> Result<(), String> {
    for (s, peer) in [(&mut *a, relayed_b), (&mut *b, relayed_a)] {
        match s.create_permission(peer.ip()).await {
            Ok(Outcome::Success(())) => {}
            Ok(Outcome::Refused(c, r)) => {
                return Err(format!(
                    "CreatePermission for the other relayed address {peer}: {c} {r}"
                ));
            }
            Err(e) => return Err(format!("CreatePermission for {peer}: {e}")),
        }
    }
    let nonce: u64 = rand::random();
    one_way(a, relayed_a, b, relayed_b, "a-to-b", nonce, limit).await?;
    one_way(b, relayed_b, a, relayed_a, "b-to-a", nonce, limit).await
}

/// A datagram from `from`'s allocation to `to`'s relayed address, sent up to three times.
async fn one_way(
    from: &mut Session,
    from_addr: SocketAddr,
    to: &mut Session,
    to_addr: SocketAddr,
    dir: &str,
    nonce: u64,
    limit: Duration,
) -> Result<(), String> {
    let payload = format!("alisay-probe {dir} {nonce:016x}").into_bytes();
    for _ in 0..3 {
        from.send_to_peer(to_addr, &payload)
            .await
            .map_err(|e| format!("Send indication {from_addr} -> {to_addr}: {e}"))?;
        let deadline = tokio::time::Instant::now() + limit / 3;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match to.receive_from_peer(left).await {
                Ok(Some((_, data))) if data == payload => return Ok(()),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Err(format!("Data indication at {to_addr}: {e}")),
            }
        }
    }
    Err(format!(
        "no data from relayed address {from_addr} reached relayed address {to_addr} within \
         {limit:?}"
    ))
}

/// Opens a session on `url` and allocates; the error is a detail line (`"401 Unauthorized"`).
async fn allocate(
    url: &TurnUrl,
    tls: Option<&TlsConnector>,
    username: &str,
    password: &str,
    limit: Duration,
    ipv6: bool,
) -> Result<(Session, std::net::SocketAddr), String> {
    let mut mismatch = None;
    // A 437 (Allocation Mismatch) means the server already has an allocation on our 5-tuple
    // (a local port it still remembers): RFC 8656 section 7.3 says to try again from another
    // client transport address, which a new session is. Once: a second 437 is reported.
    for _ in 0..2 {
        let mut s = Session::open(url, tls, username, password, limit)
            .await
            .map_err(|e| e.to_string())?;
        match s.allocate(ipv6).await {
            Ok(Outcome::Success(relayed)) => return Ok((s, relayed)),
            Ok(Outcome::Refused(437, r)) => mismatch = Some(format!("437 {r}")),
            Ok(Outcome::Refused(c, r)) => return Err(format!("{c} {r}")),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(mismatch.unwrap_or_default())
}

async fn deny_check(s: &mut Session, ip: IpAddr, report: &mut Report) {
    let name = format!("turn-deny {ip}");
    let what = default_denied(ip).unwrap_or("denied range");
    match s.create_permission(ip).await {
        Ok(Outcome::Refused(403, r)) => report.pass(name, format!("403 {r} ({what})")),
        Ok(Outcome::Success(())) => report.fail(
            name,
            format!("permission granted: the relay would reach {ip} ({what})"),
        ),
        Ok(Outcome::Refused(c, r)) => report.fail(name, format!("{c} {r} (want 403)")),
        Err(e) => report.fail(name, e.to_string()),
    }
}

/// The control: the first public peer of the allocation's family must be permitted.
async fn allow_check(s: &mut Session, peers: &[IpAddr], ipv6: bool, report: &mut Report) {
    let Some(ip) = peers.iter().find(|ip| ip.is_ipv6() == ipv6) else {
        return;
    };
    let name = format!("turn-allow-public-peer {ip}");
    match s.create_permission(*ip).await {
        Ok(Outcome::Success(())) => report.pass(name, "permission granted"),
        Ok(Outcome::Refused(c, r)) => {
            report.fail(name, format!("{c} {r}: the relay refuses public peers too"))
        }
        Err(e) => report.fail(name, e.to_string()),
    }
}

async fn expect_401(
    name: &str,
    url: &TurnUrl,
    tls: Option<&TlsConnector>,
    username: &str,
    password: &str,
    limit: Duration,
    report: &mut Report,
) {
    match allocate(url, tls, username, password, limit, false).await {
        Ok((mut s, _)) => {
            s.release().await;
            report.fail(name, "allocation succeeded (want 401)");
        }
        Err(d) if d.starts_with("401 ") => report.pass(name, d),
        Err(d) => report.fail(name, format!("{d} (want 401)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_every_denied_range_and_the_named_addresses() {
        let samples = denied_samples();
        for r in DEFAULT_DENIED_PEER_RANGES {
            assert!(
                samples.iter().any(|ip| r.range().contains(*ip)),
                "no sample in {}",
                r.cidr
            );
        }
        for named in [
            "127.0.0.1",
            "10.0.0.1",
            "169.254.169.254",
            "192.168.1.1",
            "::1",
            "0.0.0.0",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(samples.contains(&named.parse().unwrap()), "{named}");
        }
        assert!(samples.iter().all(|ip| default_denied(*ip).is_some()));
    }
}
