//! One WebSocket connection: a read loop that parses and serves client frames, and a writer task
//! that drains the connection's outbox to the socket.
//!
//! Everything the connection sends (acks, errors, events, replays) goes through its one bounded
//! outbox, so the order a client sees is the order frames were queued, and no publisher ever
//! waits for this socket. The writer frames a batch of queued items itself and writes it with
//! vectored writes straight from the shared buffers (see `wire`); tungstenite only reads, and its
//! pongs and close replies reach the socket through the same writer.

mod auth;
mod dispatch;
mod patterns;
mod pipeline;
mod reader;
mod writer;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument, Span};

use super::wire::{self, ControlOut, ReadAhead};
use super::State;
use crate::broker::{ConnId, Outbox, Subscriber, Topic};
use crate::error::{ApiError, ErrorCode};
use crate::node::Caller;
use crate::protocol::{server as frames, Dialect, Replay, TopicName, TopicPattern};
use writer::{close_frame, Closing, Writer, CLOSE_LINGER};

/// Why the read loop stopped.
#[derive(Debug)]
enum ReadEnd {
    /// The peer sent a close frame or the stream ended.
    PeerClosed,
    /// Nothing arrived for `IDLE_TIMEOUT_SECS`.
    Idle,
    /// A frame over the size limit.
    TooBig,
    /// A text frame that is not UTF-8.
    BadUtf8,
    /// A compressed message whose deflate data is invalid.
    BadDeflate,
    /// A protocol or I/O error; the socket is unusable.
    Broken,
    /// The server is shutting down; the writer drains and closes.
    Shutdown,
    /// The writer gave up (slow consumer or write error).
    WriterGone,
    /// The reader waited [`STALL_TIMEOUT`] for the client to read its replies: a slow consumer.
    Stalled,
    /// More control frames per second than `MAX_CONTROL_FRAMES_PER_SEC`.
    ControlFlood,
    /// The lame-duck drain reached this connection's group: close with 1012 so the client
    /// reconnects (through the load balancer, to another node).
    Restart,
    /// No rights and no `auth` frame within `AUTH_TIMEOUT_SECS` (PROTOCOL.md §4).
    AuthTimeout,
    /// The token reached `exp` + leeway without a refresh (PROTOCOL.md §4).
    TokenExpired,
}

/// What is due when a session's auth deadline passes (see `auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Due {
    /// A connection without rights did not authenticate in time.
    Timeout,
    /// Tell the client its token expires soon.
    Expiring,
    /// The token expired (leeway included).
    Expired,
}

/// Serves one WebSocket until it closes, once hyper has handed the connection over. `session` was
/// created before the upgrade answer was sent, so a `/ws/sub/{topic}` socket is subscribed before
/// the client can see it open. It runs inside the connection's span, which names the connection,
/// peer and route. `deflate`: the handshake negotiated permessage-deflate.
///
/// This and `serve` are plain functions returning `async move` blocks, not `async fn`s: an async fn
/// moves its arguments into locals, so its future holds each argument twice, and a connection's
/// task lives as long as the connection. Setup is done in sync helpers for the same reason: a
/// local that was ever borrowed keeps its place in the future until its scope ends.
#[allow(clippy::manual_async_fn)]
pub(super) fn run(
    session: Session,
    on_upgrade: OnUpgrade,
    deflate: bool,
) -> impl Future<Output = ()> + Send {
    async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return debug!(error = %e, "websocket upgrade failed"),
        };
        session.state.node.session_opened();
        // The reader and the writer each own a half of the socket; a TCP stream splits without
        // a lock. Anything else hyper might hand us gets tokio's (locking) split.
        let tcp = upgraded.downcast::<TokioIo<TcpStream>>();
        match tcp {
            Ok(parts) => {
                let (read, write) = parts.io.into_inner().into_split();
                hand_over(session, read, write, parts.read_buf, deflate).await
            }
            Err(upgraded) => {
                let (read, write) = tokio::io::split(TokioIo::new(upgraded));
                hand_over(session, read, write, Bytes::new(), deflate).await
            }
        }
    }
}

/// Starts the connection's writer and reading task on the socket's halves, and lets the upgrade's
/// task end: what the upgrade needed (hyper's handle, the socket before it was split) is not
/// carried for the connection's life. `read_ahead`: bytes hyper read past the upgrade request.
async fn hand_over<R, W>(session: Session, read: R, write: W, read_ahead: Bytes, deflate: bool)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (reader, writing) = start(&session, read, write, read_ahead, deflate);
    // tungstenite's own buffer lives as long as the connection, so it is small; `ReadAhead` does
    // the large reads.
    let config = session
        .state
        .ws_config
        .read_buffer_size(wire::TUNGSTENITE_READ_BUFFER);
    let stream = WebSocketStream::from_raw_socket(reader, Role::Server, Some(config)).await;
    let tracker = session.state.tracker.clone();
    tracker.spawn(serve(session, stream, writing).instrument(Span::current()));
}

