//! Connection churn of a soak.
//!
//! - A *churner* is a subscriber that, every few seconds, goes away without a close frame (a FIN
//!   or a RST, alternating), reconnects, and resumes with `since_seq` + `epoch` from the last
//!   event it saw. Its ack must say `recovered: true` in the same epoch, the replay and the live
//!   events after it must continue the topic's `seq` without a gap or a repeat, and every payload
//!   goes through the same per-stream checker as the steady subscribers, across reconnects.
//! - The *dropper* opens connections and drops them without a close frame: a bare TCP connect, a
//!   WebSocket upgrade, an upgrade plus a subscribe.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::measure::{check_resume, Resume, Rng, SeqTrack};
use crate::checker::StreamChecker;
use crate::client::herald::{self, Incoming, Resumable, SubscribeAck};
use crate::client::{ClientError, Closed, Recv};
use crate::clock;
use crate::latency::{LatencyRecorder, LatencySink};
use crate::payload;
use crate::scenario::subscriber::{Shared, SubscriberEnd};
use crate::target::Endpoint;
use crate::topic::TopicSet;

/// Longest wait for one connect + upgrade + subscribe ack.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts to resume before the churner gives up (and the run fails).
const RESUME_ATTEMPTS: u32 = 5;

/// Pause between two resume attempts.
const RESUME_BACKOFF: Duration = Duration::from_millis(200);

/// Dropped connections in flight at once.
pub const DROP_IN_FLIGHT: usize = 16;

/// Opens client socket `i`, upgrades, subscribes to `topic` (resuming after `since`) and waits
/// for the subscribe ack. Frames before the ack go to `on`.
pub async fn subscribe(
    endpoint: &Endpoint,
    i: usize,
    topic: &str,
    since: Option<(u64, &str)>,
    on: &mut impl FnMut(Incoming<'_>),
) -> Result<(Resumable, SubscribeAck), ClientError> {
    let attempt = async {
        let stream = endpoint.connect(i).await?;
        let mut conn = Resumable::open(stream, &endpoint.ws_url()).await?;
        conn.subscribe(topic, since).await?;
        let mut ack = None;
        loop {
            let mut handle = |frame: Incoming<'_>| match frame {
                Incoming::Ack(a) if a.topic == topic => ack = Some(a),
                other => on(other),
            };
            if let Recv::Closed(why) = conn.recv(&mut handle).await {
                return Err(ClientError::Protocol(match why {
                    Closed::Policy(w) | Closed::Other(w) => w,
                }));
            }
            if let Some(ack) = ack.take() {
                return Ok((conn, ack));
            }
        }
    };
    timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or(Err(ClientError::Timeout))
}

/// Running totals for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Churner resumes so far.
    pub resumes: AtomicU64,
    /// Connections the dropper opened and dropped so far.
    pub dropped: AtomicU64,
}

/// What the churners did, summed.
#[derive(Debug, Clone, Default)]
pub struct ChurnStats {
    /// Connections dropped without a close frame: with a FIN, with a RST.
    pub fin_drops: u64,
    pub rst_drops: u64,
    /// Resumes acked with `recovered: true` in the same epoch.
    pub resumes: u64,
    /// Events the server owed after those resumes (latest `seq` − last `seq` seen).
    pub replayed: u64,
    /// Resumes whose ack failed the check (`recovered` not true, epoch changed, seq behind).
    pub bad_resumes: u64,
    /// Reconnect attempts that failed (retried), and churners that gave up.
    pub retries: u64,
    pub gave_up: u64,
    /// `seq` continuity over every churner's events.
    pub seq_gaps: u64,
    pub seq_skipped: u64,
    pub seq_repeated: u64,
    pub first_problem: Option<String>,
}

impl ChurnStats {
    pub fn add(&mut self, o: &ChurnStats) {
        self.fin_drops += o.fin_drops;
        self.rst_drops += o.rst_drops;
        self.resumes += o.resumes;
        self.replayed += o.replayed;
        self.bad_resumes += o.bad_resumes;
        self.retries += o.retries;
        self.gave_up += o.gave_up;
        self.seq_gaps += o.seq_gaps;
        self.seq_skipped += o.seq_skipped;
        self.seq_repeated += o.seq_repeated;
        if self.first_problem.is_none() {
            self.first_problem.clone_from(&o.first_problem);
        }
    }

    fn problem(&mut self, what: String) {
        self.first_problem.get_or_insert(what);
    }
}

/// What one churner needs besides its connection.
pub struct ChurnPlan {
    pub endpoint: Endpoint,
    /// Mean hold time between drops.
    pub every: Duration,
    /// Longest time away after a drop.
    pub offline: Duration,
    /// No drop is started after this (the end of publishing).
    pub until: Instant,
    /// Reconnect-to-ack time of every resume.
    pub resume_latency: Arc<LatencySink>,
    pub live: Arc<Live>,
}

