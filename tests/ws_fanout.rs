//! Fan-out over real sockets: every subscriber gets every message once, in `seq` order, and
//! nothing leaks across topics; concurrent publishers never lose or duplicate a message.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_subscribers_get_every_message_in_order_and_topics_are_isolated() {
    let server = TestServer::start().await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut ws = server.ws().await;
        let ack = ws.subscribe("orders").await;
        assert_eq!(ack["status"], "ok");
        subs.push(ws);
    }
    let mut other = server.ws().await;
    other.subscribe("invoices").await;

    let mut publisher = server.ws().await;
    for i in 0..50 {
        let ack = publisher.publish("orders", json!({"n": i})).await;
        assert_eq!(ack["seq"], i + 1);
    }
    for ws in &mut subs {
        for i in 0..50u64 {
            let ev = ws.recv_json_no_heartbeat().await;
            assert_eq!(ev["type"], "event", "{ev}");
            assert_eq!(ev["topic"], "orders");
            assert_eq!(ev["seq"], i + 1);
            assert_eq!(ev["message"]["payload"], json!({"n": i}));
            assert!(ev["message"]["id"].as_str().is_some_and(|s| !s.is_empty()));
        }
    }
    other.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_publishers_deliver_8000_in_seq_order_to_20_subscribers() {
    const PUBLISHERS: usize = 8;
    const PER_PUBLISHER: usize = 1000;
    const TOTAL: u64 = (PUBLISHERS * PER_PUBLISHER) as u64;
    // Big enough that the test measures delivery, not the slow-consumer policy.
    let server = TestServer::start_with(|c| c.subscriber_queue_size = 10_000).await;
    let mut readers = Vec::new();
    for _ in 0..20 {
        let mut ws = server.ws().await;
        ws.subscribe("hot").await;
        readers.push(tokio::spawn(async move {
            let mut seqs = Vec::with_capacity(TOTAL as usize);
            let mut ids = std::collections::HashSet::new();
            while (seqs.len() as u64) < TOTAL {
                let ev = ws.recv_json_no_heartbeat().await;
                assert_eq!(ev["type"], "event", "{ev}");
                seqs.push(ev["seq"].as_u64().unwrap());
                let p = &ev["message"]["payload"];
                assert!(ids.insert((p["p"].as_u64().unwrap(), p["i"].as_u64().unwrap())));
            }
            seqs
        }));
    }
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let mut ws = server.ws().await;
        publishers.push(tokio::spawn(async move {
            for i in 0..PER_PUBLISHER {
                ws.send_json(json!({"type": "publish", "topic": "hot",
                    "message": {"payload": {"p": p, "i": i}}}))
                    .await;
            }
            let mut acks = 0;
            while acks < PER_PUBLISHER {
                let v: Value = ws.recv_json_no_heartbeat().await;
                assert_eq!(v["type"], "ack", "{v}");
                acks += 1;
            }
        }));
    }
    for p in publishers {
        tokio::time::timeout(Duration::from_secs(60), p)
            .await
            .expect("publishers finished (no deadlock)")
            .unwrap();
    }
    for r in readers {
        let seqs = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("subscriber got everything")
            .unwrap();
        let want: Vec<u64> = (1..=TOTAL).collect();
        assert_eq!(seqs, want);
    }
}