/// The writing half once started: its task, how to tell it the close frame, and the connection's
/// stop token (cancelled by shutdown, by the connection's drain group, or by the writer ending).
struct Writing {
    task: JoinHandle<()>,
    close_tx: oneshot::Sender<Option<Box<Closing>>>,
    stop: CancellationToken,
}

/// Starts the writer task on `write` and returns the reading half for tungstenite.
/// `read_ahead`: bytes hyper read past the upgrade request, the start of the WebSocket stream.
fn start<R, W>(
    session: &Session,
    read: R,
    write: W,
    read_ahead: Bytes,
    deflate: bool,
) -> (ReadAhead<R>, Writing)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    debug!("connected");
    let state = &session.state;
    let control = Arc::new(ControlOut::default());
    // `read_ahead` keeps hyper's whole read buffer (8 KiB) alive, even when empty: copy out what
    // it holds and let it go before the connection settles in.
    let part = read_ahead.to_vec();
    drop(read_ahead);
    let mut reader = ReadAhead::new(
        read,
        part,
        state.config.ws_read_buffer_size,
        control.clone(),
    );
    if deflate {
        // Compressed messages are inflated to at most what tungstenite accepts plain.
        reader.inflate(state.ws_config.max_message_size.unwrap_or(usize::MAX));
    }
    let stop = session.drain.child_token();
    let (close_tx, close_rx) = oneshot::channel();
    let outbox = session.subscriber.outbox.clone();
    let task = state.tracker.spawn(
        Writer::new(write, state.clone(), control, outbox, deflate)
            .run(close_rx, stop.clone())
            .instrument(Span::current()),
    );
    let writing = Writing {
        task,
        close_tx,
        stop,
    };
    (reader, writing)
}

/// Reads until the connection ends, then closes it the way its end asks for. Not an `async fn`,
/// for the reason given at [`run`].
#[allow(clippy::manual_async_fn)]
fn serve<R>(
    mut session: Session,
    mut stream: WebSocketStream<ReadAhead<R>>,
    writing: Writing,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send + 'static,
{
    async move {
        let end = session.read_loop(&mut stream, &writing.stop).await;
        debug!(?end, "read loop ended");
        if matches!(end, ReadEnd::PeerClosed) {
            // tungstenite queued its reply to the peer's close; hand it to the writer before the
            // writer is told to finish. The "connection closed" error that follows is expected.
            let _ = stream.flush().await;
        }
        session.unsubscribe_all();
        let close = match end {
            ReadEnd::Idle => Some(close_frame(CloseCode::Away, "idle timeout")),
            ReadEnd::TooBig => Some(close_frame(CloseCode::Size, "message too big")),
            ReadEnd::BadUtf8 => Some(close_frame(CloseCode::Invalid, "text frame is not UTF-8")),
            ReadEnd::BadDeflate => Some(close_frame(
                CloseCode::Invalid,
                "compressed message is not valid deflate data",
            )),
            ReadEnd::ControlFlood => Some(close_frame(
                CloseCode::Policy,
                "too many control frames (MAX_CONTROL_FRAMES_PER_SEC)",
            )),
            ReadEnd::Restart => Some(close_frame(
                CloseCode::Restart,
                "node restarting; reconnect",
            )),
            ReadEnd::AuthTimeout => Some(close_frame(CloseCode::Policy, "authentication timeout")),
            ReadEnd::TokenExpired => Some(close_frame(CloseCode::Policy, "token expired")),
            _ => None,
        };
        // The reason in JSON too, for clients that do not read close reasons.
        let last_words = match end {
            ReadEnd::AuthTimeout => Some(frames::error(
                None,
                &ApiError::new(
                    ErrorCode::Unauthorized,
                    "no credentials within AUTH_TIMEOUT_SECS: send {\"type\":\"auth\",\"token\":…}",
                ),
            )),
            ReadEnd::TokenExpired => Some(frames::error(
                None,
                &ApiError::new(
                    ErrorCode::TokenExpired,
                    "token expired without a refresh; reconnect with a new token",
                ),
            )),
            _ => None,
        };
        let close = close.map(|frame| Box::new(Closing { frame, last_words }));
        let linger = matches!(
            end,
            ReadEnd::Idle
                | ReadEnd::TooBig
                | ReadEnd::Shutdown
                | ReadEnd::WriterGone
                | ReadEnd::ControlFlood
                | ReadEnd::Restart
                | ReadEnd::AuthTimeout
                | ReadEnd::TokenExpired
        );
        let _ = writing.close_tx.send(close);
        let _ = writing.task.await;
        let outbox = &session.subscriber.outbox;
        outbox.close();
        if outbox.overflowed() || matches!(end, ReadEnd::Stalled) {
            session.state.node.slow_consumer_closed();
        }
        if linger {
            // We sent a close frame: read until the peer's answer (or give up soon), so the socket is
            // not reset under data the client has not read yet.
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Some(Ok(message)) = stream.next().await {
                    if message.is_close() {
                        break;
                    }
                }
            })
            .await;
        }
        debug!("disconnected");
        session.state.node.session_closed();
    }
}

