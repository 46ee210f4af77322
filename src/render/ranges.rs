//! The peer ranges coturn must never relay to, as one table an auditor can read, and the
//! conversion to the only syntax coturn 4.6.1 honours: prefix-aligned `a-b` ranges.
//!
//! Why `a-b` and never CIDR: coturn 4.6.1 (Debian 12) logs "Wrong address format" for a
//! `denied-peer-ip=10.0.0.0/8` line, DROPS it and starts anyway, so a CIDR config is an open
//! relay to the very ranges it names. Why prefix-aligned: coturn before 4.16.0 mis-handles IPv6
//! ranges that are not a CIDR block, so every rendered range is exactly one prefix (an
//! administrator's arbitrary `a-b` range is split into the fewest prefixes that cover it).
//!
//! The table itself is `crate::config::peers::DEFAULT_DENIED_PEER_RANGES` (CIDR next to what
//! each block is), shared with validation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::IpRange;
use crate::config::peers::{self, NEVER_ALLOWED_IN_PRODUCTION};

/// One rendered `denied-peer-ip` / `allowed-peer-ip` value with a note for readers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerRange {
    /// coturn's syntax: `start-end`, one prefix-aligned block.
    pub range: String,
    /// The same block in CIDR, and where it comes from (shown as a comment).
    pub note: String,
}

/// Splits `range` into the fewest prefix-aligned blocks covering exactly the same addresses,
/// each as an [`IpRange`] whose `as_prefix()` is `Some`.
pub fn prefix_blocks(range: &IpRange) -> Vec<IpRange> {
    let (start, end, v4) = match (range.start, range.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (u128::from(u32::from(a)), u128::from(u32::from(b)), true)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), false),
        _ => return Vec::new(),
    };
    let bits: u32 = if v4 { 32 } else { 128 };
    let to_ip = |n: u128| -> IpAddr {
        if v4 {
            IpAddr::V4(Ipv4Addr::from(u32::try_from(n).expect("an IPv4 value")))
        } else {
            IpAddr::V6(Ipv6Addr::from(n))
        }
    };
    let mut blocks = Vec::new();
    let mut cur = start;
    loop {
        // The largest block starting at `cur` that is aligned and does not pass `end`.
        let mut host_bits = if cur == 0 {
            bits
        } else {
            cur.trailing_zeros().min(bits)
        };
        while host_bits > 0 {
            let last = if host_bits == 128 {
                u128::MAX
            } else {
                cur + ((1u128 << host_bits) - 1)
            };
            if last <= end {
                break;
            }
            host_bits -= 1;
        }
        let last = if host_bits == 128 {
            u128::MAX
        } else {
            cur + ((1u128 << host_bits) - 1)
        };
        blocks.push(IpRange {
            start: to_ip(cur),
            end: to_ip(last),
        });
        if last >= end {
            return blocks;
        }
        cur = last + 1;
    }
}

/// `range` in coturn's syntax, one line per prefix-aligned block, each noted with its CIDR
/// and `origin` (where the range comes from).
pub fn peer_lines(range: &IpRange, origin: &str) -> Vec<PeerRange> {
    prefix_blocks(range)
        .into_iter()
        .map(|block| PeerRange {
            range: format!("{}-{}", block.start, block.end),
            note: format!(
                "{} {origin}",
                block
                    .as_prefix()
                    .map_or_else(|| block.to_string(), |net| net.to_string())
            ),
        })
        .collect()
}

/// The [`NEVER_ALLOWED_IN_PRODUCTION`] entry `range` overlaps, if any: `allowed-peer-ip` must
/// never reopen these (in any mode), because coturn checks `allowed-peer-ip` before
/// `denied-peer-ip`.
pub fn reopens_forbidden(range: &IpRange) -> Option<&'static str> {
    NEVER_ALLOWED_IN_PRODUCTION
        .iter()
        .find(|never| peers::overlaps(range, &never.range()))
        .map(|never| never.what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_never_denies_the_ipv6_zero_blocks() {
        for denied in peers::DEFAULT_DENIED_PEER_RANGES {
            let range = denied.range();
            assert!(range.as_prefix().is_some(), "{range} is not a prefix");
            assert!(
                !range.contains("::".parse().unwrap()),
                "{range} contains ::"
            );
            assert_eq!(prefix_blocks(&range), vec![range]);
        }
    }

    #[test]
    fn ranges_render_as_prefix_aligned_a_b() {
        let lines = peer_lines(&"::ffff:0:0/96".parse().unwrap(), "mapped");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].range, "::ffff:0.0.0.0-::ffff:255.255.255.255");
        assert_eq!(lines[0].note, "::ffff:0.0.0.0/96 mapped");
        let lines = peer_lines(&"10.0.0.0/8".parse().unwrap(), "x");
        assert_eq!(lines[0].range, "10.0.0.0-10.255.255.255");
        let lines = peer_lines(&"240.0.0.0/4".parse().unwrap(), "x");
        assert_eq!(lines[0].range, "240.0.0.0-255.255.255.255");
    }

    #[test]
    fn arbitrary_ranges_split_into_exact_prefixes() {
        let r: IpRange = "10.0.0.1-10.0.0.6".parse().unwrap();
        let blocks: Vec<String> = prefix_blocks(&r).iter().map(ToString::to_string).collect();
        assert_eq!(
            blocks,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        let r: IpRange = "2001:db8::1-2001:db8::ffff".parse().unwrap();
        let blocks = prefix_blocks(&r);
        assert!(blocks.iter().all(|b| b.as_prefix().is_some()));
        assert_eq!(blocks.first().unwrap().start, r.start);
        assert_eq!(blocks.last().unwrap().end, r.end);
        // Whole spaces.
        let all4: IpRange = "0.0.0.0-255.255.255.255".parse().unwrap();
        assert_eq!(prefix_blocks(&all4).len(), 1);
        let all6: IpRange = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
            .parse()
            .unwrap();
        assert_eq!(prefix_blocks(&all6).len(), 1);
        let one: IpRange = "::1".parse().unwrap();
        assert_eq!(prefix_blocks(&one), vec![one]);
    }

    #[test]
    fn allowed_ranges_cannot_reopen_loopback_or_mapped_addresses() {
        for bad in [
            "127.0.0.1",
            "126.0.0.0-128.0.0.0",
            "::1",
            "::ffff:127.0.0.1",
            "169.254.169.254",
        ] {
            assert!(reopens_forbidden(&bad.parse().unwrap()).is_some(), "{bad}");
        }
        for fine in ["10.0.0.5", "203.0.113.7", "2001:db8::1"] {
            assert_eq!(reopens_forbidden(&fine.parse().unwrap()), None, "{fine}");
        }
    }
}
