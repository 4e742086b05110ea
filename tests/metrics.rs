//! `GET /metrics`: a known workload gives exact counts, and the exposition is well-formed
//! OpenMetrics text (every family has HELP and TYPE, counters end in `_total`, histogram buckets
//! are cumulative and end at `+Inf` = `_count`, the body ends with `# EOF`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::flood::{flood, Stalled};
use common::{http, TestServer, WsClient};
use herald::config::SlowConsumerPolicy;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition.
#[derive(Debug)]
struct Exposition {
    /// Family name to its TYPE.
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses OpenMetrics text, panicking on anything malformed.
    fn parse(text: &str) -> Self {
        let mut types = HashMap::new();
        let mut helps = HashMap::new();
        let mut samples = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.last(),
            Some(&"# EOF"),
            "no `# EOF` at the end:\n{text}"
        );
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(!help.trim().is_empty(), "empty help: {line}");
                helps.insert(name.to_string(), help.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(
                    helps.contains_key(name),
                    "TYPE before HELP for {name}:\n{text}"
                );
                assert!(
                    types.insert(name.to_string(), kind.to_string()).is_none(),
                    "family {name} declared twice"
                );
            } else if line.starts_with("# UNIT ") {
            } else {
                assert!(!line.starts_with('#'), "unknown comment line: {line}");
                let sample = parse_sample(line);
                let family = family_of(&sample.name, &types)
                    .unwrap_or_else(|| panic!("sample without a TYPE before it: {line}"));
                let kind = types[&family].as_str();
                let suffix = &sample.name[family.len()..];
                let allowed: &[&str] = match kind {
                    "counter" => &["_total", "_created"],
                    "gauge" => &[""],
                    "histogram" => &["_bucket", "_sum", "_count", "_created"],
                    other => panic!("unexpected type {other} for {family}"),
                };
                assert!(allowed.contains(&suffix), "{kind} sample {line}");
                samples.push(sample);
            }
        }
        let exposition = Self { types, samples };
        exposition.check_histograms();
        exposition
    }

    /// Buckets are cumulative, end at `+Inf`, and `+Inf` equals `_count`.
    fn check_histograms(&self) {
        for (family, kind) in &self.types {
            if kind != "histogram" {
                continue;
            }
            let buckets: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|s| s.name == format!("{family}_bucket"))
                .map(|s| {
                    let le = &s.labels["le"];
                    let bound = if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("numeric le")
                    };
                    (bound, s.value)
                })
                .collect();
            assert!(!buckets.is_empty(), "{family} has no buckets");
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
                "{family} buckets not ascending and cumulative: {buckets:?}"
            );
            let (last_bound, last_count) = buckets[buckets.len() - 1];
            assert_eq!(last_bound, f64::INFINITY, "{family} lacks +Inf");
            assert_eq!(last_count, self.get(&format!("{family}_count"), &[]));
        }
    }

    /// The value of the sample with exactly these labels; panics when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }
}

/// The declared family a sample name belongs to (the longest declared prefix).
fn family_of(sample: &str, types: &HashMap<String, String>) -> Option<String> {
    types
        .keys()
        .filter(|family| sample.starts_with(family.as_str()))
        .max_by_key(|family| family.len())
        .cloned()
}

/// `name{k="v",...} value` or `name value`.
fn parse_sample(line: &str) -> Sample {
    let (head, value) = line.rsplit_once(' ').expect("sample has a value");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value: {line}"));
    let (name, labels) = match head.split_once('{') {
        None => (head, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("labels end with }");
            let mut labels = BTreeMap::new();
            for pair in body.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").expect("label k=\"v\"");
                labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
            }
            (name, labels)
        }
    };
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name: {line}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

async fn scrape(server: &TestServer) -> Exposition {
    let response = http().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text; version=1.0.0"),
        "{content_type}"
    );
    Exposition::parse(&response.text().await.unwrap())
}

/// Reads text frames until an event with `seq`, skipping heartbeats.
async fn event(ws: &mut WsClient) -> Value {
    let v = ws.recv_json_no_heartbeat().await;
    assert_eq!(v["type"], "event", "{v}");
    v
}

