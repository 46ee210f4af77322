#!/usr/bin/env bash
# Installs the independent test client's Python packages (aiortc, aiohttp, numpy: wheels from
# PyPI, no compiler) into a venv under the test cache, $TEST_CACHE_DIR/aiortc-venv (default
# /var/cache/alisay-test), pinned in tests/client/requirements.txt. Reuses the venv when it
# already has exactly those versions. Prints the venv's python.
#
#   bash tests/client/setup.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
venv="${TEST_CACHE_DIR:-/var/cache/alisay-test}/aiortc-venv"
req="$here/requirements.txt"
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/requirements.installed"; then
  echo "$venv/bin/python"
  exit 0
fi
if ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends python3-venv >&2
fi
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv" >&2
"$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: -r "$req" >&2
cp "$req" "$venv/requirements.installed"
echo "$venv/bin/python"
