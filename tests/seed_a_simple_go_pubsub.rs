//! Replays the examples of `seeds/a-simple-go-pubsub.md` ("Simple Go Pub/Sub Server") against
//! herald: browser WebSockets opened on `/ws/sub/{topic}?id=CLIENT` that are subscribed as soon as
//! they open (no ack), and `curl -X POST /pub/{topic} -d "..."` whose raw body becomes the
//! payload (PROTOCOL.md §2).

mod common;

use std::time::SystemTime;

use common::assert::{assert_fields, assert_topic_stats, assert_ts};
use common::rest::{curl, get_json, send};
use common::ws::{assert_nothing_queued, browser_ws, next_text_json};
use common::{TestServer, WsClient};
use serde_json::{json, Value};

/// `curl -X POST URL -d BODY`: without `-H`, curl labels the body as a form.
async fn curl_post_form(url: String, body: &str) -> (reqwest::StatusCode, Value) {
    send(
        curl(reqwest::Method::POST, url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_string()),
    )
    .await
}

/// Checks an event frame of PROTOCOL.md §1 and returns its message id.
fn assert_event(ev: &Value, topic: &str, payload: &Value, seq: u64) -> String {
    assert_fields(ev, json!({"type": "event", "topic": topic, "seq": seq}));
    assert_eq!(&ev["message"]["payload"], payload, "{ev}");
    let id = ev["message"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message id in {ev}"));
    assert_ts(ev);
    id.to_string()
}

/// The README's two browser clients and its curl, end to end: both sockets open subscribed
/// without an ack, the form-labelled text body is published as a JSON string, and both
/// `onmessage` handlers can `JSON.parse` the same event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_two_subscribers_receive_the_curl_text_message() {
    let server = TestServer::start().await;
    let topic = "order_events";
    // `client_${Math.floor(Math.random() * 1000)}`
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 1000;
    let client_id = format!("client_{n}");
    let mut ws = browser_ws(&server.ws_url(&format!("/ws/sub/{topic}?id={client_id}"))).await;
    let mut ws2 = browser_ws(&server.ws_url(&format!("/ws/sub/{topic}?id=second_client"))).await;
    // No ack on open: the first frame each socket sees is the answer to our own ping. The
    // round trip also guarantees the subscription is in place before the curl (the README's
    // human is slower than that; publishing immediately after open is a separate test below).
    assert_nothing_queued(&mut ws).await;
    assert_nothing_queued(&mut ws2).await;

    // curl -X POST http://localhost:8080/pub/order_events -d "New Order: ORD-12345"
    let (status, body) =
        curl_post_form(server.url("/pub/order_events"), "New Order: ORD-12345").await;
    // PROTOCOL.md §2: answers like POST /publish.
    assert_eq!(status, 200, "{body}");
    assert_fields(
        &body,
        json!({"status": "published", "topic": "order_events", "seq": 1}),
    );
    let id = body["id"].as_str().expect("string id").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "id {id:?} is a UUID");

    let payload = json!("New Order: ORD-12345");
    for sub in [&mut ws, &mut ws2] {
        let ev = next_text_json(sub).await;
        let got = assert_event(&ev, topic, &payload, 1);
        assert_eq!(got, id, "event carries the id the publish answered");
    }
}

