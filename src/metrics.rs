//! Prometheus metrics for `GET /metrics`. Every metric name is in [`Metrics::render`].
//!
//! # Cost on the fan-out path
//! No delivery touches a shared atomic. A topic counts its own events (published, delivered,
//! dropped) in fields only its sequencer's holder writes, and a scrape sums the topics. The
//! histograms and the WebSocket frame counters are sharded: a thread adds to its own cache line
//! and a scrape sums the shards. prometheus-client encodes the exposition and counts REST
//! requests (a `Family`, off the fan-out path); its `Histogram` takes a mutex per observation, so
//! the histograms here are our own.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use http::Method;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::broker::EventCounts;
use crate::protocol::Kind;

/// The content type of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// Bounds of the outbox depth histogram, items: powers of two and four up to the largest
/// `SUBSCRIBER_QUEUE_SIZE`.
const DEPTH_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576,
];

/// A histogram of publish-to-enqueue latency: from a publish's entry into the broker to the end
/// of its fan-out (the last subscriber's outbox push).
pub fn publish_latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BOUNDS_NS, 1e9)
}

/// What a client's WebSocket frame was, for `herald_ws_frames_received_total{type}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameIn {
    /// A `subscribe` frame.
    Subscribe,
    /// An `unsubscribe` frame.
    Unsubscribe,
    /// A `publish` frame.
    Publish,
    /// An application-level `ping` frame.
    Ping,
    /// Not JSON, or not a frame herald understands.
    Invalid,
    /// A WebSocket Ping, Pong or Close control frame.
    Control,
}

impl FrameIn {
    /// Every kind, in counter index order.
    const ALL: [FrameIn; 6] = [
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Publish,
        Self::Ping,
        Self::Invalid,
        Self::Control,
    ];

    /// The `type` label value.
    fn label(self) -> &'static str {
        match self {
            Self::Subscribe => "subscribe",
            Self::Unsubscribe => "unsubscribe",
            Self::Publish => "publish",
            Self::Ping => "ping",
            Self::Invalid => "invalid",
            Self::Control => "control",
        }
    }
}

impl From<Kind> for FrameIn {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Subscribe => Self::Subscribe,
            Kind::Unsubscribe => Self::Unsubscribe,
            Kind::Publish => Self::Publish,
            Kind::Ping => Self::Ping,
        }
    }
}

/// Labels of `herald_http_requests_total`: all from small fixed sets, whatever clients send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct HttpLabels {
    /// Route template such as `/topics/{name}`.
    route: &'static str,
    /// Request method, or `other`.
    method: &'static str,
    /// Response status code.
    status: u16,
}

impl EncodeLabelSet for HttpLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> fmt::Result {
        (
            [("route", self.route), ("method", self.method)],
            [("status", self.status)],
        )
            .encode(encoder)
    }
}

