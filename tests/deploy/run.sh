#!/usr/bin/env bash
# The single-quoted scripts below run inside the host, which expands their variables there.
# shellcheck disable=SC2016

# The real apply test of the Ansible role (ansible/roles/alisay): boots a Debian bookworm host
# with systemd as PID 1 (systemd-nspawn, no network), makes it a shared host (nginx already
# serving other sites, another service running), applies ansible/site.yml over real SSH,
# applies it again (must report changed=0), proves the other tenants and the distribution's
# nginx and coturn were left alone, runs `alisay probe` and a two-browser call against the
# deployed site from inside the host's network, proves coturn's nftables table (loaded by its
# unit, scoped to coturn's cgroup) drops a relay to a service on the host's own address while a
# relay between two allocations still works and another tenant's nftables table stays as it
# was, then applies two broken configs (each must fail the play without changing anything
# live), the day-2 cases of a shared host (a TURN port or TLS port another tenant's coturn
# holds: refused by the pre-flight before any live change, while that tenant's STUN over UDP
# and TLS is sampled in the background; a binary that exits at start: rolled back), a dry run
# (--check --diff), the host firewall's reload and restart, a check from outside the host
# through the host's input-drop ruleset, an uninstall and re-install (tenants untouched, only
# the documented leftovers remain), and a vaulted TURN secret (must restart both services,
# stay out of the output, and be accepted by TURN).
#
# Run from the repository root, as root, after `cargo build --release`:
#   tests/deploy/run.sh
# Environment: ALISAY_DEPLOY_KEEP=1 leaves the host running at the end (to debug it),
# ALISAY_DEPLOY_TREE (cached tree, default /var/cache/alisay-test/bookworm),
# ALISAY_DEPLOY_MIRROR (Debian mirror for the first build of the tree).
# Facts this relies on: shared/TESTING.md, "A real host with systemd as PID 1".
set -euo pipefail

