#!/usr/bin/env bash
# Load smoke test for CI (a few seconds of load once built): the load generator
# (tools/loadgen) against a real `alisay serve` on loopback:
#   - 2,000 idle sockets joined in 1,000 rooms: no errors, and server memory per socket under a
#     generous ceiling of 6 KiB (measured 2.5-2.8 KiB at 2,000 sockets here, where the
#     hash maps' spare capacity still weighs; the tungstenite path before it measured 13),
#   - 10 pairs relaying ICE-size and 5 KB SDP messages: every message arrives, none refused,
#   - 500 connect/join/hangup/close cycles, and a one-pair fixed-rate relay,
#   - then SIGTERM: the server exits 0 within its grace period.
# Any error, a lost message or a memory figure over the ceiling fails the script. The full
# comparison with other servers is tools/compare/compare.sh (docs/performance.md).
#
#   bash tests/load_smoke.sh                                  # builds what it needs
#   SERVER_BIN=target/release/alisay bash tests/load_smoke.sh # use a built server
# (not ALISAY_*: the server reads every ALISAY_* variable as a config override)
#   CEILING_KIB=4 bash tests/load_smoke.sh                    # a stricter ceiling
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
CEILING_KIB=${CEILING_KIB:-6}
SOCKETS=${SOCKETS:-2000}

if [ -z "${SERVER_BIN:-}" ]; then
  cargo build --release --locked --bin alisay
  SERVER_BIN=$root/target/release/alisay
fi
cargo build --release --locked --manifest-path tools/loadgen/Cargo.toml --target-dir "$root/target/loadgen"
loadgen=$root/target/loadgen/release/loadgen

# The generator holds as many sockets as the server; the soft open-files limit is often 1024.
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt $((SOCKETS + 100)) ] || {
  echo "load_smoke: the open-files limit $(ulimit -n) cannot hold $SOCKETS sockets" >&2
  exit 1
}

work=$(mktemp -d /tmp/alisay-load-smoke.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
origin="http://127.0.0.1:18799"

# A free port: try a few random ones (bounded), starting the server on each until one binds.
port=
for _ in 1 2 3 4 5; do
  try=$((20000 + RANDOM % 10000))
  cat > "$work/alisay.yaml" <<EOF
mode: development
public_origin: "$origin"
server:
  listen: "127.0.0.1:$try"
  shutdown_grace: 3s
rooms:
  allow_open_rooms: true
  max_active: 5000
signaling:
  join_rate: {per_second: 100000, burst: 100000}
  message_rate: {per_second: 100000, burst: 100000}
logging:
  level: warn
EOF
  "$SERVER_BIN" serve --config "$work/alisay.yaml" > "$work/stdout" 2> "$work/stderr" &
  pid=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$try") 2>/dev/null; then port=$try; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] && break
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
done
[ -n "$port" ] || { echo "load_smoke: the server did not start" >&2; cat "$work/stderr" >&2; exit 1; }
sleep 0.3

gen() {
  echo "+ loadgen $*"
  "$loadgen" --url "ws://127.0.0.1:$port" --origin "$origin" --server-pid "$pid" \
    --label alisay --max-seconds 60 --fail-on-errors "$@"
}
gen --max-kib-per-socket "$CEILING_KIB" hold --sockets "$SOCKETS" --hold-seconds 2 --heartbeat-seconds 1
gen relay --pairs 10 --size ice --messages 300
gen relay --pairs 10 --size sdp --messages 50
gen churn --joins 500 --concurrency 16
gen fixed-rate --pairs 1 --rate 100 --seconds 2 --as-latency

kill -TERM "$pid"
status=0
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  echo "load_smoke: the server did not exit within 10 s of SIGTERM" >&2
  exit 1
fi
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || { echo "load_smoke: the server exited with $status" >&2; cat "$work/stderr" >&2; exit 1; }
echo "load_smoke: passed"
