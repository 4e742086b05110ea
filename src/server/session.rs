//! One WebSocket connection: a read loop that parses and serves client frames, and a writer task
//! that drains the connection's outbox to the socket.
//!
//! Everything the connection sends (acks, errors, events, replays) goes through its one bounded
//! outbox, so the order a client sees is the order frames were queued, and no publisher ever
//! waits for this socket. The writer frames a batch of queued items itself and writes it with
//! vectored writes straight from the shared buffers (see `wire`); tungstenite only reads, and its
//! pongs and close replies reach the socket through the same writer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, Stream, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument, Span};

use super::wire::{self, ControlOut, Duplex, Wire};
use super::State;
use crate::broker::{
    ConnId, Outbox, Outgoing, Payload, Replay, SubscribeAck, Subscriber, Topic, TopicName,
};
use crate::config::SlowConsumerPolicy;
use crate::error::{ApiError, ErrorCode};
use crate::metrics::FrameIn;
use crate::protocol::{self, server as frames, ClientFrame, Kind, RequestId};

/// Most outbox items taken per batch; bounds how long a batch holds the socket.
const MAX_BATCH: usize = 1024;

/// How long a closing connection waits for the peer's close reply before dropping the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// How long the reader may stay paused on a half-full outbox (`disconnect` policy): a client that keeps sending but has
/// not taken its replies off the socket for this long is a slow consumer and is closed, so it
/// cannot hold a connection (or its own blocked writes) for the whole idle timeout.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

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
}

/// Counts a connection's control frames in one-second windows.
struct ControlBudget {
    /// Frames allowed per window.
    limit: u32,
    /// Frames seen in the current window.
    used: u32,
    /// When the current window started.
    window: Instant,
}

impl ControlBudget {
    fn new(limit: u32) -> Self {
        Self {
            limit,
            used: 0,
            window: Instant::now(),
        }
    }

    /// Counts one frame; false once the window's budget is spent.
    fn allow(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        self.used += 1;
        self.used <= self.limit
    }
}

/// Serves one upgraded WebSocket until it closes. `session` was created before the upgrade
/// answer was sent, so a `/ws/sub/{topic}` socket is subscribed before the client can see it open.
/// It runs inside the connection's span, which names the connection, peer and route.
pub(super) async fn run(mut session: Session, upgraded: Upgraded) {
    let state = session.state.clone();
    state.sessions.fetch_add(1, Ordering::Relaxed);
    // The reader and the writer each own a half of the socket; a TCP stream splits without a
    // lock. Anything else hyper might hand us gets tokio's (locking) split.
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            serve(&mut session, read, write, parts.read_buf).await
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            serve(&mut session, read, write, Bytes::new()).await
        }
    }
    state.sessions.fetch_sub(1, Ordering::Relaxed);
}

/// `read_ahead`: bytes hyper read past the upgrade request, the start of the WebSocket stream.
async fn serve<R, W>(session: &mut Session, read: R, write: W, read_ahead: Bytes)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    debug!("connected");
    let state = session.state.clone();
    let outbox = session.subscriber.outbox.clone();
    let control = Arc::new(ControlOut::default());
    // `read_ahead` keeps hyper's whole read buffer (8 KiB) alive, even when empty: copy out what
    // it holds and let it go before the connection settles in.
    let part = read_ahead.to_vec();
    drop(read_ahead);
    let duplex = Duplex::new(
        read,
        part,
        state.config.ws_read_buffer_size,
        control.clone(),
    );
    // tungstenite's buffer lives as long as the connection; Duplex does the large reads.
    let ws_config = state
        .ws_config
        .read_buffer_size(wire::TUNGSTENITE_READ_BUFFER);
    let mut stream = WebSocketStream::from_raw_socket(duplex, Role::Server, Some(ws_config)).await;
    let writer_done = CancellationToken::new();
    let (close_tx, close_rx) = oneshot::channel();
    let writer = state.tracker.spawn(
        Writer {
            io: write,
            state: state.clone(),
            wire: Wire::default(),
            control,
            closed: false,
            max_buffer: state.ws_config.max_write_buffer_size,
            outbox: outbox.clone(),
            shutdown: state.shutdown.clone(),
            heartbeat: state.config.heartbeat_interval,
            drain_timeout: state.config.shutdown_timeout,
        }
        .run(close_rx, writer_done.clone())
        .instrument(Span::current()),
    );
    let end = session.read_loop(&mut stream, &writer_done).await;
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
        ReadEnd::ControlFlood => Some(close_frame(
            CloseCode::Policy,
            "too many control frames (MAX_CONTROL_FRAMES_PER_SEC)",
        )),
        ReadEnd::Restart => Some(close_frame(
            CloseCode::Restart,
            "node restarting; reconnect",
        )),
        _ => None,
    };
    let linger = matches!(
        end,
        ReadEnd::Idle
            | ReadEnd::TooBig
            | ReadEnd::Shutdown
            | ReadEnd::WriterGone
            | ReadEnd::ControlFlood
            | ReadEnd::Restart
    );
    let _ = close_tx.send(close);
    let _ = writer.await;
    outbox.close();
    if outbox.overflowed() || matches!(end, ReadEnd::Stalled) {
        state
            .slow_consumer_disconnects
            .fetch_add(1, Ordering::Relaxed);
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
}

fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
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
    /// The drain group this connection is closed with (lame-duck drain).
    drain: CancellationToken,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.subscriber.outbox.close();
    }
}

impl Session {
    /// A new connection's state with an empty outbox.
    pub(super) fn new(state: Arc<State>, conn: ConnId) -> Self {
        let outbox = Arc::new(Outbox::new(
            state.config.subscriber_queue_size,
            state.config.slow_consumer_policy,
        ));
        let group = (conn.0 % state.drain_batches.len() as u64) as usize;
        Self {
            subscriber: Subscriber { conn, outbox },
            subscriptions: HashMap::new(),
            drain: state.drain_batches[group].clone(),
            state,
        }
    }

    /// Seed (a): subscribes before the socket opens, without an ack. A failure (say the topic
    /// cap) is queued as an error frame, the first thing the client reads.
    pub(super) async fn subscribe_on_open(&mut self, topic: TopicName) {
        self.subscribe(topic, None, Replay::None, false).await;
    }

    async fn read_loop<St>(&mut self, stream: &mut St, writer_done: &CancellationToken) -> ReadEnd
    where
        St: Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let idle = self.state.config.idle_timeout;
        let mut deadline = Instant::now() + idle;
        // Reused across frames: simd-json parses in place and needs scratch space.
        let mut scratch: Vec<u8> = Vec::new();
        let mut buffers = simd_json::Buffers::default();
        let mut control = ControlBudget::new(self.state.config.max_control_frames_per_sec);
        // Past this many queued items the reader stops reading until the writer catches up:
        // a client that pipelines requests then waits on TCP instead of overflowing its own queue
        // with replies. Half the queue stays free for events.
        let outbox = self.subscriber.outbox.clone();
        let high_water = outbox.capacity().div_ceil(2);
        // Under `disconnect` a client that leaves its replies unread is a slow consumer like one
        // that leaves its events; under `drop_oldest` a full queue of events is the policy at work,
        // so only the idle timeout applies.
        let (stall, stalled) = match self.state.config.slow_consumer_policy {
            SlowConsumerPolicy::Disconnect => (idle.min(STALL_TIMEOUT), ReadEnd::Stalled),
            SlowConsumerPolicy::DropOldest => (idle, ReadEnd::Idle),
        };
        loop {
            if outbox.len() >= high_water {
                tokio::select! {
                    biased;
                    _ = self.state.shutdown.cancelled() => return ReadEnd::Shutdown,
                    _ = writer_done.cancelled() => return ReadEnd::WriterGone,
                    _ = self.drain.cancelled() => return ReadEnd::Restart,
                    _ = outbox.below(high_water) => {}
                    // A client that sends but never reads must not hold the connection.
                    _ = tokio::time::sleep(stall) => return stalled,
                }
                // Waiting on our own queue is not the client's silence.
                deadline = Instant::now() + idle;
            }
            let next = tokio::select! {
                biased;
                _ = self.state.shutdown.cancelled() => return ReadEnd::Shutdown,
                _ = writer_done.cancelled() => return ReadEnd::WriterGone,
                _ = self.drain.cancelled() => return ReadEnd::Restart,
                next = tokio::time::timeout_at(deadline, stream.next()) => next,
            };
            let message = match next {
                Err(_) => return ReadEnd::Idle,
                Ok(None) => return ReadEnd::PeerClosed,
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(WsError::Capacity(e)))) => {
                    debug!(error = %e, "frame over the size limit");
                    return ReadEnd::TooBig;
                }
                Ok(Some(Err(WsError::Utf8(_)))) => return ReadEnd::BadUtf8,
                Ok(Some(Err(e))) => {
                    debug!(error = %e, "read failed");
                    return ReadEnd::Broken;
                }
            };
            // Any frame, a Pong included, proves the peer is alive.
            deadline = Instant::now() + idle;
            match message {
                // Boxed: handling a frame is the largest state this loop awaits, and unboxed it
                // would sit in every idle connection's task (one allocation per client frame
                // instead of ≈ 270 bytes per connection).
                Message::Text(text) => {
                    Box::pin(self.on_frame(text.as_bytes(), &mut scratch, &mut buffers)).await
                }
                Message::Binary(data) => match std::str::from_utf8(&data) {
                    Ok(_) => Box::pin(self.on_frame(&data, &mut scratch, &mut buffers)).await,
                    Err(_) => {
                        self.state.metrics.frame_in(FrameIn::Invalid);
                        self.reply_error(
                            None,
                            &ApiError::bad_request("binary frame is not UTF-8 JSON"),
                        )
                    }
                },
                Message::Close(_) => {
                    self.state.metrics.frame_in(FrameIn::Control);
                    return ReadEnd::PeerClosed;
                }
                Message::Ping(_) | Message::Pong(_) => {
                    self.state.metrics.frame_in(FrameIn::Control);
                    // tungstenite answers every Ping with a Pong, so a ping flood would make the
                    // server write as fast as the client sends; past the limit the client goes.
                    if !control.allow(Instant::now()) {
                        return ReadEnd::ControlFlood;
                    }
                }
                Message::Frame(_) => {}
            }
        }
    }

    fn push(&self, frame: crate::broker::Frame) {
        self.subscriber.outbox.push(Outgoing::frame(frame));
    }

    fn reply_error(&self, request_id: Option<&RequestId>, error: &ApiError) {
        self.push(frames::error(request_id, error));
    }

    /// Parses one client frame and serves it; every outcome queues exactly one reply (a subscribe
    /// ack may be followed by its replay).
    async fn on_frame(
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
                return self
                    .reply_error(None, &ApiError::bad_request(format!("invalid JSON: {e}")));
            }
        };
        match protocol::decode(&value) {
            Ok(frame) => {
                metrics.frame_in(frame.kind.into());
                self.dispatch(frame).await
            }
            Err(e) => {
                metrics.frame_in(FrameIn::Invalid);
                self.reply_error(e.request_id.as_ref(), &e.error)
            }
        }
    }

    async fn dispatch(&mut self, frame: ClientFrame<'_>) {
        let rid = frame.request_id.as_ref();
        match (frame.kind, frame.topic) {
            (Kind::Ping, _) => self.push(frames::pong(rid)),
            (Kind::Subscribe, Some(topic)) => {
                self.subscribe(topic, frame.request_id.as_ref(), frame.replay, true)
                    .await
            }
            (Kind::Unsubscribe, Some(topic)) => {
                if let Some(t) = self.subscriptions.remove(&topic) {
                    t.unsubscribe(self.subscriber.conn);
                }
                self.push(frames::ack(rid, &topic));
            }
            (Kind::Publish, Some(topic)) => {
                let Some(payload) = frame.payload else {
                    return self
                        .reply_error(rid, &ApiError::bad_request("publish needs a payload"));
                };
                let published = self
                    .state
                    .backplane
                    .publish(
                        &self.state.broker,
                        &topic,
                        frame.message_id,
                        Payload::Value(payload),
                    )
                    .await;
                match published {
                    Ok(published) => self.push(frames::publish_ack(rid, &topic, &published)),
                    Err(e) => self.reply_error(rid, &backplane_error(e)),
                }
            }
            (_, None) => self.reply_error(rid, &ApiError::bad_request("missing field `topic`")),
        }
    }

    async fn subscribe(
        &mut self,
        topic: TopicName,
        rid: Option<&RequestId>,
        replay: Replay,
        ack: bool,
    ) {
        if !self.subscriptions.contains_key(&topic) {
            let cap = self.state.config.max_subscriptions_per_connection;
            if self.subscriptions.len() >= cap {
                // Deleted topics no longer count.
                self.subscriptions.retain(|_, t| !t.is_deleted());
            }
            if self.subscriptions.len() >= cap {
                return self.reply_error(
                    rid,
                    &ApiError::new(
                        ErrorCode::LimitExceeded,
                        format!("at most {cap} subscriptions per connection"),
                    ),
                );
            }
        }
        if let Err(e) = self
            .state
            .backplane
            .ensure(&self.state.broker, &topic)
            .await
        {
            return self.reply_error(rid, &backplane_error(e));
        }
        let build_ack = |a: &SubscribeAck| frames::subscribe_ack(rid, &topic, a);
        let ack_fn: Option<&dyn Fn(&SubscribeAck) -> crate::broker::Frame> =
            if ack { Some(&build_ack) } else { None };
        match self
            .state
            .broker
            .subscribe(&topic, &self.subscriber, &replay, ack_fn)
        {
            Ok(t) => {
                self.subscriptions.insert(topic, t);
            }
            Err(e) => self.reply_error(rid, &e),
        }
    }

    fn unsubscribe_all(&mut self) {
        for (_, topic) in self.subscriptions.drain() {
            topic.unsubscribe(self.subscriber.conn);
        }
    }
}

