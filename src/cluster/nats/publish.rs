//! Publishing: the event frame is built once here, stored in the stream with its layout in
//! headers, and acked to the client with the stream sequence.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::HeaderMap;
use bytes::Bytes;
use tokio::time::Instant;

use super::subject::encode_topic;
use super::unavailable;
use super::{NatsBackplane, CALL_TIMEOUT, H_CREATED, H_EPOCH, H_EVENT, H_IMPLICIT, MSG_PREFIX};
use crate::broker::EventBuilder;
use crate::error::ApiError;
use crate::protocol::{Payload, Published, TopicName};

/// Pause before sending again a publish nobody received (no stream leader yet).
const ELECTION_RETRY: Duration = Duration::from_millis(100);

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
        let headers = || {
            let mut headers = HeaderMap::new();
            headers.insert(H_EVENT, meta.as_str());
            headers.insert(H_EPOCH, topic.epoch());
            headers.insert(H_CREATED, topic.created_at());
            if topic.is_implicit() {
                headers.insert(H_IMPLICIT, "1");
            }
            headers
        };
        let subject = || format!("{MSG_PREFIX}{}", encode_topic(name));
        let body = Bytes::from(event.buf);
        // While the stream has no leader (an election after a server was lost) nobody receives
        // the message: "no responders" proves it was not stored, so it is sent again until
        // CALL_TIMEOUT. Any other failure, or no answer, is the client's error at once: a
        // publish that may have been stored is never sent twice.
        let deadline = Instant::now() + CALL_TIMEOUT;
        let ack = loop {
            let attempt = async {
                self.js
                    .publish_with_headers(subject(), headers(), body.clone())
                    .await?
                    .await
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(ack)) => break ack,
                Ok(Err(e))
                    if e.kind() == PublishErrorKind::StreamNotFound
                        && Instant::now() + ELECTION_RETRY < deadline =>
                {
                    tokio::time::sleep(ELECTION_RETRY).await;
                }
                Ok(Err(e)) => return Err(unavailable("publish", e)),
                Err(e) => return Err(unavailable("publish ack", e)),
            }
        };
        Ok(Published {
            id_json,
            seq: ack.sequence,
        })
    }
}
