//! The four scenarios. Each is bounded in count (sockets, messages, joins) and in time (a
//! deadline after which whatever is unfinished counts as an error), and returns a
//! [`RunResult`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::client::{self, Errors, STEP, Target, Ws};
use crate::procfs::{self, Sample};
use crate::proto::{Incoming, Protocol, Size, Who, now_ns};
use crate::report::{Latency, RunResult};

/// What every scenario needs besides its own parameters.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub target: Target,
    /// The server process, for RSS and CPU time; without it those figures are absent.
    pub server_pid: Option<u32>,
    pub label: String,
    /// Upper bound on the whole scenario.
    pub max: Duration,
    /// Distinguishes this run's rooms from earlier runs against the same server.
    pub nonce: u64,
}

impl Ctx {
    fn who(&self, index: u64) -> Who {
        Who {
            nonce: self.nonce,
            index,
        }
    }

    fn result(&self, scenario: &str, params: serde_json::Value, errors: &Errors) -> RunResult {
        RunResult {
            label: self.label.clone(),
            scenario: scenario.to_owned(),
            params,
            errors: errors.total(),
            error_kinds: errors.snapshot(),
            ..RunResult::default()
        }
    }
}

/// How early a precise sender wakes before its scheduled time (tokio's timer resolution).
const TIMER_SLACK: Duration = Duration::from_millis(1);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

fn cpu_between(before: Option<Sample>, after: Option<Sample>) -> Option<u64> {
    Some(after?.cpu_us.saturating_sub(before?.cpu_us))
}

/// Connects client `who` and waits for its admission.
async fn connect_and_join(ctx: &Ctx, who: Who) -> Result<Ws, String> {
    let p = ctx.target.protocol;
    let mut ws = client::connect(&ctx.target, &p.url(&ctx.target.base, who)).await?;
    if let Some(join) = p.join(who) {
        client::send(&mut ws, join).await?;
    }
    client::expect(&mut ws, p, &Incoming::Joined, Instant::now() + STEP).await?;
    Ok(ws)
}

