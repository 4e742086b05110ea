//! Topic operations on a client's behalf: look a topic up in the registry, create it there
//! (`POST /topics`, auto-create) or delete it (`DELETE /topics/{name}`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tracing::warn;

use super::registry::TopicValue;
use super::subject::encode_topic;
use super::unavailable;
use super::{NatsBackplane, Parts, CALL_TIMEOUT, MSG_PREFIX};
use crate::broker::{new_epoch, Topic};
use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::TopicName;

impl NatsBackplane {
    /// Makes `name` exist here: from the registry, or created in it when auto-create is on.
    pub(in crate::cluster) async fn ensure(
        &self,
        name: &TopicName,
    ) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.broker.get(name.as_str()) {
            return Ok(topic);
        }
        let parts = self.parts().await?;
        if let Some(topic) = self.lookup(parts, name).await? {
            return Ok(topic);
        }
        if !self.auto_create {
            return Err(not_found(name));
        }
        match self.create(parts, name, true).await {
            Err(e) if e.code == ErrorCode::Conflict => {
                // Created elsewhere a moment ago.
                self.lookup(parts, name)
                    .await?
                    .ok_or_else(|| not_found(name))
            }
            other => other,
        }
    }

    /// The registry's entry for `name`, installed here.
    pub(super) async fn lookup(
        &self,
        parts: &Parts,
        name: &TopicName,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        let entry = tokio::time::timeout(CALL_TIMEOUT, parts.kv.entry(encode_topic(name)))
            .await
            .map_err(|e| unavailable("registry", e))?
            .map_err(|e| unavailable("registry", e))?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let value: TopicValue =
            serde_json::from_slice(&entry.value).map_err(|e| unavailable("registry value", e))?;
        Ok(self.learn_put(name, entry.revision, &value))
    }

    /// Adds `name` to the registry, `implicit` when by subscribe or publish; `CONFLICT` when it
    /// is there.
    async fn create(
        &self,
        parts: &Parts,
        name: &TopicName,
        implicit: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        self.broker.check_topic_limit()?;
        let value = TopicValue {
            epoch: new_epoch(),
            created_at: clock::now().as_str().into(),
            implicit,
        };
        let body = serde_json::to_vec(&value).map_err(|e| unavailable("registry value", e))?;
        let created = tokio::time::timeout(
            CALL_TIMEOUT,
            parts.kv.create(encode_topic(name), Bytes::from(body)),
        )
        .await
        .map_err(|e| unavailable("registry", e))?;
        let revision = match created {
            Ok(revision) => revision,
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("topic `{name}` already exists"),
                ))
            }
            Err(e) => return Err(unavailable("registry", e)),
        };
        self.learn_put(name, revision, &value)
            .ok_or_else(|| not_found(name))
    }

    /// `POST /topics`.
    pub(in crate::cluster) async fn create_topic(&self, name: &TopicName) -> Result<(), ApiError> {
        if self.broker.get(name.as_str()).is_some() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("topic `{name}` already exists"),
            ));
        }
        let parts = self.parts().await?;
        self.create(parts, name, false).await.map(|_| ())
    }

    /// `DELETE /topics/{name}`: registry delete, local retirement (the other nodes follow from the
    /// registry), then the topic's messages are purged from the stream.
    pub(in crate::cluster) async fn delete_topic(&self, name: &TopicName) -> Result<(), ApiError> {
        let parts = self.parts().await?;
        let topic = match self.broker.get(name.as_str()) {
            Some(topic) => topic,
            None => self
                .lookup(parts, name)
                .await?
                .ok_or_else(|| not_found(name))?,
        };
        tokio::time::timeout(CALL_TIMEOUT, parts.kv.delete(encode_topic(name)))
            .await
            .map_err(|e| unavailable("registry", e))?
            .map_err(|e| unavailable("registry", e))?;
        self.learn_delete(name, topic.generation());
        self.purge(parts, name).await;
        Ok(())
    }

    /// Drops from the stream the messages of `name`'s life that just ended, so a deleted or
    /// expired topic costs NATS nothing.
    pub(super) async fn purge(&self, parts: &Parts, name: &TopicName) {
        // Only what this life stored: a new life's messages all come later in the stream.
        let purge = parts
            .stream
            .purge()
            .filter(format!("{MSG_PREFIX}{}", encode_topic(name)))
            .sequence(self.applied.load(Ordering::Acquire) + 1);
        if let Err(e) = purge.await {
            warn!(topic = %name, error = %e, "could not purge a deleted topic's messages");
        }
    }
}

fn not_found(name: &TopicName) -> ApiError {
    ApiError::new(
        ErrorCode::TopicNotFound,
        format!("topic `{name}` does not exist"),
    )
}
