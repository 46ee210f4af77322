//! The server's resident memory and CPU time, read from `/proc/<pid>` (proc(5)).

use std::fs;

/// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
///
/// # Errors
/// When the process is gone or the file has no `VmRSS` line.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}

/// User plus system CPU time of every thread of the process, in microseconds
/// (`utime + stime` of `/proc/<pid>/stat`, which counts in clock ticks of 1/100 s here, so a
/// window should hold at least a few seconds of work).
///
/// # Errors
/// When the process is gone or the file does not parse.
pub fn cpu_us(pid: u32) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: fields are counted after its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("bad /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let tick = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("short /proc/{pid}/stat"))?
            .parse::<u64>()?)
    };
    Ok((tick(11)? + tick(12)?) * 1_000_000 / CLOCK_TICKS_PER_SECOND)
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on (fixed by the kernel ABI for
/// `/proc`, USER_HZ).
const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// A before/after sample of a process (or nothing when no pid was given).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cpu_us: u64,
    pub rss_kib: u64,
}

/// Samples `pid` if there is one; errors count as "no sample".
pub fn sample(pid: Option<u32>) -> Option<Sample> {
    let pid = pid?;
    Some(Sample {
        cpu_us: cpu_us(pid).ok()?,
        rss_kib: rss_kib(pid).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 100);
        // Spin (at most ~2 s) until the CPU time read from /proc moves by a tick.
        let before = cpu_us(me).unwrap();
        let mut x = 0u64;
        for i in 0..2_000_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            if i % 1_000_000 == 0 && cpu_us(me).unwrap() > before {
                return;
            }
        }
        panic!("no CPU time counted ({x})");
    }
}
