//! Liveness: heartbeat info frames and WebSocket Pings, the idle timeout (1001 "idle timeout"),
//! and what counts as activity (application pings, Pong frames).

mod common;

use std::time::Duration;

use common::rest::get_json;
use common::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const HEARTBEAT: Duration = Duration::from_millis(300);
const IDLE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_sends_an_info_ping_and_a_websocket_ping() {
    let server = TestServer::start_with(|c| c.heartbeat_interval = HEARTBEAT).await;
    let mut ws = server.ws().await;
    let started = Instant::now();
    let (mut infos, mut pings) = (0, 0);
    tokio::time::timeout(Duration::from_secs(5), async {
        while infos < 2 || pings < 2 {
            match ws.recv_message().await {
                Some(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    assert_eq!(v["type"], "info", "only heartbeats expected: {v}");
                    assert_eq!(v["msg"], "ping", "{v}");
                    assert!(v["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')), "{v}");
                    assert!(v.get("request_id").is_none(), "{v}");
                    infos += 1;
                }
                Some(Message::Ping(_)) => pings += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("within 5 s: {infos} info pings and {pings} WebSocket pings"));
    // Two heartbeats take at least one interval after the first.
    assert!(
        started.elapsed() >= HEARTBEAT,
        "heartbeats too early: {:?}",
        started.elapsed()
    );
    // The heartbeat does not disturb request/response.
    ws.send_json(json!({"type": "ping", "request_id": "hb"}))
        .await;
    let pong = ws.recv_json_no_heartbeat().await;
    assert_eq!(pong["type"], "pong", "{pong}");
    assert_eq!(pong["request_id"], "hb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_closed_after_the_idle_timeout() {
    // The heartbeat is far away: a client's automatic Pong would count as activity.
    let server = TestServer::start_with(|c| {
        c.idle_timeout = IDLE;
        c.heartbeat_interval = Duration::from_secs(60);
    })
    .await;
    let mut ws = server.ws().await;
    ws.subscribe("idle").await;
    let last_activity = Instant::now();
    let close = ws.recv_close().await.expect("a close frame");
    let waited = last_activity.elapsed();
    assert_eq!(close.code, CloseCode::Away, "{close:?}");
    assert_eq!(close.reason.as_str(), "idle timeout");
    assert!(
        waited >= IDLE - Duration::from_millis(100) && waited < IDLE * 5,
        "closed after {waited:?}, idle timeout is {IDLE:?}"
    );
    // Its subscription is gone.
    let info: Value = get_json(&server.url("/topics/idle")).await;
    assert_eq!(info["subscribers"], 0, "{info}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_pings_keep_a_connection_alive_past_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.idle_timeout = IDLE;
        c.heartbeat_interval = Duration::from_secs(60);
    })
    .await;
    let mut ws = server.ws().await;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < IDLE * 2 {
        let rid = format!("keep-{i}");
        ws.send_json(json!({"type": "ping", "request_id": rid}))
            .await;
        let pong = ws.recv_json_no_heartbeat().await;
        assert_eq!(
            pong["type"],
            "pong",
            "after {:?}: {pong}",
            started.elapsed()
        );
        assert_eq!(pong["request_id"], rid.as_str());
        i += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Once it falls silent, the idle timeout applies again.
    let quiet = Instant::now();
    let close = ws.recv_close().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Away, "{close:?}");
    // The last ping went out one 300 ms sleep before `quiet`.
    let waited = quiet.elapsed();
    assert!(
        waited >= IDLE / 2 && waited < IDLE * 5,
        "closed {waited:?} after the last pong's sleep, idle timeout is {IDLE:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_frames_count_as_activity() {
    // The client sends no frame of its own; tungstenite answers each server Ping with a Pong
    // while it reads.
    let server = TestServer::start_with(|c| {
        c.idle_timeout = IDLE;
        c.heartbeat_interval = HEARTBEAT;
    })
    .await;
    let mut ws = server.ws().await;
    let deadline = Instant::now() + IDLE * 2;
    let mut pings = 0;
    loop {
        match tokio::time::timeout_at(deadline, ws.recv_message()).await {
            Err(_) => break,
            Ok(Some(Message::Ping(_))) => pings += 1,
            Ok(Some(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["msg"], "ping", "{v}");
            }
            Ok(other) => panic!("connection answered Pongs yet got {other:?}"),
        }
    }
    assert!(pings >= 3, "only {pings} pings in {:?}", IDLE * 2);
    ws.send_json(json!({"type": "ping", "request_id": "still"}))
        .await;
    let pong = ws.recv_json_no_heartbeat().await;
    assert_eq!(pong["request_id"], "still", "{pong}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_ping_gets_a_pong_echoing_the_request_id() {
    let server = TestServer::start().await;
    let mut ws: WsClient = server.ws().await;
    let cases = [
        (
            json!({"type": "ping", "request_id": "r-1"}),
            Some(json!("r-1")),
        ),
        (json!({"type": "ping", "request_id": 42}), Some(json!(42))),
        (
            json!({"action": "ping", "request_id": "alias"}),
            Some(json!("alias")),
        ),
        (
            json!({"type": "ping", "topic": "ignored", "extra": [1]}),
            None,
        ),
        (json!({"type": "ping"}), None),
    ];
    for (frame, rid) in cases {
        ws.send_json(frame.clone()).await;
        let pong = ws.recv_json_no_heartbeat().await;
        assert_eq!(pong["type"], "pong", "{frame}: {pong}");
        assert!(pong["ts"].is_string(), "{pong}");
        match rid {
            Some(rid) => assert_eq!(pong["request_id"], rid, "{frame}: {pong}"),
            None => assert!(pong.get("request_id").is_none(), "{frame}: {pong}"),
        }
    }
}
