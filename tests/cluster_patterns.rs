//! Wildcard subscriptions in cluster mode (issue 20) with real processes: `nats-server -js` and
//! two `herald` nodes. Every node holds every topic, so a pattern subscriber on one node gets
//! events published on another, for topics that existed before and ones created later, once per
//! event even when its exact and pattern subscriptions overlap, and hears of a deletion.
mod common;

use std::time::Duration;

use common::procs::{
    remove_unless_panicking, require, spawn_herald, spawn_single_nats, temp_dir, wait_ready,
};
use common::{free_port, http, WsClient};
use serde_json::{json, Value};

async fn publish(port: u16, topic: &str, payload: Value) -> u64 {
    let r = http()
        .post(format!("http://127.0.0.1:{port}/publish"))
        .json(&json!({"topic": topic, "data": payload}))
        .send()
        .await
        .expect("publish");
    assert_eq!(r.status(), 200, "publish to {topic}");
    let body: Value = r.json().await.expect("JSON");
    body["seq"].as_u64().expect("seq")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_on_one_node_hears_topics_published_on_another() {
    let nats_bin = require("nats-server");
    let dir = temp_dir("herald-cluster-patterns");
    let nats_port = free_port();
    let mut nats = spawn_single_nats(&nats_bin, &dir, nats_port);
    nats.wait_listening(nats_port).await;
    let url = format!("nats://127.0.0.1:{nats_port}");
    let ports = [free_port(), free_port()];
    let mut nodes: Vec<_> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| spawn_herald(&dir, port, i, &url, &[]))
        .collect();
    for port in ports {
        wait_ready(port).await;
    }
    // A topic that exists before the pattern, made on node 0.
    let before = publish(ports[0], "fleet.1.pos", json!("old")).await;
    let mut ws = WsClient::connect(&format!("ws://127.0.0.1:{}/ws", ports[1])).await;
    ws.subscribe("fleet.1.pos").await;
    let ack = ws
        .request(json!({"type": "subscribe", "topic": "fleet.*.pos", "request_id": "p"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert!(ack.get("seq").is_none(), "{ack}");
    // Existing topic (also subscribed by name: once), then one created by this publish.
    let seq1 = publish(ports[0], "fleet.1.pos", json!(1)).await;
    assert!(seq1 > before);
    publish(ports[0], "fleet.2.pos", json!(2)).await;
    publish(ports[0], "fleet.2.speed", json!("not matched")).await;
    for (topic, payload) in [("fleet.1.pos", 1), ("fleet.2.pos", 2)] {
        let ev = ws.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(
            (ev["topic"].as_str(), ev["message"]["payload"].as_i64()),
            (Some(topic), Some(payload))
        );
    }
    ws.expect_silence(Duration::from_millis(300)).await;
    let deleted = http()
        .delete(format!("http://127.0.0.1:{}/topics/fleet.2.pos", ports[0]))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 200);
    let info = ws.recv_json_no_heartbeat().await;
    assert_eq!(
        (info["msg"].as_str(), info["topic"].as_str()),
        (Some("topic_deleted"), Some("fleet.2.pos")),
        "{info}"
    );
    publish(ports[0], "fleet.2.pos", json!(3)).await;
    let ev = ws.recv_json_no_heartbeat().await;
    assert_eq!(
        (ev["topic"].as_str(), ev["message"]["payload"].as_i64()),
        (Some("fleet.2.pos"), Some(3)),
        "{ev}"
    );
    for node in &mut nodes {
        node.kill();
    }
    nats.kill();
    remove_unless_panicking(&dir);
}
