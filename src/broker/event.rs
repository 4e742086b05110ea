//! One event as the engine keeps it: built once ([`EventBuilder`], everything but its `seq`),
//! then stored ([`StoredEvent`]) in the ring and shared by every subscriber's outbox.

use std::ops::Range;
use std::sync::OnceLock;

use simd_json::prelude::Writable;

use crate::clock;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::deflate;
use crate::protocol::server as frames;
use crate::protocol::{Frame, Payload, TopicName};

/// How every event frame starts; the topic name follows.
const EVENT_HEAD: &str = r#"{"type":"event","topic":""#;
/// What follows the topic name, up to the id literal.
const AFTER_TOPIC: &str = r#"","message":{"id":"#;

/// One published event as stored in the ring: the frame that was sent, plus where its parts lie
/// inside it so history can be answered without parsing the frame again.
#[derive(Debug)]
pub struct StoredEvent {
    /// The topic's sequence number of this event.
    pub seq: u64,
    /// The event frame exactly as subscribers received it.
    pub frame: Frame,
    /// Byte range of the message id, a JSON string including its quotes.
    pub id: Range<usize>,
    /// Byte range of the payload, compact JSON.
    pub payload: Range<usize>,
    /// Byte range of the timestamp text (without quotes).
    pub ts: Range<usize>,
    /// The event in seed c's shape, rendered the first time a seed-c subscriber needs it and
    /// shared by all of them and by replay; never filled for a topic without one. Boxed so the
    /// empty slot costs a ring entry two words, not a whole frame.
    pub seed_c: OnceLock<Box<Frame>>,
    /// The frame compressed alone (permessage-deflate, PROTOCOL.md §1), made the first time a
    /// compressing subscriber's writer needs it and shared by all of them and by replay; empty
    /// when compressing would not make it shorter. Never filled while no connection compresses.
    pub deflated: OnceLock<Box<[u8]>>,
    /// When it was published, milliseconds since the Unix epoch (`HISTORY_TTL_SECS`).
    pub at_ms: u64,
}

impl StoredEvent {
    /// The message id as a JSON string literal (with quotes).
    pub fn id_json(&self) -> &str {
        self.part(&self.id)
    }

    /// The payload as compact JSON text.
    pub fn payload_json(&self) -> &str {
        self.part(&self.payload)
    }

    /// The publish timestamp.
    pub fn ts(&self) -> &str {
        self.part(&self.ts)
    }

    /// The topic name, read from its place in the frame (between [`EVENT_HEAD`] and the id).
    pub fn topic(&self) -> &str {
        let end = self.id.start.saturating_sub(AFTER_TOPIC.len());
        self.part(&(EVENT_HEAD.len()..end))
    }

    /// The event as a seed-c subscription receives it (PROTOCOL.md §2), rendered at most once.
    pub fn seed_c(&self) -> &Frame {
        self.seed_c.get_or_init(|| {
            Box::new(frames::seed_c_event(
                self.topic(),
                self.id_json(),
                self.payload_json(),
                self.ts(),
                self.seq,
            ))
        })
    }

    /// The frame's compressed payload, compressed at most once; `None` when compressing does not
    /// make it shorter (it then goes out plain).
    pub fn deflated(&self) -> Option<&[u8]> {
        let bytes = self.deflated.get_or_init(|| {
            deflate::compress(self.frame.as_bytes())
                .unwrap_or_default()
                .into_boxed_slice()
        });
        (!bytes.is_empty()).then_some(&**bytes)
    }

    /// An event whose frame is only its `seq`, for the ring's tests.
    #[cfg(test)]
    pub(crate) fn numbered(seq: u64) -> Self {
        Self {
            seq,
            frame: Frame::from(format!("{seq}")),
            id: 0..0,
            payload: 0..0,
            ts: 0..0,
            seed_c: OnceLock::new(),
            deflated: OnceLock::new(),
            at_ms: 0,
        }
    }

    /// The text at `range` of the frame; the ranges were taken while building it, on UTF-8
    /// boundaries, so only the part is checked, not the whole frame.
    fn part(&self, range: &Range<usize>) -> &str {
        self.frame
            .as_bytes()
            .get(range.clone())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }
}

