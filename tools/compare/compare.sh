#!/usr/bin/env bash
# The performance comparison behind docs/performance.md, in one run: `alisay serve` and, on the
# same scenarios, a raw tokio-tungstenite relay (the limit; also with --validate), a Bun
# (uWebSockets) relay, a Node `ws` relay and the PeerJS server, each server pinned to CPU 0 and
# the load generator (tools/loadgen) to CPU 1, every server and scenario RUNS times, servers
# interleaved within each round so they see the same machine load. Then the report (medians and
# spread, goals checked against figures of this same run) is written to docs/performance.md.
#
#   bash tools/compare/compare.sh               # full run (about 20 minutes once built)
#   RUNS=1 QUICK=1 bash tools/compare/compare.sh   # a trial (smaller counts; not for the docs)
#   SERVERS="alisay raw" bash tools/compare/compare.sh   # a subset
#   COMPARE_NOTE="what this tree is" bash tools/compare/compare.sh   # a line for the report
#
# Loopback only; every server is stopped by its PID; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac

RUNS=${RUNS:-3}
QUICK=${QUICK:-0}
SERVERS=${SERVERS:-"alisay raw raw-validated bun node-ws peerjs"}
OUTPUT=${OUTPUT:-$root/docs/performance.md}
if [ "$QUICK" = 1 ]; then
  SOCKETS=${SOCKETS:-2000}; HOLD=3; ICE_MSGS=500; SDP_MSGS=100; JOINS=1000; RATE_JOINS=1000; RATE_SECS=3
else
  SOCKETS=${SOCKETS:-19000}; HOLD=10; ICE_MSGS=5000; SDP_MSGS=1500; JOINS=8000; RATE_JOINS=5000; RATE_SECS=6
fi

work=$(mktemp -d /tmp/alisay-compare.XXXXXX)
results=$work/runs.jsonl
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n==> %s\n' "$*"; }

say "Building alisay and the load generator (release)"
cargo build --release --locked --bin alisay
loadgen_target=$root/target/loadgen
cargo build --release --locked --manifest-path tools/loadgen/Cargo.toml --target-dir "$loadgen_target"
alisay=$root/target/release/alisay
loadgen=$loadgen_target/release/loadgen
rawrelay=$loadgen_target/release/rawrelay
# The micro-benchmarks are built now, on both CPUs: built later under `taskset -c 1`, the
# bench profile's link of the whole crate took minutes on one CPU.
cargo bench --locked --bench hot_paths --no-run

say "Installing the peers from npm (tools/compare/node_modules)"
(cd tools/compare && npm ci --no-audit --no-fund --loglevel=error)
bun=$root/tools/compare/node_modules/@oven/bun-linux-x64/bin/bun

# 19,000 sockets need as many descriptors in the server and in the generator.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt $((SOCKETS + 200)) ]; then
  SOCKETS=$((hard - 500))
  echo "open-files hard limit is $hard: holding $SOCKETS sockets instead"
fi
ulimit -n "$hard"

# The benchmark config: the development defaults plus limits raised for one client address
# (docs/config.md says to raise join_rate for load tests), TURN configured so that `joined`
# carries real credentials, logging at the production default (info) into a file.
head -c 32 /dev/urandom | base64 > "$work/turn-secret"
chmod 600 "$work/turn-secret"
port_of() {
  case $1 in alisay) echo 18701 ;; raw) echo 18702 ;; raw-validated) echo 18706 ;; node-ws) echo 18703 ;; bun) echo 18704 ;; peerjs) echo 18705 ;; esac
}
cat > "$work/alisay.yaml" <<EOF
mode: development
public_origin: "http://127.0.0.1:$(port_of alisay)"
server:
  listen: "127.0.0.1:$(port_of alisay)"
  max_connections: 20000
rooms:
  allow_open_rooms: true
  max_active: 20000
signaling:
  join_rate: {per_second: 1000000, burst: 1000000}
  message_rate: {per_second: 1000000, burst: 1000000}
turn:
  urls: ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"]
  secret_file: "$work/turn-secret"
logging:
  level: info
EOF
"$alisay" check --config "$work/alisay.yaml" > /dev/null

