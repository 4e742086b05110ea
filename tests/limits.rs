//! Limits and lifecycle edges: `MAX_PUBLISH_RATE` (REST 429 / WebSocket `RATE_LIMITED`),
//! `MAX_TOPICS` and the per-connection subscription cap (`LIMIT_EXCEEDED`), `DELETE /topics/{name}`
//! under live subscribers, and `/health` / `/stats` counts when clients vanish without closing.

mod common;

use std::time::Duration;

use common::assert::{assert_error_frame, assert_rest_error};
use common::{http, TestServer, WsClient};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;

async fn rest_publish(server: &TestServer, topic: &str, data: Value) -> reqwest::Response {
    http()
        .post(server.url("/publish"))
        .json(&json!({"topic": topic, "data": data}))
        .send()
        .await
        .unwrap()
}

async fn get_json(server: &TestServer, path: &str) -> (u16, Value) {
    let resp = http().get(server.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn create_topic(server: &TestServer, name: &str) -> reqwest::Response {
    http()
        .post(server.url("/topics"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn delete_topic(server: &TestServer, name: &str) -> reqwest::Response {
    http()
        .delete(server.url(&format!("/topics/{name}")))
        .send()
        .await
        .unwrap()
}

/// A ping answered by a pong: the connection is open and serving.
async fn assert_alive(ws: &mut WsClient, tag: &str) {
    let pong = ws.request(json!({"type": "ping", "request_id": tag})).await;
    assert_eq!(pong["type"], "pong", "{tag}: {pong}");
    assert_eq!(pong["request_id"], tag);
}

/// Names of the topics that exist, sorted.
async fn topic_names(server: &TestServer) -> Vec<String> {
    let (_, body) = get_json(server, "/topics").await;
    body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// Polls `/stats` (bounded) until `done` holds; returns the last answer.
async fn poll_stats(server: &TestServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, stats) = get_json(server, "/stats").await;
        if done(&stats) {
            return stats;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: /stats never got there: {stats}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs to `path` (a `/pub/{topic}` route) until the first 429, which must be `RATE_LIMITED`;
/// returns how many passed before it.
async fn publish_until_limited(server: &TestServer, path: &str) -> usize {
    for passed in 0..50 {
        let resp = http()
            .post(server.url(path))
            .body(format!("raw {passed}"))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => {}
            429 => {
                assert_rest_error(resp, 429, "RATE_LIMITED", path).await;
                return passed;
            }
            other => panic!("{path}: unexpected status {other}"),
        }
    }
    panic!("{path}: 50 publishes and never rate limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_publish_rate_limit_is_per_topic_and_refills() {
    const RATE: u64 = 5;
    let server = TestServer::start_with(|c| c.max_publish_rate = RATE as u32).await;
    let mut sub = server.ws().await;
    sub.subscribe("hot").await;

    let started = std::time::Instant::now();
    let mut accepted = Vec::new();
    let mut limited = 0;
    for i in 0..20 {
        let resp = rest_publish(&server, "hot", json!(i)).await;
        match resp.status().as_u16() {
            200 => {
                let body: Value = resp.json().await.unwrap();
                accepted.push((i, body["seq"].as_u64().unwrap()));
            }
            429 => {
                limited += 1;
                assert_rest_error(resp, 429, "RATE_LIMITED", "burst").await;
            }
            other => panic!("publish {i}: unexpected status {other}"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // The burst is one second's worth: the first RATE pass, later ones only as tokens refill.
    let firsts: Vec<u64> = accepted.iter().take(RATE as usize).map(|a| a.0).collect();
    assert_eq!(firsts, (0..RATE).collect::<Vec<_>>(), "{accepted:?}");
    let allowed = RATE as f64 + elapsed * RATE as f64 + 1.0;
    assert!(
        (accepted.len() as f64) <= allowed,
        "{} accepted in {elapsed:.3}s at {RATE}/s",
        accepted.len()
    );
    assert!(limited >= 1, "no publish was rate limited: {accepted:?}");
    // Refused publishes take no seq: the accepted ones are numbered 1, 2, 3, ...
    let seqs: Vec<u64> = accepted.iter().map(|a| a.1).collect();
    assert_eq!(seqs, (1..=accepted.len() as u64).collect::<Vec<_>>());
    // Subscribers see exactly the accepted messages.
    for (i, seq) in &accepted {
        let ev = sub.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["seq"], *seq);
        assert_eq!(ev["message"]["payload"], *i);
    }
    sub.expect_silence(Duration::from_millis(200)).await;

    // Another topic has its own bucket: a full burst passes while `hot` is exhausted.
    let cold_started = std::time::Instant::now();
    for i in 0..RATE {
        let resp = rest_publish(&server, "cold", json!(i)).await;
        assert_eq!(resp.status(), 200, "cold publish {i}");
    }
    // /pub draws from the same bucket: it gets only what refilled meanwhile.
    let passed = publish_until_limited(&server, "/pub/cold").await;
    let refilled = cold_started.elapsed().as_secs_f64() * RATE as f64;
    assert!(
        passed as f64 <= refilled + 1.0,
        "/pub passed {passed} times after the /publish burst (refill {refilled:.2})"
    );

    // After a second the bucket is full again: a whole burst passes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..RATE {
        let resp = rest_publish(&server, "hot", json!(100 + i)).await;
        assert_eq!(resp.status(), 200, "hot publish {i} after refill");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_publish_rate_limit_answers_rate_limited_and_keeps_the_connection() {
    const RATE: usize = 5;
    const BURST: usize = 20;
    let server = TestServer::start_with(|c| c.max_publish_rate = RATE as u32).await;
    let mut ws = server.ws().await;
    let burst_started = std::time::Instant::now();
    for i in 0..BURST {
        ws.send_json(json!({"type": "publish", "topic": "wshot",
            "message": {"payload": i}, "request_id": format!("r{i}")}))
            .await;
    }
    let mut acked = Vec::new();
    let mut limited = Vec::new();
    for i in 0..BURST {
        let reply = ws.recv_json_no_heartbeat().await;
        let rid = format!("r{i}");
        match reply["type"].as_str() {
            Some("ack") => {
                assert_eq!(reply["request_id"], rid.as_str(), "{reply}");
                assert_eq!(reply["topic"], "wshot");
                acked.push((i, reply["seq"].as_u64().unwrap()));
            }
            Some("error") => {
                assert_error_frame(&reply, "RATE_LIMITED", Some(&json!(&rid)), &rid);
                limited.push(i);
            }
            _ => panic!("unexpected reply {reply}"),
        }
    }
    let firsts: Vec<usize> = acked.iter().take(RATE).map(|a| a.0).collect();
    assert_eq!(firsts, (0..RATE).collect::<Vec<_>>(), "{acked:?}");
    assert!(!limited.is_empty(), "nothing rate limited: {acked:?}");
    let seqs: Vec<u64> = acked.iter().map(|a| a.1).collect();
    assert_eq!(seqs, (1..=acked.len() as u64).collect::<Vec<_>>());
    // Still connected and serving; another topic is not limited.
    assert_alive(&mut ws, "still-here").await;
    let ack = ws.publish("wscold", json!("fine")).await;
    assert_eq!(ack["seq"], 1);
    // The same topic over REST shares the bucket: it gets only what refilled meanwhile.
    let passed = publish_until_limited(&server, "/pub/wshot").await;
    let refilled = burst_started.elapsed().as_secs_f64() * RATE as f64;
    assert!(
        (acked.len() + passed) as f64 <= RATE as f64 + refilled + 1.0,
        "REST passed {passed} times after {} WS acks (refill {refilled:.2})",
        acked.len()
    );
    // And it refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ack = ws.publish("wshot", json!("later")).await;
    assert_eq!(ack["seq"], (acked.len() + passed) as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_topics_bounds_every_way_of_creating_a_topic() {
    let server = TestServer::start_with(|c| c.max_topics = 3).await;
    for name in ["a", "b", "c"] {
        assert_eq!(create_topic(&server, name).await.status(), 201, "{name}");
    }
    // The fourth topic, however it would be created.
    assert_rest_error(
        create_topic(&server, "d").await,
        403,
        "LIMIT_EXCEEDED",
        "POST /topics",
    )
    .await;
    assert_rest_error(
        rest_publish(&server, "e", json!(1)).await,
        403,
        "LIMIT_EXCEEDED",
        "POST /publish",
    )
    .await;
    let resp = http()
        .post(server.url("/pub/e"))
        .body("raw")
        .send()
        .await
        .unwrap();
    assert_rest_error(resp, 403, "LIMIT_EXCEEDED", "POST /pub").await;
    let mut ws = server.ws().await;
    let reply = ws
        .request(
            json!({"type": "publish", "topic": "f", "message": {"payload": 1},
            "request_id": "p"}),
        )
        .await;
    assert_error_frame(&reply, "LIMIT_EXCEEDED", Some(&json!("p")), "p");
    let reply = ws
        .request(json!({"type": "subscribe", "topic": "g", "request_id": "s"}))
        .await;
    assert_error_frame(&reply, "LIMIT_EXCEEDED", Some(&json!("s")), "s");
    assert_alive(&mut ws, "alive").await;
    // Nothing was created, and existing topics still work.
    assert_eq!(topic_names(&server).await, ["a", "b", "c"]);
    let (_, health) = get_json(&server, "/health").await;
    assert_eq!(health["topics"], 3, "{health}");
    assert_eq!(rest_publish(&server, "a", json!(1)).await.status(), 200);
    ws.subscribe("b").await;

    // Deleting one frees exactly one slot, for each way of creating.
    assert_eq!(delete_topic(&server, "c").await.status(), 200);
    assert_eq!(create_topic(&server, "d").await.status(), 201);
    assert_rest_error(
        rest_publish(&server, "e", json!(1)).await,
        403,
        "LIMIT_EXCEEDED",
        "full again",
    )
    .await;
    assert_eq!(delete_topic(&server, "d").await.status(), 200);
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "g", "request_id": "s2"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["topic"], "g");
    assert_eq!(delete_topic(&server, "g").await.status(), 200);
    let info = ws.recv_json_no_heartbeat().await;
    assert_eq!(info["msg"], "topic_deleted", "{info}");
    let resp = rest_publish(&server, "e", json!("made it")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(topic_names(&server).await, ["a", "b", "e"]);
    assert_rest_error(
        create_topic(&server, "h").await,
        403,
        "LIMIT_EXCEEDED",
        "full at the end",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_connection_subscription_cap() {
    let server = TestServer::start_with(|c| c.max_subscriptions_per_connection = 3).await;
    let mut ws = server.ws().await;
    for t in ["t1", "t2", "t3"] {
        ws.subscribe(t).await;
    }
    let reply = ws
        .request(json!({"type": "subscribe", "topic": "t4", "request_id": "over"}))
        .await;
    assert_error_frame(&reply, "LIMIT_EXCEEDED", Some(&json!("over")), "over");
    // Re-subscribing to a topic it already has is not a new subscription.
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "t1", "request_id": "again"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_alive(&mut ws, "alive").await;

    // The cap is per connection: another connection subscribes to t4 freely.
    let mut other = server.ws().await;
    other.subscribe("t4").await;
    let (_, stats) = get_json(&server, "/stats").await;
    assert_eq!(stats["topics"]["t4"]["subscribers"], 1, "{stats}");
    assert_eq!(stats["subscribers"], 4, "{stats}");
    // The refused subscription delivers nothing.
    let mut publisher = server.ws().await;
    publisher.publish("t4", json!("first")).await;
    let ev = other.recv_json_no_heartbeat().await;
    assert_eq!(ev["message"]["payload"], "first", "{ev}");
    ws.expect_silence(Duration::from_millis(200)).await;

    // Unsubscribing frees a slot.
    let ack = ws
        .request(json!({"type": "unsubscribe", "topic": "t2", "request_id": "u"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ws.subscribe("t4").await;
    publisher.publish("t4", json!("second")).await;
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(ev["type"], "event", "{ev}");
    assert_eq!(ev["message"]["payload"], "second");
    assert_eq!(ev["seq"], 2);
    let reply = ws
        .request(json!({"type": "subscribe", "topic": "t5", "request_id": "over2"}))
        .await;
    assert_error_frame(&reply, "LIMIT_EXCEEDED", Some(&json!("over2")), "over2");

    // A deleted topic unsubscribes its subscribers, so it no longer counts.
    assert_eq!(delete_topic(&server, "t3").await.status(), 200);
    let info = ws.recv_json_no_heartbeat().await;
    assert_eq!(info["type"], "info", "{info}");
    assert_eq!(info["topic"], "t3");
    assert_eq!(info["msg"], "topic_deleted");
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "t5", "request_id": "now"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["topic"], "t5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_topic_notifies_subscribers_who_stay_connected_and_must_resubscribe() {
    let server = TestServer::start().await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    let old_epoch = a.subscribe("news").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(b.subscribe("news").await["epoch"], old_epoch.as_str());
    // Seed (a) socket: subscribed on open, no ack.
    let mut c = server.ws_path("/ws/sub/news?id=seed-a").await;
    assert_alive(&mut c, "c-ready").await;
    let (_, stats) = get_json(&server, "/stats").await;
    assert_eq!(stats["topics"]["news"]["subscribers"], 3, "{stats}");
    for i in 1..=2 {
        let resp = rest_publish(&server, "news", json!({"old": i})).await;
        assert_eq!(resp.status(), 200);
    }
    for ws in [&mut a, &mut b, &mut c] {
        for i in 1..=2 {
            let ev = ws.recv_json_no_heartbeat().await;
            assert_eq!(ev["seq"], i, "{ev}");
        }
    }

    let resp = delete_topic(&server, "news").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"status": "deleted", "topic": "news"}));
    // Seed a's pages read every frame as a message: its socket gets no `topic_deleted` frame,
    // its subscription just ends (PROTOCOL.md §2); the pong is the next thing it reads.
    assert_alive(&mut c, "c").await;
    for (name, ws) in [("a", &mut a), ("b", &mut b)] {
        let info = ws.recv_json_no_heartbeat().await;
        assert_eq!(info["type"], "info", "{name}: {info}");
        assert_eq!(info["topic"], "news", "{name}: {info}");
        assert_eq!(info["msg"], "topic_deleted", "{name}: {info}");
        assert!(
            info["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{info}"
        );
        assert_alive(ws, name).await;
    }
    let (status, _) = get_json(&server, "/topics/news").await;
    assert_eq!(status, 404);
    let (_, stats) = get_json(&server, "/stats").await;
    assert!(stats["topics"].get("news").is_none(), "{stats}");
    assert_eq!(stats["subscribers"], 0, "{stats}");
    assert_eq!(stats["connections"], 3, "{stats}");

    // Re-created: fresh numbering and epoch, and the old subscribers hear nothing.
    assert_eq!(create_topic(&server, "news").await.status(), 201);
    let (_, topic) = get_json(&server, "/topics/news").await;
    let new_epoch = topic["epoch"].as_str().unwrap().to_string();
    assert_ne!(new_epoch, old_epoch);
    assert_eq!(topic["subscribers"], 0, "{topic}");
    let resp = rest_publish(&server, "news", json!({"new": 1})).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["seq"], 1, "seq restarts at 1: {body}");
    for ws in [&mut a, &mut b, &mut c] {
        ws.expect_silence(Duration::from_millis(200)).await;
    }

    // Re-subscribing joins the new topic: replay from its own seq 1, then live events.
    let ack = a
        .request(json!({"type": "subscribe", "topic": "news", "last_n": 10}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["epoch"], new_epoch.as_str());
    assert_eq!(ack["seq"], 1);
    let replayed = a.recv_json_no_heartbeat().await;
    assert_eq!(replayed["seq"], 1, "{replayed}");
    assert_eq!(replayed["message"]["payload"], json!({"new": 1}));
    let ack = b.subscribe("news").await;
    assert_eq!(ack["epoch"], new_epoch.as_str());
    assert_eq!(ack["seq"], 1);
    let resp = rest_publish(&server, "news", json!({"new": 2})).await;
    assert_eq!(resp.status(), 200);
    for ws in [&mut a, &mut b] {
        let ev = ws.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["seq"], 2);
        assert_eq!(ev["message"]["payload"], json!({"new": 2}));
    }
    // The one that did not re-subscribe still hears nothing, but is connected.
    c.expect_silence(Duration::from_millis(200)).await;
    assert_alive(&mut c, "c-still").await;
    let (_, stats) = get_json(&server, "/stats").await;
    assert_eq!(stats["topics"]["news"]["subscribers"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_then_auto_create_by_subscribe_starts_a_new_epoch_at_seq_1() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let old = ws.subscribe("cycle").await;
    let mut publisher = server.ws().await;
    for _ in 0..3 {
        publisher.publish("cycle", json!("x")).await;
    }
    for _ in 0..3 {
        assert_eq!(ws.recv_json_no_heartbeat().await["type"], "event");
    }
    assert_eq!(delete_topic(&server, "cycle").await.status(), 200);
    let info = ws.recv_json_no_heartbeat().await;
    assert_eq!(info["msg"], "topic_deleted", "{info}");
    // The subscribe re-creates it (auto-create on).
    let ack = ws.subscribe("cycle").await;
    assert_ne!(ack["epoch"], old["epoch"]);
    assert_eq!(ack["seq"], 0, "{ack}");
    let pub_ack = publisher.publish("cycle", json!("fresh")).await;
    assert_eq!(pub_ack["seq"], 1);
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(ev["seq"], 1, "{ev}");
    assert_eq!(ev["message"]["payload"], "fresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_recover_when_clients_vanish_without_a_close_frame() {
    let server = TestServer::start().await;
    // One client that stays, on `vanish` and on `other`.
    let mut survivor = server.ws().await;
    survivor.subscribe("vanish").await;
    survivor.subscribe("other").await;
    let mut doomed = Vec::new();
    for i in 0..6 {
        let mut ws = if i % 2 == 0 {
            let mut ws = server.ws().await;
            ws.subscribe("vanish").await;
            ws
        } else {
            server.ws_path(&format!("/ws/sub/vanish?id=d{i}")).await
        };
        if i < 2 {
            ws.subscribe("other").await;
        }
        doomed.push(ws);
    }
    let stats = poll_stats(&server, "all connected", |s| {
        s["topics"]["vanish"]["subscribers"] == 7 && s["connections"] == 7
    })
    .await;
    assert_eq!(stats["topics"]["other"]["subscribers"], 3, "{stats}");
    let (_, health) = get_json(&server, "/health").await;
    assert_eq!(health["subscribers"], 10, "{health}");
    assert_eq!(health["connections"], 7, "{health}");
    // Unread frames in the clients' buffers make the close abrupt for sure.
    let resp = rest_publish(&server, "vanish", json!("unread")).await;
    assert_eq!(resp.status(), 200);

    // Vanish without a close frame, three ways: reset, half-close (FIN) kept open, plain drop.
    let mut half_closed = Vec::new();
    for (i, ws) in doomed.into_iter().enumerate() {
        match i % 3 {
            0 => {
                let MaybeTlsStream::Plain(tcp) = ws.inner.into_inner() else {
                    panic!("plain TCP expected");
                };
                tcp.set_zero_linger().unwrap();
                drop(tcp);
            }
            1 => {
                let mut ws = ws;
                let MaybeTlsStream::Plain(tcp) = ws.inner.get_mut() else {
                    panic!("plain TCP expected");
                };
                tcp.shutdown().await.unwrap();
                half_closed.push(ws);
            }
            _ => drop(ws),
        }
    }
    let stats = poll_stats(&server, "after vanishing", |s| {
        s["topics"]["vanish"]["subscribers"] == 1 && s["connections"] == 1
    })
    .await;
    assert_eq!(stats["topics"]["other"]["subscribers"], 1, "{stats}");
    assert_eq!(stats["subscribers"], 2, "{stats}");
    let (_, health) = get_json(&server, "/health").await;
    assert_eq!(health["subscribers"], 2, "{health}");
    assert_eq!(health["connections"], 1, "{health}");
    assert_eq!(health["topics"], 2, "{health}");
    let (_, topics) = get_json(&server, "/topics").await;
    assert_eq!(
        topics["topics"],
        json!([
            {"name": "other", "subscribers": 1, "messages": 0},
            {"name": "vanish", "subscribers": 1, "messages": 1},
        ])
    );
    drop(half_closed);

    // The survivor is unaffected and publishing to the vanished subscribers' topic still works.
    let ev = survivor.recv_json_no_heartbeat().await;
    assert_eq!(ev["message"]["payload"], "unread", "{ev}");
    let resp = rest_publish(&server, "vanish", json!("after")).await;
    assert_eq!(resp.status(), 200);
    let ev = survivor.recv_json_no_heartbeat().await;
    assert_eq!(ev["message"]["payload"], "after", "{ev}");
    assert_eq!(ev["seq"], 2);
}
