//! herald over WebSocket `/ws` (PROTOCOL.md §1), on tokio-tungstenite with a 4 KiB read buffer.
//! Event frames are scanned, not parsed: the payload this tool publishes is a plain JSON string,
//! so topic and payload are the bytes between known quotes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use super::{ClientError, Closed, Finished, Recv, Replies, READ_BUFFER};

/// Every event frame starts with these bytes (the server writes fields in a fixed order).
const EVENT_PREFIX: &[u8] = br#"{"type":"event","topic":""#;
pub(super) const ACK_PREFIX: &[u8] = br#"{"type":"ack""#;
pub(super) const ERROR_PREFIX: &[u8] = br#"{"type":"error""#;

/// Finds the start of the payload string in an event frame.
static PAYLOAD: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(br#""payload":""#));

/// The same small read buffer for every herald connection; writes are flushed explicitly.
fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

async fn handshake(
    stream: TcpStream,
    url: &str,
) -> Result<WebSocketStream<TcpStream>, ClientError> {
    let (ws, _response) = client_async_with_config(url, stream, Some(config())).await?;
    Ok(ws)
}

/// The bytes of the next text or binary frame; otherwise what `recv` returns instead: `Data`
/// for a control frame (nothing to hand over), `Closed` for a close frame, an error or the end.
fn data_frame(next: Option<Result<Message, WsError>>) -> Result<Bytes, Recv> {
    match next {
        Some(Ok(Message::Text(text))) => Ok(text.into()),
        Some(Ok(Message::Binary(bytes))) => Ok(bytes),
        Some(Ok(Message::Close(frame))) => Err(Recv::Closed(match frame {
            Some(f) if f.code == CloseCode::Policy => {
                Closed::Policy(format!("close 1008 {}", f.reason))
            }
            Some(f) => Closed::Other(format!("close {} {}", u16::from(f.code), f.reason)),
            None => Closed::Other("close frame".into()),
        })),
        Some(Ok(_)) => Err(Recv::Data),
        Some(Err(e)) => Err(Recv::Closed(Closed::Other(e.to_string()))),
        None => Err(Recv::Closed(Closed::Other("connection closed".into()))),
    }
}

/// (topic, payload) of an event frame carrying a string payload; `None` for anything else.
pub fn parse_event(frame: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = frame.strip_prefix(EVENT_PREFIX)?;
    let end = memchr::memchr(b'"', rest)?;
    let (topic, rest) = rest.split_at(end);
    let start = PAYLOAD.find(rest)? + PAYLOAD.needle().len();
    let body = &rest[start..];
    let end = memchr::memchr(b'"', body)?;
    Some((topic, &body[..end]))
}

/// A subscribed `/ws` connection.
pub struct Subscriber {
    ws: WebSocketStream<TcpStream>,
}

impl Subscriber {
    /// Upgrades, subscribes to every topic, and waits for every ack.
    pub async fn connect(
        stream: TcpStream,
        url: &str,
        topics: &[String],
    ) -> Result<Self, ClientError> {
        let mut ws = handshake(stream, url).await?;
        for topic in topics {
            let frame = format!(r#"{{"type":"subscribe","topic":"{topic}"}}"#);
            ws.feed(Message::text(frame)).await?;
        }
        ws.flush().await?;
        let mut acked = 0;
        while acked < topics.len() {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let bytes = text.as_bytes();
                    if bytes.starts_with(ACK_PREFIX) {
                        acked += 1;
                    } else if bytes.starts_with(ERROR_PREFIX) {
                        return Err(ClientError::Server(text.to_string()));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed),
            }
        }
        Ok(Self { ws })
    }

    /// Waits for one frame and hands a delivery to `on(topic, payload)`.
    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        let frame = match data_frame(self.ws.next().await) {
            Ok(frame) => frame,
            Err(recv) => return recv,
        };
        if let Some((topic, payload)) = parse_event(&frame) {
            on(topic, payload);
        } else if frame.starts_with(ERROR_PREFIX)
            && memmem::find(&frame, b"SLOW_CONSUMER").is_some()
        {
            return Recv::Closed(Closed::Policy("SLOW_CONSUMER".into()));
        }
        Recv::Data
    }

    pub fn into_stream(self) -> TcpStream {
        self.ws.into_inner()
    }
}

/// A publishing `/ws` connection; a reader task counts the acks.
pub struct Publisher {
    sink: SplitSink<WebSocketStream<TcpStream>, Message>,
    reader: JoinHandle<()>,
    replies: Arc<Replies>,
    /// Publish frames written so far.
    sent: u64,
}

impl Publisher {
    pub async fn connect(stream: TcpStream, url: &str) -> Result<Self, ClientError> {
        let ws = handshake(stream, url).await?;
        let (sink, stream) = ws.split();
        let replies = Arc::new(Replies::default());
        let reader = tokio::spawn(read_replies(stream, replies.clone()));
        Ok(Self {
            sink,
            reader,
            replies,
            sent: 0,
        })
    }

