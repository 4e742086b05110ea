//! Lean clients, one per target, behind two enums the scenarios drive: [`Subscriber`] and
//! [`Publisher`]. Every client runs on the same tokio runtime, reads through a 4 KiB buffer
//! that grows only for a larger message, parses without allocating per message, and hands each
//! delivery to the scenario as (topic name, payload) byte slices, so the comparison measures the
//! servers and not the clients.
//!
//! # Layout
//! - `herald.rs`: WebSocket `/ws` over tokio-tungstenite, lean event-frame scan.
//! - `deflate.rs`: herald's `/ws` read by hand (`--deflate on|off`): wire bytes counted,
//!   permessage-deflate offered and inflated with `on`.
//! - `nats.rs`: core NATS protocol (`CONNECT`, `SUB`, `PUB`, `MSG`, `PING`/`PONG`).
//! - `redis.rs`: RESP2 `SUBSCRIBE` / `PUBLISH`.
//! - `inbound.rs`: the growable read buffer the NATS, Redis and HTTP clients share.
//! - `tcp.rs`: the publishing side the NATS and Redis clients share (writer + reply reader).

pub mod deflate;
pub mod herald;
mod inbound;
pub mod nats;
pub mod redis;
mod tcp;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpStream;

pub use inbound::Inbound;

use crate::target::{Endpoint, TargetKind};

/// Initial read buffer of every client, the same for every target (herald's tungstenite buffer
/// is set to this size too).
pub const READ_BUFFER: usize = 4096;

/// Why a client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("websocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("connection closed by the server")]
    Closed,
    #[error("timed out")]
    Timeout,
}

/// The hello server answers HTTP only; scenarios refuse it before connecting, this is a backstop.
fn not_pubsub() -> ClientError {
    ClientError::Protocol("the hello target serves REST only (use the rest scenario)".into())
}

/// What one `recv` call saw.
#[derive(Debug, Clone)]
pub enum Recv {
    /// Zero or more deliveries were handed over; keep reading.
    Data,
    /// The connection is over.
    Closed(Closed),
}

/// How a subscriber connection ended before the run stopped it.
#[derive(Debug, Clone)]
pub enum Closed {
    /// The server closed it under its documented slow-consumer policy (herald `SLOW_CONSUMER` /
    /// close 1008, NATS `-ERR 'Slow Consumer'`).
    Policy(String),
    /// Any other close or error.
    Other(String),
}

/// A subscribed connection.
// One per connection and matched once per read: the herald variant's size costs nothing that
// boxing it would not cost in an extra pointer chase.
#[allow(clippy::large_enum_variant)]
pub enum Subscriber {
    Herald(herald::Subscriber),
    HeraldRaw(deflate::Subscriber),
    Nats(nats::Subscriber),
    Redis(redis::Subscriber),
}

impl Subscriber {
    /// Opens client socket `i` to `endpoint` and subscribes to `topics`, returning once the
    /// server confirmed every subscription.
    pub async fn connect(
        endpoint: &Endpoint,
        i: usize,
        topics: &[String],
    ) -> Result<Self, ClientError> {
        let stream = endpoint.connect(i).await?;
        Ok(match endpoint.kind {
            TargetKind::Herald => match endpoint.deflate {
                Some(offer) => Self::HeraldRaw(
                    deflate::Subscriber::connect(
                        stream,
                        &endpoint.addr.to_string(),
                        &endpoint.path,
                        topics,
                        offer,
                    )
                    .await?,
                ),
                None => Self::Herald(
                    herald::Subscriber::connect(stream, &endpoint.ws_url(), topics).await?,
                ),
            },
            TargetKind::Nats => Self::Nats(nats::Subscriber::connect(stream, topics).await?),
            TargetKind::Redis => Self::Redis(redis::Subscriber::connect(stream, topics).await?),
            TargetKind::Hello => return Err(not_pubsub()),
        })
    }

    /// Waits for data, then hands every complete delivery to `on(topic, payload)`.
    pub async fn recv<F: FnMut(&[u8], &[u8])>(&mut self, on: &mut F) -> Recv {
        match self {
            Self::Herald(s) => s.recv(on).await,
            Self::HeraldRaw(s) => s.recv(on).await,
            Self::Nats(s) => s.recv(on).await,
            Self::Redis(s) => s.recv(on).await,
        }
    }

