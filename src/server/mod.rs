//! The network side: one listener serves REST and WebSocket upgrades over hyper 1.
//!
//! - [`run`]: the accept loop and graceful shutdown (PROTOCOL.md §7).
//! - `http`: routing, auth and the REST routes (§2–§4).
//! - `assets`: the embedded API documents and dashboard, served without a key.
//! - `upgrade`: the WebSocket handshake on top of hyper's upgrade.
//! - `session`: one WebSocket connection: a read loop and a writer task around its outbox.

mod assets;
mod http;
mod rest;
mod session;
mod upgrade;
mod write_buf;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, field, info, info_span, warn, Instrument};

use crate::broker::{Broker, ConnId};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::tls;

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
    /// Request, frame and outbox metrics for `/metrics`.
    metrics: Metrics,
    /// Present when TLS is configured: every accepted connection handshakes first.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl State {
    fn new(config: Config, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let limit = config.max_message_bytes + FRAME_ENVELOPE_BYTES;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.ws_read_buffer_size)
            // Frames go straight to write_buf::WriteBuf, which does the buffering (see there).
            .write_buffer_size(0)
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
            metrics: Metrics::default(),
            tls,
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
    let tls = match &config.tls {
        Some(files) => Some(
            tls::server_config(files)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    let state = Arc::new(State::new(config, tls));
    let local = listener.local_addr()?;
    info!(addr = %local, tls = state.tls.is_some(), "herald listening");
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

/// Spawns the connection task: the TLS handshake when configured, then HTTP/1.1 (upgrades
/// included).
fn serve_connection(state: &Arc<State>, stream: TcpStream, peer: SocketAddr) {
    // Events are small and latency matters more than packet count; batching happens in the writer.
    let _ = stream.set_nodelay(true);
    let state = state.clone();
    let conn = state.broker.next_conn_id();
    // Every log line of the connection, its WebSocket session included, carries these fields;
    // `route` and `client_id` are recorded when a WebSocket upgrade names them.
    let span = info_span!(
        "conn",
        conn_id = conn.0,
        %peer,
        route = field::Empty,
        client_id = field::Empty
    );
    let tracker = state.tracker.clone();
    tracker.spawn(
        async move {
            let Some(tls) = state.tls.clone() else {
                return serve_http(state, stream, peer, conn).await;
            };
            let accepted = tokio::select! {
                accepted = tls::accept(tls, stream, state.config.header_read_timeout) => accepted,
                _ = state.shutdown.cancelled() => return,
            };
            match accepted {
                Ok(stream) => serve_http(state, stream, peer, conn).await,
                Err(e) => debug!(error = %e, "connection refused"),
            }
        }
        .instrument(span),
    );
}

/// Serves HTTP/1.1 on `io` until the client leaves or shutdown ends the connection.
async fn serve_http<S>(state: Arc<State>, io: S, peer: SocketAddr, conn: ConnId)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_state = state.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        // The connection's id, for the WebSocket session an upgrade may start.
        req.extensions_mut().insert(conn);
        http::handle(service_state.clone(), req, peer)
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service)
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
        debug!(error = %e, "http connection ended with an error");
    }
}
