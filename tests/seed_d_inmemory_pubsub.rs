//! Replays the examples of `seeds/d-inmemory-pubsub.md` ("In-Memory Pub/Sub System") against
//! herald: its Subscribe / Publish / Receive WebSocket frames (sent as the exact text printed),
//! `last_n` replay from the per-topic ring (`RING_BUFFER_SIZE`), bounded queues that disconnect a
//! slow consumer with `SLOW_CONSUMER` (`SUBSCRIBER_QUEUE_SIZE`), heartbeats, graceful shutdown,
//! `/stats` and `/health`, and `API_KEY` / `X-API-Key` authentication, including a binary started
//! the README's way with environment variables.

mod common;

use std::time::Duration;

use common::assert::{assert_fields, assert_refused_401, assert_topic_stats, assert_ts};
use common::rest::send;
use common::spawned::Spawned;
use common::ws::{assert_nothing_queued, next_text_json, request_text};
use common::{TestServer, WsClient};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// `GET url`: the status and JSON body.
async fn get(url: String) -> (StatusCode, Value) {
    send(common::http().get(url)).await
}

/// Subscribe, Publish and Receive from "WebSocket Example", sent as the exact text printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_websocket_example() {
    let server = TestServer::start().await;
    let mut subscriber = server.ws().await;
    let ack = request_text(
        &mut subscriber,
        r#"{ "type": "subscribe", "topic": "orders", "client_id": "ui" }"#,
    )
    .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "orders", "status": "ok", "seq": 0}),
    );
    assert!(ack["epoch"].is_string(), "{ack}");
    assert_ts(&ack);

    let mut publisher = server.ws().await;
    let publish = r#"{
  "type": "publish",
  "topic": "orders",
  "message": { "id": "m1", "payload": {"order_id": "123"} }
}"#;
    let ack = request_text(&mut publisher, publish).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "orders", "status": "ok", "id": "m1", "seq": 1}),
    );
    assert_ts(&ack);

    // Receive: {"type":"event","topic":"orders","message":{"id":"m1","payload":{"order_id":"123"}}}
    let event = next_text_json(&mut subscriber).await;
    assert_fields(
        &event,
        json!({"type": "event", "topic": "orders",
               "message": {"id": "m1", "payload": {"order_id": "123"}}}),
    );
    assert_eq!(event["seq"], 1, "extension seq");
    assert_ts(&event);
    // The publisher is not subscribed: it gets its ack only.
    assert_nothing_queued(&mut publisher).await;
}

/// "Replay Support (`last_n`)": ack first, then the latest N stored messages oldest first, then
/// live messages with no gap and no duplicate (PROTOCOL.md §1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_replays_latest_messages_then_live() {
    let server = TestServer::start().await;
    let mut publisher = server.ws().await;
    for i in 1..=10 {
        publisher.publish("orders", json!({"order_id": i})).await;
    }
    let mut ws = server.ws().await;
    let ack = request_text(
        &mut ws,
        r#"{ "type": "subscribe", "topic": "orders", "client_id": "ui", "last_n": 3 }"#,
    )
    .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "orders", "status": "ok", "seq": 10, "recovered": true}),
    );
    for i in 8..=10u64 {
        let ev = next_text_json(&mut ws).await;
        assert_fields(&ev, json!({"type": "event", "topic": "orders", "seq": i}));
        assert_eq!(ev["message"]["payload"], json!({"order_id": i}));
        assert_ts(&ev);
    }
    publisher.publish("orders", json!({"order_id": 11})).await;
    let ev = next_text_json(&mut ws).await;
    assert_fields(&ev, json!({"type": "event", "seq": 11}));
    assert_nothing_queued(&mut ws).await;
}

/// `RING_BUFFER_SIZE` bounds what `last_n` can replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_is_capped_by_ring_buffer_size() {
    let server = TestServer::start_with(|c| c.ring_buffer_size = 5).await;
    let mut publisher = server.ws().await;
    for i in 1..=8 {
        publisher.publish("orders", json!(i)).await;
    }
    let mut ws = server.ws().await;
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "orders", "last_n": 50}))
        .await;
    assert_fields(&ack, json!({"type": "ack", "seq": 8}));
    for i in 4..=8u64 {
        let ev = next_text_json(&mut ws).await;
        assert_fields(&ev, json!({"type": "event", "seq": i}));
    }
    assert_nothing_queued(&mut ws).await;
}

