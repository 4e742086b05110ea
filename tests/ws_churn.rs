//! Subscription churn under load: 50 connections subscribe and unsubscribe in a loop while a
//! publisher publishes; steady subscribers still get every message exactly once, in `seq` order,
//! and each churner sees exactly the messages published while it was subscribed.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rest::get_json;
use common::{TestServer, WsClient};
use serde_json::{json, Value};

const TOPIC: &str = "churn";
const CHURNERS: usize = 50;
const STEADY: usize = 3;
const MESSAGES: u64 = 400;

/// Sends `frame` and reads until the reply carrying `request_id`, returning the events seen
/// before it (heartbeats skipped).
async fn request_collecting(
    ws: &mut WsClient,
    frame: Value,
    request_id: &str,
) -> (Value, Vec<Value>) {
    ws.send_json(frame).await;
    let mut events = Vec::new();
    loop {
        let v = ws.recv_json_no_heartbeat().await;
        if v["type"] == "event" {
            events.push(v);
        } else {
            assert_eq!(v["request_id"], request_id, "reply out of order: {v}");
            return (v, events);
        }
    }
}

/// One churner: subscribe, unsubscribe, repeat until `stop` (at least once). Checks that no event
/// arrives while unsubscribed and that the events of each subscribed window are exactly
/// `ack.seq + 1 ..`, consecutive. Returns the number of rounds.
async fn churn(mut ws: WsClient, who: usize, stop: Arc<AtomicBool>, seen: Arc<AtomicU64>) -> u64 {
    let mut rounds = 0u64;
    loop {
        let rid = format!("s{who}-{rounds}");
        let (ack, before) = request_collecting(
            &mut ws,
            json!({"type": "subscribe", "topic": TOPIC, "request_id": rid}),
            &rid,
        )
        .await;
        assert_eq!(
            ack["type"], "ack",
            "churner {who}: subscribe not acked: {ack}"
        );
        assert!(
            before.is_empty(),
            "churner {who}: events while unsubscribed: {before:?}"
        );
        let from = ack["seq"].as_u64().expect("subscribe ack has seq");

        let rid = format!("u{who}-{rounds}");
        let (ack, events) = request_collecting(
            &mut ws,
            json!({"type": "unsubscribe", "topic": TOPIC, "request_id": rid}),
            &rid,
        )
        .await;
        assert_eq!(
            ack["type"], "ack",
            "churner {who}: unsubscribe not acked: {ack}"
        );
        let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        let want: Vec<u64> = (from + 1..from + 1 + seqs.len() as u64).collect();
        assert_eq!(
            seqs, want,
            "churner {who}: events of one subscribed window are not consecutive from ack seq {from}"
        );
        for e in &events {
            assert_eq!(e["topic"], TOPIC);
        }
        seen.fetch_add(seqs.len() as u64, Ordering::Relaxed);
        rounds += 1;
        if stop.load(Ordering::Relaxed) {
            return rounds;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_50_connections_does_not_disturb_steady_subscribers() {
    // Big enough that the slow-consumer policy never interferes.
    let server = TestServer::start_with(|c| c.subscriber_queue_size = 100_000).await;

    let mut steady = Vec::new();
    for _ in 0..STEADY {
        let mut ws = server.ws().await;
        ws.subscribe(TOPIC).await;
        steady.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(MESSAGES as usize);
            while (out.len() as u64) < MESSAGES {
                let ev = ws.recv_json_no_heartbeat().await;
                assert_eq!(ev["type"], "event", "steady subscriber got {ev}");
                out.push((
                    ev["seq"].as_u64().unwrap(),
                    ev["message"]["payload"]["n"].as_u64().unwrap(),
                ));
            }
            // Nothing beyond the published messages (no duplicate delivered late).
            ws.expect_silence(Duration::from_millis(200)).await;
            (out, ws)
        }));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicU64::new(0));
    let mut churners = Vec::new();
    for who in 0..CHURNERS {
        let ws = server.ws().await;
        churners.push(tokio::spawn(churn(ws, who, stop.clone(), seen.clone())));
    }

    let mut publisher = server.ws().await;
    let started = tokio::time::Instant::now();
    for n in 0..MESSAGES {
        let ack = publisher.publish(TOPIC, json!({"n": n})).await;
        assert_eq!(ack["seq"], n + 1, "publish ack {ack}");
    }
    stop.store(true, Ordering::Relaxed);
    let publish_time = started.elapsed();

    let mut rounds = 0;
    for c in churners {
        rounds += tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .expect("churner finished")
            .expect("churner task");
    }
    let mut steady_conns = Vec::new();
    for s in steady {
        let (got, ws) = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("steady subscriber got everything")
            .expect("steady subscriber task");
        let want: Vec<(u64, u64)> = (0..MESSAGES).map(|n| (n + 1, n)).collect();
        assert_eq!(
            got, want,
            "steady subscriber: every message once, in seq order"
        );
        steady_conns.push(ws);
    }
    assert!(
        rounds >= 2 * CHURNERS as u64,
        "churn did not overlap publishing: {rounds} rounds in {publish_time:?}"
    );
    assert!(
        seen.load(Ordering::Relaxed) > 0,
        "no churner ever received an event while subscribed ({rounds} rounds)"
    );

    // The server still answers, and only the steady subscriptions remain.
    let mut probe = server.ws().await;
    probe
        .send_json(json!({"type": "ping", "request_id": "after"}))
        .await;
    let pong = probe.recv_json_no_heartbeat().await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["request_id"], "after");
    let info: Value = get_json(&server.url(&format!("/topics/{TOPIC}"))).await;
    assert_eq!(info["subscribers"], STEADY, "{info}");
    assert_eq!(info["messages"], MESSAGES, "{info}");
    assert_eq!(info["seq"], MESSAGES, "{info}");
    let ack = probe.publish(TOPIC, json!({"n": MESSAGES})).await;
    assert_eq!(ack["seq"], MESSAGES + 1);
    for ws in &mut steady_conns {
        let ev = ws.recv_json_no_heartbeat().await;
        assert_eq!(
            ev["seq"],
            MESSAGES + 1,
            "steady subscriber after churn: {ev}"
        );
    }
}