/// PROTOCOL.md §1: a failed backplane call is `INTERNAL` on a WebSocket (REST says 503).
fn backplane_error(e: ApiError) -> ApiError {
    if e.code == ErrorCode::Unavailable {
        ApiError::new(ErrorCode::Internal, e.message)
    } else {
        e
    }
}

/// Why the writer stopped writing a batch.
enum Interrupt {
    /// The batch was written (or the socket failed).
    Written(std::io::Result<()>),
    /// The server is shutting down.
    Shutdown,
    /// The reader ended; send this close frame, if any.
    Close(Option<CloseFrame>),
    /// The outbox overflowed under `disconnect`.
    Overflow,
    /// More to send arrived while the socket was busy.
    More,
}

/// The writing half: owns the socket's write half and every byte written to it; drains the
/// outbox and tungstenite's control frames.
struct Writer<W> {
    io: W,
    /// For the outbox depth metric.
    state: Arc<State>,
    /// Frames taken for the socket, with the progress of writing them.
    wire: Wire,
    /// tungstenite's pongs and close replies.
    control: Arc<ControlOut>,
    /// A close frame was queued (ours or tungstenite's reply): nothing may follow it.
    closed: bool,
    /// Most bytes taken from the outbox but not yet written (tungstenite's write buffer limit).
    max_buffer: usize,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
    heartbeat: Duration,
    drain_timeout: Duration,
}

