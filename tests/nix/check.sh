#!/usr/bin/env bash
# CI checks of the NixOS package and module (nixos/), run from the repository root:
#
#   bash tests/nix/check.sh          # ALISAY_BIN=/path/to/alisay overrides target/release/alisay
#
# A full NixOS evaluation is impossible here: no registry ships nixpkgs, and current nixpkgs
# needs Nix >= 2.18 while Debian has 2.8. So this checks everything that needs no nixpkgs
# (nixos/README.md lists what is and is not covered):
#   1. every .nix file of the repository parses (nix-instantiate --parse);
#   2. nixos/ and tests/nix/ are formatted (nixpkgs-fmt --check) and have no dead code
#      (deadnix --fail); nixos/render.sh and this script pass shellcheck; the Python script of
#      the VM test (nixos/test.nix) compiles and passes pyflakes;
#   3. package.nix's minimum rustc equals the newest rust-version in Cargo.lock;
#   4. the example host's settings, evaluated through the module's own settings.nix and
#      serialized by remarshal 0.17.1 (what pkgs.formats.yaml runs), pass `alisay check`, and
#      nixos/render.sh (the module's build step) renders them; the units it installs carry the
#      module-owned paths; gixy (what NixOS runs on nginx.conf) finds nothing in the site;
#   5. nixos/defaults.nix repeats alisay's own defaults (same check output without it, for the
#      example and for a minimal host where every typed default is in play);
#   6. negative cases: owned keys set by the administrator are reported, an invalid config
#      fails both `alisay check` (exit 64, naming the key) and render.sh.
# It installs what it needs (apt: nix-bin, python3-venv, shellcheck; cargo: nixpkgs-fmt,
# deadnix; PyPI: remarshal, gixy, pyflakes), caching the tools in $TEST_CACHE_DIR/nix-tools (default /var/cache/alisay-test). It never skips a
# check: a missing tool is installed or the script fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) [ -d "$HOME/.cargo/bin" ] && PATH="$HOME/.cargo/bin:$PATH" ;; esac

started=$(date +%s)
step() { printf '\n--> %s (%ss)\n' "$1" "$(($(date +%s) - started))"; }
fail() {
  echo "tests/nix/check.sh: FAIL: $*" >&2
  exit 1
}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

alisay=${ALISAY_BIN:-$root/target/release/alisay}
[ -x "$alisay" ] || fail "no alisay binary at $alisay (run cargo build --release, or set ALISAY_BIN)"
# Built tools are cached outside the checkout so a fresh clone on the same machine reuses them;
# a machine without the cache builds them (about 2-6 minutes).
tools=${TEST_CACHE_DIR:-/var/cache/alisay-test}/nix-tools
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Nix as root without a daemon: no build users are needed to evaluate.
export NIX_CONFIG="build-users-group ="

step "Installing Nix 2.8, python3-venv and shellcheck (apt) if missing"
missing=()
command -v nix-instantiate >/dev/null 2>&1 || missing+=(nix-bin)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
    --no-install-recommends "${missing[@]}"
else
  echo "all present"
fi

step "Installing nixpkgs-fmt and deadnix (cargo), remarshal, gixy and pyflakes (PyPI) if not cached"
if [ ! -x "$tools/bin/nixpkgs-fmt" ] || [ ! -x "$tools/bin/deadnix" ]; then
  cargo install --locked --quiet nixpkgs-fmt deadnix --root "$tools"
fi
# remarshal 0.17.1 is what nixpkgs' formats.yaml runs (remarshal_0_17: json2yaml, YAML 1.1).
if [ ! -x "$tools/remarshal/bin/json2yaml" ]; then
  rm -rf "$tools/remarshal"
  python3 -m venv "$tools/remarshal"
  "$tools/remarshal/bin/pip" install --quiet --disable-pip-version-check 'remarshal==0.17.1'
