//! Cluster mode (PROTOCOL.md §8) with real processes: `nats-server -js`, three `herald` nodes and
//! nginx in front, all on loopback ports. Needs the Debian packages `nats-server` and `nginx`;
//! without them these tests fail and say so.
mod common;

use std::collections::{BTreeSet, HashSet};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::assert::assert_acked_once_in_order;
use common::procs::{
    remove_unless_panicking, require, spawn_herald, spawn_single_nats, temp_dir, Proc, SETTLE,
};
use common::rest::create_topic;
use common::{free_port, http, WsClient};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A herald node.
struct Node {
    port: u16,
    proc: Proc,
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

/// nats-server, nodes and (optionally) nginx in a temporary directory.
struct Cluster {
    dir: PathBuf,
    nats_port: u16,
    nats: Proc,
    nodes: Vec<Node>,
    nginx_port: u16,
    nginx: Option<Proc>,
    /// Extra environment for every node.
    env: Vec<(String, String)>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(n) = self.nginx.as_mut() {
            n.kill();
        }
        for node in &mut self.nodes {
            node.proc.kill();
        }
        self.nats.kill();
        remove_unless_panicking(&self.dir);
    }
}

impl Cluster {
    /// nats-server and `nodes` herald nodes, all ready.
    async fn start(nodes: usize, env: &[(&str, &str)]) -> Self {
        let nats_bin = require("nats-server");
        let dir = temp_dir("herald-cluster");
        let nats_port = free_port();
        let mut cluster = Self {
            nats: Proc {
                child: None,
                stderr: None,
            },
            dir,
            nats_port,
            nodes: Vec::new(),
            nginx_port: 0,
            nginx: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        cluster.nats = cluster.spawn_nats(&nats_bin);
        cluster.nats.wait_listening(cluster.nats_port).await;
        for _ in 0..nodes {
            let port = free_port();
            let proc = cluster.spawn_node(port, cluster.nodes.len());
            cluster.nodes.push(Node { port, proc });
        }
        for i in 0..nodes {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn spawn_nats(&self, bin: &Path) -> Proc {
        spawn_single_nats(bin, &self.dir, self.nats_port)
    }

    fn spawn_node(&self, port: u16, index: usize) -> Proc {
        let url = format!("nats://127.0.0.1:{}", self.nats_port);
        spawn_herald(&self.dir, port, index, &url, &self.env)
    }

    /// Waits for node `i`'s `/readyz` to answer 200.
    async fn wait_ready(&self, i: usize) {
        common::procs::wait_ready(self.nodes[i].port).await;
    }

    /// nginx on a free port in front of the nodes; `backup` marks every node but the first as a
    /// backup, so a client lands on node 0 first and deterministically fails over.
    async fn start_nginx(&mut self, backup: bool) {
        let bin = require("nginx");
        self.nginx_port = free_port();
        let servers: String = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let extra = if backup && i > 0 { " backup" } else { "" };
                format!(
                    "    server 127.0.0.1:{} max_fails=1 fail_timeout=1s{extra};\n",
                    n.port
                )
            })
            .collect();
        let http = format!(
            r#"  access_log off;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream herald {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://herald;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 3600s;
      proxy_send_timeout 3600s;
      proxy_connect_timeout 2s;
      proxy_buffering off;
      proxy_next_upstream error timeout http_502 http_503;
    }}
  }}"#,
            port = self.nginx_port
        );
        let error_log = format!("{}/nginx-error.log warn", self.dir.display());
        self.run_nginx(&bin, &error_log, &http).await;
    }

    /// nginx with `deploy/nginx.conf` as shipped, wrapped in a main config the way
    /// `deploy/local-cluster.sh` wraps it: its upstream block lists `servers` (`server …;` lines),
    /// it listens on a free loopback port, its log paths point into this cluster's directory, and
    /// the main config logs errors down to `info`, as a permissive distribution default might.
    async fn start_deploy_nginx(&mut self, servers: &str) {
        let bin = require("nginx");
        self.nginx_port = free_port();
        let shipped = include_str!("../deploy/nginx.conf");
        let start = shipped
            .find("upstream herald {")
            .expect("an upstream block");
        let end = start + shipped[start..].find("\n}").expect("its end") + 2;
        let d = self.dir.display();
        let server_block = format!(
            "{}upstream herald {{\n{servers}  keepalive 32;\n}}{}",
            &shipped[..start],
            &shipped[end..]
        )
        .replace(
            "listen 8080;",
            &format!("listen 127.0.0.1:{};", self.nginx_port),
        )
        .replace("/var/log/nginx/", &format!("{d}/nginx-"));
        self.run_nginx(&bin, &format!("{d}/nginx-main.log info"), &server_block)
            .await;
    }

    /// Starts nginx (`bin`) as its own process group: one worker, the main `error_log` setting,
    /// the directives `http` inside http{}, its temporary files in this cluster's directory.
    async fn run_nginx(&mut self, bin: &Path, error_log: &str, http: &str) {
        let d = self.dir.display();
        let conf = format!(
            r#"daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {error_log};
events {{ worker_connections 1024; }}
http {{
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
{http}
}}
"#
        );
        let path = self.dir.join("nginx.conf");
        std::fs::write(&path, conf).expect("write nginx.conf");
        let mut cmd = Command::new(bin);
        cmd.arg("-p")
            .arg(&self.dir)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(self.dir.join("nginx-error.log"))
            .process_group(0);
        let nginx = self
            .nginx
            .insert(Proc::spawn_logged(&mut cmd, &self.dir, "nginx"));
        nginx.wait_listening(self.nginx_port).await;
    }

    fn lb_ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.nginx_port)
    }

    fn lb_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.nginx_port)
    }
}

