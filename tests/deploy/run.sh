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
# was, then applies three broken configs (each must fail the play without changing anything
# live) and a vaulted TURN secret (must restart both services, stay out of the output, and be
# accepted by TURN).
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
say "giving the host a non-loopback interface (veth pair inside its own network namespace)"
nsenter -t "$LEADER" -n sh -eu -c '
    ip link add alisay0 type veth peer name alisay1
    ip addr add 192.0.2.10/24 dev alisay0
    ip -6 addr add 2001:db8::10/64 dev alisay0 nodad
    ip link set alisay1 up
    ip link set alisay0 up
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

# Another tenant's nftables rules (its own table, with a counter on its service's port). This
# machine's nft loads it into the host's network namespace: the host itself has no nft until
# the role installs nftables. The role and alisay-coturn must never touch it (not even a
# `flush ruleset`).
nsenter -t "$LEADER" -n nft -f - <<'EOF'
table inet tenant_firewall {
    chain input {
        type filter hook input priority filter; policy accept;
        tcp dport 9090 counter accept comment "another tenant's rule"
    }
}
EOF

# Everything the role must leave untouched, as one text to compare before and after.
tenant_state() {
    # The tenant's table without its counters (-s), which the requests below move.
    echo "tenant nftables $(nsenter -t "$LEADER" -n nft -s list table inet tenant_firewall | sha256sum | cut -c1-16)"
    in_host sh -eu -c '
        cd /etc/nginx
        sha256sum nginx.conf sites-available/unrelated.conf sites-available/default
        readlink sites-enabled/unrelated.conf sites-enabled/default
        sha256sum /etc/systemd/system/unrelated-http.service
        echo "nginx MainPID $(systemctl show -P MainPID nginx.service)"
        echo "unrelated-http MainPID $(systemctl show -P MainPID unrelated-http.service)"
        echo "unrelated-http $(systemctl is-active unrelated-http.service)"
    '
    for url in http://127.0.0.1:8080/ http://127.0.0.1:9090/ http://127.0.0.1/; do
        echo "$url $(in_host curl -sS --max-time 5 "$url" | sha256sum | cut -c1-16)"
    done
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
[[ $nft_enabled == disabled ]] || fail "nftables.service is '$nft_enabled': the role must leave it as Debian ships it"
echo "coturn's cgroup matches; nftables.service $nft_enabled (as shipped); the tenant's table is beside it"

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
grep -q 'public_origin' "$WORK/bad-config.log" ||
    { cat "$WORK/bad-config.log"; fail "the failure does not name public_origin"; }
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

say "apply with the TURN port the distribution's coturn holds (3478): must fail before live changes"
in_host systemctl stop alisay-coturn.service
live_state >"$WORK/live.before-port"
apply port-clash -e '{"alisay_config": {"mode": "production", "public_origin": "https://localhost:8443", "turn": {"urls": ["turn:localhost:3478?transport=udp"], "secret_file": "/etc/alisay/turn-secret"}, "nginx": {"https_port": 8443, "http_port": 8081, "tls_cert": "/etc/alisay/localhost.crt", "tls_key": "/etc/alisay/localhost.key"}}}'
[[ $APPLY_RC -ne 0 ]] || { cat "$WORK/port-clash.log"; fail "a taken TURN port did not fail the play"; }
grep -q 'Port 3478 is already in use' "$WORK/port-clash.log" ||
    { cat "$WORK/port-clash.log"; fail "the failure does not name the taken port"; }
live_state >"$WORK/live.after-port"
diff -u "$WORK/live.before-port" "$WORK/live.after-port" || fail "the port clash changed live files"
in_host systemctl start alisay-coturn.service
show_failure port-clash
echo "failed as it should, naming the taken port; nothing live changed"

say "apply the good config again: still nothing to change"
apply third
[[ $APPLY_RC -eq 0 && $RECAP_CHANGED == 0 ]] ||
    { cat "$WORK/third.log"; fail "re-applying the good config after the failures: rc $APPLY_RC, changed=$RECAP_CHANGED"; }

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
printf 'coturn relay to a host service: %s/3 echoed without the table, %s/3 with it (drop counter +%s, and %s after a restart)\n' \
    "${without#* }" "${to_service#* }" "$((drops_after - drops_before))" "$drops_restart"
echo "deploy test passed"