/// `hold`: `sockets` clients joined in `sockets / 2` rooms, held idle for `hold` with a
/// heartbeat every `heartbeat`. Reports the server's RSS before and while holding, and the
/// difference per socket.
pub async fn hold(
    ctx: &Ctx,
    sockets: u64,
    concurrency: usize,
    hold: Duration,
    heartbeat: Duration,
) -> RunResult {
    let errors = Arc::new(Errors::default());
    let before = procfs::sample(ctx.server_pid);
    let deadline = Instant::now() + ctx.max;
    let joined = Arc::new(AtomicU64::new(0));
    let settled = Arc::new(AtomicU64::new(0));
    let gate = Arc::new(Semaphore::new(concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..sockets {
        let (ctx, errors, joined, settled, gate, mut stop) = (
            ctx.clone(),
            errors.clone(),
            joined.clone(),
            settled.clone(),
            gate.clone(),
            stop_rx.clone(),
        );
        tasks.spawn(async move {
            let who = ctx.who(index);
            let p = ctx.target.protocol;
            let permit = gate.acquire().await;
            let ws = connect_and_join(&ctx, who).await;
            drop(permit);
            settled.fetch_add(1, Ordering::AcqRel);
            let mut ws = match ws {
                Ok(ws) => ws,
                Err(e) => return errors.add(e),
            };
            joined.fetch_add(1, Ordering::AcqRel);
            // Spread heartbeats over the interval so they do not arrive in one burst.
            let offset = heartbeat.mul_f64((index % 1000) as f64 / 1000.0);
            let mut tick = tokio::time::interval_at(Instant::now() + offset, heartbeat);
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tick.tick() => {
                        if let Err(e) = client::send(&mut ws, p.heartbeat()).await {
                            return errors.add(e);
                        }
                    }
                    got = client::next(&mut ws, p, deadline) => match got {
                        Ok(Incoming::Ack | Incoming::Other) => {}
                        Ok(other) => return errors.add(format!("while holding: {other:?}")),
                        Err(e) => return errors.add(format!("while holding: {e}")),
                    }
                }
            }
            client::close(ws).await;
        });
    }
    // Phase 1: everyone connects and joins.
    while settled.load(Ordering::Acquire) < sockets && Instant::now() < deadline {
        sleep(Duration::from_millis(20)).await;
    }
    let join_time = started.elapsed();
    let after_join = procfs::sample(ctx.server_pid);
    let n = joined.load(Ordering::Acquire);
    // Phase 2: hold; sample the server's RSS every second, keep the last and the peak.
    sleep(Duration::from_secs(1).min(hold)).await;
    let hold_until = (Instant::now() + hold).min(deadline);
    let mut last = procfs::sample(ctx.server_pid);
    let mut peak = last.map_or(0, |s| s.rss_kib);
    while Instant::now() < hold_until {
        sleep(Duration::from_secs(1).min(hold_until - Instant::now())).await;
        last = procfs::sample(ctx.server_pid).or(last);
        peak = peak.max(last.map_or(0, |s| s.rss_kib));
    }
    let still = joined.load(Ordering::Acquire);
    // Phase 3: everyone leaves.
    let _ = stop_tx.send(true);
    let _ = timeout(Duration::from_secs(30), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let closed = procfs::sample(ctx.server_pid);

    let mut r = ctx.result(
        "hold",
        json!({"sockets": sockets, "holdSeconds": hold.as_secs(), "heartbeatSeconds": heartbeat.as_secs()}),
        &errors,
    );
    r.ok = n;
    r.elapsed_s = join_time.as_secs_f64();
    r.rate_per_s = n as f64 / join_time.as_secs_f64().max(1e-9);
    r.server_cpu_us = cpu_between(before, after_join);
    r.cpu_us_per_op = r.server_cpu_us.map(|c| c as f64 / n.max(1) as f64);
    r.rss_base_kib = before.map(|s| s.rss_kib);
    r.rss_held_kib = last.map(|s| s.rss_kib);
    r.rss_peak_kib = Some(peak).filter(|p| *p > 0);
    r.rss_after_close_kib = closed.map(|s| s.rss_kib);
    r.per_socket_kib = match (before, last) {
        (Some(b), Some(l)) if still > 0 => {
            Some(l.rss_kib.saturating_sub(b.rss_kib) as f64 / still as f64)
        }
        _ => None,
    };
    r
}

/// Sets up `pairs` pairs: both joined, both `ready`, both got `start` (where the protocol has
/// it). Pairs that fail are counted and left out.
async fn setup_pairs(ctx: &Ctx, pairs: u64, errors: &Arc<Errors>) -> Vec<(Ws, Ws, Who)> {
    let gate = Arc::new(Semaphore::new(64));
    let mut set = JoinSet::new();
    for pair in 0..pairs {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire().await;
            let (wa, wb) = (ctx.who(2 * pair), ctx.who(2 * pair + 1));
            let p = ctx.target.protocol;
            let mut a = connect_and_join(&ctx, wa).await?;
            let mut b = connect_and_join(&ctx, wb).await?;
            if let Some(ready) = p.ready() {
                client::send(&mut a, ready).await?;
                client::send(&mut b, ready).await?;
                let until = Instant::now() + STEP;
                client::expect(&mut a, p, &Incoming::Start, until).await?;
                client::expect(&mut b, p, &Incoming::Start, until).await?;
            }
            Ok::<_, String>((a, b, wa))
        });
    }
    let mut out = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok(Ok(pair)) => out.push(pair),
            Ok(Err(e)) => errors.add(format!("setup: {e}")),
            Err(e) => errors.add(format!("setup task: {e}")),
        }
    }
    out
}

/// Tears pairs down outside the measured window. Both sides leave: after the first one's
/// `hangup` the other stays admitted in its room (it only hears `peer-left`), so waiting for
/// the server to close it would wait out the whole drain timeout.
async fn teardown(pairs: Vec<(Ws, Ws, Who)>, protocol: Protocol) {
    let mut set = JoinSet::new();
    for (mut a, mut b, _) in pairs {
        set.spawn(async move {
            let _ = client::leave(&mut a, protocol).await;
            let _ = client::leave(&mut b, protocol).await;
        });
    }
    let _ = timeout(Duration::from_secs(30), async {
        while set.join_next().await.is_some() {}
    })
    .await;
}

