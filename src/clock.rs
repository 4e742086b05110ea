//! The `ts` field of every frame: RFC 3339 UTC with milliseconds, formatted at most once per
//! millisecond per thread, because a busy publisher would otherwise format the same string
//! thousands of times a second.

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of `2025-08-25T10:00:00.123Z`.
const LEN: usize = 24;

/// A formatted timestamp, kept on the stack.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    bytes: [u8; LEN],
}

impl Timestamp {
    /// The timestamp as a string, e.g. `2025-08-25T10:00:00.123Z`.
    pub fn as_str(&self) -> &str {
        // The buffer only ever holds ASCII written by `format`, so this never fails.
        std::str::from_utf8(&self.bytes).unwrap_or("1970-01-01T00:00:00.000Z")
    }

    /// Formats `time`, which must lie between years 1970 and 9999.
    pub fn from_system_time(time: SystemTime) -> Self {
        let mut bytes = [b'0'; LEN];
        let mut cursor = &mut bytes[..];
        // humantime writes exactly LEN bytes for years 1970..=9999; a clock outside that range
        // leaves zeros, which still parse as a timestamp.
        let _ = write!(cursor, "{}", humantime::format_rfc3339_millis(time));
        Self { bytes }
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

thread_local! {
    /// The last millisecond formatted on this thread and its text.
    static CACHE: Cell<(u128, Timestamp)> = const {
        Cell::new((u128::MAX, Timestamp { bytes: [b'0'; LEN] }))
    };
}

/// The current time, formatted.
pub fn now() -> Timestamp {
    stamp().0
}

/// The current time, formatted and as milliseconds since the Unix epoch (read from one clock
/// reading, so an event's `ts` and the age `HISTORY_TTL_SECS` checks agree).
pub fn stamp() -> (Timestamp, u64) {
    let time = SystemTime::now();
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let text = CACHE.with(|cache| {
        let (cached_millis, cached) = cache.get();
        if cached_millis == millis {
            return cached;
        }
        let fresh = Timestamp::from_system_time(time);
        cache.set((millis, fresh));
        fresh
    });
    (text, u64::try_from(millis).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch now.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc3339_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_756_116_000_123);
        assert_eq!(
            Timestamp::from_system_time(t).as_str(),
            "2025-08-25T10:00:00.123Z"
        );
    }

    #[test]
    fn now_is_well_formed() {
        let s = now();
        assert_eq!(s.as_str().len(), LEN);
        assert!(s.as_str().ends_with('Z'));
        assert!(humantime::parse_rfc3339(s.as_str()).is_ok());
    }
}
