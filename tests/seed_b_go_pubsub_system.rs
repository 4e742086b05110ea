//! Replays the examples of `seeds/b-go-pubsub-system.md` ("Go Pub/Sub System") against herald:
//! the JavaScript `/ws` client that subscribes and publishes with `data`, the generic
//! `{"type","topic","data"}` frame, the REST curl examples (topics, publish, stats, health), the
//! `MAX_MESSAGES_PER_TOPIC=500 PORT=9000` start-up, `MAX_PUBLISH_RATE` and the "skip messages
//! when a subscriber's channel is full" backpressure.

mod common;

use common::assert::{assert_event, assert_fields, assert_time, assert_topic_stats, assert_ts};
use common::flood::{flood, Stalled};
use common::rest::{curl, curl_json, get_text, send};
use common::spawned::Spawned;
use common::ws::{assert_nothing_queued, browser_ws, next_text_json};
use common::{TestServer, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `curl URL`.
async fn curl_get(url: String) -> (StatusCode, Value) {
    send(curl(Method::GET, url)).await
}

/// Asserts `id` is a string holding a UUID.
fn assert_uuid(id: &Value) {
    let text = id
        .as_str()
        .unwrap_or_else(|| panic!("id {id} is not a string"));
    assert!(uuid::Uuid::parse_str(text).is_ok(), "id {text:?} is a UUID");
}

/// The README's JavaScript client, sent as written: subscribe and publish back to back without
/// waiting, then read what `onmessage` gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_js_client_subscribes_then_publishes_data() {
    let server = TestServer::start().await;
    let mut ws = browser_ws(&server.ws_url("/ws")).await;
    // JSON.stringify output of the two objects in the README.
    ws.send_text(r#"{"type":"subscribe","topic":"news"}"#).await;
    ws.send_text(r#"{"type":"publish","topic":"news","data":"Hello World!"}"#)
        .await;

    let sub_ack = next_text_json(&mut ws).await;
    assert_fields(
        &sub_ack,
        json!({"type": "ack", "topic": "news", "status": "ok", "seq": 0}),
    );
    assert!(sub_ack["epoch"].is_string(), "{sub_ack}");
    assert!(sub_ack.get("request_id").is_none(), "{sub_ack}");
    assert!(
        sub_ack.get("recovered").is_none(),
        "no replay asked: {sub_ack}"
    );
    assert_ts(&sub_ack);

    // The publisher is itself subscribed, so it gets its own event and the publish ack; PROTOCOL.md
    // does not order those two, so accept either.
    let a = next_text_json(&mut ws).await;
    let b = next_text_json(&mut ws).await;
    let (event, ack) = if a["type"] == "event" { (a, b) } else { (b, a) };
    assert_fields(&event, json!({"type": "event", "topic": "news", "seq": 1}));
    assert_eq!(event["message"]["payload"], "Hello World!");
    assert_uuid(&event["message"]["id"]);
    assert_ts(&event);
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "news", "status": "ok", "seq": 1,
               "id": event["message"]["id"].clone()}),
    );
    assert_ts(&ack);
    assert_nothing_queued(&mut ws).await;
}

/// The README's generic frame `{"type": "publish|subscribe|unsubscribe|ping", "topic":
/// "topic-name", "data": "message-data"}`, every type with every field present (fields a type
/// does not use are ignored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_frame_works_for_all_four_types() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let mut publisher = server.ws().await;
    let frame = |kind: &str| json!({"type": kind, "topic": "topic-name", "data": "message-data"});

    let ack = ws.request(frame("subscribe")).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "topic-name", "status": "ok"}),
    );

    let ack = publisher.request(frame("publish")).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "topic-name", "status": "ok", "seq": 1}),
    );
    assert_uuid(&ack["id"]);
    let ev = next_text_json(&mut ws).await;
    assert_event(&ev, "topic-name", &ack["id"], json!("message-data"), 1);

    let pong = ws.request(frame("ping")).await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert!(pong.get("request_id").is_none(), "{pong}");
    assert_ts(&pong);

    let ack = ws.request(frame("unsubscribe")).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "topic-name", "status": "ok"}),
    );
    assert_ts(&ack);
    publisher.request(frame("publish")).await;
    // Fan-out happens before the publish is acked: nothing may have been queued for `ws`.
    assert_nothing_queued(&mut ws).await;
}

