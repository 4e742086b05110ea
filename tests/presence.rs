//! Presence on one node (issue 21) over real sockets: identities across tabs, join and leave once
//! per identity, coalescing, a burst counted exactly, notices bounded by the watcher's queue,
//! REST and WebSocket answers agreeing, the errors, and the `presence` capability.

mod common;

use std::time::Duration;

use common::jwt::{rest, rights, token, tokens_on, ws_ok, Cred};
use common::rest::{get_json, get_text};
use common::{TestServer, WsClient};
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

/// Subscribes with `extra` fields merged into the frame; returns the reply.
async fn subscribe(ws: &mut WsClient, topic: &str, extra: Value) -> Value {
    let mut frame = json!({"type": "subscribe", "topic": topic, "request_id": "s"});
    if let (Some(f), Some(e)) = (frame.as_object_mut(), extra.as_object()) {
        f.extend(e.clone());
    }
    ws.request(frame).await
}

/// A connection named `id` (`/ws?id=`) subscribed to `topic`.
async fn member(server: &TestServer, topic: &str, id: impl Into<String>) -> WsClient {
    let id = id.into();
    let mut ws = server.ws_path(&format!("/ws?id={id}")).await;
    let ack = subscribe(&mut ws, topic, json!({})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ws
}

/// A connection named `id` subscribed to `topic` with `presence_events`.
async fn watcher(server: &TestServer, topic: &str, id: &str) -> WsClient {
    let mut ws = server.ws_path(&format!("/ws?id={id}")).await;
    let ack = subscribe(&mut ws, topic, json!({"presence_events": true})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ws
}

/// The next `join` / `leave` notice: (msg, client_id), checked for its shape.
async fn notice(ws: &mut WsClient, topic: &str) -> (String, String) {
    let v = ws.recv_json_no_heartbeat().await;
    assert_eq!(v["type"], "info", "{v}");
    assert_eq!(v["topic"], topic, "{v}");
    assert!(v["ts"].is_string(), "{v}");
    let msg = v["msg"].as_str().unwrap_or_default().to_string();
    assert!(msg == "join" || msg == "leave", "{v}");
    (msg, v["client_id"].as_str().unwrap_or_default().to_string())
}

/// The WebSocket presence answer for `topic`.
async fn ws_presence(ws: &mut WsClient, topic: &str) -> Value {
    ws.request(json!({"type": "presence", "topic": topic, "request_id": "p1"}))
        .await
}

/// `clients` as (client_id, connections) pairs.
fn clients(answer: &Value) -> Vec<(String, u64)> {
    answer["clients"]
        .as_array()
        .unwrap_or_else(|| panic!("no clients: {answer}"))
        .iter()
        .map(|c| {
            let id = c["client_id"].as_str().unwrap_or_default().to_string();
            (id, c["connections"].as_u64().unwrap_or(0))
        })
        .collect()
}

/// `herald_presence_notices_total{result}` from `/metrics`.
async fn notices(server: &TestServer, result: &str) -> u64 {
    let text = get_text(&server.url("/metrics")).await;
    let label = format!("herald_presence_notices_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(label.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {label} in /metrics"))
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(id, n)| (id.to_string(), *n)).collect()
}

