#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need (apt: nginx,
# coturn, chromium, firefox-esr, NSS tools, systemd tools; npm: playwright-core and
# puppeteer-core, into tests/e2e only; pip: aiortc for the independent test client, in a venv
# under $TEST_CACHE_DIR), then
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
# Each phase prints the seconds since the start; the summary at the end lists every phase's
# wall time (the budget: the whole run under 50 minutes on a 2-core machine).
phase_names=() phase_starts=()
phase() {
  printf '\n==> %s (%ss)\n' "$1" "$(( $(date +%s) - started ))"
  phase_names+=("$1") phase_starts+=("$(date +%s)")
}
summary() {
  local i end
  printf '\nPhase wall times:\n'
  for i in "${!phase_names[@]}"; do
    end=${phase_starts[$((i + 1))]:-$(date +%s)}
    printf '  %5ss  %s\n' "$(( end - phase_starts[i] ))" "${phase_names[$i]}"
  done
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

phase "Installing system packages the tests need"
# command:package pairs; install only what is missing, so a second run is quick.
missing=()
for pair in chromium:chromium firefox-esr:firefox-esr nginx:nginx turnserver:coturn \
            turnutils_uclient:coturn certutil:libnss3-tools systemd-analyze:systemd \
            openssl:openssl ip:iproute2 unshare:util-linux node:nodejs npm:npm curl:curl nft:nftables \
            nix-instantiate:nix-bin shellcheck:shellcheck debootstrap:debootstrap \
            systemd-nspawn:systemd-container ssh:openssh-client nsenter:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# Everything the later phases would install for themselves is installed here, once: the
# deployment test runs beside the other phases, and two apt runs at once would fight over
# dpkg's lock.
/usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
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

phase "Release build, and the browser tests' node modules and aiortc venv"
cargo build --release --locked
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
bash tests/client/setup.sh >/dev/null

# The deployment test mostly waits (debootstrap, systemd in the container, Ansible over SSH):
# it runs beside the other phases, in its own container and network namespace, with its
# output in a log printed when it ends. It needs only the release binary and tests/e2e's
# node modules, both ready now.
mkdir -p target/test-logs
deploy_log=target/test-logs/deploy.log
deploy_started=$(date +%s)
bash tests/deploy/run.sh >"$deploy_log" 2>&1 &
deploy_pid=$!
trap 'kill "$deploy_pid" 2>/dev/null || true' EXIT
echo "deployment test started in the background (pid $deploy_pid, log $deploy_log)"

phase "Rust tests (unit, integration, render, coturn probes)"
cargo test --locked --no-fail-fast

phase "Load smoke: 2,000 idle sockets, relayed pairs, churn and a clean SIGTERM (tools/loadgen)"
SERVER_BIN="$PWD/target/release/alisay" bash tests/load_smoke.sh

phase "NixOS package and module (parse, format, deadnix, example settings through alisay check/render)"
bash tests/nix/check.sh

phase "Fuzzing: signaling parser, config loader and hub, 60 s each (cargo-fuzz, libFuzzer)"
bash tests/fuzz/run.sh

phase "Browser end-to-end suite (Chromium, Firefox, an aiortc client, coturn, nginx, alisay in a loopback-only namespace)"
bash tests/e2e/run.sh

phase "Network lab: Relay-only calls through home NATs to a server behind 1:1 NAT (namespaces a17-*)"
bash tests/lab/run.sh

phase "Network lab C6: a caller's uplink moves mid-call, the call is back within 5 s (namespaces a13-*)"
bash tests/lab/c6-network-change.sh

phase "Deployment: the Ansible role applied twice to a Debian host booted with systemd-nspawn (waiting for the background run)"
deploy_rc=0
wait "$deploy_pid" || deploy_rc=$?
trap - EXIT
cat "$deploy_log"
echo "deployment test: exit $deploy_rc after $(( $(date +%s) - deploy_started ))s (ran beside the phases above)"
[ "$deploy_rc" = 0 ] || { summary; exit "$deploy_rc"; }

summary
phase "All tests passed"