/// One side of a pair receiving: counts relayed messages and records their latency.
fn on_relayed(
    got: Result<Incoming, String>,
    hist: &mut Histogram<u64>,
    record_after_ns: u64,
) -> Result<bool, String> {
    match got? {
        Incoming::Relayed(Some(ts)) => {
            if ts >= record_after_ns {
                let _ = hist.record(now_ns().saturating_sub(ts).max(1));
            }
            Ok(true)
        }
        Incoming::Relayed(None) => Err("relayed message without its stamp".into()),
        Incoming::Other | Incoming::Ack | Incoming::Start => Ok(false),
        Incoming::Joined => Err("unexpected joined".into()),
        Incoming::Unexpected(what) => Err(format!("unexpected {what}")),
    }
}

/// `relay`: `pairs` pairs after `start`, each side sending `messages` messages of `size` to
/// the other as fast as the server relays them, at most `window` unanswered per direction (so
/// no outbox ever overflows). Reports messages/s, server CPU per relayed message and the
/// one-way latency under that load.
pub async fn relay(ctx: &Ctx, pairs: u64, size: Size, messages: u64, window: u64) -> RunResult {
    let errors = Arc::new(Errors::default());
    let set_up = setup_pairs(ctx, pairs, &errors).await;
    let delivered = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ctx.max;
    let p = ctx.target.protocol;
    let before = procfs::sample(ctx.server_pid);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for (mut a, mut b, wa) in set_up {
        let (errors, delivered) = (errors.clone(), delivered.clone());
        let wb = wa.peer();
        set.spawn(async move {
            let mut hist = histogram();
            let (mut a_sent, mut b_sent, mut a_got, mut b_got) = (0u64, 0u64, 0u64, 0u64);
            let result: Result<(), String> = async {
                while a_got < messages || b_got < messages {
                    while a_sent < messages && a_sent - b_got < window {
                        client::send(&mut a, p.relay(size, wa, now_ns())).await?;
                        a_sent += 1;
                    }
                    while b_sent < messages && b_sent - a_got < window {
                        client::send(&mut b, p.relay(size, wb, now_ns())).await?;
                        b_sent += 1;
                    }
                    tokio::select! {
                        got = client::next(&mut a, p, deadline) => {
                            if on_relayed(got, &mut hist, 0)? { a_got += 1; }
                        }
                        got = client::next(&mut b, p, deadline) => {
                            if on_relayed(got, &mut hist, 0)? { b_got += 1; }
                        }
                    }
                }
                Ok(())
            }
            .await;
            delivered.fetch_add(a_got + b_got, Ordering::AcqRel);
            if let Err(e) = result {
                errors.add(e);
            }
            (hist, a, b, wa)
        });
    }
    let mut hist = histogram();
    let mut back = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((h, a, b, wa)) => {
                let _ = hist.add(&h);
                back.push((a, b, wa));
            }
            Err(e) => errors.add(format!("pair task: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let after = procfs::sample(ctx.server_pid);
    teardown(back, p).await;

    let n = delivered.load(Ordering::Acquire);
    let mut r = ctx.result(
        &format!("relay-{}", size_name(size)),
        json!({"pairs": pairs, "messagesPerDirection": messages, "window": window}),
        &errors,
    );
    r.ok = n;
    r.elapsed_s = elapsed.as_secs_f64();
    r.rate_per_s = n as f64 / elapsed.as_secs_f64().max(1e-9);
    r.server_cpu_us = cpu_between(before, after);
    r.cpu_us_per_op = r.server_cpu_us.map(|c| c as f64 / n.max(1) as f64);
    r.rss_base_kib = before.map(|s| s.rss_kib);
    r.rss_peak_kib = after.map(|s| s.rss_kib);
    r.latency_us = Latency::of(&hist);
    r
}

/// `fixed-rate`: `pairs` pairs after `start`, `rate` messages per second in all, alternating
/// direction, for `duration`. Each message is stamped with its *scheduled* send time, so a
/// stall of the generator or the server shows up as latency instead of hiding (coordinated
/// omission). The first second is not recorded (warm-up).
///
/// tokio's timer has a resolution of 1 ms and rounds up, so a message woken by it alone goes
/// out up to 1 ms after its stamp, which would be counted as latency (raising a sub-150 µs p99
/// over 1 ms). With `precise`, each sender sleeps until 1 ms before its time and then yields
/// in a loop until the time itself: exact send times for the cost of spinning the generator's
/// CPU, which suits the one-pair latency scenario and not a loaded one.
pub async fn fixed_rate(
    ctx: &Ctx,
    pairs: u64,
    size: Size,
    rate: f64,
    duration: Duration,
    precise: bool,
) -> RunResult {
    let errors = Arc::new(Errors::default());
    let set_up = setup_pairs(ctx, pairs, &errors).await;
    let live = set_up.len().max(1) as f64;
    let delivered = Arc::new(AtomicU64::new(0));
    let p = ctx.target.protocol;
    let before = procfs::sample(ctx.server_pid);
    let started = Instant::now();
    let record_after = now_ns() + 1_000_000_000;
    let end = started + duration;
    let deadline = (end + STEP).min(started + ctx.max);
    let per_pair_gap = Duration::from_secs_f64(live / rate.max(1e-3));
    let mut set = JoinSet::new();
    for (k, (mut a, mut b, wa)) in set_up.into_iter().enumerate() {
        let (errors, delivered) = (errors.clone(), delivered.clone());
        let wb = wa.peer();
        // Stagger the pairs across one gap so the total rate is smooth.
        let first = started + per_pair_gap.mul_f64(k as f64 / live);
        set.spawn(async move {
            let mut hist = histogram();
            let (mut sent, mut got) = (0u64, 0u64);
            let mut next_at = first;
            let result: Result<(), String> = async {
                loop {
                    let sending = next_at < end;
                    if !sending && got >= sent {
                        return Ok(());
                    }
                    let wake_at = if precise {
                        next_at.checked_sub(TIMER_SLACK).unwrap_or(next_at)
                    } else {
                        next_at
                    };
                    tokio::select! {
                        () = sleep_until(wake_at), if sending => {
                            while precise && Instant::now() < next_at {
                                tokio::task::yield_now().await;
                            }
                            // The stamp is the scheduled time, not the actual one.
                            let ts = now_ns().saturating_sub(next_at.elapsed().as_nanos() as u64);
                            if sent % 2 == 0 {
                                client::send(&mut a, p.relay(size, wa, ts)).await?;
                            } else {
                                client::send(&mut b, p.relay(size, wb, ts)).await?;
                            }
                            sent += 1;
                            next_at += per_pair_gap;
                        }
                        r = client::next(&mut a, p, deadline) => {
                            if on_relayed(r, &mut hist, record_after)? { got += 1; }
                        }
                        r = client::next(&mut b, p, deadline) => {
                            if on_relayed(r, &mut hist, record_after)? { got += 1; }
                        }
                    }
                }
            }
            .await;
            delivered.fetch_add(got, Ordering::AcqRel);
            if let Err(e) = result {
                errors.add(e);
            }
            (hist, a, b, wa)
        });
    }
    let mut hist = histogram();
    let mut back = Vec::new();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((h, a, b, wa)) => {
                let _ = hist.add(&h);
                back.push((a, b, wa));
            }
            Err(e) => errors.add(format!("pair task: {e}")),
        }
    }
    let elapsed = started.elapsed();
    let after = procfs::sample(ctx.server_pid);
    teardown(back, p).await;

    let n = delivered.load(Ordering::Acquire);
    let mut r = ctx.result(
        &format!("fixed-rate-{}", size_name(size)),
        json!({"pairs": pairs, "rate": rate, "seconds": duration.as_secs_f64()}),
        &errors,
    );
    r.ok = n;
    r.elapsed_s = elapsed.as_secs_f64();
    r.rate_per_s = n as f64 / elapsed.as_secs_f64().max(1e-9);
    r.server_cpu_us = cpu_between(before, after);
    r.cpu_us_per_op = r.server_cpu_us.map(|c| c as f64 / n.max(1) as f64);
    r.rss_base_kib = before.map(|s| s.rss_kib);
    r.latency_us = Latency::of(&hist);
    r
}

