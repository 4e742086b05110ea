//! Who a topic delivers to: a connection's id and its outbox.

use std::sync::Arc;

use super::outbox::Outbox;
use crate::protocol::Dialect;

/// A connection's identity inside the engine, unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A connection subscribed to a topic: who it is and where its frames go.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection, to find it again on unsubscribe.
    pub conn: ConnId,
    /// Its outbound queue.
    pub outbox: Arc<Outbox>,
    /// The shape this subscription's events take (fixed when it was made).
    pub dialect: Dialect,
}
