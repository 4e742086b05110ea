//! Following the topic registry: the KV watcher, and the per-name facts (`known`) that order
//! installs and retirements whether a fact arrives from the registry, the stream or this node.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::subject::decode_topic;
use super::{Known, NatsBackplane, Parts, RETRY_PAUSE};
use crate::broker::{Identity, Topic};
use crate::protocol::TopicName;

/// A topic's registry value.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct TopicValue {
    /// The epoch clients see.
    pub(super) epoch: String,
    /// Creation time, RFC 3339.
    pub(super) created_at: String,
    /// Created by subscribe or publish, so it may expire when idle (absent: written by a herald
    /// from before topic expiry, so it never expires).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) implicit: bool,
}

impl NatsBackplane {
    /// Follows the topic registry forever, from the last revision seen.
    pub(super) async fn watch_registry(self: Arc<Self>) {
        let mut connects = self.link.connects.subscribe();
        loop {
            let parts = self.wait_parts().await;
            connects.mark_unchanged();
            if let Err(e) = self.watch_registry_once(parts, &mut connects).await {
                warn!(error = %e, "registry watch ended; restarting");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }

    async fn watch_registry_once(
        &self,
        parts: &Parts,
        connects: &mut watch::Receiver<u64>,
    ) -> Result<(), String> {
        let from = self.registry_revision.load(Ordering::Acquire);
        let mut watch = if from == 0 {
            // Every key's latest entry (deletions included), then updates; `watch_all` would
            // deliver updates only.
            parts.kv.watch_with_history(">").await
        } else {
            parts.kv.watch_all_from_revision(from + 1).await
        }
        .map_err(|e| e.to_string())?;
        // An empty (or already followed) bucket delivers nothing to say "current", so ask.
        let status = parts.kv.status().await.map_err(|e| e.to_string())?;
        let last = status.info.state.last_sequence;
        debug!(
            from,
            last,
            values = status.values(),
            "registry watch started"
        );
        if last <= from || status.values() == 0 {
            self.link.registry_current.store(true, Ordering::Release);
        }
        loop {
            let entry = tokio::select! {
                entry = watch.next() => entry,
                _ = connects.changed() => return Err("reconnected".into()),
            };
            let entry = match entry {
                Some(Ok(entry)) => entry,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("watch ended".into()),
            };
            self.on_registry_entry(&entry);
            self.registry_revision
                .fetch_max(entry.revision, Ordering::AcqRel);
            if entry.seen_current || entry.revision >= last {
                self.link.registry_current.store(true, Ordering::Release);
            }
        }
    }

    fn on_registry_entry(&self, entry: &kv::Entry) {
        let Some(name) = decode_topic(&entry.key) else {
            warn!(key = %entry.key, "ignoring a registry key that is no topic");
            return;
        };
        match entry.operation {
            kv::Operation::Put => match serde_json::from_slice::<TopicValue>(&entry.value) {
                Ok(value) => {
                    self.learn_put(&name, entry.revision, &value);
                }
                Err(e) => warn!(topic = %name, error = %e, "ignoring a malformed registry value"),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                self.learn_delete(&name, entry.revision)
            }
        }
    }

    /// The topic exists at `revision`: installs it here unless a newer fact is known. Returns the
    /// live local topic of that generation, if any.
    pub(super) fn learn_put(
        &self,
        name: &TopicName,
        revision: u64,
        value: &TopicValue,
    ) -> Option<Arc<Topic>> {
        let mut known = self.known.lock();
        match known.get(name) {
            Some(k) if k.revision > revision => return None,
            Some(k) if k.revision == revision && !k.live => return None,
            _ => {}
        }
        known.insert(
            name.clone(),
            Known {
                revision,
                live: true,
            },
        );
        // A topic first met while catching up may already have lost old messages to the
        // stream's per-subject limit.
        let rebuilt = !self.link.caught_up.load(Ordering::Acquire);
        Some(self.broker.install(
            name,
            Identity {
                epoch: value.epoch.as_str().into(),
                created_at: value.created_at.as_str().into(),
                generation: revision,
                rebuilt,
                implicit: value.implicit,
            },
        ))
    }

    /// The topic was deleted at `revision` (or, with `revision` = its generation and the delete
    /// issued here, is being deleted): removes the older local life.
    pub(super) fn learn_delete(&self, name: &TopicName, revision: u64) {
        let mut known = self.known.lock();
        if known
            .get(name)
            .is_some_and(|k| k.revision > revision || (k.revision == revision && !k.live))
        {
            return;
        }
        known.insert(
            name.clone(),
            Known {
                revision,
                live: false,
            },
        );
        self.broker.retire(name.as_str(), revision + 1);
    }
}
