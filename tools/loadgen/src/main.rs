//! `loadgen`: a load generator for the Alisay Call signaling server (and, for comparison, for
//! minimal relays and the PeerJS server), speaking the real protocol over loopback.
//!
//! ```text
//! loadgen --url ws://127.0.0.1:8787 --server-pid PID --label alisay hold --sockets 19000
//! loadgen ... relay --pairs 50 --size ice --messages 2000
//! loadgen ... fixed-rate --pairs 1 --rate 200 --seconds 5
//! loadgen ... churn --joins 5000 [--rate 1000]
//! loadgen report --input runs.jsonl --template performance.md.in --output docs/performance.md
//! ```
//!
//! Each run prints a summary line and appends one JSON line ([`report::RunResult`]) to
//! `--json`. `--fail-on-errors` and `--max-kib-per-socket` turn a run into a check (exit 1),
//! which is how CI runs the smoke version (`tests/load_smoke.sh`).

mod client;
mod procfs;
mod proto;
mod report;
mod scenario;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};

use crate::proto::{Protocol, Size};
use crate::report::RunResult;
use crate::scenario::Ctx;

#[derive(Parser, Debug)]
#[command(about = "Load generator for the Alisay Call signaling server")]
struct Cli {
    /// The server, `ws://<loopback ip>:<port>` (no path).
    #[arg(long, default_value = "ws://127.0.0.1:8787")]
    url: String,
    /// The `Origin` header to send (default: `http://` + the url's host and port).
    #[arg(long)]
    origin: Option<String>,
    /// The server's protocol.
    #[arg(long, value_enum, default_value = "alisay")]
    protocol: Protocol,
    /// The server's process id, for its RSS and CPU time (from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// A name for the server in reports.
    #[arg(long, default_value = "server")]
    label: String,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Upper bound on the scenario, in seconds.
    #[arg(long, default_value_t = 120)]
    max_seconds: u64,
    /// Exit 1 if anything went wrong (any error counted).
    #[arg(long)]
    fail_on_errors: bool,
    /// Exit 1 if `hold` measures more KiB per socket than this.
    #[arg(long)]
    max_kib_per_socket: Option<f64>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// Sockets joined in rooms of two, held idle with heartbeats: memory per socket.
    Hold {
        #[arg(long, default_value_t = 1000)]
        sockets: u64,
        /// Sockets connecting at the same time.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        hold_seconds: u64,
        #[arg(long, default_value_t = 5)]
        heartbeat_seconds: u64,
    },
    /// Pairs after `start` relaying as fast as the server goes: CPU per message.
    Relay {
        #[arg(long, default_value_t = 20)]
        pairs: u64,
        #[arg(long, value_enum, default_value = "ice")]
        size: Size,
        /// Messages each side sends.
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        /// Messages in flight per direction (below the server's outbox of 32).
        #[arg(long, default_value_t = 16)]
        window: u64,
    },
    /// Pairs after `start` relaying at a fixed total rate: latency percentiles.
    FixedRate {
        #[arg(long, default_value_t = 10)]
        pairs: u64,
        #[arg(long, value_enum, default_value = "ice")]
        size: Size,
        /// Messages per second, all pairs together.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Name the scenario `latency-<size>` instead of `fixed-rate-<size>` in reports, and send
        /// each message at its scheduled time to the microsecond (the generator spins for the
        /// last millisecond; tokio's timer alone wakes up to 1 ms late). For one pair.
        #[arg(long)]
        as_latency: bool,
    },
    /// Connect, join, leave, close, over and over: CPU per join, join latency.
    Churn {
        #[arg(long, default_value_t = 5000)]
        joins: u64,
        /// Clients at a time (closed loop), or the most in flight (with --rate).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Joins per second (open loop); without it, as fast as possible.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Build the comparison report from JSON lines of runs.
    Report {
        #[arg(long)]
        input: PathBuf,
        /// Markdown with `{{tables}}`, `{{goals}}` and `{{environment}}` placeholders.
        #[arg(long)]
        template: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// `key: value` lines describing the machine and the run.
        #[arg(long)]
        env: Vec<String>,
        /// An extra goal measured by the script: `what|figure|bound|unit`.
        #[arg(long)]
        goal: Vec<String>,
        /// The output of `cargo bench --bench hot_paths` (criterion), for the `{{micro}}`
        /// table.
        #[arg(long)]
        micro: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Scenario::Report {
        input,
        template,
        output,
        env,
        goal,
        micro,
    } = &cli.scenario
    {
        return match write_report(input, template, output, env, goal, micro.as_deref()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("loadgen: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let target = client::Target::new(&cli.url, cli.origin.clone(), cli.protocol)?;
    proto::epoch();
    let nonce = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let ctx = Ctx {
        target,
        server_pid: cli.server_pid,
        label: cli.label.clone(),
        max: Duration::from_secs(cli.max_seconds),
        nonce,
    };
    let result = match &cli.scenario {
        Scenario::Hold {
            sockets,
            concurrency,
            hold_seconds,
            heartbeat_seconds,
        } => {
            scenario::hold(
                &ctx,
                *sockets,
                *concurrency,
                Duration::from_secs(*hold_seconds),
                Duration::from_secs((*heartbeat_seconds).max(1)),
            )
            .await
        }
        Scenario::Relay {
            pairs,
            size,
            messages,
            window,
        } => scenario::relay(&ctx, *pairs, *size, *messages, (*window).max(1)).await,
        Scenario::FixedRate {
            pairs,
            size,
            rate,
            seconds,
            as_latency,
        } => {
            let mut r = scenario::fixed_rate(
                &ctx,
                *pairs,
                *size,
                *rate,
                Duration::from_secs_f64(seconds.max(0.1)),
                *as_latency,
            )
            .await;
            if *as_latency {
                r.scenario = r.scenario.replacen("fixed-rate", "latency", 1);
            }
            r
        }
        Scenario::Churn {
            joins,
            concurrency,
            rate,
        } => scenario::churn(&ctx, *joins, *concurrency, *rate).await,
        Scenario::Report { .. } => unreachable!("handled in main"),
    };
    println!("{}", result.summary());
    if let Some(path) = &cli.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(f, "{}", serde_json::to_string(&result)?)?;
    }
    Ok(verdict(cli, &result))
}

/// Exit 1 when a check asked for on the command line fails.
fn verdict(cli: &Cli, r: &RunResult) -> ExitCode {
    let mut ok = true;
    if cli.fail_on_errors && (r.errors > 0 || r.ok == 0) {
        eprintln!("loadgen: FAIL: {} errors, {} completed", r.errors, r.ok);
        ok = false;
    }
    if let Some(max) = cli.max_kib_per_socket {
        match r.per_socket_kib {
            Some(k) if k <= max => {}
            Some(k) => {
                eprintln!("loadgen: FAIL: {k:.2} KiB per socket, over the ceiling of {max}");
                ok = false;
            }
            None => {
                eprintln!("loadgen: FAIL: no memory figure (is --server-pid right?)");
                ok = false;
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write_report(
    input: &PathBuf,
    template: &PathBuf,
    output: &PathBuf,
    env: &[String],
    goal: &[String],
    micro: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(input)?;
    let mut all = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        all.push(
            serde_json::from_str::<RunResult>(line)
                .map_err(|e| anyhow::anyhow!("{}:{}: {e}", input.display(), i + 1))?,
        );
    }
    let runs = report::Runs::new(all);
    let mut extra = Vec::new();
    for g in goal {
        let parts: Vec<&str> = g.split('|').collect();
        anyhow::ensure!(parts.len() == 4, "--goal wants what|figure|bound|unit: {g}");
        let unit: &'static str = Box::leak(parts[3].to_owned().into_boxed_str());
        extra.push(report::Goal {
            what: parts[0].to_owned(),
            figure: parts[1].parse().ok(),
            bound: parts[2].parse().ok(),
            unit,
        });
    }
    let goals = report::goals(&runs, &extra);
    let environment: String = env.iter().map(|l| format!("- {l}\n")).collect();
    let servers: String = report::SERVERS
        .iter()
        .map(|(l, what)| format!("- `{l}`: {what}\n"))
        .collect();
    let doc = std::fs::read_to_string(template)?
        .replace("{{tables}}", &report::tables(&runs))
        .replace("{{goals}}", &report::goals_table(&goals))
        .replace("{{environment}}", &environment)
        .replace("{{servers}}", &servers)
        .replace(
            "{{micro}}",
            &match micro {
                Some(path) => report::criterion_table(&std::fs::read_to_string(path)?),
                None => String::new(),
            },
        );
    std::fs::write(output, doc)?;
    Ok(())
}
