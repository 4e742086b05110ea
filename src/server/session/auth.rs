//! A session's credentials over time (PROTOCOL.md §4): the in-band `auth` frame (first token or
//! refresh), the auth timeout of a connection without rights, `token_expiring`, and expiry.
//!
//! The deadlines share the read loop's one timer: the loop sleeps until the earlier of its idle
//! deadline and [`Session::auth_wake`], so an idle connection carries no extra timer.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, Span};

use super::{Due, ReadEnd, Session};
use crate::broker::Outgoing;
use crate::error::{ApiError, ErrorCode};
use crate::node::secs_until;
use crate::protocol::{server as frames, RequestId};

impl Session {
    /// When the read loop must wake for the credentials, if ever.
    pub(super) fn auth_wake(&self) -> Option<Instant> {
        self.auth.due.map(|(at, _)| at)
    }

    /// Sets the next auth deadline from the current caller. `opening`: the connection just
    /// opened, so a caller without rights gets `AUTH_TIMEOUT_SECS` to authenticate.
    pub(super) fn schedule_auth(&mut self, opening: bool) {
        let config = &self.state.config;
        let now = Instant::now();
        self.auth.due = match self.auth.caller.token() {
            Some(token) => {
                let left = Duration::from_secs(secs_until(token.expires_at));
                // A token that arrives already inside the window is warned about at once, so its
                // client refreshes instead of being closed at expiry.
                let warn = left.saturating_sub(config.tokens.token_refresh_window);
                Some((now + warn, Due::Expiring))
            }
            None if opening && self.auth.caller.has_no_rights() => {
                Some((now + config.tokens.auth_timeout, Due::Timeout))
            }
            None => None,
        };
    }

    /// The auth deadline passed: warn, or end the connection.
    pub(super) fn on_auth_due(&mut self) -> Option<ReadEnd> {
        let (_, due) = self.auth.due.take()?;
        match due {
            Due::Timeout if self.auth.caller.has_no_rights() => Some(ReadEnd::AuthTimeout),
            Due::Timeout => None,
            Due::Expiring => {
                let token = self.auth.caller.token()?;
                let left = secs_until(token.expires_at);
                let info = Outgoing::info(frames::info_token_expiring(left));
                self.subscriber.outbox.push(info);
                let at =
                    Instant::now() + Duration::from_secs(left) + self.state.node.gate().leeway();
                self.auth.due = Some((at, Due::Expired));
                None
            }
            Due::Expired => Some(ReadEnd::TokenExpired),
        }
    }

    /// `{"type":"auth","token":…}`: the first token of a connection, or a refresh of it.
    pub(super) fn authenticate(&mut self, token: &str, rid: Option<&RequestId>) {
        let caller = match self.state.node.gate().verify(token) {
            Ok(caller) => caller,
            // The connection keeps the rights it had.
            Err(e) => return self.reply_error(rid, e),
        };
        let Some(new) = caller.token() else {
            return self.reply_error(rid, ApiError::bad_request("not a token"));
        };
        if let Some(old) = self.auth.caller.token() {
            if old.sub != new.sub {
                return self.reply_error(
                    rid,
                    ApiError::new(
                        ErrorCode::Forbidden,
                        format!(
                            "a refresh must keep the token's `sub` (`{}`, not `{}`)",
                            old.sub, new.sub
                        ),
                    ),
                );
            }
        }
        Span::current().record("client_id", &*new.sub);
        debug!("authenticated");
        self.push(frames::auth_ack(rid, &new.sub, secs_until(new.expires_at)));
        self.auth.caller = caller;
        self.schedule_auth(false);
    }
}
