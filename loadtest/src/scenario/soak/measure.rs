//! The pure parts of a soak: the default warm-up, the server samples and what they say about
//! growth, the `seq` continuity of a subscription across reconnects, the check of a resume ack,
//! and a small random source for churn timing.

use std::time::Duration;

use crate::client::herald::SubscribeAck;

/// Warm-up when `--warmup` is not given: 10 % of the run, at least 30 s, at most half of it.
pub fn default_warmup(duration: Duration) -> Duration {
    (duration / 10)
        .max(Duration::from_secs(30))
        .min(duration / 2)
}

/// Status line period when `--log-every` is not given: a sixth of the run, 1 s to 60 s.
pub fn default_log_every(duration: Duration) -> Duration {
    (duration / 6).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// One reading of the server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Since publishing started.
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: u64,
}

/// Samples a [`Trend`] takes the median of at each end: with the default 2 s sampling, 10 s of
/// the run, long enough that a momentary high-water mark (a scheduling stall that let queues
/// fill) does not decide the result.
pub const TREND_WINDOW: usize = 5;

/// How a sampled value moved over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trend {
    /// At the end of the warm-up: the median of the first (up to) [`TREND_WINDOW`] samples
    /// taken then or after.
    pub warm: u64,
    /// At the end of the run: the median of the last (up to) [`TREND_WINDOW`] samples.
    pub end: u64,
    /// The largest sample of the whole run.
    pub max: u64,
    /// `end` against `warm`, in percent (negative when it shrank).
    pub growth_pct: f64,
}

impl Trend {
    /// The trend of `value` over `samples` (in time order) with the warm-up ending at
    /// `warm_at`; `None` without a sample at or after it.
    pub fn of(
        samples: &[Sample],
        warm_at: Duration,
        value: impl Fn(&Sample) -> u64,
    ) -> Option<Self> {
        let first_warm = samples.iter().position(|s| s.at >= warm_at)?;
        let warm = median(
            samples[first_warm..]
                .iter()
                .take(TREND_WINDOW)
                .map(&value)
                .collect(),
        );
        let tail = samples.len().saturating_sub(TREND_WINDOW).max(first_warm);
        let end = median(samples[tail..].iter().map(&value).collect());
        let max = samples.iter().map(&value).max().unwrap_or(0);
        let growth_pct = if warm == 0 {
            0.0
        } else {
            (end as f64 - warm as f64) * 100.0 / warm as f64
        };
        Some(Self {
            warm,
            end,
            max,
            growth_pct,
        })
    }

    /// How much `end` exceeds `warm` (0 when it did not grow).
    pub fn growth(&self) -> u64 {
        self.end.saturating_sub(self.warm)
    }
}

/// The median of a non-empty list (the lower middle for an even count); 0 when empty.
fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// At most `points` samples spread evenly over `samples`, first and last included.
pub fn downsample(samples: &[Sample], points: usize) -> Vec<Sample> {
    if samples.len() <= points {
        return samples.to_vec();
    }
    if points < 2 {
        return samples[..points].to_vec();
    }
    let last = samples.len() - 1;
    (0..points)
        .map(|k| samples[k * last / (points - 1)])
        .collect()
}

/// Late wake-ups of the run's own timer: the load generator did not get the CPU (the machine was
/// busy with something else), which shows up as latency, as a publish burst when it catches up,
/// and as a backlog on the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stalls {
    /// Wake-ups at least [`Stalls::THRESHOLD`] late, in all and after the warm-up.
    pub count: u64,
    pub after_warmup: u64,
    /// The longest one, and when (since the start) it ended.
    pub longest: Duration,
    pub longest_at: Duration,
}

impl Stalls {
    pub const THRESHOLD: Duration = Duration::from_millis(200);

    /// A wake-up at `at` (since the start) that came `late` after it was due.
    pub fn observe(&mut self, at: Duration, late: Duration, warm_at: Duration) {
        if late < Self::THRESHOLD {
            return;
        }
        self.count += 1;
        if at >= warm_at {
            self.after_warmup += 1;
        }
        if late > self.longest {
            self.longest = late;
            self.longest_at = at;
        }
    }
}

