//! A session's wildcard subscriptions (issue 20): subscribe and unsubscribe with a pattern in
//! `topic`. The engine lists the connection in every matching topic; the session only remembers
//! the patterns, to enforce the per-connection cap and to end them when it closes.

use super::Session;
use crate::broker::Subscriber;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::{server as frames, Dialect, Kind, RequestId, TopicPattern};

impl Session {
    /// Serves a subscribe or unsubscribe whose `topic` is a pattern; with `ack`, success is
    /// acked (a pattern ack carries no `seq` or `epoch`: PROTOCOL.md §1).
    pub(super) fn on_pattern(
        &mut self,
        kind: Kind,
        pattern: TopicPattern,
        rid: Option<&RequestId>,
        ack: bool,
        dialect: Dialect,
    ) {
        let ack_frame = || ack.then(|| frames::pattern_ack(rid, &pattern));
        if kind == Kind::Unsubscribe {
            if self.patterns.as_mut().is_some_and(|p| p.0.remove(&pattern)) {
                self.state
                    .node
                    .unsubscribe_pattern(&pattern, self.subscriber.conn);
            }
            if let Some(frame) = ack_frame() {
                self.push(frame);
            }
            return;
        }
        let held = self
            .patterns
            .as_ref()
            .is_some_and(|p| p.0.contains(&pattern));
        if !held {
            if let Err(e) = self.room_for_one_more() {
                return self.reply_error(rid, e);
            }
        }
        let subscriber = Subscriber {
            dialect,
            ..self.subscriber.clone()
        };
        let made = self.state.node.subscribe_pattern(
            &self.auth.caller,
            &pattern,
            &subscriber,
            ack_frame(),
        );
        match made {
            Ok(()) => {
                self.patterns
                    .get_or_insert_with(Box::default)
                    .0
                    .insert(pattern);
            }
            Err(e) => self.reply_error(rid, e),
        }
    }

    /// `LIMIT_EXCEEDED` when this connection holds `MAX_SUBSCRIPTIONS_PER_CONNECTION`
    /// subscriptions, by name and by pattern together; deleted topics no longer count.
    pub(super) fn room_for_one_more(&mut self) -> Result<(), ApiError> {
        let cap = self.state.config.max_subscriptions_per_connection;
        if self.subscription_count() >= cap {
            self.subscriptions.retain(|_, t| !t.is_deleted());
        }
        if self.subscription_count() >= cap {
            return Err(ApiError::new(
                ErrorCode::LimitExceeded,
                format!("at most {cap} subscriptions per connection"),
            ));
        }
        Ok(())
    }

    /// Subscriptions this connection holds, by name and by pattern (the cap counts both).
    pub(super) fn subscription_count(&self) -> usize {
        self.subscriptions.len() + self.patterns.as_ref().map_or(0, |p| p.0.len())
    }

    /// Ends every pattern subscription (the connection is closing).
    pub(super) fn unsubscribe_patterns(&mut self) {
        for pattern in self.patterns.take().into_iter().flat_map(|p| p.0) {
            self.state
                .node
                .unsubscribe_pattern(&pattern, self.subscriber.conn);
        }
    }
}