    pub async fn push(&mut self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        let payload = std::str::from_utf8(payload)
            .map_err(|_| ClientError::Protocol("payload is not UTF-8".into()))?;
        let mut frame = String::with_capacity(64 + topic.len() + payload.len());
        frame.push_str(r#"{"type":"publish","topic":""#);
        frame.push_str(topic);
        frame.push_str(r#"","message":{"payload":""#);
        frame.push_str(payload);
        frame.push_str(r#""}}"#);
        self.sink.feed(Message::text(frame)).await?;
        self.sent += 1;
        Ok(())
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        Ok(self.sink.flush().await?)
    }

    pub fn unacked(&self) -> u64 {
        let answered =
            self.replies.ok.load(Ordering::Relaxed) + self.replies.errors.load(Ordering::Relaxed);
        self.sent.saturating_sub(answered)
    }

    pub async fn finish(mut self, timeout: Duration) -> Result<Finished, ClientError> {
        self.sink.flush().await?;
        self.replies.wait_for(self.sent, timeout).await;
        let finished = self.replies.finished(self.sent);
        let _ = tokio::time::timeout(Duration::from_millis(200), self.sink.close()).await;
        self.reader.abort();
        Ok(finished)
    }
}

async fn read_replies(mut stream: SplitStream<WebSocketStream<TcpStream>>, replies: Arc<Replies>) {
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Text(text)) => {
                let bytes = text.as_bytes();
                if bytes.starts_with(ACK_PREFIX) {
                    replies.ok.fetch_add(1, Ordering::Relaxed);
                } else if bytes.starts_with(ERROR_PREFIX) {
                    replies.error(text.to_string());
                }
            }
            Ok(Message::Close(_)) => break,
            Ok(_) => {}
            Err(e) => {
                replies.error(e.to_string());
                break;
            }
        }
    }
    replies.closed.store(true, Ordering::Relaxed);
}

/// What a subscribe ack says (PROTOCOL.md §1): the topic's latest `seq` when the subscription
/// took effect, its `epoch`, and `recovered` when a replay was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeAck {
    pub topic: String,
    pub seq: u64,
    pub epoch: String,
    pub recovered: Option<bool>,
}

/// A subscribe ack; `None` for any other frame (publish acks have an `id`, unsubscribe acks no
/// `epoch`). Acks are rare, so this one is parsed as JSON.
pub fn parse_subscribe_ack(frame: &[u8]) -> Option<SubscribeAck> {
    if !frame.starts_with(ACK_PREFIX) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(frame).ok()?;
    Some(SubscribeAck {
        topic: v.get("topic")?.as_str()?.to_string(),
        seq: v.get("seq")?.as_u64()?,
        epoch: v.get("epoch")?.as_str()?.to_string(),
        recovered: v.get("recovered").and_then(serde_json::Value::as_bool),
    })
}

