//! [`VerifyBudget`]: how much CPU time token verification may take, so a flood of bad tokens (an
//! RS256 or ES256 check costs 0.3–0.4 ms) cannot take the CPU from delivery to the clients already
//! connected.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// CPU time per second that token verification may use: half a core. An HS256 check costs about
/// 5 µs, so only a flood of public-key tokens (over ~1,500 a second) ever reaches it.
pub const VERIFY_SECONDS_PER_SECOND: f64 = 0.5;

/// Most verification time saved up while idle, so a burst of reconnecting clients after a
/// restart is not refused.
const BURST: Duration = Duration::from_secs(2);

/// A token bucket of verification time.
#[derive(Debug)]
pub struct VerifyBudget {
    /// Seconds of verification left, and when that was computed.
    state: Mutex<(f64, Instant)>,
}

impl Default for VerifyBudget {
    fn default() -> Self {
        Self {
            state: Mutex::new((BURST.as_secs_f64(), Instant::now())),
        }
    }
}

impl VerifyBudget {
    /// Whether a verification may start now.
    pub fn allows(&self) -> bool {
        let mut state = self.state.lock();
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * VERIFY_SECONDS_PER_SECOND;
        state.0 = (state.0 + refill).min(BURST.as_secs_f64());
        state.1 = now;
        state.0 > 0.0
    }

    /// Charges a verification that took `spent`.
    pub fn charge(&self, spent: Duration) {
        self.state.lock().0 -= spent.as_secs_f64();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spending_past_the_budget_refuses_until_it_refills() {
        let budget = VerifyBudget::default();
        assert!(budget.allows());
        budget.charge(BURST + Duration::from_millis(50));
        assert!(!budget.allows(), "the saved-up burst is spent");
        std::thread::sleep(Duration::from_millis(200));
        assert!(budget.allows(), "100 ms of budget came back");
    }
}