/// An event frame built up to its `seq`, which only the topic's sequencer can add. In cluster
/// mode the publishing node sends exactly these bytes through the backplane and every node adds
/// the stream's `seq`, so the frame is serialized once for the whole cluster.
#[derive(Debug)]
pub(crate) struct EventBuilder {
    /// `{"type":"event",...,"seq":` so far.
    pub(crate) buf: Vec<u8>,
    /// Where the id literal lies in `buf`.
    pub(crate) id: Range<usize>,
    /// Where the payload lies in `buf`.
    pub(crate) payload: Range<usize>,
    /// Where the timestamp lies in `buf`.
    pub(crate) ts: Range<usize>,
    /// When it was published, ms since the Unix epoch.
    pub(crate) at_ms: u64,
}

impl EventBuilder {
    /// Takes back a frame prefix built by [`EventBuilder::new`] on another node; `None` unless it
    /// is UTF-8, belongs to `topic`, ends where a `seq` goes and its ranges lie inside it.
    pub(crate) fn from_parts(
        topic: &TopicName,
        buf: Vec<u8>,
        id: Range<usize>,
        payload: Range<usize>,
        ts: Range<usize>,
    ) -> Option<Self> {
        let text = std::str::from_utf8(&buf).ok()?;
        let head = text
            .strip_prefix(EVENT_HEAD)?
            .strip_prefix(topic.as_str())?;
        let ok = head.starts_with('"')
            && text.ends_with(r#","seq":"#)
            && [&id, &payload, &ts]
                .iter()
                .all(|r| r.start <= r.end && text.get((*r).clone()).is_some());
        if !ok {
            return None;
        }
        // A node rebuilding its ring from the stream receives old events: their age is the one
        // their publisher stamped, not the time they arrived here.
        let at_ms = text
            .get(ts.clone())
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(clock::unix_millis, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
            });
        Some(Self {
            buf,
            id,
            payload,
            ts,
            at_ms,
        })
    }

    /// Serializes everything but the `seq`; `PAYLOAD_TOO_LARGE` past `max_payload` bytes.
    pub(crate) fn new(
        topic: &TopicName,
        id: Option<&str>,
        payload: Payload<'_>,
        max_payload: usize,
    ) -> Result<Self, ApiError> {
        let mut buf = Vec::with_capacity(128 + topic.as_str().len());
        buf.extend_from_slice(EVENT_HEAD.as_bytes());
        buf.extend_from_slice(topic.as_str().as_bytes());
        buf.extend_from_slice(AFTER_TOPIC.as_bytes());
        let id_start = buf.len();
        match id {
            Some(id) => frames::write_json_str(&mut buf, id),
            None => {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                let uuid = uuid::Uuid::new_v4();
                buf.push(b'"');
                buf.extend_from_slice(uuid.hyphenated().encode_lower(&mut text).as_bytes());
                buf.push(b'"');
            }
        }
        let id_range = id_start..buf.len();
        buf.extend_from_slice(br#","payload":"#);
        let payload_start = buf.len();
        let written = match payload {
            Payload::Value(value) => value.write(&mut buf),
            Payload::Text(text) => {
                frames::write_json_str(&mut buf, text);
                Ok(())
            }
        };
        if written.is_err() {
            return Err(ApiError::new(
                ErrorCode::Internal,
                "payload serialization failed",
            ));
        }
        let payload_len = buf.len() - payload_start;
        if payload_len > max_payload {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("message is {payload_len} bytes, over the limit of {max_payload}"),
            ));
        }
        let payload_range = payload_start..buf.len();
        buf.extend_from_slice(br#"},"ts":""#);
        let ts_start = buf.len();
        let (now, at_ms) = clock::stamp();
        buf.extend_from_slice(now.as_str().as_bytes());
        let ts_range = ts_start..buf.len();
        buf.extend_from_slice(br#"","seq":"#);
        Ok(Self {
            buf,
            id: id_range,
            payload: payload_range,
            ts: ts_range,
            at_ms,
        })
    }
}
