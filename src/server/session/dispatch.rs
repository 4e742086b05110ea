//! A session's client frames → calls on the [`Node`], and their answers → reply frames. Every
//! frame queues exactly one reply (a subscribe ack may be followed by its replay, in the same
//! outbox slot); every error reaches the client through [`Session::reply_error`].
//!
//! [`Node`]: crate::node::Node

use super::pipeline::Reply;
use super::{Session, Subscribe};
use crate::broker::Subscriber;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::FrameIn;
use crate::node::Presence;
use crate::protocol::{self, server as frames, ClientFrame, Frame, Kind, Payload};
use crate::protocol::{Dialect, RequestId, SubscribeAck, TopicName};

impl Session {
    /// Queues a frame for this connection.
    pub(super) fn push(&self, frame: Frame) {
        self.subscriber
            .outbox
            .push(crate::broker::Outgoing::frame(frame));
    }

    /// The one place an error becomes an error frame. PROTOCOL.md §1: a failed backplane call is
    /// `INTERNAL` on a WebSocket (REST answers 503 `UNAVAILABLE`).
    pub(super) fn reply_error(&self, request_id: Option<&RequestId>, error: ApiError) {
        self.push(error_frame(request_id, error));
    }

    /// Parses one client frame and serves it.
    pub(super) async fn on_frame(
        &mut self,
        bytes: &[u8],
        scratch: &mut Vec<u8>,
        buffers: &mut simd_json::Buffers,
    ) {
        scratch.clear();
        scratch.extend_from_slice(bytes);
        let metrics = &self.state.metrics;
        let value = match simd_json::to_borrowed_value_with_buffers(scratch, buffers) {
            Ok(value) => value,
            Err(e) => {
                metrics.frame_in(FrameIn::Invalid);
                let why = protocol::json_error::describe(&e);
                return self
                    .reply_error(None, ApiError::bad_request(format!("invalid JSON: {why}")));
            }
        };
        match protocol::decode(&value) {
            Ok(frame) => {
                metrics.frame_in(frame.kind.into());
                self.dispatch(frame).await
            }
            Err(e) => {
                metrics.frame_in(FrameIn::Invalid);
                self.reply_error(e.request_id.as_ref(), e.error)
            }
        }
    }

    async fn dispatch(&mut self, frame: ClientFrame<'_>) {
        let rid = frame.request_id.as_ref();
        // Seed c's server answered nothing but errors, and its pages read every frame as a
        // message: an `action` frame is acked only when it asks to be (`request_id`), and the
        // connection gets no JSON `info` frames (PROTOCOL.md §2).
        let seed_c = frame.dialect == Dialect::SeedC;
        if seed_c {
            self.subscriber.outbox.set_quiet();
        }
        let ack = !seed_c || rid.is_some();
        if let Some(pattern) = frame.pattern {
            return self.on_pattern(frame.kind, pattern, rid, ack, frame.dialect);
        }
        let Some(topic) = frame.topic else {
            return match (frame.kind, frame.token) {
                (Kind::Ping, _) => self.push(frames::pong(rid)),
                (Kind::Auth, Some(token)) => self.authenticate(token, rid),
                _ => self.reply_error(rid, ApiError::bad_request("missing field `topic`")),
            };
        };
        match frame.kind {
            Kind::Ping => self.push(frames::pong(rid)),
            Kind::Auth => self.reply_error(rid, ApiError::bad_request("missing field `token`")),
            Kind::Subscribe => {
                let asks = Subscribe {
                    replay: frame.replay,
                    ack,
                    dialect: frame.dialect,
                    client_id: frame.client_id,
                    presence_events: frame.presence_events,
                };
                self.subscribe(topic, rid, asks).await
            }
            Kind::Presence => match self.state.node.presence(&self.auth.caller, &topic) {
                Ok(list) => self.push(protocol::presence::presence_frame(rid, &topic, &list)),
                Err(e) => self.reply_error(rid, e),
            },
            Kind::Unsubscribe => {
                if let Some(t) = self.subscriptions.remove(&topic) {
                    self.state.node.unsubscribe(&t, self.subscriber.conn);
                }
                if ack {
                    self.push(frames::ack(rid, &topic));
                }
            }
            Kind::Publish if self.state.node.is_cluster() => {
                self.send(topic, rid, frame.message_id, frame.payload, ack)
                    .await
            }
            Kind::Publish => {
                let Some(payload) = frame.payload else {
                    return self.reply_error(rid, ApiError::bad_request("publish needs a payload"));
                };
                let published = self
                    .state
                    .node
                    .publish(
                        &self.auth.caller,
                        &topic,
                        frame.message_id,
                        Payload::Value(payload),
                    )
                    .await;
                match published {
                    Ok(published) if ack => self.push(frames::publish_ack(rid, &topic, &published)),
                    Ok(_) => {}
                    Err(e) => self.reply_error(rid, e),
                }
            }
        }
    }

