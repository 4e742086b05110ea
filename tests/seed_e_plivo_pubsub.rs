//! Replays the examples of `seeds/e-plivo-pubsub.md` ("In-Memory Pub/Sub over WebSocket + REST",
//! the Plivo contract and herald's canonical dialect) against herald started with
//! `auto_create_topics = false`, as that README requires: topics exist only after `POST /topics`.
//! Covers the wscat Quick Test frames (sent as the exact text typed), the REST curl examples,
//! `TOPIC_NOT_FOUND`, `CONFLICT`, `topic_deleted`, `last_n` replay from the 100-message ring,
//! `request_id` echo, heartbeats, `/health` and `/stats`, and `ADDR=":9090"`.

mod common;

use std::time::Duration;

use common::assert::{
    assert_error_body, assert_event, assert_fields, assert_topic_stats, assert_ts,
};
use common::rest::{curl, send};
use common::spawned::Spawned;
use common::ws::{
    assert_nothing_queued as assert_only_pong, next_text_json, request_text as wscat,
};
use common::{TestServer, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// herald as the seed e server behaves: no auto-creation of topics.
async fn start() -> TestServer {
    TestServer::start_with(|c| c.auto_create_topics = false).await
}

/// `curl -s -X POST localhost:8080/topics -H 'Content-Type: application/json' -d '{"name":"…"}'`
async fn create_topic(server: &TestServer, name: &str) -> (StatusCode, Value) {
    send(
        curl(Method::POST, server.url("/topics"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"name":"{name}"}}"#)),
    )
    .await
}

/// `curl -s -X DELETE localhost:8080/topics/NAME`
async fn delete_topic(server: &TestServer, name: &str) -> (StatusCode, Value) {
    send(curl(Method::DELETE, server.url(&format!("/topics/{name}")))).await
}

/// `curl -s localhost:8080PATH`
async fn get(server: &TestServer, path: &str) -> (StatusCode, Value) {
    send(curl(Method::GET, server.url(path))).await
}

/// Asserts an error frame with `code` and a current `ts`, echoing `request_id` when given.
fn assert_error_frame(frame: &Value, code: &str, request_id: Option<Value>) {
    common::assert::assert_error_frame(frame, code, request_id.as_ref(), code);
    assert_ts(frame);
}

/// Round-trips a ping and asserts the `pong` (echoing the request id, with a current `ts`) is
/// the only frame queued: frames of one connection are answered in order.
async fn assert_nothing_queued(ws: &mut WsClient) {
    let pong = assert_only_pong(ws).await;
    assert_ts(&pong);
}

const SUBSCRIBE_A: &str =
    r#"{"type":"subscribe","topic":"orders","client_id":"s1","last_n":5,"request_id":"r1"}"#;
const PUBLISH_B: &str = r#"{"type":"publish","topic":"orders","message":{"id":"550e8400-e29b-41d4-a716-446655440000","payload":{"order_id":"ORD-123","amount":99.5}},"request_id":"p1"}"#;

/// The Quick Test and the REST block, in the README's order: create the topic, subscribe in
/// terminal A, publish in terminal B, list, health, stats, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_test_and_rest_examples() {
    let server = start().await;

    // curl -s -X POST localhost:8080/topics -H 'Content-Type: application/json' \
    //   -d '{"name":"orders"}' | jq
    let (status, body) = create_topic(&server, "orders").await;
    assert_eq!(status, 201, "{body}");
    assert_fields(&body, json!({"status": "created", "topic": "orders"}));

    // terminal A: wscat -c ws://localhost:8080/ws
    let mut a = server.ws().await;
    let ack = wscat(&mut a, SUBSCRIBE_A).await;
    // expect {"type":"ack","status":"ok"...}
    assert_fields(
        &ack,
        json!({"type": "ack", "status": "ok", "request_id": "r1", "topic": "orders",
               "seq": 0, "recovered": true}),
    );
    assert!(
        ack["epoch"].as_str().is_some_and(|e| !e.is_empty()),
        "{ack}"
    );
    assert_ts(&ack);

    // terminal B: wscat -c ws://localhost:8080/ws
    let mut b = server.ws().await;
    let ack = wscat(&mut b, PUBLISH_B).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "status": "ok", "request_id": "p1", "topic": "orders",
               "id": "550e8400-e29b-41d4-a716-446655440000", "seq": 1}),
    );
    assert_ts(&ack);

    // terminal A should receive {"type":"event", ...}
    let ev = next_text_json(&mut a).await;
    assert_fields(
        &ev,
        json!({"type": "event", "topic": "orders", "seq": 1,
               "message": {"id": "550e8400-e29b-41d4-a716-446655440000",
                           "payload": {"order_id": "ORD-123", "amount": 99.5}}}),
    );
    assert!(
        ev.get("request_id").is_none(),
        "events carry no request_id: {ev}"
    );
    assert_ts(&ev);
    assert_nothing_queued(&mut b).await;

    // curl -s localhost:8080/topics | jq
    let (status, body) = get(&server, "/topics").await;
    assert_eq!(status, 200);
    let topics = body["topics"].as_array().expect("topics array");
    assert_eq!(topics.len(), 1, "{body}");
    assert_fields(&topics[0], json!({"name": "orders", "subscribers": 1}));

    // curl -s localhost:8080/health | jq  ->  { "uptime_sec": 12, "topics": 1, "subscribers": 2 }
    let (status, health) = get(&server, "/health").await;
    assert_eq!(status, 200);
    assert_fields(
        &health,
        json!({"status": "ok", "topics": 1, "subscribers": 1}),
    );
    assert!(health["uptime_sec"].is_u64(), "{health}");

    // curl -s localhost:8080/stats | jq  ->  { "topics": { "orders": {"messages": 42, ...} } }
    let (status, stats) = get(&server, "/stats").await;
    assert_eq!(status, 200);
    assert_topic_stats(&stats, &[("orders", 1, 1)]);

    // curl -s -X DELETE localhost:8080/topics/orders | jq
    let (status, body) = delete_topic(&server, "orders").await;
    assert_eq!(status, 200, "{body}");
    assert_fields(&body, json!({"status": "deleted", "topic": "orders"}));
    let info = next_text_json(&mut a).await;
    assert_fields(
        &info,
        json!({"type": "info", "topic": "orders", "msg": "topic_deleted"}),
    );
    assert_ts(&info);
    assert_nothing_queued(&mut a).await;
    let (_, body) = get(&server, "/topics").await;
    assert_eq!(body["topics"], json!([]));
}