# Starts server $1 pinned to CPU 0; sets server_pid; waits (bounded) for its port.
start_server() {
  local port; port=$(port_of "$1")
  case $1 in
    alisay) taskset -c 0 "$alisay" serve --config "$work/alisay.yaml" >> "$work/alisay.log" 2>&1 & ;;
    raw) taskset -c 0 "$rawrelay" --listen "127.0.0.1:$port" > /dev/null 2>&1 & ;;
    raw-validated) taskset -c 0 "$rawrelay" --listen "127.0.0.1:$port" --validate > /dev/null 2>&1 & ;;
    node-ws) taskset -c 0 node tools/compare/node-relay.mjs "$port" > /dev/null 2>&1 & ;;
    bun) taskset -c 0 "$bun" tools/compare/bun-relay.js "$port" > /dev/null 2>&1 & ;;
    peerjs) taskset -c 0 node tools/compare/peerjs-server.mjs "$port" > /dev/null 2>&1 & ;;
  esac
  server_pid=$!
  for _ in $(seq 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      sleep 0.5  # let it settle before its idle RSS is read
      return 0
    fi
    kill -0 "$server_pid" 2>/dev/null || { echo "server $1 died at start"; return 1; }
    sleep 0.05
  done
  echo "server $1 did not listen on $port within 10 s"
  return 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
}

# Runs one loadgen scenario against server $1 (generator pinned to CPU 1).
gen() {
  local label=$1; shift
  local proto=alisay; [ "$label" = peerjs ] && proto=peer-js
  taskset -c 1 "$loadgen" --url "ws://127.0.0.1:$(port_of "$label")" --protocol "$proto" \
    --server-pid "$server_pid" --label "$label" --json "$results" --max-seconds 150 "$@" || true
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
for run in $(seq "$RUNS"); do
  for s in $SERVERS; do
    say "Round $run/$RUNS: $s"
    if [ "$s" != raw-validated ]; then
      start_server "$s"
      gen "$s" hold --sockets "$SOCKETS" --hold-seconds "$HOLD" --heartbeat-seconds 5
      stop_server
    fi
    start_server "$s"
    gen "$s" relay --pairs 20 --size ice --messages "$ICE_MSGS"
    gen "$s" relay --pairs 20 --size sdp --messages "$SDP_MSGS"
    if [ "$s" != raw-validated ]; then
      gen "$s" churn --joins "$JOINS" --concurrency 32
      gen "$s" churn --joins "$RATE_JOINS" --concurrency 512 --rate 1000
      gen "$s" fixed-rate --pairs 50 --rate 2000 --seconds "$RATE_SECS"
      gen "$s" fixed-rate --pairs 1 --rate 200 --seconds "$RATE_SECS" --as-latency
    fi
    stop_server
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

say "Static figures: binary size, render time, idle RSS"
size_mb=$(awk -v b="$(stat -c %s "$alisay")" 'BEGIN { printf "%.2f", b / 1e6 }')
render_ms=()
for _ in $(seq 5); do
  t0=$(date +%s%N)
  "$alisay" render --config examples/production.yaml --out "$work/render" > /dev/null
  t1=$(date +%s%N)
  render_ms+=("$(( (t1 - t0) / 1000 ))")
done
render_med=$(printf '%s\n' "${render_ms[@]}" | sort -n | sed -n 3p | awk '{ printf "%.1f", $1 / 1000 }')

say "Micro-benchmarks (criterion, pinned to CPU 1)"
taskset -c 1 cargo bench --locked --bench hot_paths -- --warm-up-time 1 --measurement-time 3 \
  2>&1 | tee "$work/criterion.txt" | grep -E 'time:|^[a-z-]+/' || true

say "Writing $OUTPUT"
note=()
[ -n "${COMPARE_NOTE:-}" ] && note=(--env "note: $COMPARE_NOTE")
"$loadgen" report "${note[@]}" --input "$results" --template tools/compare/performance.md.in --output "$OUTPUT" \
  --env "date: $(date -u +%Y-%m-%dT%H:%MZ), $RUNS rounds, $(( $(date +%s) - started )) s" \
  --env "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), Linux $(uname -r), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
  --env "load average (1, 5, 15 min) at start: $load_start; at end: $load_end" \
  --env "alisay $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' + uncommitted changes'), $(rustc --version)" \
  --env "node $(node --version), bun $("$bun" --version), ws $(node -p 'require("./tools/compare/node_modules/ws/package.json").version'), peer $(node -p 'require("./tools/compare/node_modules/peer/package.json").version')" \
  --env "sockets held: $SOCKETS (open-files limit $(ulimit -n))" \
  --goal "release binary ≤ 15 MB|$size_mb|15|MB" \
  --goal "\`alisay render\` of examples/production.yaml ≤ 20 ms (median of 5)|$render_med|20|ms" \
  --micro "$work/criterion.txt"
echo "done: $OUTPUT"