/// The `seq` numbers one subscription sees, across reconnects. On one herald node they grow by
/// exactly one per message of the topic, so anything else is a gap or a repeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqTrack {
    /// The last `seq` seen (or the subscribe ack's `seq` before any event).
    last: u64,
    /// Jumps forward, and the `seq` numbers they skipped.
    pub gaps: u64,
    pub skipped: u64,
    /// Events at or below the last `seq` seen.
    pub repeated: u64,
}

impl SeqTrack {
    /// A subscription whose ack said the topic was at `seq`: the next event is `seq + 1`.
    pub fn new(seq: u64) -> Self {
        Self {
            last: seq,
            ..Self::default()
        }
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    /// An event with `seq` arrived.
    pub fn event(&mut self, seq: u64) {
        if seq == self.last + 1 {
            self.last = seq;
        } else if seq > self.last {
            self.gaps += 1;
            self.skipped += seq - self.last - 1;
            self.last = seq;
        } else {
            self.repeated += 1;
        }
    }
}

/// What a resume's subscribe ack said, checked against what the subscriber had seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// `recovered: true`, same epoch: `missed` events follow as the replay.
    Recovered { missed: u64 },
    /// Anything else, explained.
    Failed(String),
}

/// Checks the ack of `subscribe {since_seq: last, epoch}`.
pub fn check_resume(ack: &SubscribeAck, last: u64, epoch: &str) -> Resume {
    if ack.epoch != epoch {
        return Resume::Failed(format!(
            "topic {} epoch changed from {epoch} to {}",
            ack.topic, ack.epoch
        ));
    }
    if ack.recovered != Some(true) {
        return Resume::Failed(format!(
            "topic {}: resume after seq {last} answered recovered: {:?} (latest seq {})",
            ack.topic, ack.recovered, ack.seq
        ));
    }
    if ack.seq < last {
        return Resume::Failed(format!(
            "topic {}: latest seq {} is behind the {last} already seen",
            ack.topic, ack.seq
        ));
    }
    Resume::Recovered {
        missed: ack.seq - last,
    }
}