REPO=$(pwd)
TREE=${ALISAY_DEPLOY_TREE:-/var/cache/alisay-test/bookworm}
MIRROR=${ALISAY_DEPLOY_MIRROR:-http://deb.debian.org/debian}
VENV="${TEST_CACHE_DIR:-/var/cache/alisay-test}/ansible-venv"
BINARY="$REPO/target/release/alisay"

say() { printf '\n=== deploy test: %s\n' "$*"; }
fail() {
    printf '\nDEPLOY TEST FAILED: %s\n' "$*" >&2
    exit 1
}

[[ -f ansible/site.yml && -f tests/deploy/run.sh ]] || fail "run me from the repository root"
[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, systemd-nspawn, nsenter)"
[[ -x $BINARY ]] || fail "$BINARY is missing: run cargo build --release first"

# --- Tools -------------------------------------------------------------------------------
need_apt=()
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-nspawn >/dev/null || need_apt+=(systemd-container)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v ssh >/dev/null || need_apt+=(openssh-client)
command -v nsenter >/dev/null || need_apt+=(util-linux)
command -v ip >/dev/null || need_apt+=(iproute2)
command -v nft >/dev/null || need_apt+=(nftables)
command -v certutil >/dev/null || need_apt+=(libnss3-tools)
[[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
command -v node >/dev/null || fail "node (>= 20) is missing: the browser call uses tests/e2e's playwright-core"
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null ||
    need_apt+=(python3-venv)
if ((${#need_apt[@]})); then
    say "installing ${need_apt[*]}"
    apt-get -o DPkg::Lock::Timeout=300 install -y -q "${need_apt[@]}" >/dev/null
fi

# ansible-core and ansible-lint, pinned in ansible/requirements.txt, in a venv under .cache/.
REQ_SUM=$(sha256sum ansible/requirements.txt | cut -d' ' -f1)
if [[ ! -x $VENV/bin/ansible-playbook || $(cat "$VENV/.requirements" 2>/dev/null) != "$REQ_SUM" ]]; then
    say "installing ansible-core and ansible-lint into $VENV"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r ansible/requirements.txt
    echo "$REQ_SUM" >"$VENV/.requirements"
fi
export PATH="$VENV/bin:$PATH"
export ANSIBLE_CONFIG="$REPO/ansible/ansible.cfg"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOST_KEY_CHECKING=False
export ANSIBLE_LOCAL_TEMP=${TMPDIR:-/tmp}/ansible-local-$$

say "building or reusing the host tree $TREE"
tests/deploy/build-tree.sh "$TREE" "$MIRROR"

# --- Boot the host -----------------------------------------------------------------------
WORK=$(mktemp -d /tmp/alisay-deploy.XXXXXX)
# The namespace standing for "outside the host" (named after the machine: one test at a time).
OUTSIDE_NS=alisay-test-outside
ip netns delete "$OUTSIDE_NS" 2>/dev/null || true
NSPAWN_PID=""
LEADER=""
stop_container() {
    local rc=$?
    if [[ ${ALISAY_DEPLOY_KEEP:-0} == 1 && -n $NSPAWN_PID ]]; then
        echo "deploy test: ALISAY_DEPLOY_KEEP=1: the host keeps running." >&2
        echo "  enter it: nsenter -t $LEADER -a bash; stop it: kill $NSPAWN_PID; files: $WORK" >&2
        exit "$rc"
    fi
    if [[ -S $WORK/ssh-control ]]; then
        ssh -o ControlPath="$WORK/ssh-control" -O exit alisay-test 2>/dev/null || true
    fi
    if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true
        # A clean halt; a second SIGTERM makes nspawn terminate at once; SIGKILL last.
        for _ in $(seq 1 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        if kill -0 "$NSPAWN_PID" 2>/dev/null; then
            echo "deploy test: the container did not halt in 30 s; terminating it" >&2
            kill -TERM "$NSPAWN_PID" 2>/dev/null || true
            sleep 2
            kill -KILL "$NSPAWN_PID" 2>/dev/null || true
        fi
        wait "$NSPAWN_PID" 2>/dev/null || true
    fi
    ip netns delete "$OUTSIDE_NS" 2>/dev/null || true
    rm -rf "$WORK" "$ANSIBLE_LOCAL_TEMP"
    exit "$rc"
}
trap stop_container EXIT
trap 'exit 130' INT TERM

# A private copy: a rebuild of target/ during the test must not change what the runs deploy.
cp "$BINARY" "$WORK/alisay"
ssh-keygen -q -t ed25519 -N '' -C alisay-deploy-test -f "$WORK/id_ed25519"

say "making a test CA and a certificate for localhost / 127.0.0.1"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=Alisay deploy test CA" -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/localhost.key" -out "$WORK/localhost.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n' \
    >"$WORK/ext.cnf"
openssl x509 -req -in "$WORK/localhost.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/ext.cnf" -out "$WORK/localhost.crt" 2>/dev/null

say "booting the host (systemd-nspawn, private network, unified cgroup hierarchy)"
# A current Debian host runs the unified cgroup hierarchy (cgroup v2 at /sys/fs/cgroup), where
# nft finds alisay-coturn's cgroup by its path. Where this machine's init is not systemd, nspawn
# would give the container the legacy hybrid layout (cgroup v2 at /sys/fs/cgroup/unified), in
# which no such path exists: ask for the unified one, as on a real host.
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -b -D "$TREE" --volatile=overlay --register=no --keep-unit --console=passive \
    --private-network --machine=alisay-test \
    --bind-ro="$WORK/id_ed25519.pub:/root/.ssh/authorized_keys" \
    --bind-ro="$WORK/ca.crt:/usr/local/share/ca-certificates/alisay-deploy-test-ca.crt" \
    >"$WORK/console.log" 2>&1 &
NSPAWN_PID=$!
LEADER=""
# The container's PID 1 is nspawn's child once it runs systemd (an earlier child is transient).
for _ in $(seq 1 80); do
    LEADER=$(pgrep -P "$NSPAWN_PID" -x systemd | head -n 1 || true)
    [[ -n $LEADER ]] && break
    sleep 0.25
done
[[ -n $LEADER ]] || { cat "$WORK/console.log" >&2; fail "systemd-nspawn did not start"; }
in_host() { nsenter -t "$LEADER" -a "$@"; }

state=""
for _ in $(seq 1 120); do
    state=$(in_host systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
done
case $state in
running) echo "system state: running" ;;
degraded)
    echo "system state: degraded; failed units:"
    in_host systemctl --failed --no-legend --plain
    ;;
*) fail "the host did not finish booting (state: ${state:-unknown})" ;;
esac

# --- Make it a shared host -----------------------------------------------------------------
# A host has an address besides loopback; coturn refuses to start without one ("Cannot
# configure any meaningful IP listener address"). A veth pair whose two ends both stay inside
# the container stands in for the public interface, with documentation addresses: nothing
# can leave the machine through it.
# Its other end, alisay1, is "the outside": a namespace of its own (OUTSIDE_NS, linked only to
# the container's namespace, never to this machine's) from which the test checks what the
# host firewall lets in, as a caller on the Internet would.
say "giving the host a non-loopback interface (veth pair to an outside namespace of its own)"
ip netns add "$OUTSIDE_NS"
nsenter -t "$LEADER" -n sh -eu -c '
    ip link add alisay0 type veth peer name alisay1
    ip addr add 192.0.2.10/24 dev alisay0
    ip -6 addr add 2001:db8::10/64 dev alisay0 nodad
    ip link set alisay1 netns "$1"
    ip link set alisay0 up
' sh "$OUTSIDE_NS"
ip netns exec "$OUTSIDE_NS" sh -eu -c '
    ip link set lo up
    ip addr add 192.0.2.20/24 dev alisay1
    ip link set alisay1 up
'

say "setting up the host's other tenants: an nginx site on 8080 and a service on 9090"
in_host update-ca-certificates >/dev/null 2>&1
in_host sh -eu -c '
    mkdir -p /srv/unrelated-site /srv/unrelated-service
    echo "unrelated site: $(head -c 12 /dev/urandom | base64)" >/srv/unrelated-site/index.html
    echo "unrelated service: $(head -c 12 /dev/urandom | base64)" >/srv/unrelated-service/index.html
    cat >/etc/nginx/sites-available/unrelated.conf <<EOF
# Another tenant of this nginx: the role must leave it alone.
limit_req_zone \$binary_remote_addr zone=unrelated:1m rate=5r/s;
server {
    listen 127.0.0.1:8080;
    server_name unrelated.test;
    root /srv/unrelated-site;
    location / { limit_req zone=unrelated burst=100 nodelay; }
}
EOF
    ln -s ../sites-available/unrelated.conf /etc/nginx/sites-enabled/unrelated.conf
    cat >/etc/systemd/system/unrelated-http.service <<EOF
[Unit]
Description=Another tenant of this host: a static HTTP server
[Service]
ExecStart=/usr/bin/python3 -m http.server 9090 --bind 127.0.0.1 --directory /srv/unrelated-service
DynamicUser=yes
[Install]
WantedBy=multi-user.target
EOF
    systemctl daemon-reload
    systemctl enable --now -q unrelated-http.service
    nginx -t -q
    systemctl reload nginx.service
'

# The tenants of a real shared host (issue 12): Debian's own coturn for another application,
# with TURN over TLS, on 3478 and 5349 (its config in a drop-in, so the package's conffiles stay
# as shipped); an nginx site that is default_server on 443 with http2 and its own certificate;
# and the host's own nftables ruleset (/etc/nftables.conf, nftables.service enabled: input
# policy drop, SSH, HTTP(S) and the tenant's TURN ports open; another tenant's table with a
# counter on its service's port). coturn and nftables install from the tree's apt cache (the
# host is offline), as an administrator installed them before the appliance came.
say "setting up the host's TLS tenants: Debian's coturn on 3478 and 5349, an nginx default_server on 443"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=tenant.test" -addext "subjectAltName=DNS:tenant.test,DNS:localhost,IP:127.0.0.1" \
    -keyout "$WORK/tenant.key" -out "$WORK/tenant.crt" 2>/dev/null
in_host sh -eu -c 'mkdir -p /etc/tenant-tls && cat >/etc/tenant-tls/tenant.crt' <"$WORK/tenant.crt"
in_host sh -eu -c 'umask 077 && cat >/etc/tenant-tls/tenant.key' <"$WORK/tenant.key"
in_host env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-download install coturn nftables >/dev/null
in_host sh -eu -c 'chgrp turnserver /etc/tenant-tls/tenant.key && chmod 0640 /etc/tenant-tls/tenant.key'
in_host sh -eu -c 'cat >/etc/tenant-turnserver.conf' <<'CONF'
# Another application's TURN server (the tenant): UDP/TCP 3478, TLS 5349.
listening-port=3478
tls-listening-port=5349
cert=/etc/tenant-tls/tenant.crt
pkey=/etc/tenant-tls/tenant.key
min-port=60000
max-port=60100
use-auth-secret
static-auth-secret=tenant-application-secret
realm=tenant.test
no-cli
simple-log
CONF
in_host sh -eu -c 'mkdir -p /etc/systemd/system/coturn.service.d && cat >/etc/systemd/system/coturn.service.d/tenant.conf' <<'CONF'
[Service]
ExecStart=
ExecStart=/usr/bin/turnserver -c /etc/tenant-turnserver.conf --pidfile=
CONF
in_host sh -eu -c 'cat >/etc/nginx/sites-available/tenant-tls.conf' <<'CONF'
# Another tenant: the default HTTPS site of this host.
server {
    listen 443 ssl http2 default_server;
    listen [::]:443 ssl http2 default_server;
    server_name tenant.test;
    ssl_certificate /etc/tenant-tls/tenant.crt;
    ssl_certificate_key /etc/tenant-tls/tenant.key;
    root /srv/unrelated-site;
}
CONF
in_host sh -eu -c 'cat >/etc/nftables.conf' <<'CONF'
#!/usr/sbin/nft -f
# The host's own firewall (its administrator's, not the appliance's).
flush ruleset
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        iif lo accept
        ct state established,related accept
        icmp type echo-request accept
        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, echo-request } accept
        tcp dport { 22, 80, 443, 8443, 8081 } accept
        udp dport 3478 accept
        tcp dport { 3478, 5349 } accept
    }
}
table inet tenant_firewall {
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 9090 counter accept comment "another tenant's rule"
    }
}
CONF
in_host sh -eu -c '
    ln -s ../sites-available/tenant-tls.conf /etc/nginx/sites-enabled/tenant-tls.conf
    systemctl daemon-reload
    systemctl enable -q nftables.service
    systemctl restart nftables.service coturn.service
    nginx -t -q
    systemctl reload nginx.service
'
# The tenant's coturn is up on its TLS port (systemd's "active" is not "listening").
for _ in $(seq 1 40); do
    in_host python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5349), timeout=1).close()' \
        2>/dev/null && break
    sleep 0.25
