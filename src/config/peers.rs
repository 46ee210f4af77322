//! The peer address ranges a TURN relay of this appliance must never reach unless the
//! administrator allows them by name: private, loopback, link-local (incl. the cloud metadata
//! address 169.254.169.254), CGNAT, multicast, reserved and translation ranges of IPv4 and
//! IPv6 (SPEC §6; IANA special-purpose registries, RFC 6890).
//!
//! Validation uses the list to refuse relay/external addresses that coturn would refuse to
//! relay to (so relay-to-relay calls would silently fail) and to keep `allowed_peer_ips` from
//! reopening loopback. The renderer may use the same list for coturn's `denied-peer-ip` lines.
//! The unspecified addresses (`0.0.0.0`, `::`) are checked separately: coturn always denies
//! zero addresses, and a `denied-peer-ip=::` line blocks every IPv4 peer on newer coturn.

use std::net::IpAddr;

use super::{IpRange, TurnConfig};

/// One built-in denied range: CIDR text and what it is, for messages and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeniedRange {
    /// The block, in CIDR (always prefix-aligned).
    pub cidr: &'static str,
    /// What the block is (`private`, `loopback`, ...), lowercase.
    pub what: &'static str,
}

const fn d(cidr: &'static str, what: &'static str) -> DeniedRange {
    DeniedRange { cidr, what }
}

/// Every range denied by default, IPv4 first, in address order.
pub const DEFAULT_DENIED_PEER_RANGES: &[DeniedRange] = &[
    d("0.0.0.0/8", "\"this network\" (rfc 1122)"),
    d("10.0.0.0/8", "private (rfc 1918)"),
    d("100.64.0.0/10", "shared address space, cgnat (rfc 6598)"),
    d("127.0.0.0/8", "loopback"),
    d(
        "169.254.0.0/16",
        "link-local, incl. cloud metadata 169.254.169.254",
    ),
    d("172.16.0.0/12", "private (rfc 1918)"),
    d("192.0.0.0/24", "ietf protocol assignments (rfc 6890)"),
    d("192.0.2.0/24", "documentation, test-net-1 (rfc 5737)"),
    d("192.88.99.0/24", "6to4 relay anycast (rfc 7526)"),
    d("192.168.0.0/16", "private (rfc 1918)"),
    d("198.18.0.0/15", "benchmarking (rfc 2544)"),
    d("198.51.100.0/24", "documentation, test-net-2 (rfc 5737)"),
    d("203.0.113.0/24", "documentation, test-net-3 (rfc 5737)"),
    d("224.0.0.0/4", "multicast"),
    d("240.0.0.0/4", "reserved, incl. broadcast 255.255.255.255"),
    d("::1/128", "ipv6 loopback"),
    d("::ffff:0:0/96", "ipv4-mapped ipv6 (reaches ipv4 ranges)"),
    d("64:ff9b::/96", "nat64 (rfc 6052)"),
    d("64:ff9b:1::/48", "local-use nat64 (rfc 8215)"),
    d("100::/64", "discard-only (rfc 6666)"),
    d("2001::/32", "teredo (rfc 4380)"),
    d("2001:db8::/32", "ipv6 documentation (rfc 3849)"),
    d("2002::/16", "6to4 (rfc 3056)"),
    d("fc00::/7", "unique local, ula (rfc 4193)"),
    d("fe80::/10", "ipv6 link-local"),
    d("fec0::/10", "ipv6 site-local, deprecated (rfc 3879)"),
    d("ff00::/8", "ipv6 multicast"),
];

impl DeniedRange {
    /// The block as an [`IpRange`].
    pub fn range(&self) -> IpRange {
        self.cidr.parse().expect("built-in ranges are valid CIDR")
    }
}

/// The built-in denied range `ip` falls in, if any (unspecified addresses included).
pub fn default_denied(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    DEFAULT_DENIED_PEER_RANGES
        .iter()
        .find(|r| r.range().contains(ip))
        .map(|r| r.what)
}

/// Addresses a relay must never be allowed to reach, even by an explicit `allowed_peer_ips`
/// entry in production: loopback (v4, v6 and v4-mapped), unspecified, and the link-local
/// cloud metadata service.
pub const NEVER_ALLOWED_IN_PRODUCTION: &[DeniedRange] = &[
    d("0.0.0.0/32", "the unspecified address"),
    d("127.0.0.0/8", "loopback"),
    d("169.254.169.254/32", "the cloud metadata service"),
    d("::/128", "the unspecified address"),
    d("::1/128", "loopback"),
    d(
        "::ffff:0.0.0.0/128",
        "the unspecified address (ipv4-mapped)",
    ),
    d("::ffff:127.0.0.0/104", "loopback (ipv4-mapped)"),
    d(
        "::ffff:169.254.169.254/128",
        "the cloud metadata service (ipv4-mapped)",
    ),
];