impl<W> Writer<W>
where
    W: AsyncWrite + Unpin,
{
    async fn run(
        mut self,
        mut close_rx: oneshot::Receiver<Option<CloseFrame>>,
        done: CancellationToken,
    ) {
        // However the writer ends, the reader must stop too.
        let _done = done.drop_guard();
        let mut tick = interval_at(Instant::now() + self.heartbeat, self.heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if self.closed {
                // tungstenite answered the peer's close; wait for the reader to notice.
                let _ = tokio::time::timeout(CLOSE_LINGER, &mut close_rx).await;
                return;
            }
            let heartbeat = tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return self.drain_and_close().await,
                end = &mut close_rx => return self.close(end.ok().flatten()).await,
                _ = self.outbox.ready() => false,
                _ = self.control.ready() => false,
                _ = tick.tick() => true,
            };
            if heartbeat {
                // A connection that has been quiet for a heartbeat gives back its batch buffers.
                self.wire.release();
            }
            if self.outbox.overflowed() {
                return self.slow_consumer().await;
            }
            // Control frames first: a pong answers a ping that arrived before these events.
            self.take_control();
            if !self.closed {
                if heartbeat {
                    self.wire.text(&frames::info_heartbeat());
                    self.wire.ping();
                } else {
                    self.state.metrics.outbox_depth(self.outbox.len());
                }
                self.take_outbox(MAX_BATCH);
            }
            // While the socket is slow, keep taking from the outbox up to `max_buffer` bytes, so
            // a client that pipelines requests before reading is not held up by its own replies
            // at the outbox's high-water mark (the reader's backpressure) too early.
            loop {
                let room = !self.closed
                    && self.wire.queued() < self.max_buffer
                    && !self.outbox.is_closed();
                let interrupt = tokio::select! {
                    biased;
                    _ = self.shutdown.cancelled() => Interrupt::Shutdown,
                    end = &mut close_rx => Interrupt::Close(end.ok().flatten()),
                    _ = self.outbox.overflow() => Interrupt::Overflow,
                    written = self.wire.write_to(&mut self.io) => Interrupt::Written(written),
                    _ = self.control.ready() => Interrupt::More,
                    _ = self.outbox.ready(), if room => Interrupt::More,
                };
                match interrupt {
                    Interrupt::Written(Ok(())) => break,
                    Interrupt::Written(Err(e)) => {
                        debug!(error = %e, "write failed");
                        return;
                    }
                    Interrupt::More => {
                        self.take_control();
                        if !self.closed {
                            self.take_outbox(MAX_BATCH);
                        }
                    }
                    Interrupt::Shutdown => return self.drain_and_close().await,
                    Interrupt::Close(frame) => return self.close(frame).await,
                    Interrupt::Overflow => return self.slow_consumer().await,
                }
            }
        }
    }

    /// Queues tungstenite's frames; notes a close among them.
    fn take_control(&mut self) {
        if let Some(frames) = self.control.take() {
            self.closed |= wire::has_close(&frames);
            self.wire.raw(frames);
        }
    }

    /// Queues up to `max` outbox items.
    fn take_outbox(&mut self, max: usize) {
        for _ in 0..max {
            let Some(item) = self.outbox.pop() else { break };
            self.wire.item(item);
        }
    }

    /// Queues a close frame unless one went out already.
    fn queue_close(&mut self, frame: &CloseFrame) {
        if !self.closed {
            self.closed = true;
            self.wire.close(u16::from(frame.code), &frame.reason);
        }
    }

    /// The reader ended: finish what was started, send its close frame (or tungstenite's reply to
    /// the peer's close, which the reader flushed before it told us).
    async fn close(mut self, frame: Option<CloseFrame>) {
        self.take_control();
        if let Some(frame) = frame {
            self.queue_close(&frame);
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.wire.write_to(&mut self.io)).await;
    }

    /// PROTOCOL.md §1 Backpressure, policy `disconnect`: best-effort error, then close 1008.
    async fn slow_consumer(mut self) {
        debug!("slow consumer: closing");
        self.take_control();
        if !self.closed {
            self.wire.text(&frames::error(
                None,
                &ApiError::new(
                    ErrorCode::SlowConsumer,
                    "outbound queue overflowed; closing (SUBSCRIBER_QUEUE_SIZE)",
                ),
            ));
            self.queue_close(&close_frame(CloseCode::Policy, "slow consumer"));
        }
        let _ = tokio::time::timeout(CLOSE_LINGER, self.wire.write_to(&mut self.io)).await;
    }

    /// PROTOCOL.md §7: flush what is queued, announce, close 1001, within the shutdown timeout.
    async fn drain_and_close(mut self) {
        let _ = tokio::time::timeout(self.drain_timeout, async {
            loop {
                self.take_control();
                if self.closed {
                    break;
                }
                self.take_outbox(MAX_BATCH);
                if self.wire.is_empty() {
                    break;
                }
                self.wire.write_to(&mut self.io).await?;
            }
            if !self.closed {
                self.wire.text(&frames::info_shutting_down());
                self.queue_close(&close_frame(CloseCode::Away, "server shutting down"));
            }
            self.wire.write_to(&mut self.io).await
        })
        .await;
    }
}
