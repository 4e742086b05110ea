//! Wildcard subscriptions (issue 20) over real sockets: the grammar and its errors, matching,
//! one delivery per connection however many of its subscriptions match, topics created and
//! deleted under a pattern, the limits and counts, and `sub` rights that must cover a pattern.

mod common;

use std::time::Duration;

use common::jwt::{rights, token, tokens_on, ws_ok, Cred};
use common::rest::{get_json, metric};
use common::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The next frame that is not a heartbeat, as the text the server sent.
async fn next_text(ws: &mut WsClient) -> String {
    loop {
        match ws.recv_message().await {
            Some(Message::Text(t)) if !t.contains(r#""msg":"ping""#) => return t.to_string(),
            Some(Message::Close(c)) => panic!("closed: {c:?}"),
            None => panic!("connection ended"),
            Some(_) => {}
        }
    }
}

async fn next(ws: &mut WsClient) -> Value {
    serde_json::from_str(&next_text(ws).await).expect("JSON")
}

/// Sends `frame` with request id `rid` and returns the answer, asserted to echo `rid`.
async fn ask(ws: &mut WsClient, mut frame: Value, rid: &str) -> Value {
    frame["request_id"] = rid.into();
    let reply = ws.request(frame).await;
    assert_eq!(reply["request_id"], rid, "{reply}");
    reply
}

async fn sub(ws: &mut WsClient, topic: &str) -> Value {
    ask(ws, json!({"type": "subscribe", "topic": topic}), "s").await
}

async fn unsub(ws: &mut WsClient, topic: &str) -> Value {
    ask(ws, json!({"type": "unsubscribe", "topic": topic}), "u").await
}

fn assert_code(reply: &Value, code: &str, what: &str) {
    assert_eq!(reply["type"], "error", "{what}: {reply}");
    assert_eq!(reply["error"]["code"], code, "{what}: {reply}");
}

/// A pattern ack: the pattern as `topic`, and no `seq` or `epoch` (it is live only).
fn assert_pattern_ack(ack: &Value, pattern: &str) {
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(ack["topic"], pattern, "{ack}");
    assert!(
        ack.get("seq").is_none() && ack.get("epoch").is_none(),
        "{ack}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_patterns_publishing_to_a_pattern_and_replay_are_bad_requests() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    for bad in ["*x", "a.>.b", "a..*", "orders.>.", ">x", "a b.*"] {
        let reply = sub(&mut ws, bad).await;
        assert_code(&reply, "BAD_REQUEST", bad);
        let reply = unsub(&mut ws, bad).await;
        assert_code(&reply, "BAD_REQUEST", bad);
    }
    let reply = ask(
        &mut ws,
        json!({"type": "publish", "topic": "orders.*", "message": {"payload": 1}}),
        "p",
    )
    .await;
    assert_code(&reply, "BAD_REQUEST", "publish to a pattern");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("pattern"));
    for replay in [json!({"last_n": 5}), json!({"since_seq": 0})] {
        let mut frame = json!({"type": "subscribe", "topic": "orders.>"});
        frame
            .as_object_mut()
            .unwrap()
            .extend(replay.as_object().unwrap().clone());
        let reply = ask(&mut ws, frame, "r").await;
        assert_code(&reply, "BAD_REQUEST", &replay.to_string());
        assert!(
            reply["error"]["message"].as_str().unwrap().contains("live"),
            "{reply}"
        );
    }
    let resp = common::rest::http()
        .post(server.url("/publish"))
        .json(&json!({"topic": "orders.>", "data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // Names without wildcards keep today's rules.
    let ack = sub(&mut ws, "a..b").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack.get("seq").is_some(), "{ack}");
    assert_eq!(
        get_json(&server.url("/stats")).await["pattern_subscriptions"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_match_by_token_and_deliver_the_exact_subscribers_bytes() {
    let server = TestServer::start().await;
    let (mut star, mut rest, mut all, mut exact) = (
        server.ws().await,
        server.ws().await,
        server.ws().await,
        server.ws().await,
    );
    assert_pattern_ack(&sub(&mut star, "orders.*").await, "orders.*");
    assert_pattern_ack(&sub(&mut rest, "orders.>").await, "orders.>");
    assert_pattern_ack(&sub(&mut all, ">").await, ">");
    exact.subscribe("orders.eu").await;
    let mut publisher = server.ws().await;
    publisher.publish("orders.eu", json!(1)).await;
    let want = next_text(&mut exact).await;
    for (who, ws) in [
        ("orders.*", &mut star),
        ("orders.>", &mut rest),
        (">", &mut all),
    ] {
        assert_eq!(next_text(ws).await, want, "{who} got other bytes");
    }
    publisher.publish("orders.eu.x", json!(2)).await;
    publisher.publish("orders", json!(3)).await;
    publisher.publish("invoices.eu", json!(4)).await;
    for (ws, topics) in [
        (&mut rest, vec!["orders.eu.x"]),
        (&mut all, vec!["orders.eu.x", "orders", "invoices.eu"]),
    ] {
        for topic in topics {
            let ev = next(ws).await;
            assert_eq!(
                (ev["type"].as_str(), ev["topic"].as_str()),
                (Some("event"), Some(topic))
            );
        }
    }
    star.expect_silence(Duration::from_millis(200)).await;
    rest.expect_silence(Duration::from_millis(10)).await;
    all.expect_silence(Duration::from_millis(10)).await;
    // Exact subscriber counts are unchanged by patterns; patterns are counted apart.
    let stats = get_json(&server.url("/stats")).await;
    assert_eq!(stats["topics"]["orders.eu"]["subscribers"], 1, "{stats}");
    assert_eq!(stats["pattern_subscriptions"], 3, "{stats}");
    let metrics = server.url("/metrics");
    assert_eq!(metric(&metrics, "herald_pattern_subscriptions").await, "3");
    drop(star);
    for _ in 0..100 {
        if get_json(&server.url("/stats")).await["pattern_subscriptions"] == 2 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed connection's pattern subscription was not ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_gets_each_event_once_however_many_subscriptions_match() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    ws.subscribe("orders.eu").await;
    for pattern in ["orders.*", "orders.>", ">", "*.eu"] {
        assert_pattern_ack(&sub(&mut ws, pattern).await, pattern);
    }
    // Idempotent: a repeated pattern subscribe is acked and changes nothing.
    assert_pattern_ack(&sub(&mut ws, "orders.*").await, "orders.*");
    let mut publisher = server.ws().await;
    // Unsubscribing one reason at a time: delivery stays exactly once until the last goes.
    for (round, drop_next) in ["orders.eu", "orders.*", "orders.>", "*.eu", ">"]
        .into_iter()
        .enumerate()
    {
        let seq = publisher.publish("orders.eu", json!(round)).await["seq"].clone();
        let ev = next(&mut ws).await;
        assert_eq!(
            (ev["type"].clone(), ev["seq"].clone()),
            (json!("event"), seq)
        );
        ws.expect_silence(Duration::from_millis(150)).await;
        let ack = unsub(&mut ws, drop_next).await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }
    publisher.publish("orders.eu", json!("nobody")).await;
    ws.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        get_json(&server.url("/stats")).await["pattern_subscriptions"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_created_later_match_and_a_deleted_one_leaves_the_pattern_subscribed() {
    let server = TestServer::start().await;
    let mut ws = server.ws().await;
    assert_pattern_ack(&sub(&mut ws, "dev.*.temp").await, "dev.*.temp");
    let http = common::rest::http();
    let created = http
        .post(server.url("/topics"))
        .json(&json!({"name": "dev.7.temp"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mut publisher = server.ws().await;
    publisher.publish("dev.7.temp", json!(20)).await;
    publisher.publish("dev.8.temp", json!(21)).await; // created by this publish
    for topic in ["dev.7.temp", "dev.8.temp"] {
        let ev = next(&mut ws).await;
        assert_eq!(ev["topic"], topic, "{ev}");
    }
    let deleted = http
        .delete(server.url("/topics/dev.7.temp"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let info = next(&mut ws).await;
    assert_eq!(
        (
            info["type"].as_str(),
            info["msg"].as_str(),
            info["topic"].as_str()
        ),
        (Some("info"), Some("topic_deleted"), Some("dev.7.temp")),
        "{info}"
    );
    // Still subscribed: the name made again is matched again.
    publisher.publish("dev.7.temp", json!(22)).await;
    let ev = next(&mut ws).await;
    assert_eq!(
        (ev["topic"].as_str(), ev["seq"].as_u64()),
        (Some("dev.7.temp"), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscriptions_are_bounded_per_server_and_per_connection() {
    let server = TestServer::start_with(|c| {
        c.max_pattern_subscriptions = 2;
        c.max_subscriptions_per_connection = 2;
    })
    .await;
    let mut a = server.ws().await;
    a.subscribe("x").await;
    assert_pattern_ack(&sub(&mut a, "a.*").await, "a.*");
    assert_code(
        &sub(&mut a, "b.*").await,
        "LIMIT_EXCEEDED",
        "per connection",
    );
    assert_code(
        &sub(&mut a, "y").await,
        "LIMIT_EXCEEDED",
        "exact past the cap",
    );
    let mut b = server.ws().await;
    assert_pattern_ack(&sub(&mut b, "b.*").await, "b.*");
    let refused = sub(&mut b, "c.*").await;
    assert_code(&refused, "LIMIT_EXCEEDED", "server-wide");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("MAX_PATTERN_SUBSCRIPTIONS"));
    // Repeating one held is still fine at the limit; freeing one makes room.
    assert_pattern_ack(&sub(&mut b, "b.*").await, "b.*");
    assert_eq!(unsub(&mut a, "a.*").await["type"], "ack");
    assert_pattern_ack(&sub(&mut b, "c.*").await, "c.*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_needs_one_sub_right_covering_it_whole() {
    let server = TestServer::start_with(tokens_on).await;
    let t = token("u42", 3600, rights(&["user.42.>", "news.*"], &[], &[]));
    let mut ws = ws_ok(&server, "/ws", Cred::Bearer(&t)).await;
    for allowed in ["user.42.*", "user.42.>", "user.42.a.*", "news.*"] {
        assert_pattern_ack(&sub(&mut ws, allowed).await, allowed);
    }
    for refused in [">", "user.*", "user.*.inbox", "news.>", "*.*"] {
        assert_code(&sub(&mut ws, refused).await, "FORBIDDEN", refused);
    }
    let anonymous = server.ws().await;
    let mut anonymous = anonymous;
    assert_code(
        &sub(&mut anonymous, "news.*").await,
        "UNAUTHORIZED",
        "anonymous",
    );
}