/// One churn cycle: connect, upgrade, join, joined, leave, closed. Returns the join→joined
/// time in nanoseconds.
async fn cycle(ctx: &Ctx, who: Who) -> Result<u64, String> {
    let p = ctx.target.protocol;
    // PeerJS admits on the upgrade itself: its "join" starts with the connect.
    let connecting = now_ns();
    let mut ws = client::connect(&ctx.target, &p.url(&ctx.target.base, who)).await?;
    let mut sent = connecting;
    if let Some(join) = p.join(who) {
        sent = now_ns();
        client::send(&mut ws, join).await?;
    }
    client::expect(&mut ws, p, &Incoming::Joined, Instant::now() + STEP).await?;
    let took = now_ns().saturating_sub(sent);
    client::leave(&mut ws, p).await?;
    Ok(took)
}

/// `churn`: `joins` clients, each alone in its own room, connect, join, leave and close.
/// Closed loop with `concurrency` clients at a time when `rate` is `None` ("as fast as
/// possible"); otherwise open loop, one new client every `1 / rate` seconds (at most
/// `concurrency` in flight: beyond that the generator counts itself as behind). Reports
/// joins/s, server CPU per join and join→joined latency.
pub async fn churn(ctx: &Ctx, joins: u64, concurrency: usize, rate: Option<f64>) -> RunResult {
    let errors = Arc::new(Errors::default());
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + ctx.max;
    let before = procfs::sample(ctx.server_pid);
    let started = Instant::now();
    let mut hist = histogram();
    let mut set: JoinSet<Histogram<u64>> = JoinSet::new();
    match rate {
        None => {
            for _ in 0..concurrency.max(1) {
                let (ctx, errors, done, next) =
                    (ctx.clone(), errors.clone(), done.clone(), next.clone());
                set.spawn(async move {
                    let mut hist = histogram();
                    loop {
                        let i = next.fetch_add(1, Ordering::AcqRel);
                        if i >= joins || Instant::now() >= deadline {
                            return hist;
                        }
                        match cycle(&ctx, ctx.who(2 * i)).await {
                            Ok(ns) => {
                                let _ = hist.record(ns.max(1));
                                done.fetch_add(1, Ordering::AcqRel);
                            }
                            Err(e) => errors.add(e),
                        }
                    }
                });
            }
        }
        Some(rate) => {
            let gap = Duration::from_secs_f64(1.0 / rate.max(1e-3));
            let gate = Arc::new(Semaphore::new(concurrency.max(1)));
            for i in 0..joins {
                let at = started + gap.mul_f64(i as f64);
                if at >= deadline {
                    break;
                }
                sleep_until(at).await;
                let Ok(permit) = gate.clone().try_acquire_owned() else {
                    errors.add("generator behind: too many joins in flight");
                    continue;
                };
                let (ctx, errors, done) = (ctx.clone(), errors.clone(), done.clone());
                set.spawn(async move {
                    let mut hist = histogram();
                    match cycle(&ctx, ctx.who(2 * i)).await {
                        Ok(ns) => {
                            let _ = hist.record(ns.max(1));
                            done.fetch_add(1, Ordering::AcqRel);
                        }
                        Err(e) => errors.add(e),
                    }
                    drop(permit);
                    hist
                });
                // Merge finished cycles as we go so the set stays small.
                while let Some(finished) = set.try_join_next() {
                    if let Ok(h) = finished {
                        let _ = hist.add(&h);
                    }
                }
            }
        }
    }
    let rest = timeout(STEP + STEP, async {
        while let Some(h) = set.join_next().await {
            if let Ok(h) = h {
                let _ = hist.add(&h);
            }
        }
    })
    .await;
    if rest.is_err() {
        errors.add("churn did not finish in time");
        set.abort_all();
    }
    let elapsed = started.elapsed();
    let after = procfs::sample(ctx.server_pid);
    let n = done.load(Ordering::Acquire);
    let mut r = ctx.result(
        if rate.is_some() {
            "churn-rate"
        } else {
            "churn"
        },
        json!({"joins": joins, "concurrency": concurrency, "rate": rate}),
        &errors,
    );
    r.ok = n;
    r.elapsed_s = elapsed.as_secs_f64();
    r.rate_per_s = n as f64 / elapsed.as_secs_f64().max(1e-9);
    r.server_cpu_us = cpu_between(before, after);
    r.cpu_us_per_op = r.server_cpu_us.map(|c| c as f64 / n.max(1) as f64);
    r.rss_base_kib = before.map(|s| s.rss_kib);
    r.rss_peak_kib = after.map(|s| s.rss_kib);
    r.latency_us = Latency::of(&hist);
    r
}

fn size_name(size: Size) -> &'static str {
    match size {
        Size::Ice => "ice",
        Size::Sdp => "sdp",
    }
}