/// SplitMix64: enough randomness for churn timing, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)` (or `lo` when the range is empty).
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_nanos() as u64;
        if span == 0 {
            return lo;
        }
        lo + Duration::from_nanos(self.next_u64() % span)
    }

    /// A hold time around `mean`: uniform in 0.5–1.5 × `mean`.
    pub fn hold(&mut self, mean: Duration) -> Duration {
        self.between(mean / 2, mean * 3 / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64, rss_kib: u64, fds: u64) -> Sample {
        Sample {
            at: Duration::from_secs(secs),
            rss_kib,
            fds,
        }
    }

    #[test]
    fn warmup_defaults() {
        let secs = Duration::from_secs;
        assert_eq!(default_warmup(secs(60)), secs(30));
        assert_eq!(default_warmup(secs(1800)), secs(180));
        assert_eq!(default_warmup(secs(10)), secs(5));
        assert_eq!(default_warmup(secs(400)), secs(40));
        assert_eq!(default_log_every(secs(60)), secs(10));
        assert_eq!(default_log_every(secs(1800)), secs(60));
        assert_eq!(default_log_every(secs(2)), secs(1));
    }

    #[test]
    fn trend_uses_medians_around_warmup_and_end() {
        let samples = [
            s(0, 5_000, 10),
            s(10, 9_000, 30),
            s(20, 10_000, 31),
            // A spike right at the warm-up end is outvoted by its neighbours.
            s(30, 50_000, 90),
            s(32, 10_100, 32),
            s(34, 10_200, 30),
            s(36, 10_300, 33),
            s(38, 10_000, 29),
            s(40, 10_600, 35),
            s(56, 10_400, 31),
            s(58, 10_700, 34),
            // So is one at the very end.
            s(60, 60_000, 29),
            s(62, 10_500, 30),
        ];
        assert_eq!(TREND_WINDOW, 5);
        let rss = Trend::of(&samples, Duration::from_secs(30), |s| s.rss_kib).unwrap();
        assert_eq!((rss.warm, rss.end, rss.max), (10_200, 10_600, 60_000));
        assert!((rss.growth_pct - 3.921).abs() < 0.01, "{}", rss.growth_pct);
        assert_eq!(rss.growth(), 400);
        let fds = Trend::of(&samples, Duration::from_secs(30), |s| s.fds).unwrap();
        assert_eq!((fds.warm, fds.end, fds.max), (32, 31, 90));
        assert_eq!(fds.growth(), 0);
        assert!(fds.growth_pct < 0.0);
    }

    #[test]
    fn trend_needs_a_sample_after_warmup_and_handles_short_runs() {
        let samples = [s(0, 100, 1), s(5, 110, 1)];
        assert_eq!(
            Trend::of(&samples, Duration::from_secs(6), |s| s.rss_kib),
            None
        );
        assert_eq!(Trend::of(&[], Duration::ZERO, |s| s.rss_kib), None);
        // One sample after the warm-up: it is both ends, growth 0.
        let samples = [s(0, 100, 1), s(5, 110, 1), s(7, 200, 1)];
        let t = Trend::of(&samples, Duration::from_secs(6), |s| s.rss_kib).unwrap();
        assert_eq!((t.warm, t.end, t.growth_pct), (200, 200, 0.0));
        // The end window never reaches back before the warm-up.
        let samples = [s(0, 1, 1), s(1, 1, 1), s(2, 100, 1), s(3, 104, 1)];
        let t = Trend::of(&samples, Duration::from_secs(2), |s| s.rss_kib).unwrap();
        assert_eq!((t.warm, t.end), (100, 100));
    }

    #[test]
    fn downsampling_keeps_the_ends() {
        let samples: Vec<Sample> = (0..100).map(|i| s(i, i, i)).collect();
        let few = downsample(&samples, 5);
        let at: Vec<u64> = few.iter().map(|s| s.at.as_secs()).collect();
        assert_eq!(at, [0, 24, 49, 74, 99]);
        assert_eq!(downsample(&samples[..3], 5).len(), 3);
        assert_eq!(downsample(&samples, 1).len(), 1);
        assert!(downsample(&[], 5).is_empty());
    }

    #[test]
    fn stalls_count_late_wakeups() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let mut st = Stalls::default();
        st.observe(secs(1), ms(5), secs(30));
        st.observe(secs(10), ms(250), secs(30));
        st.observe(secs(40), ms(900), secs(30));
        st.observe(secs(50), ms(199), secs(30));
        st.observe(secs(55), ms(300), secs(30));
        assert_eq!((st.count, st.after_warmup), (3, 2));
        assert_eq!((st.longest, st.longest_at), (ms(900), secs(40)));
    }

    #[test]
    fn seq_track_counts_gaps_and_repeats() {
        let mut t = SeqTrack::new(10);
        for seq in [11, 12, 13] {
            t.event(seq);
        }
        assert_eq!(t, SeqTrack::new(13));
        t.event(16);
        assert_eq!((t.gaps, t.skipped, t.last()), (1, 2, 16));
        t.event(16);
        t.event(14);
        assert_eq!((t.repeated, t.last()), (2, 16));
        t.event(17);
        assert_eq!((t.gaps, t.skipped, t.repeated), (1, 2, 2));
    }

    #[test]
    fn resume_acks_are_checked() {
        let ack = |seq, epoch: &str, recovered| SubscribeAck {
            topic: "t".into(),
            seq,
            epoch: epoch.into(),
            recovered,
        };
        assert_eq!(
            check_resume(&ack(25, "e1", Some(true)), 20, "e1"),
            Resume::Recovered { missed: 5 }
        );
        assert_eq!(
            check_resume(&ack(20, "e1", Some(true)), 20, "e1"),
            Resume::Recovered { missed: 0 }
        );
        for (a, why) in [
            (ack(25, "e1", Some(false)), "recovered: Some(false)"),
            (ack(25, "e1", None), "recovered: None"),
            (ack(25, "e2", Some(true)), "epoch changed"),
            (ack(19, "e1", Some(true)), "behind"),
        ] {
            match check_resume(&a, 20, "e1") {
                Resume::Failed(text) => assert!(text.contains(why), "{text}"),
                other => panic!("{a:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn rng_holds_stay_in_range() {
        let mut rng = Rng::new(7);
        let mean = Duration::from_secs(4);
        for _ in 0..1000 {
            let h = rng.hold(mean);
            assert!(
                h >= Duration::from_secs(2) && h < Duration::from_secs(6),
                "{h:?}"
            );
        }
        assert_eq!(rng.between(mean, mean), mean);
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
