#!/usr/bin/env bash
# Builds (once) the Debian bookworm tree the deployment test boots with systemd-nspawn, and
# reuses it when present. The tree is a cache: run.sh boots it with --volatile=overlay, so a
# test never changes it. See shared TESTING.md "A real host with systemd as PID 1".
#
# What the tree holds, and why:
# - debootstrap minbase + systemd, dbus, python3, python3-apt (Ansible's apt module),
#   openssh-server (Ansible connects over real SSH, spawned by nsenter), ca-certificates;
# - curl (the test's own checks inside the container);
# - nginx INSTALLED: the test plays a shared host that already serves another site;
# - coturn and nftables only DOWNLOADED into apt's cache: the container has no network, so the
#   role's apt task installs them from there (a real install, with the packages' own scripts).
#
# Version 3 added nftables; a version-2 tree is upgraded in place (the download only) rather
# than built again.
#
# Usage: tests/deploy/build-tree.sh TREE [MIRROR]
set -euo pipefail

TREE=${1:?usage: build-tree.sh TREE [MIRROR]}
MIRROR=${2:-http://deb.debian.org/debian}
STAMP="$TREE/.alisay-test-tree-v3"
# What the role installs offline from the tree's apt cache.
DOWNLOAD_ONLY=(coturn nftables)

if [[ -f $STAMP ]]; then
    echo "build-tree: reusing $TREE"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if [[ -f $TREE/.alisay-test-tree-v2 ]]; then
    echo "build-tree: upgrading $TREE to v3 (downloading ${DOWNLOAD_ONLY[*]} into its apt cache)"
    # Fresh lists, then every download-only package again: the cache must hold the versions
    # the (offline) container's apt will ask for.
    chroot "$TREE" apt-get -q update
    chroot "$TREE" apt-get -q install -y --download-only "${DOWNLOAD_ONLY[@]}"
    ls "$TREE"/var/cache/apt/archives/coturn_*.deb "$TREE"/var/cache/apt/archives/nftables_*.deb >/dev/null
    rm -f "$TREE/.alisay-test-tree-v2"
    touch "$STAMP"
    exit 0
fi

for tool in debootstrap chroot mount umount; do
    command -v "$tool" >/dev/null || { echo "build-tree: $tool is missing" >&2; exit 1; }
done

WORK="$TREE.tmp"
mkdir -p "$(dirname "$TREE")"
# A finished debootstrap from an interrupted earlier build is kept (it is the slow part).
if [[ ! -f $WORK/.debootstrap-done ]]; then
    rm -rf "$WORK"
    echo "build-tree: debootstrap bookworm into $WORK (about a minute)"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-apt,openssh-server,ca-certificates \
        bookworm "$WORK" "$MIRROR" >"$WORK.log" 2>&1 || {
        tail -n 30 "$WORK.log" >&2
        echo "build-tree: debootstrap failed (log: $WORK.log)" >&2
        exit 1
    }
    touch "$WORK/.debootstrap-done"
fi

cleanup() {
    umount "$WORK/proc" 2>/dev/null || true
    rm -f "$WORK/usr/sbin/policy-rc.d"
}
trap cleanup EXIT

mount -t proc proc "$WORK/proc"
# No daemon may start inside the chroot (there is no init there).
printf '#!/bin/sh\nexit 101\n' >"$WORK/usr/sbin/policy-rc.d"
chmod 0755 "$WORK/usr/sbin/policy-rc.d"

chroot "$WORK" apt-get -q update
chroot "$WORK" apt-get -q install -y --no-install-recommends curl nginx
chroot "$WORK" apt-get -q install -y --download-only "${DOWNLOAD_ONLY[@]}"
ls "$WORK"/var/cache/apt/archives/coturn_*.deb "$WORK"/var/cache/apt/archives/nftables_*.deb >/dev/null

# Root logs in with the test key that run.sh bind-mounts onto authorized_keys.
install -d -m 0700 "$WORK/root/.ssh"
: >"$WORK/root/.ssh/authorized_keys"
chmod 0600 "$WORK/root/.ssh/authorized_keys"
# A container has no console to wait for.
chroot "$WORK" systemctl mask -q getty@tty1.service console-getty.service
echo alisay-test >"$WORK/etc/hostname"
# debootstrap writes no /etc/hosts; without it `localhost` does not resolve (no DNS in there).
printf '127.0.0.1\tlocalhost\n127.0.1.1\talisay-test\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$WORK/etc/hosts"

cleanup
trap - EXIT
rm -f "$WORK/.debootstrap-done"
touch "$WORK/.alisay-test-tree-v3"
rm -rf "$TREE"
mv "$WORK" "$TREE"
echo "build-tree: built $TREE ($(du -sh "$TREE" | cut -f1))"
