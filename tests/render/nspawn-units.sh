#!/usr/bin/env bash
# Runs the rendered units under a real systemd (PID 1 in a systemd-nspawn container) to check
# that the hardening leaves both services working, and prints their live
# `systemd-analyze security` scores. Not part of `cargo test`: a cold run debootstraps a
# Debian tree (~1.5 min, ~450 MB, cached under /var/lib/machines/alisay-render). The Ansible
# role's deployment test covers the same units in CI. docs/deploy.md records the results.
#
#   cargo build && sudo bash tests/render/nspawn-units.sh
#
# Needs root, debootstrap and systemd-container (apt); a debug build (target/debug/alisay). The container has no network
# (--private-network); everything it checks happens on its own loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tree=/var/lib/machines/alisay-render
work=$(mktemp -d)
nspawn_pid=
cleanup() {
  if [ -n "$nspawn_pid" ]; then kill -TERM "$nspawn_pid" 2>/dev/null || true; wait "$nspawn_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$tree/usr/bin/turnserver" ]; then
  mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,coturn,nftables,iproute2,ca-certificates \
    bookworm "$tree" "${mirror:-http://deb.debian.org/debian}"
fi
# The coturn unit loads its nftables table with nft (turn.host_firewall); older trees lack it.
[ -x "$tree/usr/sbin/nft" ] || chroot "$tree" apt-get install -y -q nftables

# The host's files: config, secret (root 0600), a TURN certificate and key (key 0600).
etc=$work/etc-alisay
mkdir -p "$etc/tls"
cat > "$etc/alisay.yaml" <<'EOF'
mode: production
public_origin: "https://call.example.org"
server:
  listen: "127.0.0.1:8787"
turn:
  urls:
    - "turn:127.0.0.1:3478?transport=udp"
    - "turns:127.0.0.1:5349?transport=tcp"
  secret_file: /etc/alisay/turn-secret
  realm: call.example.org
  listening_ips: ["127.0.0.1", "::1"]
  tls_cert: /etc/alisay/tls/fullchain.pem
  tls_key: /etc/alisay/tls/privkey.pem
nginx:
  tls_cert: /etc/alisay/tls/fullchain.pem
  tls_key: /etc/alisay/tls/privkey.pem
EOF
# The config holds allowlisted room ids: root only, like the secret; the units load both
# with LoadCredential=.
chmod 600 "$etc/alisay.yaml"
(umask 077; head -c 48 /dev/urandom | base64 -w 0 > "$etc/turn-secret")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=call.example.org -addext "subjectAltName=DNS:call.example.org,IP:127.0.0.1" \
  -keyout "$etc/tls/privkey.pem" -out "$etc/tls/fullchain.pem" 2>/dev/null
chmod 600 "$etc/tls/privkey.pem"
"$root/target/debug/alisay" render --config "$etc/alisay.yaml" --out "$work/rendered" >/dev/null
# Installed where paths.coturn_nft says (the default), inside the bound /etc/alisay.
install -m 0644 "$work/rendered/nftables/alisay-coturn.nft" "$etc/alisay-coturn.nft"

# The unified cgroup hierarchy, as on a current host: nft finds coturn's cgroup by its path
# under /sys/fs/cgroup (this machine's init is not systemd, so nspawn would pick hybrid).
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -b -D "$tree" --volatile=overlay --register=no --keep-unit --console=passive \
  --private-network \
  --bind-ro="$root/target/debug/alisay:/usr/local/bin/alisay" \
  --bind-ro="$etc:/etc/alisay" \
  --bind-ro="$work/rendered/systemd/alisay.service:/etc/systemd/system/alisay.service" \
  --bind-ro="$work/rendered/systemd/alisay-coturn.service:/etc/systemd/system/alisay-coturn.service" \
  > "$work/nspawn.log" 2>&1 &
nspawn_pid=$!
leader=
for _ in $(seq 1 50); do leader=$(pgrep -P "$nspawn_pid" || true); [ -n "$leader" ] && break; sleep 0.1; done
[ -n "$leader" ] || { cat "$work/nspawn.log"; exit 1; }
inside() { nsenter -t "$leader" -a "$@"; }
for _ in $(seq 1 60); do
  state=$(inside systemctl is-system-running 2>/dev/null || true)
  case $state in running|degraded) break ;; esac
  sleep 0.25
done
echo "container: $state"

inside ip link set lo up
inside systemctl start alisay.service alisay-coturn.service
sleep 1
inside systemctl is-active alisay.service alisay-coturn.service
inside nft list table inet alisay_coturn | grep -F 'socket cgroupv2'
# TURN through the hardened coturn (allocation with issued-style credentials, denied ranges,
# 401s) and the HTTP surface of the hardened server, from inside the container.
inside alisay probe http://127.0.0.1:8787 --no-join --turn-secret-file /etc/alisay/turn-secret \
  --turn "turn:127.0.0.1:3478?transport=udp" | grep -E '^(PASS|FAIL)  (healthz|turn-)|passed' \
  | grep -v 'turn-deny' || true
inside systemd-analyze security --no-pager 2>/dev/null | grep -E 'alisay|coturn'