/// coturn behind 1:1 NAT (`turn.external_ip` set, as on most cloud VMs): the public address
/// peers see and the private relay address the NAT maps it to, derived from the config.
///
/// Why the render needs it: in a Relay-only call each caller's peer is the other caller's
/// relay address, which is `external` on this same coturn. Without hairpinning (most clouds)
/// a packet to `external` never comes back, so coturn must map `external` to `private` itself
/// (`external-ip=<external>/<private>`), and then it checks the *private* address against its
/// peer rules: that exact address must be an `allowed-peer-ip`, and the rendered nftables table
/// keeps it reachable only on the relay port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRelay {
    /// `turn.external_ip`.
    pub external: IpAddr,
    /// The address coturn relays from: the one `relay_ips` entry of `external`'s family, else
    /// the one such `listening_ips` entry (coturn relays from its listening addresses when it
    /// has no `relay-ip`).
    pub private: IpAddr,
    /// The key `private` comes from, e.g. `turn.relay_ips[0]` (for `alisay check`).
    pub source: &'static str,
    /// Index of `private` in its list.
    pub index: usize,
    /// Whether `private` needs the derived `allowed-peer-ip` line: it lies in a denied range
    /// (built-in or `turn.denied_peer_ips`) and no `turn.allowed_peer_ips` entry covers it.
    pub needs_allowance: bool,
}

/// Why [`nat_relay`] cannot derive the private relay address. Messages are lowercase and say
/// what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatRelayError {
    /// No relay or listening address of `external_ip`'s family is configured, so coturn would
    /// pick any of the host's addresses and the mapping cannot be written.
    #[error(
        "is set, but the private address it maps to is unknown: set turn.relay_ips to the \
         host's private {family} address (the one the provider maps `{external}` to, e.g. \
         `ip -{v} addr` on the host), so coturn can map its public address back to it"
    )]
    Unknown {
        external: IpAddr,
        family: &'static str,
        v: u8,
    },
    /// Several candidates of the same family: a 1:1 NAT maps one public address to one.
    #[error(
        "behind 1:1 nat `{external}` maps to exactly one private address, but {key} lists \
         {count} {family} addresses; keep only the one the provider maps it to"
    )]
    Ambiguous {
        external: IpAddr,
        key: &'static str,
        count: usize,
        family: &'static str,
    },
    /// The private address would reopen loopback, unspecified or metadata addresses.
    #[error("`{private}` ({key}) cannot be a relay address: it is {what}")]
    Forbidden {
        private: IpAddr,
        key: &'static str,
        what: &'static str,
    },
}

/// Derives the [`NatRelay`] of `turn`: `Ok(None)` without `turn.external_ip`.
///
/// # Errors
/// [`NatRelayError`] when the private relay address is unknown, ambiguous or forbidden; the
/// problem belongs to `turn.external_ip` (or the key named in the error).
pub fn nat_relay(turn: &TurnConfig) -> Result<Option<NatRelay>, NatRelayError> {
    let Some(external) = turn.external_ip else {
        return Ok(None);
    };
    let family = |ip: &IpAddr| ip.is_ipv4() == external.is_ipv4();
    let family_name = if external.is_ipv4() { "ipv4" } else { "ipv6" };
    let pick =
        |key: &'static str, list: &[IpAddr]| -> Result<Option<(usize, IpAddr)>, NatRelayError> {
            let same: Vec<(usize, IpAddr)> = list
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, ip)| family(ip))
                .collect();
            match same[..] {
                [] => Ok(None),
                [one] => Ok(Some(one)),
                _ => Err(NatRelayError::Ambiguous {
                    external,
                    key,
                    count: same.len(),
                    family: family_name,
                }),
            }
        };
    // coturn relays from relay-ip; without any, from its listening-ips; without those, from
    // whatever addresses the host has (unknowable here).
    let found = if turn.relay_ips.is_empty() {
        pick("turn.listening_ips", &turn.listening_ips)?.map(|f| ("turn.listening_ips", f))
    } else {
        pick("turn.relay_ips", &turn.relay_ips)?.map(|f| ("turn.relay_ips", f))
    };
    let Some((source, (index, private))) = found else {
        return Err(NatRelayError::Unknown {
            external,
            family: family_name,
            v: if external.is_ipv4() { 4 } else { 6 },
        });
    };
    let one = IpRange {
        start: private,
        end: private,
    };
    if private.is_unspecified() || private.is_multicast() {
        return Err(NatRelayError::Forbidden {
            private,
            key: source,
            what: "unspecified or multicast",
        });
    }
    if let Some(never) = NEVER_ALLOWED_IN_PRODUCTION
        .iter()
        .find(|n| overlaps(&one, &n.range()))
    {
        return Err(NatRelayError::Forbidden {
            private,
            key: source,
            what: never.what,
        });
    }
    let denied = default_denied(private).is_some()
        || turn.denied_peer_ips.iter().any(|r| r.contains(private));
    let allowed = turn.allowed_peer_ips.iter().any(|r| r.contains(private));
    Ok(Some(NatRelay {
        external,
        private,
        source,
        index,
        needs_allowance: denied && !allowed && private != external,
    }))
}

