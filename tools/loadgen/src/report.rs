//! One run's figures ([`RunResult`], a JSON line each) and the comparison report built from
//! many of them: medians and spread per server and scenario, and the project's goals checked
//! against the figures of the same run (`docs/performance.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub count: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    /// From a histogram of nanoseconds; `None` when it is empty.
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        (!h.is_empty()).then(|| Latency {
            count: h.len(),
            p50: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            p999: h.value_at_quantile(0.999) as f64 / 1000.0,
            max: h.max() as f64 / 1000.0,
        })
    }
}

/// The figures of one scenario run against one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunResult {
    /// Which server (`alisay`, `raw`, `node-ws`, ...).
    pub label: String,
    /// `hold`, `relay-ice`, `relay-sdp`, `churn`, `churn-rate`, `fixed-rate-ice`, ...
    pub scenario: String,
    pub params: serde_json::Value,
    /// Completed operations: sockets joined (hold), messages delivered (relay), joins (churn).
    pub ok: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// The measured window in seconds (for hold: the connect-and-join phase).
    pub elapsed_s: f64,
    /// `ok / elapsed_s`.
    pub rate_per_s: f64,
    /// Server user+system CPU time over the window, in microseconds.
    pub server_cpu_us: Option<u64>,
    /// `server_cpu_us / ok`.
    pub cpu_us_per_op: Option<f64>,
    /// Server RSS before the scenario started (the idle server).
    pub rss_base_kib: Option<u64>,
    /// Server RSS at the end of the hold (hold only).
    pub rss_held_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    /// `(rss_held - rss_base) / sockets still held`, in KiB (hold only).
    pub per_socket_kib: Option<f64>,
    pub latency_us: Option<Latency>,
}

impl RunResult {
    /// A one-line human summary.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {}: ok {} errors {} in {:.2}s ({:.0}/s)",
            self.label, self.scenario, self.ok, self.errors, self.elapsed_s, self.rate_per_s
        );
        if let Some(c) = self.cpu_us_per_op {
            let _ = write!(s, ", server cpu {c:.2} µs/op");
        }
        if let Some(k) = self.per_socket_kib {
            let _ = write!(s, ", {k:.2} KiB/socket");
        }
        if let Some(b) = self.rss_base_kib {
            let _ = write!(s, ", rss base {b} KiB");
        }
        if let Some(h) = self.rss_held_kib {
            let _ = write!(s, " held {h} KiB");
        }
        if let Some(l) = self.latency_us {
            let _ = write!(
                s,
                ", latency p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} µs",
                l.p50, l.p99, l.p999, l.max
            );
        }
        if !self.error_kinds.is_empty() {
            let _ = write!(s, ", errors: {:?}", self.error_kinds);
        }
        s
    }
}

/// Median and range of a set of values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }

    /// `median (min–max)` with `digits` decimals.
    fn show(&self, digits: usize) -> String {
        if self.n == 1 || (self.max - self.min).abs() < f64::EPSILON {
            format!("{:.digits$}", self.median)
        } else {
            format!(
                "{:.digits$} ({:.digits$}–{:.digits$})",
                self.median, self.min, self.max
            )
        }
    }
}

/// Server labels in the order the tables list them, with what each one is.
pub const SERVERS: &[(&str, &str)] = &[
    ("alisay", "`alisay serve` (this project, full validation)"),
    (
        "raw",
        "raw tokio-tungstenite relay (`tools/loadgen/src/bin/rawrelay.rs`), the limit",
    ),
    (
        "raw-validated",
        "the same raw relay, parsing and re-serializing every message (`--validate`)",
    ),
    (
        "bun",
        "Bun (uWebSockets) relay, `tools/compare/bun-relay.js`",
    ),
    ("node-ws", "Node `ws` relay, `tools/compare/node-relay.mjs`"),
    ("peerjs", "PeerJS server (npm `peer`), its own protocol"),
];

/// All runs, grouped by scenario then server label.
pub struct Runs {
    by: BTreeMap<String, BTreeMap<String, Vec<RunResult>>>,
}

impl Runs {
    pub fn new(all: Vec<RunResult>) -> Runs {
        let mut by: BTreeMap<String, BTreeMap<String, Vec<RunResult>>> = BTreeMap::new();
        for r in all {
            by.entry(r.scenario.clone())
                .or_default()
                .entry(r.label.clone())
                .or_default()
                .push(r);
        }
        Runs { by }
    }

    fn get(&self, scenario: &str, label: &str) -> &[RunResult] {
        self.by
            .get(scenario)
            .and_then(|m| m.get(label))
            .map_or(&[], Vec::as_slice)
    }

