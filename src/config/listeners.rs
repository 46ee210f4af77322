//! The sockets a deployment of this config listens on: the one list that the Ansible role's
//! pre-flight (`ansible/roles/alisay/files/alisay-preflight.py`), `alisay check --listeners`
//! and an administrator opening ports in the host firewall all use (`docs/deploy.md`,
//! "Shared hosts").
//!
//! Facts this follows: `alisay serve` binds `server.listen` and `server.metrics_listen`
//! (TCP); the rendered coturn config (`coturn/turnserver.conf.j2`) listens on
//! `turn.listening_port` over UDP and TCP, on `turn.tls_listening_port` over TCP only when
//! `turn.tls_cert` is set (`no-dtls`: no UDP there), relays over UDP only (`no-tcp-relay`) on
//! `turn.min_port..=turn.max_port`, and has `no-rfc5780` (no alternative ports); the rendered
//! nginx site listens on `nginx.http_port` and `nginx.https_port` (TCP) at
//! `nginx.listen_address`.

use std::net::IpAddr;

use serde::Serialize;

use super::Config;

/// One listener (or port range) of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listener {
    /// The config key that sets the port, e.g. `turn.listening_port`: the key to change when
    /// another program holds it.
    pub key: &'static str,
    /// `"tcp"` or `"udp"`.
    pub protocol: &'static str,
    /// Addresses it binds; empty means every address of the host (both families).
    pub addresses: Vec<IpAddr>,
    /// First port (inclusive).
    pub port_min: u16,
    /// Last port (inclusive); equal to `port_min` for a single port.
    pub port_max: u16,
    /// The systemd unit whose process holds the socket: `alisay.service`,
    /// `alisay-coturn.service` or `nginx.service`.
    pub unit: &'static str,
    /// Whether another program may hold the same port legitimately: nginx shares its ports
    /// among all the sites of the host (chosen by `server_name`/SNI), so a socket of
    /// `nginx.service` on an nginx port is not a clash.
    pub shared_by_nginx: bool,
    /// Whether callers reach it from outside, i.e. the host firewall must let it in (not the
    /// loopback listeners behind nginx).
    pub public: bool,
}

impl Listener {
    /// `3478/udp`, `49160-49200/udp`.
    pub fn port_text(&self) -> String {
        if self.port_min == self.port_max {
            format!("{}/{}", self.port_min, self.protocol)
        } else {
            format!("{}-{}/{}", self.port_min, self.port_max, self.protocol)
        }
    }

    /// `*` for every address, else the addresses separated by commas.
    pub fn address_text(&self) -> String {
        if self.addresses.is_empty() {
            "*".to_owned()
        } else {
            let a: Vec<String> = self.addresses.iter().map(IpAddr::to_string).collect();
            a.join(",")
        }
    }
}

impl Config {
    /// Every listener a deployment of this config opens on the host, in a fixed order
    /// (server, metrics, nginx, TURN, relay range). See the module documentation for the facts
    /// each entry follows.
    pub fn listeners(&self) -> Vec<Listener> {
        let s = &self.server;
        let n = &self.nginx;
        let t = &self.turn;
        let one = |ip: IpAddr| {
            if ip.is_unspecified() {
                Vec::new()
            } else {
                vec![ip]
            }
        };
        let many = |ips: &[IpAddr]| {
            if ips.iter().any(IpAddr::is_unspecified) {
                Vec::new()
            } else {
                ips.to_vec()
            }
        };
        let mut out = vec![Listener {
            key: "server.listen",
            protocol: "tcp",
            addresses: one(s.listen.ip()),
            port_min: s.listen.port(),
            port_max: s.listen.port(),
            unit: "alisay.service",
            shared_by_nginx: false,
            public: !s.listen.ip().is_loopback(),
        }];
        if let Some(m) = s.metrics_listen {
            out.push(Listener {
                key: "server.metrics_listen",
                protocol: "tcp",
                addresses: one(m.ip()),
                port_min: m.port(),
                port_max: m.port(),
                unit: "alisay.service",
                shared_by_nginx: false,
                public: false,
            });
        }
        let nginx_addr: Vec<IpAddr> = {
            let text = n.listen_address.trim();
            let inner = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            inner.parse().map(one).unwrap_or_default()
        };
        let nginx_public = !nginx_addr.iter().all(IpAddr::is_loopback) || nginx_addr.is_empty();
        for (key, port) in [
            ("nginx.https_port", n.https_port),
            ("nginx.http_port", n.http_port),
        ] {
            out.push(Listener {
                key,
                protocol: "tcp",
                addresses: nginx_addr.clone(),
                port_min: port,
                port_max: port,
                unit: "nginx.service",
                shared_by_nginx: true,
                public: nginx_public,
            });
        }
        let turn_addr = many(&t.listening_ips);
        for protocol in ["udp", "tcp"] {
            out.push(Listener {
                key: "turn.listening_port",
                protocol,
                addresses: turn_addr.clone(),
                port_min: t.listening_port,
                port_max: t.listening_port,
                unit: "alisay-coturn.service",
                shared_by_nginx: false,
                public: true,
            });
        }
        if t.tls_cert.is_some() {
            out.push(Listener {
                key: "turn.tls_listening_port",
                protocol: "tcp",
                addresses: turn_addr,
                port_min: t.tls_listening_port,
                port_max: t.tls_listening_port,
                unit: "alisay-coturn.service",
                shared_by_nginx: false,
                public: true,
            });
        }
        out.push(Listener {
            key: "turn.min_port",
            protocol: "udp",
            addresses: many(&t.relay_ips),
            port_min: t.min_port,
            port_max: t.max_port,
            unit: "alisay-coturn.service",
            shared_by_nginx: false,
            public: true,
        });
        out
    }

    /// The listeners as JSON: `{"listeners": [...], "firewall": ["3478/udp", ...]}` (the
    /// `--json` form of `alisay check --listeners`).
    pub fn listeners_json(&self) -> String {
        let listeners = self.listeners();
        let firewall: Vec<String> = listeners
            .iter()
            .filter(|l| l.public)
            .map(Listener::port_text)
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "listeners": listeners,
            "firewall": firewall,
        }))
        .expect("listeners serialize")
            + "\n"
    }

    /// The listeners as a table an administrator reads, followed by the ports to open in the
    /// host firewall.
    pub fn listeners_text(&self) -> String {
        let listeners = self.listeners();
        let mut out = format!(
            "{:<16} {:<24} {:<22} {:<24} {}\n",
            "PORT", "ADDRESSES", "UNIT", "KEY", "NOTE"
        );
        for l in &listeners {
            let note = match (l.shared_by_nginx, l.public) {
                (true, _) => "shared with the host's other nginx sites",
                (false, true) => "open it in the host firewall",
                (false, false) => "local only",
            };
            out.push_str(&format!(
                "{:<16} {:<24} {:<22} {:<24} {note}\n",
                l.port_text(),
                l.address_text(),
                l.unit,
                l.key
            ));
        }
        let open: Vec<String> = listeners
            .iter()
            .filter(|l| l.public)
            .map(Listener::port_text)
            .collect();
        out.push_str(&format!(
            "# open in the host firewall: {}\n",
            open.join(" ")
        ));
        out
    }
}
