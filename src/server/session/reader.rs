//! The reading half of a session: reads frames until the connection should end, pausing while
//! the connection's own outbox is over its high-water mark, and says why it stopped.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::pipeline::Pipeline;
use super::{ReadEnd, Session};
use crate::config::SlowConsumerPolicy;
use crate::error::ApiError;
use crate::metrics::FrameIn;
use crate::protocol::inflate::InflateError;
use crate::protocol::Frame;
use crate::server::wire::inflate_error_of;

/// How long the reader may stay paused on a half-full outbox (`disconnect` policy): a client that keeps sending but has
/// not taken its replies off the socket for this long is a slow consumer and is closed, so it
/// cannot hold a connection (or its own blocked writes) for the whole idle timeout.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);

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

impl Session {
    /// Queues a pipelined publish's reply, if it has one.
    fn push_reply(&self, reply: Option<Frame>) {
        if let Some(reply) = reply {
            self.push(reply);
        }
    }

    /// Why `stop` (the connection's token: cancelled by server shutdown, by the connection's
    /// drain group, or by its writer ending) was cancelled, in that order of precedence. One
    /// token instead of three keeps every idle connection's task smaller by two waiters.
    fn stopped(&self) -> ReadEnd {
        if self.state.shutdown.is_cancelled() {
            ReadEnd::Shutdown
        } else if self.drain.is_cancelled() {
            ReadEnd::Restart
        } else {
            ReadEnd::WriterGone
        }
    }

