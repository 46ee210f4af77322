#!/bin/sh
# Playwright's executablePath for a lab caller: Debian's Chromium inside the caller's network
# namespace, named by LAB_NETNS in the browser's environment (lab.mjs sets it). `exec` keeps
# the PID and the --remote-debugging-pipe descriptors Playwright talks over.
set -eu
: "${LAB_NETNS:?LAB_NETNS names the caller namespace}"
exec ip netns exec "$LAB_NETNS" /usr/bin/chromium "$@"