/// The README's curl examples in order (create, list, publish, stats, health), with a WebSocket
/// subscriber on `news` so the REST publish is seen to fan out; then the other two documented
/// topic routes, `GET /topics/{name}` and `DELETE /topics/{name}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_rest_examples() {
    let server = TestServer::start().await;

    // curl -X POST http://localhost:8080/topics -H "Content-Type: application/json" \
    //   -d '{"name": "news"}'
    let (status, body) =
        curl_json(Method::POST, server.url("/topics"), r#"{"name": "news"}"#).await;
    assert_eq!(status, 201, "{body}");
    assert_fields(&body, json!({"status": "created", "topic": "news"}));

    // curl http://localhost:8080/topics
    let (status, body) = curl_get(server.url("/topics")).await;
    assert_eq!(status, 200);
    let topics = body["topics"].as_array().expect("topics array");
    assert_eq!(topics.len(), 1, "{body}");
    assert_fields(&topics[0], json!({"name": "news", "subscribers": 0}));

    let mut ws = server.ws().await;
    ws.subscribe("news").await;

    // curl -X POST http://localhost:8080/publish -H "Content-Type: application/json" \
    //   -d '{"topic": "news", "data": "Breaking news!"}'
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic": "news", "data": "Breaking news!"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_fields(
        &body,
        json!({"status": "published", "topic": "news", "seq": 1}),
    );
    assert_uuid(&body["id"]);
    let ev = next_text_json(&mut ws).await;
    assert_event(&ev, "news", &body["id"], json!("Breaking news!"), 1);

    // curl http://localhost:8080/stats
    let (status, stats) = curl_get(server.url("/stats")).await;
    assert_eq!(status, 200);
    assert_topic_stats(&stats, &[("news", 1, 1)]);

    // curl http://localhost:8080/health
    let (status, health) = curl_get(server.url("/health")).await;
    assert_eq!(status, 200);
    assert_fields(
        &health,
        json!({"status": "ok", "topics": 1, "subscribers": 1}),
    );
    assert!(health["uptime_sec"].is_u64(), "{health}");

    // GET /topics/{name}
    let (status, detail) = curl_get(server.url("/topics/news")).await;
    assert_eq!(status, 200);
    assert_fields(
        &detail,
        json!({"name": "news", "subscribers": 1, "messages": 1, "seq": 1}),
    );
    assert!(detail["epoch"].is_string(), "{detail}");
    assert_time(&detail["created_at"]);

    // DELETE /topics/{name}: the subscriber is told and unsubscribed (PROTOCOL.md §3).
    let (status, body) = send(curl(Method::DELETE, server.url("/topics/news"))).await;
    assert_eq!(status, 200, "{body}");
    assert_fields(&body, json!({"status": "deleted", "topic": "news"}));
    let info = next_text_json(&mut ws).await;
    assert_fields(
        &info,
        json!({"type": "info", "topic": "news", "msg": "topic_deleted"}),
    );
    assert_ts(&info);
    let (status, body) = curl_get(server.url("/topics/news")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "TOPIC_NOT_FOUND");
    let (_, body) = curl_get(server.url("/topics")).await;
    assert_eq!(body["topics"], json!([]));
}

