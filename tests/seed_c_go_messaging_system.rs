//! Replays the examples of `seeds/c-go-messaging-system.md` ("Go Messaging System") against
//! herald: `/ws` frames that use `action` instead of `type`, `POST /publish` with a `data` payload
//! (both the README's pretty-printed body and its curl), and `GET /topics/{topic}/history`.
//!
//! Seed c's own server sent its Go `Message` struct (`{"id","topic","data","timestamp"}`) to
//! subscribers and nothing else: no acks, no heartbeat frames. herald answers a subscription made
//! with `action` the same way (PROTOCOL.md §2): events in that shape (plus `seq`), no success ack
//! unless the frame carries a `request_id`, liveness by WebSocket Ping only; errors and pongs are
//! still answered. The history route keeps herald's shape, `{"id","payload","seq","ts"}`.

mod common;

use std::time::Duration;

use common::assert::{assert_fields, assert_time, assert_ts};
use common::rest::{curl, curl_json, send};
use common::ws::{assert_nothing_queued_before, browser_ws, next_text_json, request_text};
use common::{TestServer, WsClient};
use reqwest::Method;
use serde_json::{json, Value};

/// Round-trips a ping (in seed c's `action` form) and asserts nothing else arrived before the
/// `pong`: frames of one connection are answered in order.
async fn assert_nothing_queued(ws: &mut WsClient) {
    assert_nothing_queued_before(ws, r#"{"action":"ping","request_id":"barrier"}"#).await;
}

/// Sends a seed-c frame that gets no answer and proves it was served: the next thing the socket
/// reads is the pong of a ping sent after it.
async fn send_unanswered(ws: &mut WsClient, frame: &str) {
    ws.send_text(frame).await;
    assert_nothing_queued(ws).await;
}

/// Asserts an event in seed c's `Message` shape: exactly `id`, `topic`, `data`, an RFC 3339
/// `timestamp`, and herald's `seq`.
fn assert_seed_c_event(ev: &Value, topic: &str, id: &Value, data: Value, seq: u64) {
    let keys: Vec<&str> = ev
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["data", "id", "seq", "timestamp", "topic"], "{ev}");
    assert_eq!(ev["id"], *id, "{ev}");
    assert_eq!(ev["topic"], topic, "{ev}");
    assert_eq!(ev["data"], data, "{ev}");
    assert_eq!(ev["seq"], seq, "{ev}");
    assert_time(&ev["timestamp"]);
}