/// "Create topic via REST before subscribing/publishing": without it, subscribe and publish
/// answer `TOPIC_NOT_FOUND` (echoing `request_id`) on `/ws` and 404 on REST, and the
/// connection stays open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_is_topic_not_found() {
    let server = start().await;
    let mut ws = server.ws().await;
    let err = wscat(&mut ws, SUBSCRIBE_A).await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", Some(json!("r1")));
    let err = wscat(&mut ws, PUBLISH_B).await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", Some(json!("p1")));
    let err = wscat(
        &mut ws,
        r#"{"type":"publish","topic":"orders","message":{"payload":1}}"#,
    )
    .await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", None);

    let (status, body) = send(
        curl(Method::POST, server.url("/publish"))
            .header("content-type", "application/json")
            .body(r#"{"topic":"orders","message":{"payload":{"order_id":"ORD-123"}}}"#),
    )
    .await;
    assert_eq!(status, 404);
    assert_error_body(&body, "TOPIC_NOT_FOUND", "POST /publish");
    let (status, body) = get(&server, "/topics/orders").await;
    assert_eq!(status, 404);
    assert_error_body(&body, "TOPIC_NOT_FOUND", "GET /topics/orders");
    let (status, body) = get(&server, "/topics/orders/history").await;
    assert_eq!(status, 404);
    assert_error_body(&body, "TOPIC_NOT_FOUND", "GET /topics/orders/history");
    // Nothing was created by those attempts.
    let (_, body) = get(&server, "/topics").await;
    assert_eq!(body["topics"], json!([]));
    let (_, stats) = get(&server, "/stats").await;
    assert_topic_stats(&stats, &[]);

    // Still connected: after creating the topic the same frame is acked.
    let (status, _) = create_topic(&server, "orders").await;
    assert_eq!(status, 201);
    let ack = wscat(&mut ws, SUBSCRIBE_A).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "r1", "status": "ok"}),
    );
}

