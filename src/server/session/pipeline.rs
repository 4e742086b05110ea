//! Pipelined publishes in cluster mode (issue 19): a connection's publishes are handed to NATS in
//! the order they arrive and their PubAcks awaited together, up to `MAX_INFLIGHT_PUBLISHES` at a
//! time, instead of one NATS round trip per message. Their replies still go out in the order the
//! publishes arrived, errors included. On a single node a publish never waits, so this is unused.

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;

use crate::protocol::Frame;

/// A publish's reply once its PubAck (or failure) is known; `None` when it gets no reply (a seed-c
/// `action` publish without `request_id`).
pub(super) type Reply = Pin<Box<dyn Future<Output = Option<Frame>> + Send>>;

/// The publishes of one connection waiting for their PubAck, oldest first.
#[derive(Default)]
pub(super) struct Pipeline {
    /// Replies in the order the publishes arrived.
    replies: FuturesOrdered<Reply>,
}

impl Pipeline {
    /// Publishes waiting.
    pub(super) fn len(&self) -> usize {
        self.replies.len()
    }

    /// Queues the reply of the newest publish.
    pub(super) fn push(&mut self, reply: Reply) {
        self.replies.push_back(reply);
    }

    /// The oldest publish's reply, once it is known (pending forever when nothing waits, so it
    /// can sit in a `select!` next to the socket).
    pub(super) async fn next(&mut self) -> Option<Frame> {
        if self.replies.is_empty() {
            return std::future::pending().await;
        }
        self.replies.next().await.flatten()
    }
}