done

# Everything the role must leave untouched, as one text to compare before and after.
tenant_state() {
    # The tenant's table without its counters (-s), which the requests below move.
    echo "tenant nftables $(in_host nft -s list table inet tenant_firewall | sha256sum | cut -c1-16)"
    echo "host filter table $(in_host nft -s list table inet filter | sha256sum | cut -c1-16)"
    in_host sh -eu -c '
        cd /etc/nginx
        sha256sum nginx.conf sites-available/unrelated.conf sites-available/default sites-available/tenant-tls.conf
        readlink sites-enabled/unrelated.conf sites-enabled/default sites-enabled/tenant-tls.conf
        sha256sum /etc/tenant-turnserver.conf /etc/systemd/system/coturn.service.d/tenant.conf \
            /etc/tenant-tls/tenant.crt /etc/tenant-tls/tenant.key /etc/nftables.conf
        echo "coturn (tenant) MainPID $(systemctl show -P MainPID coturn.service) $(systemctl is-enabled coturn.service)"
        echo "nftables.service $(systemctl is-enabled nftables.service) $(systemctl is-active nftables.service)"
        sha256sum /etc/systemd/system/unrelated-http.service
        echo "nginx MainPID $(systemctl show -P MainPID nginx.service)"
        echo "unrelated-http MainPID $(systemctl show -P MainPID unrelated-http.service)"
        echo "unrelated-http $(systemctl is-active unrelated-http.service)"
    '
    for url in http://127.0.0.1:8080/ http://127.0.0.1:9090/ http://127.0.0.1/; do
        echo "$url $(in_host curl -sS --max-time 5 "$url" | sha256sum | cut -c1-16)"
    done
    echo "https://tenant.test/ (HTTP/$(in_host curl -sS --max-time 5 -k --http2 -o /dev/null -w '%{http_version}' \
        --resolve tenant.test:443:127.0.0.1 https://tenant.test/))"
}
for _ in $(seq 1 40); do in_host curl -fsS -o /dev/null http://127.0.0.1:9090/ 2>/dev/null && break; sleep 0.25; done
in_host curl -fsS --max-time 5 http://127.0.0.1:8080/ | grep -q "unrelated site" ||
    fail "the unrelated nginx site does not answer before the apply"
in_host curl -fsS --max-time 5 http://127.0.0.1:9090/ | grep -q "unrelated service" ||
    fail "the unrelated service does not answer before the apply"
tenant_state >"$WORK/tenants.before"
cat "$WORK/tenants.before"

# --- Ansible -----------------------------------------------------------------------------
# One SSH connection for all tasks (ControlMaster) halves the apply time here (every new
# connection spawns sshd and does a key exchange). TESTING.md warns that a leftover master
# keeps the container from halting: stop_container closes it (`ssh -O exit`) first.
cat >"$WORK/inventory.ini" <<EOF
[alisay]
alisay-test ansible_host=alisay-test ansible_user=root ansible_python_interpreter=/usr/bin/python3

[alisay:vars]
ansible_ssh_private_key_file=$WORK/id_ed25519
ansible_ssh_common_args='-o ProxyCommand="nsenter -t $LEADER -a /usr/sbin/sshd -i" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'
ansible_ssh_args='-o ControlMaster=auto -o ControlPersist=120s -o ControlPath=$WORK/ssh-control'
EOF

say "ansible-lint --profile production"
(cd ansible && ansible-lint --profile production --nocolor) || fail "ansible-lint found problems"

say "ansible-playbook --syntax-check"
ansible-playbook -i "$WORK/inventory.ini" --syntax-check ansible/site.yml ||
    fail "the playbook does not parse"

# Applies the role with the test variables plus "$@"; leaves the log in $WORK/$name.log, the
# PLAY RECAP count in RECAP_CHANGED and the wall time in SECONDS_TAKEN.
apply() {
    local name=$1
    shift
    local start end rc=0
    start=$EPOCHREALTIME
    ansible-playbook -i "$WORK/inventory.ini" ansible/site.yml \
        -e "@tests/deploy/vars.yml" -e "alisay_test_dir=$WORK" \
        -e "alisay_binary_src=$WORK/alisay" "$@" >"$WORK/$name.log" 2>&1 || rc=$?
    end=$EPOCHREALTIME
    SECONDS_TAKEN=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    RECAP_CHANGED=$(sed -n 's/.*alisay-test *: .*changed=\([0-9]*\).*/\1/p' "$WORK/$name.log")
    APPLY_RC=$rc
}
# The message of the task that failed in a run expected to fail (for the reader of the log).
show_failure() {
    python3 - "$WORK/$1.log" <<'PY'
import json, sys
failure = ["(no fatal task in the log)"]
for line in open(sys.argv[1], encoding="utf-8"):
    if line.startswith("fatal: ") and "=> {" in line:
        result = json.loads(line.split("=> ", 1)[1])
        text = (result.get("stderr") or "") + "\n" + (result.get("msg") or "")
        failure = [l for l in text.strip().splitlines() if l.strip()][:4]
print("  the play failed with: " + "\n    ".join(failure))
PY
}
# A secret must never reach the play's output (it runs without -v, as an operator would).
assert_no_secret_in() {
    local secret
    secret=$(in_host cat /etc/alisay/turn-secret)
    [[ -n $secret ]] || fail "the TURN secret file is empty"
    if grep -qF -- "$secret" "$@"; then fail "the TURN secret appears in $*"; fi
}

say "first apply"
apply first
cat "$WORK/first.log"
[[ $APPLY_RC -eq 0 ]] || fail "the first apply failed (rc $APPLY_RC)"
FIRST_TIME=$SECONDS_TAKEN FIRST_CHANGED=$RECAP_CHANGED
[[ ${FIRST_CHANGED:-0} -gt 0 ]] || fail "the first apply changed nothing?"
assert_no_secret_in "$WORK/first.log"
# The coturn package started its own coturn.service on 3478; from now on it must not move.
distro_coturn() {
    echo "coturn.service $(in_host systemctl is-enabled coturn.service 2>&1 || true)" \
        "$(in_host systemctl is-active coturn.service 2>&1 || true)" \
        "MainPID $(in_host systemctl show -P MainPID coturn.service)"
}
distro_coturn >"$WORK/distro-coturn.before"

