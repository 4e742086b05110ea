//! A highly available backplane: herald's stream and registry bucket are created with
//! `NATS_REPLICAS` copies (an existing one is changed to that count when NATS allows it);
//! `leader.rs` watches the stream's leader.
//!
//! A replica count NATS cannot honour (more replicas than JetStream servers, or a change a
//! server refuses) is a configuration error, not an outage: it is reported once, as one line, and
//! the node stops instead of retrying forever.

use async_nats::jetstream::context::{CreateStreamError, CreateStreamErrorKind};
use async_nats::jetstream::{stream, ErrorCode};
use tracing::{error, info};

use super::{unavailable, NatsBackplane};
use crate::error::ApiError;

/// JetStream answers that no retry will change: the cluster cannot place or re-place the
/// replicas asked for (no suitable peers, insufficient resources, replicas on a single server,
/// replica count not updatable).
const REFUSALS: [ErrorCode; 4] = [
    ErrorCode::CLUSTER_NO_PEERS,
    ErrorCode::INSUFFICIENT_RESOURCES,
    ErrorCode::STREAM_REPLICAS_NOT_SUPPORTED,
    ErrorCode::STREAM_REPLICAS_NOT_UPDATABLE,
];

impl NatsBackplane {
    /// Opens the stream `config` names, creating it with `NATS_REPLICAS` replicas, and changes an
    /// existing stream's replica count and retention (`max_messages_per_subject`, `max_age`) to
    /// those asked for (its other settings are kept as they are).
    pub(super) async fn open_stream(
        &self,
        mut config: stream::Config,
        what: &str,
    ) -> Result<stream::Stream, ApiError> {
        let wanted = self.replication.replicas;
        let name = config.name.clone();
        config.num_replicas = wanted;
        let retention = (config.max_messages_per_subject, config.max_age);
        let stream = match self.js.get_or_create_stream(config).await {
            Ok(stream) => stream,
            Err(e) if is_refusal(&e) => {
                return Err(self.refuse(format!(
                    "NATS_REPLICAS={wanted}: NATS cannot create the {what} stream {name} with \
                     {wanted} replicas ({e}); run at least {wanted} JetStream servers in the NATS \
                     cluster, or lower NATS_REPLICAS (1 for a single server)"
                )))
            }
            Err(e) => return Err(unavailable(what, e)),
        };
        let existing = &stream.cached_info().config;
        let current = existing.num_replicas.max(1);
        if current == wanted && (existing.max_messages_per_subject, existing.max_age) == retention {
            return Ok(stream);
        }
        // Made by a node with other settings (or a herald from before them): the latest start
        // decides, so changing a setting takes effect.
        let mut changed = existing.clone();
        changed.num_replicas = wanted;
        (changed.max_messages_per_subject, changed.max_age) = retention;
        match self.js.update_stream(&changed).await {
            Ok(_) => {
                info!(
                    stream = %name,
                    from = current,
                    to = wanted,
                    per_subject = retention.0,
                    max_age_secs = retention.1.as_secs(),
                    "changed the replica count or retention"
                );
                self.js
                    .get_stream(&name)
                    .await
                    .map_err(|e| unavailable(what, e))
            }
            Err(e) if is_refusal(&e) => Err(self.refuse(format!(
                "NATS_REPLICAS={wanted}: the {what} stream {name} has {current} replica(s) and NATS \
                 refused to change that to {wanted} ({e}); set NATS_REPLICAS={current}, or give \
                 the NATS cluster at least {wanted} JetStream servers and restart"
            ))),
            Err(e) => Err(unavailable(what, e)),
        }
    }

    /// Records the line the node stops with (the first one wins) and answers `UNAVAILABLE`.
    fn refuse(&self, line: String) -> ApiError {
        error!("{line}");
        self.replication.refused.send_if_modified(|slot| {
            let first = slot.is_none();
            if first {
                *slot = Some(line.clone());
            }
            first
        });
        unavailable("replicas", line)
    }
}

/// Whether JetStream answered that the replicas asked for cannot be placed.
fn is_refusal(e: &CreateStreamError) -> bool {
    matches!(e.kind(), CreateStreamErrorKind::JetStream(err) if REFUSALS.contains(&err.error_code()))
}