/// "Testing the System": the browser snippet subscribes with `action`, then the curl publish
/// reaches its `onmessage` as seed c's `Message`, with nothing before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_testing_the_system() {
    let server = TestServer::start().await;
    let mut ws = browser_ws(&server.ws_url("/ws")).await;
    // ws.send(JSON.stringify({action: 'subscribe', topic: 'notifications'}))
    send_unanswered(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;

    // curl -X POST http://localhost:8080/publish -H "Content-Type: application/json" \
    //   -d '{"topic":"notifications","data":{"message":"Hello"}}'
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic":"notifications","data":{"message":"Hello"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_fields(
        &body,
        json!({"status": "published", "topic": "notifications", "seq": 1}),
    );
    let id = body["id"].as_str().expect("string id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "server-assigned UUID");
    let ev = next_text_json(&mut ws).await;
    assert_seed_c_event(
        &ev,
        "notifications",
        &body["id"],
        json!({"message": "Hello"}),
        1,
    );

    // curl http://localhost:8080/topics/notifications/history
    let (status, history) = send(curl(
        Method::GET,
        server.url("/topics/notifications/history"),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(history["topic"], "notifications");
    let messages = history["messages"].as_array().expect("messages array");
    assert_eq!(messages.len(), 1, "{history}");
    assert_fields(
        &messages[0],
        json!({"id": body["id"].clone(), "payload": {"message": "Hello"}, "seq": 1}),
    );
    assert_ts(&messages[0]);
    assert_eq!(
        messages[0]["ts"], ev["timestamp"],
        "history keeps the event's time"
    );
}

/// The "API Endpoints" request bodies exactly as printed (indented, multi-line JSON), and the
/// `action` subscribe and unsubscribe messages shown there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_api_endpoint_examples() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let subscribe = r#"{
      "action": "subscribe",
      "topic": "notifications"
    }"#;
    send_unanswered(&mut ws, subscribe).await;

    let publish = r#"{
    "topic": "notifications",
    "data": {
      "message": "Hello World"
    }
  }"#;
    let (status, body) = curl_json(Method::POST, server.url("/publish"), publish).await;
    assert_eq!(status, 200, "{body}");
    assert_fields(
        &body,
        json!({"status": "published", "topic": "notifications", "seq": 1}),
    );
    let ev = next_text_json(&mut ws).await;
    assert_seed_c_event(
        &ev,
        "notifications",
        &body["id"],
        json!({"message": "Hello World"}),
        1,
    );

    let unsubscribe = r#"{
      "action": "unsubscribe",
      "topic": "notifications"
    }"#;
    send_unanswered(&mut ws, unsubscribe).await;
    let (status, _) = curl_json(Method::POST, server.url("/publish"), publish).await;
    assert_eq!(status, 200);
    // The publish was answered, so fan-out is done: nothing may be queued for the socket.
    assert_nothing_queued(&mut ws).await;
    // Unsubscribing again is a no-op; asked with a `request_id`, it is acked (PROTOCOL.md §1).
    let ack = request_text(
        &mut ws,
        r#"{"action":"unsubscribe","topic":"notifications","request_id":"u2"}"#,
    )
    .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "u2", "topic": "notifications", "status": "ok"}),
    );
}

/// `action` is an alias of `type` for every frame kind, and `data` of `message.payload`
/// (PROTOCOL.md §1): an `action` publish fans out to several `action` subscribers, and
/// subscribing twice still delivers each message once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn action_alias_for_publish_ping_and_multiple_subscribers() {
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut ws = server.ws().await;
        send_unanswered(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
        subs.push(ws);
    }
    // A repeated subscribe is idempotent; with a `request_id` it is acked like a `type` frame.
    let again = request_text(
        &mut subs[0],
        r#"{"action":"subscribe","topic":"notifications","request_id":"s2"}"#,
    )
    .await;
    assert_fields(
        &again,
        json!({"type": "ack", "request_id": "s2", "topic": "notifications", "status": "ok"}),
    );

    let mut publisher = server.ws().await;
    let ack = request_text(
        &mut publisher,
        r#"{"action":"publish","topic":"notifications","data":{"message":"Hello"},"request_id":"p1"}"#,
    )
    .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "p1", "topic": "notifications", "status": "ok",
               "seq": 1}),
    );
    assert_ts(&ack);
    for ws in &mut subs {
        let ev = next_text_json(ws).await;
        assert_seed_c_event(
            &ev,
            "notifications",
            &ack["id"],
            json!({"message": "Hello"}),
            1,
        );
        assert_nothing_queued(ws).await;
    }
    let pong = request_text(&mut publisher, r#"{"action":"ping","request_id":"x"}"#).await;
    assert_fields(&pong, json!({"type": "pong", "request_id": "x"}));
    assert_ts(&pong);
}

