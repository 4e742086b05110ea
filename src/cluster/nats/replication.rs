//! The state of a replicated backplane, shared by `replicas.rs` (which creates the stream and
//! bucket with `NATS_REPLICAS` copies) and `leader.rs` (which watches the stream's leader).

use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::watch;

/// The replica count asked for and what the node knows of the stream's leader.
#[derive(Debug)]
pub(super) struct Replication {
    /// `NATS_REPLICAS`.
    pub(super) replicas: usize,
    /// The last look-up found a stream leader.
    pub(super) leader: AtomicBool,
    /// The stream's last sequence, as of the last look-up a leader answered.
    pub(super) stream_last: AtomicU64,
    /// Look-ups a leader answered (each sets `stream_last` first), so a waiter can tell one that
    /// began after it did.
    pub(super) looks: AtomicU64,
    /// Set once when NATS refuses the replica count: the line the node stops with.
    pub(super) refused: watch::Sender<Option<String>>,
}

impl Replication {
    /// Nothing known yet; `replicas` is `NATS_REPLICAS`.
    pub(super) fn new(replicas: usize) -> Self {
        Self {
            replicas: replicas.max(1),
            leader: AtomicBool::new(false),
            stream_last: AtomicU64::new(0),
            looks: AtomicU64::new(0),
            refused: watch::Sender::new(None),
        }
    }
}
