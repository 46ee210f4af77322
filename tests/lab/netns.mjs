// Builds a topology from topology.mjs out of network namespaces, veths and nftables rulesets,
// and removes it again. Every command is bounded (spawnSync timeout) and fails loudly.

import { spawnSync } from "node:child_process";

import { PREFIX } from "./topology.mjs";

/** Runs a command (10 s at most); throws with its output when it fails. */
export function run(cmd, args, { input, timeoutMs = 10_000, allowFail = false } = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: timeoutMs });
  if (!allowFail && (r.error || r.status !== 0)) {
    throw new Error(`${cmd} ${args.join(" ")}: ${r.error?.message ?? `exit ${r.status}`}\n${r.stderr}${r.stdout}`);
  }
  return r;
}

/** The full namespace name of a topology node. */
export const ns = (name) => `${PREFIX}${name}`;

/** `ip netns exec <ns> <cmd...>` as an argv. */
export const inNs = (name, cmd, ...args) => ["ip", ["netns", "exec", ns(name), cmd, ...args]];

/** Namespaces of this lab that exist now. */
export function existing() {
  const out = run("ip", ["netns", "list"]).stdout;
  return out.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(PREFIX));
}

/**
 * Creates every namespace, veth, address, route and ruleset of `topo`. Refuses to start when
 * a namespace of this lab already exists (another run, or a leftover: run.sh removes those).
 */
export function build(topo) {
  const left = existing();
  if (left.length) throw new Error(`lab namespaces already exist: ${left.join(" ")} (another lab run? tests/lab/run.sh removes leftovers)`);
  for (const node of topo.nodes) {
    run("ip", ["netns", "add", ns(node.name)]);
    run("ip", ["-n", ns(node.name), "link", "set", "lo", "up"]);
    // Forwarding only in routers; never answer for addresses of other links.
    run("ip", ["netns", "exec", ns(node.name), "sysctl", "-qw", `net.ipv4.ip_forward=${node.forward ? 1 : 0}`]);
    run("ip", ["netns", "exec", ns(node.name), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
  }
  for (const l of topo.links) {
    // Created inside namespace a with its peer directly in namespace b: never in ours.
    run("ip", ["-n", ns(l.a), "link", "add", l.aIf, "type", "veth", "peer", "name", l.bIf, "netns", ns(l.b)]);
    for (const [n, ifname, addr] of [[l.a, l.aIf, l.aAddr], [l.b, l.bIf, l.bAddr]]) {
      if (addr) run("ip", ["-n", ns(n), "addr", "add", addr, "dev", ifname]);
      run("ip", ["-n", ns(n), "link", "set", ifname, "up"]);
    }
  }
  for (const node of topo.nodes) {
    // A LAN of several hosts: a bridge in the router, its ports the veths without address.
    const br = node.bridge;
    if (!br) continue;
    run("ip", ["-n", ns(node.name), "link", "add", br.name, "type", "bridge"]);
    run("ip", ["-n", ns(node.name), "addr", "add", br.addr, "dev", br.name]);
    run("ip", ["-n", ns(node.name), "link", "set", br.name, "up"]);
    for (const port of br.ports) run("ip", ["-n", ns(node.name), "link", "set", port, "master", br.name]);
  }
  for (const node of topo.nodes) {
    for (const route of node.routes ?? []) run("ip", ["-n", ns(node.name), "route", "add", ...route.split(" ")]);
    if (node.nft) run("ip", ["netns", "exec", ns(node.name), "nft", "-f", "-"], { input: node.nft });
  }
}

/** Removes every namespace of this lab (processes still inside are killed first, by PID). */
export function destroy() {
  for (const name of existing()) {
    const pids = run("ip", ["netns", "pids", name], { allowFail: true }).stdout.split("\n").filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
    }
    run("ip", ["netns", "delete", name], { allowFail: true });
  }
}

