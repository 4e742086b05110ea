//! Replays the examples of `seeds/c-go-messaging-system.md` ("Go Messaging System") against
//! herald: `/ws` frames that use `action` instead of `type`, `POST /publish` with a `data` payload
//! (both the README's pretty-printed body and its curl), and `GET /topics/{topic}/history`.
//!
//! Seed c's own server sent its Go `Message` struct (`{"id","topic","data","timestamp"}`) to
//! subscribers and from the history route. herald follows PROTOCOL.md instead: subscribers get
//! the event frame (`message.payload`, `ts`) and history entries are `{"id","payload","seq","ts"}`;
//! only the requests of seed c are accepted unchanged.

mod common;

use std::time::Duration;

use common::assert::{assert_event, assert_fields, assert_ts};
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

/// "Testing the System": the browser snippet subscribes with `action`, then the curl publish
/// reaches its `onmessage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_testing_the_system() {
    let server = TestServer::start().await;
    let mut ws = browser_ws(&server.ws_url("/ws")).await;
    // ws.send(JSON.stringify({action: 'subscribe', topic: 'notifications'}))
    let ack = request_text(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "notifications", "status": "ok"}),
    );
    assert!(ack.get("request_id").is_none(), "{ack}");
    assert_ts(&ack);

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
    assert_event(
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
    assert_eq!(messages[0]["ts"], ev["ts"], "history keeps the event's ts");
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
    let ack = request_text(&mut ws, subscribe).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "notifications", "status": "ok"}),
    );

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
    assert_event(
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
    let ack = request_text(&mut ws, unsubscribe).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "notifications", "status": "ok"}),
    );
    assert_ts(&ack);
    let (status, _) = curl_json(Method::POST, server.url("/publish"), publish).await;
    assert_eq!(status, 200);
    // The publish was answered, so fan-out is done: nothing may be queued for the socket.
    assert_nothing_queued(&mut ws).await;
    // Unsubscribing again is an acked no-op (PROTOCOL.md §1).
    let ack = request_text(&mut ws, unsubscribe).await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "notifications", "status": "ok"}),
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
        let ack = request_text(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
        assert_eq!(ack["type"], "ack");
        subs.push(ws);
    }
    // A repeated subscribe is idempotent.
    let again = request_text(
        &mut subs[0],
        r#"{"action":"subscribe","topic":"notifications"}"#,
    )
    .await;
    assert_fields(
        &again,
        json!({"type": "ack", "topic": "notifications", "status": "ok"}),
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
        assert_event(
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
    let ack = request_text(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
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
    request_text(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
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
    request_text(&mut ws, r#"{"action":"subscribe","topic":"notifications"}"#).await;
    let (status, body) = curl_json(
        Method::POST,
        server.url("/publish"),
        r#"{"topic":"notifications","data":{"message":"Hello","big":18446744073709551616}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ev = next_text_json(&mut ws).await;
    assert!(ev["message"]["payload"]["big"].is_number(), "{ev}");
    let ack = request_text(
        &mut ws,
        r#"{"action":"publish","topic":"other","data":{"big":18446744073709551616}}"#,
    )
    .await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
