//! Token auth in cluster mode (issue 15, PROTOCOL.md §4 and §8): every node verifies on its own,
//! so a token minted once works on each of them, and a right it lacks is refused on each. Real
//! processes: `nats-server -js` and two `herald` nodes on loopback ports (Debian packages
//! `nats-server`; without it this test fails and says so).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::jwt::*;
use common::{free_port, WsClient};
use reqwest::Method;
use serde_json::{json, Value};

/// Longest wait for a process to come up.
const SETTLE: Duration = Duration::from_secs(20);

/// A child process, killed and reaped on drop (also when the test panics).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// nats-server and two herald nodes sharing `JWT_SECRET`, in a temporary directory.
struct TwoNodes {
    dir: PathBuf,
    ports: [u16; 2],
    // Fields drop in order: the nodes are killed before NATS.
    _nodes: Vec<Killed>,
    _nats: Killed,
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("cluster logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl TwoNodes {
    async fn start() -> Self {
        let nats_bin = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nats-server not found: apt-get install -y nats-server");
        let dir = std::env::temp_dir().join(format!(
            "herald-jwt-cluster-{}-{}",
            std::process::id(),
            now()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = |name: &str| Stdio::from(std::fs::File::create(dir.join(name)).expect("log"));
        let nats_port = free_port();
        let nats = Killed(
            Command::new(nats_bin)
                .args([
                    "-js",
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &nats_port.to_string(),
                    "-sd",
                ])
                .arg(dir.join("js"))
                .stdout(log("nats.out"))
                .stderr(log("nats.err"))
                .spawn()
                .expect("spawn nats-server"),
        );
        let ports = [free_port(), free_port()];
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                Killed(
                    Command::new(env!("CARGO_BIN_EXE_herald"))
                        .env_clear()
                        .env("PATH", std::env::var("PATH").unwrap_or_default())
                        .env("ADDR", format!("127.0.0.1:{port}"))
                        .env("NATS_URL", format!("nats://127.0.0.1:{nats_port}"))
                        .env("NODE_ID", format!("jwt{i}"))
                        .env("JWT_SECRET", SECRET)
                        .env("SHUTDOWN_TIMEOUT_SECS", "1")
                        .env("RUST_LOG", "info")
                        .stdout(log(&format!("node{i}.out")))
                        .stderr(log(&format!("node{i}.err")))
                        .spawn()
                        .expect("spawn herald"),
                )
            })
            .collect();
        let cluster = Self {
            dir,
            ports,
            _nodes: nodes,
            _nats: nats,
        };
        for i in 0..2 {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn http(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    fn ws(&self, i: usize) -> String {
        format!("ws://127.0.0.1:{}", self.ports[i])
    }

    /// `/readyz` of node `i` answers 200 (it needs no credentials).
    async fn wait_ready(&self, i: usize) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let ok = common::http()
                .get(format!("{}/readyz", self.http(i)))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The next event on `ws` (anything else but heartbeats fails).
async fn event(ws: &mut WsClient, what: &str) -> Value {
    let v = ws.recv_json_no_heartbeat().await;
    assert_eq!(v["type"], "event", "{what}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_minted_once_works_on_both_nodes_and_its_limits_hold_on_both() {
    let cluster = TwoNodes::start().await;
    let t = token("u1", 3600, rights(&["chat.*"], &["chat.*"], &[]));
    let admin = token("root", 3600, admin_rights());
    // Subscribers on node A: one with the token, one admin on a topic the token may not touch.
    let mut sub = ws_at(&cluster.ws(0), "/ws", Cred::Query(&t))
        .await
        .expect("A ?token=");
    let ack = try_subscribe(&mut sub, "chat.room1", "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let err = try_subscribe(&mut sub, "secret.x", "s2").await;
    assert_error_frame(&err, "FORBIDDEN", "s2", &t, "A: subscribe beyond the token");
    let mut watcher = ws_at(&cluster.ws(0), "/ws", Cred::Bearer(&admin))
        .await
        .expect("A admin");
    let ack = try_subscribe(&mut watcher, "secret.x", "w").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // Publish on node B with the same token: over WebSocket (auth frame) and REST.
    let mut publisher = ws_at(&cluster.ws(1), "/ws", Cred::None).await.expect("B");
    let ack = authenticate(&mut publisher, &t, "a").await;
    assert_eq!(ack["client_id"], "u1", "{ack}");
    let ack = try_publish(&mut publisher, "chat.room1", json!("from B, ws"), "p").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ev = event(&mut sub, "A gets B's WebSocket publish").await;
    assert_eq!(ev["message"]["payload"], "from B, ws", "{ev}");
    let (status, body) = rest_at(
        &cluster.http(1),
        Method::POST,
        "/publish",
        Cred::Bearer(&t),
        Some(json!({"topic": "chat.room1", "data": "from B, rest"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ev = event(&mut sub, "A gets B's REST publish").await;
    assert_eq!(ev["message"]["payload"], "from B, rest", "{ev}");

    // The forbidden publish is refused on both nodes, over both transports.
    for i in 0..2 {
        let mut ws = ws_at(&cluster.ws(i), "/ws", Cred::Bearer(&t))
            .await
            .expect("ws");
        let err = try_publish(&mut ws, "secret.x", json!("leak"), "f").await;
        assert_error_frame(&err, "FORBIDDEN", "f", &t, &format!("node {i}: WS publish"));
        let got = rest_at(
            &cluster.http(i),
            Method::POST,
            "/publish",
            Cred::Bearer(&t),
            Some(json!({"topic": "secret.x", "data": "leak"})),
        )
        .await;
        assert_error(
            &got,
            403,
            "FORBIDDEN",
            &t,
            &format!("node {i}: REST publish"),
        );
        // A forged token is refused on each node too.
        let forged = wrong_signature(&claims("u1", 3600, admin_rights()));
        assert_upgrade_refused(
            ws_at(&cluster.ws(i), "/ws", Cred::Bearer(&forged)).await,
            401,
            "UNAUTHORIZED",
            &format!("node {i}: forged token"),
        );
    }
    // Nothing reached the watcher before the admin's own message.
    let (status, body) = rest_at(
        &cluster.http(1),
        Method::POST,
        "/publish",
        Cred::Bearer(&admin),
        Some(json!({"topic": "secret.x", "data": "admin"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ev = event(&mut watcher, "the admin's message is the first on secret.x").await;
    assert_eq!(
        ev["message"]["payload"], "admin",
        "a refused publish went through: {ev}"
    );
    // The shared history holds that one message only, as node A serves it.
    let (status, history) = rest_at(
        &cluster.http(0),
        Method::GET,
        "/topics/secret.x/history?last_n=10",
        Cred::Bearer(&admin),
        None,
    )
    .await;
    assert_eq!(status, 200, "{history}");
    let payloads: Vec<&Value> = history["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| &m["payload"]).collect())
        .unwrap_or_default();
    assert_eq!(payloads, [&json!("admin")], "{history}");
}