/// Finds the `seq` field after an event's message object.
static SEQ: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(br#""seq":"#));

/// (topic, payload, seq) of an event frame carrying a string payload; `None` for anything else.
pub fn parse_event_seq(frame: &[u8]) -> Option<(&[u8], &[u8], u64)> {
    let (topic, payload) = parse_event(frame)?;
    // The payload is a slice of `frame`; `seq` follows the message object it ends.
    let after = payload.as_ptr() as usize - frame.as_ptr() as usize + payload.len();
    let rest = &frame[after..];
    let digits = &rest[SEQ.find(rest)? + SEQ.needle().len()..];
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    if end == 0 || end > 19 {
        return None;
    }
    let seq = digits[..end]
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    Some((topic, payload, seq))
}

/// The subscribe frame, resuming after `since` = (seq, epoch) when given.
pub fn subscribe_frame(topic: &str, since: Option<(u64, &str)>) -> String {
    let topic = serde_json::Value::from(topic);
    match since {
        None => format!(r#"{{"type":"subscribe","topic":{topic}}}"#),
        Some((seq, epoch)) => format!(
            r#"{{"type":"subscribe","topic":{topic},"since_seq":{seq},"epoch":{}}}"#,
            serde_json::Value::from(epoch)
        ),
    }
}

/// One frame a [`Resumable`] connection received.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// An event of this tool's payloads.
    Event {
        topic: &'a [u8],
        payload: &'a [u8],
        seq: u64,
    },
    /// A subscribe ack.
    Ack(SubscribeAck),
    /// Anything else (heartbeats, other acks, events of foreign payloads).
    Other,
}

/// A `/ws` connection that subscribes (and resumes with `since_seq` + `epoch`) under the caller's
/// control and can go away without a close frame, the way a crashed client or a dead network
/// does.
pub struct Resumable {
    ws: WebSocketStream<TcpStream>,
}

impl Resumable {
    pub async fn open(stream: TcpStream, url: &str) -> Result<Self, ClientError> {
        Ok(Self {
            ws: handshake(stream, url).await?,
        })
    }

    /// Sends a subscribe (resuming after `since` when given); the ack comes through `recv`.
    pub async fn subscribe(
        &mut self,
        topic: &str,
        since: Option<(u64, &str)>,
    ) -> Result<(), ClientError> {
        self.ws
            .send(Message::text(subscribe_frame(topic, since)))
            .await?;
        Ok(())
    }

    /// Waits for one frame and hands it to `on`.
    pub async fn recv<F: FnMut(Incoming<'_>)>(&mut self, on: &mut F) -> Recv {
        let frame = match data_frame(self.ws.next().await) {
            Ok(frame) => frame,
            Err(recv) => return recv,
        };
        if let Some((topic, payload, seq)) = parse_event_seq(&frame) {
            on(Incoming::Event {
                topic,
                payload,
                seq,
            });
        } else if let Some(ack) = parse_subscribe_ack(&frame) {
            on(Incoming::Ack(ack));
        } else if frame.starts_with(ERROR_PREFIX) {
            return Recv::Closed(if memmem::find(&frame, b"SLOW_CONSUMER").is_some() {
                Closed::Policy("SLOW_CONSUMER".into())
            } else {
                Closed::Other(String::from_utf8_lossy(&frame).into_owned())
            });
        } else {
            on(Incoming::Other);
        }
        Recv::Data
    }

    /// Goes away without a close frame: a FIN, or with `reset` a RST (`SO_LINGER` 0).
    pub fn vanish(self, reset: bool) {
        let stream = self.ws.into_inner();
        if reset {
            set_reset_on_close(&stream);
        }
        drop(stream);
    }
}

/// Makes closing `stream` send a RST instead of a FIN. A zero linger never blocks the thread
/// (the deprecation of `set_linger` is about non-zero values).
pub fn set_reset_on_close(stream: &TcpStream) {
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_event_frames() {
        let frame = br#"{"type":"event","topic":"hl1.3","message":{"id":"9b1c","payload":"00000001abc"},"seq":42,"ts":"2025-08-25T10:00:00.123Z"}"#;
        let (topic, payload) = parse_event(frame).unwrap();
        assert_eq!(topic, b"hl1.3");
        assert_eq!(payload, b"00000001abc");
        let object =
            br#"{"type":"event","topic":"t","message":{"id":"x","payload":{"a":1}},"seq":1}"#;
        assert_eq!(parse_event(object), None);
        let ack = br#"{"type":"ack","topic":"t","status":"ok","seq":1,"ts":"x"}"#;
        assert_eq!(parse_event(ack), None);
    }

    #[test]
    fn scans_event_seq() {
        let frame = br#"{"type":"event","topic":"hl1.3","message":{"id":"9b1c","payload":"00000001abc"},"seq":42,"ts":"2025-08-25T10:00:00.123Z"}"#;
        let (topic, payload, seq) = parse_event_seq(frame).unwrap();
        assert_eq!(
            (topic, payload, seq),
            (&b"hl1.3"[..], &b"00000001abc"[..], 42)
        );
        // A payload that itself contains `"seq":` text cannot fool the scan: it starts after it.
        let tricky = br#"{"type":"event","topic":"t","message":{"id":"x","payload":"seq:7"},"seq":8,"ts":"x"}"#;
        assert_eq!(parse_event_seq(tricky).unwrap().2, 8);
        let no_seq = br#"{"type":"event","topic":"t","message":{"id":"x","payload":"p"},"ts":"x"}"#;
        assert_eq!(parse_event_seq(no_seq), None);
        let bad = br#"{"type":"event","topic":"t","message":{"id":"x","payload":"p"},"seq":-1}"#;
        assert_eq!(parse_event_seq(bad), None);
    }

    #[test]
    fn parses_subscribe_acks() {
        let ack = br#"{"type":"ack","topic":"hl1.0","status":"ok","seq":17,"epoch":"a1b2c3","recovered":true,"ts":"x"}"#;
        assert_eq!(
            parse_subscribe_ack(ack),
            Some(SubscribeAck {
                topic: "hl1.0".into(),
                seq: 17,
                epoch: "a1b2c3".into(),
                recovered: Some(true),
            })
        );
        let plain = br#"{"type":"ack","topic":"t","status":"ok","seq":0,"epoch":"e","ts":"x"}"#;
        assert_eq!(parse_subscribe_ack(plain).unwrap().recovered, None);
        let publish = br#"{"type":"ack","topic":"t","status":"ok","id":"m","seq":3,"ts":"x"}"#;
        assert_eq!(parse_subscribe_ack(publish), None);
        let event = br#"{"type":"event","topic":"t","message":{"id":"x","payload":"p"},"seq":1}"#;
        assert_eq!(parse_subscribe_ack(event), None);
    }

    #[test]
    fn builds_subscribe_frames() {
        assert_eq!(
            subscribe_frame("t.1", None),
            r#"{"type":"subscribe","topic":"t.1"}"#
        );
        let resume = subscribe_frame("t.1", Some((42, "ab\"c")));
        let v: serde_json::Value = serde_json::from_str(&resume).unwrap();
        assert_eq!(v["since_seq"], 42);
        assert_eq!(v["epoch"], "ab\"c");
        assert_eq!(v["type"], "subscribe");
    }
}
