//! Publishing: the event frame is built once here, stored in the stream with its layout in
//! headers, and acked to the client with the stream sequence.

use async_nats::HeaderMap;
use bytes::Bytes;

use super::subject::encode_topic;
use super::unavailable;
use super::{NatsBackplane, CALL_TIMEOUT, H_CREATED, H_EPOCH, H_EVENT, H_IMPLICIT, MSG_PREFIX};
use crate::broker::EventBuilder;
use crate::error::ApiError;
use crate::protocol::{Payload, Published, TopicName};

impl NatsBackplane {
    /// Publishes through JetStream and answers with the stream sequence once it is stored.
    pub(in crate::cluster) async fn publish(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        let event = EventBuilder::new(name, id, payload, self.broker.max_message_bytes())?;
        if !self.connected() {
            return Err(unavailable("NATS", "not connected"));
        }
        // Held until the stream stored the event, so no node removes the topic meanwhile.
        let held = self.hold(name).await?;
        let topic = held.topic();
        topic.take_publish_token()?;
        let id_json: Box<str> = String::from_utf8_lossy(&event.buf[event.id.clone()]).into();
        let mut headers = HeaderMap::new();
        let meta = format!(
            "{} {} {} {} {} {} {}",
            topic.generation(),
            event.id.start,
            event.id.end,
            event.payload.start,
            event.payload.end,
            event.ts.start,
            event.ts.end
        );
        headers.insert(H_EVENT, meta.as_str());
        headers.insert(H_EPOCH, topic.epoch());
        headers.insert(H_CREATED, topic.created_at());
        if topic.is_implicit() {
            headers.insert(H_IMPLICIT, "1");
        }
        let subject = format!("{MSG_PREFIX}{}", encode_topic(name));
        let ack = async {
            self.js
                .publish_with_headers(subject, headers, Bytes::from(event.buf))
                .await
                .map_err(|e| unavailable("publish", e))?
                .await
                .map_err(|e| unavailable("publish ack", e))
        };
        let ack = tokio::time::timeout(CALL_TIMEOUT, ack)
            .await
            .map_err(|e| unavailable("publish ack", e))??;
        Ok(Published {
            id_json,
            seq: ack.sequence,
        })
    }
}