    /// Reads and serves frames until the connection should end or `stop` is cancelled.
    /// Publishes still waiting for their PubAck are answered first when the server ends the
    /// connection on its side (shutdown, drain, idle), as they would be if each were awaited in
    /// turn.
    pub(super) async fn read_loop<St>(
        &mut self,
        stream: &mut St,
        stop: &CancellationToken,
    ) -> ReadEnd
    where
        St: Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let end = self.read_frames(stream, stop).await;
        if matches!(end, ReadEnd::Shutdown | ReadEnd::Restart | ReadEnd::Idle) {
            if let Some(mut pipeline) = self.pipeline.take() {
                // Each wait is bounded by the backplane's call timeout.
                while pipeline.len() > 0 {
                    if let Some(reply) = pipeline.next().await {
                        self.push(reply);
                    }
                }
            }
        }
        end
    }

    async fn read_frames<St>(&mut self, stream: &mut St, stop: &CancellationToken) -> ReadEnd
    where
        St: Stream<Item = Result<Message, WsError>> + Unpin,
    {
        let max_inflight = self.state.config.max_inflight_publishes;
        let idle = self.state.config.idle_timeout;
        let mut deadline = Instant::now() + idle;
        // simd-json parses in place and needs scratch space: kept while frames keep coming, given
        // back once the client has been quiet for `PARSE_QUIET` (most connections subscribe once
        // and then only listen, and ≈ 1 KiB each adds up over thousands).
        let mut parse: Option<Box<ParseBuffers>> = None;
        let mut parsed_at = Instant::now();
        let mut control = ControlBudget::new(self.state.config.max_control_frames_per_sec);
        // Past half of either queue limit the reader stops reading until the writer catches up:
        // a client that pipelines requests then waits on TCP instead of overflowing its own queue
        // with replies. Half the queue stays free for events.
        let outbox = self.subscriber.outbox.clone();
        // Under `disconnect` a client that leaves its replies unread is a slow consumer like one
        // that leaves its events; under `drop_oldest` a full queue of events is the policy at work,
        // so only the idle timeout applies.
        let (stall, stalled) = match self.state.config.slow_consumer_policy {
            SlowConsumerPolicy::Disconnect => (idle.min(STALL_TIMEOUT), ReadEnd::Stalled),
            SlowConsumerPolicy::DropOldest => (idle, ReadEnd::Idle),
        };
        loop {
            if outbox.past_high_water() {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return self.stopped(),
                    _ = outbox.below_high_water() => {}
                    // A client that sends but never reads must not hold the connection.
                    _ = tokio::time::sleep(stall) => return stalled,
                }
                // Waiting on our own queue is not the client's silence.
                deadline = Instant::now() + idle;
            }
            if self
                .pipeline
                .as_ref()
                .is_some_and(|p| p.len() >= max_inflight)
            {
                // MAX_INFLIGHT_PUBLISHES: the client waits on TCP until the oldest is answered.
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => return self.stopped(),
                    reply = next_reply(&mut self.pipeline) => self.push_reply(reply),
                }
                deadline = Instant::now() + idle;
                continue;
            }
            if parse.is_some() && Instant::now() >= parsed_at + PARSE_QUIET {
                parse = None;
                // The replies to those frames have long been written: an idle queue's memory goes
                // too (the writer gives it back at each heartbeat as well).
                outbox.release_if_idle();
            }
            let mut wake = self.auth_wake().map_or(deadline, |due| due.min(deadline));
            if parse.is_some() {
                wake = wake.min(parsed_at + PARSE_QUIET);
            }
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => return self.stopped(),
                reply = next_reply(&mut self.pipeline) => {
                    self.push_reply(reply);
                    continue;
                }
                next = tokio::time::timeout_at(wake, stream.next()) => next,
            };
            let message = match next {
                Err(_) if Instant::now() >= deadline => return ReadEnd::Idle,
                // Woken to give the parse buffers back (above), not by the auth deadline.
                Err(_) if self.auth_wake().is_none_or(|due| Instant::now() < due) => continue,
                Err(_) => match self.on_auth_due() {
                    Some(end) => return end,
                    None => continue,
                },
                Ok(None) => return ReadEnd::PeerClosed,
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(WsError::Capacity(e)))) => {
                    debug!(error = %e, "frame over the size limit");
                    return ReadEnd::TooBig;
                }
                Ok(Some(Err(WsError::Utf8(_)))) => return ReadEnd::BadUtf8,
                Ok(Some(Err(WsError::Io(e)))) if inflate_error_of(&e).is_some() => {
                    debug!(error = %e, "compressed message refused");
                    return match inflate_error_of(&e) {
                        Some(InflateError::TooBig) => ReadEnd::TooBig,
                        Some(InflateError::Corrupt) => ReadEnd::BadDeflate,
                        _ => ReadEnd::Broken,
                    };
                }
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
                    let parse = parse.get_or_insert_with(Box::default);
                    parsed_at = Instant::now();
                    Box::pin(self.on_frame(text.as_bytes(), &mut parse.scratch, &mut parse.buffers))
                        .await
                }
                Message::Binary(data) => match std::str::from_utf8(&data) {
                    Ok(_) => {
                        let parse = parse.get_or_insert_with(Box::default);
                        parsed_at = Instant::now();
                        Box::pin(self.on_frame(&data, &mut parse.scratch, &mut parse.buffers)).await
                    }
                    Err(_) => {
                        self.state.metrics.frame_in(FrameIn::Invalid);
                        self.reply_error(
                            None,
                            ApiError::bad_request("binary frame is not UTF-8 JSON"),
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
            // Frames come out of a read-ahead buffer without touching the socket, so without this
            // a client streaming publishes would fan out hundreds of them per turn while the
            // writers it fills wait: a burst would pile up in their queues instead of waiting in
            // the publisher's socket (TCP backpressure). tokio's cooperative budget decides when
            // to yield (a plain `yield_now` every 512 frames measured worse: 600 of 1,000
            // subscribers cut in loadtest/burst.sh, against none with the budget).
            tokio::task::consume_budget().await;
        }
    }
}

/// How long a client must send nothing before its parse buffers are given back: one timer
/// wake-up after a client's last frame, none while it keeps sending.
const PARSE_QUIET: Duration = Duration::from_secs(1);

/// simd-json's working memory for parsing client frames in place.
#[derive(Default)]
struct ParseBuffers {
    /// A copy of the frame, which simd-json rewrites as it parses.
    scratch: Vec<u8>,
    /// Its structural indexes and stacks.
    buffers: simd_json::Buffers,
}

/// The oldest pipelined publish's reply once known; pending forever when none waits.
async fn next_reply(pipeline: &mut Option<Box<Pipeline>>) -> Option<Frame> {
    match pipeline {
        Some(pipeline) => pipeline.next().await,
        None => std::future::pending().await,
    }
}
