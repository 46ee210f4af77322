//! `alisay probe` against real stacks: the real `alisay serve` binary and Debian's coturn
//! (`turnserver`), each test in its own loopback-only network namespace (`unshare -n`), so
//! fixed ports are free and a wrongly allowed relay cannot leave the machine.
//!
//! - a good stack (rendered coturn config with the production denied list, TURN over UDP, TCP
//!   and TLS) passes every check;
//! - a broken HTTP surface (`/turn-credentials` open, a foreign origin allowed) fails exactly
//!   those lines;
//! - a coturn whose denied ranges are written in CIDR (which coturn 4.6.1 drops) is flagged as
//!   an open relay, line by line;
//! - a coturn with another secret than alisay's fails the allocations (401);
//! - a coturn that may not reach its own relay address (a host behind 1:1 NAT before issue
//!   17) fails the relay-to-relay check, the path of every Relay-only call.
//!
//! Each test re-runs itself inside `unshare -n` (as root, like the rest of the suite); a
//! missing `unshare`, `turnserver` or `openssl` is a failure, never a skip.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use alisay::config::IpRange;

const ALISAY: &str = env!("CARGO_BIN_EXE_alisay");
/// Set in the re-executed test process that runs inside the namespace.
/// (Not `ALISAY_`-prefixed: `alisay serve` reads those as config overrides.)
const IN_NETNS: &str = "PROBE_TEST_IN_NETNS";
const ORIGIN: &str = "http://127.0.0.1:8787";
/// coturn's relay addresses: on a veth inside the test's namespace (see [`in_netns`]),
/// outside every denied range, so two allocations may relay to each other.
const RELAY_V4: &str = "100.128.0.1";
const RELAY_V6: &str = "2a01:4f8:ffff::1";
const TURN_URLS: [&str; 3] = [
    "turn:127.0.0.1:3478?transport=udp",
    "turn:127.0.0.1:3478?transport=tcp",
    "turns:localhost:5349?transport=tcp",
];

/// Runs the calling test `name` again inside a fresh loopback-only network namespace and
/// asserts it passed there. Returns `true` when already inside (the caller runs its body).
fn in_netns(name: &str) -> bool {
    in_netns_with_hosts(name, None)
}

/// [`in_netns`], with `/etc/hosts` replaced by `hosts` inside the namespace (a private mount
/// namespace too, so the machine's own file is never touched).
fn in_netns_with_hosts(name: &str, hosts: Option<&str>) -> bool {
    if std::env::var_os(IN_NETNS).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = tempfile::tempdir().expect("a temp dir");
    let hosts_file = dir.path().join("hosts");
    std::fs::write(&hosts_file, hosts.unwrap_or_default()).expect("write hosts");
    let out = Command::new("timeout")
        .args(["--kill-after=5", "120", "unshare", "-n", "-m", "--", "sh", "-c"])
        .arg(
            // A veth pair (both ends inside the namespace) gives coturn a relay address
            // that is not loopback, as on a real host: relay-to-relay (the probe's
            // turn-relay-to-relay, every Relay-only call) needs one coturn may reach.
            r#"ip link set lo up && ip link add probe0 type veth peer name probe1 && ip addr add 100.128.0.1/24 dev probe0 && ip -6 addr add 2a01:4f8:ffff::1/64 dev probe0 nodad && ip link set probe1 up && ip link set probe0 up && { [ -z "$PROBE_TEST_HOSTS" ] || mount --bind "$PROBE_TEST_HOSTS" /etc/hosts; } && exec "$0" "$@""#,
        )
        .arg(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(IN_NETNS, "1")
        .env(
            "PROBE_TEST_HOSTS",
            if hosts.is_some() {
                hosts_file.as_os_str()
            } else {
                std::ffi::OsStr::new("")
            },
        )
        .output()
        .expect("run unshare (util-linux) and timeout (coreutils)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed;"),
        "{name} failed inside `unshare -n` ({}):\n{stdout}\n{stderr}",
        out.status
    );
    print!("{stdout}");
    false
}

