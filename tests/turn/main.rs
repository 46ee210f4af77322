//! coturn probes (TESTING.md, "coturn 4.6.1"): the real coturn, started from the runtime config
//! `alisay coturn-config` writes for a production policy, must refuse every denied peer with
//! `403 Forbidden IP`, refuse a wrong secret, an expired username and a tampered password with
//! `401`, and accept the credentials `alisay serve` issues (`alisay::turn::credentials`).
//!
//! Two independent clients check each case: coturn's own `turnutils_uclient` (exact output
//! lines) and the project's TURN client (`alisay::probe::turn`, exact error codes on the wire).
//! Everything runs inside a network namespace this test creates (`unshare -n`, only `lo` up):
//! the test re-executes itself there, so a wrongly allowed relay still cannot leave the machine.
//!
//! Programs come from apt (`coturn`, `util-linux`, `iproute2`); a missing one FAILS the test.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use alisay::config::Config;
use alisay::probe::turn::{Outcome, Session, TurnUrl};
use alisay::turn::{Credentials, TurnSecret, credentials};

#[path = "../render/support.rs"]
mod support;
use support::{Proc, require};

/// Set (to anything) in the re-executed test inside the namespace. Not `ALISAY_*`: the
/// config loader reads every variable with that prefix.
const IN_NETNS: &str = "TURN_PROBE_IN_NETNS";
/// The port `turnutils_peer` echoes on.
const PEER_PORT: &str = "3480";
/// What `turnutils_uclient` prints when a CreatePermission/ChannelBind gets 403.
const UCLIENT_FORBIDDEN: &str = "channel bind: error 403 (Forbidden IP)";
/// What `turnutils_uclient` prints when every Allocate is answered 401 (it retries the
/// challenge and gives up).
const UCLIENT_NO_ALLOCATION: &str = "ERROR: Cannot complete Allocation";

