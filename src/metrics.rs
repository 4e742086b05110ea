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

use http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, LabelSetEncoder, MetricEncoder};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::broker::EventCounts;
use crate::histogram::{Histogram, HistogramSnapshot, ShardedCounters};
use crate::protocol::Kind;

/// The content type of the exposition (OpenMetrics text, which Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Bounds of the outbox depth histogram, items: powers of two and four up to the largest
/// `SUBSCRIBER_QUEUE_SIZE`.
const DEPTH_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576,
];

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
    /// An `auth` frame (a token, or its refresh).
    Auth,
    /// A `presence` query.
    Presence,
    /// Not JSON, or not a frame herald understands.
    Invalid,
    /// A WebSocket Ping, Pong or Close control frame.
    Control,
}

impl FrameIn {
    /// Every kind, in counter index order.
    const ALL: [FrameIn; 8] = [
        Self::Subscribe,
        Self::Unsubscribe,
        Self::Publish,
        Self::Ping,
        Self::Auth,
        Self::Presence,
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
            Self::Auth => "auth",
            Self::Presence => "presence",
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
            Kind::Auth => Self::Auth,
            Kind::Presence => Self::Presence,
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
    /// Pattern subscriptions on this node.
    pub pattern_subscriptions: usize,
    /// Event counts since start, deleted topics included.
    pub events: EventCounts,
    /// Connections closed with `SLOW_CONSUMER`.
    pub slow_consumer_disconnects: u64,
    /// Implicit topics this node removed for being idle (`TOPIC_IDLE_TTL_SECS`); in a cluster,
    /// the removals this node carried out.
    pub topics_expired: u64,
    /// Cluster mode: gap notices this node sent (events lost to the stream's retention).
    pub gaps: u64,
    /// Presence `join` / `leave` notices queued to subscribers, and those dropped for want of
    /// room in the subscriber's queue.
    pub presence_notices: (u64, u64),
    /// Whether the cluster backplane is usable (always for the in-memory broker).
    pub backplane_up: bool,
    /// Whether the backplane's stream has a leader (always for the in-memory broker).
    pub stream_leader: bool,
    /// Publish-to-enqueue latency.
    pub publish_latency: HistogramSnapshot,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Tokens verified, refused, and refused unverified (verification budget spent); `None`
    /// when tokens are off.
    pub tokens: Option<(crate::auth::AuthCounts, u64)>,
}

/// The server's own metrics: REST requests, frames received, outbox depth.
#[derive(Debug)]
pub struct Metrics {
    /// REST and upgrade requests by route template, method and status.
    http_requests: Family<HttpLabels, Counter>,
    /// WebSocket frames received, indexed like [`FrameIn::ALL`].
    frames_in: ShardedCounters<8>,
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
        registry.register(
            "herald_pattern_subscriptions",
            "Current wildcard pattern subscriptions on this node (not in herald_subscriptions)",
            gauge(readings.pattern_subscriptions),
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
            "herald_topics_expired",
            "Topics created by subscribe or publish that were removed after TOPIC_IDLE_TTL_SECS \
             without a subscriber or a publish (in a cluster: the removals this node carried out)",
            ConstCounter::new(readings.topics_expired),
        );
        registry.register(
            "herald_gaps",
            "Cluster mode: times this node told a topic's subscribers of events lost to the \
             stream's retention before it could deliver them (an info gap frame)",
            ConstCounter::new(readings.gaps),
        );
        registry.register(
            "herald_presence_notices",
            "Presence join/leave info frames, by result: sent (queued to a subscriber that asked \
             for presence_events) or dropped (its queue had no room; notices never disconnect)",
            labeled_counters(
                "result",
                &[
                    ("sent", readings.presence_notices.0),
                    ("dropped", readings.presence_notices.1),
                ],
            ),
        );
        registry.register(
            "herald_slow_consumer_disconnects",
            "Connections closed with SLOW_CONSUMER under SLOW_CONSUMER_POLICY=disconnect",
            ConstCounter::new(readings.slow_consumer_disconnects),
        );
        if let Some((tokens, shed)) = readings.tokens {
            registry.register(
                "herald_auth_tokens",
                "Tokens checked (upgrade, REST and auth frames), by result; every check is \
                 bounded (size-capped before parsing, one signature verification, no key fetch) \
                 and all of them together take at most half a core: past that, tokens are shed \
                 unverified with 503 until the budget refills",
                labeled_counters(
                    "result",
                    &[
                        ("verified", tokens.verified),
                        ("refused", tokens.failed),
                        ("shed", shed),
                    ],
                ),
            );
        }
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
        registry.register(
            "herald_backplane_stream_leader",
            "1 when herald's JetStream stream has a leader, so publishes can be stored; 0 during \
             a leader election or while too few NATS servers are left for a quorum (always 1 for \
             the in-memory broker)",
            ConstGauge::new(i64::from(readings.stream_leader)),
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
    fn render_has_help_type_and_eof() {
        let m = Metrics::default();
        m.http_request("/topics", &Method::GET, 200);
        m.http_request("/topics", &Method::from_bytes(b"BREW").unwrap(), 405);
        m.frame_in(FrameIn::Publish);
        let text = m.render(Readings {
            connections: 2,
            topics: 1,
            subscriptions: 3,
            pattern_subscriptions: 2,
            events: EventCounts::default(),
            slow_consumer_disconnects: 0,
            topics_expired: 7,
            gaps: 0,
            presence_notices: (0, 0),
            tokens: None,
            backplane_up: true,
            stream_leader: false,
            publish_latency: crate::histogram::publish_latency_histogram().snapshot(),
            uptime_secs: 5,
        });
        assert!(text.contains("# TYPE herald_connections gauge\nherald_connections 2\n"));
        assert!(
            text.contains("# TYPE herald_topics_expired counter\nherald_topics_expired_total 7\n")
        );
        assert!(text.contains(
            r#"herald_http_requests_total{route="/topics",method="GET",status="200"} 1"#
        ));
        assert!(text.contains(
            r#"herald_http_requests_total{route="/topics",method="other",status="405"} 1"#
        ));
        assert!(text.contains(r#"herald_ws_frames_received_total{type="publish"} 1"#));
        assert!(text.contains("herald_backplane_up 1\n"));
        assert!(text.contains("herald_backplane_stream_leader 0\n"));
        assert!(text.ends_with("# EOF\n"));
    }
}
