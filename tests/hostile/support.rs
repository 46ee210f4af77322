//! Helpers shared by `tests/hostile.rs`, `tests/privacy.rs`, `tests/resource_bounds.rs` and (the
//! test CA) `tests/render.rs`: installed programs, a test CA, the rendered nginx site (`alisay
//! render`) in front of a running `alisay serve`, and raw requests over TLS to it.
//!
//! A missing program (nginx, openssl, ...) fails the test that needs it: nothing here skips.

#![allow(dead_code)] // each test binary uses a different subset

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

/// The absolute path of an installed program; panics (fails the test) if it is missing.
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed; run scripts/test.sh (it installs nginx, coturn, \
                 nftables, openssl, iproute2, util-linux with apt)"
            )
        })
}

/// Runs `program args` under `timeout 60`; panics unless it succeeds.
pub fn run_ok(program: &Path, args: &[&str]) -> Output {
    let o = Command::new("timeout")
        .arg("60")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    assert!(
        o.status.success(),
        "{} {args:?}: {}",
        program.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A free TCP port on 127.0.0.1 (a parallel test may take it before we bind it: callers bind
/// soon after).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A test CA and a leaf for `names` (plus IP 127.0.0.1) signed by it, made with openssl:
/// `(ca, cert, key)`.
pub fn test_ca_and_leaf(dir: &Path, names: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = require("openssl");
    let p = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    run_ok(
        &openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=alisay test CA",
            "-keyout",
            &p("ca.key"),
            "-out",
            &p("ca.pem"),
        ],
    );
    run_ok(
        &openssl,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={}", names[0]),
            "-keyout",
            &p("leaf.key"),
            "-out",
            &p("leaf.csr"),
        ],
    );
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    fs::write(
        dir.join("leaf.ext"),
        format!("subjectAltName={},IP:127.0.0.1\n", san.join(",")),
    )
    .unwrap();
    run_ok(
        &openssl,
        &[
            "x509",
            "-req",
            "-in",
            &p("leaf.csr"),
            "-CA",
            &p("ca.pem"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p("leaf.ext"),
            "-out",
            &p("leaf.pem"),
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

/// A child process stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(name: &'static str, cmd: &mut Command, log: &Path) -> Proc {
        let out = fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait (bounded, then SIGKILL).
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it wrote so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (bounded) until something accepts TCP connections on `addr`.
pub fn wait_tcp(addr: &str, what: &Proc) {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    for _ in 0..150 {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{} is not listening on {addr}:\n{}",
        what.name,
        what.output()
    );
}

/// The nginx main config a rendered site is included in, with every path in `dir`.
pub fn nginx_main_conf(dir: &Path, site: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/logs/nginx-main.error.log;\nevents {{}}\n\
         http {{\n  client_body_temp_path {d}/tmp-body;\n  proxy_temp_path {d}/tmp-proxy;\n  \
         fastcgi_temp_path {d}/tmp-fcgi;\n  uwsgi_temp_path {d}/tmp-uwsgi;\n  \
         scgi_temp_path {d}/tmp-scgi;\n  access_log off;\n  include {};\n}}\n",
        site.display()
    )
}

/// The rendered nginx site of a production config, running on 127.0.0.1 high ports in front
/// of the `alisay serve` listening on `upstream_port`. Only ports and paths differ from a
/// deployed host: the site file is `alisay render`'s output, unchanged.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub https_port: u16,
    pub http_port: u16,
    /// `https://call.example.org:<https_port>`: the Origin a browser on the site sends.
    pub origin: String,
    pub ca: PathBuf,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
    pub nginx: Proc,
}

/// The server name of every test site.
pub const SITE_NAME: &str = "call.example.org";

impl Site {
    /// Picks the ports for a site; start the server with `origin` allowed, then [`Site::start`].
    pub fn ports() -> (u16, u16) {
        (free_port(), free_port())
    }

    /// Renders the site for `upstream_port` and starts nginx on `https_port` / `http_port`.
    pub fn start(upstream_port: u16, https_port: u16, http_port: u16) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // nginx workers run as `nobody` when the master is root: let them into the temp dir.
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(d.join("logs")).unwrap();
        let (ca, cert, key) = test_ca_and_leaf(d, &[SITE_NAME]);
        let secret = d.join("turn-secret");
        fs::write(&secret, "site-test-secret-not-used").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
        let origin = format!("https://{SITE_NAME}:{https_port}");
        let access_log = d.join("logs/alisay.access.log");
        let error_log = d.join("logs/alisay.error.log");
        let yaml = format!(
            "mode: production\npublic_origin: \"{origin}\"\n\
             server:\n  listen: \"127.0.0.1:{upstream_port}\"\n\
             turn:\n  urls: [\"turn:127.0.0.1:3478?transport=udp\"]\n  secret_file: \"{}\"\n\
             nginx:\n  listen_address: \"127.0.0.1\"\n  https_port: {https_port}\n  \
             http_port: {http_port}\n  tls_cert: \"{}\"\n  tls_key: \"{}\"\n  \
             access_log: \"{}\"\n  error_log: \"{}\"\n",
            secret.display(),
            cert.display(),
            key.display(),
            access_log.display(),
            error_log.display(),
        );
        let config_path = d.join("alisay.yaml");
        fs::write(&config_path, &yaml).unwrap();
        run_ok(
            Path::new(env!("CARGO_BIN_EXE_alisay")),
            &[
                "render",
                "--config",
                config_path.to_str().unwrap(),
                "--out",
                d.join("out").to_str().unwrap(),
            ],
        );
        let conf = d.join("nginx.conf");
        fs::write(&conf, nginx_main_conf(d, &d.join("out/nginx/alisay.conf"))).unwrap();
        let nginx = Proc::spawn(
            "nginx",
            Command::new(require("nginx"))
                .args(["-p", d.to_str().unwrap(), "-c"])
                .arg(&conf),
            &d.join("logs/nginx.log"),
        );
        wait_tcp(&format!("127.0.0.1:{https_port}"), &nginx);
        Site {
            dir,
            https_port,
            http_port,
            origin,
            ca,
            access_log,
            error_log,
            nginx,
        }
    }

    /// Sends `request` (raw bytes, exactly as given) over TLS to the site and reads until the
    /// server closes or nothing more arrives for 2 s (bounded at 10 s in total).
    pub async fn tls_raw(&self, request: &[u8]) -> Vec<u8> {
        let connector = alisay::probe::net::tls_connector(Some(&self.ca)).expect("test CA");
        let tcp = TcpStream::connect(("127.0.0.1", self.https_port))
            .await
            .expect("connect to nginx");
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(SITE_NAME).unwrap();
        let mut tls = timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .expect("TLS handshake in time")
            .expect("TLS handshake");
        tls.write_all(request).await.expect("write request");
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            match timeout(Duration::from_secs(2), tls.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        got
    }
}

/// The status codes of every HTTP response in `bytes`, in order.
pub fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text[i + 9..].get(..3)?.parse().ok())
        .collect()
}

/// The names of every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