/// "Error Handling: message validation": malformed frames get a `BAD_REQUEST` error frame and the
/// connection stays usable (PROTOCOL.md §1 Errors).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_frames_are_answered_with_bad_request() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    let cases = [
        ("not json", false),
        ("[1,2]", false),
        (r#"{"topic":"notifications","request_id":"r"}"#, true),
        (
            r#"{"action":"shout","topic":"notifications","request_id":"r"}"#,
            true,
        ),
        (r#"{"action":"subscribe","request_id":"r"}"#, true),
        (
            r#"{"action":"subscribe","topic":"bad topic!","request_id":"r"}"#,
            true,
        ),
        (
            r#"{"action":"publish","topic":"notifications","request_id":"r"}"#,
            true,
        ),
    ];
    for (frame, echoes) in cases {
        let err = request_text(&mut ws, frame).await;
        assert_eq!(err["type"], "error", "{frame}: {err}");
        assert_eq!(err["error"]["code"], "BAD_REQUEST", "{frame}: {err}");
        assert!(err["error"]["message"].is_string(), "{err}");
        assert_ts(&err);
        if echoes {
            assert_eq!(err["request_id"], "r", "{frame}: {err}");
        } else {
            assert!(err.get("request_id").is_none(), "{err}");
        }
    }
    let ack = request_text(
        &mut ws,
        r#"{"action":"subscribe","topic":"notifications","request_id":"ok"}"#,
    )
    .await;
    assert_eq!(ack["type"], "ack", "connection still works: {ack}");
}

/// `GET /topics/{topic}/history` keeps messages published before anyone subscribed, oldest
/// first, honours `?last_n=`, and answers 404 / 400 as PROTOCOL.md §3 says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_oldest_first_and_honours_last_n() {
    let server = TestServer::start().await;
    for i in 1..=5 {
        let (status, _) = curl_json(
            Method::POST,
            server.url("/publish"),
            &format!(r#"{{"topic":"notifications","data":{{"message":"Hello {i}"}}}}"#),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, history) = send(curl(
        Method::GET,
        server.url("/topics/notifications/history"),
    ))
    .await;
    assert_eq!(status, 200);
    let messages = history["messages"].as_array().unwrap();
    let payloads: Vec<&Value> = messages.iter().map(|m| &m["payload"]).collect();
    let want: Vec<Value> = (1..=5)
        .map(|i| json!({"message": format!("Hello {i}")}))
        .collect();
    assert_eq!(payloads, want.iter().collect::<Vec<_>>());
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m["seq"], i as u64 + 1);
        assert!(m["id"].is_string());
        assert_ts(m);
    }

    let (status, last2) = send(curl(
        Method::GET,
        server.url("/topics/notifications/history?last_n=2"),
    ))
    .await;
    assert_eq!(status, 200);
    let seqs: Vec<&Value> = last2["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["seq"])
        .collect();
    assert_eq!(seqs, [&json!(4), &json!(5)]);

    let (status, body) = send(curl(Method::GET, server.url("/topics/nobody/history"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "TOPIC_NOT_FOUND");
    let (status, body) = send(curl(
        Method::GET,
        server.url("/topics/notifications/history?last_n=many"),
    ))
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "BAD_REQUEST");
}

/// "Client disconnection" / "Resource cleanup": a subscriber that closes its socket is removed
/// from the topic, and publishing afterwards still succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnected_subscriber_is_cleaned_up() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    send_unanswered(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
    let (_, detail) = send(curl(Method::GET, server.url("/topics/notifications"))).await;
    assert_eq!(detail["subscribers"], 1);
    ws.inner.close(None).await.expect("close handshake");
    drop(ws);
    // No reply tells the client when the server finished cleaning up, so poll (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, detail) = send(curl(Method::GET, server.url("/topics/notifications"))).await;
        if detail["subscribers"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriber still counted: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic":"notifications","data":{"message":"Hello"}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// `data` may be any JSON (seed c's `Data interface{}`); a number beyond 64 bits is valid JSON
/// (RFC 8259), which seed c's Go server accepted (as a float64). herald must not refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_data_with_a_64_bit_overflowing_integer_is_accepted() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    send_unanswered(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic":"notifications","data":{"message":"Hello","big":18446744073709551616}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ev = next_text_json(&mut ws).await;
    assert!(ev["data"]["big"].is_number(), "{ev}");
    let ack = request_text(
        &mut ws,
        r#"{"action":"publish","topic":"other","data":{"big":18446744073709551616},"request_id":"b"}"#,
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