/// Whether two ranges share at least one address (same family only).
pub fn overlaps(a: &IpRange, b: &IpRange) -> bool {
    a.contains(b.start) || a.contains(b.end) || b.contains(a.start) || b.contains(a.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_range_is_a_prefix_and_parses() {
        for r in DEFAULT_DENIED_PEER_RANGES
            .iter()
            .chain(NEVER_ALLOWED_IN_PRODUCTION)
        {
            let range = r.range();
            assert!(range.as_prefix().is_some(), "{}", r.cidr);
            assert_eq!(range.to_string().parse::<IpRange>().unwrap(), range);
        }
    }

    #[test]
    fn classic_addresses_are_denied() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "10.1.2.3",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "::",
            "::ffff:127.0.0.1",
            "fd00::1",
            "fe80::1",
            "64:ff9b::a00:1",
        ] {
            assert!(default_denied(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in ["8.8.8.8", "2a00:1450::1", "198.20.0.1"] {
            assert!(default_denied(ip.parse().unwrap()).is_none(), "{ip}");
        }
    }

    #[test]
    fn nat_relay_is_the_one_private_address_of_the_external_family() {
        let mut t = TurnConfig::default();
        assert_eq!(nat_relay(&t), Ok(None));
        t.external_ip = Some("203.0.113.10".parse().unwrap());
        assert!(matches!(nat_relay(&t), Err(NatRelayError::Unknown { .. })));
        // Listening addresses are coturn's relay addresses when relay_ips is empty.
        t.listening_ips = vec![
            "10.0.0.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        let n = nat_relay(&t).unwrap().unwrap();
        assert_eq!(n.private.to_string(), "10.0.0.10");
        assert_eq!((n.source, n.index), ("turn.listening_ips", 0));
        assert!(n.needs_allowance);
        // relay_ips wins; another family does not count.
        t.relay_ips = vec![
            "2001:db8::10".parse().unwrap(),
            "10.0.0.11".parse().unwrap(),
        ];
        let n = nat_relay(&t).unwrap().unwrap();
        assert_eq!(
            (n.private.to_string().as_str(), n.source, n.index),
            ("10.0.0.11", "turn.relay_ips", 1)
        );
        // Already allowed by the administrator: no derived line.
        t.allowed_peer_ips = vec!["10.0.0.11".parse().unwrap()];
        assert!(!nat_relay(&t).unwrap().unwrap().needs_allowance);
        // A public relay address needs no allowance.
        t.allowed_peer_ips.clear();
        t.relay_ips = vec!["198.20.0.10".parse().unwrap()];
        assert!(!nat_relay(&t).unwrap().unwrap().needs_allowance);
        t.relay_ips = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert!(matches!(
            nat_relay(&t),
            Err(NatRelayError::Ambiguous { count: 2, .. })
        ));
        t.relay_ips = vec!["127.0.0.1".parse().unwrap()];
        assert!(matches!(
            nat_relay(&t),
            Err(NatRelayError::Forbidden { .. })
        ));
        t.relay_ips = vec!["169.254.169.254".parse().unwrap()];
        assert!(matches!(
            nat_relay(&t),
            Err(NatRelayError::Forbidden { .. })
        ));
    }

    #[test]
    fn overlap_is_symmetric() {
        let a: IpRange = "10.0.0.0/8".parse().unwrap();
        let b: IpRange = "10.2.0.0-10.2.0.9".parse().unwrap();
        let c: IpRange = "11.0.0.0/8".parse().unwrap();
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c) && !overlaps(&c, &a));
    }
}
