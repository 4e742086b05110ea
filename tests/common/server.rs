//! A real herald started in this process on `127.0.0.1:0`, stopped on drop.

use std::net::SocketAddr;
use std::time::Duration;

use herald::config::Config;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::ws::WsClient;

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
