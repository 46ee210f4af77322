#!/usr/bin/python3
"""The role's pre-flight and "up, not just active" check, run on the host (Python 3 stdlib).

Usage:
  alisay-listeners.py preflight LISTENERS_JSON
      Every listener the new config needs (`alisay check --listeners --json`) against the
      host's sockets (/proc/net/{tcp,tcp6,udp,udp6}: TCP in LISTEN, UDP bound and not
      connected). Sockets of alisay.service and alisay-coturn.service are ignored (the
      deployment being replaced); on nginx's ports, nginx.service's own sockets are ignored too
      (nginx shares a port among its sites by server_name). Any other holder on an overlapping
      address is a clash: exit 1, one line per clash naming the port, the process (name and
      PID), its systemd unit and the config key to change.
  alisay-listeners.py wait LISTENERS_JSON SECONDS
      Waits until every single-port listener of alisay.service and alisay-coturn.service is
      held by a process of that unit (systemd's "active" only means the process started);
      exit 1 naming the ones still missing after SECONDS.
"""

import json
import os
import socket
import struct
import sys
import time

OWN_UNITS = {"alisay.service", "alisay-coturn.service"}


def parse_addr(hexaddr, v6):
    raw = bytes.fromhex(hexaddr)
    if v6:
        # Four host-order 32-bit words.
        raw = b"".join(struct.pack("<I", struct.unpack(">I", raw[i:i + 4])[0]) for i in range(0, 16, 4))
        addr = socket.inet_ntop(socket.AF_INET6, raw)
        if addr.startswith("::ffff:") and "." in addr:
            return addr[7:]
        return addr
    return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hexaddr, 16)))


def host_sockets():
    """[(proto, addr, port, inode)] of listening TCP and bound, unconnected UDP sockets."""
    out = []
    for proto, name, v6 in (("tcp", "tcp", False), ("tcp", "tcp6", True),
                            ("udp", "udp", False), ("udp", "udp6", True)):
        try:
            lines = open("/proc/net/" + name, encoding="ascii").read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, state, inode = f[1], f[3], f[9]
            # TCP: 0A = LISTEN. UDP: 07 = not connected (a connected UDP socket is a client).
            if (proto == "tcp" and state != "0A") or (proto == "udp" and state != "07"):
                continue
            addr_hex, port_hex = local.split(":")
            out.append((proto, parse_addr(addr_hex, v6), int(port_hex, 16), inode))
    return out


def socket_owners():
    """{inode: (pid, comm, unit)} from /proc/*/fd and /proc/*/cgroup."""
    owners = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir("/proc/%s/fd" % pid)
        except OSError:
            continue
        inodes = []
        for fd in fds:
            try:
                link = os.readlink("/proc/%s/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.append(link[8:-1])
        if not inodes:
            continue
        try:
            comm = open("/proc/%s/comm" % pid, encoding="utf-8").read().strip()
            cgroup = open("/proc/%s/cgroup" % pid, encoding="utf-8").read()
        except OSError:
            continue
        unit = "no systemd unit"
        for line in cgroup.splitlines():
            path = line.split(":", 2)[-1]
            for part in reversed(path.split("/")):
                if part.endswith((".service", ".scope")):
                    unit = part
                    break
            if unit != "no systemd unit":
                break
        for inode in inodes:
            owners.setdefault(inode, (int(pid), comm, unit))
    return owners


def is_any(addr):
    return addr in ("0.0.0.0", "::")


def overlaps(wanted, held):
    """wanted: our addresses ([] = every address); held: one socket's address."""
    if not wanted or is_any(held):
        return True
    return held in wanted


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)["listeners"]


def held(listeners):
    sockets = host_sockets()
    owners = socket_owners()
    for want in listeners:
        for proto, addr, port, inode in sockets:
            if proto != want["protocol"] or not want["port_min"] <= port <= want["port_max"]:
                continue
            if not overlaps(want["addresses"], addr):
                continue
            yield want, addr, port, owners.get(inode, (0, "unknown process", "unknown unit"))


def preflight(path):
    listeners = load(path)
    found = {}
    for want, addr, port, (pid, comm, unit) in held(listeners):
        if unit in OWN_UNITS:
            continue
        if want["shared_by_nginx"] and unit == "nginx.service":
            continue
        addrs = found.setdefault((port, want["protocol"], want["key"], comm, pid, unit), [])
        if addr not in addrs:
            addrs.append(addr)
    clashes = ["%s/%s (%s) is already held by %s (PID %d, unit %s) on %s: "
               "change %s in alisay.yaml, or stop that service"
               % (port, proto, key, comm, pid, unit, ", ".join(addrs), key)
               for (port, proto, key, comm, pid, unit), addrs in found.items()]
    if clashes:
        print("Pre-flight: the new config needs ports other programs hold (nothing was changed):")
        for line in clashes:
            print("  - " + line)
        sys.exit(1)
    print("Pre-flight: every listener the config needs is free (%d checked)" % len(listeners))


def wait(path, seconds):
    listeners = [l for l in load(path)
                 if l["unit"] in OWN_UNITS and l["port_min"] == l["port_max"]]
    deadline = time.monotonic() + seconds
    while True:
        up = {(w["key"], w["protocol"]) for w, _, _, (_, _, unit) in held(listeners)
              if unit == w["unit"]}
        missing = [l for l in listeners if (l["key"], l["protocol"]) not in up]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    if missing:
        print("Not listening after %ss (systemd may say active, but these sockets are not open):" % seconds)
        for l in missing:
            print("  - %s/%s (%s) of %s" % (l["port_min"], l["protocol"], l["key"], l["unit"]))
        sys.exit(1)
    print("Listening: " + ", ".join("%s/%s" % (l["port_min"], l["protocol"]) for l in listeners))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "preflight":
        preflight(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "wait":
        wait(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(__doc__)
