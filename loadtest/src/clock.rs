//! One monotonic clock for the whole process. Publishers and subscribers live in the same
//! process, so a send time written into a payload can be compared with the receive time directly.

use std::sync::OnceLock;
use std::time::Instant;

/// The instant every timestamp is measured from; set once, early in `main`.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Fixes the epoch. Calling it again is harmless.
pub fn init() {
    EPOCH.get_or_init(Instant::now);
}

/// Nanoseconds since the epoch (monotonic; `clock_gettime` through the vDSO, no syscall).
pub fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
