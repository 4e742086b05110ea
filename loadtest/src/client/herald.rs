//! herald over WebSocket `/ws` (PROTOCOL.md §1), on tokio-tungstenite with a 4 KiB read buffer.
//! Event frames are scanned, not parsed: the payload this tool publishes is a plain JSON string,
//! so topic and payload are the bytes between known quotes.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use memchr::memmem;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use super::{ClientError, Closed, Finished, Recv, Replies, READ_BUFFER};

/// Every event frame starts with these bytes (the server writes fields in a fixed order).
const EVENT_PREFIX: &[u8] = br#"{"type":"event","topic":""#;
const ACK_PREFIX: &[u8] = br#"{"type":"ack""#;
const ERROR_PREFIX: &[u8] = br#"{"type":"error""#;

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

    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        let frame = match self.ws.next().await {
            Some(Ok(Message::Text(text))) => text.into(),
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Close(frame))) => {
                return Recv::Closed(match frame {
                    Some(f) if f.code == CloseCode::Policy => {
                        Closed::Policy(format!("close 1008 {}", f.reason))
                    }
                    Some(f) => Closed::Other(format!("close {} {}", u16::from(f.code), f.reason)),
                    None => Closed::Other("close frame".into()),
                });
            }
            Some(Ok(_)) => return Recv::Data,
            Some(Err(e)) => return Recv::Closed(Closed::Other(e.to_string())),
            None => return Recv::Closed(Closed::Other("connection closed".into())),
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
}
