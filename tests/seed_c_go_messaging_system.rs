//! Replays the examples of `seeds/c-go-messaging-system.md` ("Go Messaging System") against
//! herald: `/ws` frames that use `action` instead of `type`, `POST /publish` with a `data` payload
//! (both the README's pretty-printed body and its curl), and `GET /topics/{topic}/history`.
//!
//! Seed c's own server sent its Go `Message` struct (`{"id","topic","data","timestamp"}`) to
//! subscribers and from the history route. herald follows PROTOCOL.md instead: subscribers get
//! the event frame (`message.payload`, `ts`) and history entries are `{"id","payload","seq","ts"}`;
//! only the requests of seed c are accepted unchanged.

mod common;

use std::time::{Duration, SystemTime};

use common::{TestServer, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A request as `curl` sends it: its `User-Agent` and `Accept: */*`.
fn curl(method: Method, url: String) -> reqwest::RequestBuilder {
    common::http()
        .request(method, url)
        .header("user-agent", "curl/8.5.0")
        .header("accept", "*/*")
}

/// Sends `req` and returns the status and the JSON body.
async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status();
    (status, resp.json().await.expect("JSON body"))
}

/// `curl -X POST URL -H "Content-Type: application/json" -d 'BODY'`.
async fn curl_post_json(url: String, body: &str) -> (StatusCode, Value) {
    send(
        curl(Method::POST, url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

/// `new WebSocket(url)` in a browser: the handshake carries the page's `Origin`, a browser
/// `User-Agent` and an offer of `permessage-deflate`, which herald may decline.
async fn browser_ws(url: &str) -> WsClient {
    let mut req = url.into_client_request().unwrap();
    let headers = req.headers_mut();
    headers.insert("origin", "http://localhost:3000".parse().unwrap());
    headers.insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"
            .parse()
            .unwrap(),
    );
    headers.insert(
        "sec-websocket-extensions",
        "permessage-deflate; client_max_window_bits"
            .parse()
            .unwrap(),
    );
    let (inner, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("browser WebSocket connects");
    // tungstenite negotiates no extension, so none may be accepted.
    assert!(
        resp.headers().get("sec-websocket-extensions").is_none(),
        "server accepted an extension the client cannot speak"
    );
    WsClient { inner }
}

/// Asserts `ts` is RFC 3339 UTC with milliseconds (`2025-08-25T10:00:00.123Z`) and is "now".
fn assert_ts(frame: &Value) {
    let ts = frame["ts"]
        .as_str()
        .unwrap_or_else(|| panic!("no string ts in {frame}"));
    let b = ts.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "ts {ts:?} is not RFC 3339 UTC with milliseconds");
    let at = humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("ts {ts:?}: {e}"));
    let skew = match at.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead,
        Err(e) => e.duration(),
    };
    assert!(skew < Duration::from_secs(60), "ts {ts:?} is not now");
}

/// Asserts every field of `expected` is in `actual` with that value; nested objects are
/// compared the same way (extra fields of `actual` are extensions and allowed), except a
/// `payload`, which is the client's data and must match exactly.
fn assert_fields(actual: &Value, expected: Value) {
    fn check(root: &Value, actual: &Value, expected: &Value, path: &str) {
        for (key, want) in expected.as_object().expect("expected an object") {
            let got = &actual[key];
            let here = format!("{path}.{key}");
            if want.is_object() && key != "payload" {
                assert!(got.is_object(), "`{here}` is not an object in {root}");
                check(root, got, want, &here);
            } else {
                assert_eq!(got, want, "field `{here}` of {root}");
            }
        }
    }
    check(actual, actual, &expected, "");
}

/// The next frame `ws.onmessage` would see: a text frame holding JSON (so `JSON.parse` works).
/// WebSocket pings/pongs and heartbeat info frames are skipped.
async fn next_text_json(ws: &mut WsClient) -> Value {
    loop {
        match ws.recv_message().await {
            Some(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t).expect("text frame is JSON");
                if !(v["type"] == "info" && v["msg"] == "ping") {
                    return v;
                }
            }
            Some(Message::Ping(_)) | Some(Message::Pong(_)) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends `frame` as text and returns the next frame.
async fn request_text(ws: &mut WsClient, frame: &str) -> Value {
    ws.send_text(frame).await;
    next_text_json(ws).await
}

/// Round-trips a ping (in seed c's `action` form) and asserts nothing else arrived before the
/// `pong`: frames of one connection are answered in order.
async fn assert_nothing_queued(ws: &mut WsClient) {
    let v = request_text(ws, r#"{"action":"ping","request_id":"barrier"}"#).await;
    assert_eq!(v["type"], "pong", "expected only the pong, got {v}");
    assert_eq!(v["request_id"], "barrier");
}

fn assert_event(ev: &Value, topic: &str, id: &Value, payload: Value, seq: u64) {
    assert_fields(
        ev,
        json!({"type": "event", "topic": topic, "seq": seq,
               "message": {"id": id.clone(), "payload": payload}}),
    );
    assert_ts(ev);
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
    let (status, body) = curl_post_json(
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
    let (status, body) = curl_post_json(server.url("/publish"), publish).await;
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
    let (status, _) = curl_post_json(server.url("/publish"), publish).await;
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
        let (status, _) = curl_post_json(
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
    let (status, body) = curl_post_json(
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
    let (status, body) = curl_post_json(
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