    /// The spread of one figure over the runs of `label` in `scenario`.
    pub fn spread(
        &self,
        scenario: &str,
        label: &str,
        f: impl Fn(&RunResult) -> Option<f64>,
    ) -> Option<Spread> {
        Spread::of(self.get(scenario, label).iter().filter_map(f))
    }

    fn labels(&self, scenario: &str) -> Vec<&'static str> {
        let present: BTreeSet<&str> = self
            .by
            .get(scenario)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        SERVERS
            .iter()
            .map(|(l, _)| *l)
            .filter(|l| present.contains(l))
            .collect()
    }

    fn errors(&self, scenario: &str, label: &str) -> String {
        let runs = self.get(scenario, label);
        let total: u64 = runs.iter().map(|r| r.errors).sum();
        if total == 0 {
            return "0".into();
        }
        let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
        for r in runs {
            for (k, v) in &r.error_kinds {
                *kinds.entry(k.as_str()).or_default() += v;
            }
        }
        let list: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        format!("{total}: {}", list.join("; ").replace('|', "/"))
    }

    fn params(&self, scenario: &str) -> String {
        self.by
            .get(scenario)
            .and_then(|m| m.values().next())
            .and_then(|v| v.first())
            .map(|r| r.params.to_string())
            .unwrap_or_default()
    }

    /// A markdown table: one row per server, one column per figure.
    fn table(&self, scenario: &str, columns: &[Column]) -> String {
        let labels = self.labels(scenario);
        if labels.is_empty() {
            return format!("_No runs of `{scenario}`._\n");
        }
        let mut out = format!("Parameters: `{}`.\n\n| server |", self.params(scenario));
        for c in columns {
            let _ = write!(out, " {} |", c.title);
        }
        out.push_str(" errors |\n|---|");
        for _ in columns {
            out.push_str("---:|");
        }
        out.push_str("---|\n");
        for label in labels {
            let _ = write!(out, "| {label} |");
            for c in columns {
                let cell = self
                    .spread(scenario, label, c.value)
                    .map_or_else(|| "–".into(), |s| s.show(c.digits));
                let _ = write!(out, " {cell} |");
            }
            let _ = writeln!(out, " {} |", self.errors(scenario, label));
        }
        out
    }
}

struct Column {
    title: &'static str,
    digits: usize,
    value: fn(&RunResult) -> Option<f64>,
}

fn cpu(r: &RunResult) -> Option<f64> {
    r.cpu_us_per_op
}
fn rate(r: &RunResult) -> Option<f64> {
    Some(r.rate_per_s)
}
fn p50(r: &RunResult) -> Option<f64> {
    r.latency_us.map(|l| l.p50)
}
fn p99(r: &RunResult) -> Option<f64> {
    r.latency_us.map(|l| l.p99)
}
fn p999(r: &RunResult) -> Option<f64> {
    r.latency_us.map(|l| l.p999)
}
fn per_socket(r: &RunResult) -> Option<f64> {
    r.per_socket_kib
}
fn base_mib(r: &RunResult) -> Option<f64> {
    r.rss_base_kib.map(|k| k as f64 / 1024.0)
}
fn held_mib(r: &RunResult) -> Option<f64> {
    r.rss_held_kib.map(|k| k as f64 / 1024.0)
}
fn joined(r: &RunResult) -> Option<f64> {
    Some(r.ok as f64)
}

