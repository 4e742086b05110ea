//! Who a topic delivers to: a connection's id and its outbox, in one list per event shape.

use std::sync::Arc;

use super::outbox::{Outbox, Outgoing, Pushed};
use crate::protocol::Dialect;

/// A connection's identity inside the engine, unique for the process's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// A connection asking to subscribe: who it is, where its frames go, and in which shape.
#[derive(Debug, Clone)]
pub struct Subscriber {
    /// The connection, to find it again on unsubscribe.
    pub conn: ConnId,
    /// Its outbound queue.
    pub outbox: Arc<Outbox>,
    /// The shape this subscription's events take (fixed when it was made).
    pub dialect: Dialect,
}

/// A subscription as a topic keeps it for fan-out: two words, since every publish walks the list.
/// Its shape is the list it is in ([`Subscribers`]).
#[derive(Debug, Clone)]
pub(crate) struct Recipient {
    /// The connection.
    pub(crate) conn: ConnId,
    /// Its outbound queue.
    pub(crate) outbox: Arc<Outbox>,
}

/// A topic's subscribers by event shape; replaced copy-on-write, read lock-free by publishers.
/// Keeping seed-c subscribers apart leaves the canonical fan-out loop exactly as it was: a topic
/// without any pays one empty-list check per publish, nothing per delivery. Pattern subscribers
/// (issue 20) are merged in when they match, so a connection appears once however many of its
/// subscriptions match; `direct` counts the exact subscriptions among them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscribers {
    /// Canonical subscriptions (seed a's included): the stored event frame.
    pub(crate) plain: Vec<Recipient>,
    /// Seed-c subscriptions: the event's seed-c frame.
    pub(crate) seed_c: Vec<Recipient>,
    /// How many of the connections listed subscribed to the topic by name.
    pub(crate) direct: usize,
}

impl Subscribers {
    /// How many exact subscriptions there are (pattern ones are counted server-wide apart).
    pub(crate) fn len(&self) -> usize {
        self.direct
    }

    /// Whether there is no exact subscription (pattern subscribers do not keep a topic alive).
    pub(crate) fn is_empty(&self) -> bool {
        self.direct == 0
    }

    /// Every recipient, canonical first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Recipient> {
        self.plain.iter().chain(&self.seed_c)
    }

    /// A copy with `subscriber` added to the list of its shape; `direct` when by name.
    pub(crate) fn with(&self, subscriber: &Subscriber, direct: bool) -> Self {
        let mut next = self.clone();
        let recipient = Recipient {
            conn: subscriber.conn,
            outbox: subscriber.outbox.clone(),
        };
        match subscriber.dialect {
            Dialect::SeedC => next.seed_c.push(recipient),
            Dialect::Canonical => next.plain.push(recipient),
        }
        next.direct += usize::from(direct);
        next
    }

    /// A copy without `conn`'s recipient; `direct` when it was there by name.
    pub(crate) fn without(&self, conn: ConnId, direct: bool) -> Self {
        let keep = |list: &[Recipient]| list.iter().filter(|r| r.conn != conn).cloned().collect();
        Self {
            plain: keep(&self.plain),
            seed_c: keep(&self.seed_c),
            direct: self.direct - usize::from(direct),
        }
    }

    /// The same recipients with `direct` moved by one: a connection already listed through a
    /// pattern subscribed by name too (`up`), or left by name but stays through a pattern.
    pub(crate) fn recount(&self, up: bool) -> Self {
        let mut next = self.clone();
        next.direct = if up { next.direct + 1 } else { next.direct - 1 };
        next
    }
}

/// What one publish's fan-out did, for the tally.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    /// Events queued.
    pub(crate) delivered: u64,
    /// Of those, queued by evicting an older one (`drop_oldest`).
    pub(crate) dropped: u64,
    /// Refused by an outbox that overflowed under `disconnect`.
    pub(crate) overflowed: u64,
    /// Refused by an outbox whose connection is closing.
    pub(crate) closed: u64,
}

impl FanOut {
    /// Queues `item` (of [`Outgoing::weight`] `weight`, weighed once per publish) in `outbox`
    /// without waiting and counts what happened. An overflowed outbox
    /// is closed by its own writer task; the publisher never waits.
    #[inline]
    pub(crate) fn add(&mut self, outbox: &Outbox, item: Outgoing, weight: u64) {
        match outbox.push_weighed(item, weight) {
            Pushed::Queued => self.delivered += 1,
            Pushed::DroppedOldest => {
                self.delivered += 1;
                self.dropped += 1;
            }
            Pushed::Rejected if outbox.is_closed() => self.closed += 1,
            Pushed::Rejected => self.overflowed += 1,
        }
    }
}
