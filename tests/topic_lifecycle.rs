//! Topic lifecycle (issue 24) over real sockets: `TOPIC_IDLE_TTL_SECS` removes idle topics that
//! subscribe or publish created (and only those), a resume across the gap is told
//! `recovered: false` with a new epoch, and `HISTORY_TTL_SECS` keeps old events out of `last_n`,
//! `since_seq` and `GET /topics/{name}/history`.

mod common;

use std::time::{Duration, Instant};

use common::rest::get_json;
use common::{http, TestServer, WsClient};
use serde_json::{json, Value};

/// Idle TTL of these tests' servers: the sweep then ticks every 100 ms.
const IDLE_TTL: Duration = Duration::from_secs(1);

async fn lifecycle_server() -> TestServer {
    TestServer::start_with(|c| c.topic_idle_ttl = IDLE_TTL).await
}

/// `/health`'s topic count.
async fn topic_count(server: &TestServer) -> u64 {
    let health = get_json(&server.url("/health")).await;
    health["topics"].as_u64().expect("topics in /health")
}

/// The status of `GET /topics/{name}`.
async fn topic_status(server: &TestServer, name: &str) -> u16 {
    let url = server.url(&format!("/topics/{name}"));
    http().get(url).send().await.unwrap().status().as_u16()
}