/// The markdown tables of every scenario found in the runs.
pub fn tables(runs: &Runs) -> String {
    let mut out = String::new();
    let sections: [(&str, &str, Vec<Column>); 7] = [
        (
            "hold",
            "Idle sockets: memory",
            vec![
                Column {
                    title: "sockets held",
                    digits: 0,
                    value: joined,
                },
                Column {
                    title: "KiB per socket",
                    digits: 2,
                    value: per_socket,
                },
                Column {
                    title: "idle RSS MiB",
                    digits: 1,
                    value: base_mib,
                },
                Column {
                    title: "RSS held MiB",
                    digits: 1,
                    value: held_mib,
                },
                Column {
                    title: "server CPU µs per join",
                    digits: 1,
                    value: cpu,
                },
            ],
        ),
        (
            "relay-ice",
            "Relay, ICE-size messages (closed loop)",
            vec![
                Column {
                    title: "server CPU µs/msg",
                    digits: 2,
                    value: cpu,
                },
                Column {
                    title: "msgs/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "p99 µs",
                    digits: 0,
                    value: p99,
                },
            ],
        ),
        (
            "relay-sdp",
            "Relay, 5 KB SDP messages (closed loop)",
            vec![
                Column {
                    title: "server CPU µs/msg",
                    digits: 2,
                    value: cpu,
                },
                Column {
                    title: "msgs/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "p99 µs",
                    digits: 0,
                    value: p99,
                },
            ],
        ),
        (
            "churn",
            "Churn: connect, upgrade, join, joined, leave, close (closed loop)",
            vec![
                Column {
                    title: "server CPU µs/join",
                    digits: 1,
                    value: cpu,
                },
                Column {
                    title: "joins/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "join→joined p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "join→joined p99 µs",
                    digits: 0,
                    value: p99,
                },
            ],
        ),
        (
            "churn-rate",
            "Joins at a fixed rate",
            vec![
                Column {
                    title: "joins/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "server CPU µs/join",
                    digits: 1,
                    value: cpu,
                },
                Column {
                    title: "join→joined p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "join→joined p99 µs",
                    digits: 0,
                    value: p99,
                },
                Column {
                    title: "p99.9 µs",
                    digits: 0,
                    value: p999,
                },
            ],
        ),
        (
            "fixed-rate-ice",
            "Relay at a fixed rate, ICE-size messages",
            vec![
                Column {
                    title: "msgs/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "server CPU µs/msg",
                    digits: 2,
                    value: cpu,
                },
                Column {
                    title: "p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "p99 µs",
                    digits: 0,
                    value: p99,
                },
                Column {
                    title: "p99.9 µs",
                    digits: 0,
                    value: p999,
                },
            ],
        ),
        (
            "latency-ice",
            "Unloaded latency: one pair, ICE-size messages at a low rate",
            vec![
                Column {
                    title: "msgs/s",
                    digits: 0,
                    value: rate,
                },
                Column {
                    title: "p50 µs",
                    digits: 0,
                    value: p50,
                },
                Column {
                    title: "p99 µs",
                    digits: 0,
                    value: p99,
                },
                Column {
                    title: "p99.9 µs",
                    digits: 0,
                    value: p999,
                },
            ],
        ),
    ];
    for (scenario, title, columns) in sections {
        let _ = writeln!(out, "### {title} (`{scenario}`)\n");
        out.push_str(&runs.table(scenario, &columns));
        out.push('\n');
    }
    out
}

/// One goal: what it says, the figure, the bound, whether it is met.
pub struct Goal {
    pub what: String,
    pub figure: Option<f64>,
    pub bound: Option<f64>,
    pub unit: &'static str,
}

impl Goal {
    fn met(&self) -> Option<bool> {
        Some(self.figure? <= self.bound?)
    }
}

/// The goals of the performance issue, from the medians of this run. Ratios are taken within
/// the same run (same machine load), never against numbers from another day.
pub fn goals(runs: &Runs, extra: &[Goal]) -> Vec<Goal> {
    let med =
        |s: &str, l: &str, f: fn(&RunResult) -> Option<f64>| runs.spread(s, l, f).map(|x| x.median);
    let node_min = ["node-ws", "peerjs"]
        .iter()
        .filter_map(|l| med("hold", l, per_socket))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))));
    let mut g = vec![
        Goal {
            what: "KiB per idle admitted socket ≤ 2 (Bun: 1.7)".into(),
            figure: med("hold", "alisay", per_socket),
            bound: Some(2.0),
            unit: "KiB",
        },
        Goal {
            what: "KiB per idle socket below every Node peer (and ≤ 5)".into(),
            figure: med("hold", "alisay", per_socket),
            bound: node_min.map(|n| n.min(5.0)).or(Some(5.0)),
            unit: "KiB",
        },
        Goal {
            what: "server CPU per relayed ICE message ≤ 1.1 × raw relay".into(),
            figure: med("relay-ice", "alisay", cpu),
            bound: med("relay-ice", "raw", cpu).map(|r| r * 1.1),
            unit: "µs",
        },
        Goal {
            what: "server CPU per relayed 5 KB SDP ≤ raw relay with validation".into(),
            figure: med("relay-sdp", "alisay", cpu),
            bound: med("relay-sdp", "raw-validated", cpu),
            unit: "µs",
        },
        Goal {
            what: "server CPU per join ≤ 1.2 × raw relay".into(),
            figure: med("churn", "alisay", cpu),
            bound: med("churn", "raw", cpu).map(|r| r * 1.2),
            unit: "µs",
        },
        Goal {
            what: "join→joined p99 ≤ 2 ms at 1,000 joins/s".into(),
            figure: med("churn-rate", "alisay", p99),
            bound: Some(2000.0),
            unit: "µs",
        },
        Goal {
            what: "unloaded one-pair relay latency p99 ≤ 150 µs".into(),
            figure: med("latency-ice", "alisay", p99),
            bound: Some(150.0),
            unit: "µs",
        },
        Goal {
            what: "idle RSS ≤ 10 MB".into(),
            figure: med("hold", "alisay", |r| {
                r.rss_base_kib.map(|k| k as f64 * 1024.0 / 1e6)
            }),
            bound: Some(10.0),
            unit: "MB",
        },
    ];
    g.extend(extra.iter().map(|e| Goal {
        what: e.what.clone(),
        figure: e.figure,
        bound: e.bound,
        unit: e.unit,
    }));
    g
}

