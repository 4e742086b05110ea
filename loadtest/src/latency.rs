//! Latency samples into one HDR histogram. Each task keeps a small batch of samples and merges it
//! under the lock when the batch is full, so thousands of subscriber tasks share one histogram
//! (about 200 KiB) instead of holding one each, and the lock is taken once per batch.

use std::sync::{Arc, Mutex, PoisonError};

use hdrhistogram::Histogram;

/// Highest value tracked, in nanoseconds (60 s); larger samples saturate at it.
const MAX_NS: u64 = 60_000_000_000;

/// Significant digits kept: 0.1 % resolution at every magnitude.
const SIGFIG: u8 = 3;

/// Samples a recorder holds before merging them.
const BATCH: usize = 1024;

/// The shared histogram, in nanoseconds.
pub struct LatencySink {
    hist: Mutex<Histogram<u64>>,
}

impl LatencySink {
    pub fn new() -> Arc<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_NS, SIGFIG).expect("valid histogram bounds");
        Arc::new(Self {
            hist: Mutex::new(hist),
        })
    }

    /// A per-task recorder feeding this sink.
    pub fn recorder(self: &Arc<Self>) -> LatencyRecorder {
        LatencyRecorder {
            sink: self.clone(),
            batch: Vec::with_capacity(BATCH),
        }
    }

    /// Percentiles of everything merged so far.
    pub fn percentiles(&self) -> Percentiles {
        let hist = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        Percentiles::of(&hist)
    }

    fn merge(&self, samples: &[u64]) {
        let mut hist = self.hist.lock().unwrap_or_else(PoisonError::into_inner);
        for &ns in samples {
            hist.saturating_record(ns.max(1));
        }
    }
}

/// One task's batch of samples; merged when full and when dropped.
pub struct LatencyRecorder {
    sink: Arc<LatencySink>,
    batch: Vec<u64>,
}

impl LatencyRecorder {
    pub fn record(&mut self, ns: u64) {
        self.batch.push(ns);
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            self.sink.merge(&self.batch);
            self.batch.clear();
        }
    }
}

impl Drop for LatencyRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The summary printed for a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: hist.len(),
            mean: hist.mean() / 1000.0,
            p50: us(hist.value_at_quantile(0.50)),
            p90: us(hist.value_at_quantile(0.90)),
            p99: us(hist.value_at_quantile(0.99)),
            p999: us(hist.value_at_quantile(0.999)),
            max: us(hist.max()),
        }
    }

    /// One table cell: `p50 … max` in µs.
    pub fn line(&self) -> String {
        if self.count == 0 {
            return "no samples".into();
        }
        format!(
            "p50 {:.0}  p90 {:.0}  p99 {:.0}  p99.9 {:.0}  max {:.0}  (µs, {} samples)",
            self.p50, self.p90, self.p99, self.p999, self.max, self.count
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "mean": round1(self.mean),
            "p50": round1(self.p50),
            "p90": round1(self.p90),
            "p99": round1(self.p99),
            "p99_9": round1(self.p999),
            "max": round1(self.max),
        })
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorders_merge_into_one_histogram() {
        let sink = LatencySink::new();
        let mut a = sink.recorder();
        let mut b = sink.recorder();
        for i in 1..=1000u64 {
            a.record(i * 1000);
            b.record(i * 1000);
        }
        drop(a);
        drop(b);
        let p = sink.percentiles();
        assert_eq!(p.count, 2000);
        assert!((p.p50 - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.max - 1000.0).abs() < 1.0, "{p:?}");
    }
}