/// 3 subscribers, 5 WebSocket publishes and 1 REST publish, a ping, a bad frame, two 404s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_gives_exact_counts() {
    const SUBSCRIBERS: usize = 3;
    let server = TestServer::start().await;
    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut ws = server.ws().await;
        ws.subscribe("fan").await;
        subscribers.push(ws);
    }
    let mut publisher = server.ws().await;
    for i in 0..5 {
        publisher.publish("fan", json!({ "i": i })).await;
    }
    let rest = http()
        .post(server.url("/publish"))
        .json(&json!({"topic": "fan", "data": "via rest"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 200);
    let pong = publisher.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    let bad = publisher.request(json!({"type": "dance"})).await;
    assert_eq!(bad["type"], "error");
    for ws in &mut subscribers {
        for seq in 1..=6 {
            assert_eq!(event(ws).await["seq"], seq);
        }
    }
    for path in ["/no/such/route", "/topics/missing"] {
        let r = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }

    let m = scrape(&server).await;
    assert_eq!(m.get("herald_messages_published_total", &[]), 6.0);
    assert_eq!(m.get("herald_deliveries_total", &[]), 18.0);
    for reason in ["drop_oldest", "slow_consumer", "closed"] {
        assert_eq!(
            m.get("herald_events_dropped_total", &[("reason", reason)]),
            0.0
        );
    }
    assert_eq!(m.get("herald_connections", &[]), 4.0);
    assert_eq!(m.get("herald_subscriptions", &[]), 3.0);
    assert_eq!(m.get("herald_topics", &[]), 1.0);
    assert_eq!(m.get("herald_slow_consumer_disconnects_total", &[]), 0.0);
    assert_eq!(m.get("herald_topics_expired_total", &[]), 0.0);
    assert_eq!(m.get("herald_backplane_up", &[]), 1.0);
    let frames = |t: &str| m.get("herald_ws_frames_received_total", &[("type", t)]);
    assert_eq!(frames("subscribe"), 3.0);
    assert_eq!(frames("publish"), 5.0);
    assert_eq!(frames("ping"), 1.0);
    assert_eq!(frames("invalid"), 1.0);
    assert_eq!(frames("unsubscribe"), 0.0);
    let requests = |route: &str, method: &str, status: &str| {
        m.get(
            "herald_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("other", "GET", "404"), 1.0);
    assert_eq!(requests("/topics/{name}", "GET", "404"), 1.0);
    assert_eq!(requests("/publish", "POST", "200"), 1.0);
    assert_eq!(requests("/ws", "GET", "101"), 4.0);
    // Raw paths never become label values.
    assert!(!m.samples.iter().any(|s| s
        .labels
        .values()
        .any(|v| v.contains("missing") || v.contains("no/such"))));
    assert_eq!(
        m.get("herald_publish_enqueue_latency_seconds_count", &[]),
        6.0
    );
    assert!(m.get("herald_publish_enqueue_latency_seconds_sum", &[]) > 0.0);
    // Every writer batch is sampled; at least the events and replies were written.
    assert!(m.get("herald_outbox_depth_count", &[]) >= 1.0);

    // The first scrape is counted once it was answered.
    let again = scrape(&server).await;
    assert_eq!(
        again.get(
            "herald_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
        ),
        1.0
    );
}

/// Deleting a topic keeps its counts: totals never go backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_survive_topic_deletion() {
    let server = TestServer::start().await;
    let mut sub = server.ws().await;
    sub.subscribe("gone").await;
    let mut publisher = server.ws().await;
    publisher.publish("gone", json!(1)).await;
    publisher.publish("gone", json!(2)).await;
    assert_eq!(event(&mut sub).await["seq"], 1);
    assert_eq!(event(&mut sub).await["seq"], 2);
    let r = http()
        .delete(server.url("/topics/gone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = scrape(&server).await;
    assert_eq!(m.get("herald_topics", &[]), 0.0);
    assert_eq!(m.get("herald_messages_published_total", &[]), 2.0);
    assert_eq!(m.get("herald_deliveries_total", &[]), 2.0);
}

/// A subscriber that stops reading under `drop_oldest` misses events; each one it missed is
/// counted once as `reason="drop_oldest"`, and every publish still counts as a delivery (the new
/// event was enqueued, the oldest evicted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_evictions_are_counted_exactly() {
    let Stalled {
        server,
        mut slow,
        mut publisher,
    } = Stalled::start("news").await;
    const PUBLISHES: u64 = 600;
    assert_eq!(flood(&mut publisher, "news", PUBLISHES).await, PUBLISHES);
    let mut received = 0u64;
    loop {
        let ev = event(&mut slow).await;
        received += 1;
        if ev["seq"] == PUBLISHES {
            break;
        }
    }
    let missed = PUBLISHES - received;
    assert!(missed > 0, "the flood did not overflow the queue");
    let m = scrape(&server).await;
    assert_eq!(
        m.get("herald_events_dropped_total", &[("reason", "drop_oldest")]),
        missed as f64
    );
    assert_eq!(
        m.get(
            "herald_events_dropped_total",
            &[("reason", "slow_consumer")]
        ),
        0.0
    );
    assert_eq!(
        m.get("herald_messages_published_total", &[]),
        PUBLISHES as f64
    );
    assert_eq!(m.get("herald_deliveries_total", &[]), PUBLISHES as f64);
    // The depth histogram saw the full queue.
    let full = m.get("herald_outbox_depth_count", &[])
        - m.get("herald_outbox_depth_bucket", &[("le", "2.0")]);
    assert!(full > 0.0, "no batch started with more than 2 items queued");
}

/// Under `disconnect` an overflowing subscriber is closed and counted, and the event it could
/// not take is counted as `reason="slow_consumer"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_disconnects_are_counted() {
    let server = TestServer::start_with(|c| {
        c.subscriber_queue_size = 4;
        c.slow_consumer_policy = SlowConsumerPolicy::Disconnect;
    })
    .await;
    let mut slow = server.ws().await;
    slow.subscribe("news").await;
    let mut publisher = server.ws().await;
    let filler = "x".repeat(32 * 1024);
    for i in 0..600 {
        let ack = publisher
            .request(json!({"type": "publish", "topic": "news", "data": {"i": i, "pad": filler}}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    // The slow socket ends (SLOW_CONSUMER, close 1008) once the server gave up on it.
    loop {
        match slow.recv_message().await {
            None | Some(Message::Close(_)) => break,
            Some(_) => {}
        }
    }
    // The counter moves when the session task finishes, just after the close frame was sent.
    let deadline = Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(&server).await;
        if m.get("herald_slow_consumer_disconnects_total", &[]) == 1.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "disconnect never counted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        m.get(
            "herald_events_dropped_total",
            &[("reason", "slow_consumer")]
        ) >= 1.0
    );
    assert_eq!(
        m.get("herald_events_dropped_total", &[("reason", "drop_oldest")]),
        0.0
    );
    assert_eq!(m.get("herald_messages_published_total", &[]), 600.0);
}
