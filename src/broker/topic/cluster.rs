//! The cluster side of a topic: events the backplane ordered, the publish rate taken before a
//! publish leaves the node, and the queue probe a node catching up with the cluster paces by.

use std::sync::Arc;

use super::{frames, EventBuilder, Outgoing, RateLimiter, Topic};
use crate::broker::Outbox;
use crate::error::{ApiError, ErrorCode};

impl Topic {
    /// Cluster mode: a publish that the backplane ordered at `seq`. Events at or below the last
    /// applied `seq` (a consumer replaying after a reconnect) are skipped. Returns false when the
    /// topic was deleted meanwhile.
    pub(crate) fn apply(&self, seq: u64, event: &mut EventBuilder) -> Result<bool, ApiError> {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() {
            return Ok(false);
        }
        if seq > sequencer.seq {
            sequencer.seq = seq;
            self.store_and_fan_out(seq, event)?;
        }
        Ok(true)
    }

    /// Cluster mode: takes a `MAX_PUBLISH_RATE` token before the publish leaves this node.
    pub(crate) fn take_publish_token(&self) -> Result<(), ApiError> {
        let mut sequencer = self.sequencer.lock();
        match sequencer.limiter.as_mut().map(RateLimiter::try_take) {
            Some(false) => Err(ApiError::new(
                ErrorCode::RateLimited,
                format!("topic `{}` is over MAX_PUBLISH_RATE", self.name),
            )),
            _ => Ok(()),
        }
    }

    /// Cluster mode: tells every subscriber that whatever events lay in `after + 1..=to` are lost
    /// (the stream no longer holds them), if this node's last event is still `after`; later
    /// events then follow as usual. Returns whether anyone was told.
    pub fn lost(&self, after: u64, to: u64) -> bool {
        let mut sequencer = self.sequencer.lock();
        if self.is_deleted() || sequencer.seq != after || to <= after {
            return false;
        }
        // Nothing at or below `to` can arrive any more: no second notice for the same range.
        sequencer.seq = to;
        let subscribers = self.subscribers.load();
        let info = frames::info_gap(&self.name, after + 1, to);
        for recipient in subscribers.all() {
            recipient.outbox.push(Outgoing::info(info.clone()));
        }
        let told = subscribers.all().next().is_some();
        told
    }

    /// The first subscriber outbox with no room for one more item (not counting those `skip`
    /// accepts), so a node catching up with the cluster can wait for it to drain.
    pub fn full_outbox(&self, skip: impl Fn(&Arc<Outbox>) -> bool) -> Option<Arc<Outbox>> {
        let subscribers = self.subscribers.load();
        let full = subscribers
            .all()
            .find(|r| {
                let outbox = &r.outbox;
                !outbox.has_room(1) && !outbox.is_closed() && !outbox.overflowed() && !skip(outbox)
            })
            .map(|r| r.outbox.clone());
        full
    }
}
