//! Test harness: a real herald on 127.0.0.1:0, real sockets, helpers for WebSocket and HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald::config::Config;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame it expects before failing.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// A herald server running in this process on an ephemeral port; shut down on drop.
pub struct TestServer {
    /// The bound address (127.0.0.1:port).
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with PROTOCOL.md defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with a config adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::default();
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        config.addr = addr;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(herald::run(config, listener, async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://127.0.0.1:port{path}`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Opens a WebSocket on `/ws`.
    pub async fn ws(&self) -> WsClient {
        self.ws_path("/ws").await
    }

    /// Opens a WebSocket on any path (with query string).
    pub async fn ws_path(&self, path: &str) -> WsClient {
        WsClient::connect(&self.ws_url(path)).await
    }

    /// Signals shutdown and waits (bounded) for `run` to return.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("server task");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server did not stop within 30 s")
            .expect("server task panicked")
    }

    /// Triggers shutdown without waiting; returns the join handle.
    pub fn trigger_shutdown(&mut self) -> JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().expect("server task")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A reqwest client for REST calls.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(RECV_TIMEOUT)
        .build()
        .unwrap()
}

/// A raw WebSocket client with JSON helpers.
pub struct WsClient {
    /// The underlying stream, for tests that need raw frames.
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects, panicking on failure.
    pub async fn connect(url: &str) -> Self {
        let (inner, _resp) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Self { inner }
    }

    /// Connects and returns the error (for upgrade-refused tests).
    pub async fn try_connect(url: &str) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let (inner, _resp) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { inner })
    }

    /// Sends one JSON value as a text frame.
    pub async fn send_json(&mut self, value: Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.inner
            .send(Message::text(text.to_string()))
            .await
            .expect("send");
    }

    /// Next message of any kind, or `None` when the stream ends; panics after `RECV_TIMEOUT`.
    pub async fn recv_message(&mut self) -> Option<Message> {
        match tokio::time::timeout(RECV_TIMEOUT, self.inner.next()).await {
            Ok(Some(Ok(m))) => Some(m),
            Ok(Some(Err(_))) | Ok(None) => None,
            Err(_) => panic!("no message within {RECV_TIMEOUT:?}"),
        }
    }

    /// Next text frame parsed as JSON (pings/pongs skipped); panics on close or timeout.
    pub async fn recv_json(&mut self) -> Value {
        loop {
            match self.recv_message().await {
                Some(Message::Text(t)) => {
                    return serde_json::from_str(&t).expect("server sent JSON")
                }
                Some(Message::Binary(b)) => return serde_json::from_slice(&b).expect("JSON"),
                Some(Message::Ping(_)) | Some(Message::Pong(_)) | Some(Message::Frame(_)) => {}
                Some(Message::Close(c)) => panic!("unexpected close: {c:?}"),
                None => panic!("connection ended while waiting for a frame"),
            }
        }
    }

    /// Like `recv_json` but skips heartbeat `info` frames.
    pub async fn recv_json_no_heartbeat(&mut self) -> Value {
        loop {
            let v = self.recv_json().await;
            if !(v["type"] == "info" && v["msg"] == "ping") {
                return v;
            }
        }
    }

    /// Sends a frame and returns the next non-event, non-heartbeat reply.
    pub async fn request(&mut self, value: Value) -> Value {
        self.send_json(value).await;
        loop {
            let v = self.recv_json_no_heartbeat().await;
            if v["type"] != "event" {
                return v;
            }
        }
    }

    /// Subscribes to `topic` and returns the ack (asserted to be an ack).
    pub async fn subscribe(&mut self, topic: &str) -> Value {
        let ack = self
            .request(serde_json::json!({"type": "subscribe", "topic": topic}))
            .await;
        assert_eq!(ack["type"], "ack", "subscribe to {topic} not acked: {ack}");
        ack
    }

    /// Publishes `payload` to `topic` and returns the ack (asserted to be an ack).
    pub async fn publish(&mut self, topic: &str, payload: Value) -> Value {
        let ack = self
            .request(serde_json::json!({"type": "publish", "topic": topic,
                "message": {"payload": payload}}))
            .await;
        assert_eq!(ack["type"], "ack", "publish to {topic} not acked: {ack}");
        ack
    }

    /// Waits for the close frame (skipping anything before it) and returns it.
    pub async fn recv_close(&mut self) -> Option<CloseFrame> {
        loop {
            match self.recv_message().await {
                Some(Message::Close(c)) => return c,
                None => return None,
                Some(_) => {}
            }
        }
    }

    /// Asserts no text frame other than heartbeats arrives within `dur`.
    pub async fn expect_silence(&mut self, dur: Duration) {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            match tokio::time::timeout_at(deadline, self.inner.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if !(v["type"] == "info" && v["msg"] == "ping") {
                        panic!("expected silence, got {v}");
                    }
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("socket error while expecting silence: {e}"),
                Ok(None) => panic!("connection closed while expecting silence"),
            }
        }
    }
}

/// A port for a spawned `herald` binary that is free now and unlikely to be taken before the
/// child binds it: it lies below Linux's ephemeral range (32768+), from which every other test's
/// `:0` listeners and outgoing connections draw, and is checked on all interfaces.
pub fn free_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..1000u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 12_000) as u16;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}
