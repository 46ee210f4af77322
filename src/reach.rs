//! `alisay check --listeners --reach HOST`: from a machine OUTSIDE the host, whether the host
//! firewall lets callers reach every public listener of the config ([`Config::listeners`]).
//!
//! UDP TURN ports get a STUN Binding request (RFC 8489 section 6: a 20-byte header with the
//! magic cookie and a random transaction id, no attributes) and must answer with a message of
//! the same transaction id; TCP ports must accept a connection. Each is tried three times with
//! a 2 s timeout. The relay port range cannot be checked without a TURN allocation, so it is
//! listed as not checked. Output: one `PASS`/`FAIL`/`SKIP` line per port; every `FAIL` says
//! `<port>/<proto> unreachable from outside: open it in the host firewall`; exit 1 if any
//! failed, 64 if HOST does not resolve.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

const TRIES: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(2);

/// Checks every public listener of `config` on `host` and prints one line per port.
pub fn main(config: &Config, host: &str) -> ExitCode {
    let mut failed = 0;
    let mut seen = Vec::new();
    for l in config.listeners().into_iter().filter(|l| l.public) {
        let what = l.port_text();
        if seen.contains(&what) {
            continue;
        }
        seen.push(what.clone());
        if l.port_min != l.port_max {
            println!(
                "SKIP  {what} ({}): needs a TURN allocation; `alisay probe` covers it",
                l.key
            );
            continue;
        }
        let addr = match (host, l.port_min).to_socket_addrs().map(|mut a| a.next()) {
            Ok(Some(a)) => a,
            _ => {
                eprintln!("alisay check --reach: cannot resolve `{host}`");
                return ExitCode::from(crate::cli::EX_USAGE);
            }
        };
        let ok = (0..TRIES).any(|_| {
            if l.protocol == "udp" {
                stun_binding(addr)
            } else {
                TcpStream::connect_timeout(&addr, TIMEOUT).is_ok()
            }
        });
        if ok {
            println!("PASS  {what} reachable at {addr} ({})", l.key);
        } else {
            failed += 1;
            println!(
                "FAIL  {what} unreachable from outside: open it in the host firewall ({} at {addr})",
                l.key
            );
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One STUN Binding request to `addr`; true if a message with its transaction id came back.
fn stun_binding(addr: SocketAddr) -> bool {
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let Ok(socket) = UdpSocket::bind(bind) else {
        return false;
    };
    if socket.set_read_timeout(Some(TIMEOUT)).is_err() {
        return false;
    }
    // Connected: an ICMP port unreachable ends the wait at once (ECONNREFUSED).
    if socket.connect(addr).is_err() {
        return false;
    }
    let txid: [u8; 12] = rand::random();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&txid);
    if socket.send(&request).is_err() {
        return false;
    }
    let mut buf = [0u8; 1500];
    while let Ok(n) = socket.recv(&mut buf) {
        if n >= 20 && buf[8..20] == txid {
            return true;
        }
    }
    false
}