fi
# gixy 0.1.20 with pyparsing 2.4.7, as nixpkgs packages it: NixOS runs it on nginx.conf
# (writeNginxConfig) and fails the build on any finding, following our `include`.
# pyflakes, for the VM test's Python script (which cannot run here).
if [ ! -x "$tools/pyflakes/bin/pyflakes" ]; then
  rm -rf "$tools/pyflakes"
  python3 -m venv "$tools/pyflakes"
  "$tools/pyflakes/bin/pip" install --quiet --disable-pip-version-check 'pyflakes==3.2.0'
fi
if [ ! -x "$tools/gixy/bin/gixy" ]; then
  rm -rf "$tools/gixy"
  python3 -m venv "$tools/gixy"
  "$tools/gixy/bin/pip" install --quiet --disable-pip-version-check \
    'gixy==0.1.20' 'pyparsing==2.4.7' cached-property configargparse jinja2 six
fi
# (nixpkgs-fmt 1.3.0 exits 1 after printing its version, and two blank lines to stderr.)
echo "$("$tools/bin/nixpkgs-fmt" --version 2>/dev/null || true), $("$tools/bin/deadnix" --version)"

step "Parsing every .nix file"
mapfile -t nixfiles < <(find . -name '*.nix' -not -path './target/*' -not -path './.cache/*' \
  -not -path '*/node_modules/*' -not -path './.git/*' | sort)
