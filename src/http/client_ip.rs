//! The client's IP address: the socket peer, or, when the peer is a trusted proxy (nginx on
//! loopback by default), the right-most address of `X-Forwarded-For` that is not itself a
//! trusted proxy. Addresses a client could forge (left of a trusted hop) are never believed.

use std::net::IpAddr;

use crate::config::IpRange;

/// Resolves the client address from the socket peer and the `X-Forwarded-For` header value.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(canonical(ip)));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let Some(header) = forwarded_for else {
        return canonical(peer);
    };
    let mut last_trusted = canonical(peer);
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if is_trusted(ip) => last_trusted = canonical(ip),
            Ok(ip) => return canonical(ip),
            // A malformed hop: stop believing the header here.
            Err(_) => return last_trusted,
        }
    }
    last_trusted
}

/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Vec<IpRange> {
        vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()]
    }

    #[test]
    fn believes_only_trusted_hops() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // Untrusted peer: its header is ignored.
        assert_eq!(client_ip(stranger, Some("1.2.3.4"), &t()), stranger);
        // Trusted proxy: right-most untrusted hop wins, forged left hops are ignored.
        assert_eq!(
            client_ip(local, Some("6.6.6.6, 203.0.113.9"), &t()),
            stranger
        );
        assert_eq!(
            client_ip(local, Some("203.0.113.9, 127.0.0.2"), &t()),
            stranger
        );
        assert_eq!(client_ip(local, None, &t()), local);
        assert_eq!(client_ip(local, Some("garbage"), &t()), local);
        let mapped: IpAddr = "::ffff:203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(mapped, None, &t()), stranger);
    }
}
