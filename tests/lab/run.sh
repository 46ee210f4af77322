#!/usr/bin/env bash
# The network lab (TESTING.md "A network lab of namespaces"): real coturn, nginx and
# `alisay serve` from `alisay render` on a server host behind a 1:1 NAT router, two Chromium
# callers behind home NATs, all in network namespaces named a17-* that are linked only among
# themselves (nothing touches the machine's own network namespace; no route leaves the lab).
# Issue 17's acceptance (lab.mjs says what it proves); results in tests/lab/out/.
#
# Usage (root):  bash tests/lab/run.sh [--docs]   (--docs: write docs/networks.md from the run;
# LAB_SKIP_MATRIX=1 runs issue 17's acceptance alone)
# Needs: the alisay binary (target/release/alisay, or LAB_ALISAY_BIN), the Debian packages
# chromium, coturn, nginx, nftables, iproute2, util-linux, openssl, libnss3-tools, and the npm
# packages of tests/e2e (installed here with npm ci when missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
prefix=${LAB_NETNS_PREFIX:-a17-}
fail() { echo "tests/lab/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (ip netns, nft, cgroups)"
export LAB_ALISAY_BIN=${LAB_ALISAY_BIN:-$root/target/release/alisay}
[ -x "$LAB_ALISAY_BIN" ] || fail "no alisay binary at $LAB_ALISAY_BIN (cargo build --release, or set LAB_ALISAY_BIN)"
for c in ip nft unshare turnserver turnutils_uclient turnutils_peer nginx openssl certutil ss node /usr/bin/chromium; do
  command -v "$c" >/dev/null || fail "missing $c (scripts/test.sh installs it)"
done
if [ ! -d "$root/tests/e2e/node_modules/playwright-core" ]; then
  npm ci --prefix "$root/tests/e2e" --no-audit --no-fund --loglevel=error
fi

# Every namespace of this lab, and every process still inside one, goes at the end: also
# after a failure, a timeout or Ctrl-C.
cleanup() {
  local n pid
  for n in $(ip netns list | awk -v p="$prefix" 'index($1, p) == 1 {print $1}'); do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$n" 2>/dev/null || true
  done
}
trap cleanup EXIT INT TERM
cleanup # leftovers of a run that was killed

rm -rf "$here/out"
mkdir -p "$here/out"
started=$(date +%s)
set +e
# Issue 17's acceptance (lab.mjs), then the matrix of setups x profiles x modes (matrix.mjs),
# each in namespaces of its own, one after the other.
timeout --kill-after=10 300 node "$here/lab.mjs"
rc=$?
cleanup
if [ "$rc" = 0 ] && [ "${LAB_SKIP_MATRIX:-}" != 1 ]; then
  timeout --kill-after=10 420 node "$here/matrix.mjs"
  rc=$?
fi
set -e
echo "METRIC lab_run_wall_s $(( $(date +%s) - started ))"
if [ "$rc" = 0 ] && [ "${1:-}" = --docs ]; then
  cp "$here/out/networks.md" "$root/docs/networks.md"
  echo "wrote docs/networks.md"
fi
[ "$rc" = 0 ] || echo "tests/lab: FAILED (exit $rc); logs in $here/out/ and tests/e2e/out/lab-*" >&2
exit "$rc"