/// `POST /topics` is 201 once, then 409 `CONFLICT`; deleting a missing topic is 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_conflict_and_delete_missing() {
    let server = start().await;
    let (status, body) = create_topic(&server, "orders").await;
    assert_eq!(status, 201, "{body}");
    assert_fields(&body, json!({"status": "created", "topic": "orders"}));
    let (status, body) = create_topic(&server, "orders").await;
    assert_eq!(status, 409);
    assert_error_body(&body, "CONFLICT", "second create");
    let (status, body) = delete_topic(&server, "payments").await;
    assert_eq!(status, 404);
    assert_error_body(&body, "TOPIC_NOT_FOUND", "delete missing");
    let (status, _) = delete_topic(&server, "orders").await;
    assert_eq!(status, 200);
    let (status, body) = delete_topic(&server, "orders").await;
    assert_eq!(status, 404, "second delete: {body}");
    assert_error_body(&body, "TOPIC_NOT_FOUND", "second delete");
    let (status, body) = create_topic(&server, "orders").await;
    assert_eq!(status, 201, "re-create after delete: {body}");
}

/// `DELETE /topics/{name}` tells subscribers `topic_deleted` and unsubscribes them; they stay
/// connected, get `TOPIC_NOT_FOUND` until the topic is re-created, are not resubscribed
/// implicitly, and can subscribe again to a fresh topic (new epoch, `seq` from 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_notifies_subscribers_who_can_resubscribe_after_recreate() {
    let server = start().await;
    create_topic(&server, "orders").await;
    let mut a = server.ws().await;
    let ack = wscat(&mut a, SUBSCRIBE_A).await;
    let old_epoch = ack["epoch"].clone();
    let mut b = server.ws().await;
    wscat(&mut b, PUBLISH_B).await;
    assert_eq!(next_text_json(&mut a).await["seq"], 1);

    let (status, _) = delete_topic(&server, "orders").await;
    assert_eq!(status, 200);
    let info = next_text_json(&mut a).await;
    assert_fields(
        &info,
        json!({"type": "info", "topic": "orders", "msg": "topic_deleted"}),
    );
    assert_nothing_queued(&mut a).await;

    let err = wscat(&mut a, SUBSCRIBE_A).await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", Some(json!("r1")));
    let err = wscat(&mut b, PUBLISH_B).await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", Some(json!("p1")));

    let (status, _) = create_topic(&server, "orders").await;
    assert_eq!(status, 201);
    // The deleted topic's subscription does not carry over to the new one.
    let ack = wscat(&mut b, PUBLISH_B).await;
    assert_fields(&ack, json!({"type": "ack", "request_id": "p1", "seq": 1}));
    assert_nothing_queued(&mut a).await;
    let (_, detail) = get(&server, "/topics/orders").await;
    assert_eq!(detail["subscribers"], 0, "{detail}");

    let ack = wscat(&mut a, SUBSCRIBE_A).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "r1", "topic": "orders", "status": "ok",
               "seq": 1, "recovered": true}),
    );
    assert!(ack["epoch"].is_string());
    assert_ne!(
        ack["epoch"], old_epoch,
        "a re-created topic has a new epoch"
    );
    // last_n 5 replays the one message of the new topic.
    let replay = next_text_json(&mut a).await;
    assert_fields(
        &replay,
        json!({"type": "event", "topic": "orders", "seq": 1}),
    );
    let ack = wscat(&mut b, PUBLISH_B).await;
    assert_eq!(ack["seq"], 2);
    let live = next_text_json(&mut a).await;
    assert_fields(&live, json!({"type": "event", "topic": "orders", "seq": 2}));
    assert_nothing_queued(&mut a).await;
}

/// Publishes `count` messages `{"n": i}` (1-based) through `ws`, pipelined in windows smaller
/// than the outbound queue the acks share.
async fn publish_many(ws: &mut WsClient, topic: &str, from: u64, count: u64) {
    let all: Vec<u64> = (from..from + count).collect();
    for window in all.chunks(50) {
        for n in window {
            ws.send_json(json!({"type": "publish", "topic": topic,
                "message": {"id": format!("m{n}"), "payload": {"n": n}}}))
                .await;
        }
        for n in window {
            let ack = next_text_json(ws).await;
            assert_fields(
                &ack,
                json!({"type": "ack", "id": format!("m{n}"), "seq": n}),
            );
        }
    }
}

