//! Helpers shared by `tests/render.rs` and `tests/turn/main.rs` (included with `#[path]`):
//! finding the apt programs the tests drive (a missing one fails the test, never skips it),
//! re-running one test inside namespaces it creates, and child processes that are always
//! stopped.

#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The absolute path of an installed program; panics (fails the test) if it is missing.
pub fn require(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{program}` is not installed; run scripts/test.sh (it installs nginx, coturn, \
                 systemd, openssl, curl, iproute2 and util-linux with apt)"
            )
        })
}

/// Runs the test `name` of this test binary again, inside `unshare <flags>` after the shell
/// commands `setup` (e.g. `ip link set lo up`), with `marker` set in its environment (the test
/// checks it to know where it runs) plus `env`. Bounded by `limit`; panics unless it passes.
/// `marker` must not start with `ALISAY_`: the config loader reads every such variable.
pub fn rerun_in_namespace(
    name: &str,
    marker: &str,
    flags: &[&str],
    setup: &str,
    env: &[(&str, &OsStr)],
    limit: Duration,
) {
    let status = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(require("unshare"))
        .args(flags)
        .args(["sh", "-c", &format!("{setup} && exec \"$0\" \"$@\"")])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .envs(env.iter().copied())
        .env(marker, "1")
        .status()
        .expect("run unshare");
    assert!(
        status.success(),
        "{name} failed inside its namespace: {status}"
    );
}

/// A child process with its output in a log file; stopped (SIGTERM, then SIGKILL after 3 s)
/// when dropped.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Starts `cmd`, standard output and error to `log`.
    pub fn spawn(what: &str, cmd: &mut Command, log: &Path) -> Proc {
        let out = fs::File::create(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        Proc {
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the process and returns what it logged.
    pub fn stop(self) -> String {
        let log = self.log.clone();
        drop(self);
        fs::read_to_string(log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..30 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
