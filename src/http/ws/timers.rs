//! The timers of all sockets: two FIFO queues (join deadlines, pings) instead of a timer per
//! socket, and [`wheel`], the one task that sleeps until the earliest and fires what is due.
//! Every socket gets the same `signaling.join_timeout` and `signaling.heartbeat_interval`, so
//! appending keeps each queue in deadline order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use crate::http::App;
use crate::signaling::hub::PeerId;

/// Which timer of a socket is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// `signaling.join_timeout` passed since the upgrade.
    Join,
    /// `signaling.heartbeat_interval` passed since the last ping.
    Ping,
}

/// Join deadlines and pings of every open socket. Entries of closed sockets stay until they
/// come up, and are skipped then.
#[derive(Debug, Default)]
pub struct Timers {
    /// `(deadline, peer)` in deadline order.
    join_deadlines: VecDeque<(Instant, PeerId)>,
    /// `(when, peer)` of each socket's next ping, in order.
    pings: VecDeque<(Instant, PeerId)>,
}

impl Timers {
    /// Adds the timers of a socket opened at `now`; returns whether the timer task must look
    /// again (a queue was empty, so the new deadline may be the earliest).
    pub fn add(
        &mut self,
        peer: PeerId,
        now: Instant,
        join_timeout: Duration,
        ping: Duration,
    ) -> bool {
        let nudge = self.join_deadlines.is_empty() || self.pings.is_empty();
        self.join_deadlines
            .push_back((later(now, join_timeout), peer));
        self.pings.push_back((later(now, ping), peer));
        nudge
    }

    /// The earliest pending timer.
    pub fn next(&self) -> Option<Instant> {
        let j = self.join_deadlines.front().map(|t| t.0);
        let p = self.pings.front().map(|t| t.0);
        match (j, p) {
            (Some(j), Some(p)) => Some(j.min(p)),
            (j, p) => j.or(p),
        }
    }

    /// Fires the timers due at `now`, passed join deadlines first, then pings: `due` gets
    /// each with its kind and says whether the socket is still open (a ping is then scheduled
    /// again, `ping` later).
    pub fn fire(&mut self, now: Instant, ping: Duration, mut due: impl FnMut(PeerId, Due) -> bool) {
        while let Some(&(at, peer)) = self.join_deadlines.front() {
            if at > now {
                break;
            }
            self.join_deadlines.pop_front();
            due(peer, Due::Join);
        }
        while let Some(&(at, peer)) = self.pings.front() {
            if at > now {
                break;
            }
            self.pings.pop_front();
            if due(peer, Due::Ping) {
                self.pings.push_back((later(now, ping), peer));
            }
        }
        // Queues that were long once should not keep their peak capacity for ever.
        for q in [&mut self.join_deadlines, &mut self.pings] {
            if q.capacity() > 64 && q.len() < q.capacity() / 4 {
                q.shrink_to(q.len() * 2);
            }
        }
    }
}

/// `now + d`, or 30 years from now when `d` is beyond the clock's range (the config bounds
/// neither `signaling.join_timeout` nor `signaling.heartbeat_interval`, and `Instant +
/// Duration` panics on overflow; found by fuzzing the hub).
fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// The one timer task of all sockets: fires join deadlines and pings (see
/// [`super::Switchboard::fire_timers`]), and on shutdown wakes every socket so each says `bye`
/// and closes with 1012. Started by the first socket.
pub async fn wheel(app: Arc<App>) {
    let heartbeat = app.config.signaling.heartbeat_interval;
    loop {
        let next = app.switchboard().next_timer();
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            () = app.shutdown.cancelled() => {
                app.switchboard().wake_all();
                return;
            }
            () = app.wheel.notified() => {}
            () = sleep_until(next.unwrap_or(far)) => {}
        }
        app.switchboard().fire_timers(Instant::now(), heartbeat);
    }
}