/// "Replay": `last_n` replays the latest N stored messages, oldest first, right after the ack and
/// before live messages; `last_n: 0` replays nothing; a repeated subscribe replays nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_replay() {
    let server = start().await;
    create_topic(&server, "orders").await;
    let mut publisher = server.ws().await;
    publish_many(&mut publisher, "orders", 1, 7).await;

    let mut a = server.ws().await;
    let ack = wscat(&mut a, SUBSCRIBE_A).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "r1", "seq": 7, "recovered": true}),
    );
    for n in 3..=7u64 {
        let ev = next_text_json(&mut a).await;
        assert_event(&ev, "orders", &json!(format!("m{n}")), json!({"n": n}), n);
    }
    publish_many(&mut publisher, "orders", 8, 1).await;
    assert_eq!(next_text_json(&mut a).await["seq"], 8);
    // Subscribing again on the same connection: one ack, no replay, still one delivery.
    let again = wscat(&mut a, SUBSCRIBE_A).await;
    assert_fields(&again, json!({"type": "ack", "request_id": "r1", "seq": 8}));
    assert_nothing_queued(&mut a).await;
    publish_many(&mut publisher, "orders", 9, 1).await;
    assert_eq!(next_text_json(&mut a).await["seq"], 9);
    assert_nothing_queued(&mut a).await;

    let mut zero = server.ws().await;
    let ack = wscat(
        &mut zero,
        r#"{"type":"subscribe","topic":"orders","client_id":"s2","last_n":0,"request_id":"r0"}"#,
    )
    .await;
    assert_fields(&ack, json!({"type": "ack", "request_id": "r0", "seq": 9}));
    assert_nothing_queued(&mut zero).await;

    let err = wscat(
        &mut zero,
        r#"{"type":"subscribe","topic":"orders","last_n":-1,"request_id":"bad"}"#,
    )
    .await;
    assert_error_frame(&err, "BAD_REQUEST", Some(json!("bad")));
}

/// "Each topic stores a ring buffer of last 100 messages": asking for more replays the last 100.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_ring_holds_the_last_100_messages() {
    let server = start().await;
    create_topic(&server, "orders").await;
    let mut publisher = server.ws().await;
    publish_many(&mut publisher, "orders", 1, 120).await;
    let mut a = server.ws().await;
    let ack = wscat(
        &mut a,
        r#"{"type":"subscribe","topic":"orders","client_id":"s1","last_n":500,"request_id":"r1"}"#,
    )
    .await;
    assert_fields(&ack, json!({"type": "ack", "seq": 120, "recovered": true}));
    for n in 21..=120u64 {
        let ev = next_text_json(&mut a).await;
        assert_fields(&ev, json!({"type": "event", "seq": n}));
    }
    assert_nothing_queued(&mut a).await;
    let (_, history) = get(&server, "/topics/orders/history?last_n=500").await;
    assert_eq!(history["messages"].as_array().unwrap().len(), 100);
    assert_eq!(history["messages"][0]["seq"], 21);
}