/// "Bounded Backpressure Queues": a subscriber that stops reading overflows its queue and is
/// disconnected with a `SLOW_CONSUMER` error and close 1008, while the publisher carries on
/// unhindered. With the `disconnect` policy nothing is skipped before that: the events it got
/// are exactly 1..k.
///
/// The error is sent "best effort" (PROTOCOL.md §1) into a socket the client is not reading, so
/// the client resumes reading right after the flood; herald waits about a second for a stalled
/// socket to take the error and the close before dropping it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_with_slow_consumer_error() {
    // SUBSCRIBER_QUEUE_SIZE keeps its README default of 100.
    let server = TestServer::start().await;
    let mut slow = server.ws().await;
    slow.subscribe("orders").await;
    let mut publisher = server.ws().await;
    let filler = "x".repeat(32 * 1024);
    // 400 x 32 KiB = 12.5 MiB: more than the socket buffers (a few MiB) plus 100 queued frames.
    let published = 400u64;
    for _ in 0..published {
        let ack = publisher
            .request(json!({"type": "publish", "topic": "orders",
                "message": {"payload": {"pad": filler}}}))
            .await;
        assert_eq!(ack["type"], "ack", "the publisher is never refused: {ack}");
    }

    let mut expected_seq = 1u64;
    let mut saw_error = false;
    let close = loop {
        match slow.recv_message().await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert!(
                    !saw_error,
                    "nothing may follow the SLOW_CONSUMER error: {v}"
                );
                if v["type"] == "event" {
                    assert_eq!(
                        v["seq"], expected_seq,
                        "no event skipped before the disconnect"
                    );
                    expected_seq += 1;
                } else {
                    assert_fields(&v, json!({"type": "error"}));
                    assert_eq!(v["error"]["code"], "SLOW_CONSUMER", "{v}");
                    assert!(v["error"]["message"].is_string());
                    assert_ts(&v);
                    saw_error = true;
                }
            }
            Some(Message::Close(frame)) => break frame,
            Some(_) => {}
            // Best effort: on a busy machine the client may resume reading only after the
            // server gave up on the stalled socket; then the connection just ends.
            None => break None,
        }
    };
    match close {
        Some(close) => {
            assert!(saw_error, "no SLOW_CONSUMER error before the close");
            assert_eq!(close.code, CloseCode::Policy, "close code 1008");
        }
        None => {
            // Without the frames, the server's own count shows it was the slow-consumer policy.
            let (status, stats) = send(common::http().get(server.url("/stats"))).await;
            assert_eq!(status, 200);
            assert_eq!(stats["slow_consumer_disconnects"], 1, "{stats}");
        }
    }
    assert!(
        expected_seq - 1 < published,
        "the slow subscriber cannot have received everything"
    );
    // The publisher was not affected.
    let ack = publisher.publish("orders", json!({"after": true})).await;
    assert_eq!(ack["seq"], published + 1);
}

/// "Heartbeats": the server sends `{"type":"info","msg":"ping"}` (and, per PROTOCOL.md
/// Liveness, a WebSocket Ping) every heartbeat interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_arrive_periodically() {
    let server =
        TestServer::start_with(|c| c.heartbeat_interval = Duration::from_millis(200)).await;
    let mut ws = server.ws().await;
    let (mut infos, mut pings) = (0, 0);
    while infos < 2 || pings < 2 {
        match ws.recv_message().await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_fields(&v, json!({"type": "info", "msg": "ping"}));
                assert_ts(&v);
                infos += 1;
            }
            Some(Message::Ping(_)) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// "Graceful Shutdown": queued events are still delivered, then `shutting_down`, then a clean
/// close (1001); no new connections are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_drains_then_closes() {
    let mut server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe("orders").await;
    let mut publisher = server.ws().await;
    for i in 1..=3 {
        publisher.publish("orders", json!({"order_id": i})).await;
    }
    let addr = server.addr;
    let done = server.trigger_shutdown();
    for i in 1..=3u64 {
        let ev = next_text_json(&mut ws).await;
        assert_fields(&ev, json!({"type": "event", "seq": i}));
    }
    let info = next_text_json(&mut ws).await;
    assert_fields(&info, json!({"type": "info", "msg": "shutting_down"}));
    assert_ts(&info);
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away);
    drop(ws);
    drop(publisher);
    let result = tokio::time::timeout(Duration::from_secs(15), done)
        .await
        .expect("server stopped")
        .expect("server task");
    assert!(result.is_ok(), "run returned {result:?}");
    assert!(
        WsClient::try_connect(&format!("ws://{addr}/ws"))
            .await
            .is_err(),
        "no new connections after shutdown"
    );
}