    /// The bare socket, for holding an idle subscribed connection without client buffers.
    pub fn into_stream(self) -> TcpStream {
        match self {
            Self::Herald(s) => s.into_stream(),
            Self::HeraldRaw(s) => s.into_stream(),
            Self::Nats(s) => s.into_stream(),
            Self::Redis(s) => s.into_stream(),
        }
    }
}

/// A publishing connection. `push` queues into the client's write buffer; `flush` writes it.
pub enum Publisher {
    Herald(herald::Publisher),
    Nats(nats::Publisher),
    Redis(redis::Publisher),
}

impl Publisher {
    pub async fn connect(endpoint: &Endpoint, i: usize) -> Result<Self, ClientError> {
        let stream = endpoint.connect(i).await?;
        Ok(match endpoint.kind {
            TargetKind::Herald => {
                Self::Herald(herald::Publisher::connect(stream, &endpoint.ws_url()).await?)
            }
            TargetKind::Nats => Self::Nats(nats::Publisher::connect(stream).await?),
            TargetKind::Redis => Self::Redis(redis::Publisher::connect(stream)),
            TargetKind::Hello => return Err(not_pubsub()),
        })
    }

    pub async fn push(&mut self, topic: &str, payload: &[u8]) -> Result<(), ClientError> {
        match self {
            Self::Herald(p) => p.push(topic, payload).await,
            Self::Nats(p) => {
                p.push(topic, payload);
                Ok(())
            }
            Self::Redis(p) => {
                p.push(topic, payload);
                Ok(())
            }
        }
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        match self {
            Self::Herald(p) => p.flush().await,
            Self::Nats(p) => p.flush().await,
            Self::Redis(p) => p.flush().await,
        }
    }

    /// Publishes written but not answered yet, where the protocol answers each one and the
    /// answers share a bounded queue with everything else (herald: acks go through the
    /// connection's `SUBSCRIBER_QUEUE_SIZE` outbox). 0 for the others.
    pub fn unacked(&self) -> u64 {
        match self {
            Self::Herald(p) => p.unacked(),
            Self::Nats(_) | Self::Redis(_) => 0,
        }
    }

    /// Flushes, waits (up to `timeout`) until the server has processed everything sent, closes.
    pub async fn finish(self, timeout: Duration) -> Finished {
        let result = match self {
            Self::Herald(p) => p.finish(timeout).await,
            Self::Nats(p) => p.finish(timeout).await,
            Self::Redis(p) => p.finish(timeout).await,
        };
        result.unwrap_or_else(|e| Finished {
            errors: 1,
            unconfirmed: 0,
            first_error: Some(e.to_string()),
        })
    }
}

/// How a publisher ended.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Publishes the server refused (error replies), or 1 for a failed connection.
    pub errors: u64,
    /// Publishes not confirmed before the timeout (herald, redis).
    pub unconfirmed: u64,
    pub first_error: Option<String>,
}

/// What a publisher's reader task learned from the server, shared with the writing side.
#[derive(Debug, Default)]
pub struct Replies {
    /// Positive answers: herald acks, Redis integer replies, NATS `PONG`s.
    pub ok: AtomicU64,
    /// Error answers.
    pub errors: AtomicU64,
    /// The server sent a `PING` that needs a `PONG` (NATS).
    pub ping_due: AtomicBool,
    /// The connection ended.
    pub closed: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Replies {
    fn error(&self, message: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert_with(|| message.into());
    }

    fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until `ok + errors` reaches `target`, the connection closes, or `timeout` passes.
    async fn wait_for(&self, target: u64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.ok.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed) < target
            && !self.closed.load(Ordering::Relaxed)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn finished(&self, expected: u64) -> Finished {
        let answered = self.ok.load(Ordering::Relaxed) + self.errors.load(Ordering::Relaxed);
        Finished {
            errors: self.errors.load(Ordering::Relaxed),
            unconfirmed: expected.saturating_sub(answered),
            first_error: self.first_error(),
        }
    }
}
