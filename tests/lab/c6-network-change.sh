#!/usr/bin/env bash
# C6, a network change mid-call (issue 13): a caller moves from one uplink to another (Wi-Fi to
# mobile: the old link and route disappear, a new interface with a new address comes up) during
# a Relay-only call, and the call must come back <= 5 s after the new path is up, on both sides,
# without anyone doing anything, without a new room or a reload (public/js/recovery.js).
#
# The lab: network namespaces created here (prefix a13-), linked by veths only among themselves,
# never to the machine's own namespace; no namespace has a route out of the lab. "Public"
# addresses are documentation ranges only; the private ones exist only inside the lab.
#
#              a13-srv  203.0.113.10  (coturn + alisay serve)
#                 |
#              a13-inet (router, no NAT) --------- a13-cb 192.0.2.10 (caller B, Chromium)
#               /                 \
#   198.51.100.2 a13-r1 (NAT)    a13-r2 (NAT) 198.51.100.6     (r2 drops spoofed sources)
#   "Wi-Fi"  10.13.1.1 |            | 10.13.2.1  "mobile"
#               wlan0 10.13.1.10   wwan0 10.13.2.10   <- a13-ca (caller A, Chromium):
#                                                      one uplink at a time, moved mid-call
#
# Usage (root): bash tests/lab/c6-network-change.sh [--runs N]
# Needs: target/release/alisay (or ALISAY_BIN), chromium, coturn, nftables, node >= 20 and
# tests/e2e/node_modules (npm ci there). Logs: tests/e2e/out/c6-*.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
fail() { echo "tests/lab/c6-network-change.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "must run as root (it creates network namespaces)"
bin="${ALISAY_BIN:-$root/target/release/alisay}" # what tests/e2e/lib/harness.js runs too
[ -x "$bin" ] || fail "no alisay binary at $bin (cargo build --release)"
[ -x /usr/bin/chromium ] || fail "no /usr/bin/chromium (apt-get install chromium)"
command -v turnserver >/dev/null || fail "no turnserver (apt-get install coturn)"
command -v nft >/dev/null || fail "no nft (apt-get install nftables)"
if [ ! -d "$root/tests/e2e/node_modules/playwright-core" ]; then
  npm ci --prefix "$root/tests/e2e" --no-audit --no-fund --loglevel=error
fi

NS=(a13-inet a13-srv a13-r1 a13-r2 a13-ca a13-cb)
cleanup() {
  for ns in "${NS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup # leftovers of an interrupted run

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
for ns in "${NS[@]}"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
# A veth pair created inside namespace $1 (name $2) with its peer in $3 (name $4): never in
# the machine's own namespace.
link() {
  ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}
link a13-inet i-srv a13-srv eth0
link a13-inet i-cb a13-cb eth0
link a13-inet i-r1 a13-r1 wan
link a13-inet i-r2 a13-r2 wan
link a13-r1 lan a13-ca wlan0

ip -n a13-inet addr add 203.0.113.1/24 dev i-srv
ip -n a13-inet addr add 192.0.2.1/24 dev i-cb
ip -n a13-inet addr add 198.51.100.1/30 dev i-r1
ip -n a13-inet addr add 198.51.100.5/30 dev i-r2
nsx a13-inet sysctl -qw net.ipv4.ip_forward=1

ip -n a13-srv addr add 203.0.113.10/24 dev eth0
ip -n a13-srv route add default via 203.0.113.1
ip -n a13-cb addr add 192.0.2.10/24 dev eth0
ip -n a13-cb route add default via 192.0.2.1

# The two access routers: NAT to their "public" address; the mobile one also drops packets whose
# source is not one of its own subscribers' (as carriers do), so a socket left on the old
# address cannot sneak out through the new uplink.
for r in 1 2; do
  ns=a13-r$r
  ip -n "$ns" addr add "198.51.100.$((r * 4 - 2))/30" dev wan
  ip -n "$ns" route add default via "198.51.100.$((r * 4 - 3))"
  nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
  nsx "$ns" nft -f - <<NFT
table ip a13_router {
  chain forward {
    type filter hook forward priority 0; policy accept;
    iifname != "wan" ip saddr != 10.13.$r.0/24 counter drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
NFT
done
ip -n a13-r1 addr add 10.13.1.1/24 dev lan
ip -n a13-ca addr add 10.13.1.10/24 dev wlan0
ip -n a13-ca route add default via 10.13.1.1

# The lab really is closed: no namespace reaches anything but lab addresses.
for ns in "${NS[@]}"; do
  if ip -n "$ns" route show | grep -Ev '^(default via (203\.0\.113\.1|192\.0\.2\.1|198\.51\.100\.[15]|10\.13\.[12]\.1) |(203\.0\.113\.0/24|192\.0\.2\.0/24|198\.51\.100\.[04]/30|10\.13\.[12]\.0/24) )' | grep -q .; then
    fail "unexpected route in $ns: $(ip -n "$ns" route show | tr '\n' ';')"
  fi
done
ip -n a13-ca route get 203.0.113.10 | grep -q "via 10.13.1.1 dev wlan0" || fail "caller A has no route to the server through a13-r1"
ip -n a13-cb route get 203.0.113.10 | grep -q "via 192.0.2.1 dev eth0" || fail "caller B has no route to the server"

started=$(date +%s%N)
set +e
# node runs in the server's namespace (it starts coturn and alisay there) and in a fresh PID
# namespace, so everything it started dies with it, even after the timeout.
timeout --kill-after=10 600 ip netns exec a13-srv \
  unshare --pid --fork --kill-child --mount-proc -- \
  node "$here/c6-network-change.mjs" "$@"
rc=$?
set -e
ended=$(date +%s%N)
wall_ms=$(( (ended - started) / 1000000 ))
echo "METRIC lab_c6_wall_s $((wall_ms / 1000)).$(printf '%03d' $((wall_ms % 1000)))"
[ "$rc" = 0 ] || echo "tests/lab/c6-network-change.sh: FAILED (exit $rc); logs in tests/e2e/out/c6-*" >&2
exit "$rc"
