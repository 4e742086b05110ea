//! Sharded counters and histograms: a thread adds to its own cache line and a reader sums the
//! shards, so counting on the fan-out path never contends. The engine times publishes with them and
//! `metrics` exposes them.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Shards per sharded metric, a power of two above the worker threads of a typical server; more
/// threads than this share shards, which costs contention, never correctness.
const SHARDS: usize = 32;

/// Hands each thread its shard, round-robin.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, fixed on first use.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// The calling thread's shard (shard 0 while the thread is being torn down).
fn shard() -> usize {
    SHARD.try_with(|s| *s).unwrap_or(0)
}

/// `N` counters, one cache line of them per shard: adding touches only the caller's line.
pub struct ShardedCounters<const N: usize> {
    /// One array of counters per shard.
    shards: Box<[CachePadded<[AtomicU64; N]>]>,
}

impl<const N: usize> ShardedCounters<N> {
    /// All zero.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| CachePadded::new(std::array::from_fn(|_| AtomicU64::new(0))))
                .collect(),
        }
    }

    /// Adds `n` to counter `index`.
    pub fn add(&self, index: usize, n: u64) {
        self.shards[shard()][index].fetch_add(n, Ordering::Relaxed);
    }

    /// Counter `index`, summed over the shards.
    pub fn get(&self, index: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s[index].load(Ordering::Relaxed))
            .sum()
    }
}

impl<const N: usize> Default for ShardedCounters<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for ShardedCounters<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let totals: Vec<u64> = (0..N).map(|i| self.get(i)).collect();
        f.debug_tuple("ShardedCounters").field(&totals).finish()
    }
}

/// Most buckets a [`Histogram`] can have, the `+Inf` bucket included.
const MAX_BUCKETS: usize = 24;

/// One shard of a histogram: a count per bucket and the sum of observed values.
struct HistogramShard {
    /// Observations per bucket (not cumulative); index `bounds.len()` is `+Inf`.
    counts: [AtomicU64; MAX_BUCKETS],
    /// Sum of observed values, in the histogram's integer unit.
    sum: AtomicU64,
}

/// A sharded histogram of integer observations (nanoseconds, items) with fixed upper bounds.
pub struct Histogram {
    /// Inclusive upper bounds, ascending, without `+Inf`.
    bounds: &'static [u64],
    /// Divisor from the integer unit to the exposed unit (1e9 for nanoseconds to seconds); a
    /// divisor, not a factor, so bounds print exactly (`0.000001`, not `0.0000010000000000000002`).
    divisor: f64,
    /// One shard per thread group.
    shards: Box<[CachePadded<HistogramShard>]>,
}

impl Histogram {
    /// An empty histogram; `bounds` must ascend and hold fewer than 24 values.
    pub fn new(bounds: &'static [u64], divisor: f64) -> Self {
        assert!(bounds.len() < MAX_BUCKETS && bounds.windows(2).all(|w| w[0] < w[1]));
        Self {
            bounds,
            divisor,
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded::new(HistogramShard {
                        counts: std::array::from_fn(|_| AtomicU64::new(0)),
                        sum: AtomicU64::new(0),
                    })
                })
                .collect(),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: u64) {
        let shard = &self.shards[shard()];
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        shard.counts[bucket].fetch_add(1, Ordering::Relaxed);
        shard.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration, in nanoseconds.
    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The buckets and sum now, summed over the shards, in the exposed unit.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = vec![0u64; self.bounds.len() + 1];
        let mut sum = 0u64;
        for shard in self.shards.iter() {
            for (total, count) in counts.iter_mut().zip(&shard.counts) {
                *total += count.load(Ordering::Relaxed);
            }
            sum = sum.wrapping_add(shard.sum.load(Ordering::Relaxed));
        }
        let buckets = self
            .bounds
            .iter()
            .map(|&b| b as f64 / self.divisor)
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts)
            .collect();
        HistogramSnapshot {
            sum: sum as f64 / self.divisor,
            buckets,
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("bounds", &self.bounds)
            .finish_non_exhaustive()
    }
}

/// A histogram's state at scrape time.
#[derive(Debug, Clone)]
pub struct HistogramSnapshot {
    /// Sum of the observations.
    pub sum: f64,
    /// Upper bound and (non-cumulative) count of each bucket, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for HistogramSnapshot {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let count = self.buckets.iter().map(|(_, c)| c).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum, count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Bounds of the publish-to-enqueue histogram, nanoseconds: 1 µs to 1 s.
const LATENCY_BOUNDS_NS: &[u64] = &[
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// A histogram of publish-to-enqueue latency: from a publish's entry into the broker to the end
/// of its fan-out (the last subscriber's outbox push).
pub fn publish_latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS_NS, 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let h = Histogram::new(&[1, 10], 1.0);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 2), (10.0, 2), (f64::INFINITY, 2)]);
        assert_eq!(s.sum, 1024.0);
    }

    #[test]
    fn sharded_counters_sum_across_threads() {
        let c = std::sync::Arc::new(ShardedCounters::<2>::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(1, 3);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(0), 0);
        assert_eq!(c.get(1), 24_000);
    }
}
