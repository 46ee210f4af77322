#!/usr/bin/env bash
# Build step of the NixOS module (module.nix runs it inside `pkgs.runCommand`, with the
# package's `alisay` on PATH); tests/nix/check.sh runs the same file on the example config.
#
#   bash nixos/render.sh CONFIG OUT [UNIT...]
#
# Writes OUT/share/alisay/: exactly what `alisay render` writes on any host (nginx/alisay.conf,
# coturn/turnserver.conf, systemd/alisay.service, systemd/alisay-coturn.service,
# nftables/alisay-coturn.nft), and copies
# each named UNIT from there to OUT/lib/systemd/system/, where NixOS' `systemd.packages`
# looks for units. Fails (and so fails nixos-rebuild) if the config cannot be rendered or a
# named unit was not rendered.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: render.sh CONFIG OUT [UNIT...]" >&2
  exit 64
fi
config=$1
out=$2
shift 2

mkdir -p "$out/share" "$out/lib/systemd/system"
# `alisay render` prints the files it wrote; the build log needs only its errors.
alisay render --config "$config" --out "$out/share/alisay" >/dev/null
for unit in "$@"; do
  case $unit in
    */* | .* | "") echo "render.sh: not a unit file name: '$unit'" >&2; exit 64 ;;
  esac
  if [ ! -f "$out/share/alisay/systemd/$unit" ]; then
    echo "render.sh: alisay render wrote no systemd/$unit" >&2
    exit 1
  fi
  cp "$out/share/alisay/systemd/$unit" "$out/lib/systemd/system/$unit"
done
