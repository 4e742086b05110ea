//! Presence in cluster mode (issue 21) with real processes: `nats-server -js` and three `herald`
//! nodes. Every node answers the same set within a second of a change; a user on two nodes is
//! one identity, joining once and leaving only when their last connection anywhere goes; watchers
//! on every node are told; a SIGKILLed node's identities leave within `PRESENCE_TTL_SECS`.
mod common;

use std::time::{Duration, Instant};

use common::procs::{
    remove_unless_panicking, require, spawn_herald, spawn_single_nats, temp_dir, wait_ready, Proc,
};
use common::{free_port, http, WsClient};
use serde_json::{json, Value};

/// `PRESENCE_TTL_SECS` of the test nodes.
const TTL_SECS: u64 = 3;

/// A subscriber named `id` on the node at `port`, with `presence_events` when `watch`.
async fn join(port: u16, topic: &str, id: &str, watch: bool) -> WsClient {
    let mut ws = WsClient::connect(&format!("ws://127.0.0.1:{port}/ws?id={id}")).await;
    let ack = ws
        .request(
            json!({"type": "subscribe", "topic": topic, "presence_events": watch,
            "request_id": "s"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ws
}

/// The node's REST presence answer, as sorted (client_id, connections) pairs.
async fn presence(port: u16, topic: &str) -> Vec<(String, u64)> {
    let url = format!("http://127.0.0.1:{port}/topics/{topic}/presence");
    let body: Value = http()
        .get(url)
        .send()
        .await
        .expect("presence")
        .json()
        .await
        .expect("JSON");
    let list: Vec<(String, u64)> = body["clients"]
        .as_array()
        .unwrap_or_else(|| panic!("no clients: {body}"))
        .iter()
        .map(|c| {
            let id = c["client_id"].as_str().unwrap_or_default().to_string();
            (id, c["connections"].as_u64().unwrap_or(0))
        })
        .collect();
    assert_eq!(body["count"].as_u64(), Some(list.len() as u64), "{body}");
    list
}

/// Waits until every node in `ports` answers `want`; fails after `within`.
async fn agree(ports: &[u16], topic: &str, want: &[(&str, u64)], within: Duration) {
    let want: Vec<(String, u64)> = want.iter().map(|(id, n)| (id.to_string(), *n)).collect();
    let deadline = Instant::now() + within;
    loop {
        let mut answers = Vec::new();
        for &port in ports {
            answers.push(presence(port, topic).await);
        }
        if answers.iter().all(|a| *a == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes {ports:?} did not all answer {want:?} within {within:?}: {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next `join` / `leave` notice as (msg, client_id).
async fn notice(ws: &mut WsClient) -> (String, String) {
    let v = ws.recv_json_no_heartbeat().await;
    assert_eq!(v["type"], "info", "{v}");
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (field("msg"), field("client_id"))
}

fn told(msg: &str, id: &str) -> (String, String) {
    (msg.to_string(), id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_one_set_across_nodes_and_a_killed_nodes_clients_leave() {
    let nats_bin = require("nats-server");
    let dir = temp_dir("herald-cluster-presence");
    let nats_port = free_port();
    let mut nats = spawn_single_nats(&nats_bin, &dir, nats_port);
    nats.wait_listening(nats_port).await;
    let url = format!("nats://127.0.0.1:{nats_port}");
    let env = [
        ("PRESENCE_TTL_SECS".to_string(), TTL_SECS.to_string()),
        ("PRESENCE_COALESCE_MS".to_string(), "50".to_string()),
        ("DRAIN_DURATION_SECS".to_string(), "0".to_string()),
    ];
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes: Vec<Proc> = ports
        .iter()
        .enumerate()
        .map(|(i, &port)| spawn_herald(&dir, port, i, &url, &env))
        .collect();
    for port in ports {
        wait_ready(port).await;
    }
    let second = Duration::from_secs(1);

    // Watchers on nodes 0 and 2; each hears the other join (the first one made the topic).
    let mut w0 = join(ports[0], "room", "w0", true).await;
    agree(&ports, "room", &[("w0", 1)], second).await;
    let mut w2 = join(ports[2], "room", "w2", true).await;
    assert_eq!(notice(&mut w0).await, told("join", "w2"));
    agree(&ports, "room", &[("w0", 1), ("w2", 1)], second).await;

    // alice on node 0 and node 1 is one identity: one join, on both watchers' nodes.
    let alice0 = join(ports[0], "room", "alice", false).await;
    let _alice1 = join(ports[1], "room", "alice", false).await;
    let _bob1 = join(ports[1], "room", "bob", false).await;
    let all = [("alice", 2), ("bob", 1), ("w0", 1), ("w2", 1)];
    agree(&ports, "room", &all, second).await;
    for w in [&mut w0, &mut w2] {
        let mut got = vec![notice(w).await, notice(w).await];
        got.sort();
        assert_eq!(got, vec![told("join", "alice"), told("join", "bob")]);
        w.expect_silence(Duration::from_millis(300)).await;
    }

    // Her tab on node 0 closing is no leave: she is still on node 1.
    drop(alice0);
    let left_one = [("alice", 1), ("bob", 1), ("w0", 1), ("w2", 1)];
    agree(&ports, "room", &left_one, second).await;
    w0.expect_silence(Duration::from_millis(300)).await;

    // Node 1 dies without a word: alice and bob leave everywhere within PRESENCE_TTL_SECS.
    let killed = Instant::now();
    nodes[1].kill();
    let alive = [ports[0], ports[2]];
    let within = Duration::from_secs(TTL_SECS) + Duration::from_millis(1_500);
    agree(&alive, "room", &[("w0", 1), ("w2", 1)], within).await;
    assert!(
        // Its last beat came up to a second (the beat interval) before the kill.
        killed.elapsed() >= Duration::from_secs(TTL_SECS) - Duration::from_millis(1_200),
        "left after {:?}, before PRESENCE_TTL_SECS: not by expiry",
        killed.elapsed()
    );
    for w in [&mut w0, &mut w2] {
        let mut got = vec![notice(w).await, notice(w).await];
        got.sort();
        assert_eq!(got, vec![told("leave", "alice"), told("leave", "bob")]);
    }

    // A node shutting down says so: its clients leave at once, not after the TTL.
    let _carol = join(ports[2], "room", "carol", false).await;
    assert_eq!(notice(&mut w0).await, told("join", "carol"));
    nodes[2].terminate();
    agree(
        &[ports[0]],
        "room",
        &[("w0", 1)],
        Duration::from_millis(1_500),
    )
    .await;
    let mut got = vec![notice(&mut w0).await, notice(&mut w0).await];
    got.sort();
    assert_eq!(got, vec![told("leave", "carol"), told("leave", "w2")]);

    for node in &mut nodes {
        node.kill();
    }
    nats.kill();
    remove_unless_panicking(&dir);
}