/// The deliveries of one churner: the checker of each stream, `seq` continuity, latency.
struct Deliveries<'a> {
    sub: usize,
    shared: &'a Shared,
    streams: Vec<StreamChecker>,
    track: SeqTrack,
    /// Events up to this `seq` are a resume's replay: held back while the subscriber was away,
    /// so their publish-to-delivery time is not latency and is not recorded.
    replay_through: u64,
    latency: LatencyRecorder,
    foreign: u64,
}

impl Deliveries<'_> {
    fn on(&mut self, frame: Incoming<'_>) {
        let Incoming::Event {
            topic,
            payload,
            seq,
        } = frame
        else {
            return;
        };
        let now = clock::now_ns();
        let layout = self.shared.layout;
        let per_topic = layout.publishers_per_topic();
        let delivery = self.shared.topics.index(topic).and_then(|t| {
            let j = layout.local_index(self.sub, t)?;
            let stamp = payload::decode(payload)?;
            let slot = layout.publisher_slot(stamp.publisher as usize);
            (slot < per_topic).then_some((j, slot, stamp))
        });
        let Some((j, slot, stamp)) = delivery else {
            self.foreign += 1;
            return;
        };
        self.track.event(seq);
        self.streams[j * per_topic + slot].observe(stamp.counter);
        self.shared.board.received(self.sub, j);
        if seq > self.replay_through && stamp.sent_ns >= self.shared.warm_from_ns {
            self.latency.record(now.saturating_sub(stamp.sent_ns));
        }
    }
}

/// Runs churning subscriber `sub` (subscribed to one topic, `conn` with its `ack`) until `stop`.
pub async fn churner(
    sub: usize,
    conn: Resumable,
    ack: SubscribeAck,
    shared: Arc<Shared>,
    plan: Arc<ChurnPlan>,
    seed: u64,
    stop: CancellationToken,
) -> (SubscriberEnd, ChurnStats) {
    let layout = shared.layout;
    let topic = ack.topic.clone();
    let epoch = ack.epoch.clone();
    let mut rng = Rng::new(seed);
    let mut stats = ChurnStats::default();
    let mut resume_latency = plan.resume_latency.recorder();
    let mut d = Deliveries {
        sub,
        shared: &shared,
        streams: vec![StreamChecker::default(); layout.publishers_per_topic()],
        track: SeqTrack::new(ack.seq),
        replay_through: 0,
        latency: shared.latency.recorder(),
        foreign: 0,
    };
    let mut conn = Some(conn);
    // The first drop comes anywhere in the first 1.5 holds, so churners do not move in step.
    let mut next_drop = Instant::now() + rng.between(plan.every / 10, plan.every * 3 / 2);
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let closed = 'run: loop {
        let Some(live) = conn.as_mut() else {
            break None;
        };
        let churn = next_drop < plan.until;
        let mut deliver = |f: Incoming<'_>| d.on(f);
        tokio::select! {
            biased;
            _ = &mut stopped => break None,
            _ = sleep_until(next_drop), if churn => {}
            recv = live.recv(&mut deliver) => {
                match recv {
                    Recv::Data => continue,
                    Recv::Closed(why) => break Some(why),
                }
            }
        }
        // Time to go away without a close frame, then come back where we left off.
        let reset = (stats.fin_drops + stats.rst_drops) % 2 == 1;
        if let Some(old) = conn.take() {
            old.vanish(reset);
        }
        if reset {
            stats.rst_drops += 1;
        } else {
            stats.fin_drops += 1;
        }
        tokio::select! {
            biased;
            _ = &mut stopped => break None,
            _ = sleep(rng.between(Duration::ZERO, plan.offline)) => {}
        }
        let mut attempt = 0;
        let reconnect_at = Instant::now();
        loop {
            attempt += 1;
            let last = d.track.last();
            match subscribe(
                &plan.endpoint,
                sub,
                &topic,
                Some((last, &epoch)),
                &mut |f| d.on(f),
            )
            .await
            {
                Ok((fresh, ack)) => {
                    resume_latency.record(reconnect_at.elapsed().as_nanos() as u64);
                    d.replay_through = ack.seq;
                    match check_resume(&ack, last, &epoch) {
                        Resume::Recovered { missed } => {
                            stats.resumes += 1;
                            stats.replayed += missed;
                            plan.live.resumes.fetch_add(1, Relaxed);
                        }
                        Resume::Failed(why) => {
                            stats.bad_resumes += 1;
                            stats.problem(format!("subscriber {sub}: {why}"));
                        }
                    }
                    conn = Some(fresh);
                    break;
                }
                Err(e) if attempt < RESUME_ATTEMPTS && !stop.is_cancelled() => {
                    stats.retries += 1;
                    stats.problem(format!("subscriber {sub}: reconnect failed: {e}"));
                    sleep(RESUME_BACKOFF).await;
                }
                Err(e) => {
                    stats.gave_up += 1;
                    stats.problem(format!(
                        "subscriber {sub}: gave up after {attempt} reconnects: {e}"
                    ));
                    break 'run Some(Closed::Other(format!("could not resume: {e}")));
                }
            }
        }
        next_drop = Instant::now() + rng.hold(plan.every);
    };
    if closed.is_some() {
        shared.board.gone(sub);
    }
    drop(conn);
    stats.seq_gaps = d.track.gaps;
    stats.seq_skipped = d.track.skipped;
    stats.seq_repeated = d.track.repeated;
    if d.track.gaps > 0 || d.track.repeated > 0 {
        stats.problem(format!(
            "subscriber {sub}: {} seq gaps ({} skipped), {} repeated",
            d.track.gaps, d.track.skipped, d.track.repeated
        ));
    }
    let end = SubscriberEnd {
        subscriber: sub,
        streams: std::mem::take(&mut d.streams),
        closed,
        foreign: d.foreign,
    };
    (end, stats)
}