/// `POST /topics` failures and `GET /topics` ordering (PROTOCOL.md §3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_management_errors_and_sorted_listing() {
    let server = TestServer::start().await;
    for name in ["zeta", "alpha", "news"] {
        let (status, _) = curl_json(
            Method::POST,
            server.url("/topics"),
            &format!(r#"{{"name": "{name}"}}"#),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, body) =
        curl_json(Method::POST, server.url("/topics"), r#"{"name": "news"}"#).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "CONFLICT");
    assert!(body["error"]["message"].is_string());
    for bad in [
        r#"{"name": ""}"#,
        r#"{"name": "has space"}"#,
        r#"{"name": 5}"#,
        r#"{}"#,
        "not json",
        "[]",
    ] {
        let (status, body) = curl_json(Method::POST, server.url("/topics"), bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "BAD_REQUEST", "{bad}");
        assert!(body["error"]["message"].is_string());
    }
    let (_, body) = curl_get(server.url("/topics")).await;
    let names: Vec<&str> = body["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "news", "zeta"]);
    let (status, body) = send(curl(Method::DELETE, server.url("/topics/missing"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "TOPIC_NOT_FOUND");
    let (status, body) =
        curl_json(Method::POST, server.url("/publish"), r#"{"topic": "news"}"#).await;
    assert_eq!(status, 400, "publish without data: {body}");
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
}

/// `MAX_MESSAGES_PER_TOPIC=500 PORT=9000 go run main.go`: the seed-b variable is herald's alias
/// of `RING_BUFFER_SIZE` (PROTOCOL.md §6), so the topic keeps its last 500 messages. A free port
/// stands in for 9000, which may be taken on the test machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_custom_configuration_from_environment() {
    let port = common::free_port();
    let server = Spawned::start(
        &[
            ("MAX_MESSAGES_PER_TOPIC", "500".to_string()),
            ("PORT", port.to_string()),
        ],
        port,
    )
    .await;
    let mut ws = WsClient::connect(&format!("ws://127.0.0.1:{port}/ws")).await;
    // Pipelined in windows well under the 100-frame outbound queue that the acks share.
    for window in (1..=501u64).collect::<Vec<_>>().chunks(50) {
        for i in window {
            ws.send_json(json!({"type": "publish", "topic": "news", "data": i}))
                .await;
        }
        for i in window {
            let ack = next_text_json(&mut ws).await;
            assert_fields(&ack, json!({"type": "ack", "seq": i}));
        }
    }
    let (status, history) = curl_get(server.url("/topics/news/history")).await;
    assert_eq!(status, 200);
    let seqs: Vec<u64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (2..=501).collect::<Vec<_>>());
    assert_eq!(history["messages"][0]["payload"], 2);
    let (_, stats) = curl_get(server.url("/stats")).await;
    assert_eq!(stats["topics"]["news"]["messages"], 501);
}

/// `MAX_PUBLISH_RATE` caps publishes per topic per second (burst = rate), on `/ws` and
/// `POST /publish`. Herald's default is 0 (off), not seed b's 100: PROTOCOL.md §6 wins, so the
/// limit is set explicitly here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_publish_rate_limits_each_topic() {
    let server = TestServer::start_with(|c| c.max_publish_rate = 3).await;
    let mut ws = server.ws().await;
    for seq in 1..=3u64 {
        let ack = ws
            .request(json!({"type": "publish", "topic": "news", "data": seq}))
            .await;
        assert_fields(&ack, json!({"type": "ack", "seq": seq}));
    }
    let err = ws
        .request(json!({"type": "publish", "topic": "news", "data": 4, "request_id": "r4"}))
        .await;
    assert_fields(&err, json!({"type": "error", "request_id": "r4"}));
    assert_eq!(err["error"]["code"], "RATE_LIMITED", "{err}");
    assert!(err["error"]["message"].is_string());
    assert_ts(&err);
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic": "news", "data": "Breaking news!"}"#,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Per topic: another topic is not limited, and the connection stayed open.
    let ack = ws
        .request(json!({"type": "publish", "topic": "sports", "data": 1}))
        .await;
    assert_fields(&ack, json!({"type": "ack", "topic": "sports", "seq": 1}));
    let (_, detail) = curl_get(server.url("/topics/news")).await;
    assert_eq!(detail["messages"], 3, "rejected publishes are not stored");
}

/// Seed b "skips messages when subscriber channels are full"; in herald that is policy
/// `drop_oldest` (the default `disconnect` closes instead, PROTOCOL.md §1 Backpressure). A
/// subscriber that stops reading loses some events, keeps its connection, sees the rest in `seq`
/// order, and ends with the newest one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_subscriber_queue_skips_messages_under_drop_oldest() {
    let Stalled {
        server,
        mut slow,
        mut publisher,
    } = Stalled::start("news").await;
    let last = flood(&mut publisher, "news", 600).await;
    assert_eq!(last, 600);

    let mut seqs = Vec::new();
    while seqs.last() != Some(&last) {
        let ev = next_text_json(&mut slow).await;
        assert_eq!(ev["type"], "event", "{ev}");
        seqs.push(ev["seq"].as_u64().unwrap());
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq order kept");
    assert!(
        (seqs.len() as u64) < last,
        "the stalled subscriber should have skipped some of {last} messages"
    );
    // Still connected and still subscribed.
    assert_nothing_queued(&mut slow).await;
    let (_, detail) = curl_get(server.url("/topics/news")).await;
    assert_eq!(detail["subscribers"], 1);
}

/// PROTOCOL.md §1: events dropped under `drop_oldest` are "counted in /stats and /metrics".
/// Field names are not specified, so a numeric `/stats` field and a `/metrics` sample whose name
/// mentions "drop" must equal the number of events the only subscriber missed (each publish
/// evicts at most one of its queued events).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_events_are_counted_in_stats_and_metrics() {
    let Stalled {
        server,
        mut slow,
        mut publisher,
    } = Stalled::start("news").await;
    let last = flood(&mut publisher, "news", 600).await;
    let mut received = 0u64;
    loop {
        let ev = next_text_json(&mut slow).await;
        received += 1;
        if ev["seq"] == last {
            break;
        }
    }
    assert!(received < last, "some events were dropped");
    let missed = last - received;

    fn drop_counters(v: &Value, path: &str, out: &mut Vec<(String, u64)>) {
        if let Some(map) = v.as_object() {
            for (k, child) in map {
                let p = format!("{path}.{k}");
                if k.to_ascii_lowercase().contains("drop") {
                    if let Some(n) = child.as_u64() {
                        out.push((p.clone(), n));
                    }
                }
                drop_counters(child, &p, out);
            }
        }
    }
    let (_, stats) = curl_get(server.url("/stats")).await;
    let mut found = Vec::new();
    drop_counters(&stats, "", &mut found);
    assert!(
        found.iter().any(|(_, n)| *n == missed),
        "no drop counter equal to the {missed} missed events in /stats: {stats}"
    );
    let metrics = get_text(&server.url("/metrics")).await;
    let counted = metrics.lines().any(|l| {
        !l.starts_with('#')
            && l.to_ascii_lowercase().contains("drop")
            && l.rsplit(' ')
                .next()
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|n| n == missed as f64)
    });
    assert!(
        counted,
        "no drop counter equal to the {missed} missed events in /metrics:\n{metrics}"
    );
}
