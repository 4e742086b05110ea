//! [`State`]: what every connection task of the server shares.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::node::Node;

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
    pub(super) config: Config,
    /// The one door into the engine.
    pub(super) node: Arc<Node>,
    /// Set on SIGTERM while the lame-duck drain runs: `/readyz` answers 503 and upgrades are
    /// refused, so the load balancer sends new clients elsewhere.
    pub(super) draining: AtomicBool,
    /// Cancelled one after another during the drain; each session watches one of them.
    pub(super) drain_batches: Box<[CancellationToken]>,
    /// Cancelled when shutdown starts; every task watches it.
    pub(super) shutdown: CancellationToken,
    /// Every spawned connection task, so shutdown can wait for them.
    pub(super) tracker: TaskTracker,
    /// WebSocket buffer and size limits, built once.
    pub(super) ws_config: WebSocketConfig,
    /// Request, frame and outbox metrics for `/metrics`.
    pub(super) metrics: Metrics,
    /// Present when TLS is configured: every accepted connection handshakes first.
    pub(super) tls: Option<Arc<rustls::ServerConfig>>,
}

impl State {
    pub(super) fn new(
        config: Config,
        node: Arc<Node>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let limit = config.max_message_bytes + FRAME_ENVELOPE_BYTES;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.ws_read_buffer_size)
            // tungstenite only writes control frames (pongs, close replies); they go straight to the
            // session's read-ahead reader, and the writer task frames and buffers everything else
            // (wire).
            .write_buffer_size(0)
            // The writer flushes once per batch, so the buffer must hold a batch plus the largest
            // frame; past this the sink applies backpressure to the writer task (never to others).
            .max_write_buffer_size(config.ws_write_buffer_size.max(limit) * 2)
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        // Drain groups are children of shutdown, and each connection's stop token a child of its
        // group, so a connection waits on one token for all three (see `session::reader`).
        let shutdown = CancellationToken::new();
        Self {
            node,
            draining: AtomicBool::new(false),
            drain_batches: (0..DRAIN_BATCHES).map(|_| shutdown.child_token()).collect(),
            config,
            shutdown,
            tracker: TaskTracker::new(),
            ws_config,
            metrics: Metrics::default(),
            tls,
        }
    }

    /// Whether new clients should be sent elsewhere (`/readyz` 503).
    pub(super) fn unready(&self) -> Option<&'static str> {
        if self.shutdown.is_cancelled() || self.draining.load(Ordering::Relaxed) {
            Some("draining")
        } else {
            self.node.unready_reason()
        }
    }
}
