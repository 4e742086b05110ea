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
mod wire;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
use crate::cluster::{Backplane, NodeCounts};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::tls;

/// Extra bytes a WebSocket frame may carry beyond `MAX_MESSAGE_BYTES`, for the envelope around the
/// payload (`type`, `topic`, ids). Bigger frames are refused by tungstenite with close 1009.
pub const FRAME_ENVELOPE_BYTES: usize = 64 * 1024;

/// How many groups the lame-duck drain closes connections in, one group per
/// `DRAIN_DURATION_SECS / DRAIN_BATCHES`; a connection's group is its id modulo this.
const DRAIN_BATCHES: usize = 10;

/// Everything a connection task needs, shared by all of them.
#[derive(Debug)]
pub(crate) struct State {
    /// The validated configuration.
    config: Config,
    /// The engine (shared with the cluster backplane's consumer).
    broker: Arc<Broker>,
    /// The single node or the cluster.
    backplane: Backplane,
    /// Set on SIGTERM while the lame-duck drain runs: `/readyz` answers 503 and upgrades are
    /// refused, so the load balancer sends new clients elsewhere.
    draining: AtomicBool,
    /// Cancelled one after another during the drain; each session watches one of them.
    drain_batches: Box<[CancellationToken]>,
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
    fn new(
        config: Config,
        broker: Arc<Broker>,
        backplane: Backplane,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let limit = config.max_message_bytes + FRAME_ENVELOPE_BYTES;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.ws_read_buffer_size)
            // tungstenite only writes control frames (pongs, close replies); they go straight to the
            // session's Duplex, and the writer task frames and buffers everything else (wire.rs).
            .write_buffer_size(0)
            // The writer flushes once per batch, so the buffer must hold a batch plus the largest
            // frame; past this the sink applies backpressure to the writer task (never to others).
            .max_write_buffer_size(config.ws_write_buffer_size.max(limit) * 2)
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        Self {
            broker,
            backplane,
            draining: AtomicBool::new(false),
            drain_batches: (0..DRAIN_BATCHES)
                .map(|_| CancellationToken::new())
                .collect(),
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

    /// This node's counts, for `/stats` and the cluster report.
    fn node_counts(&self) -> NodeCounts {
        NodeCounts {
            connections: self.session_count() as u64,
            slow_consumer_disconnects: self.slow_consumer_disconnects.load(Ordering::Relaxed),
            dropped: self.broker.dropped_total(),
        }
    }

    /// Whether new clients should be sent elsewhere (`/readyz` 503).
    fn unready(&self) -> Option<&'static str> {
        if self.shutdown.is_cancelled() || self.draining.load(Ordering::Relaxed) {
            Some("draining")
        } else if !self.backplane.is_ready() {
            Some("backplane unavailable")
        } else {
            None
        }
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
    let broker = Arc::new(Broker::new(&config));
    let backplane = Backplane::connect(&config, broker.clone())
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message))?;
    let state = Arc::new(State::new(config, broker, backplane, tls));
    let weak = Arc::downgrade(&state);
    state.backplane.start(
        &state.tracker,
        state.shutdown.clone(),
        Box::new(move || weak.upgrade().map(|s| s.node_counts()).unwrap_or_default()),
    );
    let local = listener.local_addr()?;
    info!(
        addr = %local,
        tls = state.tls.is_some(),
        cluster = state.backplane.is_cluster(),
        "herald listening"
    );
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => on_accept(&state, accepted).await,
        }
    }
    if !state.config.drain_duration.is_zero() {
        // Lame duck: keep answering (/readyz says 503, REST still works) while the sessions are
        // closed group by group, so their clients reconnect to other nodes without a storm.
        state.draining.store(true, Ordering::Relaxed);
        info!(sessions = state.session_count(), duration = ?state.config.drain_duration, "draining");
        let mut drain = std::pin::pin!(drain_sessions(&state));
        loop {
            tokio::select! {
                _ = &mut drain => break,
                accepted = listener.accept() => on_accept(&state, accepted).await,
            }
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

/// Serves an accepted connection, or backs off after an accept error.
async fn on_accept(state: &Arc<State>, accepted: io::Result<(TcpStream, SocketAddr)>) {
    match accepted {
        Ok((stream, peer)) => serve_connection(state, stream, peer),
        Err(e) if is_transient(&e) => debug!(error = %e, "accept: connection vanished"),
        Err(e) => {
            // Typically EMFILE: back off instead of spinning, connections will close.
            error!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Closes the sessions in `DRAIN_BATCHES` groups spread evenly over `DRAIN_DURATION_SECS`. The
/// first group goes after one step, which gives load balancers time to see `/readyz` fail.
async fn drain_sessions(state: &State) {
    let start = tokio::time::Instant::now();
    let step = state.config.drain_duration / state.drain_batches.len() as u32;
    for (i, batch) in state.drain_batches.iter().enumerate() {
        tokio::time::sleep_until(start + step * (i as u32 + 1)).await;
        batch.cancel();
    }
    // Let the last group send its 1012 before shutdown would close it with 1001.
    let grace = tokio::time::Instant::now() + Duration::from_secs(1);
    while state.session_count() > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
