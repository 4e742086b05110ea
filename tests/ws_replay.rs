//! Replay on subscribe (`last_n`, `since_seq` + `epoch`): the exact replayed set and order, the
//! `recovered` flag, ack-then-replay-then-live ordering, and no gap or duplicate at the seam
//! between replay and live delivery while another task keeps publishing.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::rest::get_json;
use common::{http, TestServer, WsClient};
use serde_json::{json, Value};

/// Ring size used by the small-ring tests.
const RING: u64 = 5;

async fn small_ring_server() -> TestServer {
    TestServer::start_with(|c| c.ring_buffer_size = RING as usize).await
}

/// Publishes one message per `seqs` item with payload `{"n": seq}`, checking each ack's `seq`.
async fn publish_seqs(ws: &mut WsClient, topic: &str, seqs: std::ops::RangeInclusive<u64>) {
    for n in seqs {
        let ack = ws.publish(topic, json!({"n": n})).await;
        assert_eq!(ack["seq"], n, "publish ack {ack}");
    }
}

/// `GET /topics/{name}` as JSON.
async fn topic_info(server: &TestServer, name: &str) -> Value {
    let resp = http()
        .get(server.url(&format!("/topics/{name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET /topics/{name}");
    resp.json().await.unwrap()
}

/// An epoch guaranteed to differ from `epoch`.
fn other_epoch(epoch: &str) -> String {
    if epoch == "0000000000000000" {
        "1111111111111111".into()
    } else {
        "0000000000000000".into()
    }
}

/// Sends `subscribe` and then a ping fence; returns the ack (asserted to be the first frame) and
/// the events that arrived between the ack and the pong, checking each event's payload.
async fn subscribe_and_fence(ws: &mut WsClient, subscribe: Value) -> (Value, Vec<u64>) {
    ws.send_json(subscribe.clone()).await;
    ws.send_json(json!({"type": "ping", "request_id": "fence"}))
        .await;
    let ack = ws.recv_json_no_heartbeat().await;
    assert_eq!(
        ack["type"], "ack",
        "first frame after {subscribe} must be the ack: {ack}"
    );
    let mut seqs = Vec::new();
    loop {
        let v = ws.recv_json_no_heartbeat().await;
        match v["type"].as_str() {
            Some("event") => {
                let seq = v["seq"].as_u64().expect("event seq");
                assert_eq!(v["message"]["payload"]["n"], seq, "replayed content: {v}");
                seqs.push(seq);
            }
            Some("pong") => {
                assert_eq!(v["request_id"], "fence");
                return (ack, seqs);
            }
            _ => panic!("unexpected frame during replay of {subscribe}: {v}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_comes_first_then_last_n_replay_oldest_first_then_live() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "orders", 1..=3).await;

    let mut sub = server.ws().await;
    sub.send_json(json!({"type": "subscribe", "topic": "orders", "last_n": 2, "request_id": "r1"}))
        .await;
    let ack = sub.recv_json_no_heartbeat().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["request_id"], "r1");
    assert_eq!(ack["topic"], "orders");
    assert_eq!(ack["status"], "ok");
    assert_eq!(ack["seq"], 3);
    assert_eq!(ack["recovered"], true, "{ack}");
    for want in [2u64, 3] {
        let ev = sub.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["topic"], "orders");
        assert_eq!(ev["seq"], want);
        assert_eq!(ev["message"]["payload"], json!({"n": want}));
    }
    publish_seqs(&mut publisher, "orders", 4..=5).await;
    for want in [4u64, 5] {
        let ev = sub.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["seq"], want, "live after replay: {ev}");
    }
    sub.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_is_capped_at_the_ring_size() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "t", 1..=8).await;

    let cases: [(u64, Vec<u64>); 6] = [
        (0, vec![]),
        (1, vec![8]),
        (3, vec![6, 7, 8]),
        (RING, vec![4, 5, 6, 7, 8]),
        (RING + 1, vec![4, 5, 6, 7, 8]),
        ((1 << 53) - 1, vec![4, 5, 6, 7, 8]),
    ];
    for (n, want) in cases {
        let mut sub = server.ws().await;
        let (ack, seqs) = subscribe_and_fence(
            &mut sub,
            json!({"type": "subscribe", "topic": "t", "last_n": n}),
        )
        .await;
        assert_eq!(ack["seq"], 8, "last_n {n}: {ack}");
        assert_eq!(ack["recovered"], true, "last_n {n}: {ack}");
        assert!(ack.get("request_id").is_none(), "{ack}");
        assert_eq!(seqs, want, "last_n {n}");
    }

    // A topic with fewer messages than asked for replays what it has.
    publish_seqs(&mut publisher, "short", 1..=2).await;
    let mut sub = server.ws().await;
    let (_, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "short", "last_n": 4}),
    )
    .await;
    assert_eq!(seqs, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_subscribe_has_no_recovered_field_and_replays_nothing() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "t", 1..=3).await;

    let mut sub = server.ws().await;
    let (ack, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "t", "request_id": "p"}),
    )
    .await;
    assert_eq!(ack["request_id"], "p");
    assert_eq!(ack["seq"], 3);
    assert!(ack.get("recovered").is_none(), "no replay asked: {ack}");
    assert!(seqs.is_empty(), "nothing replayed: {seqs:?}");

    // Subscribing again (even with last_n) on the same connection replays nothing and still
    // delivers each live message once.
    let (again, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "t", "last_n": 3}),
    )
    .await;
    assert_eq!(again["seq"], 3, "{again}");
    assert!(seqs.is_empty(), "second subscribe replayed {seqs:?}");
    publish_seqs(&mut publisher, "t", 4..=4).await;
    let ev = sub.recv_json_no_heartbeat().await;
    assert_eq!(ev["seq"], 4, "{ev}");
    sub.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_seq_replays_what_follows_and_reports_recovered() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "t", 1..=8).await;
    let epoch = topic_info(&server, "t").await["epoch"]
        .as_str()
        .expect("epoch is a string")
        .to_string();
    let wrong = other_epoch(&epoch);

    // The ring holds 4..=8.
    let cases: Vec<(u64, Option<&str>, Vec<u64>, bool)> = vec![
        (5, Some(&epoch), vec![6, 7, 8], true),
        (5, None, vec![6, 7, 8], true),
        (3, Some(&epoch), vec![4, 5, 6, 7, 8], true),
        (7, None, vec![8], true),
        (8, Some(&epoch), vec![], true),
        // Older than the ring: what is left, but not recovered.
        (2, Some(&epoch), vec![4, 5, 6, 7, 8], false),
        (0, None, vec![4, 5, 6, 7, 8], false),
        // Ahead of the topic: nothing, not recovered.
        (9, Some(&epoch), vec![], false),
        (1_000, None, vec![], false),
        // Wrong epoch: nothing, not recovered.
        (5, Some(&wrong), vec![], false),
        (0, Some(&wrong), vec![], false),
        (8, Some(&wrong), vec![], false),
    ];
    for (since, ep, want, recovered) in cases {
        let mut frame = json!({"type": "subscribe", "topic": "t", "since_seq": since,
            "request_id": format!("since-{since}")});
        if let Some(e) = ep {
            frame["epoch"] = json!(e);
        }
        let mut sub = server.ws().await;
        let (ack, seqs) = subscribe_and_fence(&mut sub, frame.clone()).await;
        assert_eq!(ack["request_id"], format!("since-{since}"));
        assert_eq!(ack["seq"], 8, "{frame}: {ack}");
        assert_eq!(ack["epoch"], epoch.as_str(), "{frame}: {ack}");
        assert_eq!(ack["recovered"], recovered, "{frame}: {ack}");
        assert_eq!(seqs, want, "{frame}");
    }

    // A brand-new (auto-created) topic: since_seq 0 is fully recovered, anything more is not.
    let mut sub = server.ws().await;
    let (ack, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "fresh", "since_seq": 0}),
    )
    .await;
    assert_eq!(
        (ack["seq"].clone(), ack["recovered"].clone()),
        (json!(0), json!(true))
    );
    assert!(seqs.is_empty());
    let mut sub = server.ws().await;
    let (ack, _) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "fresh", "since_seq": 3}),
    )
    .await;
    assert_eq!(ack["recovered"], false, "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_seq_wins_over_last_n() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "t", 1..=8).await;
    let mut sub = server.ws().await;
    let (ack, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "t", "since_seq": 6, "last_n": 5}),
    )
    .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(seqs, vec![7, 8]);

    // Also when since_seq asks for less than last_n would, and when it asks for nothing.
    let mut sub = server.ws().await;
    let (_, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "t", "last_n": 1, "since_seq": 4}),
    )
    .await;
    assert_eq!(seqs, vec![5, 6, 7, 8]);
    let mut sub = server.ws().await;
    let (ack, seqs) = subscribe_and_fence(
        &mut sub,
        json!({"type": "subscribe", "topic": "t", "last_n": 5, "since_seq": 8}),
    )
    .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert!(seqs.is_empty(), "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_epoch_and_seq_match_rest_and_epoch_changes_on_recreate() {
    let server = small_ring_server().await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "e", 1..=3).await;

    let mut sub = server.ws().await;
    let ack = sub.subscribe("e").await;
    let info = topic_info(&server, "e").await;
    let epoch = ack["epoch"].as_str().expect("ack epoch").to_string();
    assert_eq!(info["epoch"], epoch.as_str(), "ack {ack} vs REST {info}");
    assert_eq!(info["seq"], ack["seq"], "ack {ack} vs REST {info}");
    assert_eq!(ack["seq"], 3);

    // Stable while the topic lives.
    let mut sub2 = server.ws().await;
    let ack2 = sub2.subscribe("e").await;
    assert_eq!(ack2["epoch"], epoch.as_str());

    // Deleted and re-created: new epoch, seq restarts, the old epoch is not recovered.
    let resp = http().delete(server.url("/topics/e")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    publish_seqs(&mut publisher, "e", 1..=2).await;
    let info = topic_info(&server, "e").await;
    let new_epoch = info["epoch"].as_str().unwrap().to_string();
    assert_ne!(
        new_epoch, epoch,
        "epoch must change when the topic is re-created"
    );
    let mut sub3 = server.ws().await;
    let (ack3, seqs) = subscribe_and_fence(
        &mut sub3,
        json!({"type": "subscribe", "topic": "e", "since_seq": 1, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack3["epoch"], new_epoch.as_str());
    assert_eq!(ack3["seq"], 2);
    assert_eq!(ack3["recovered"], false, "{ack3}");
    assert!(seqs.is_empty(), "wrong epoch replays nothing: {seqs:?}");
    let mut sub4 = server.ws().await;
    let (ack4, seqs) = subscribe_and_fence(
        &mut sub4,
        json!({"type": "subscribe", "topic": "e", "since_seq": 1, "epoch": new_epoch}),
    )
    .await;
    assert_eq!(ack4["recovered"], true, "{ack4}");
    assert_eq!(seqs, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_joins_live_without_gap_or_duplicate_while_publishing_concurrently() {
    const PRIMED: u64 = 20;
    const LIVE_AFTER_ACK: u64 = 40;
    const SUBSCRIBERS: u64 = 40;
    let server = TestServer::start_with(|c| {
        c.ring_buffer_size = 10_000;
        c.subscriber_queue_size = 100_000;
    })
    .await;
    let mut publisher = server.ws().await;
    publish_seqs(&mut publisher, "hot", 1..=PRIMED).await;

    let stop = Arc::new(AtomicBool::new(false));
    let pub_task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut next = PRIMED + 1;
            while !stop.load(Ordering::Relaxed) {
                let ack = publisher.publish("hot", json!({"n": next})).await;
                assert_eq!(ack["seq"], next, "single publisher: seq follows {ack}");
                next += 1;
            }
            next - 1
        })
    };

    let mut subs = Vec::new();
    for i in 0..SUBSCRIBERS {
        let url = server.ws_url("/ws");
        let rest = server.url("/topics/hot");
        subs.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&url).await;
            let (frame, expected_first): (Value, Option<u64>) = if i % 2 == 0 {
                let n = 1 + i;
                (
                    json!({"type": "subscribe", "topic": "hot", "last_n": n}),
                    None,
                )
            } else {
                let info: Value = get_json(&rest).await;
                let since = info["seq"].as_u64().unwrap() - 3;
                (
                    json!({"type": "subscribe", "topic": "hot", "since_seq": since,
                        "epoch": info["epoch"]}),
                    Some(since + 1),
                )
            };
            ws.send_json(frame.clone()).await;
            let ack = ws.recv_json_no_heartbeat().await;
            assert_eq!(ack["type"], "ack", "{frame}: first frame {ack}");
            assert_eq!(ack["recovered"], true, "{frame}: {ack}");
            let at = ack["seq"].as_u64().unwrap();
            let first = expected_first.unwrap_or_else(|| at.saturating_sub(1 + i) + 1);
            let mut seqs = Vec::new();
            while seqs.last().is_none_or(|&s| s < at + LIVE_AFTER_ACK) {
                let ev = ws.recv_json_no_heartbeat().await;
                assert_eq!(ev["type"], "event", "{frame}: {ev}");
                let seq = ev["seq"].as_u64().unwrap();
                assert_eq!(ev["message"]["payload"]["n"], seq, "{ev}");
                seqs.push(seq);
            }
            let want: Vec<u64> = (first..first + seqs.len() as u64).collect();
            assert_eq!(
                seqs, want,
                "{frame} (ack seq {at}): replay then live must be consecutive from {first}"
            );
        }));
    }
    for s in subs {
        tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("subscriber finished")
            .expect("subscriber checks");
    }
    stop.store(true, Ordering::Relaxed);
    let last = tokio::time::timeout(Duration::from_secs(10), pub_task)
        .await
        .expect("publisher stopped")
        .expect("publisher checks");
    assert!(last > PRIMED + LIVE_AFTER_ACK, "publisher published {last}");
}
