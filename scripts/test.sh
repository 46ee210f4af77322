#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need (apt: nginx,
# coturn, chromium, NSS tools, systemd tools; npm: playwright-core, into tests/e2e only), then
# runs formatting and lint checks, every Rust test (unit, integration, render, coturn probes)
# and the browser end-to-end suite inside a loopback-only network namespace.
# Tools built for the tests (nix formatters, cargo-fuzz, the ansible venv, the Debian tree of
# the deployment test) are cached in $TEST_CACHE_DIR (default /var/cache/alisay-test) and
# rebuilt when absent. Environment variables starting with ALISAY_ are config overrides for
# the alisay binary (see docs/config.md): do not set any while running the tests.
#
#   bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# rustup installs cargo under ~/.cargo/bin; make sure a bare shell finds it.
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac
started=$(date +%s)
phase() { printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

phase "Installing system packages the tests need"
# command:package pairs; install only what is missing, so a second run is quick.
missing=()
for pair in chromium:chromium nginx:nginx turnserver:coturn turnutils_uclient:coturn \
            certutil:libnss3-tools systemd-analyze:systemd openssl:openssl ip:iproute2 \
            unshare:util-linux node:nodejs npm:npm curl:curl nft:nftables; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
export TEST_CACHE_DIR=${TEST_CACHE_DIR:-/var/cache/alisay-test}
mkdir -p "$TEST_CACHE_DIR"
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
    --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi
# Installing coturn/nginx may start their distribution daemons where systemd runs; tests
# start their own instances on other ports and never touch those.

phase "Formatting and lints"
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings

phase "Release build"
cargo build --release --locked

phase "Rust tests (unit, integration, render, coturn probes)"
cargo test --locked --no-fail-fast

phase "Load smoke: 2,000 idle sockets, relayed pairs, churn and a clean SIGTERM (tools/loadgen)"
SERVER_BIN="$PWD/target/release/alisay" bash tests/load_smoke.sh

phase "NixOS package and module (parse, format, deadnix, example settings through alisay check/render)"
bash tests/nix/check.sh

phase "Fuzzing: signaling parser, config loader and hub, 60 s each (cargo-fuzz, libFuzzer)"
bash tests/fuzz/run.sh

phase "Browser end-to-end suite (Chromium, coturn, nginx, alisay in a loopback-only namespace)"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
bash tests/e2e/run.sh

phase "Network lab C6: a caller's uplink moves mid-call, the call is back within 5 s (namespaces a13-*)"
bash tests/lab/c6-network-change.sh

phase "Deployment: the Ansible role applied twice to a Debian host booted with systemd-nspawn"
bash tests/deploy/run.sh

phase "All tests passed"