/// Subscribes and returns the ack.
async fn subscribe(ws: &mut WsClient, frame: Value) -> Value {
    let ack = ws.request(frame).await;
    assert_eq!(ack["type"], "ack", "subscribe not acked: {ack}");
    ack
}

/// The next `n` event frames (other frames are skipped).
async fn events(ws: &mut WsClient, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let v = ws.recv_json_no_heartbeat().await;
        if v["type"] == "event" {
            out.push(v);
        }
    }
    out
}

fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

/// Publishes over REST; the response status and body.
async fn rest_publish(url: &str, topic: &str, payload: Value) -> (u16, Value) {
    let r = http()
        .post(url)
        .json(&json!({"topic": topic, "data": payload}))
        .send()
        .await
        .expect("publish request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// `herald_backplane_up` as node `url` (a `/metrics` URL) reports it.
async fn backplane_up(url: &str) -> String {
    common::rest::metric(url, "herald_backplane_up").await
}

/// GETs JSON.
async fn get(url: &str) -> (u16, Value) {
    let r = http().get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broker_across_three_nodes() {
    let mut cluster = Cluster::start(3, &[]).await;
    cluster.start_nginx(false).await;
    let n = &cluster.nodes;

    // Registry: created on one node, a conflict on every other.
    let client = http();
    let created = client
        .post(n[0].url("/topics"))
        .json(&json!({"name": "orders.eu:1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    for node in &n[1..] {
        let again = client
            .post(node.url("/topics"))
            .json(&json!({"name": "orders.eu:1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 409, "POST /topics on another node");
    }

    // Subscribers pinned to each node and one through nginx.
    let mut subs = Vec::new();
    for url in [n[0].ws(), n[1].ws(), n[2].ws(), cluster.lb_ws()] {
        let mut ws = WsClient::connect(&url).await;
        subscribe(
            &mut ws,
            json!({"type": "subscribe", "topic": "orders.eu:1"}),
        )
        .await;
        subs.push(ws);
    }

    // Concurrent publishers on every node, over WebSocket and REST.
    const PER_NODE: usize = 30;
    let mut tasks = Vec::new();
    for (i, node) in n.iter().enumerate() {
        let (ws_url, rest_url) = (node.ws(), node.url("/publish"));
        tasks.push(tokio::spawn(async move {
            let mut ws = WsClient::connect(&ws_url).await;
            let mut acked = Vec::new();
            for k in 0..PER_NODE {
                let payload = json!({"from": i, "k": k});
                let seq = if k % 2 == 0 {
                    ws.publish("orders.eu:1", payload).await["seq"].as_u64()
                } else {
                    let (status, body) = rest_publish(&rest_url, "orders.eu:1", payload).await;
                    assert_eq!(status, 200, "{body}");
                    body["seq"].as_u64()
                };
                acked.push(seq.expect("ack carries seq"));
            }
            acked
        }));
    }
    let mut acked = BTreeSet::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 3 * PER_NODE, "every publish got its own seq");

    let mut orders = Vec::new();
    for ws in &mut subs {
        let got = events(ws, 3 * PER_NODE).await;
        let s = seqs(&got);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "seq order: {s:?}");
        let payloads: HashSet<String> = got
            .iter()
            .map(|e| e["message"]["payload"].to_string())
            .collect();
        assert_eq!(payloads.len(), 3 * PER_NODE, "each message exactly once");
        assert_eq!(s.iter().copied().collect::<BTreeSet<_>>(), acked);
        orders.push(
            got.iter()
                .map(|e| (e["seq"].clone(), e["message"]["id"].clone()))
                .collect::<Vec<_>>(),
        );
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "identical order everywhere"
    );

    // last_n and history answer the same from every node.
    let last: Vec<u64> = acked.iter().rev().take(5).rev().copied().collect();
    let mut histories = Vec::new();
    for node in n {
        let mut ws = WsClient::connect(&node.ws()).await;
        subscribe(
            &mut ws,
            json!({"type": "subscribe", "topic": "orders.eu:1", "last_n": 5}),
        )
        .await;
        assert_eq!(seqs(&events(&mut ws, 5).await), last);
        let (status, body) = get(&node.url("/topics/orders.eu:1/history?last_n=5")).await;
        assert_eq!(status, 200);
        histories.push(body);
        subs.push(ws);
    }
    assert!(
        histories.windows(2).all(|w| w[0] == w[1]),
        "history differs"
    );

    // Cluster-wide counts agree on every node (7 subscriptions, 90 messages).
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut views = Vec::new();
        for node in n {
            let (_, s) = get(&node.url("/stats")).await;
            let (_, t) = get(&node.url("/topics")).await;
            views.push((
                s["topics"].clone(),
                s["subscribers"].clone(),
                s["connections"].clone(),
                t,
            ));
        }
        let want = json!({"messages": 90, "subscribers": 7, "dropped": 0});
        if views.windows(2).all(|w| w[0] == w[1]) && views[0].0["orders.eu:1"] == want {
            assert_eq!(views[0].1, 7);
            assert_eq!(views[0].3["topics"][0]["subscribers"], 7);
            break;
        }
        assert!(Instant::now() < deadline, "stats never agreed: {views:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delete on one node: every subscriber everywhere hears it; re-creating gives a new epoch.
    let (_, before) = get(&n[0].url("/topics/orders.eu:1")).await;
    let deleted = client
        .delete(n[2].url("/topics/orders.eu:1"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    for ws in &mut subs {
        let v = ws.recv_json_no_heartbeat().await;
        assert_eq!(
            (v["msg"].as_str(), v["topic"].as_str()),
            (Some("topic_deleted"), Some("orders.eu:1")),
            "{v}"
        );
    }
    for node in n {
        assert_eq!(get(&node.url("/topics/orders.eu:1")).await.0, 404);
    }
    let again = client
        .post(n[1].url("/topics"))
        .json(&json!({"name": "orders.eu:1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    let (status, after) = get(&n[0].url("/topics/orders.eu:1")).await;
    assert_eq!(status, 200, "re-created topic seen on another node");
    assert_ne!(before["epoch"], after["epoch"]);
    assert_eq!(after["messages"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_client_resumes_through_nginx() {
    let mut cluster = Cluster::start(3, &[]).await;
    // Node 0 first, the others as backups: the client's node is known and failover is certain.
    cluster.start_nginx(true).await;
    let publish_url = cluster.nodes[1].url("/publish");
    let mut acked = Vec::new();
    let publish = |k: usize| {
        let url = publish_url.clone();
        async move {
            let (status, body) = rest_publish(&url, "feed", json!({"k": k})).await;
            assert_eq!(status, 200, "{body}");
            body["seq"].as_u64().unwrap()
        }
    };

    let mut ws = WsClient::connect(&cluster.lb_ws()).await;
    let ack = subscribe(&mut ws, json!({"type": "subscribe", "topic": "feed"})).await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    for k in 0..10 {
        acked.push(publish(k).await);
    }
    let mut seen = seqs(&events(&mut ws, 10).await);

    cluster.nodes[0].proc.kill();
    // The client's connection ends with its node.
    loop {
        match ws.recv_message().await {
            None | Some(tokio_tungstenite::tungstenite::Message::Close(_)) => break,
            Some(_) => {}
        }
    }
    for k in 10..20 {
        acked.push(publish(k).await);
    }
    let mut ws = WsClient::connect(&cluster.lb_ws()).await;
    let last = *seen.last().unwrap();
    let ack = subscribe(
        &mut ws,
        json!({"type": "subscribe", "topic": "feed", "since_seq": last, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    for k in 20..30 {
        acked.push(publish(k).await);
    }
    seen.extend(seqs(&events(&mut ws, 20).await));
    assert_eq!(seen, acked, "no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outage_fails_loudly_and_recovers() {
    let mut cluster = Cluster::start(3, &[]).await;
    let n = &cluster.nodes;
    let mut sub = WsClient::connect(&n[1].ws()).await;
    subscribe(&mut sub, json!({"type": "subscribe", "topic": "t"})).await;
    let mut publisher = WsClient::connect(&n[0].ws()).await;
    let mut acked = Vec::new();
    for k in 0..5 {
        acked.push(
            publisher.publish("t", json!(k)).await["seq"]
                .as_u64()
                .unwrap(),
        );
    }
    let mut seen = seqs(&events(&mut sub, 5).await);

    cluster.nats.kill();
    let n = &cluster.nodes;
    // Once a node knows NATS is gone (a publish already in flight when it went can still be
    // stored after NATS returns: its outcome is unknown, as with any NATS client), every node
    // turns unready...
    for node in n {
        let deadline = Instant::now() + SETTLE;
        while get(&node.url("/readyz")).await.0 != 503 {
            assert!(Instant::now() < deadline, "/readyz stayed 200 without NATS");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(backplane_up(&node.url("/metrics")).await, "0");
    }
    // ...and publishes fail loudly (never a silent drop).
    let reply = publisher
        .request(json!({"type": "publish", "topic": "t", "message": {"payload": "lost"}}))
        .await;
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["error"]["code"], "INTERNAL");
    let (status, body) = rest_publish(&n[2].url("/publish"), "t", json!("lost")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    // Subscribers stay connected.
    let pong = sub
        .request(json!({"type": "ping", "request_id": "p"}))
        .await;
    assert_eq!(pong["type"], "pong");

    let bin = require("nats-server");
    cluster.nats = cluster.spawn_nats(&bin);
    cluster.nats.wait_listening(cluster.nats_port).await;
    for i in 0..3 {
        cluster.wait_ready(i).await;
        assert_eq!(backplane_up(&cluster.nodes[i].url("/metrics")).await, "1");
    }
    let mut publisher = WsClient::connect(&cluster.nodes[2].ws()).await;
    for k in 5..10 {
        acked.push(
            publisher.publish("t", json!(k)).await["seq"]
                .as_u64()
                .unwrap(),
        );
    }
    seen.extend(seqs(&events(&mut sub, 5).await));
    assert_eq!(
        seen, acked,
        "everything acknowledged arrives once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_clients_with_1012_over_time() {
    let mut cluster = Cluster::start(2, &[("DRAIN_DURATION_SECS", "2")]).await;
    let mut clients = Vec::new();
    for _ in 0..10 {
        let mut ws = WsClient::connect(&cluster.nodes[0].ws()).await;
        subscribe(&mut ws, json!({"type": "subscribe", "topic": "d"})).await;
        clients.push(ws);
    }
    let started = Instant::now();
    cluster.nodes[0].proc.terminate();
    // Each client waits for its close on its own task, so each close is timed when it arrives.
    let waiters: Vec<_> = clients
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let frame = ws.recv_close().await.expect("a close frame");
                (frame.code, started.elapsed())
            })
        })
        .collect();
    let readyz = cluster.nodes[0].url("/readyz");
    let deadline = Instant::now() + SETTLE;
    while get(&readyz).await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz never turned 503 while draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut closed = Vec::new();
    for waiter in waiters {
        let (code, at) = waiter.await.unwrap();
        assert_eq!(code, CloseCode::Restart, "close code 1012");
        closed.push(at);
    }
    let first = closed.iter().min().unwrap();
    let last = closed.iter().max().unwrap();
    assert!(
        *last - *first >= Duration::from_millis(700),
        "closes not spread over the drain: {closed:?}"
    );
    let code = cluster.nodes[0].proc.wait_exit(SETTLE).await;
    assert_eq!(code, Some(0), "a drained node exits 0");
    // The other node still serves.
    let mut ws = WsClient::connect(&cluster.nodes[1].ws()).await;
    subscribe(&mut ws, json!({"type": "subscribe", "topic": "d"})).await;
}

/// One subscriber through nginx that resumes with `since_seq` + `epoch` whenever its connection
/// ends, until it has seen `final_seq`; returns every `seq` it received. Every resume must be
/// served in full.
async fn resuming_subscriber(
    url: String,
    topic: &'static str,
    final_seq: tokio::sync::watch::Receiver<u64>,
) -> Vec<u64> {
    let seen = partition_subscriber(url, topic, final_seq).await;
    assert!(
        seen.gaps.is_empty(),
        "resume lost messages: {:?}",
        seen.gaps
    );
    seen.seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_loses_nothing_acknowledged() {
    let mut cluster = Cluster::start(
        3,
        &[("DRAIN_DURATION_SECS", "1"), ("RING_BUFFER_SIZE", "2000")],
    )
    .await;
    cluster.start_nginx(false).await;
    create_topic(&cluster.lb_url("/topics"), "roll").await;
    let (final_tx, final_rx) = tokio::sync::watch::channel(0u64);
    let subscribers: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(resuming_subscriber(
                cluster.lb_ws(),
                "roll",
                final_rx.clone(),
            ))
        })
        .collect();

    // A steady publisher through nginx; failed publishes (a node going away) are not acked.
    let stop = tokio_util::sync::CancellationToken::new();
    let publisher = {
        let (url, stop) = (cluster.lb_url("/publish"), stop.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut k = 0u64;
            while !stop.is_cancelled() {
                k += 1;
                let sent = http()
                    .post(&url)
                    .json(&json!({"topic": "roll", "data": k}))
                    .send()
                    .await;
                if let Ok(r) = sent {
                    if r.status() == 200 {
                        let body: Value = r.json().await.unwrap();
                        acked.push(body["seq"].as_u64().unwrap());
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            acked
        })
    };

    let bin_restarts = cluster.nodes.len();
    for i in 0..bin_restarts {
        cluster.nodes[i].proc.terminate();
        assert_eq!(cluster.nodes[i].proc.wait_exit(SETTLE).await, Some(0));
        let port = cluster.nodes[i].port;
        cluster.nodes[i].proc = cluster.spawn_node(port, i);
        cluster.wait_ready(i).await;
    }
    stop.cancel();
    let acked = publisher.await.unwrap();
    assert!(
        acked.len() > 50,
        "the publisher made progress: {}",
        acked.len()
    );
    final_tx.send(*acked.iter().max().unwrap()).unwrap();
    for s in subscribers {
        let seen = s.await.unwrap();
        assert_acked_once_in_order("subscriber", &seen, &acked);
    }
}

/// A file of the cluster's directory; empty when nothing was written to it.
fn read_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// `deploy/nginx.conf` keeps credentials out of its logs (issue 15): browsers put them in the
/// query string. A token and the admin key go through it in `?token=` and `?api_key=`, the first
/// upgrade through a failover (a dead node first, which nginx reports at level `error` with the
/// whole request line), and none of its logs holds them, while the access log does record each
/// request, its path and the failover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_nginx_conf_keeps_tokens_and_keys_out_of_its_logs() {
    const SECRET: &str = "cluster-nginx-logs-secret-of-32-bytes+";
    const KEY: &str = "SECRET-LIKE-admin-key-7f3a9c";
    let mut cluster = Cluster::start(1, &[("JWT_SECRET", SECRET), ("API_KEY", KEY)]).await;
    let dead = free_port();
    let servers = format!(
        "  server 127.0.0.1:{dead} max_fails=1 fail_timeout=30s;\n  server 127.0.0.1:{} backup;\n",
        cluster.nodes[0].port
    );
    cluster.start_deploy_nginx(&servers).await;
    let minted = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "token",
            "--sub",
            "log-reader",
            "--allow-sub",
            "logs.>",
            "--ttl",
            "10m",
        ])
        .args(["--secret", SECRET])
        .output()
        .expect("run herald token");
    assert!(minted.status.success(), "herald token: {minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_string();
    let signature = token.rsplit('.').next().unwrap().to_string();

    // The token alone: its own rights, so the node did read it from the query.
    let mut reader = WsClient::connect(&format!("{}?token={token}", cluster.lb_ws())).await;
    subscribe(
        &mut reader,
        json!({"type": "subscribe", "topic": "logs.a", "request_id": "s"}),
    )
    .await;
    let refused = reader
        .request(json!({"type": "publish", "topic": "logs.a", "data": 1, "request_id": "p"}))
        .await;
    assert_eq!(refused["error"]["code"], "FORBIDDEN", "{refused}");
    // Token and key together (the key wins), and a REST call with the key.
    let mut admin =
        WsClient::connect(&format!("{}?token={token}&api_key={KEY}", cluster.lb_ws())).await;
    let published = admin
        .request(json!({"type": "publish", "topic": "logs.a", "data": 2, "request_id": "p"}))
        .await;
    assert_eq!(published["type"], "ack", "{published}");
    let (status, _) = get(&cluster.lb_url(&format!("/topics?api_key={KEY}"))).await;
    assert_eq!(status, 200);
    // nginx writes a WebSocket's line when the connection ends.
    drop(reader);
    drop(admin);
    let deadline = Instant::now() + SETTLE;
    while read_log(&cluster.dir, "nginx-access.log").lines().count() < 3 {
        assert!(
            Instant::now() < deadline,
            "nginx logged fewer than 3 requests"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let access = read_log(&cluster.dir, "nginx-access.log");
    assert_eq!(
        access.matches("\"GET /ws HTTP/1.1\" 101 ").count(),
        2,
        "{access}"
    );
    assert!(access.contains("\"GET /topics HTTP/1.1\" 200 "), "{access}");
    let failover = format!("upstream=127.0.0.1:{dead}, ");
    assert!(
        access.contains(&failover) && access.contains("upstream_status=502, 101"),
        "the first upgrade went through the dead node first: {access}"
    );
    for name in ["nginx-access.log", "nginx-error.log", "nginx-main.log"] {
        let log = read_log(&cluster.dir, name);
        for secret in [
            token.as_str(),
            signature.as_str(),
            KEY,
            "token=",
            "api_key=",
        ] {
            assert!(!log.contains(secret), "{name} holds `{secret}`:\n{log}");
        }
    }
}

/// The `seq`s a node's `GET /topics/{name}/history` at `url` lists.
async fn history_seqs(url: &str) -> Vec<u64> {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages in {body}"))
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_ttl_agrees_on_every_node() {
    let cluster = Cluster::start(
        2,
        &[("HISTORY_TTL_SECS", "1"), ("TOPIC_IDLE_TTL_SECS", "1")],
    )
    .await;
    let n = &cluster.nodes;
    for i in 0..2 {
        let (status, body) =
            rest_publish(&n[0].url("/publish"), "aging", json!({ "old": i })).await;
        assert_eq!(status, 200, "{body}");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, fresh) = rest_publish(&n[1].url("/publish"), "aging", json!("new")).await;
    assert_eq!(status, 200, "{fresh}");
    let fresh = fresh["seq"].as_u64().expect("publish seq");

    for node in n {
        // Each node applies the stream on its own: wait for the new event, then nothing older.
        let url = node.url("/topics/aging/history");
        let deadline = Instant::now() + SETTLE;
        let mut listed = history_seqs(&url).await;
        while listed.last() != Some(&fresh) {
            assert!(Instant::now() < deadline, "{url}: {listed:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
            listed = history_seqs(&url).await;
        }
        assert_eq!(listed, [fresh], "{url}");

        let mut ws = WsClient::connect(&node.ws()).await;
        subscribe(
            &mut ws,
            json!({"type": "subscribe", "topic": "aging", "last_n": 10}),
        )
        .await;
        assert_eq!(seqs(&events(&mut ws, 1).await), [fresh]);
        ws.send_json(json!({"type": "ping", "request_id": "fence"}))
            .await;
        let pong = ws.recv_json_no_heartbeat().await;
        assert_eq!(
            pong["type"], "pong",
            "only the fresh one is replayed: {pong}"
        );
    }
}

/// `herald_topics_expired_total` as node `url` (a `/metrics` URL) reports it.
async fn topics_expired(url: &str) -> u64 {
    let value = common::rest::metric(url, "herald_topics_expired_total").await;
    value
        .parse()
        .unwrap_or_else(|_| panic!("herald_topics_expired_total: {value}"))
}

/// The names of the topics node `url` (a `/topics` URL) lists that start with `prefix`.
async fn listed(url: &str, prefix: &str) -> Vec<String> {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{body}");
    body["topics"]
        .as_array()
        .unwrap_or_else(|| panic!("topics in {body}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Makes `count` topics `{prefix}.{i}` by publishing one message to each (16 at a time) through
/// `url`; returns their names.
async fn publish_once_each(url: &str, prefix: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}.{i}")).collect();
    futures_util::stream::iter(names.iter())
        .for_each_concurrent(16, |name| async move {
            let (status, body) = rest_publish(url, name, json!(1)).await;
            assert_eq!(status, 200, "{body}");
        })
        .await;
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_topics_expire_on_every_node_and_busy_ones_stay() {
    let cluster = Cluster::start(2, &[("TOPIC_IDLE_TTL_SECS", "1")]).await;
    let n = &cluster.nodes;
    // Idle ones: many made by publishes on node 0 (more than one expiry round's batch), and one a
    // subscriber on node 1 made and left after reading an event.
    publish_once_each(&n[0].url("/publish"), "idle", 1100).await;
    let mut left = WsClient::connect(&n[1].ws()).await;
    let ack = subscribe(
        &mut left,
        json!({"type": "subscribe", "topic": "idle.left"}),
    )
    .await;
    let old_epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    let (status, body) = rest_publish(&n[0].url("/publish"), "idle.left", json!("x")).await;
    assert_eq!(status, 200, "{body}");
    let last_seq = seqs(&events(&mut left, 1).await)[0];
    drop(left);

    // Busy ones: a subscriber on node 1 only, a topic published to every 200 ms, and an explicit one.
    let mut holder = WsClient::connect(&n[1].ws()).await;
    subscribe(
        &mut holder,
        json!({"type": "subscribe", "topic": "busy.held"}),
    )
    .await;
    create_topic(&n[1].url("/topics"), "busy.explicit").await;
    let publisher_url = n[0].url("/publish");
    let publisher = tokio::spawn(async move {
        loop {
            let (status, body) = rest_publish(&publisher_url, "busy.published", json!(1)).await;
            assert_eq!(status, 200, "{body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });

    let deadline = Instant::now() + Duration::from_secs(20);
    for node in n {
        loop {
            let idle = listed(&node.url("/topics"), "idle.").await;
            if idle.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} idle topics left on {}: {:?}",
                idle.len(),
                node.port,
                &idle[..idle.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Two more TTLs: the busy ones are still there, on both nodes.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in n {
        let busy = listed(&node.url("/topics"), "busy.").await;
        assert_eq!(
            busy,
            ["busy.explicit", "busy.held", "busy.published"],
            "node {}",
            node.port
        );
    }
    publisher.abort();
    let expired: u64 = futures_util::future::join_all(n.iter().map(|node| {
        let url = node.url("/metrics");
        async move { topics_expired(&url).await }
    }))
    .await
    .into_iter()
    .sum();
    assert_eq!(expired, 1101, "counted once, by the node that removed each");

    // A resume across the expiry is told it lost the thread, on either node, and both agree on
    // the new life.
    let mut resumed = WsClient::connect(&n[0].ws()).await;
    let ack = subscribe(
        &mut resumed,
        json!({"type": "subscribe", "topic": "idle.left", "since_seq": last_seq, "epoch": old_epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], false, "{ack}");
    let new_epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    assert_ne!(new_epoch, old_epoch);
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, view) = get(&n[1].url("/topics/idle.left")).await;
        if status == 200 && view["epoch"] == new_epoch.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 1 never saw the new life: {view}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_racing_cluster_expiry_is_never_dropped() {
    let cluster = Cluster::start(2, &[("TOPIC_IDLE_TTL_SECS", "1")]).await;
    let n = &cluster.nodes;
    let names = publish_once_each(&n[0].url("/publish"), "race", 600).await;
    // Subscribes on the node that does not lead expiry, one every few ms, across the moment the
    // topics expire: each is either in the old life (which then stays) or in a new one, and none
    // is acked and then told `topic_deleted`.
    let subscribers = (0..6).map(|k| {
        let url = n[1].ws();
        let mine: Vec<String> = names.iter().skip(k).step_by(6).cloned().collect();
        tokio::spawn(async move {
            let mut ws = WsClient::connect(&url).await;
            for name in &mine {
                let reply = ws
                    .request(json!({"type": "subscribe", "topic": name}))
                    .await;
                assert_eq!(reply["type"], "ack", "{name}: {reply}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let pong = ws
                .request(json!({"type": "ping", "request_id": "fence"}))
                .await;
            assert_eq!(
                pong["type"], "pong",
                "nothing came before the fence: {pong}"
            );
            ws
        })
    });
    let _open = futures_util::future::try_join_all(subscribers)
        .await
        .expect("subscriber task");
    for node in n {
        let live = listed(&node.url("/topics"), "race.").await;
        assert_eq!(live.len(), names.len(), "node {}", node.port);
    }
}

/// A TCP proxy between one node and nats-server that a test can freeze (bytes stop flowing both
/// ways, connections stay open, as when a link stalls) and cut (every connection dropped and new
/// ones closed at once until restored, as when the proxy dies). The listening socket is kept for
/// the proxy's whole life, so no other test can take its port during a cut.
struct LinkProxy {
    port: u16,
    frozen: tokio::sync::watch::Sender<bool>,
    /// Cancelled by a cut: ends every connection made before it.
    conns: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl LinkProxy {
    async fn start(upstream: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let frozen = tokio::sync::watch::channel(false).0;
        let conns = std::sync::Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let accept = (frozen.clone(), conns.clone(), cut.clone());
        let listener = tokio::spawn(async move {
            let (frozen, conns, cut) = accept;
            while let Ok((client, _)) = listener.accept().await {
                if cut.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let conns = conns.lock().expect("token lock").clone();
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (from, to) in [(cr, sw), (sr, cw)] {
                    let (frozen, conns) = (frozen.subscribe(), conns.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = pump(from, to, frozen) => {}
                            _ = conns.cancelled() => {}
                        }
                    });
                }
            }
        });
        Self {
            port,
            frozen,
            conns,
            cut,
            listener,
        }
    }

    fn freeze(&self, on: bool) {
        self.frozen.send_replace(on);
    }

    /// Drops every connection and closes new ones at once.
    fn cut(&mut self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        let old = std::mem::take(&mut *self.conns.lock().expect("token lock"));
        old.cancel();
        self.freeze(false);
    }

    async fn restore(&mut self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies bytes one way, holding them back while `frozen`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while *frozen.borrow_and_update() {
            if frozen.changed().await.is_err() {
                return;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// What a partition test's subscriber saw: every event's `seq` and every gap notice's range.
#[derive(Debug, Default)]
struct Seen {
    seqs: Vec<u64>,
    gaps: Vec<(u64, u64)>,
    drops: usize,
    /// Why the server closed, for each drop it explained.
    closes: Vec<String>,
}

/// A subscriber that reads at full speed and resumes (`since_seq` + `epoch`) whenever its
/// connection ends, until it has seen `final_seq`; a resume answered `recovered: false` counts as
/// a gap.
async fn partition_subscriber(
    url: String,
    topic: &'static str,
    mut final_seq: tokio::sync::watch::Receiver<u64>,
) -> Seen {
    use tokio_tungstenite::tungstenite::Message;
    let mut seen = Seen::default();
    let mut epoch: Option<String> = None;
    loop {
        let mut ws = loop {
            match WsClient::try_connect(&url).await {
                Ok(ws) => break ws,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let mut frame = json!({"type": "subscribe", "topic": topic, "since_seq": 0});
        if let (Some(last), Some(e)) = (seen.seqs.last(), &epoch) {
            frame["since_seq"] = json!(last);
            frame["epoch"] = json!(e);
        }
        ws.send_json(frame).await;
        loop {
            let done = |seen: &Seen, target: u64| target > 0 && seen.seqs.last() >= Some(&target);
            let message = tokio::select! {
                m = ws.recv_message() => m,
                _ = final_seq.changed() => {
                    if done(&seen, *final_seq.borrow()) {
                        return seen;
                    }
                    continue;
                }
            };
            let text = match message {
                Some(Message::Text(text)) => text,
                Some(Message::Close(close)) => {
                    seen.closes.push(format!("{close:?}"));
                    break;
                }
                None => break,
                Some(_) => continue,
            };
            let v: Value = serde_json::from_str(&text).expect("JSON");
            match (v["type"].as_str(), v["msg"].as_str()) {
                (Some("ack"), _) => {
                    // A resume that could not be served is the server's other way to say gap.
                    if let (Some(&last), Some(false)) = (seen.seqs.last(), v["recovered"].as_bool())
                    {
                        seen.gaps.push((last + 1, v["seq"].as_u64().expect("seq")));
                    }
                    epoch = v["epoch"].as_str().map(str::to_string);
                }
                (Some("event"), _) => seen.seqs.push(v["seq"].as_u64().expect("seq")),
                (Some("info"), Some("gap")) => seen.gaps.push((
                    v["from_seq"].as_u64().expect("from_seq"),
                    v["to_seq"].as_u64().expect("to_seq"),
                )),
                (Some("error"), _) => break,
                _ => {}
            }
            if done(&seen, *final_seq.borrow()) {
                return seen;
            }
        }
        seen.drops += 1;
    }
}

/// A cluster of two nodes, node 1 reaching NATS through a [`LinkProxy`].
async fn node_behind_proxy(env: &[(&str, &str)]) -> (Cluster, LinkProxy) {
    let mut cluster = Cluster::start(1, env).await;
    let proxy = LinkProxy::start(cluster.nats_port).await;
    cluster.env.push((
        "NATS_URL".into(),
        format!("nats://127.0.0.1:{}", proxy.port),
    ));
    let port = free_port();
    let proc = cluster.spawn_node(port, 1);
    cluster.nodes.push(Node { port, proc });
    cluster.wait_ready(1).await;
    (cluster, proxy)
}

/// Node 1 reaches NATS through a proxy that freezes for 4 s, then dies and comes back 2 s later,
/// while both nodes publish (each ack awaited) and three subscribers on each node read at full
/// speed. Returns the acknowledged `seq`s and what each subscriber (node 0's first) saw, and the
/// cluster (its logs are kept if the test then fails).
async fn partition_run(env: &[(&str, &str)]) -> (Vec<u64>, Vec<Seen>, Cluster) {
    let (cluster, mut proxy) = node_behind_proxy(env).await;
    create_topic(&cluster.nodes[0].url("/topics"), "part").await;

    let (final_tx, final_rx) = tokio::sync::watch::channel(0u64);
    let subscribers: Vec<_> = (0..6)
        .map(|i| {
            let url = cluster.nodes[i / 3].ws();
            tokio::spawn(partition_subscriber(url, "part", final_rx.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = tokio_util::sync::CancellationToken::new();
    let publishers: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| {
            let (url, stop) = (node.url("/publish"), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut k = 0u64;
                while !stop.is_cancelled() {
                    k += 1;
                    let (status, body) = rest_publish(&url, "part", json!(k)).await;
                    if status == 200 {
                        acked.push(body["seq"].as_u64().expect("seq"));
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                acked
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.freeze(true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore().await;
    cluster.wait_ready(1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut acked = Vec::new();
    for p in publishers {
        acked.extend(p.await.expect("publisher"));
    }
    acked.sort_unstable();
    final_tx
        .send(*acked.last().expect("acks"))
        .expect("final seq");
    let mut seen = Vec::new();
    for s in subscribers {
        seen.push(
            tokio::time::timeout(SETTLE, s)
                .await
                .expect("subscriber finished")
                .expect("subscriber"),
        );
    }
    (acked, seen, cluster)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_nats_catches_up_without_dropping_anyone() {
    let (acked, seen, _cluster) = partition_run(&[]).await;
    assert!(
        acked.len() > 500,
        "publishers made progress: {}",
        acked.len()
    );
    for (i, s) in seen.iter().enumerate() {
        let node = i / 3;
        assert!(s.gaps.is_empty(), "node {node}: gap notices {:?}", s.gaps);
        check_partition_subscriber(node, s, &acked);
        assert_eq!(s.drops, 0, "node {node}: disconnected {:?}", s.closes);
    }
}

/// A partition subscriber on `node` saw events in `seq` order, each once, and every acknowledged
/// one either arrived or lies in a gap it was told of.
fn check_partition_subscriber(node: usize, s: &Seen, acked: &[u64]) {
    assert!(
        s.seqs.windows(2).all(|w| w[0] < w[1]),
        "node {node}: duplicate or out of order"
    );
    let got: HashSet<u64> = s.seqs.iter().copied().collect();
    let unexplained: Vec<_> = acked
        .iter()
        .filter(|a| !got.contains(a) && !s.gaps.iter().any(|(f, t)| (*f..=*t).contains(*a)))
        .collect();
    assert!(
        unexplained.is_empty(),
        "node {node}: {} acknowledged, neither delivered nor in a gap notice, first {:?}; \
         {} drops {:?}",
        unexplained.len(),
        &unexplained[..unexplained.len().min(5)],
        s.drops,
        s.closes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_longer_than_retention_tells_its_subscribers_of_the_gap() {
    let tiny = [
        ("RING_BUFFER_SIZE", "20"),
        ("STREAM_MAX_MSGS_PER_TOPIC", "20"),
    ];
    let (acked, seen, _cluster) = partition_run(&tiny).await;
    let mut told = 0;
    for (i, s) in seen.iter().enumerate() {
        check_partition_subscriber(i / 3, s, &acked);
        told += usize::from(!s.gaps.is_empty());
    }
    assert!(
        told >= 3,
        "node 1's subscribers were told of the gap: {told}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_publisher_gets_every_publish_answered_in_order_through_a_nats_freeze() {
    use tokio_tungstenite::tungstenite::Message;
    // A pipelining publisher's burst is live traffic: the subscriber's queue must hold it.
    let queue = [
        ("RING_BUFFER_SIZE", "5000"),
        ("SUBSCRIBER_QUEUE_SIZE", "5000"),
    ];
    let cluster = Cluster::start(2, &queue).await;
    let n = &cluster.nodes;
    let (final_tx, final_rx) = tokio::sync::watch::channel(0u64);
    let subscriber = tokio::spawn(partition_subscriber(n[1].ws(), "piped", final_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (ws, _) = tokio_tungstenite::connect_async(n[0].ws())
        .await
        .expect("connect");
    let (mut tx, mut rx) = ws.split();
    const TOTAL: usize = 1500;
    let replies = tokio::spawn(async move {
        let mut replies = Vec::with_capacity(TOTAL);
        while replies.len() < TOTAL {
            let message = tokio::time::timeout(SETTLE, rx.next())
                .await
                .expect("a reply within the timeout")
                .expect("connection open")
                .expect("frame");
            if let Message::Text(text) = message {
                let v: Value = serde_json::from_str(&text).expect("JSON");
                if v["type"] != "info" {
                    replies.push(v);
                }
            }
        }
        replies
    });
    use futures_util::SinkExt;
    for i in 0..TOTAL {
        if i == 500 {
            cluster.nats.signal("STOP");
        }
        if i == 1000 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            cluster.nats.signal("CONT");
        }
        let frame = json!({"type": "publish", "topic": "piped", "request_id": format!("p{i}"),
            "message": {"payload": i}});
        tx.send(Message::text(frame.to_string()))
            .await
            .expect("send");
    }
    let replies = replies.await.expect("reader");
    // Every publish answered, in the order sent; the acked ones in stream order.
    let mut acked = Vec::new();
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply["request_id"], format!("p{i}"), "reply {i}: {reply}");
        match reply["type"].as_str() {
            Some("ack") => acked.push(reply["seq"].as_u64().expect("seq")),
            Some("error") => assert_eq!(reply["error"]["code"], "INTERNAL", "{reply}"),
            _ => panic!("reply {i}: {reply}"),
        }
    }
    assert!(
        acked.windows(2).all(|w| w[0] < w[1]),
        "acked seqs follow the send order"
    );
    assert!(acked.len() >= 1000, "{} of {TOTAL} acked", acked.len());
    // Every acked one reaches the other node's subscriber once, in order (unacked ones that NATS
    // stored after all may come too).
    final_tx
        .send(*acked.last().expect("acks"))
        .expect("final seq");
    let seen = tokio::time::timeout(SETTLE, subscriber)
        .await
        .expect("the subscriber saw the last ack")
        .expect("subscriber");
    assert_eq!(seen.drops, 0, "subscriber disconnected: {:?}", seen.closes);
    assert!(seen.gaps.is_empty(), "{:?}", seen.gaps);
    common::assert::assert_acked_once_in_order("subscriber on node 1", &seen.seqs, &acked);
}

/// Node 1 reaches NATS through a proxy frozen for 6 s, longer than any single NATS call waits,
/// while node 0 publishes and its subscriber reads. A client moving to node 1 resumes from what
/// node 0 gave it: the resume waits until node 1 has caught up and is exact. A `since_seq` the
/// stream never held is told `recovered: false` without waiting for the same bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_on_a_node_that_lags_past_a_nats_timeout_is_still_exact() {
    let (cluster, proxy) = node_behind_proxy(&[]).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    // Node 1 knows the topic before it is cut off, so it can take the subscribe alone.
    create_topic(&n0.url("/topics"), "lag").await;
    let deadline = Instant::now() + SETTLE;
    while get(&n1.url("/topics/lag")).await.0 != 200 {
        assert!(Instant::now() < deadline, "node 1 never learned the topic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut first = WsClient::connect(&n0.ws()).await;
    let ack = subscribe(
        &mut first,
        json!({"type": "subscribe", "topic": "lag", "since_seq": 0}),
    )
    .await;
    let epoch = ack["epoch"].as_str().expect("epoch").to_owned();
    proxy.freeze(true);
    let mut acked = Vec::new();
    for k in 0..5 {
        let (status, body) = rest_publish(&n0.url("/publish"), "lag", json!(k)).await;
        assert_eq!(status, 200, "{body}");
        acked.push(body["seq"].as_u64().expect("seq"));
    }
    assert_eq!(seqs(&events(&mut first, 5).await), acked);
    drop(first);

    let since = *acked.last().expect("acked");
    let thaw = Duration::from_secs(6);
    let unfreeze = tokio::spawn(async move {
        tokio::time::sleep(thaw).await;
        proxy.freeze(false);
        proxy
    });
    let mut moved = WsClient::connect(&n1.ws()).await;
    let asked = Instant::now();
    let ack = subscribe(
        &mut moved,
        json!({"type": "subscribe", "topic": "lag", "since_seq": since, "epoch": epoch}),
    )
    .await;
    let waited = asked.elapsed();
    eprintln!("the resume on the lagging node answered after {waited:?}");
    assert_eq!(ack["recovered"], true, "after {waited:?}: {ack}");
    assert!(ack["seq"].as_u64() >= Some(since), "{ack}");
    assert!(
        waited >= thaw - Duration::from_secs(1),
        "node 1 was cut off, yet answered after {waited:?}"
    );
    let _proxy = unfreeze.await.expect("proxy");
    // Nothing is replayed twice: the next event is the next publish.
    let (status, body) = rest_publish(&n0.url("/publish"), "lag", json!("after")).await;
    assert_eq!(status, 200, "{body}");
    let next = events(&mut moved, 1).await;
    assert_eq!(seqs(&next), [body["seq"].as_u64().expect("seq")]);

    // A `since_seq` no node ever gave out: node 0 is up to date and the stream is healthy.
    let mut future = WsClient::connect(&n0.ws()).await;
    let asked = Instant::now();
    let ack = subscribe(
        &mut future,
        json!({"type": "subscribe", "topic": "lag", "since_seq": since + 1_000, "epoch": epoch}),
    )
    .await;
    let waited = asked.elapsed();
    eprintln!("a since_seq from the future answered after {waited:?}");
    assert_eq!(ack["recovered"], false, "{ack}");
    assert!(
        waited < Duration::from_secs(8),
        "a since_seq from the future waited {waited:?}"
    );
}
