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

/** A home router's NAT: masquerade on its WAN (endpoint-independent mapping). */
const MASQUERADE = `table ip lab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
}`;

/**
 * The profiles of issue 13 this lab runs so far, each a router ruleset (C4, TCP 443 only, and
 * C6, a network change, belong to the network check and recovery work of issue 13).
 */
export const PROFILES = {
  C1: { what: "home NAT (masquerade, endpoint-independent mapping)", nft: MASQUERADE },
  C2: {
    what: "symmetric NAT (a new port per destination: masquerade random,fully-random)",
    nft: `table ip lab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" masquerade random,fully-random; }
}`,
  },
  C3: {
    what: "UDP blocked (DNS aside): only TCP leaves the network",
    nft: `table ip lab_nat {
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" masquerade; }
  chain forward { type filter hook forward priority filter; iifname != "wan" meta l4proto udp udp dport != 53 counter drop; }
}`,
  },
  C5: { what: "both callers behind the same NAT (one household, one LAN)", nft: MASQUERADE },
};

/** S1's public address, on its own interface. */
export const S1_PUBLIC = "203.0.113.20";

/**
 * Both server setups and every caller profile at once: S1 (`srv1`, its public address on its
 * interface) and S2 (`srv2` behind `natgw`, 1:1 NAT without hairpin); a reference caller
 * `ref` (C1) for the calls of C1, C2 and C3, and two callers of one household for C5.
 */
export function matrixTopology() {
  const nodes = [
    { name: "inet", forward: true, routes: [`${SERVER_PUBLIC}/32 via 203.0.113.2`] },
    {
      name: "natgw",
      forward: true,
      routes: ["default via 203.0.113.1"],
      nft: `table ip lab_nat {
  chain prerouting { type nat hook prerouting priority dstnat; iifname "wan" ip daddr ${SERVER_PUBLIC} dnat to ${SERVER_PRIVATE}; }
  chain postrouting { type nat hook postrouting priority srcnat; oifname "wan" ip saddr ${SERVER_PRIVATE} snat to ${SERVER_PUBLIC}; }
  chain forward { type filter hook forward priority filter; iifname "lan" ip daddr ${SERVER_PUBLIC} counter drop; }
}`,
    },
    { name: "srv2", routes: ["default via 10.0.0.1"] },
    { name: "srv1", routes: ["default via 203.0.113.17"] },
  ];
  const links = [
    { a: "inet", aIf: "to-natgw", aAddr: "203.0.113.1/30", b: "natgw", bIf: "wan", bAddr: "203.0.113.2/30" },
    { a: "natgw", aIf: "lan", aAddr: "10.0.0.1/24", b: "srv2", bIf: "eth0", bAddr: `${SERVER_PRIVATE}/24` },
    { a: "inet", aIf: "to-srv1", aAddr: "203.0.113.17/28", b: "srv1", bIf: "eth0", bAddr: `${S1_PUBLIC}/28` },
  ];
  // Home routers on /30 links of 198.51.100.0/24; LAN n is 192.168.n.0/24.
  const routers = [
    { name: "home1", profile: "C1", hosts: ["ref"] },
    { name: "home2", profile: "C1", hosts: ["c1"] },
    { name: "sym", profile: "C2", hosts: ["c2"] },
    { name: "udpb", profile: "C3", hosts: ["c3"] },
    { name: "house", profile: "C5", hosts: ["c5a", "c5b"] },
  ];
  routers.forEach((r, i) => {
    const n = i + 1;
    const inetIp = `198.51.100.${4 * i + 1}`;
    const lan = `192.168.${n}`;
    const router = { name: r.name, forward: true, routes: [`default via ${inetIp}`], nft: PROFILES[r.profile].nft };
    links.push({ a: "inet", aIf: `to-${r.name}`, aAddr: `${inetIp}/30`, b: r.name, bIf: "wan", bAddr: `198.51.100.${4 * i + 2}/30` });
    if (r.hosts.length > 1) router.bridge = { name: "br0", addr: `${lan}.1/24`, ports: r.hosts.map((h) => `lan-${h}`) };
    r.hosts.forEach((h, j) => {
      nodes.push({ name: h, routes: [`default via ${lan}.1`] });
      links.push({ a: r.name, aIf: r.hosts.length > 1 ? `lan-${h}` : "lan", aAddr: r.hosts.length > 1 ? null : `${lan}.1/24`, b: h, bIf: "eth0", bAddr: `${lan}.${10 + j}/24` });
    });
    nodes.push(router);
  });
  return {
    name: "S1 and S2 with callers C1, C2, C3, C5",
    servers: {
      S1: { ns: "srv1", public: S1_PUBLIC, what: "the server's public address on its own interface" },
      S2: { ns: "srv2", public: SERVER_PUBLIC, private: SERVER_PRIVATE, what: "a cloud VM: private address behind 1:1 NAT, no hairpin" },
    },
    /** Which two callers make each profile's call. */
    pairs: { C1: ["ref", "c1"], C2: ["ref", "c2"], C3: ["ref", "c3"], C5: ["c5a", "c5b"] },
    callers: ["ref", "c1", "c2", "c3", "c5a", "c5b"],
    diagram: String.raw`
   ref (C1)     c1 (C1)      c2 (C2)        c3 (C3)        c5a, c5b (C5: one LAN)
      |            |            |              |                  |
   home1        home2        sym            udpb             house
   masquerade   masquerade   masquerade     masquerade,      masquerade
                             random,        UDP dropped
                             fully-random   (DNS aside)
      |            |            |              |                  |
      +------------+------------+------ inet --+------------------+
                                       |   |
         S1: srv1 203.0.113.20 --------+   +------ natgw: 1:1 NAT 203.0.113.10 <-> 10.0.0.10
             (public address on its              (no hairpin)
              interface)                                |
                                                 S2: srv2 10.0.0.10
 Each server: nginx (TLS, test CA), alisay serve, coturn + its nftables table, from alisay render.
`,
    nodes,
    links,
  };
}
