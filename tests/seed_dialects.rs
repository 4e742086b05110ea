//! Seed dialects on the way out (PROTOCOL.md §2): seed a and seed c clients read every frame as a
//! published message, so their connections get events in their seed's shape and no JSON frame
//! that is not one (heartbeat, `topic_deleted`, `shutting_down`): liveness by WebSocket Ping,
//! reasons in close frames. Canonical subscriptions, even on the same connection, are unchanged.

mod common;

use std::time::Duration;

use common::assert::{assert_event, assert_time};
use common::rest::http;
use common::{TestServer, WsClient};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const HEARTBEAT: Duration = Duration::from_millis(300);

/// `POST /publish`; returns the answer.
async fn publish_rest(server: &TestServer, topic: &str, data: Value) -> Value {
    let resp = http()
        .post(server.url("/publish"))
        .json(&json!({"topic": topic, "data": data}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// The next message, `None` once the stream ends.
async fn next(ws: &mut WsClient) -> Option<Message> {
    ws.inner.next().await.and_then(Result::ok)
}

/// Reads for `dur`: every text frame (parsed) and how many WebSocket Pings arrived.
async fn read_for(ws: &mut WsClient, dur: Duration) -> (Vec<Value>, usize) {
    let deadline = Instant::now() + dur;
    let (mut texts, mut pings) = (Vec::new(), 0);
    loop {
        match tokio::time::timeout_at(deadline, next(ws)).await {
            Err(_) => return (texts, pings),
            Ok(Some(Message::Text(t))) => texts.push(serde_json::from_str(&t).expect("JSON")),
            Ok(Some(Message::Ping(_))) => pings += 1,
            Ok(Some(other)) => panic!("unexpected {other:?}"),
            Ok(None) => panic!("closed while reading"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_a_socket_gets_pings_and_events_only() {
    let server = TestServer::start_with(|c| c.heartbeat_interval = HEARTBEAT).await;
    let mut ws = WsClient::connect(&server.ws_url("/ws/sub/order_events?id=client_1")).await;
    // Four heartbeats' worth: WebSocket Pings, and not one JSON `info` frame.
    let (texts, pings) = read_for(&mut ws, HEARTBEAT * 4).await;
    assert!(
        texts.is_empty(),
        "text frames on a seed-a socket: {texts:?}"
    );
    assert!(pings >= 2, "only {pings} WebSocket pings");

    let published = publish_rest(&server, "order_events", json!("New Order: ORD-12345")).await;
    let (texts, _) = read_for(&mut ws, HEARTBEAT * 2).await;
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_event(
        &texts[0],
        "order_events",
        &published["id"],
        json!("New Order: ORD-12345"),
        1,
    );

    // Deleting the topic sends no `topic_deleted` frame to it; the subscription just ends.
    let deleted = http()
        .delete(server.url("/topics/order_events"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let (texts, _) = read_for(&mut ws, HEARTBEAT * 2).await;
    assert!(texts.is_empty(), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_a_socket_learns_of_shutdown_from_the_close_frame_alone() {
    let mut server = TestServer::start().await;
    let mut ws = WsClient::connect(&server.ws_url("/ws/sub/order_events")).await;
    let mut canonical = server.ws().await;
    canonical.subscribe("order_events").await;
    let stopped = server.trigger_shutdown();
    let mut texts = Vec::new();
    let close = loop {
        match next(&mut ws).await {
            Some(Message::Text(t)) => texts.push(t.to_string()),
            Some(Message::Close(frame)) => break frame.expect("a close frame with a reason"),
            Some(_) => {}
            None => panic!("no close frame"),
        }
    };
    assert!(texts.is_empty(), "seed a got {texts:?}");
    assert_eq!(close.code, CloseCode::Away);
    assert_eq!(close.reason.as_str(), "server shutting down");
    // A canonical client of the same server is still told in JSON.
    let info = canonical.recv_json_no_heartbeat().await;
    assert_eq!(info["msg"], "shutting_down", "{info}");
    drop((ws, canonical));
    let _ = tokio::time::timeout(Duration::from_secs(30), stopped).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_c_connection_gets_messages_in_its_shape_and_no_info_frames() {
    let server = TestServer::start_with(|c| c.heartbeat_interval = HEARTBEAT).await;
    for i in 1..=3 {
        publish_rest(
            &server,
            "notifications",
            json!({"message": format!("old {i}")}),
        )
        .await;
    }
    let mut ws = server.ws().await;
    // Replay in seed c's shape too, and no ack (no `request_id`).
    ws.send_text(r#"{"action":"subscribe","topic":"notifications","last_n":2}"#)
        .await;
    // The same connection, a canonical subscription: herald's frames, ack included.
    ws.send_text(r#"{"type":"subscribe","topic":"alerts"}"#)
        .await;
    // Frames are served in order: once the pong is back, both subscriptions are in place.
    ws.send_text(r#"{"type":"ping","request_id":"barrier"}"#)
        .await;
    let mut texts = Vec::new();
    loop {
        match next(&mut ws).await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("JSON");
                if v["type"] == "pong" {
                    break;
                }
                texts.push(v);
            }
            Some(Message::Ping(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let live = publish_rest(&server, "notifications", json!({"message": "live"})).await;
    let alert = publish_rest(&server, "alerts", json!({"level": 3})).await;
    let (more, pings) = read_for(&mut ws, HEARTBEAT * 4).await;
    texts.extend(more);
    assert!(pings >= 2, "only {pings} WebSocket pings");
    let shapes: Vec<String> = texts
        .iter()
        .map(|v| match v["type"].as_str() {
            Some(kind) => format!("{kind} {}", v["topic"]),
            None => format!("message {} {}", v["topic"], v["data"]["message"]),
        })
        .collect();
    assert_eq!(
        shapes,
        [
            r#"message "notifications" "old 2""#,
            r#"message "notifications" "old 3""#,
            r#"ack "alerts""#,
            r#"message "notifications" "live""#,
            r#"event "alerts""#,
        ],
        "{texts:#?}"
    );
    for (v, seq) in texts
        .iter()
        .filter(|v| v.get("type").is_none())
        .zip([2, 3, 4])
    {
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["data", "id", "seq", "timestamp", "topic"], "{v}");
        assert_eq!(v["seq"], seq, "{v}");
        assert_time(&v["timestamp"]);
    }
    assert_eq!(texts[3]["id"], live["id"]);
    assert_event(&texts[4], "alerts", &alert["id"], json!({"level": 3}), 1);
}