/// The raw-body rule of PROTOCOL.md §2: a body that is valid JSON is published as that JSON,
/// anything else as a JSON string of the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_body_is_json_when_it_parses_else_a_string() {
    let server = TestServer::start().await;
    let mut ws = server.ws_path("/ws/sub/raw?id=reader").await;
    assert_nothing_queued(&mut ws).await;
    let cases: Vec<(&str, Value)> = vec![
        (
            r#"{"order_id":"ORD-1","amount":99.5}"#,
            json!({"order_id": "ORD-1", "amount": 99.5}),
        ),
        ("[1,2,3]", json!([1, 2, 3])),
        ("42", json!(42)),
        ("true", json!(true)),
        ("null", json!(null)),
        (r#""already quoted""#, json!("already quoted")),
        ("{\"a\":1}\n", json!({"a": 1})),
        ("New Order: ORD-12345", json!("New Order: ORD-12345")),
        (r#"{"a":"#, json!(r#"{"a":"#)),
        ("order=1&item=2", json!("order=1&item=2")),
        (
            "tab\tand \"quotes\" and ünïcödé",
            json!("tab\tand \"quotes\" and ünïcödé"),
        ),
        ("", json!("")),
    ];
    for (i, (body, payload)) in cases.iter().enumerate() {
        let seq = i as u64 + 1;
        let (status, reply) = curl_post_form(server.url("/pub/raw"), body).await;
        assert_eq!(status, 200, "body {body:?}: {reply}");
        assert_fields(
            &reply,
            json!({"status": "published", "topic": "raw", "seq": seq}),
        );
        let ev = next_text_json(&mut ws).await;
        let id = assert_event(&ev, "raw", payload, seq);
        assert_eq!(reply["id"], id);
    }
    // The same payloads are what the topic stored (PROTOCOL.md §3 history).
    let history: Value = get_json(&server.url("/topics/raw/history")).await;
    let stored: Vec<&Value> = history["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| &m["payload"])
        .collect();
    let want: Vec<&Value> = cases.iter().map(|(_, p)| p).collect();
    assert_eq!(stored, want);
}

/// `POST /pub/{topic}` answers like `POST /publish`: consecutive `seq`, the topic counted in
/// `/stats`, and a publish to a topic nobody listens to is still accepted (auto-create).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_answers_like_publish_and_counts_messages() {
    let server = TestServer::start().await;
    for seq in 1..=3u64 {
        let (status, body) =
            curl_post_form(server.url("/pub/order_events"), &format!("order {seq}")).await;
        assert_eq!(status, 200, "{body}");
        assert_fields(
            &body,
            json!({"status": "published", "topic": "order_events", "seq": seq}),
        );
    }
    let stats: Value = get_json(&server.url("/stats")).await;
    assert_topic_stats(&stats, &[("order_events", 3, 0)]);
    // Wrong method on the seed route: 405 with Allow (PROTOCOL.md §3).
    let resp = curl(reqwest::Method::GET, server.url("/pub/order_events"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("POST")));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}

/// A `/ws/sub` socket is a full `/ws` connection too: it can subscribe to more topics (acked),
/// and unsubscribing from its initial topic stops those events. No cross-topic leakage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_socket_accepts_ws_frames_and_topics_stay_isolated() {
    let server = TestServer::start().await;
    let mut ws = server.ws_path("/ws/sub/order_events?id=multi").await;
    let mut other = server.ws_path("/ws/sub/alerts?id=bystander").await;
    assert_nothing_queued(&mut ws).await;
    assert_nothing_queued(&mut other).await;

    let ack = ws
        .request(json!({"type": "subscribe", "topic": "alerts", "request_id": "s1"}))
        .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "request_id": "s1", "topic": "alerts", "status": "ok"}),
    );
    assert_ts(&ack);

    let (status, _) = curl_post_form(server.url("/pub/order_events"), "o1").await;
    assert_eq!(status, 200);
    let (status, _) = curl_post_form(server.url("/pub/alerts"), "a1").await;
    assert_eq!(status, 200);
    assert_event(
        &next_text_json(&mut ws).await,
        "order_events",
        &json!("o1"),
        1,
    );
    assert_event(&next_text_json(&mut ws).await, "alerts", &json!("a1"), 1);
    // The alerts-only socket got alerts, never order_events.
    assert_event(&next_text_json(&mut other).await, "alerts", &json!("a1"), 1);
    assert_nothing_queued(&mut other).await;

    let ack = ws
        .request(json!({"type": "unsubscribe", "topic": "order_events"}))
        .await;
    assert_fields(
        &ack,
        json!({"type": "ack", "topic": "order_events", "status": "ok"}),
    );
    assert!(
        ack.get("request_id").is_none(),
        "no request_id given: {ack}"
    );
    let (status, _) = curl_post_form(server.url("/pub/order_events"), "o2").await;
    assert_eq!(status, 200);
    // The publish answered, so fan-out is done: nothing may be queued for the socket.
    assert_nothing_queued(&mut ws).await;
}

/// PROTOCOL.md §2: the socket is "already subscribed to {topic} when it opens". A publish made
/// after the client saw the upgrade complete (its `onopen`) must therefore reach it. The publish
/// goes through an already-open `/ws` connection, the quickest path into the broker, so a
/// subscription that only takes effect some time after the 101 response shows up; repeated
/// because such a window is narrow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_socket_is_subscribed_as_soon_as_it_opens() {
    let server = TestServer::start().await;
    let mut publisher = server.ws().await;
    for i in 0..500 {
        let topic = format!("race-{i}");
        let mut ws = server.ws_path(&format!("/ws/sub/{topic}?id=c{i}")).await;
        let ack = publisher.publish(&topic, json!("hi")).await;
        assert_eq!(ack["seq"], 1);
        // The pong comes after whatever was queued before it: the event must come first.
        ws.send_json(json!({"type": "ping"})).await;
        let first = next_text_json(&mut ws).await;
        assert_eq!(
            first["type"], "event",
            "iteration {i}: a publish acked after the socket opened was not delivered (got {first})"
        );
        assert_event(&first, &topic, &json!("hi"), 1);
    }
}

/// Refusals happen before the upgrade (herald behaviour): an invalid topic name is HTTP 400, and
/// with auto-create off a missing topic is HTTP 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_socket_refusals_happen_before_upgrade() {
    use tokio_tungstenite::tungstenite::Error;
    let server = TestServer::start().await;
    match WsClient::try_connect(&server.ws_url("/ws/sub/bad%20topic?id=x")).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 400),
        Err(e) => panic!("expected HTTP 400, got {e}"),
        Ok(_) => panic!("invalid topic name was upgraded"),
    }
    let strict = TestServer::start_with(|c| c.auto_create_topics = false).await;
    match WsClient::try_connect(&strict.ws_url("/ws/sub/missing?id=x")).await {
        Err(Error::Http(resp)) => assert_eq!(resp.status(), 404),
        Err(e) => panic!("expected HTTP 404, got {e}"),
        Ok(_) => panic!("missing topic was upgraded with auto-create off"),
    }
    let (status, body) = curl_post_form(strict.url("/pub/missing"), "x").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "TOPIC_NOT_FOUND");
    assert!(body["error"]["message"].is_string());
}

/// The raw-body rule for a body that is valid JSON (RFC 8259) but holds an integer beyond 64
/// bits: it is still JSON, so the payload must be that object, not a string of the body. (The
/// seed's Go server and browsers parse such numbers as floats.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_body_with_a_64_bit_overflowing_integer_is_still_json() {
    let server = TestServer::start().await;
    let mut ws = server.ws_path("/ws/sub/raw?id=reader").await;
    assert_nothing_queued(&mut ws).await;
    let (status, reply) =
        curl_post_form(server.url("/pub/raw"), r#"{"big":18446744073709551616}"#).await;
    assert_eq!(status, 200, "{reply}");
    let ev = next_text_json(&mut ws).await;
    assert!(
        ev["message"]["payload"]["big"].is_number(),
        "payload should be the JSON object, got {}",
        ev["message"]["payload"]
    );
}