/// Waits (up to 30 s) until `/health` counts `want` topics.
async fn wait_for_topic_count(server: &TestServer, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = topic_count(server).await;
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "{now} topics, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `herald_topics_expired_total` from `/metrics`.
async fn expired_metric(server: &TestServer) -> u64 {
    let text = common::rest::get_text(&server.url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix("herald_topics_expired_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no herald_topics_expired_total in\n{text}"))
}

/// Publishes one message to each of `names` over `ws`, pipelined, then reads every ack.
async fn publish_each(ws: &mut WsClient, names: &[String]) {
    for name in names {
        ws.send_json(json!({"type": "publish", "topic": name, "message": {"payload": 1}}))
            .await;
    }
    for _ in names {
        let ack = ws.recv_json_no_heartbeat().await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_idle_topics_expire_and_the_ones_in_use_stay() {
    let server = lifecycle_server().await;
    let created = http()
        .post(server.url("/topics"))
        .json(&json!({"name": "explicit"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "POST /topics");
    let mut listener = server.ws().await;
    listener.subscribe("watched").await;
    let mut publisher = server.ws().await;
    let names: Vec<String> = (0..20_000).map(|i| format!("user.{i}.inbox")).collect();
    publish_each(&mut publisher, &names).await;
    // No count here: on a loaded machine the first topics are idle for the TTL, and expire,
    // before the last one is made. That every one of them was made shows below, where all
    // 20,000 have expired.

    // "busy" is published to more often than the TTL for the whole test.
    let started = Instant::now();
    let mut last_count = u64::MAX;
    while started.elapsed() < IDLE_TTL * 15 {
        publisher.publish("busy", json!("tick")).await;
        last_count = topic_count(&server).await;
        if last_count == 3 {
            break;
        }
        tokio::time::sleep(IDLE_TTL / 4).await;
    }
    assert_eq!(last_count, 3, "only explicit, watched and busy stay");
    // Still there after several more TTLs, while in use.
    for _ in 0..8 {
        publisher.publish("busy", json!("tick")).await;
        tokio::time::sleep(IDLE_TTL / 4).await;
    }
    for kept in ["explicit", "watched", "busy"] {
        assert_eq!(topic_status(&server, kept).await, 200, "{kept} must stay");
    }
    assert_eq!(topic_status(&server, "user.7.inbox").await, 404);
    assert_eq!(expired_metric(&server).await, 20_000);

    // The subscriber still gets what is published: its topic was never replaced under it.
    publisher.publish("watched", json!("still here")).await;
    let event = listener.recv_json_no_heartbeat().await;
    assert_eq!(event["message"]["payload"], "still here", "{event}");

    // Once the subscriber leaves and nobody publishes, that one goes too; the explicit one stays.
    drop(listener);
    wait_for_topic_count(&server, 1).await;
    assert_eq!(topic_status(&server, "watched").await, 404);
    assert_eq!(topic_status(&server, "explicit").await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_across_expiry_is_told_recovered_false_with_a_new_epoch() {
    let server = lifecycle_server().await;
    let mut ws = server.ws().await;
    let first = ws.subscribe("session.42").await;
    for n in 1..=3 {
        ws.publish("session.42", json!({ "n": n })).await;
    }
    let old_epoch = first["epoch"].as_str().expect("epoch").to_string();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(30);
    while topic_status(&server, "session.42").await != 404 {
        assert!(Instant::now() < deadline, "session.42 never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut back = server.ws().await;
    let ack = back
        .request(json!({"type": "subscribe", "topic": "session.42",
            "since_seq": 3, "epoch": old_epoch}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["recovered"], false, "{ack}");
    assert_eq!(ack["seq"], 0, "{ack}");
    assert_ne!(
        ack["epoch"],
        old_epoch.as_str(),
        "a new life gets a new epoch: {ack}"
    );
    // Live delivery works on the new topic, numbered from 1 again.
    server.ws().await.publish("session.42", json!("new")).await;
    let event = back.recv_json_no_heartbeat().await;
    assert_eq!(
        (event["seq"].as_u64(), &event["message"]["payload"]),
        (Some(1), &json!("new"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_idle_ttl_zero_keeps_every_topic() {
    let server = TestServer::start_with(|c| c.topic_idle_ttl = Duration::ZERO).await;
    let mut ws = server.ws().await;
    ws.publish("forever", json!(1)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(topic_status(&server, "forever").await, 200);
    assert_eq!(expired_metric(&server).await, 0);
}

/// The `seq`s of the events that follow an ack, read up to a ping fence.
async fn events_until_fence(ws: &mut WsClient) -> Vec<u64> {
    ws.send_json(json!({"type": "ping", "request_id": "fence"}))
        .await;
    let mut seqs = Vec::new();
    loop {
        let v = ws.recv_json_no_heartbeat().await;
        match v["type"].as_str() {
            Some("event") => seqs.push(v["seq"].as_u64().expect("seq")),
            Some("pong") => return seqs,
            _ => panic!("unexpected frame {v}"),
        }
    }
}

/// Subscribes with `replay` fields on a fresh connection; returns the ack and the replayed seqs.
async fn replay(server: &TestServer, fields: Value) -> (Value, Vec<u64>) {
    let mut ws = server.ws().await;
    let mut frame = json!({"type": "subscribe", "topic": "feed"});
    for (k, v) in fields.as_object().expect("object") {
        frame[k] = v.clone();
    }
    ws.send_json(frame).await;
    let ack = ws.recv_json_no_heartbeat().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    (ack, events_until_fence(&mut ws).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ttl_keeps_old_events_out_of_replay_and_history() {
    let server = TestServer::start_with(|c| c.history_ttl = Duration::from_secs(2)).await;
    let mut ws = server.ws().await;
    let epoch = ws.subscribe("feed").await["epoch"].clone();
    for n in 1..=3 {
        ws.publish("feed", json!({ "n": n })).await;
    }
    // Before the TTL everything is there.
    assert_eq!(replay(&server, json!({"last_n": 10})).await.1, [1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    ws.publish("feed", json!({"n": 4})).await;

    let (ack, seqs) = replay(&server, json!({"last_n": 10})).await;
    assert_eq!(
        (ack["seq"].as_u64(), seqs),
        (Some(4), vec![4]),
        "last_n: {ack}"
    );

    // Resuming from before the expired events: they are missing, so not recovered.
    let (ack, seqs) = replay(&server, json!({"since_seq": 1, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], false, "{ack}");
    assert_eq!(seqs, [4]);
    // Resuming after them: nothing is missing.
    let (ack, seqs) = replay(&server, json!({"since_seq": 3, "epoch": epoch})).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(seqs, [4]);

    let history = get_json(&server.url("/topics/feed/history")).await;
    let listed: Vec<u64> = history["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages in {history}"))
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(listed, [4], "{history}");
    // The topic itself keeps counting every message it had.
    let info = get_json(&server.url("/topics/feed")).await;
    assert_eq!(info["messages"], 4, "{info}");
}