#[tokio::test]
async fn tabs_are_one_identity_and_each_change_is_told_once() {
    let server = TestServer::start().await;
    let mut watch = watcher(&server, "chat", "watch").await;
    let alice1 = member(&server, "chat", "alice").await;
    assert_eq!(
        notice(&mut watch, "chat").await,
        ("join".into(), "alice".into())
    );
    // A second tab of alice is not a join; bob names himself in the frame.
    let mut alice2 = member(&server, "chat", "alice").await;
    let mut bob = server.ws().await;
    let ack = subscribe(&mut bob, "chat", json!({"client_id": "bob"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        notice(&mut watch, "chat").await,
        ("join".into(), "bob".into())
    );
    // A connection without a name counts as its connection id.
    let mut anon = server.ws().await;
    subscribe(&mut anon, "chat", json!({})).await;
    let (msg, anon_id) = notice(&mut watch, "chat").await;
    assert!(msg == "join" && anon_id.starts_with("conn-"), "{anon_id}");

    let answer = ws_presence(&mut bob, "chat").await;
    assert_eq!(answer["type"], "presence", "{answer}");
    assert_eq!(answer["topic"], "chat", "{answer}");
    assert_eq!(answer["request_id"], "p1", "{answer}");
    assert!(answer["ts"].is_string(), "{answer}");
    let mut want = vec![
        ("alice", 2),
        ("bob", 1),
        (anon_id.as_str(), 1),
        ("watch", 1),
    ];
    want.sort();
    assert_eq!(clients(&answer), pairs(&want));
    assert_eq!(answer["count"], 4);
    let rest = get_json(&server.url("/topics/chat/presence")).await;
    assert_eq!(rest["topic"], "chat", "{rest}");
    assert_eq!(
        rest["clients"], answer["clients"],
        "REST and WebSocket disagree"
    );
    assert_eq!(rest["count"], answer["count"]);

    // One of alice's tabs unsubscribing is no leave; her last one closing is.
    let un = alice2
        .request(json!({"type": "unsubscribe", "topic": "chat"}))
        .await;
    assert_eq!(un["type"], "ack", "{un}");
    drop(alice1);
    assert_eq!(
        notice(&mut watch, "chat").await,
        ("leave".into(), "alice".into())
    );
    // bob's unsubscribe is a leave too.
    bob.request(json!({"type": "unsubscribe", "topic": "chat"}))
        .await;
    assert_eq!(
        notice(&mut watch, "chat").await,
        ("leave".into(), "bob".into())
    );
    watch.expect_silence(Duration::from_millis(300)).await;
    let rest = get_json(&server.url("/topics/chat/presence")).await;
    assert_eq!(
        clients(&rest),
        pairs(&[(anon_id.as_str(), 1), ("watch", 1)])
    );
    assert_eq!(notices(&server, "sent").await, 5);
}

#[tokio::test]
async fn a_join_and_leave_inside_the_window_cancel_out() {
    // A long window, so the join and the leave (milliseconds apart) fall in one.
    let server =
        TestServer::start_with(|c| c.presence.coalesce = Duration::from_millis(1_000)).await;
    let mut watch = watcher(&server, "room", "watch").await;
    let blink = member(&server, "room", "blink").await;
    drop(blink);
    watch.expect_silence(Duration::from_millis(1_500)).await;
    // A lasting join is still told, once the window closes.
    let _stay = member(&server, "room", "stay").await;
    assert_eq!(
        notice(&mut watch, "room").await,
        ("join".into(), "stay".into())
    );
}

#[tokio::test]
async fn a_burst_is_counted_exactly_and_each_identity_told_once() {
    const N: usize = 200;
    let server = TestServer::start_with(|c| c.subscriber_queue_size = 1_000).await;
    let mut watch = watcher(&server, "burst", "watch").await;
    let members = join_all((0..N).map(|i| member(&server, "burst", format!("m{i:03}")))).await;
    // Every second member opens a second tab: no notice for those.
    let tabs = join_all(
        (0..N)
            .step_by(2)
            .map(|i| member(&server, "burst", format!("m{i:03}"))),
    )
    .await;
    let mut joined = Vec::new();
    for _ in 0..N {
        let (msg, id) = notice(&mut watch, "burst").await;
        assert_eq!(msg, "join");
        joined.push(id);
    }
    joined.sort();
    joined.dedup();
    assert_eq!(joined.len(), N, "an identity was told twice");
    watch.expect_silence(Duration::from_millis(300)).await;
    let rest = get_json(&server.url("/topics/burst/presence")).await;
    assert_eq!(rest["count"], N + 1, "{}", rest["count"]);
    let two = clients(&rest).iter().filter(|(_, n)| *n == 2).count();
    assert_eq!(two, N / 2);
    drop(members);
    drop(tabs);
    let mut left = 0;
    while left < N {
        let (msg, _) = notice(&mut watch, "burst").await;
        assert_eq!(msg, "leave");
        left += 1;
    }
    watch.expect_silence(Duration::from_millis(300)).await;
    let rest = get_json(&server.url("/topics/burst/presence")).await;
    assert_eq!(clients(&rest), pairs(&[("watch", 1)]));
}

#[tokio::test]
async fn notices_never_overflow_a_watchers_queue() {
    let server = TestServer::start_with(|c| c.subscriber_queue_size = 16).await;
    // A watcher that reads nothing while 60 identities join.
    let mut watch = watcher(&server, "busy", "watch").await;
    let members = join_all((0..60).map(|i| member(&server, "busy", format!("b{i}")))).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let (sent, dropped) = loop {
        let counts = (
            notices(&server, "sent").await,
            notices(&server, "dropped").await,
        );
        if counts.0 + counts.1 >= 60 || tokio::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(sent < 16, "{sent} notices queued past the queue's room");
    assert_eq!(sent + dropped, 60);
    // Still connected and answering: notices made no slow consumer of it.
    for _ in 0..sent {
        let (msg, _) = notice(&mut watch, "busy").await;
        assert_eq!(msg, "join");
    }
    let pong = watch
        .request(json!({"type": "ping", "request_id": "alive"}))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
    drop(members);
}

#[tokio::test]
async fn bad_presence_requests_are_refused_clearly() {
    let server = TestServer::start_with(|c| c.presence.max_clients = 2).await;
    let mut ws = server.ws().await;
    let missing = ws_presence(&mut ws, "nowhere").await;
    assert_eq!(missing["error"]["code"], "TOPIC_NOT_FOUND", "{missing}");
    assert_eq!(missing["request_id"], "p1", "{missing}");
    let (status, body) = rest(
        &server,
        Method::GET,
        "/topics/nowhere/presence",
        Cred::None,
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("TOPIC_NOT_FOUND"))
    );
    let on_pattern = subscribe(&mut ws, "chat.*", json!({"presence_events": true})).await;
    assert_eq!(on_pattern["error"]["code"], "BAD_REQUEST", "{on_pattern}");
    let query_pattern = ws_presence(&mut ws, "chat.*").await;
    assert_eq!(
        query_pattern["error"]["code"], "BAD_REQUEST",
        "{query_pattern}"
    );
    let not_bool = subscribe(&mut ws, "chat", json!({"presence_events": "yes"})).await;
    assert_eq!(not_bool["error"]["code"], "BAD_REQUEST", "{not_bool}");
    let long = subscribe(&mut ws, "chat", json!({"client_id": "x".repeat(257)})).await;
    assert_eq!(long["error"]["code"], "BAD_REQUEST", "{long}");
    // MAX_PRESENCE_CLIENTS bounds the list, not the count.
    let _keep = join_all(["c", "a", "b"].map(|id| member(&server, "capped", id))).await;
    let answer = ws_presence(&mut ws, "capped").await;
    assert_eq!(clients(&answer), pairs(&[("a", 1), ("b", 1)]));
    assert_eq!(answer["count"], 3);
}

#[tokio::test]
async fn presence_needs_the_presence_capability_and_counts_the_tokens_sub() {
    let server = TestServer::start_with(tokens_on).await;
    let plain = token("u1", 300, rights(&["chat"], &[], &[]));
    let mut seer_rights = rights(&["chat"], &[], &[]);
    seer_rights["presence"] = json!(["chat"]);
    let seer = token("u2", 300, seer_rights);

    let mut ws = ws_ok(&server, "/ws", Cred::Query(&plain)).await;
    let refused = subscribe(&mut ws, "chat", json!({"presence_events": true})).await;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    // A token's `sub` is the identity, whatever the frame calls itself.
    let ack = subscribe(&mut ws, "chat", json!({"client_id": "impostor"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let refused = ws_presence(&mut ws, "chat").await;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    let (status, _) = rest(
        &server,
        Method::GET,
        "/topics/chat/presence",
        Cred::Bearer(&plain),
        None,
    )
    .await;
    assert_eq!(status, 403);

    let mut eyes = ws_ok(&server, "/ws", Cred::Query(&seer)).await;
    let ack = subscribe(&mut eyes, "chat", json!({"presence_events": true})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let answer = ws_presence(&mut eyes, "chat").await;
    assert_eq!(clients(&answer), pairs(&[("u1", 1), ("u2", 1)]));
    let (status, body) = rest(
        &server,
        Method::GET,
        "/topics/chat/presence",
        Cred::Bearer(&seer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["clients"], answer["clients"]);
    drop(ws);
    assert_eq!(
        notice(&mut eyes, "chat").await,
        ("leave".into(), "u1".into())
    );
}

#[tokio::test]
async fn subscribing_again_with_presence_events_turns_notices_on() {
    let server = TestServer::start().await;
    let mut late = member(&server, "again", "late").await;
    let ack = subscribe(&mut late, "again", json!({"presence_events": true})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let _x = member(&server, "again", "x").await;
    assert_eq!(
        notice(&mut late, "again").await,
        ("join".into(), "x".into())
    );
    let rest = get_json(&server.url("/topics/again/presence")).await;
    assert_eq!(
        clients(&rest),
        pairs(&[("late", 1), ("x", 1)]),
        "no second count"
    );
}