/// The `method` label: one of the methods the API knows, so arbitrary extension methods sent by
/// clients cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Several samples of one metric, each with its own label set.
#[derive(Debug)]
struct Labeled<M> {
    /// Label name shared by the samples.
    label: &'static str,
    /// Label value and metric of each sample.
    samples: Vec<(&'static str, M)>,
    /// Type of every sample.
    kind: MetricType,
}

impl<M: EncodeMetric> EncodeMetric for Labeled<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (value, metric) in &self.samples {
            metric.encode(encoder.encode_family(&[(self.label, *value)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

/// Counters labelled by one label, from `(value, count)` pairs.
fn labeled_counters(label: &'static str, samples: &[(&'static str, u64)]) -> Labeled<ConstCounter> {
    Labeled {
        label,
        samples: samples
            .iter()
            .map(|&(value, count)| (value, ConstCounter::new(count)))
            .collect(),
        kind: MetricType::Counter,
    }
}

/// What the server knows at scrape time, passed to [`Metrics::render`].
#[derive(Debug, Clone)]
pub struct Readings {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Topics that exist.
    pub topics: usize,
    /// Subscriptions, summed over topics.
    pub subscriptions: usize,
    /// Event counts since start, deleted topics included.
    pub events: EventCounts,
    /// Connections closed with `SLOW_CONSUMER`.
    pub slow_consumer_disconnects: u64,
    /// Whether the cluster backplane is usable (always for the in-memory broker).
    pub backplane_up: bool,
    /// Publish-to-enqueue latency.
    pub publish_latency: HistogramSnapshot,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// The server's own metrics: REST requests, frames received, outbox depth.
#[derive(Debug)]
pub struct Metrics {
    /// REST and upgrade requests by route template, method and status.
    http_requests: Family<HttpLabels, Counter>,
    /// WebSocket frames received, indexed like [`FrameIn::ALL`].
    frames_in: ShardedCounters<6>,
    /// Items queued in an outbox when its writer starts a batch.
    outbox_depth: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http_requests: Family::default(),
            frames_in: ShardedCounters::new(),
            outbox_depth: Histogram::new(DEPTH_BOUNDS, 1.0),
        }
    }
}

impl Metrics {
    /// Counts one answered HTTP request; `route` must be a template, never a raw path.
    pub fn http_request(&self, route: &'static str, method: &Method, status: u16) {
        let labels = HttpLabels {
            route,
            method: method_label(method),
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
    }

    /// Counts one frame received on a WebSocket.
    pub fn frame_in(&self, frame: FrameIn) {
        let index = FrameIn::ALL.iter().position(|&f| f == frame).unwrap_or(0);
        self.frames_in.add(index, 1);
    }

    /// Samples an outbox's depth as its writer starts a batch.
    pub fn outbox_depth(&self, items: usize) {
        self.outbox_depth.observe(items as u64);
    }

    /// The OpenMetrics text exposition of `readings` and of these metrics.
    pub fn render(&self, readings: Readings) -> String {
        let mut registry = Registry::default();
        let gauge = |v: usize| ConstGauge::new(v as u64);
        registry.register(
            "herald_connections",
            "Open WebSocket connections",
            gauge(readings.connections),
        );
        registry.register(
            "herald_subscriptions",
            "Current subscriptions, summed over topics",
            gauge(readings.subscriptions),
        );
        registry.register("herald_topics", "Topics that exist", gauge(readings.topics));
        let events = readings.events;
        registry.register(
            "herald_messages_published",
            "Messages published into topics",
            ConstCounter::new(events.published),
        );
        registry.register(
            "herald_deliveries",
            "Live events enqueued to subscribers' outboxes (one per subscriber per message)",
            ConstCounter::new(events.delivered),
        );
        registry.register(
            "herald_events_dropped",
            "Events a subscriber lost: drop_oldest evicted it from a full queue, slow_consumer \
             its queue had overflowed under the disconnect policy, closed its connection was \
             closing",
            labeled_counters(
                "reason",
                &[
                    ("drop_oldest", events.dropped_oldest),
                    ("slow_consumer", events.dropped_slow_consumer),
                    ("closed", events.dropped_closed),
                ],
            ),
        );
        registry.register(
            "herald_slow_consumer_disconnects",
            "Connections closed with SLOW_CONSUMER under SLOW_CONSUMER_POLICY=disconnect",
            ConstCounter::new(readings.slow_consumer_disconnects),
        );
        registry.register(
            "herald_outbox_depth",
            "Items queued in a connection's outbox when its writer starts a batch",
            self.outbox_depth.snapshot(),
        );
        registry.register_with_unit(
            "herald_publish_enqueue_latency",
            "Time from a publish entering the broker to the end of its fan-out to every \
             subscriber's outbox",
            Unit::Seconds,
            readings.publish_latency,
        );
        registry.register(
            "herald_http_requests",
            "HTTP requests by route template, method and status",
            self.http_requests.clone(),
        );
        let frames: Vec<(&'static str, u64)> = FrameIn::ALL
            .iter()
            .enumerate()
            .map(|(i, f)| (f.label(), self.frames_in.get(i)))
            .collect();
        registry.register(
            "herald_ws_frames_received",
            "WebSocket frames received from clients, by type",
            labeled_counters("type", &frames),
        );
        registry.register(
            "herald_backplane_up",
            "1 when the cluster backplane is usable (always 1 for the in-memory broker)",
            ConstGauge::new(i64::from(readings.backplane_up)),
        );
        registry.register_with_unit(
            "herald_uptime",
            "Time since start",
            Unit::Seconds,
            ConstGauge::new(readings.uptime_secs),
        );
        let mut body = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut body, &registry);
        body
    }
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

    #[test]
    fn render_has_help_type_and_eof() {
        let m = Metrics::default();
        m.http_request("/topics", &Method::GET, 200);
        m.http_request("/topics", &Method::from_bytes(b"BREW").unwrap(), 405);
        m.frame_in(FrameIn::Publish);
        let text = m.render(Readings {
            connections: 2,
            topics: 1,
            subscriptions: 3,
            events: EventCounts::default(),
            slow_consumer_disconnects: 0,
            backplane_up: true,
            publish_latency: publish_latency_histogram().snapshot(),
            uptime_secs: 5,
        });
        assert!(text.contains("# TYPE herald_connections gauge\nherald_connections 2\n"));
        assert!(text.contains(
            r#"herald_http_requests_total{route="/topics",method="GET",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"herald_http_requests_total{route="/topics",method="other",status="405"} 1"#
        ));
        assert!(text.contains(r#"herald_ws_frames_received_total{type="publish"} 1"#));
        assert!(text.contains("herald_backplane_up 1\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