    /// Cluster mode's publish: hands the message to the backplane and queues its reply behind
    /// those of this connection's earlier publishes (errors included, so replies keep the order
    /// the publishes arrived in), without waiting for the PubAck.
    async fn send(
        &mut self,
        topic: TopicName,
        rid: Option<&RequestId>,
        id: Option<&str>,
        payload: Option<&simd_json::BorrowedValue<'_>>,
        ack: bool,
    ) {
        let sent = match payload {
            None => Err(ApiError::bad_request("publish needs a payload")),
            Some(payload) => {
                let caller = &self.auth.caller;
                let payload = Payload::Value(payload);
                self.state.node.send(caller, &topic, id, payload).await
            }
        };
        let rid = rid.cloned();
        let reply: Reply = match sent {
            Ok(pending) => Box::pin(async move {
                match pending.await {
                    Ok(published) => {
                        ack.then(|| frames::publish_ack(rid.as_ref(), &topic, &published))
                    }
                    Err(e) => Some(error_frame(rid.as_ref(), e)),
                }
            }),
            Err(e) => Box::pin(std::future::ready(Some(error_frame(rid.as_ref(), e)))),
        };
        self.pipeline.get_or_insert_with(Box::default).push(reply);
    }

    /// Subscribes this connection to `topic`, its events in `asks.dialect`'s shape; with
    /// `asks.ack`, the ack is queued before any replay, else only a failure is (seed a's
    /// subscribe on open and seed c's `action` frames have none: PROTOCOL.md §2).
    pub(super) async fn subscribe(
        &mut self,
        topic: TopicName,
        rid: Option<&RequestId>,
        asks: Subscribe<'_>,
    ) {
        let Subscribe {
            replay,
            ack,
            dialect,
            client_id,
            presence_events,
        } = asks;
        if !self.subscriptions.contains_key(&topic) {
            if let Err(e) = self.room_for_one_more() {
                return self.reply_error(rid, e);
            }
        }
        let build_ack = |a: &SubscribeAck| frames::subscribe_ack(rid, &topic, a);
        let ack_fn: Option<crate::node::AckFn<'_>> = if ack { Some(&build_ack) } else { None };
        let node = &self.state.node;
        let subscriber = Subscriber {
            dialect,
            ..self.subscriber.clone()
        };
        let presence = Presence {
            client_id,
            connection: &self.auth.name,
            events: presence_events,
        };
        match node
            .subscribe(
                &self.auth.caller,
                &topic,
                &subscriber,
                &replay,
                ack_fn,
                presence,
            )
            .await
        {
            Ok(t) => {
                self.subscriptions.insert(topic, t);
            }
            Err(e) => self.reply_error(rid, e),
        }
    }
}

/// The error frame for `error`. PROTOCOL.md §1: a failed backplane call is `INTERNAL` on a
/// WebSocket (REST answers 503 `UNAVAILABLE`).
fn error_frame(request_id: Option<&RequestId>, error: ApiError) -> Frame {
    let error = if error.code == ErrorCode::Unavailable {
        ApiError::new(ErrorCode::Internal, error.message)
    } else {
        error
    };
    frames::error(request_id, &error)
}
