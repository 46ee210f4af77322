#!/bin/sh
# coturn as the rendered alisay-coturn.service runs it, for the lab: inside the server's
# network namespace, in the cgroup the rendered nftables table names
# (system.slice/alisay-coturn.service, in a cgroup namespace rooted at a cgroup of the lab's
# own), with that table loaded first, as the unit's ExecStartPre does (TESTING.md; the same
# technique as tests/hostile.rs).
#
# Usage: coturn-in-cgroup.sh LAB_CGROUP_DIR NETNS NFT_FILE TURNSERVER_CONF
set -eu
cg=$1 netns=$2 nft_file=$3 conf=$4
echo $$ > "$cg/cgroup.procs"
exec ip netns exec "$netns" unshare -m -C sh -c '
  set -eu
  mount -t cgroup2 none /sys/fs/cgroup
  unit=/sys/fs/cgroup/system.slice/alisay-coturn.service
  mkdir -p "$unit"
  nft -f "$1"
  echo $$ > "$unit/cgroup.procs"
  exec turnserver -c "$2"' sh "$nft_file" "$conf"