[ ${#nixfiles[@]} -ge 10 ] || fail "expected the nixos/ and tests/nix/ files, found only: ${nixfiles[*]}"
for f in "${nixfiles[@]}"; do
  nix-instantiate --parse "$f" >/dev/null || fail "$f does not parse"
done
echo "${#nixfiles[@]} files parse"

step "Formatting (nixpkgs-fmt), dead code (deadnix), shell scripts (shellcheck)"
"$tools/bin/nixpkgs-fmt" --check nixos/ tests/nix/ || fail "run: $tools/bin/nixpkgs-fmt nixos/ tests/nix/"
"$tools/bin/deadnix" --fail nixos/ tests/nix/ || fail "deadnix found unused bindings"
shellcheck nixos/render.sh tests/nix/check.sh || fail "shellcheck"

step "The VM test's Python script compiles and passes pyflakes"
python3 tests/nix/testscript.py nixos/test.nix >"$tmp/testscript.py" || fail "could not extract the testScript of nixos/test.nix"
python3 -m py_compile "$tmp/testscript.py" || fail "the testScript of nixos/test.nix does not compile"
"$tools/pyflakes/bin/pyflakes" "$tmp/testscript.py" || fail "pyflakes found problems in the testScript of nixos/test.nix"
echo "$(grep -c 'with subtest(' "$tmp/testscript.py") subtests"

step "package.nix's minimum rustc matches Cargo.lock"
# The newest rust-version among every locked package (the package's tests build dev-deps too).
needed=$(cargo metadata --locked --format-version 1 |
  grep -o '"rust_version":"[0-9.]*"' | cut -d'"' -f4 | sort -V | tail -n 1)
declared=$(sed -n 's/^ *msrv = "\([0-9.]*\)";.*/\1/p' nixos/package.nix)
if [ -z "$needed" ] || [ -z "$declared" ]; then
  fail "could not read the rust versions (needed '$needed', declared '$declared')"
fi
[ "${needed%.0}" = "${declared%.0}" ] ||
  fail "nixos/package.nix has msrv = \"$declared\" but Cargo.lock needs rustc $needed; update msrv (and the NixOS version in nixos/README.md)"
echo "rustc >= $declared"

# Store-like paths the module would pass (the renderer accepts only [A-Za-z0-9._+@/-]).
binary=/nix/store/0123456789abcdfghijklmnpqrsvwxyz-alisay-0.1.0/bin/alisay
turnserver=/nix/store/0123456789abcdfghijklmnpqrsvwxyz-coturn-4.6.3/bin/turnserver
nft=/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nftables-1.1.1/bin/nft
evaluate() { # evaluate FILE OUT [nix-instantiate args...]: JSON of a .nix file, then YAML
  local file=$1 out=$2
  shift 2
  nix-instantiate --eval --strict --json "$file" "$@" >"$out.json" || fail "evaluating $file"
  "$tools/remarshal/bin/json2yaml" "$out.json" "$out" || fail "json2yaml $out.json"
}

step "The example host's settings pass alisay check (as module.nix builds them)"
evaluate tests/nix/example.nix "$tmp/alisay.yaml" --argstr binary "$binary" --argstr turnserver "$turnserver" --argstr nft "$nft"
"$alisay" check --config "$tmp/alisay.yaml" >"$tmp/checked.yaml" 2>"$tmp/check.err" ||
  fail "alisay check refused the example settings: $(cat "$tmp/check.err")"
grep -qx 'public_origin: https://call.example.org' "$tmp/checked.yaml" || fail "check output lacks the example's public_origin"
grep -qx "  binary: $binary" "$tmp/checked.yaml" || fail "paths.binary is not the module's"
grep -qx '  config: /etc/alisay/alisay.yaml' "$tmp/checked.yaml" || fail "paths.config is not /etc/alisay/alisay.yaml"
echo "accepted"

step "nixos/render.sh (the module's build step) renders them"
PATH="$(dirname "$alisay"):$PATH" bash nixos/render.sh "$tmp/alisay.yaml" "$tmp/rendered" \
  alisay.service alisay-coturn.service || fail "render.sh failed on the example settings"
for f in share/alisay/nginx/alisay.conf share/alisay/coturn/turnserver.conf \
  lib/systemd/system/alisay.service lib/systemd/system/alisay-coturn.service; do
  [ -s "$tmp/rendered/$f" ] || fail "render.sh wrote no $f"
done
cmp -s "$tmp/rendered/share/alisay/systemd/alisay.service" "$tmp/rendered/lib/systemd/system/alisay.service" ||
  fail "the installed alisay.service differs from the rendered one"
unit=$tmp/rendered/lib/systemd/system/alisay.service
cunit=$tmp/rendered/lib/systemd/system/alisay-coturn.service
# The config reaches the service as a systemd credential (room ids in it are secrets).
grep -qx "LoadCredential=alisay.yaml:/etc/alisay/alisay.yaml" "$unit" || fail "alisay.service does not load the module's config"
grep -qx "ExecStart=$binary serve --config %d/alisay.yaml" "$unit" || fail "alisay.service does not run the module's binary and config"
grep -qx "LoadCredential=turn-secret:/etc/alisay/turn-secret" "$unit" || fail "alisay.service does not load services.alisay.turnSecretFile"
grep -qx "ExecStart=$turnserver -c /run/alisay-coturn/turnserver.conf" "$cunit" || fail "alisay-coturn.service does not run the module's turnserver"
grep -qx "ExecStartPre=$binary coturn-config --config %d/alisay.yaml --out /run/alisay-coturn/turnserver.conf" "$cunit" ||
  fail "alisay-coturn.service does not write its runtime config with the module's binary"
# coturn's host firewall: the module's nft loads the table module.nix installs in /etc.
grep -qx "ExecStartPre=+$nft -f /etc/alisay/alisay-coturn.nft" "$cunit" ||
  fail "alisay-coturn.service does not load its nftables table with the module's nft from /etc/alisay/alisay-coturn.nft"
grep -qx "ExecStopPost=-+$nft delete table inet alisay_coturn" "$cunit" ||
  fail "alisay-coturn.service does not delete its nftables table when it stops"
grep -q '^table inet alisay_coturn {$' "$tmp/rendered/share/alisay/nftables/alisay-coturn.nft" ||
  fail "render.sh wrote no nftables table for environment.etc"
grep -q 'server_name call.example.org;' "$tmp/rendered/share/alisay/nginx/alisay.conf" || fail "the site is not for call.example.org"
# Only the units it is asked for: the module leaves alisay-coturn out unless coturn.enable.
PATH="$(dirname "$alisay"):$PATH" bash nixos/render.sh "$tmp/alisay.yaml" "$tmp/rendered-one" alisay.service ||
  fail "render.sh failed with one unit"
[ "$(ls "$tmp/rendered-one/lib/systemd/system")" = alisay.service ] || fail "render.sh installed units it was not asked for"
echo "rendered and installed"

step "gixy (run by NixOS on nginx.conf) finds nothing in the rendered site"
cat >"$tmp/nginx.conf" <<EOF
events {}
http {
    include $tmp/rendered/share/alisay/nginx/alisay.conf;
}
EOF
"$tools/gixy/bin/gixy" "$tmp/nginx.conf" >"$tmp/gixy.out" 2>&1 || {
  cat "$tmp/gixy.out"
  fail "gixy reported problems (NixOS would refuse to build this nginx.conf)"
}
grep -q 'No issues found' "$tmp/gixy.out" || {
  cat "$tmp/gixy.out"
  fail "gixy did not report a clean result"
}
echo "no issues"

step "nixos/defaults.nix repeats alisay's defaults"
evaluate tests/nix/example.nix "$tmp/bare.yaml" --argstr binary "$binary" --argstr turnserver "$turnserver" --argstr nft "$nft" --arg typedDefaults false
"$alisay" check --config "$tmp/bare.yaml" >"$tmp/bare-checked.yaml" || fail "alisay check refused the example without typed defaults"
diff -u "$tmp/bare-checked.yaml" "$tmp/checked.yaml" ||
  fail "nixos/defaults.nix changes the effective config (diff above): make it match src/config/schema.rs"
evaluate tests/nix/minimal.nix "$tmp/minimal.yaml" --argstr binary "$binary" --argstr turnserver "$turnserver" --argstr nft "$nft"
evaluate tests/nix/minimal.nix "$tmp/minimal-bare.yaml" --argstr binary "$binary" --argstr turnserver "$turnserver" --argstr nft "$nft" --arg typedDefaults false
"$alisay" check --config "$tmp/minimal.yaml" >"$tmp/minimal-checked.yaml" || fail "alisay check refused the minimal settings"
"$alisay" check --config "$tmp/minimal-bare.yaml" >"$tmp/minimal-bare-checked.yaml" || fail "alisay check refused the bare minimal settings"
diff -u "$tmp/minimal-bare-checked.yaml" "$tmp/minimal-checked.yaml" ||
  fail "nixos/defaults.nix changes the effective config of a minimal host (diff above): make it match src/config/schema.rs"
echo "same effective config (the example, and a minimal host)"

step "Negative: owned keys set in settings are reported"
nix-instantiate --eval --strict --json tests/nix/conflicts.nix >"$tmp/conflicts.json" || fail "evaluating conflicts.nix"
expected='{"binary":"/nix/store/00000000000000000000000000000000-alisay/bin/alisay","conflicts":["paths.binary","turn.secret_file"],"secretFile":"/run/secrets/alisay-turn","stateDir":"/var/lib/alisay","urls":["turn:call.example.org:3478"]}'
[ "$(cat "$tmp/conflicts.json")" = "$expected" ] || fail "settings.nix conflicts: got $(cat "$tmp/conflicts.json"), want $expected"
echo "reported: paths.binary, turn.secret_file"

step "Negative: an invalid config fails alisay check (exit 64) and render.sh"
# The example with an http:// origin, which production refuses.
sed 's#^public_origin: .*#public_origin: http://call.example.org#' "$tmp/alisay.yaml" >"$tmp/invalid.yaml"
grep -q '^public_origin: http://call.example.org$' "$tmp/invalid.yaml" || fail "could not make the invalid config"
set +e
"$alisay" check --config "$tmp/invalid.yaml" >/dev/null 2>"$tmp/invalid.err"
code=$?
PATH="$(dirname "$alisay"):$PATH" bash nixos/render.sh "$tmp/invalid.yaml" "$tmp/invalid-out" alisay.service >/dev/null 2>&1
render_code=$?
set -e
[ "$code" = 64 ] || fail "alisay check exited $code on an invalid config, want 64"
grep -q 'public_origin' "$tmp/invalid.err" || fail "alisay check did not name public_origin: $(cat "$tmp/invalid.err")"
[ "$render_code" != 0 ] || fail "render.sh succeeded on an invalid config"
echo "refused: check exit $code, render.sh exit $render_code"

step "All Nix checks passed"
echo "Not run here (no nixpkgs, Nix 2.8): the NixOS module evaluation and the VM test nixos/test.nix."
