//! Backpressure: a subscriber that stops reading never slows the publisher or other subscribers;
//! under `disconnect` it is closed (SLOW_CONSUMER, 1008), under `drop_oldest` it stays connected
//! and later sees a `seq` gap.

mod common;

use std::time::Duration;

use common::rest::{get_json, get_text};
use common::{TestServer, WsClient};
use futures_util::{SinkExt, StreamExt};
use herald::config::SlowConsumerPolicy;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const TOPIC: &str = "bp";
/// Far more bytes than the server's write buffer plus both kernel socket buffers can hold.
const MESSAGES: u64 = 200;
const PAYLOAD_BYTES: usize = 64 * 1024;
const QUEUE: usize = 16;

/// Just the fields the readers check, so a 64 KiB payload is skipped cheaply.
#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    seq: Option<u64>,
    error: Option<Value>,
}

fn parse(text: &str) -> Frame {
    serde_json::from_str(text).expect("server sent JSON")
}

async fn server(policy: SlowConsumerPolicy) -> TestServer {
    TestServer::start_with(|c| {
        c.subscriber_queue_size = QUEUE;
        c.slow_consumer_policy = policy;
        // Keeps the server's per-socket write buffer (a multiple of the frame limit) small.
        c.max_message_bytes = 128 * 1024;
    })
    .await
}

