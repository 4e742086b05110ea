//! Graceful shutdown (PROTOCOL.md §7): queued events are flushed, then `shutting_down`, then a
//! close 1001; `run` returns `Ok(())` within the shutdown timeout, even with unresponsive clients.

mod common;

use std::time::Duration;

use common::{TestServer, WsClient};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Reads `expected` events with seq 1..=expected, then `shutting_down`, then a 1001 close, then
/// the end of the stream.
fn drain_until_close(mut ws: WsClient, expected: u64, who: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut next = 1;
        let mut shutting_down = false;
        loop {
            match ws.recv_message().await {
                Some(Message::Text(t)) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("event") => {
                            assert!(!shutting_down, "{who}: event after shutting_down: {t:.200}");
                            assert_eq!(v["seq"], next, "{who}: {t:.200}");
                            next += 1;
                        }
                        Some("info") if v["msg"] == "shutting_down" => {
                            assert!(!shutting_down, "{who}: shutting_down twice");
                            assert_eq!(
                                next - 1,
                                expected,
                                "{who}: shutting_down before every queued event"
                            );
                            assert!(v["ts"].is_string(), "{v}");
                            shutting_down = true;
                        }
                        _ => panic!("{who}: unexpected frame {t:.200}"),
                    }
                }
                Some(Message::Close(frame)) => {
                    assert!(shutting_down, "{who}: close before shutting_down");
                    let frame = frame.unwrap_or_else(|| panic!("{who}: close without a code"));
                    assert_eq!(frame.code, CloseCode::Away, "{who}: {frame:?}");
                    break;
                }
                Some(Message::Ping(_) | Message::Pong(_)) => {}
                other => panic!("{who}: expected events, shutting_down, close; got {other:?}"),
            }
        }
        // Nothing after the close.
        match ws.recv_message().await {
            None | Some(Message::Close(_)) => {}
            other => panic!("{who}: frame after the close: {other:?}"),
        }
    })
}

/// Awaits the server task, bounded, and checks it returned `Ok(())`.
async fn assert_stops(handle: JoinHandle<std::io::Result<()>>, within: Duration) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(within, handle)
        .await
        .unwrap_or_else(|_| panic!("server did not stop within {within:?}"))
        .expect("server task panicked")
        .expect("run returned an error");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_queued_events_then_shutting_down_then_close_1001() {
    const MESSAGES: u64 = 50;
    let mut server = TestServer::start_with(|c| c.shutdown_timeout = Duration::from_secs(5)).await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut ws = server.ws().await;
        ws.subscribe("s").await;
        subs.push(ws);
    }
    let mut publisher = server.ws().await;
    for n in 1..=MESSAGES {
        let ack = publisher.publish("s", json!({"n": n})).await;
        assert_eq!(ack["seq"], n);
    }
    // The subscribers have read nothing yet: every event is still on its way.
    let handle = server.trigger_shutdown();
    let mut readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, ws)| drain_until_close(ws, MESSAGES, format!("subscriber {i}")))
        .collect();
    readers.push(drain_until_close(publisher, 0, "publisher".into()));
    for r in readers {
        tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .expect("reader finished")
            .expect("reader checks");
    }
    assert_stops(handle, Duration::from_secs(10)).await;

    // The listener is gone.
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting connections after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_backlog_is_flushed_before_the_close() {
    // Far more than socket buffers hold, so most of it is still in the server's queue when
    // shutdown starts.
    const MESSAGES: u64 = 150;
    let mut server = TestServer::start_with(|c| {
        c.subscriber_queue_size = 10_000;
        // The whole backlog (≈ 9.6 MB) fits the queue: no slow-consumer cut.
        c.subscriber_queue_bytes = 64 << 20;
        c.shutdown_timeout = Duration::from_secs(10);
    })
    .await;
    let mut sub = server.ws().await;
    sub.subscribe("backlog").await;
    let mut publisher = server.ws().await;
    let payload = "z".repeat(64 * 1024);
    for n in 1..=MESSAGES {
        let ack = publisher.publish("backlog", json!(payload)).await;
        assert_eq!(ack["seq"], n);
    }
    let handle = server.trigger_shutdown();
    let reader = drain_until_close(sub, MESSAGES, "subscriber".into());
    tokio::time::timeout(Duration::from_secs(15), reader)
        .await
        .expect("reader finished")
        .expect("reader checks");
    assert_stops(handle, Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_no_connections_returns_promptly() {
    let server = TestServer::start().await;
    // One REST round trip proves the server is up (and leaves no WebSocket behind).
    let resp = common::http()
        .get(server.url("/livez"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let started = Instant::now();
    server.shutdown().await.expect("run returned an error");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_client_does_not_hold_shutdown_past_the_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut server = TestServer::start_with(|c| {
        c.subscriber_queue_size = 10_000;
        // The whole backlog (≈ 9.6 MB) fits the queue: no slow-consumer cut.
        c.subscriber_queue_bytes = 64 << 20;
        c.shutdown_timeout = TIMEOUT;
    })
    .await;
    // Subscribes, then never reads again: its socket fills up and its queue cannot drain.
    let mut stuck = server.ws().await;
    stuck.subscribe("stuck").await;
    let mut publisher = server.ws().await;
    let payload = "w".repeat(64 * 1024);
    for _ in 0..150 {
        publisher.publish("stuck", json!(payload)).await;
    }
    let handle = server.trigger_shutdown();
    // PROTOCOL.md §7: drain for up to the timeout; the server allows itself a small margin.
    let took = assert_stops(handle, TIMEOUT + Duration::from_secs(4)).await;
    assert!(
        took >= Duration::from_millis(500),
        "gave up draining too early: {took:?}"
    );
    drop(stuck);
}