/// `request_id` is echoed on every answer to the frame that carried it (ack, pong, error), as a
/// string or, from lenient clients, the same integer; absent when not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed() {
    let server = start().await;
    create_topic(&server, "orders").await;
    let mut ws = server.ws().await;
    let cases = [
        (r#"{"type":"ping","request_id":"uuid-optional"}"#, "pong"),
        (
            r#"{"type":"subscribe","topic":"orders","request_id":"uuid-optional"}"#,
            "ack",
        ),
        (
            r#"{"type":"publish","topic":"orders","message":{"payload":{}},"request_id":"uuid-optional"}"#,
            "ack",
        ),
        (
            r#"{"type":"unsubscribe","topic":"orders","request_id":"uuid-optional"}"#,
            "ack",
        ),
        (
            r#"{"type":"unsubscribe","topic":"orders","request_id":"uuid-optional"}"#,
            "ack",
        ),
        (r#"{"type":"nope","request_id":"uuid-optional"}"#, "error"),
        (
            r#"{"type":"subscribe","request_id":"uuid-optional"}"#,
            "error",
        ),
        (
            r#"{"type":"subscribe","topic":"ghost","request_id":"uuid-optional"}"#,
            "error",
        ),
    ];
    for (frame, kind) in cases {
        ws.send_text(frame).await;
        // The connection is subscribed while it publishes, so its own event may come first.
        let v = loop {
            let v = next_text_json(&mut ws).await;
            if v["type"] != "event" {
                break v;
            }
        };
        assert_fields(&v, json!({"type": kind, "request_id": "uuid-optional"}));
        assert_ts(&v);
    }
    let v = wscat(&mut ws, r#"{"type":"ping","request_id":42}"#).await;
    assert_fields(&v, json!({"type": "pong", "request_id": 42}));
    let v = wscat(&mut ws, r#"{"type":"ping"}"#).await;
    assert_eq!(v["type"], "pong");
    assert!(v.get("request_id").is_none(), "{v}");
    let v = wscat(&mut ws, "{not json").await;
    assert_error_frame(&v, "BAD_REQUEST", None);
}

/// `/health` and `/stats` shapes of the README with several topics and subscribers:
/// `subscribers` counts subscriptions; `messages` counts messages since creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_stats_shapes() {
    let server = start().await;
    let (_, health) = get(&server, "/health").await;
    assert_fields(
        &health,
        json!({"status": "ok", "topics": 0, "subscribers": 0}),
    );
    assert!(health["uptime_sec"].is_u64());
    for name in ["orders", "payments"] {
        create_topic(&server, name).await;
    }
    let mut a = server.ws().await;
    a.subscribe("orders").await;
    a.subscribe("payments").await;
    let mut b = server.ws().await;
    b.subscribe("orders").await;
    let mut publisher = server.ws().await;
    publish_many(&mut publisher, "orders", 1, 3).await;
    for n in 1..=3u64 {
        assert_eq!(next_text_json(&mut a).await["seq"], n);
        assert_eq!(next_text_json(&mut b).await["seq"], n);
    }

    let (status, health) = get(&server, "/health").await;
    assert_eq!(status, 200);
    assert_fields(
        &health,
        json!({"status": "ok", "topics": 2, "subscribers": 3}),
    );
    assert!(health["uptime_sec"].is_u64());
    let (status, stats) = get(&server, "/stats").await;
    assert_eq!(status, 200);
    assert_topic_stats(&stats, &[("orders", 3, 2), ("payments", 0, 1)]);
    let (_, list) = get(&server, "/topics").await;
    let rows = list["topics"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_fields(&rows[0], json!({"name": "orders", "subscribers": 2}));
    assert_fields(&rows[1], json!({"name": "payments", "subscribers": 1}));
}

/// "Heartbeat: periodic `{"type":"info","msg":"ping"}`".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_info_ping() {
    let server = TestServer::start_with(|c| {
        c.auto_create_topics = false;
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let mut ws = server.ws().await;
    let frame = loop {
        match ws.recv_message().await {
            Some(Message::Text(t)) => break serde_json::from_str::<Value>(&t).unwrap(),
            Some(Message::Ping(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_fields(&frame, json!({"type": "info", "msg": "ping"}));
    assert_ts(&frame);
}

/// `ADDR=":9090" go run .`: the Go-style `:port` address listens on every interface. A free
/// port stands in for 9090; `AUTO_CREATE_TOPICS=false` gives the seed e topic rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_addr_environment_variable() {
    let port = common::free_port();
    let _server = Spawned::start(
        &[
            ("ADDR", format!(":{port}")),
            ("AUTO_CREATE_TOPICS", "false".to_string()),
        ],
        port,
    )
    .await;
    let (status, health) = send(curl(Method::GET, format!("http://127.0.0.1:{port}/health"))).await;
    assert_eq!(status, 200);
    assert_fields(&health, json!({"status": "ok", "topics": 0}));
    let mut ws = WsClient::connect(&format!("ws://127.0.0.1:{port}/ws")).await;
    let err = wscat(&mut ws, SUBSCRIBE_A).await;
    assert_error_frame(&err, "TOPIC_NOT_FOUND", Some(json!("r1")));
}
