//! A highly available backplane (PROTOCOL.md §8, issue 26) with real processes: three clustered
//! `nats-server -js` on loopback (routes between them, one store directory each) and two herald
//! nodes with `NATS_REPLICAS=3` and `NATS_URL` naming all three servers. Losing the server that
//! leads herald's stream, or restarting every server in turn, must lose nothing acknowledged, and
//! publishing must go on within a bounded time. Needs the Debian package `nats-server`.
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::assert::assert_acked_once_in_order;
use common::procs::{
    remove_unless_panicking, require, spawn_herald, spawn_single_nats, temp_dir, wait_ready, Proc,
    SETTLE,
};
use common::rest::create_topic;
use common::{free_port, http, WsClient};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// The topic every test publishes to.
const TOPIC: &str = "ha";
/// Longest a publish may take: herald answers within its 3 s NATS call timeout, or it hangs.
const PUBLISH_BOUND: Duration = Duration::from_secs(8);
/// Longest gap in acknowledged publishes after the leader is killed (an election, the herald
/// node on the killed server reconnecting elsewhere), with room for a loaded CI machine.
const RESUME_BOUND: Duration = Duration::from_secs(15);

/// One clustered nats-server.
struct NatsServer {
    name: String,
    client_port: u16,
    http_port: u16,
    config: PathBuf,
    proc: Proc,
}

/// Three NATS servers and two herald nodes.
struct HaCluster {
    dir: PathBuf,
    servers: Vec<NatsServer>,
    /// herald nodes: port and process.
    nodes: Vec<(u16, Proc)>,
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        for (_, node) in &mut self.nodes {
            node.kill();
        }
        for server in &mut self.servers {
            server.proc.kill();
        }
        remove_unless_panicking(&self.dir);
    }
}

