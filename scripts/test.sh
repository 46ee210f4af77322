#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need (apt: nginx,
# coturn, chromium, NSS tools, systemd tools; npm: playwright-core, into tests/e2e only), then
# runs formatting and lint checks, every Rust test (unit, integration, render, coturn probes)
# and the browser end-to-end suite inside a loopback-only network namespace.
#
#   bash scripts/test.sh          # everything
#   SKIP_E2E=1 bash scripts/test.sh   # Rust checks and tests only (says so at the end)
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
            unshare:util-linux node:nodejs npm:npm curl:curl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
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

phase "NixOS package and module (parse, format, deadnix, example settings through alisay check/render)"
ALISAY_BIN="$root/target/release/alisay" bash tests/nix/check.sh

if [ "${SKIP_E2E:-0}" = 1 ]; then
  phase "Browser end-to-end suite SKIPPED (SKIP_E2E=1): this run did not test the browser"
  exit 0
fi

phase "Browser end-to-end suite (Chromium, coturn, alisay in a loopback-only namespace)"
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
ALISAY_BIN="$root/target/release/alisay" bash tests/e2e/run.sh

phase "All tests passed"