say "second apply (must change nothing)"
apply second
cat "$WORK/second.log"
[[ $APPLY_RC -eq 0 ]] || fail "the second apply failed (rc $APPLY_RC)"
SECOND_TIME=$SECONDS_TAKEN SECOND_CHANGED=$RECAP_CHANGED
[[ $SECOND_CHANGED == 0 ]] || {
    grep -E '^changed:' "$WORK/second.log" -B3 >&2 || true
    fail "the second apply reported changed=$SECOND_CHANGED"
}

# --- The host after the apply ------------------------------------------------------------
say "checking the host after the apply"
tenant_state >"$WORK/tenants.after"
diff -u "$WORK/tenants.before" "$WORK/tenants.after" ||
    fail "the apply changed another tenant of the host (or restarted nginx instead of reloading)"
echo "other tenants unchanged (config checksums, contents, nginx and service MainPIDs)"

# The distribution's packages: every conffile as shipped (nginx.conf, turnserver.conf, ...).
in_host sh -eu -c '
    for pkg in nginx nginx-common coturn; do
        dpkg-query -W -f="\${Conffiles}\n" "$pkg" | while read -r path sum rest; do
            [ -n "$path" ] || continue
            [ "$rest" = obsolete ] && continue
            [ -e "$path" ] || { echo "missing conffile $path"; exit 1; }
            [ "$(md5sum <"$path" | cut -d" " -f1)" = "$sum" ] || { echo "modified conffile $path"; exit 1; }
        done
    done
' || fail "the role changed a file of the distribution's nginx or coturn"
echo "distribution conffiles of nginx, nginx-common and coturn unmodified"
distro_coturn >"$WORK/distro-coturn.after"
diff -u "$WORK/distro-coturn.before" "$WORK/distro-coturn.after" ||
    fail "the second apply touched the distribution's coturn.service"
echo "distribution's $(cat "$WORK/distro-coturn.after") (as the package left it, untouched)"

for unit in alisay.service alisay-coturn.service; do
    [[ $(in_host systemctl is-active "$unit") == active ]] || {
        in_host journalctl -u "$unit" --no-pager -n 30 >&2
        fail "$unit is not active"
    }
    [[ $(in_host systemctl is-enabled "$unit") == enabled ]] || fail "$unit is not enabled"
done
in_host stat -c '%a %U %n' /etc/alisay/turn-secret | grep -q '^600 root ' ||
    fail "/etc/alisay/turn-secret is not 0600 root"
for f in alisay.service alisay-coturn.service; do
    in_host systemd-analyze security --no-pager "$f" 2>/dev/null | tail -n 1 | sed "s/^/$f: /"
done

say "alisay probe from inside the host"
in_host /usr/local/bin/alisay probe https://localhost:8443 --turn-secret-file /etc/alisay/turn-secret \
    >"$WORK/probe.log" 2>&1 || { cat "$WORK/probe.log"; fail "alisay probe failed"; }
cat "$WORK/probe.log"
assert_no_secret_in "$WORK/probe.log"

say "a browser call through the deployed stack (two Chromium callers, Relay-only)"
[[ -d tests/e2e/node_modules/playwright-core ]] || npm ci --prefix tests/e2e --no-audit --no-fund
# Only the network namespace is the host's: Chromium and node come from this machine and reach
# nothing but the deployed site and TURN server.
ALISAY_DEPLOY_ORIGIN=https://localhost:8443 ALISAY_DEPLOY_CA="$WORK/ca.crt" \
    timeout --kill-after=10 180 nsenter -t "$LEADER" -n node tests/deploy/browser-call.mjs ||
    fail "the browser call through the deployed stack failed"

# --- coturn's nftables table -------------------------------------------------------------
# vars.yml lists the host's own address 192.0.2.10 in turn.allowed_peer_ips (two browsers'
# relays talk to each other there), so coturn ALONE relays to any service on that address:
# only the unit's nftables table stands between TURN users and the host's other services.
say "coturn's nftables table: loaded by its unit, scoped to its cgroup, dropping relays to the host's services"
in_host nft list table inet alisay_coturn >"$WORK/nft-table.txt" ||
    fail "the table inet alisay_coturn is not loaded after the apply"
cat "$WORK/nft-table.txt"
grep -qF 'socket cgroupv2 level 2 "system.slice/alisay-coturn.service" fib daddr type local jump coturn_to_host' \
    "$WORK/nft-table.txt" || fail "the table does not match coturn's cgroup"
grep -qF 'udp dport 49160-49200 accept' "$WORK/nft-table.txt" || fail "the table does not let the relay range through"
coturn_pid=$(in_host systemctl show -P MainPID alisay-coturn.service)
in_host grep -qx '0::/system.slice/alisay-coturn.service' "/proc/$coturn_pid/cgroup" ||
    fail "coturn (PID $coturn_pid) is not in the cgroup the table names: $(in_host cat "/proc/$coturn_pid/cgroup")"
nft_enabled=$(in_host systemctl is-enabled nftables.service 2>&1 || true)
[[ $nft_enabled == enabled ]] || fail "nftables.service is '$nft_enabled': the host's administrator enabled it, the role must leave it"
echo "coturn's cgroup matches; the host's own nftables.service $nft_enabled; the tenant's table is beside it"

