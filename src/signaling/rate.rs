//! Token buckets for per-socket message rates and per-IP join rates.

use tokio::time::Instant;

use crate::config::Rate;

/// A token bucket: starts full with `burst` tokens, refills `per_second` tokens per second.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f32,
    burst: f32,
    per_second: f32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: Rate, now: Instant) -> Self {
        TokenBucket {
            tokens: rate.burst as f32,
            burst: rate.burst as f32,
            per_second: rate.per_second as f32,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (so it can be forgotten).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_allows_burst_then_refills() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(
            Rate {
                per_second: 2.0,
                burst: 3,
            },
            t0,
        );
        assert!((0..3).all(|_| b.try_take(t0)));
        assert!(!b.try_take(t0));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        assert!(b.is_full(t0 + Duration::from_secs(10)));
    }
}