/// A subscriber that reads everything: returns the `seq`s of the first `MESSAGES` events.
fn fast_reader(mut ws: WsClient) -> JoinHandle<(Vec<u64>, WsClient)> {
    tokio::spawn(async move {
        let mut seqs = Vec::with_capacity(MESSAGES as usize);
        while (seqs.len() as u64) < MESSAGES {
            match ws.recv_message().await {
                Some(Message::Text(t)) => {
                    let f = parse(&t);
                    assert_eq!(f.kind, "event", "fast subscriber got a {} frame", f.kind);
                    seqs.push(f.seq.expect("event seq"));
                }
                Some(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("fast subscriber: unexpected {other:?}"),
            }
        }
        (seqs, ws)
    })
}

/// Publishes `MESSAGES` large messages one ack at a time; returns how long it took.
async fn publish_all(publisher: &mut WsClient) -> Duration {
    publish_from(publisher, 1).await
}

/// Publishes `MESSAGES` events whose `seq`s start at `first`, one ack at a time.
async fn publish_from(publisher: &mut WsClient, first: u64) -> Duration {
    let payload = "x".repeat(PAYLOAD_BYTES);
    let started = Instant::now();
    for n in 1..=MESSAGES {
        publisher
            .send_json(json!({"type": "publish", "topic": TOPIC, "message": {"payload": payload}}))
            .await;
        let ack = match publisher.recv_message().await {
            Some(Message::Text(t)) => t,
            other => panic!("publisher: expected the ack, got {other:?}"),
        };
        let ack: Value = serde_json::from_str(&ack).unwrap();
        assert_eq!(ack["type"], "ack", "publish {n}: {ack}");
        assert_eq!(ack["seq"], first + n - 1, "publish {n}: {ack}");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(30),
        "publisher was slowed down: {MESSAGES} publishes took {took:?}"
    );
    took
}

/// Polls `GET /topics/{TOPIC}` until it reports `want` subscribers (state with no reply to await).
async fn wait_for_subscribers(server: &TestServer, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: Value = get_json(&server.url(&format!("/topics/{TOPIC}"))).await;
        if info["subscribers"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "topic still reports {} subscribers, want {want}",
            info["subscribers"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Subscribes a subscriber that is not read and one that reads everything to [`TOPIC`], publishes
/// `MESSAGES`, and checks the reading one got them all in order, unslowed by the other. Returns
/// the stalled subscriber, the reading one and the publisher.
async fn stall_one_subscriber(server: &TestServer) -> (WsClient, WsClient, WsClient) {
    let mut slow = server.ws().await;
    slow.subscribe(TOPIC).await;
    // From here on `slow` is not polled until the publisher is done.
    let mut fast = server.ws().await;
    fast.subscribe(TOPIC).await;
    let fast = fast_reader(fast);

    let mut publisher = server.ws().await;
    publish_all(&mut publisher).await;

    let (seqs, fast) = tokio::time::timeout(Duration::from_secs(30), fast)
        .await
        .expect("fast subscriber received everything")
        .expect("fast subscriber checks");
    assert_eq!(seqs, (1..=MESSAGES).collect::<Vec<_>>());
    (slow, fast, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_closes_the_slow_consumer_without_slowing_anyone_else() {
    let server = server(SlowConsumerPolicy::Disconnect).await;
    let (mut slow, _fast, mut publisher) = stall_one_subscriber(&server).await;

    // The slow consumer was dropped from the topic while it was not reading.
    wait_for_subscribers(&server, 1).await;

    // Now it reads: a prefix of the events, maybe SLOW_CONSUMER, then close 1008 or the end.
    let mut events = Vec::new();
    let mut error_seen = false;
    let close = loop {
        match slow.recv_message().await {
            Some(Message::Text(t)) => {
                let f = parse(&t);
                match f.kind.as_str() {
                    "event" => {
                        assert!(!error_seen, "event after the SLOW_CONSUMER error");
                        events.push(f.seq.expect("event seq"));
                    }
                    "error" => {
                        let error = f.error.expect("error body");
                        assert_eq!(error["code"], "SLOW_CONSUMER", "{error}");
                        error_seen = true;
                    }
                    other => panic!("slow consumer: unexpected {other} frame: {t}"),
                }
            }
            Some(Message::Close(frame)) => break frame,
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            Some(other) => panic!("slow consumer: unexpected {other:?}"),
            None => break None,
        }
    };
    if let Some(frame) = &close {
        assert_eq!(frame.code, CloseCode::Policy, "close frame {frame:?}");
    }
    assert!(
        (events.len() as u64) < MESSAGES,
        "a consumer that never read cannot have kept up ({} events)",
        events.len()
    );
    let prefix: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(
        events, prefix,
        "slow consumer gets an in-order prefix, no drops"
    );
    // After the close (or the end) the connection is gone.
    if close.is_some() {
        assert!(
            slow.recv_message().await.is_none_or(|m| m.is_close()),
            "connection still open after close 1008"
        );
    }

    // The publisher's connection is unaffected.
    let ack = publisher.publish(TOPIC, json!("after")).await;
    assert_eq!(ack["seq"], MESSAGES + 1);

    // The disconnect is counted once.
    let stats: Value = get_json(&server.url("/stats")).await;
    assert_eq!(stats["slow_consumer_disconnects"], 1, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
}

/// Slow consumer under `drop_oldest`: returns the `seq`s it read once resumed, up to the last one.
async fn drop_oldest_scenario(server: &TestServer) -> (Vec<u64>, WsClient, WsClient) {
    let (mut slow, fast, publisher) = stall_one_subscriber(server).await;

    // Still subscribed while it was not reading.
    wait_for_subscribers(server, 2).await;

    // Resume: the newest message is never dropped, so it arrives last.
    let mut seqs = Vec::new();
    while seqs.last() != Some(&MESSAGES) {
        match slow.recv_message().await {
            Some(Message::Text(t)) => {
                let f = parse(&t);
                assert_eq!(f.kind, "event", "slow consumer got {t:.200}");
                seqs.push(f.seq.expect("seq"));
            }
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            other => panic!("slow consumer under drop_oldest: unexpected {other:?}"),
        }
    }
    drop(publisher);
    (seqs, slow, fast)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_policy_keeps_the_slow_consumer_which_sees_a_gap() {
    let server = server(SlowConsumerPolicy::DropOldest).await;
    let (seqs, mut slow, mut fast) = drop_oldest_scenario(&server).await;

    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "still in seq order, no duplicate: {seqs:?}"
    );
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1) || seqs.first() != Some(&1),
        "a consumer that never read must have lost something: {seqs:?}"
    );
    assert!((seqs.len() as u64) < MESSAGES, "{} events", seqs.len());

    // Connected and subscribed: it answers, and gets the next message like everyone else.
    slow.send_json(json!({"type": "ping", "request_id": "still-here"}))
        .await;
    let pong = slow.recv_json_no_heartbeat().await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["request_id"], "still-here");
    let mut publisher = server.ws().await;
    publisher.publish(TOPIC, json!("next")).await;
    for ws in [&mut slow, &mut fast] {
        let ev = ws.recv_json_no_heartbeat().await;
        assert_eq!(ev["seq"], MESSAGES + 1, "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_drops_are_counted_in_stats_and_metrics() {
    let server = server(SlowConsumerPolicy::DropOldest).await;
    let (seqs, _slow, _fast) = drop_oldest_scenario(&server).await;
    let dropped = MESSAGES - seqs.len() as u64;
    assert!(dropped > 0);

    let stats: Value = get_json(&server.url("/stats")).await;
    // Every event the slow consumer did not get was evicted by the policy, and counted.
    assert_eq!(stats["dropped"], dropped, "{stats}");
    assert_eq!(stats["topics"][TOPIC]["dropped"], dropped, "{stats}");

    let metrics = get_text(&server.url("/metrics")).await;
    let line = format!("herald_events_dropped_total{{reason=\"drop_oldest\"}} {dropped}");
    assert!(
        metrics.lines().any(|l| l == line),
        "/metrics lacks `{line}`:\n{metrics}"
    );
}

/// Under `drop_oldest` only events are dropped: a reply queued behind a flood is either delivered
/// or, once it would be the one evicted, the connection is closed. A silently lost pong would
/// leave a client waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_oldest_never_silently_drops_a_reply() {
    let server = server(SlowConsumerPolicy::DropOldest).await;
    let mut slow = server.ws().await;
    slow.subscribe(TOPIC).await;
    let mut publisher = server.ws().await;
    // Fill the socket and the outbox with events, then queue a reply, then flood again so that
    // the reply reaches the head of a full queue.
    publish_all(&mut publisher).await;
    slow.send_json(json!({"type": "ping", "request_id": "behind-the-flood"}))
        .await;
    // Give the server time to read the ping and queue the pong before the second flood; if it
    // has not, the pong simply arrives late, and the assertion below still holds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish_from(&mut publisher, MESSAGES + 1).await;
    let mut pong = false;
    loop {
        match slow.recv_message().await {
            Some(Message::Text(t)) => {
                let f = parse(&t);
                if f.kind == "pong" {
                    pong = true;
                    break;
                }
                assert!(matches!(f.kind.as_str(), "event" | "error"), "{t:.200}");
            }
            Some(Message::Close(_)) | None => break,
            Some(_) => {}
        }
    }
    if !pong {
        // Closed instead: counted as a slow-consumer disconnect, not as silent loss.
        let stats: Value = get_json(&server.url("/stats")).await;
        assert_eq!(stats["slow_consumer_disconnects"], 1, "{stats}");
    }
}

/// A client that pipelines many more requests than its queue holds, and reads the replies, is
/// slowed down (the server stops reading it) but never disconnected and never loses a reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_beyond_the_queue_are_all_answered_in_order() {
    let server = TestServer::start_with(|c| c.subscriber_queue_size = 16).await;
    let mut ws = server.ws().await;
    const N: usize = 500;
    let text: String = (0..N)
        .map(|i| format!("{{\"type\":\"ping\",\"request_id\":\"{i}\"}}"))
        .collect::<Vec<_>>()
        .join("\n");
    // All sent before reading anything, as one burst of frames.
    for line in text.lines() {
        ws.inner
            .feed(Message::text(line.to_string()))
            .await
            .expect("feed");
    }
    // Flush concurrently with reading: the server may stop reading until we read.
    let (mut sink, mut stream) = ws.inner.split();
    let flusher = tokio::spawn(async move { sink.flush().await.map(|_| sink) });
    for i in 0..N {
        let pong = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => break serde_json::from_str::<Value>(&t).unwrap(),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("reply {i}: {other:?}"),
            }
        };
        assert_eq!(pong["type"], "pong", "{pong}");
        assert_eq!(pong["request_id"], i.to_string());
    }
    let _sink = flusher.await.unwrap().expect("all frames sent");
}

/// SUBSCRIBER_QUEUE_BYTES: with room for far more frames than are published, the slow consumer
/// is still cut, by the bytes its queue holds; with a byte limit above everything published, the
/// same run cuts nobody, so it is the byte limit that did it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_byte_limit_cuts_a_slow_consumer_whatever_the_frame_limit() {
    for (bytes, cut) in [(1u64 << 20, true), (64 << 20, false)] {
        let server = TestServer::start_with(|c| {
            c.subscriber_queue_size = 100_000;
            c.subscriber_queue_bytes = bytes;
            c.max_message_bytes = 128 * 1024;
        })
        .await;
        let (_slow, _fast, _publisher) = stall_one_subscriber(&server).await;
        if cut {
            // Dropped from the topic and counted as a slow consumer (the SLOW_CONSUMER frame
            // itself is best effort into a full socket; the other tests read it).
            wait_for_subscribers(&server, 1).await;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let stats: Value = get_json(&server.url("/stats")).await;
                if stats["slow_consumer_disconnects"] == 1 {
                    break;
                }
                assert!(Instant::now() < deadline, "not counted: {stats}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let info: Value = get_json(&server.url(&format!("/topics/{TOPIC}"))).await;
            assert_eq!(info["subscribers"], 2, "cut with a 64 MiB byte limit");
        }
    }
}