# Another tenant's service on the host's own (non-loopback) address, on a port outside the
# relay range: a UDP echo in its own transient unit (not in coturn's cgroup).
in_host systemd-run --quiet --unit=tenant-udp-echo /usr/bin/turnutils_peer -L 192.0.2.10 -p 9999
# 0 when a datagram from a process outside coturn comes back from the echo service.
host_udp_echoes() {
    in_host python3 - <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for _ in range(20):
    s.sendto(b"ping", ("192.0.2.10", 9999))
    try:
        if s.recvfrom(64)[0] == b"ping":
            sys.exit(0)
    except OSError:
        pass
sys.exit(1)
PY
}
host_udp_echoes || fail "the tenant's UDP echo service on 192.0.2.10:9999 does not answer"
# "<sent> <received>" of turnutils_uclient relaying through the deployed coturn (port 3578)
# with TURN REST credentials made from the host's secret file as alisay makes them (the secret
# is read from the file, never an argument); "$@": the peer (-e ADDR -r PORT, or -y for a
# second allocation, i.e. the relay port range).
relay_totals() {
    in_host bash -c '
        read -r user cred < <(python3 -c "
import base64, hashlib, hmac, time
secret = open(\"/etc/alisay/turn-secret\", \"rb\").read().strip()
user = \"%d:deploy-nft\" % (time.time() + 600)
print(user, base64.b64encode(hmac.new(secret, user.encode(), hashlib.sha1).digest()).decode())
")
        timeout 20 turnutils_uclient -n 3 -m 1 -c -X -p 3578 -u "$user" -w "$cred" "$@" 127.0.0.1 2>&1 || true
    ' relay "$@" | sed -n 's/.*tot_send_msgs=\([0-9]*\), tot_recv_msgs=\([0-9]*\).*/\1 \2/p' | tail -n 1
}
nft_dropped() {
    in_host nft list chain inet alisay_coturn coturn_to_host | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'
}
drops_before=$(nft_dropped)
to_service=$(relay_totals -e 192.0.2.10 -r 9999)
drops_after=$(nft_dropped)
[[ $to_service == "3 0" ]] || fail "relay to the host's service 192.0.2.10:9999: sent/received '$to_service', want '3 0'"
((drops_after > drops_before)) || fail "the table's drop counter did not move ($drops_before -> $drops_after)"
between=$(relay_totals -y)
[[ $between == "6 6" ]] || fail "relay between two allocations (the relay port range): '$between', want '6 6'"
host_udp_echoes || fail "the table blocked a process outside coturn's cgroup"
echo "relay to 192.0.2.10:9999 echoed ${to_service#* }/${to_service% *} (the table's drop counter: +$((drops_after - drops_before)));" \
    "between two allocations ${between#* }/${between% *}; other processes still reach the service"

# The negative control: without the table, the same coturn relays to the service.
in_host nft delete table inet alisay_coturn
without=$(relay_totals -e 192.0.2.10 -r 9999)
[[ $without == "3 3" ]] || fail "without the table, relay to the host's service gave '$without', want '3 3' (is the test still testing the table?)"
echo "without the table (deleted by hand): the relay reached the service, ${without#* }/${without% *} echoed"

# A restart loads the table again, for the new cgroup (ExecStopPost's delete of the missing
# table is not a failure); the relay is dropped again, counted by the fresh table.
in_host systemctl restart alisay-coturn.service
[[ $(in_host systemctl is-active alisay-coturn.service) == active ]] || fail "alisay-coturn did not restart"
[[ $(in_host systemctl show -P MainPID alisay-coturn.service) != "$coturn_pid" ]] || fail "alisay-coturn did not restart"
# `active` means coturn's process started, not that it listens yet: until it does, the client
# gets no allocation and prints no totals (empty), so retry that case only (bounded).
for _ in $(seq 1 20); do
    after_restart=$(relay_totals -e 192.0.2.10 -r 9999)
    [[ -z $after_restart ]] || break
    sleep 0.5
done
[[ $after_restart == "3 0" ]] || fail "after a restart, relay to the host's service gave '$after_restart', want '3 0'"
drops_restart=$(nft_dropped)
((drops_restart > 0)) || fail "the reloaded table dropped nothing"
echo "after a restart (new cgroup): the table is back, relay to the service 0/3 (drop counter $drops_restart)"

# A stopped coturn takes its table with it; a start brings it back. The tenant's table stays.
in_host systemctl stop alisay-coturn.service
if in_host nft list table inet alisay_coturn >/dev/null 2>&1; then fail "the table outlived a stopped coturn"; fi
in_host systemctl start alisay-coturn.service
in_host nft list table inet alisay_coturn >/dev/null || fail "starting coturn did not load the table"
in_host systemctl stop tenant-udp-echo.service
tenant_state >"$WORK/tenants.after-nft"
diff -u "$WORK/tenants.before" "$WORK/tenants.after-nft" ||
    fail "coturn's table came and went, but another tenant's state changed"
echo "stop removes the table, start loads it; the tenant's nftables table and services unchanged"

# --- Broken configs fail the play and change nothing live ------------------------------------
live_state() {
    in_host sh -eu -c '
        sha256sum /usr/local/bin/alisay /etc/alisay/alisay.yaml /etc/alisay/turn-secret \
            /etc/nginx/sites-available/alisay.conf /etc/systemd/system/alisay.service \
            /etc/systemd/system/alisay-coturn.service /etc/alisay/alisay-coturn.nft
        ls /etc/nginx/sites-available /etc/nginx/sites-enabled
        for u in nginx alisay alisay-coturn; do echo "$u $(systemctl show -P MainPID $u.service)"; done
    '
}
live_state >"$WORK/live.before"

say "apply with an invalid config (http:// origin in production): must fail in staging"
apply bad-config -e '{"alisay_config": {"mode": "production", "public_origin": "http://localhost:8443", "turn": {"secret_file": "/etc/alisay/turn-secret"}}}'
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/bad-config.log"; fail "an invalid config did not fail the play"; }
if ! grep -q "public_origin" "$WORK/bad-config.log" || ! grep -q "the variable alisay_config" "$WORK/bad-config.log" ||
    grep -q "/var/lib/alisay-deploy/alisay.yaml" "$WORK/bad-config.log"; then
    cat "$WORK/bad-config.log"
    fail "the failure does not name public_origin in the variable alisay_config (or names the staged file)"
fi
live_state >"$WORK/live.after-bad-config"
diff -u "$WORK/live.before" "$WORK/live.after-bad-config" || fail "the invalid config changed live files"
show_failure bad-config
echo "failed as it should (changed=$RECAP_CHANGED); nothing live changed"

say "apply with a site nginx refuses (missing certificate): the previous site must come back"
apply bad-site -e '{"alisay_config": {"mode": "production", "public_origin": "https://localhost:8443", "turn": {"urls": ["turn:localhost:3578?transport=udp"], "secret_file": "/etc/alisay/turn-secret", "listening_port": 3578}, "nginx": {"https_port": 8443, "http_port": 8081, "tls_cert": "/etc/alisay/missing.crt", "tls_key": "/etc/alisay/localhost.key"}}}'
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/bad-site.log"; fail "a site nginx refuses did not fail the play"; }
grep -q 'nginx -t failed' "$WORK/bad-site.log" ||
    { cat "$WORK/bad-site.log"; fail "the failure is not nginx -t refusing the site"; }
live_state >"$WORK/live.after-bad-site"
diff -u "$WORK/live.before" "$WORK/live.after-bad-site" || fail "the refused site changed live files"
in_host nginx -t -q || fail "nginx's configuration is broken after the refused site"
tenant_state >"$WORK/tenants.after-bad"
diff -u "$WORK/tenants.before" "$WORK/tenants.after-bad" || fail "the refused site disturbed another tenant"
show_failure bad-site
echo "failed as it should; previous site restored, nginx not reloaded, nothing live changed"

# --- Day 2 on a running deployment: the tenant's TURN server never notices -----------------
# The tenant's coturn answers STUN over UDP (3478) and TLS (5349) at every moment of the day-2
# runs: a sampler inside the host sends a Binding request on each every ~0.3 s from a fresh
# socket (a new source port each time, so a second socket sharing the port with SO_REUSEPORT
# would take its share of the requests) and writes one line per sample.
in_host sh -eu -c 'cat >/root/stun-sampler.py' <<'PY'
import os, socket, ssl, sys, time
out, stop = sys.argv[1], sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def request():
    tx = os.urandom(12)
    return tx, b"\x00\x01\x00\x00\x21\x12\xa4\x42" + tx
def udp():
    tx, msg = request()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(msg, ("127.0.0.1", 3478))
        return s.recv(1500)[8:20] == tx
def tls():
    tx, msg = request()
    with socket.create_connection(("127.0.0.1", 5349), timeout=2) as raw:
        with ctx.wrap_socket(raw) as s:
            s.settimeout(2)
            s.sendall(msg)
            return s.recv(1500)[8:20] == tx
deadline = time.time() + 900
with open(out, "a") as f:
    while not os.path.exists(stop) and time.time() < deadline:
        for name, probe in (("udp", udp), ("tls", tls)):
            try:
                ok = probe()
            except Exception:
                ok = False
            f.write("%.2f %s %s\n" % (time.time(), name, "ok" if ok else "FAIL"))
            f.flush()
        time.sleep(0.3)
PY
in_host rm -f /root/stun-samples /root/stun-stop
in_host python3 /root/stun-sampler.py /root/stun-samples /root/stun-stop &
SAMPLER_PID=$!
stop_sampler() {
    in_host touch /root/stun-stop
    for _ in $(seq 1 40); do kill -0 "$SAMPLER_PID" 2>/dev/null || break; sleep 0.25; done
    kill "$SAMPLER_PID" 2>/dev/null || true
    wait "$SAMPLER_PID" 2>/dev/null || true
}

live_files() {
    in_host sh -eu -c '
        sha256sum /usr/local/bin/alisay /etc/alisay/alisay.yaml /etc/alisay/turn-secret \
            /etc/nginx/sites-available/alisay.conf /etc/systemd/system/alisay.service \
            /etc/systemd/system/alisay-coturn.service /etc/alisay/alisay-coturn.nft \
            /etc/systemd/system/alisay-coturn.service.d/alisay-nftables.conf
        ls /etc/nginx/sites-available /etc/nginx/sites-enabled
    '
}
live_state >"$WORK/live.before-day2"
in_host stat -c '%a %U %n' /etc/alisay/alisay.yaml | grep -q '^600 root ' ||
    fail "/etc/alisay/alisay.yaml is not 0600 root: $(in_host stat -c '%a %U' /etc/alisay/alisay.yaml)"
echo "/etc/alisay/alisay.yaml is 0600 root (LoadCredential= reads it as root)"

GOOD_TURN='"secret_file": "/etc/alisay/turn-secret", "relay_ips": ["192.0.2.10", "2001:db8::10"], "allowed_peer_ips": ["192.0.2.10", "2001:db8::10"]'
GOOD_NGINX='"nginx": {"https_port": 8443, "http_port": 8081, "tls_cert": "/etc/alisay/localhost.crt", "tls_key": "/etc/alisay/localhost.key"}'

say "day 2: move TURN onto the tenant's UDP/TCP port 3478 (running deployment): the pre-flight must refuse"
apply day2-udp -e "{\"alisay_config\": {\"mode\": \"production\", \"public_origin\": \"https://localhost:8443\", \"turn\": {\"urls\": [\"turn:localhost:3478?transport=udp\"], \"listening_port\": 3478, $GOOD_TURN}, $GOOD_NGINX}}"
DAY2_UDP_TIME=$SECONDS_TAKEN
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/day2-udp.log"; fail "moving TURN onto a taken port did not fail the play"; }
for want in '3478/udp (turn.listening_port) is already held by turnserver' 'unit coturn.service' 'change turn.listening_port'; do
    grep -qF "$want" "$WORK/day2-udp.log" || { cat "$WORK/day2-udp.log"; fail "the pre-flight failure does not say '$want'"; }
done
live_state >"$WORK/live.after-day2-udp"
diff -u "$WORK/live.before-day2" "$WORK/live.after-day2-udp" || fail "the refused port change changed the live deployment"
show_failure day2-udp
echo "refused before any live change (${DAY2_UDP_TIME}s); files and PIDs unchanged"

say "day 2: TURN over TLS on the tenant's TLS port 5349: the pre-flight must refuse"
apply day2-tls -e "{\"alisay_config\": {\"mode\": \"production\", \"public_origin\": \"https://localhost:8443\", \"turn\": {\"urls\": [\"turn:localhost:3578?transport=udp\", \"turns:localhost:5349?transport=tcp\"], \"listening_port\": 3578, \"tls_listening_port\": 5349, \"tls_cert\": \"/etc/alisay/localhost.crt\", \"tls_key\": \"/etc/alisay/localhost.key\", $GOOD_TURN}, $GOOD_NGINX}}"
DAY2_TLS_TIME=$SECONDS_TAKEN
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/day2-tls.log"; fail "TURN over TLS on a taken port did not fail the play"; }
for want in '5349/tcp (turn.tls_listening_port) is already held by turnserver' 'unit coturn.service' 'change turn.tls_listening_port'; do
    grep -qF "$want" "$WORK/day2-tls.log" || { cat "$WORK/day2-tls.log"; fail "the pre-flight failure does not say '$want'"; }
done
live_state >"$WORK/live.after-day2-tls"
diff -u "$WORK/live.before-day2" "$WORK/live.after-day2-tls" || fail "the refused TLS port changed the live deployment"
show_failure day2-tls
echo "refused before any live change (${DAY2_TLS_TIME}s); files and PIDs unchanged"

say "day 2: a binary that exits at start (a failure after the first live change): must be rolled back"
# The same binary, except that `serve` exits at once: it passes staging (check, render), is
# installed, restarted, and never listens. It runs the real one (a root-only copy outside
# the role's paths) for everything else.
in_host install -m 0755 /usr/local/bin/alisay /opt/alisay-real
printf '#!/bin/sh\nif [ "$1" = serve ]; then echo "injected failure: serve exits at start" >&2; exit 1; fi\nexec /opt/alisay-real "$@"\n' \
    >"$WORK/alisay-broken"
chmod 0755 "$WORK/alisay-broken"
live_files >"$WORK/files.before-broken"
apply day2-broken -e "alisay_binary_src=$WORK/alisay-broken" -e alisay_listen_timeout=6
DAY2_BROKEN_TIME=$SECONDS_TAKEN
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/day2-broken.log"; fail "a binary that exits at start did not fail the play"; }
for want in 'rolled back to the previous one' 'restored /usr/local/bin/alisay' 'restarted alisay.service' 'server.listen'; do
    grep -qF "$want" "$WORK/day2-broken.log" || { cat "$WORK/day2-broken.log"; fail "the rollback does not say '$want'"; }
done
live_files >"$WORK/files.after-broken"
diff -u "$WORK/files.before-broken" "$WORK/files.after-broken" || fail "the rollback did not restore the previous files"
in_host rm -f /opt/alisay-real
for _ in $(seq 1 40); do
    in_host curl -fsS --max-time 2 -o /dev/null https://localhost:8443/healthz 2>/dev/null && break
    sleep 0.25
done
in_host curl -fsS --max-time 5 https://localhost:8443/healthz | grep -q '"ok":true' ||
    fail "the previous deployment does not answer after the rollback"
in_host /usr/local/bin/alisay probe https://localhost:8443 --turn-secret-file /etc/alisay/turn-secret \
    >"$WORK/probe-after-rollback.log" 2>&1 || { cat "$WORK/probe-after-rollback.log"; fail "alisay probe fails after the rollback"; }
show_failure day2-broken
echo "rolled back in ${DAY2_BROKEN_TIME}s; the previous binary answers: $(tail -n 1 "$WORK/probe-after-rollback.log")"

stop_sampler
in_host cat /root/stun-samples >"$WORK/stun-samples"
STUN_UDP_OK=$(grep -c ' udp ok$' "$WORK/stun-samples" || true)
STUN_UDP_ALL=$(grep -c ' udp ' "$WORK/stun-samples" || true)
STUN_TLS_OK=$(grep -c ' tls ok$' "$WORK/stun-samples" || true)
STUN_TLS_ALL=$(grep -c ' tls ' "$WORK/stun-samples" || true)
echo "the tenant's STUN during the day-2 runs: UDP $STUN_UDP_OK/$STUN_UDP_ALL, TLS $STUN_TLS_OK/$STUN_TLS_ALL answered"
((STUN_UDP_ALL >= 20 && STUN_TLS_ALL >= 20)) || fail "too few STUN samples ($STUN_UDP_ALL, $STUN_TLS_ALL)"
[[ $STUN_UDP_OK == "$STUN_UDP_ALL" && $STUN_TLS_OK == "$STUN_TLS_ALL" ]] || {
    grep FAIL "$WORK/stun-samples" | head >&2
    fail "the tenant's TURN server missed STUN requests during the day-2 runs"
}

say "dry run on the deployed host: --check --diff with a changed relay range"
live_state >"$WORK/live.before-check"
apply check-diff --check --diff -e "{\"alisay_config\": {\"mode\": \"production\", \"public_origin\": \"https://localhost:8443\", \"server\": {\"listen\": \"127.0.0.1:8787\"}, \"turn\": {\"urls\": [\"turn:localhost:3578?transport=udp\", \"turn:localhost:3578?transport=tcp\"], \"listening_port\": 3578, \"max_port\": 49210, $GOOD_TURN}, $GOOD_NGINX}}"
CHECK_TIME=$SECONDS_TAKEN CHECK_CHANGED=$RECAP_CHANGED
[[ $APPLY_RC -eq 0 ]] || { cat "$WORK/check-diff.log"; fail "--check --diff failed (rc $APPLY_RC)"; }
grep -qF '"+max-port=49210"' "$WORK/check-diff.log" || { cat "$WORK/check-diff.log"; fail "--check --diff does not show the coturn config's diff"; }
grep -qF '"-max-port=49200"' "$WORK/check-diff.log" || fail "--check --diff does not show the old line"
live_state >"$WORK/live.after-check"
diff -u "$WORK/live.before-check" "$WORK/live.after-check" || fail "--check --diff changed the host"
assert_no_secret_in "$WORK/check-diff.log"
echo "exit 0 in ${CHECK_TIME}s, would change $CHECK_CHANGED, diff shown (max-port=49200 -> 49210), nothing changed"

# --- The host's firewall reload -----------------------------------------------------------
say "the host's firewall: systemctl reload nftables (flush ruleset) must not leave coturn relaying to the host"
in_host systemctl reload nftables.service
for _ in $(seq 1 20); do in_host nft list table inet alisay_coturn >/dev/null 2>&1 && break; sleep 0.25; done
in_host nft list table inet alisay_coturn >/dev/null 2>&1 ||
    fail "after the host's firewall reload, coturn's table is gone"
in_host systemd-run --quiet --unit=tenant-udp-echo2 /usr/bin/turnutils_peer -L 192.0.2.10 -p 9999
sleep 0.5
after_reload=$(relay_totals -e 192.0.2.10 -r 9999)
[[ $after_reload == "3 0" ]] || fail "after the host's firewall reload, relay to the host's service gave '$after_reload', want '3 0'"
echo "after the reload: the table is back (ReloadPropagatedFrom=nftables.service), relay to the host's service 0/3"

say "the host's firewall: systemctl restart nftables removes the table; the next run repairs it and says so"
in_host systemctl restart nftables.service
table_missing=yes
if in_host nft list table inet alisay_coturn >/dev/null 2>&1; then table_missing=no; fi
apply repair
REPAIR_TIME=$SECONDS_TAKEN REPAIR_CHANGED=$RECAP_CHANGED
[[ $APPLY_RC -eq 0 ]] || { cat "$WORK/repair.log"; fail "the run after the firewall restart failed"; }
if [[ $table_missing == yes ]]; then
    if ! grep -q 'REPAIRED: the table inet alisay_coturn was missing' "$WORK/repair.log" || [[ $REPAIR_CHANGED != 1 ]]; then
        cat "$WORK/repair.log"
        fail "the run did not repair coturn's missing table (changed=$REPAIR_CHANGED)"
    fi
else
    [[ $REPAIR_CHANGED == 0 ]] || { cat "$WORK/repair.log"; fail "the table survived, yet the run changed $REPAIR_CHANGED"; }
fi
repaired=$(relay_totals -e 192.0.2.10 -r 9999)
[[ $repaired == "3 0" ]] || fail "after the repair, relay to the host's service gave '$repaired', want '3 0'"
in_host systemctl stop tenant-udp-echo2.service
echo "repaired by the next run (${REPAIR_TIME}s, changed=$REPAIR_CHANGED); relay to the host's service 0/3"

# --- From outside the host ---------------------------------------------------------------
say "from outside the host: alisay check --listeners --reach, through the host's input-drop ruleset"
in_host cat /etc/alisay/alisay.yaml >"$WORK/outside.yaml"
chmod 0600 "$WORK/outside.yaml"
rc=0
ip netns exec "$OUTSIDE_NS" "$WORK/alisay" check --config "$WORK/outside.yaml" --listeners --reach 192.0.2.10 \
    >"$WORK/reach-closed.log" 2>&1 || rc=$?
cat "$WORK/reach-closed.log"
[[ $rc -eq 1 ]] || fail "the outside check passed (rc $rc) while the host firewall drops 3578/udp"
grep -qF 'FAIL  3578/udp unreachable from outside: open it in the host firewall' "$WORK/reach-closed.log" ||
    fail "the outside check does not name 3578/udp"
grep -qF 'PASS  8443/tcp' "$WORK/reach-closed.log" || fail "the outside check does not see the open 8443/tcp"
in_host nft add rule inet filter input udp dport 3578 accept
in_host nft add rule inet filter input tcp dport 3578 accept
ip netns exec "$OUTSIDE_NS" "$WORK/alisay" check --config "$WORK/outside.yaml" --listeners --reach 192.0.2.10 \
    >"$WORK/reach-open.log" 2>&1 || { cat "$WORK/reach-open.log"; fail "the outside check fails with the ports open"; }
in_host systemctl reload nftables.service
echo "closed: rc 1 naming 3578/udp and 3578/tcp; opened: $(grep -c '^PASS' "$WORK/reach-open.log") ports reachable"

# --- Uninstall, then install again ---------------------------------------------------------
say "uninstall (alisay_state: absent)"
apply uninstall -e alisay_state=absent
UNINSTALL_TIME=$SECONDS_TAKEN UNINSTALL_CHANGED=$RECAP_CHANGED
[[ $APPLY_RC -eq 0 ]] || { cat "$WORK/uninstall.log"; fail "the uninstall failed"; }
grep -q 'Alisay Call was removed from this host' "$WORK/uninstall.log" || fail "the uninstall does not say what it left"
# Everything with the appliance's name on the host, minus the test's own CA (bind-mounted).
in_host sh -c '
    find / -xdev \( -path /proc -o -path /sys -o -path /var/cache/apt \) -prune -o -name "*alisay*" -print 2>/dev/null
    ls -d /etc/alisay /var/lib/alisay /var/lib/alisay-deploy /run/alisay-coturn 2>/dev/null
    nft list tables | grep alisay
    systemctl list-units --all --no-legend --plain "alisay*" | cut -d" " -f1
' | grep -v -e 'alisay-deploy-test-ca' -e '^/root/stun-' -e '^/\.alisay-test-tree-' | sort >"$WORK/leftovers" || true
cat "$WORK/leftovers"
printf '%s\n' /var/log/nginx/alisay.access.log /var/log/nginx/alisay.error.log | sort >"$WORK/leftovers.documented"
diff -u "$WORK/leftovers.documented" "$WORK/leftovers" || fail "the uninstall left something the docs do not list"
tenant_state >"$WORK/tenants.after-uninstall"
diff -u "$WORK/tenants.before" "$WORK/tenants.after-uninstall" || fail "the uninstall disturbed a tenant"
echo "removed in ${UNINSTALL_TIME}s (changed=$UNINSTALL_CHANGED); left: $(tr '\n' ' ' <"$WORK/leftovers")(the documented logs); tenants unchanged"

say "re-install"
apply reinstall
REINSTALL_TIME=$SECONDS_TAKEN REINSTALL_CHANGED=$RECAP_CHANGED
[[ $APPLY_RC -eq 0 ]] || { cat "$WORK/reinstall.log"; fail "the re-install failed"; }
tenant_state >"$WORK/tenants.after-reinstall"
diff -u "$WORK/tenants.before" "$WORK/tenants.after-reinstall" || fail "the re-install disturbed a tenant"
echo "re-installed in ${REINSTALL_TIME}s (changed=$REINSTALL_CHANGED); probe passed; tenants' files and PIDs unchanged"

say "apply a vaulted TURN secret and a config without generated rooms: both services restart"
VAULT_SECRET=$(head -c 36 /dev/urandom | base64 | tr -d '/+=')
printf '{"alisay_turn_secret": "%s"}\n' "$VAULT_SECRET" >"$WORK/vault.json"
chmod 0600 "$WORK/vault.json"
pids_before=$(in_host systemctl show -P MainPID alisay.service alisay-coturn.service)
apply rotate -e "@$WORK/vault.json" -e '{"alisay_config": {"mode": "production", "public_origin": "https://localhost:8443", "rooms": {"generated": {"enabled": false}}, "turn": {"urls": ["turn:localhost:3578?transport=udp", "turn:localhost:3578?transport=tcp"], "secret_file": "/etc/alisay/turn-secret", "listening_port": 3578, "relay_ips": ["192.0.2.10", "2001:db8::10"], "allowed_peer_ips": ["192.0.2.10", "2001:db8::10"]}, "nginx": {"https_port": 8443, "http_port": 8081, "tls_cert": "/etc/alisay/localhost.crt", "tls_key": "/etc/alisay/localhost.key"}}}'
[[ $APPLY_RC -eq 0 ]] || { cat "$WORK/rotate.log"; fail "applying a vaulted secret failed"; }
[[ $(in_host cat /etc/alisay/turn-secret) == "$VAULT_SECRET" ]] ||
    fail "/etc/alisay/turn-secret does not hold alisay_turn_secret"
if grep -qF -- "$VAULT_SECRET" "$WORK/rotate.log"; then fail "alisay_turn_secret appears in the play's output"; fi
[[ $(in_host systemctl show -P MainPID alisay.service alisay-coturn.service) != "$pids_before" ]] ||
    fail "a new TURN secret did not restart the services"
# The role's probe ran without a join (no generated rooms) and still checked TURN with the new
# secret: the credentials it made from the file were accepted.
if ! grep -q 'SKIP  join' "$WORK/rotate.log" ||
    ! grep -q 'PASS  turn-allocate turn:localhost:3578?transport=udp' "$WORK/rotate.log"; then
    cat "$WORK/rotate.log"
    fail "the probe did not check TURN without a join"
fi
echo "changed=$RECAP_CHANGED; the new secret is in place, unseen in the output, and TURN accepts it"

distro_coturn >"$WORK/distro-coturn.end"
diff -u "$WORK/distro-coturn.before" "$WORK/distro-coturn.end" ||
    fail "the later applies touched the distribution's coturn.service"

say "summary"
printf 'first apply:  %6ss  changed=%s\n' "$FIRST_TIME" "$FIRST_CHANGED"
printf 'second apply: %6ss  changed=%s\n' "$SECOND_TIME" "$SECOND_CHANGED"
printf 'day 2, TURN on the tenant UDP port: refused by the pre-flight in %ss\n' "$DAY2_UDP_TIME"
printf 'day 2, TURN TLS on the tenant TLS port: refused by the pre-flight in %ss\n' "$DAY2_TLS_TIME"
printf 'day 2, binary exits at start: rolled back in %ss\n' "$DAY2_BROKEN_TIME"
printf "tenant's STUN during day 2: UDP %s/%s, TLS %s/%s answered\n" "$STUN_UDP_OK" "$STUN_UDP_ALL" "$STUN_TLS_OK" "$STUN_TLS_ALL"
printf -- '--check --diff: %ss, would change %s, changed nothing\n' "$CHECK_TIME" "$CHECK_CHANGED"
printf 'repair after nftables restart: %ss changed=%s\n' "$REPAIR_TIME" "$REPAIR_CHANGED"
printf 'uninstall: %ss changed=%s; re-install: %ss changed=%s\n' "$UNINSTALL_TIME" "$UNINSTALL_CHANGED" "$REINSTALL_TIME" "$REINSTALL_CHANGED"
printf 'coturn relay to a host service: %s/3 echoed without the table, %s/3 with it (drop counter +%s, and %s after a restart)\n' \
    "${without#* }" "${to_service#* }" "$((drops_after - drops_before))" "$drops_restart"
echo "deploy test passed"
