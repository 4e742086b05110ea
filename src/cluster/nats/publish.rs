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
use crate::broker::{EventBuilder, InFlight};
use crate::cluster::PendingAck;
use crate::error::ApiError;
use crate::protocol::{Payload, Published, TopicName};

/// Pause before sending again a publish nobody received (no stream leader yet).
const ELECTION_RETRY: Duration = Duration::from_millis(100);

/// An event ready to leave for the stream.
struct Prepared {
    /// The topic, held until the event is stored (no node removes it meanwhile).
    held: InFlight,
    /// The message id, for the ack.
    id_json: Box<str>,
    /// Where the event's parts lie and the topic's identity.
    headers: HeaderMap,
    /// `herald.msg.<encoded topic>`.
    subject: String,
    /// The event frame up to `"seq":`.
    body: Bytes,
}

impl NatsBackplane {
    /// Builds the event and its headers and takes the topic's publish rate token.
    async fn prepare_event(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Prepared, ApiError> {
        let event = EventBuilder::new(name, id, payload, self.broker.max_message_bytes())?;
        if !self.connected() {
            return Err(unavailable("NATS", "not connected"));
        }
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
        let mut headers = HeaderMap::new();
        headers.insert(H_EVENT, meta.as_str());
        headers.insert(H_EPOCH, topic.epoch());
        headers.insert(H_CREATED, topic.created_at());
        if topic.is_implicit() {
            headers.insert(H_IMPLICIT, "1");
        }
        Ok(Prepared {
            id_json,
            headers,
            subject: format!("{MSG_PREFIX}{}", encode_topic(name)),
            body: Bytes::from(event.buf),
            held,
        })
    }

    /// Publishes through JetStream and answers with the stream sequence once it is stored.
    pub(in crate::cluster) async fn publish(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<Published, ApiError> {
        let prepared = self.prepare_event(name, id, payload).await?;
        // While the stream has no leader (an election after a server was lost) nobody receives
        // the message: "no responders" proves it was not stored, so it is sent again until
        // CALL_TIMEOUT. Any other failure, or no answer, is the client's error at once: a
        // publish that may have been stored is never sent twice.
        let deadline = Instant::now() + CALL_TIMEOUT;
        let ack = loop {
            let attempt = async {
                self.js
                    .publish_with_headers(
                        prepared.subject.clone(),
                        prepared.headers.clone(),
                        prepared.body.clone(),
                    )
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
            id_json: prepared.id_json,
            seq: ack.sequence,
        })
    }

    /// Hands a publish to NATS and returns once it is on its way (so a connection's publishes
    /// enter the stream in the order they were sent), with the wait for its PubAck, bounded by
    /// `CALL_TIMEOUT`. Unlike [`NatsBackplane::publish`] it never sends again during a leader
    /// election: a later publish of the same connection may already be stored, and a retry
    /// would land after it.
    pub(in crate::cluster) async fn send(
        &self,
        name: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
    ) -> Result<PendingAck, ApiError> {
        let Prepared {
            held,
            id_json,
            headers,
            subject,
            body,
        } = self.prepare_event(name, id, payload).await?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        let ack = tokio::time::timeout_at(
            deadline,
            self.js.publish_with_headers(subject, headers, body),
        )
        .await
        .map_err(|e| unavailable("publish", e))?
        .map_err(|e| unavailable("publish", e))?;
        Ok(Box::pin(async move {
            let ack = tokio::time::timeout_at(deadline, ack)
                .await
                .map_err(|e| unavailable("publish ack", e))?
                .map_err(|e| unavailable("publish ack", e))?;
            drop(held);
            Ok(Published {
                id_json,
                seq: ack.sequence,
            })
        }))
    }
}
