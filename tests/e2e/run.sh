#!/usr/bin/env bash
# Browser end-to-end suite: real `alisay serve`, real coturn and Debian's Chromium, all inside a
# fresh network namespace where only loopback is up (nothing can leave the machine), and a fresh
# PID namespace, so that every process the suite started dies with it, even after a timeout.
#
# Usage (from anywhere, as root):  bash tests/e2e/run.sh [FILE.test.js ...] [node --test options]
# (no file named: every *.test.js in tests/e2e, one file at a time)
# Needs: `cargo build --release` done (or ALISAY_BIN=/path/to/alisay), and the Debian packages
# chromium, firefox-esr and coturn. The namespace's only route is `default dev lo src 127.0.0.1`:
# without a default route headless Firefox gathers no ICE candidate at all ("failed to find
# default addresses"); with it, still nothing can leave (TESTING.md). Runs `npm ci` here if
# node_modules is missing. Logs: tests/e2e/out/.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export ALISAY_BIN="${ALISAY_BIN:-$root/target/release/alisay}"

if [ "${ALISAY_E2E_IN_NETNS:-}" != 1 ]; then
  fail() { echo "tests/e2e/run.sh: $*" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || fail "must run as root (it creates a network namespace with unshare -n)"
  [ -x "$ALISAY_BIN" ] || fail "no alisay binary at $ALISAY_BIN (run cargo build --release or set ALISAY_BIN)"
  [ -x /usr/bin/chromium ] || fail "no /usr/bin/chromium (apt-get install chromium)"
  [ -x /usr/bin/firefox-esr ] || fail "no /usr/bin/firefox-esr (apt-get install firefox-esr)"
  command -v turnserver >/dev/null || fail "no turnserver (apt-get install coturn)"
  node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$node_major" -ge 20 ] || fail "needs Node.js >= 20 (playwright-core requires it; found $(node --version 2>/dev/null || echo none))"
  if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -d "$here/node_modules/ws" ] ||
     [ ! -d "$here/node_modules/puppeteer-core" ]; then
    npm ci --prefix "$here" --no-audit --no-fund
  fi
  rm -rf "$here/out"
  mkdir -p "$here/out"
  # A private tmpfs on /tmp inside the namespaces, so nothing is left behind even after SIGKILL
  # (not when this checkout itself lives under /tmp: the mount would hide it).
  case "$here" in /tmp/*) private_tmp=0 ;; *) private_tmp=1 ;; esac
  started=$(date +%s%N)
  set +e
  ALISAY_E2E_IN_NETNS=1 ALISAY_E2E_PRIVATE_TMP=$private_tmp timeout --kill-after=10 1200 \
    unshare --net --pid --fork --kill-child --mount-proc -- \
    sh -c 'ip link set lo up &&
      ip route add default dev lo src 127.0.0.1 &&
      { [ "$ALISAY_E2E_PRIVATE_TMP" != 1 ] || mount -t tmpfs -o mode=1777 e2e-tmp /tmp; } &&
      exec bash "$0" "$@"' \
    "$here/run.sh" "$@"
  rc=$?
  set -e
  ended=$(date +%s%N)
  wall_ms=$(( (ended - started) / 1000000 ))
  echo "METRIC e2e_suite_wall_s $((wall_ms / 1000)).$(printf '%03d' $((wall_ms % 1000)))" | tee -a "$here/out/metrics.txt"
  [ "$rc" = 0 ] || echo "tests/e2e: FAILED (exit $rc); logs and page consoles in $here/out/" >&2
  exit "$rc"
fi

# Inside the namespaces (normally with a private /tmp that vanishes with them).
cd "$here"
# Test files named on the command line run alone; otherwise every *.test.js here, one at a time.
files=()
opts=()
for a in "$@"; do case "$a" in *.test.js) files+=("$a") ;; *) opts+=("$a") ;; esac; done
[ ${#files[@]} -gt 0 ] || files=(./*.test.js)
exec node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination=out/results.tap \
  "${opts[@]}" "${files[@]}"
