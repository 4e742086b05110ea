//! The per-topic token bucket of `MAX_PUBLISH_RATE`, only ever used by the sequencer's holder.

use std::time::Instant;

/// Per-topic token bucket for `MAX_PUBLISH_RATE` (burst = one second's worth).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    /// Tokens per second, and the bucket size.
    rate: f64,
    /// Tokens available now.
    tokens: f64,
    /// When `tokens` was last refilled.
    last: Instant,
}

impl RateLimiter {
    /// A full bucket of `rate` tokens, refilled at `rate` per second.
    pub(crate) fn per_second(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes a token if one is left.
    pub(crate) fn try_take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