/// Processes of one stack; killed (and reaped) when the test ends, however it ends.
struct Stack {
    dir: tempfile::TempDir,
    children: Vec<(&'static str, Child)>,
    /// The `public_origin` and the origin probed.
    origin: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Stack {
    fn new(origin: &str) -> Stack {
        Stack {
            dir: tempfile::tempdir().expect("a temp dir"),
            children: Vec::new(),
            origin: origin.to_owned(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn spawn(&mut self, what: &'static str, cmd: &mut Command, log: &str) {
        let file = std::fs::File::create(self.path(log)).expect("create a log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup a log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        self.children.push((what, child));
    }

    /// Waits (at most 10 s) until `addr` accepts TCP connections; panics with the logs if a
    /// child exits or time runs out.
    fn wait_for(&mut self, addr: &str) {
        let addr: SocketAddr = addr.parse().expect("an address");
        for _ in 0..200 {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return;
            }
            let exited = self
                .children
                .iter_mut()
                .find_map(|(what, child)| Some((*what, child.try_wait().ok()??)));
            if let Some((what, status)) = exited {
                panic!(
                    "{what} exited ({status}) before {addr} opened:\n{}\n{}",
                    self.log("coturn.log"),
                    self.log("alisay.log")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{addr} did not open within 10 s");
    }

    /// Writes a private file (mode 0600).
    fn write_private(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write a file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        p
    }

    /// A test CA and a leaf for `localhost`/127.0.0.1 signed by it (`ca.pem`, `leaf.pem`,
    /// `leaf.key`).
    fn make_certs(&self) {
        let d = self.dir.path();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(d)
                .output()
                .expect("run openssl (apt-get install openssl)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
        run(&[
            &["req", "-x509", "-nodes", "-days", "2"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=probe test CA",
            ],
        ]
        .concat());
        run(&[
            &["req", "-nodes"],
            &ec[..],
            &[
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        std::fs::write(
            d.join("leaf.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .expect("write leaf.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "leaf.pem",
            "-extfile",
            "leaf.ext",
        ]);
    }

    /// The config text: development mode, `alisay serve` on 127.0.0.1:8787, TURN on UDP/TCP
    /// 3478 and TLS 5349 with the secret in `secret`, `extra` appended at the top level, and
    /// coturn's runtime files in the temp dir when `coturn_runtime` (`alisay render` wants
    /// that directory under /run, `alisay coturn-config` takes any).
    fn config_text(&self, coturn_runtime: bool, extra: &str) -> String {
        let d = self.dir.path().display();
        let urls: String = TURN_URLS
            .iter()
            .map(|u| format!("    - \"{u}\"\n"))
            .collect();
        let paths = if coturn_runtime {
            format!("paths:\n  coturn_runtime_dir: {d}/run\n")
        } else {
            String::new()
        };
        format!(
            "mode: development\n\
             public_origin: \"{origin}\"\n\
             server:\n  listen: \"127.0.0.1:8787\"\n\
             turn:\n  urls:\n{urls}\
             \x20 secret_file: {d}/secret\n\
             \x20 realm: probe.test\n\
             \x20 listening_ips: [\"127.0.0.1\", \"::1\"]\n\
             \x20 relay_ips: [\"{RELAY_V4}\", \"{RELAY_V6}\"]\n\
             \x20 tls_cert: {d}/leaf.pem\n\
             \x20 tls_key: {d}/leaf.key\n\
             {paths}{extra}",
            origin = self.origin
        )
    }

    /// Writes `alisay.yaml` (see [`Stack::config_text`]).
    fn write_config(&self, extra: &str) -> PathBuf {
        let p = self.path("alisay.yaml");
        std::fs::write(&p, self.config_text(true, extra)).expect("write alisay.yaml");
        p
    }

    /// Renders the Nginx site with `alisay render` (same config, `extra` included), wraps it
    /// in a test `http {}` block, checks it with `nginx -t` and starts nginx on it; waits for
    /// 127.0.0.1:8443.
    fn start_nginx(&mut self, extra: &str) {
        let d = self.dir.path().display().to_string();
        let render_config = self.path("render.yaml");
        std::fs::write(&render_config, self.config_text(false, extra)).expect("write render.yaml");
        let status = Command::new(ALISAY)
            .args(["render", "--config"])
            .arg(&render_config)
            .arg("--out")
            .arg(self.path("rendered"))
            .stdout(Stdio::null())
            .status()
            .expect("run alisay render");
        assert!(status.success(), "alisay render failed");
        std::fs::create_dir_all(self.path("nginx-tmp")).expect("mkdir nginx-tmp");
        let conf = self.path("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nuser root root;\npid {d}/nginx.pid;\nerror_log {d}/nginx.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{\n  access_log off;\n\
                 \x20 client_body_temp_path {d}/nginx-tmp/body;\n\
                 \x20 proxy_temp_path {d}/nginx-tmp/proxy;\n\
                 \x20 fastcgi_temp_path {d}/nginx-tmp/fastcgi;\n\
                 \x20 uwsgi_temp_path {d}/nginx-tmp/uwsgi;\n\
                 \x20 scgi_temp_path {d}/nginx-tmp/scgi;\n\
                 \x20 include {d}/rendered/nginx/alisay.conf;\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let check = Command::new("nginx")
            .arg("-t")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("run nginx -t (apt-get install nginx)");
        assert!(
            check.status.success(),
            "nginx -t refused the rendered site: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        self.spawn(
            "nginx",
            Command::new("nginx")
                .arg("-p")
                .arg(self.dir.path())
                .arg("-c")
                .arg(&conf),
            "nginx.stdout.log",
        );
        self.wait_for("127.0.0.1:8443");
    }

    /// Renders coturn's runtime config with `alisay coturn-config` (the production denied
    /// list and the secret) and returns its text.
    fn render_coturn(&self, config: &Path) -> String {
        std::fs::create_dir_all(self.path("run")).expect("mkdir run");
        let out = self.path("run/turnserver.conf");
        let status = Command::new(ALISAY)
            .args(["coturn-config", "--config"])
            .arg(config)
            .arg("--out")
            .arg(&out)
            .status()
            .expect("run alisay coturn-config");
        assert!(status.success(), "alisay coturn-config failed");
        std::fs::read_to_string(out).expect("read the rendered coturn config")
    }

    /// Starts coturn on `conf_text` (written mode 0600) and `alisay serve` on `config`.
    fn start(&mut self, config: &Path, conf_text: &str) {
        assert!(
            Command::new("turnserver")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "no turnserver: apt-get install coturn"
        );
        let conf = self.write_private("coturn.conf", conf_text);
        self.spawn(
            "turnserver",
            Command::new("turnserver").arg("-c").arg(&conf),
            "coturn.log",
        );
        self.spawn(
            "alisay serve",
            Command::new(ALISAY)
                .arg("serve")
                .arg("--config")
                .arg(config),
            "alisay.log",
        );
        self.wait_for("127.0.0.1:3478");
        self.wait_for("127.0.0.1:5349");
        self.wait_for("127.0.0.1:8787");
    }

    /// The whole good stack for [`ORIGIN`]: see [`Stack::good_at`].
    fn good(extra: &str) -> (Stack, PathBuf, String) {
        Stack::good_at(ORIGIN, extra)
    }

    /// Certificates, secret, config for `origin` (plus `extra`), rendered coturn config.
    fn good_at(origin: &str, extra: &str) -> (Stack, PathBuf, String) {
        let stack = Stack::new(origin);
        stack.make_certs();
        stack.write_private("secret", &hex::encode(rand::random::<[u8; 32]>()));
        let config = stack.write_config(extra);
        let conf = stack.render_coturn(&config);
        (stack, config, conf)
    }

    /// Runs `alisay probe <origin> --turn-secret-file secret --ca-file ca.pem` plus `extra`.
    fn probe(&self, extra: &[&str], stdin: Option<&str>) -> Output {
        self.probe_with(
            &["--ca-file", self.path("ca.pem").to_str().expect("utf-8")],
            extra,
            stdin,
        )
    }

    /// Runs `alisay probe <origin> --turn-secret-file secret` plus `trust` and `extra`.
    fn probe_with(&self, trust: &[&str], extra: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(ALISAY);
        cmd.args(["probe", &self.origin, "--turn-secret-file"])
            .arg(self.path("secret"))
            .args(trust)
            .args(extra)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run alisay probe");
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for alisay probe");
        let secret = std::fs::read_to_string(self.path("secret")).expect("secret");
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            !stdout.contains(secret.trim()),
            "the probe printed the secret"
        );
        out
    }
}

/// The report's lines as `(status, name)`.
fn table(out: &Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            ["PASS  ", "FAIL  ", "SKIP  "]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .map(|l| {
            let rest = &l[6..];
            let name = rest.split("  ").next().unwrap_or(rest).trim();
            (l[..4].to_owned(), name.to_owned())
        })
        .collect()
}

fn names_with(out: &Output, status: &str) -> BTreeSet<String> {
    table(out)
        .into_iter()
        .filter(|(s, _)| s == status)
        .map(|(_, n)| n)
        .collect()
}

/// No room id (64 hex) and no TURN credential (28 base64 characters ending in `=`) printed.
fn assert_no_secrets(out: &Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    for word in stdout.split(|c: char| c.is_whitespace() || c == '…') {
        let hex64 = word.len() >= 64 && word.bytes().all(|b| b.is_ascii_hexdigit());
        let cred = word.len() == 28 && word.ends_with('=');
        assert!(
            !hex64 && !cred,
            "the probe printed a secret-like value: {word}"
        );
    }
}

const HTTP_CHECKS: [&str; 13] = [
    "healthz",
    "ws-upgrade",
    "ws-query-refused",
    "ws-empty-query-refused",
    "ws-foreign-origin-refused",
    "ws-no-origin-refused",
    "rooms-foreign-origin-refused",
    "turn-credentials-hidden",
    "header-csp",
    "header-nosniff",
    "header-referrer-policy",
    "header-coop",
    "header-permissions-policy",
];

#[test]
fn good_stack_passes_every_check() {
    if !in_netns("good_stack_passes_every_check") {
        return;
    }
    let token = alisay::room::new_token();
    let room_id = alisay::room::room_id(&token);
    let (mut stack, config, conf) = Stack::good(&format!("rooms:\n  allowlist: [\"{room_id}\"]\n"));
    stack.start(&config, &conf);

    let out = stack.probe(&[], None);
    assert_eq!(out.status.code(), Some(0), "the good stack must pass");
    assert_no_secrets(&out);
    let pass = names_with(&out, "PASS");
    assert_eq!(names_with(&out, "FAIL"), BTreeSet::new());
    assert_eq!(
        names_with(&out, "SKIP"),
        BTreeSet::from(["header-hsts".to_owned()]),
        "only HSTS is n/a over http"
    );
    let mut want: Vec<String> = HTTP_CHECKS.iter().map(|s| (*s).to_owned()).collect();
    want.extend(
        [
            "rooms-register",
            "join",
            "relay-available",
            "ice-servers",
            "turn-secret-matches",
            "turn-allow-public-peer 1.1.1.1",
            "turn-allow-public-peer 2606:4700:4700::1111",
            "turn-wrong-password",
            "turn-expired-username",
        ]
        .map(str::to_owned),
    );
    want.extend(TURN_URLS.iter().map(|u| format!("turn-allocate {u}")));
    want.push(format!("turn-relay-to-relay {}", TURN_URLS[0]));
    for ip in [
        "127.0.0.1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "::1",
        "::",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "fc00::1",
        "fe80::1",
        "64:ff9b::1",
    ] {
        want.push(format!("turn-deny {ip}"));
    }
    for name in &want {
        assert!(pass.contains(name), "no PASS line for {name}");
    }
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("n/a (http)"),
        "HSTS is reported as n/a (http)"
    );
    assert!(text.contains("403 Forbidden IP"));

    // The allowlisted room, its id read from standard input: joined, printed as a prefix only.
    let out = stack.probe(&["--room-id-file", "-", "--no-turn"], Some(&room_id));
    assert_eq!(out.status.code(), Some(0));
    assert_no_secrets(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("joined room {}…", &room_id[..8])),
        "{text}"
    );
    assert!(!names_with(&out, "PASS").contains("rooms-register"));
    // ... and from a file holding the invite link.
    let link = stack.write_private("invite", &format!("{ORIGIN}/#{token}\n"));
    let out = stack.probe(
        &[
            "--room-id-file",
            link.to_str().expect("utf-8 path"),
            "--no-turn",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    // No join: TURN is checked with credentials made from the secret file, on `--turn`.
    let out = stack.probe(&["--no-join", "--turn", TURN_URLS[1]], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(names_with(&out, "SKIP").contains("join"));
    let pass = names_with(&out, "PASS");
    assert!(pass.contains(&format!("turn-allocate {}", TURN_URLS[1])));
    assert!(pass.contains("turn-deny 169.254.169.254"));
    // An id nobody allowed is refused, and the probe says so.
    let stranger = alisay::room::room_id(&alisay::room::new_token());
    let out = stack.probe(&["--room-id-file", "-", "--no-turn"], Some(&stranger));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        names_with(&out, "FAIL"),
        BTreeSet::from(["join".to_owned()])
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("room-not-allowed"));
}

#[test]
fn broken_http_surface_fails_exactly_those_lines() {
    if !in_netns("broken_http_surface_fails_exactly_those_lines") {
        return;
    }
    // The test endpoint is open and the probe's foreign origin is allowed.
    let (mut stack, config, conf) = Stack::good("allowed_origins: [\"https://evil.example\"]\n");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace("turn:\n", "turn:\n  test_endpoint: true\n"),
    )
    .expect("write config");
    stack.start(&config, &conf);

    let out = stack.probe(&[], None);
    assert_eq!(out.status.code(), Some(1), "the broken stack must fail");
    assert_eq!(
        names_with(&out, "FAIL"),
        BTreeSet::from(
            [
                "ws-foreign-origin-refused",
                "rooms-foreign-origin-refused",
                "turn-credentials-hidden",
            ]
            .map(str::to_owned)
        )
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the test endpoint is exposed"), "{text}");
    assert!(
        text.contains("status 101 for /ws with Origin https://evil.example"),
        "{text}"
    );
}

#[test]
fn coturn_with_cidr_denied_ranges_is_flagged_as_an_open_relay() {
    if !in_netns("coturn_with_cidr_denied_ranges_is_flagged_as_an_open_relay") {
        return;
    }
    let (mut stack, config, conf) = Stack::good("");
    // What an administrator writing CIDR gets: coturn 4.6.1 logs "Wrong address format",
    // drops each of these lines and starts anyway.
    let cidr: String = conf
        .lines()
        .map(|l| match l.strip_prefix("denied-peer-ip=") {
            Some(range) => {
                let r: IpRange = range.parse().expect("a rendered range");
                format!(
                    "denied-peer-ip={}\n",
                    r.as_prefix().expect("prefix-aligned")
                )
            }
            None => format!("{l}\n"),
        })
        .collect();
    assert!(cidr.contains("denied-peer-ip=10.0.0.0/8\n"));
    stack.start(&config, &cidr);

    let out = stack.probe(&[], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an open relay must fail the probe"
    );
    let fail = names_with(&out, "FAIL");
    assert!(
        fail.iter().all(|n| n.starts_with("turn-deny ")),
        "only deny lines fail: {fail:?}"
    );
    // Reachable through the dropped lines: private, CGNAT, metadata, ULA, link-local, and
    // loopback through its IPv4-mapped form (CVE-2026-27624).
    for ip in [
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "fc00::1",
        "fe80::1",
        "::ffff:127.0.0.1",
    ] {
        assert!(
            fail.contains(&format!("turn-deny {ip}")),
            "{ip} not flagged"
        );
    }
    // coturn's own rules still refuse plain loopback and the unspecified addresses.
    let pass = names_with(&out, "PASS");
    for ip in ["127.0.0.1", "::1", "0.0.0.0"] {
        assert!(pass.contains(&format!("turn-deny {ip}")), "{ip}");
    }
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("permission granted: the relay would reach 10.0.0.1")
    );
    // The premise: coturn itself said it dropped the lines.
    assert!(
        stack
            .log("coturn.log")
            .contains("Wrong address format: 10.0.0.0/8"),
        "coturn did not report the dropped CIDR line"
    );
}

#[test]
fn coturn_with_another_secret_fails_the_allocations() {
    if !in_netns("coturn_with_another_secret_fails_the_allocations") {
        return;
    }
    let (mut stack, config, conf) = Stack::good("");
    let other = hex::encode(rand::random::<[u8; 32]>());
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("static-auth-secret=") {
                format!("static-auth-secret={other}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    stack.start(&config, &conf);

    let out = stack.probe(&[], None);
    assert_eq!(out.status.code(), Some(1));
    let mut want: BTreeSet<String> = TURN_URLS
        .iter()
        .map(|u| format!("turn-allocate {u}"))
        .collect();
    want.insert("turn-deny".to_owned());
    want.insert("turn-deny ipv6".to_owned());
    want.insert(format!("turn-relay-to-relay {}", TURN_URLS[0]));
    assert_eq!(names_with(&out, "FAIL"), want);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("401 Unauthorized"), "{text}");
    // alisay and the secret file agree; it is coturn that differs.
    assert!(names_with(&out, "PASS").contains("turn-secret-matches"));
}

/// A coturn that may not reach its own relay address (what a host behind 1:1 NAT had before
/// issue 17: coturn maps its public address to the private relay address and then denies it)
/// fails the probe on exactly the relay-to-relay line, although every allocation works: the
/// path of every Relay-only call is broken there.
#[test]
fn coturn_that_cannot_reach_its_own_relays_fails_relay_to_relay() {
    if !in_netns("coturn_that_cannot_reach_its_own_relays_fails_relay_to_relay") {
        return;
    }
    let (mut stack, config, conf) = Stack::good("");
    let conf = format!("{conf}denied-peer-ip={RELAY_V4}-{RELAY_V4}\n");
    stack.start(&config, &conf);

    let out = stack.probe(&[], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken relay-to-relay path must fail the probe"
    );
    let name = format!("turn-relay-to-relay {}", TURN_URLS[0]);
    assert_eq!(names_with(&out, "FAIL"), BTreeSet::from([name]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CreatePermission for the other relayed address 100.128.0.1:"),
        "{text}"
    );
    assert!(text.contains("403 Forbidden IP"), "{text}");
    for u in TURN_URLS {
        assert!(names_with(&out, "PASS").contains(&format!("turn-allocate {u}")));
    }
}

#[test]
fn unusable_options_exit_64_before_any_traffic() {
    for args in [
        vec!["probe", "ftp://example.org"],
        vec!["probe", "https://example.org/path"],
        vec!["probe", "http://127.0.0.1:9", "--turn", "stun:x"],
        vec![
            "probe",
            "http://127.0.0.1:9",
            "--room-id-file",
            "/nonexistent/room",
        ],
    ] {
        let out = Command::new(ALISAY)
            .args(&args)
            .output()
            .expect("run alisay probe");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: no checks ran");
    }
}

#[test]
fn https_site_behind_the_rendered_nginx_passes_every_check_including_hsts() {
    // `localhost` is ::1 first, then 127.0.0.1, but nginx and coturn listen on 127.0.0.1 only:
    // the probe must try each address, over TCP (https, turns) and UDP (turn) alike.
    if !in_netns_with_hosts(
        "https_site_behind_the_rendered_nginx_passes_every_check_including_hsts",
        Some("::1 localhost\n127.0.0.1 localhost\n"),
    ) {
        return;
    }
    let (mut stack, config, _) = Stack::good_at("https://localhost:8443", "");
    // The site on 127.0.0.1:8443 (and :8080), with the test leaf and every path in the temp dir.
    let nginx = format!(
        "nginx:\n  server_name: localhost\n  listen_address: 127.0.0.1\n  https_port: 8443\n\
         \x20 http_port: 8080\n  tls_cert: {d}/leaf.pem\n  tls_key: {d}/leaf.key\n\
         \x20 acme_root: {d}/acme\n  access_log: {d}/access.log\n  error_log: {d}/error.log\n",
        d = stack.dir.path().display()
    );
    let text = stack
        .config_text(true, &nginx)
        .replace(
            "turn:127.0.0.1:3478?transport=udp",
            "turn:localhost:3478?transport=udp",
        )
        .replace("[\"127.0.0.1\", \"::1\"]", "[\"127.0.0.1\"]")
        .replace(&format!(", \"{RELAY_V6}\""), "");
    std::fs::write(&config, text).expect("rewrite alisay.yaml");
    let conf = stack.render_coturn(&config);
    assert!(!conf.contains("listening-ip=::1"));
    stack.start(&config, &conf);
    stack.start_nginx(&nginx);

    let out = stack.probe(&[], None);
    assert_eq!(out.status.code(), Some(0), "the https stack must pass");
    assert_no_secrets(&out);
    assert_eq!(names_with(&out, "FAIL"), BTreeSet::new());
    // HSTS applies over https; only the IPv6 deny checks are n/a (coturn has no IPv6 relay
    // address here: it listens on 127.0.0.1 and relays from IPv4 only).
    assert_eq!(
        names_with(&out, "SKIP"),
        BTreeSet::from(["turn-deny ipv6".to_owned()])
    );
    for url in [
        "turn:localhost:3478?transport=udp",
        "turn:127.0.0.1:3478?transport=tcp",
        "turns:localhost:5349?transport=tcp",
    ] {
        assert!(
            names_with(&out, "PASS").contains(&format!("turn-allocate {url}")),
            "{url}"
        );
    }
    let pass = names_with(&out, "PASS");
    for name in HTTP_CHECKS
        .iter()
        .chain(&["header-hsts", "join", "ice-servers"])
    {
        assert!(pass.contains(*name), "no PASS line for {name}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("max-age=63072000"));

    // Without the test CA the certificate is untrusted: every HTTPS check fails, none passes.
    let out = stack.probe_with(&[], &["--no-turn"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(names_with(&out, "PASS").is_empty());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("TLS with localhost failed"),
        "the failure names TLS"
    );
}