/// Peers the production policy must refuse, with why (the table in the report/docs).
const DENIED_PEERS: &[(&str, &str)] = &[
    ("127.0.0.1", "loopback"),
    ("0.0.0.0", "unspecified (CVE-2020-26262)"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("169.254.169.254", "cloud metadata"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("::1", "IPv6 loopback"),
    ("::", "IPv6 unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback (CVE-2026-27624)"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
    ("2002:7f00:1::1", "6to4 of 127.0.0.1"),
    ("fd00::1", "unique local"),
    ("fe80::1", "IPv6 link-local"),
];

#[test]
fn coturn_enforces_the_rendered_turn_policy() {
    if std::env::var_os(IN_NETNS).is_some() {
        probe_in_namespace();
        return;
    }
    support::rerun_in_namespace(
        "coturn_enforces_the_rendered_turn_policy",
        IN_NETNS,
        &["-n"],
        "ip link set lo up",
        &[],
        Duration::from_secs(120),
    );
}

/// Starts coturn on `conf`, logging to `<dir>/<name>.log`.
fn start_coturn(conf: &Path, dir: &Path, name: &str) -> Proc {
    Proc::spawn(
        "turnserver",
        Command::new(require("turnserver"))
            .arg("-c")
            .arg(conf)
            .current_dir(dir),
        &dir.join(format!("{name}.log")),
    )
}

/// `turnutils_uclient` with the given credentials towards `peer`; returns stdout + stderr.
fn uclient(creds: &Credentials, peer: &str, port: u16, messages: u32) -> String {
    let out = Command::new("timeout")
        .arg("20")
        .arg(require("turnutils_uclient"))
        .args(["-n", &messages.to_string(), "-m", "1", "-c", "-X"])
        .args(["-u", &creds.username, "-w", &creds.credential])
        .args([
            "-e",
            peer,
            "-r",
            PEER_PORT,
            "-p",
            &port.to_string(),
            "127.0.0.1",
        ])
        .output()
        .expect("run turnutils_uclient");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Allocates with the project's TURN client; `Refused(code)` or the relayed address.
async fn allocate(
    url: &TurnUrl,
    creds: &Credentials,
    ipv6: bool,
) -> (Session, Outcome<std::net::SocketAddr>) {
    let mut session = Session::open(
        url,
        None,
        &creds.username,
        &creds.credential,
        Duration::from_secs(2),
    )
    .await
    .expect("open a TURN session");
    let outcome = session.allocate(ipv6).await.expect("an answer to Allocate");
    (session, outcome)
}

/// Waits (bounded) until coturn answers an Allocate with valid credentials.
async fn wait_ready(url: &TurnUrl, creds: &Credentials, log: &Path) {
    for _ in 0..40 {
        if let Ok(mut s) = Session::open(
            url,
            None,
            &creds.username,
            &creds.credential,
            Duration::from_millis(250),
        )
        .await
            && let Ok(Outcome::Success(_)) = s.allocate(false).await
        {
            s.release().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "coturn did not answer within 14 s:\n{}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

fn probe_in_namespace() {
    // The isolation this test relies on: a namespace with nothing but loopback.
    // (/proc/self/net follows the network namespace; /sys/class/net would not.)
    let links: Vec<String> = fs::read_to_string("/proc/self/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|name| name.trim().to_owned())
        .collect();
    assert_eq!(links, ["lo"], "not in a loopback-only network namespace");

    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    fs::create_dir(&run_dir).unwrap();
    fs::set_permissions(&run_dir, fs::Permissions::from_mode(0o700)).unwrap();
    // Characters coturn's config parser could trip on (`#`, `=`, `+`, `/`), and a random
    // part so that finding it anywhere means it leaked from this run.
    let secret_text = format!("probe#=+/{:016x}", rand::random::<u64>());
    let secret_path = tmp.path().join("turn-secret");
    fs::write(&secret_path, format!("{secret_text}\n")).unwrap();
    fs::set_permissions(&secret_path, fs::Permissions::from_mode(0o600)).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/turn/probe.yaml");
    let runtime_conf = run_dir.join("turnserver.conf");

    // 1. `alisay coturn-config`, exactly as ExecStartPre runs it (paths via the environment).
    let o = Command::new(env!("CARGO_BIN_EXE_alisay"))
        .args(["coturn-config", "--config"])
        .arg(&fixture)
        .arg("--out")
        .arg(&runtime_conf)
        .env("ALISAY_TURN__SECRET_FILE", &secret_path)
        .env("ALISAY_PATHS__COTURN_RUNTIME_DIR", &run_dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "coturn-config: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::metadata(&runtime_conf).unwrap().mode() & 0o777, 0o600);
    let runtime = fs::read_to_string(&runtime_conf).unwrap();
    assert!(runtime.contains(&format!("\nstatic-auth-secret={secret_text}\n")));
    for test_only in ["allow-loopback-peers", "allowed-peer-ip"] {
        assert!(
            !runtime.contains(&format!("\n{test_only}")),
            "production has {test_only}"
        );
    }

    // The secret as `alisay serve` reads it, and the credentials it issues.
    let secret = TurnSecret::from_file(&secret_path).unwrap();
    let ttl = Duration::from_secs(3600);
    let label = || format!("{:012x}", rand::random::<u64>() >> 16);
    let issue = || credentials(&secret, &label(), SystemTime::now(), ttl);
    let valid = issue();
    let wrong_secret = credentials(
        &TurnSecret::new("not-the-secret"),
        &label(),
        SystemTime::now(),
        ttl,
    );
    let expired = credentials(
        &secret,
        &label(),
        SystemTime::now() - Duration::from_secs(7200),
        ttl,
    );
    let mut tampered = credentials(&secret, &label(), SystemTime::now(), ttl);
    let first = tampered.credential.remove(0);
    tampered
        .credential
        .insert(0, if first == 'A' { 'B' } else { 'A' });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = TurnUrl::parse("turn:127.0.0.1:3478?transport=udp").unwrap();
    let config = Config::load_file(&fixture).unwrap();
    let relay_ports = config.turn.min_port..=config.turn.max_port;

    // turnutils_peer: a UDP echo server for the relayed round trip.
    let _peer = Proc::spawn(
        "turnutils_peer",
        Command::new(require("turnutils_peer")).args(["-L", "127.0.0.1", "-p", PEER_PORT]),
        &tmp.path().join("peer.log"),
    );
    let coturn = start_coturn(&runtime_conf, tmp.path(), "coturn-production");
    rt.block_on(wait_ready(&url, &valid, &coturn.log));

    // 2. Nothing but the runtime config holds the secret: not coturn's arguments or
    //    environment, not the rendered files.
    for what in ["cmdline", "environ"] {
        let bytes = fs::read(format!("/proc/{}/{what}", coturn.pid())).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&secret_text),
            "the secret is in coturn's {what}"
        );
    }
    let rendered_dir = tmp.path().join("rendered");
    let mut render_config = config.clone();
    render_config.turn.secret_file = Some(secret_path.clone());
    render_config.paths.coturn_runtime_dir = PathBuf::from("/run/alisay-coturn");
    for file in alisay::render::render_to_dir(&render_config, &rendered_dir).unwrap() {
        assert!(
            !fs::read_to_string(&file).unwrap().contains(&secret_text),
            "the secret is in {}",
            file.display()
        );
    }

    println!("\n{:<24} {:<40} {:<16} wire", "peer", "why", "uclient");
    // 3. Issued credentials are accepted: the allocation succeeds, on a relay port in range.
    //    One IPv4 and one IPv6 allocation: a permission must match the relay's family.
    let mut sessions = Vec::new();
    for (ipv6, relay_ip) in [(false, "127.0.0.1"), (true, "::1")] {
        let (session, outcome) = rt.block_on(allocate(&url, &issue(), ipv6));
        match outcome {
            Outcome::Success(relayed) => {
                assert_eq!(relayed.ip().to_string(), relay_ip);
                assert!(relay_ports.contains(&relayed.port()), "{relayed}");
            }
            Outcome::Refused(code, why) => panic!("issued credentials refused: {code} {why}"),
        }
        sessions.push(session);
    }

    // 4. Every denied peer: 403 Forbidden IP, from both clients.
    for (peer, why) in DENIED_PEERS {
        // A fresh username per run, as `alisay serve` issues one per session (user-quota
        // counts allocations per username, and uclient leaves its allocations to expire).
        let out = uclient(&issue(), peer, 3478, 3);
        assert!(
            out.contains(UCLIENT_FORBIDDEN) && !out.contains("tot_recv_msgs"),
            "uclient towards {peer}:\n{out}"
        );
        let peer_ip: std::net::IpAddr = peer.parse().unwrap();
        let session = &mut sessions[usize::from(peer_ip.is_ipv6())];
        let wire = rt
            .block_on(session.create_permission(peer_ip))
            .expect("an answer to CreatePermission");
        assert!(
            matches!(wire, Outcome::Refused(403, _)),
            "CreatePermission {peer}: {wire:?}"
        );
        println!("{peer:<24} {why:<40} {:<16} {wire:?}", "403 Forbidden IP");
    }
    for mut session in sessions {
        rt.block_on(session.release());
    }

    // 5. Bad credentials: 401 on the wire, no allocation for uclient.
    for (name, creds) in [
        ("wrong secret", &wrong_secret),
        ("expired username", &expired),
        ("tampered password", &tampered),
    ] {
        let out = uclient(creds, "203.0.113.1", 3478, 1);
        assert!(
            out.contains(UCLIENT_NO_ALLOCATION) && !out.contains(UCLIENT_FORBIDDEN),
            "uclient with a {name}:\n{out}"
        );
        let (_, wire) = rt.block_on(allocate(&url, creds, false));
        assert!(matches!(wire, Outcome::Refused(401, _)), "{name}: {wire:?}");
        println!(
            "{:<24} {:<40} {:<16} {wire:?}",
            "(allocate)", name, "no allocation"
        );
    }
    let production_log = coturn.stop();
    assert!(
        !production_log.contains(&secret_text),
        "coturn logged the secret"
    );
    assert!(
        !production_log.contains("Wrong address format"),
        "coturn dropped a peer range:\n{production_log}"
    );

    // 6. The loopback e2e configuration (production + exactly the two test lines) relays for
    //    real: a round trip through coturn to the echo peer with the issued credentials.
    let loopback_conf = run_dir.join("turnserver-loopback.conf");
    fs::write(
        &loopback_conf,
        format!("{runtime}allow-loopback-peers\nallowed-peer-ip=127.0.0.1\n"),
    )
    .unwrap();
    fs::set_permissions(&loopback_conf, fs::Permissions::from_mode(0o600)).unwrap();
    let coturn = start_coturn(&loopback_conf, tmp.path(), "coturn-loopback");
    rt.block_on(wait_ready(&url, &valid, &coturn.log));
    let out = uclient(&issue(), "127.0.0.1", 3478, 1);
    assert!(
        out.contains("tot_send_msgs=1, tot_recv_msgs=1")
            && out.contains("Total lost packets 0 (0.000000%)"),
        "relay through the loopback test config:\n{out}"
    );
    println!(
        "{:<24} {:<40} {:<16} relayed",
        "127.0.0.1", "loopback test config", "1/1 echoed"
    );
    let log = coturn.stop();
    assert!(!log.contains(&secret_text));

    // coturn wrote nothing outside its runtime directory and the logs we captured.
    let mut written: Vec<String> = fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "turndb",
            "turnserver-loopback.conf",
            "turnserver.conf",
            "turnserver.pid"
        ]
    );
}