/// Connections the dropper opened and dropped without a close frame, by kind.
#[derive(Debug, Clone, Default)]
pub struct DropStats {
    /// Bare TCP connects (no HTTP at all).
    pub tcp: u64,
    /// WebSocket upgrades.
    pub upgraded: u64,
    /// Upgrades that also subscribed to a topic of the run (and got the ack).
    pub subscribed: u64,
    /// Of all of them, how many went away with a RST rather than a FIN.
    pub reset: u64,
    pub failed: u64,
    pub first_error: Option<String>,
}

impl DropStats {
    pub fn total(&self) -> u64 {
        self.tcp + self.upgraded + self.subscribed
    }
}

/// Opens and drops `rate` connections a second (at most [`DROP_IN_FLIGHT`] at once) until
/// `until`. Client socket numbers start at `first_socket`.
pub async fn dropper(
    endpoint: Endpoint,
    topics: TopicSet,
    rate: f64,
    until: Instant,
    first_socket: usize,
    live: Arc<Live>,
) -> DropStats {
    let mut stats = DropStats::default();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        let at = start + Duration::from_secs_f64(n as f64 / rate);
        if at >= until {
            break;
        }
        sleep_until(at).await;
        while tasks.len() >= DROP_IN_FLIGHT {
            if let Some(done) = tasks.join_next().await {
                note(&mut stats, done);
            }
        }
        while let Some(done) = tasks.try_join_next() {
            note(&mut stats, done);
        }
        let kind = (n % 3) as u8;
        let reset = (n / 3) % 2 == 1;
        stats.reset += u64::from(reset);
        let endpoint = endpoint.clone();
        let topic = topics.name(n as usize % topics.len());
        let socket = first_socket + n as usize;
        tasks.spawn(async move {
            let attempt = async {
                match kind {
                    0 => {
                        let stream = endpoint.connect(socket).await?;
                        if reset {
                            herald::set_reset_on_close(&stream);
                        }
                        drop(stream);
                    }
                    1 => {
                        let stream = endpoint.connect(socket).await?;
                        Resumable::open(stream, &endpoint.ws_url())
                            .await?
                            .vanish(reset);
                    }
                    _ => {
                        let (conn, _ack) =
                            subscribe(&endpoint, socket, &topic, None, &mut |_| {}).await?;
                        conn.vanish(reset);
                    }
                }
                Ok(kind)
            };
            timeout(CONNECT_TIMEOUT, attempt)
                .await
                .unwrap_or(Err(ClientError::Timeout))
        });
        n += 1;
        live.dropped.store(n, Relaxed);
    }
    while let Some(done) = tasks.join_next().await {
        note(&mut stats, done);
    }
    stats
}

/// Counts one finished dropper task: its kind, or its failure.
fn note(stats: &mut DropStats, done: Result<Result<u8, ClientError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(0)) => stats.tcp += 1,
        Ok(Ok(1)) => stats.upgraded += 1,
        Ok(Ok(_)) => stats.subscribed += 1,
        Ok(Err(e)) => {
            stats.failed += 1;
            stats.first_error.get_or_insert_with(|| e.to_string());
        }
        Err(e) => {
            stats.failed += 1;
            stats.first_error.get_or_insert_with(|| e.to_string());
        }
    }
}