/// The goals as a markdown table.
pub fn goals_table(goals: &[Goal]) -> String {
    let mut out = String::from("| goal | alisay | bound | met |\n|---|---:|---:|---|\n");
    for g in goals {
        let f = g
            .figure
            .map_or_else(|| "–".into(), |v| format!("{v:.2} {}", g.unit));
        let b = g
            .bound
            .map_or_else(|| "–".into(), |v| format!("{v:.2} {}", g.unit));
        let met = match g.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {f} | {b} | {met} |", g.what);
    }
    out
}

/// The criterion results (`cargo bench` output: a name, then `time: [low estimate high]`, on
/// the same line or the next) as a markdown table.
pub fn criterion_table(output: &str) -> String {
    let mut rows = Vec::new();
    let mut name = String::new();
    for line in output.lines() {
        let (before, after) = match line.split_once("time:") {
            Some((b, a)) => (b.trim(), a.trim()),
            None => {
                let t = line.trim();
                if !t.is_empty() && !line.starts_with(' ') && !t.contains(':') && t.contains('/') {
                    name = t.to_owned();
                }
                continue;
            }
        };
        if !before.is_empty() {
            name = before.to_owned();
        }
        let inner = after.trim_start_matches('[').trim_end_matches(']');
        let parts: Vec<&str> = inner.split_whitespace().collect();
        if let [lo, lo_u, mid, mid_u, hi, hi_u] = parts[..] {
            rows.push(format!(
                "| `{name}` | {mid} {mid_u} | {lo} {lo_u} – {hi} {hi_u} |"
            ));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "### Micro-benchmarks (`cargo bench --bench hot_paths`, criterion)\n\n\
         Parsing and validating each client message, WebSocket frame decoding and encoding, \
         TURN credentials, and the hub's admission and relay, without sockets \
         ([`benches/hot_paths.rs`](../benches/hot_paths.rs)).\n\n\
         | benchmark | time | 95% interval |\n|---|---:|---|\n{}\n",
        rows.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(label: &str, scenario: &str, cpu: f64) -> RunResult {
        RunResult {
            label: label.into(),
            scenario: scenario.into(),
            cpu_us_per_op: Some(cpu),
            ..RunResult::default()
        }
    }

    #[test]
    fn criterion_output_becomes_a_table() {
        let out = "parse/join              time:   [270.12 ns 271.50 ns 273.01 ns]\n\
                   admission/join-and-leave\n                        time:   [1.2345 µs 1.2400 µs 1.2500 µs]\n\
                   Found 3 outliers among 100 measurements (3.00%)\n";
        let t = criterion_table(out);
        assert!(
            t.contains("| `parse/join` | 271.50 ns | 270.12 ns – 273.01 ns |"),
            "{t}"
        );
        assert!(
            t.contains("| `admission/join-and-leave` | 1.2400 µs |"),
            "{t}"
        );
    }

    #[test]
    fn medians_and_goals_within_one_run() {
        let runs = Runs::new(vec![
            run("alisay", "relay-ice", 10.0),
            run("alisay", "relay-ice", 12.0),
            run("alisay", "relay-ice", 30.0),
            run("raw", "relay-ice", 10.0),
        ]);
        let s = runs.spread("relay-ice", "alisay", cpu).unwrap();
        assert_eq!((s.median, s.min, s.max), (12.0, 10.0, 30.0));
        let g = goals(&runs, &[]);
        let ice = g.iter().find(|g| g.what.contains("ICE")).unwrap();
        assert_eq!(ice.met(), Some(false), "12 > 1.1 × 10");
        assert!(tables(&runs).contains("| alisay | 12.00 (10.00–30.00) |"));
    }
}
