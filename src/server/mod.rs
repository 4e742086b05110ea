//! The network side: one listener serves REST and WebSocket upgrades over hyper 1.
//!
//! - [`run`]: the accept loop and graceful shutdown (PROTOCOL.md §7).
//! - `http`: routing, auth and the REST routes (§2–§4).
//! - `upgrade`: the WebSocket handshake on top of hyper's upgrade.
//! - `session`: one WebSocket connection: a read loop and a writer task around its outbox.

mod http;
mod rest;
mod session;
mod upgrade;
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::broker::Broker;
use crate::config::Config;

/// Extra bytes a WebSocket frame may carry beyond `MAX_MESSAGE_BYTES`, for the envelope around the
/// payload (`type`, `topic`, ids). Bigger frames are refused by tungstenite with close 1009.
pub const FRAME_ENVELOPE_BYTES: usize = 64 * 1024;

/// Everything a connection task needs, shared by all of them.
#[derive(Debug)]
pub(crate) struct State {
    /// The validated configuration.
    config: Config,
    /// The engine.
    broker: Broker,
    /// Cancelled when shutdown starts; every task watches it.
    shutdown: CancellationToken,
    /// Every spawned connection task, so shutdown can wait for them.
    tracker: TaskTracker,
    /// WebSocket buffer and size limits, built once.
    ws_config: WebSocketConfig,
    /// Open WebSocket sessions, for `/health` and `/stats`.
    sessions: AtomicUsize,
    /// Connections closed because their outbox overflowed under `disconnect`.
    slow_consumer_disconnects: AtomicU64,
}

impl State {
    fn new(config: Config) -> Self {
        let limit = config.max_message_bytes + FRAME_ENVELOPE_BYTES;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.ws_read_buffer_size)
            .write_buffer_size(config.ws_write_buffer_size)
            // The writer flushes once per batch, so the buffer must hold a batch plus the largest
            // frame; past this the sink applies backpressure to the writer task (never to others).
            .max_write_buffer_size(config.ws_write_buffer_size.max(limit) * 2)
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        Self {
            broker: Broker::new(&config),
            config,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            ws_config,
            sessions: AtomicUsize::new(0),
            slow_consumer_disconnects: AtomicU64::new(0),
        }
    }

    /// Open WebSocket sessions.
    fn session_count(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }
}

/// Serves herald on `listener` until `shutdown` resolves, then drains (PROTOCOL.md §7): stops
/// accepting, lets every WebSocket flush its queue, sends `shutting_down` and a 1001 close, and
/// returns once every connection task ended or `SHUTDOWN_TIMEOUT_SECS` (plus a small margin) passed.
pub async fn run(config: Config, listener: TcpListener, shutdown: impl Future) -> io::Result<()> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let state = Arc::new(State::new(config));
    let local = listener.local_addr()?;
    info!(addr = %local, "herald listening");
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => serve_connection(&state, stream, peer),
                Err(e) if is_transient(&e) => debug!(error = %e, "accept: connection vanished"),
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning, connections will close.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    info!(sessions = state.session_count(), "shutting down");
    state.shutdown.cancel();
    state.tracker.close();
    let margin = Duration::from_secs(2);
    if tokio::time::timeout(state.config.shutdown_timeout + margin, state.tracker.wait())
        .await
        .is_err()
    {
        warn!("some connections did not finish within the shutdown timeout");
    }
    info!("stopped");
    Ok(())
}

/// Errors that concern one connection only and need no back-off.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Spawns the HTTP/1.1 connection task (upgrades included).
fn serve_connection(state: &Arc<State>, stream: TcpStream, peer: SocketAddr) {
    // Events are small and latency matters more than packet count; batching happens in the writer.
    let _ = stream.set_nodelay(true);
    let state = state.clone();
    let tracker = state.tracker.clone();
    tracker.spawn(async move {
        let service_state = state.clone();
        let service = service_fn(move |req| http::handle(service_state.clone(), req, peer));
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(state.config.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut conn = std::pin::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            _ = state.shutdown.cancelled() => {
                conn.as_mut().graceful_shutdown();
                match tokio::time::timeout(state.config.shutdown_timeout, conn).await {
                    Ok(result) => result,
                    Err(_) => Ok(()),
                }
            }
        };
        if let Err(e) = result {
            debug!(%peer, error = %e, "http connection ended with an error");
        }
    });
}
