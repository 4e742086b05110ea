//! The writing half of a session: owns the socket's write half, drains the outbox (and
//! tungstenite's control frames) in batches, sends the heartbeat, and closes the connection the
//! way the reader or the server asks.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::oneshot;
use tokio::time::{interval_at, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::broker::{Outbox, Outgoing};
use crate::error::{ApiError, ErrorCode};
use crate::protocol::server as frames;
use crate::protocol::Frame;
use crate::server::wire::{self, ControlOut, Wire};
use crate::server::State;

/// How long a closing connection waits for the peer's close reply before dropping the socket.
pub(super) const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Most outbox items taken per batch; bounds how long a batch holds the socket.
const MAX_BATCH: usize = 1024;

/// Outbox items taken at a time: the outbox's lock is held while taking, not while framing.
const CHUNK: usize = 64;

/// Why the writer stopped writing a batch.
enum Interrupt {
    /// The batch was written (or the socket failed).
    Written(std::io::Result<()>),
    /// The server is shutting down.
    Shutdown,
    /// The reader ended; send this close frame, if any.
    Close(Option<Box<Closing>>),
    /// The outbox overflowed under `disconnect`.
    Overflow,
    /// More to send arrived while the socket was busy.
    More,
}

/// The writing half: owns the socket's write half and every byte written to it; drains the
/// outbox and tungstenite's control frames.
pub(super) struct Writer<W> {
    /// The socket's write half.
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
    /// The connection's outbound queue.
    outbox: Arc<Outbox>,
    /// Items just taken from the outbox, on their way into `wire`; kept between batches and
    /// given back with the wire's buffers.
    taken: Vec<Outgoing>,
    /// Server shutdown: flush, announce, close 1001.
    shutdown: CancellationToken,
    /// `HEARTBEAT_INTERVAL_SECS`.
    heartbeat: Duration,
    /// How long the shutdown drain may take (`SHUTDOWN_TIMEOUT_SECS`).
    drain_timeout: Duration,
}

impl<W> Writer<W>
where
    W: AsyncWrite + Unpin,
{
    /// A writer for `io` that drains `outbox` and `control`; `deflate`: the connection
    /// negotiated permessage-deflate.
    pub(super) fn new(
        io: W,
        state: Arc<State>,
        control: Arc<ControlOut>,
        outbox: Arc<Outbox>,
        deflate: bool,
    ) -> Self {
        Self {
            io,
            wire: Wire::new(deflate.then_some(state.config.compress_min_bytes)),
            control,
            closed: false,
            max_buffer: state.ws_config.max_write_buffer_size,
            outbox,
            taken: Vec::new(),
            shutdown: state.shutdown.clone(),
            heartbeat: state.config.heartbeat_interval,
            drain_timeout: state.config.shutdown_timeout,
            state,
        }
    }

    /// Writes until the connection ends; cancels `done` when it stops, however it stops.
    ///
    /// A plain function returning an `async move` block rather than an `async fn`: an async fn
    /// moves its arguments into locals, so the future would hold the writer twice for the
    /// connection's whole life (184 bytes per idle connection).
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run(
        mut self,
        mut close_rx: oneshot::Receiver<Option<Box<Closing>>>,
        done: CancellationToken,
    ) -> impl std::future::Future<Output = ()> {
        async move {
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
                    _ = self.shutdown.cancelled() => return Box::pin(self.drain_and_close()).await,
                    end = &mut close_rx => return Box::pin(self.close(end.ok().flatten())).await,
                    _ = self.outbox.ready() => false,
                    _ = self.control.ready() => false,
                    _ = tick.tick() => true,
                };
                if heartbeat {
                    // A connection that has been quiet for a heartbeat gives back its batch buffers
                    // and its queue's memory.
                    self.wire.release();
                    self.taken = Vec::new();
                    self.outbox.release_if_idle();
                }
                if self.outbox.overflowed() {
                    return Box::pin(self.slow_consumer()).await;
                }
                // Control frames first: a pong answers a ping that arrived before these events.
                self.take_control();
                if !self.closed {
                    if heartbeat {
                        // Seed clients read every text frame as a message: Ping only.
                        if !self.outbox.is_quiet() {
                            self.wire.text(&frames::info_heartbeat());
                        }
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
                        Interrupt::Shutdown => return Box::pin(self.drain_and_close()).await,
                        Interrupt::Close(frame) => return Box::pin(self.close(frame)).await,
                        Interrupt::Overflow => return Box::pin(self.slow_consumer()).await,
                    }
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

    /// Queues up to `max` outbox items. A quiet connection's client (a seed's) reads every text
    /// frame as a message, so its `info` frames are not sent (PROTOCOL.md §2).
    fn take_outbox(&mut self, max: usize) {
        let quiet = self.outbox.is_quiet();
        let mut left = max;
        while left > 0 {
            let taken = self.outbox.pop_into(left.min(CHUNK), &mut self.taken);
            for item in self.taken.drain(..) {
                if quiet && matches!(item, Outgoing::Info(_) | Outgoing::Notice(_)) {
                    continue;
                }
                self.wire.item(item);
            }
            if taken < CHUNK.min(left) {
                break;
            }
            left -= taken;
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
    async fn close(mut self, closing: Option<Box<Closing>>) {
        self.take_control();
        if let Some(closing) = closing {
            if let Some(last) = closing.last_words.filter(|_| !self.closed) {
                self.wire.text(&last);
            }
            self.queue_close(&closing.frame);
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
                    "outbound queue overflowed; closing (SUBSCRIBER_QUEUE_SIZE or SUBSCRIBER_QUEUE_BYTES)",
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
                if !self.outbox.is_quiet() {
                    self.wire.text(&frames::info_shutting_down());
                }
                self.queue_close(&close_frame(CloseCode::Away, "server shutting down"));
            }
            self.wire.write_to(&mut self.io).await
        })
        .await;
    }
}

/// How the reader wants the connection closed: the close frame, and an error frame that must be
/// the last thing before it (the reason in JSON, for clients that do not read close reasons).
/// Sent boxed: inline, it grew every connection's writer task into a larger allocation class.
pub(super) struct Closing {
    /// The close frame.
    pub(super) frame: CloseFrame,
    /// Sent just before the close frame.
    pub(super) last_words: Option<Frame>,
}

/// A close frame with a fixed reason.
pub(super) fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: reason.into(),
    }
}