/// "Metrics & Health Endpoints": `/stats` and `/health` reflect topics, messages and
/// subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_and_health() {
    let server = TestServer::start().await;
    let mut a = server.ws().await;
    a.subscribe("orders").await;
    a.subscribe("payments").await;
    let mut b = server.ws().await;
    b.subscribe("orders").await;
    for _ in 0..2 {
        b.publish("orders", json!({"order_id": "123"})).await;
    }
    let (status, stats) = get(server.url("/stats")).await;
    assert_eq!(status, 200);
    assert_topic_stats(&stats, &[("orders", 2, 2), ("payments", 0, 1)]);
    let (status, health) = get(server.url("/health")).await;
    assert_eq!(status, 200);
    assert_fields(
        &health,
        json!({"status": "ok", "topics": 2, "subscribers": 3}),
    );
    assert!(health["uptime_sec"].is_u64());
}

/// "Optional Authentication": with `API_KEY=mysecret` every request must carry
/// `X-API-Key: mysecret`; herald also takes `Authorization: Bearer` and `?api_key=`
/// (PROTOCOL.md §4), and the probes need no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_when_set() {
    let server = TestServer::start_with(|c| c.api_key = Some("mysecret".into())).await;
    let http = common::http();
    let (status, body) = send(http.get(server.url("/topics"))).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert!(body["error"]["message"].is_string());
    let (status, _) = send(http.get(server.url("/stats")).header("x-api-key", "wrong")).await;
    assert_eq!(status, 401);
    let (status, body) = send(
        http.get(server.url("/topics"))
            .header("x-api-key", "mysecret"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = send(
        http.get(server.url("/health"))
            .header("authorization", "Bearer mysecret"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(http.get(server.url("/stats?api_key=mysecret"))).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        http.post(server.url("/topics"))
            .header("x-api-key", "mysecret")
            .header("content-type", "application/json")
            .body(r#"{"name":"orders"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for probe in ["/livez", "/readyz"] {
        let resp = http.get(server.url(probe)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{probe} needs no key");
    }

    let url = server.ws_url("/ws");
    assert_refused_401(WsClient::try_connect_with(&url, &[]).await, "no key");
    assert_refused_401(
        WsClient::try_connect_with(&url, &[("x-api-key", "nope")]).await,
        "wrong X-API-Key",
    );
    let mut ws = WsClient::try_connect_with(&url, &[("x-api-key", "mysecret")])
        .await
        .expect("upgrade with X-API-Key");
    let ack = request_text(
        &mut ws,
        r#"{ "type": "subscribe", "topic": "orders", "client_id": "ui" }"#,
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut browser = server.ws_path("/ws?api_key=mysecret").await;
    let ack = browser.publish("orders", json!({"order_id": "123"})).await;
    assert_eq!(ack["seq"], 1);
    let ev = next_text_json(&mut ws).await;
    assert_fields(&ev, json!({"type": "event", "seq": 1}));
}

/// `export API_KEY=mysecret` then `go run .` (and the Configuration table's `ADDR` and
/// `RING_BUFFER_SIZE`), with the real binary reading its environment. A free loopback address
/// stands in for `:8080`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_environment_configuration() {
    let port = common::free_port();
    let server = Spawned::start(
        &[
            ("API_KEY", "mysecret".to_string()),
            ("ADDR", format!("127.0.0.1:{port}")),
            ("RING_BUFFER_SIZE", "3".to_string()),
            ("SUBSCRIBER_QUEUE_SIZE", "100".to_string()),
        ],
        port,
    )
    .await;
    let http = common::http();
    let (status, body) = send(http.get(server.url("/health"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let ws_url = format!("ws://127.0.0.1:{port}/ws");
    assert_refused_401(WsClient::try_connect_with(&ws_url, &[]).await, "no key");
    let mut ws = WsClient::try_connect_with(&ws_url, &[("x-api-key", "mysecret")])
        .await
        .expect("upgrade with X-API-Key");
    for i in 1..=5 {
        ws.publish("orders", json!({"order_id": i})).await;
    }
    let (status, history) = send(
        http.get(server.url("/topics/orders/history"))
            .header("x-api-key", "mysecret"),
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let seqs: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["seq"])
        .collect();
    assert_eq!(
        seqs,
        [&json!(3), &json!(4), &json!(5)],
        "RING_BUFFER_SIZE=3"
    );
}