impl HaCluster {
    /// Three clustered servers, then two herald nodes with `NATS_REPLICAS=3`, all ready, and the
    /// topic created. With `upgrade`, node 0 first runs alone with `NATS_REPLICAS=1` (herald's
    /// streams are created with one replica) and is restarted with 3 after node 1 started: the
    /// existing streams must be changed to three replicas.
    async fn start(upgrade: bool) -> Self {
        let bin = require("nats-server");
        let dir = temp_dir("herald-ha");
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route, _)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let mut servers = Vec::new();
        for (i, &(client_port, route_port, http_port)) in ports.iter().enumerate() {
            let name = format!("n{i}");
            let config = dir.join(format!("{name}.conf"));
            let store = dir.join(format!("{name}-store"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client_port}\n\
                     http: 127.0.0.1:{http_port}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     cluster {{ name: herald-ha, listen: 127.0.0.1:{route_port}, routes: [{}] }}\n",
                    store.display(),
                    routes.join(", ")
                ),
            )
            .expect("write nats config");
            let proc = spawn_nats(&bin, &dir, &name, &config);
            servers.push(NatsServer {
                name,
                client_port,
                http_port,
                config,
                proc,
            });
        }
        for s in &mut servers {
            s.proc.wait_listening(s.client_port).await;
        }
        let url = servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut env: Vec<(String, String)> = [
            ("NATS_REPLICAS", "3"),
            ("RING_BUFFER_SIZE", "50000"),
            // The test's readers share two cores with three NATS servers, two nodes and the
            // publishers: under a loaded CI run they can fall seconds behind, which is a slow
            // consumer by design. Pacing a backlog is tests/cluster.rs's partition tests' job.
            ("SUBSCRIBER_QUEUE_SIZE", "50000"),
            ("HEARTBEAT_INTERVAL_SECS", "2"),
            ("DRAIN_DURATION_SECS", "0"),
            ("RUST_LOG", "info,herald=debug"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut cluster = Self {
            dir,
            servers,
            nodes: Vec::new(),
        };
        if upgrade {
            env[0].1 = "1".into();
            let port = free_port();
            let proc = spawn_herald(&cluster.dir, port, 0, &url, &env);
            cluster.nodes.push((port, proc));
            wait_ready(port).await;
            env[0].1 = "3".into();
        }
        while cluster.nodes.len() < 2 {
            let (i, port) = (cluster.nodes.len(), free_port());
            let proc = spawn_herald(&cluster.dir, port, i, &url, &env);
            cluster.nodes.push((port, proc));
        }
        for &(port, _) in &cluster.nodes {
            wait_ready(port).await;
        }
        if upgrade {
            let port = cluster.nodes[0].0;
            cluster.nodes[0].1.kill();
            cluster.nodes[0].1 = spawn_herald(&cluster.dir, port, 0, &url, &env);
            wait_ready(port).await;
        }
        let created = http()
            .post(cluster.url(0, "/topics"))
            .json(&json!({"name": TOPIC}))
            .send()
            .await
            .expect("create topic");
        assert_eq!(created.status(), 201);
        cluster
    }

    fn url(&self, node: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nodes[node].0)
    }

    fn ws(&self, node: usize) -> String {
        format!("ws://127.0.0.1:{}/ws", self.nodes[node].0)
    }

    /// herald's two streams as server `i`'s monitoring endpoint shows them (empty when it does
    /// not answer).
    async fn streams_at(&self, i: usize) -> Vec<Value> {
        let server = &self.servers[i];
        if server.proc.child.is_none() {
            return Vec::new();
        }
        let url = format!("http://127.0.0.1:{}/jsz?streams=true", server.http_port);
        let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(1), http().get(url).send()).await
        else {
            return Vec::new();
        };
        let body: Value = r.json().await.unwrap_or(Value::Null);
        body["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
            .filter(|s| matches!(s["name"].as_str(), Some("HERALD" | "KV_herald-topics")))
            .collect()
    }

    /// The index of the server that leads `stream` by its own account, if any does.
    async fn leader_of(&self, stream: &str) -> Option<usize> {
        for i in 0..self.servers.len() {
            let name = &self.servers[i].name;
            let leads = self.streams_at(i).await.iter().any(|s| {
                s["name"] == stream && s["cluster"]["leader"].as_str() == Some(name.as_str())
            });
            if leads {
                return Some(i);
            }
        }
        None
    }

    /// The index of the server leading herald's message stream.
    async fn leader(&self) -> usize {
        let deadline = Instant::now() + SETTLE;
        loop {
            if let Some(i) = self.leader_of("HERALD").await {
                return i;
            }
            assert!(Instant::now() < deadline, "no stream leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The index of the server herald node `node` is connected to.
    async fn server_of(&self, node: usize) -> usize {
        let name = format!("herald node{node}-{}", self.nodes[node].0);
        let deadline = Instant::now() + SETTLE;
        loop {
            for (i, server) in self.servers.iter().enumerate() {
                let url = format!("http://127.0.0.1:{}/connz", server.http_port);
                let Ok(r) = http().get(url).send().await else {
                    continue;
                };
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let here = body["connections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["name"] == name.as_str());
                if here {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "{name} is connected nowhere");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks the stream's leader to step down until server `target` leads it, so the test loses
    /// the server a herald node is connected to (the hardest case), not a bystander.
    async fn move_leader_to(&self, target: usize) {
        let address = format!("127.0.0.1:{}", self.servers[target].client_port);
        let client = async_nats::connect(address).await.expect("connect to NATS");
        for _ in 0..20 {
            let leader = self.leader().await;
            if leader == target {
                return;
            }
            let _ = client
                .request("$JS.API.STREAM.LEADER.STEPDOWN.HERALD", "".into())
                .await;
            let deadline = Instant::now() + SETTLE;
            while self.leader_of("HERALD").await.is_none_or(|l| l == leader) {
                assert!(Instant::now() < deadline, "the leader did not step down");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("server {target} never became the stream leader");
    }

    /// Waits until both streams have a leader that sees its two followers current.
    async fn wait_replicated(&self) {
        let deadline = Instant::now() + SETTLE;
        for stream in ["HERALD", "KV_herald-topics"] {
            loop {
                let mut view = Value::Null;
                if let Some(i) = self.leader_of(stream).await {
                    let streams = self.streams_at(i).await;
                    view = streams
                        .into_iter()
                        .find(|s| s["name"] == stream)
                        .unwrap_or_default();
                    let followers = view["cluster"]["replicas"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if followers.len() == 2 && followers.iter().all(|r| r["current"] == true) {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "{stream} never fully replicated: {view}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn spawn_nats(bin: &PathBuf, dir: &std::path::Path, name: &str, config: &PathBuf) -> Proc {
    Proc::spawn_logged(Command::new(bin).arg("-c").arg(config), dir, name)
}

/// What one publisher saw.
struct Published {
    /// Acknowledged `seq`s with the time of their ack.
    acked: Vec<(u64, Instant)>,
    /// Publishes answered with an error.
    failed: usize,
}

/// Publishes over REST to `url` every few milliseconds until `stop`; every answer must come
/// within [`PUBLISH_BOUND`], and a 200 must carry a `seq`.
fn publisher(url: String, stop: CancellationToken) -> tokio::task::JoinHandle<Published> {
    tokio::spawn(async move {
        let client = http();
        let mut out = Published {
            acked: Vec::new(),
            failed: 0,
        };
        let mut k = 0u64;
        while !stop.is_cancelled() {
            k += 1;
            let request = client
                .post(&url)
                .json(&json!({"topic": TOPIC, "data": k}))
                .send();
            let answer = tokio::time::timeout(PUBLISH_BOUND, request)
                .await
                .unwrap_or_else(|_| panic!("a publish hung for {PUBLISH_BOUND:?}"));
            match answer {
                Ok(r) if r.status() == 200 => {
                    let body: Value = r.json().await.expect("ack body");
                    let seq = body["seq"].as_u64().expect("an ack carries seq");
                    out.acked.push((seq, Instant::now()));
                }
                Ok(r) => {
                    assert!(
                        r.status().is_server_error(),
                        "a failed publish is a 5xx: {}",
                        r.status()
                    );
                    out.failed += 1;
                }
                Err(e) => panic!("publish request failed: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        out
    })
}

/// A subscriber that must stay connected to `url` and collects every `seq` until it has seen
/// the final one.
fn steady_subscriber(
    url: String,
    mut last: watch::Receiver<u64>,
) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut ws = WsClient::connect(&url).await;
        let ack = ws
            .request(json!({"type": "subscribe", "topic": TOPIC, "since_seq": 0}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let mut seen = Vec::new();
        collect(&mut ws, &mut seen, &mut last, None).await;
        seen
    })
}

/// Reads events into `seen` until the final `seq` (sent on `last`) is in, or `leave` fires.
/// Returns whether it left. The connection must stay open throughout.
async fn collect(
    ws: &mut WsClient,
    seen: &mut Vec<u64>,
    last: &mut watch::Receiver<u64>,
    leave: Option<&CancellationToken>,
) -> bool {
    let never = CancellationToken::new();
    let leave = leave.unwrap_or(&never);
    let done = |seen: &[u64], target: u64| target > 0 && seen.last() >= Some(&target);
    loop {
        if done(seen, *last.borrow()) {
            return false;
        }
        let message = tokio::select! {
            m = ws.recv_message() => m,
            _ = last.changed() => continue,
            () = leave.cancelled() => return true,
        };
        match message {
            Some(Message::Text(text)) => {
                let v: Value = serde_json::from_str(&text).expect("JSON frame");
                match v["type"].as_str() {
                    Some("event") => seen.push(v["seq"].as_u64().expect("seq")),
                    Some("error") => panic!("subscriber got an error: {v}"),
                    _ => {}
                }
            }
            Some(Message::Close(frame)) => panic!("subscriber closed: {frame:?}"),
            None => panic!("subscriber's connection ended"),
            Some(_) => {}
        }
    }
}

/// A subscriber on node `first` that, when `switch` fires, leaves and resumes on node `then`
/// with `since_seq` and `epoch`; the resume must say `recovered: true`.
fn resuming_subscriber(
    first: String,
    then: String,
    switch: CancellationToken,
    mut last: watch::Receiver<u64>,
) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut ws = WsClient::connect(&first).await;
        let ack = ws
            .request(json!({"type": "subscribe", "topic": TOPIC, "since_seq": 0}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let epoch = ack["epoch"].as_str().expect("epoch").to_string();
        let mut seen = Vec::new();
        let left = collect(&mut ws, &mut seen, &mut last, Some(&switch)).await;
        assert!(left, "the subscriber was never moved to the other node");
        {
            drop(ws);
            let mut ws = WsClient::connect(&then).await;
            let since = seen.last().copied().unwrap_or(0);
            ws.send_json(
                json!({"type": "subscribe", "topic": TOPIC, "since_seq": since, "epoch": epoch}),
            )
            .await;
            // The ack may follow replayed events in the same batch only after it, never before.
            let ack = loop {
                let v = ws.recv_json_no_heartbeat().await;
                if v["type"] == "ack" {
                    break v;
                }
                assert_ne!(v["type"], "error", "resume refused: {v}");
            };
            assert_eq!(ack["recovered"], true, "resume lost messages: {ack}");
            collect(&mut ws, &mut seen, &mut last, None).await;
        }
        seen
    })
}

/// Tells the subscribers the last acknowledged `seq`, then checks that every acknowledged `seq`
/// is in every subscriber's list, each list strictly increasing (once, in order).
async fn assert_delivered(
    acked: &[u64],
    last_tx: watch::Sender<u64>,
    subscribers: Vec<(String, tokio::task::JoinHandle<Vec<u64>>)>,
) {
    let final_seq = acked.iter().copied().max().expect("something was acked");
    last_tx.send(final_seq).expect("subscribers listen");
    for (who, task) in subscribers {
        let seen = tokio::time::timeout(SETTLE, task)
            .await
            .unwrap_or_else(|_| panic!("{who} never saw seq {final_seq}"))
            .expect("subscriber task");
        assert_acked_once_in_order(&who, &seen, acked);
    }
}

/// `herald_backplane_stream_leader` and the `/readyz` status of node `i`.
async fn leader_signals(cluster: &HaCluster, i: usize) -> (String, u16) {
    let gauge = common::rest::metric(
        &cluster.url(i, "/metrics"),
        "herald_backplane_stream_leader",
    )
    .await;
    let ready = http()
        .get(cluster.url(i, "/readyz"))
        .send()
        .await
        .expect("GET /readyz")
        .status()
        .as_u16();
    (gauge, ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_leader_frozen_then_killed_loses_nothing_acknowledged() {
    let mut cluster = HaCluster::start(false).await;
    cluster.wait_replicated().await;
    eprintln!("logs in {}", cluster.dir.display());
    let (last_tx, last_rx) = watch::channel(0u64);
    let switch = CancellationToken::new();
    let subscribers = vec![
        (
            "steady on node 0".to_string(),
            steady_subscriber(cluster.ws(0), last_rx.clone()),
        ),
        (
            "steady on node 1".to_string(),
            steady_subscriber(cluster.ws(1), last_rx.clone()),
        ),
        (
            "resuming from node 0 on node 1".to_string(),
            resuming_subscriber(
                cluster.ws(0),
                cluster.ws(1),
                switch.clone(),
                last_rx.clone(),
            ),
        ),
    ];
    let stop = CancellationToken::new();
    let publishers: Vec<_> = (0..2)
        .map(|i| publisher(cluster.url(i, "/publish"), stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Freeze the leader, the server node 0 is connected to: it neither answers nor closes its
    // connections.
    let leader = cluster.server_of(0).await;
    cluster.move_leader_to(leader).await;
    cluster.wait_replicated().await;
    cluster.servers[leader].proc.signal("STOP");
    let frozen = Instant::now();
    let mut no_leader_seen = false;
    let mut unready_seen = false;
    while frozen.elapsed() < Duration::from_secs(4) {
        for i in 0..2 {
            let (gauge, ready) = leader_signals(&cluster, i).await;
            no_leader_seen |= gauge == "0";
            unready_seen |= ready == 503;
        }
        if frozen.elapsed() > Duration::from_secs(2) && !switch.is_cancelled() {
            switch.cancel();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Then kill it for good.
    cluster.servers[leader].proc.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Both publishers must get acks again within the bound.
    let deadline = killed + RESUME_BOUND;
    while Instant::now() < deadline {
        let (g0, _) = leader_signals(&cluster, 0).await;
        let (g1, _) = leader_signals(&cluster, 1).await;
        if g0 == "1" && g1 == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let mut acked = Vec::new();
    for (i, p) in publishers.into_iter().enumerate() {
        let published = p.await.expect("publisher");
        let after: Vec<_> = published
            .acked
            .iter()
            .filter(|(_, at)| *at > killed)
            .collect();
        let first_after = after.first().map(|(_, at)| at.duration_since(killed));
        assert!(
            first_after.is_some_and(|d| d <= RESUME_BOUND),
            "publisher {i} got no ack within {RESUME_BOUND:?} of the kill (first: {first_after:?}, \
             failed {})",
            published.failed
        );
        eprintln!(
            "publisher {i}: {} acked, {} failed, first ack {first_after:?} after the kill",
            published.acked.len(),
            published.failed
        );
        acked.extend(published.acked.iter().map(|(seq, _)| *seq));
    }
    assert!(
        no_leader_seen,
        "no node reported herald_backplane_stream_leader 0"
    );
    assert!(
        unready_seen,
        "no node's /readyz turned 503 without a leader"
    );
    // Both nodes are ready again, with a leader.
    for i in 0..2 {
        let deadline = Instant::now() + SETTLE;
        loop {
            let signals = leader_signals(&cluster, i).await;
            if signals == ("1".to_string(), 200) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} not ready again: {signals:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_delivered(&acked, last_tx, subscribers).await;
    // Node 0 lost its server: its registry watch and report exchange moved on too. A topic
    // created through node 1 appears on node 0, and node 0 counts both nodes' reports.
    create_topic(&cluster.url(1, "/topics"), "after-the-kill").await;
    let deadline = Instant::now() + SETTLE;
    loop {
        let topic = http()
            .get(cluster.url(0, "/topics/after-the-kill"))
            .send()
            .await
            .expect("GET topic")
            .status();
        let stats: Value = http()
            .get(cluster.url(0, "/stats"))
            .send()
            .await
            .expect("GET /stats")
            .json()
            .await
            .expect("stats body");
        if topic == 200 && stats["nodes"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 0 does not follow the registry ({topic}) or the reports ({stats})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_nats_loses_nothing_acknowledged() {
    // Also the upgrade of a one-replica deployment: the streams node 0 created with one replica
    // must have three (a leader and two current followers) before the restarts begin.
    let mut cluster = HaCluster::start(true).await;
    cluster.wait_replicated().await;
    let (last_tx, last_rx) = watch::channel(0u64);
    let subscribers = vec![
        (
            "steady on node 0".to_string(),
            steady_subscriber(cluster.ws(0), last_rx.clone()),
        ),
        (
            "steady on node 1".to_string(),
            steady_subscriber(cluster.ws(1), last_rx.clone()),
        ),
    ];
    let stop = CancellationToken::new();
    let publishers: Vec<_> = (0..2)
        .map(|i| publisher(cluster.url(i, "/publish"), stop.clone()))
        .collect();
    let bin = require("nats-server");
    for i in 0..cluster.servers.len() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let server = &mut cluster.servers[i];
        server.proc.signal("TERM");
        assert!(server.proc.wait_exit(SETTLE).await.is_some(), "n{i} exited");
        server.proc = spawn_nats(&bin, &cluster.dir, &server.name, &server.config);
        server.proc.wait_listening(server.client_port).await;
        cluster.wait_replicated().await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut acked = Vec::new();
    for p in publishers {
        let published = p.await.expect("publisher");
        eprintln!(
            "publisher: {} acked, {} failed",
            published.acked.len(),
            published.failed
        );
        assert!(published.acked.len() > 50, "the publisher made progress");
        acked.extend(published.acked.iter().map(|(seq, _)| *seq));
    }
    assert_delivered(&acked, last_tx, subscribers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_a_single_server_cannot_hold_stop_start_up_with_one_line() {
    let bin = require("nats-server");
    let dir = temp_dir("herald-ha-single");
    let nats_port = free_port();
    let mut nats = spawn_single_nats(&bin, &dir, nats_port);
    nats.wait_listening(nats_port).await;
    let url = format!("nats://127.0.0.1:{nats_port}");
    let env = [("NATS_REPLICAS".to_string(), "3".to_string())];
    let mut node = spawn_herald(&dir, free_port(), 0, &url, &env);
    let code = node.wait_exit(SETTLE).await;
    nats.kill();
    let stderr = std::fs::read_to_string(
        dir.join(
            std::fs::read_dir(&dir)
                .expect("dir")
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .find(|n| {
                    n.to_string_lossy().ends_with(".err") && n.to_string_lossy().starts_with("node")
                })
                .expect("herald's stderr"),
        ),
    )
    .expect("read stderr");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].starts_with(
            "herald: NATS_REPLICAS=3: NATS cannot create the message stream HERALD with 3 replicas"
        ) && lines[0].contains("replicas > 1 not supported in non-clustered mode")
            && lines[0].contains("lower NATS_REPLICAS (1 for a single server)"),
        "{stderr}"
    );
}