/// The reading half's state: the connection's subscriptions. Dropping it unsubscribes them all,
/// so a connection that never completes its upgrade leaves nothing behind.
pub(super) struct Session {
    /// Shared server state.
    state: Arc<State>,
    /// This connection as the broker knows it.
    subscriber: Subscriber,
    /// Topics this connection is subscribed to, to unsubscribe on exit and enforce the cap.
    subscriptions: HashMap<TopicName, Arc<Topic>>,
    /// Wildcard subscriptions; boxed and absent until the first, so connections without any
    /// carry one word for them.
    patterns: Option<Box<Patterns>>,
    /// The drain group this connection is closed with (lame-duck drain).
    drain: CancellationToken,
    /// Who the client is, what it may do and when that needs attention; boxed because it is
    /// read once per operation, not per event, and every idle connection's task carries the
    /// session (inline it moved the task to a larger allocation class: +0.8 KiB a connection).
    auth: Box<AuthState>,
    /// Cluster mode: publishes waiting for their PubAck; made on the first one, so a connection
    /// that never publishes in a cluster (and every one on a single node) carries one word.
    pipeline: Option<Box<pipeline::Pipeline>>,
}

/// What a subscribe asks for besides its topic.
#[derive(Debug)]
pub(super) struct Subscribe<'a> {
    /// What to replay first.
    replay: Replay,
    /// Whether success is acked (seed a's subscribe on open and seed c's `action` frames are not).
    ack: bool,
    /// The shape of its events.
    dialect: Dialect,
    /// The frame's `client_id`: its presence identity when there is no token.
    client_id: Option<&'a str>,
    /// Tell the subscriber of joins and leaves.
    presence_events: bool,
}

/// The patterns a connection subscribed to (boxed in the session: most connections have none).
#[derive(Debug, Default)]
struct Patterns(HashSet<TopicPattern>);

/// A session's credentials (PROTOCOL.md §4): replaced by an `auth` frame.
struct AuthState {
    /// Who the client is and what it may do.
    caller: Caller,
    /// When the credentials next need attention (auth timeout, `token_expiring`, expiry).
    due: Option<(Instant, Due)>,
    /// The connection's presence identity without a token or a frame's `client_id`: its `?id=` /
    /// `?client_id=`, else `conn-<id>`; one allocation shared by all its subscriptions.
    name: Arc<str>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.subscriber.outbox.close();
    }
}

impl Session {
    /// A new connection's state with an empty outbox; `name` is the one its URL gave it.
    pub(super) fn new(
        state: Arc<State>,
        conn: ConnId,
        caller: Caller,
        name: Option<String>,
    ) -> Self {
        let name: Arc<str> = match name {
            Some(name) => name.into(),
            None => format!("conn-{}", conn.0).into(),
        };
        let outbox = Arc::new(
            Outbox::new(
                state.config.subscriber_queue_size,
                state.config.slow_consumer_policy,
            )
            .with_max_bytes(state.config.subscriber_queue_bytes),
        );
        let group = (conn.0 % state.drain_batches.len() as u64) as usize;
        let mut session = Self {
            subscriber: Subscriber {
                conn,
                outbox,
                dialect: Dialect::Canonical,
            },
            subscriptions: HashMap::new(),
            patterns: None,
            drain: state.drain_batches[group].clone(),
            auth: Box::new(AuthState {
                caller,
                due: None,
                name,
            }),
            pipeline: None,
            state,
        };
        session.schedule_auth(true);
        session
    }

    /// Seed a (PROTOCOL.md §2): subscribes before the socket opens, without an ack. A failure (say the topic
    /// cap) is queued as an error frame, the first thing the client reads. Seed a's pages read
    /// every frame as a message, so the socket gets no JSON `info` frames either.
    pub(super) async fn subscribe_on_open(&mut self, topic: TopicName) {
        self.subscriber.outbox.set_quiet();
        let seed = Subscribe {
            replay: Replay::None,
            ack: false,
            dialect: Dialect::Canonical,
            client_id: None,
            presence_events: false,
        };
        self.subscribe(topic, None, seed).await;
    }

    fn unsubscribe_all(&mut self) {
        self.unsubscribe_patterns();
        for (_, topic) in self.subscriptions.drain() {
            self.state.node.unsubscribe(&topic, self.subscriber.conn);
        }
    }
}
