// The lab's networks, as data: which namespaces exist, how veths join them, their addresses,
// routes and nftables rulesets. `netns.mjs` builds one with `ip` and `nft`, and removes it.
//
// Rules (TESTING.md "A network lab of namespaces"): every namespace is the lab's own (named
// with PREFIX), veths join lab namespaces only (never the machine's own namespace), no route
// leaves the lab, and the "public internet" uses only the documentation ranges 192.0.2.0/24,
// 198.51.100.0/24 and 203.0.113.0/24; private ranges exist only inside routers' LANs.
//
// To add a profile (issue 13: symmetric NAT, UDP blocked, TCP 443 only, one household, a
// network change) add a caller and its router here with `homeRouter()`-style helpers and a
// ruleset; to add server setup S1 (public address on the interface) add a topology whose
// server sits directly on the internet router.

/** Every namespace name starts with this (issue 17's lab; `ip netns` names are global). */
export const PREFIX = process.env.LAB_NETNS_PREFIX || "a17-";

/** The server's public address behind its 1:1 NAT (S2) and its private address. */
export const SERVER_PUBLIC = "203.0.113.10";
export const SERVER_PRIVATE = "10.0.0.10";

/**
 * A home router: WAN on the internet router's point-to-point link, a LAN of one caller, and
 * masquerade (endpoint-independent mapping: Linux keeps the source port when it can).
 * @param {string} name router namespace (without PREFIX)
 * @param {string} caller caller namespace (without PREFIX)
 * @param {{inet: string, wan: string, lan: string, host: string}} a addresses with prefix length
 */
function homeNat(name, caller, a) {
  const gw = a.lan.split("/")[0];
  const wanPeer = a.inet.split("/")[0];
  return {
    nodes: [
      {
        name,
        forward: true,
        routes: [`default via ${wanPeer}`],
        nft: `table ip lab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
}`,
      },
      { name: caller, routes: [`default via ${gw}`] },
    ],
    links: [
      { a: "inet", aIf: `to-${name}`, aAddr: a.inet, b: name, bIf: "wan", bAddr: a.wan },
      { a: name, aIf: "lan", aAddr: a.lan, b: caller, bIf: "eth0", bAddr: a.host },
    ],
  };
}

/**
 * S2 with two C1 callers: the server host on a private address behind a 1:1 NAT router that
 * does not hairpin (as on most cloud VMs), an "internet" router, and two callers each behind
 * a home NAT. `diagram` draws it (docs/networks.md shows it).
 */
export function s2TwoHomes() {
  const home1 = homeNat("home1", "c1", { inet: "198.51.100.1/30", wan: "198.51.100.2/30", lan: "192.168.1.1/24", host: "192.168.1.10/24" });
  const home2 = homeNat("home2", "c2", { inet: "198.51.100.5/30", wan: "198.51.100.6/30", lan: "192.168.2.1/24", host: "192.168.2.10/24" });
  return {
    name: "S2 (server behind 1:1 NAT, no hairpin), C1 x 2 (home NAT)",
    diagram: String.raw`
 caller c1 (Chromium)                                         caller c2 (Chromium)
 192.168.1.10                                                 192.168.2.10
      |                                                             |
 home1: NAT (masquerade)                                      home2: NAT (masquerade)
 WAN 198.51.100.2                                             WAN 198.51.100.6
      |                                                             |
      +------------------ inet: the "internet" router -------------+
                     198.51.100.1 | 198.51.100.5 | 203.0.113.1
                                  |
                natgw: 1:1 NAT 203.0.113.10 <-> 10.0.0.10, no hairpin
                WAN 203.0.113.2, LAN 10.0.0.1
                                  |
                srv 10.0.0.10: nginx (TLS, test CA), alisay serve,
                coturn + its nftables table (all from alisay render)
`,
    server: { ns: "srv", public: SERVER_PUBLIC, private: SERVER_PRIVATE },
    callers: { c1: "c1", c2: "c2" },
    nodes: [
      // The internet: routes the documentation ranges between its links, nothing else.
      { name: "inet", forward: true, routes: [`${SERVER_PUBLIC}/32 via 203.0.113.2`] },
      {
        name: "natgw",
        forward: true,
        routes: ["default via 203.0.113.1"],
        // 1:1 NAT of the server; a packet from the LAN to the public address is dropped
        // (no hairpin), as on most clouds.
        nft: `table ip lab_nat {
  chain prerouting { type nat hook prerouting priority dstnat; iifname "wan" ip daddr ${SERVER_PUBLIC} dnat to ${SERVER_PRIVATE}; }
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" ip saddr ${SERVER_PRIVATE} snat to ${SERVER_PUBLIC}; }
  chain forward { type filter hook forward priority filter; iifname "lan" ip daddr ${SERVER_PUBLIC} counter drop; }
}`,
      },
      { name: "srv", routes: ["default via 10.0.0.1"] },
      ...home1.nodes,
      ...home2.nodes,
    ],
    links: [
      { a: "inet", aIf: "to-natgw", aAddr: "203.0.113.1/30", b: "natgw", bIf: "wan", bAddr: "203.0.113.2/30" },
      { a: "natgw", aIf: "lan", aAddr: "10.0.0.1/24", b: "srv", bIf: "eth0", bAddr: `${SERVER_PRIVATE}/24` },
      ...home1.links,
      ...home2.links,
    ],
  };
}
