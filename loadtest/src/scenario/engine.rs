//! The phases of a checked fan-out run that `fanout` / `latency` and `soak` share: open every
//! connection (a bounded number of handshakes at once), start the subscriber and publisher
//! tasks, show progress, drain them (publishers confirm, subscribers catch up, bounded by
//! `--drain`), and the throughput rows of the report.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::publisher::{self, Pace, PublisherEnd};
use super::subscriber::{self, Shared, SubscriberEnd};
use crate::client::{ClientError, Publisher, Subscriber};
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::Endpoint;
use crate::topic::{Layout, TopicSet};

/// Extra time a publisher gets past the drain deadline before it is aborted.
const STUCK_GRACE: Duration = Duration::from_secs(1);

/// The drain ends early after this long without a single delivery.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// How often the progress line is refreshed.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Opens every subscriber (at most `concurrency` at a time) and then the publishers.
pub async fn connect(
    endpoint: &Endpoint,
    layout: &Layout,
    topics: &TopicSet,
    concurrency: usize,
    progress: &Progress,
) -> Result<(Vec<Subscriber>, Vec<Publisher>)> {
    let subscribers = open_all(
        0..layout.subscribers,
        concurrency.max(1),
        endpoint,
        |i| {
            let names: Vec<String> = match topics.pattern() {
                Some(pattern) => vec![pattern],
                None => layout
                    .subscriber_topics(i)
                    .map(|t| topics.name(t))
                    .collect(),
            };
            let endpoint = endpoint.clone();
            async move { Subscriber::connect(&endpoint, i, &names).await }
        },
        |done, total| {
            if done % 100 == 0 || done == total {
                progress.set(format!("connecting subscribers {done}/{total}"));
            }
        },
    )
    .await?;
    let mut publishers = Vec::with_capacity(layout.publishers);
    for p in 0..layout.publishers {
        let conn = Publisher::connect(endpoint, layout.subscribers + p)
            .await
            .with_context(|| {
                format!("publisher {p} could not connect to {}", endpoint.describe())
            })?;
        publishers.push(conn);
    }
    Ok((subscribers, publishers))
}

/// Opens subscriber connections `range` with `open(i)`, at most `concurrency` handshakes at
/// once, and returns them in index order; `on_open(done, total)` runs after each one opened.
pub async fn open_all<T, Fut>(
    range: Range<usize>,
    concurrency: usize,
    endpoint: &Endpoint,
    open: impl Fn(usize) -> Fut,
    mut on_open: impl FnMut(usize, usize),
) -> Result<Vec<T>>
where
    T: Send + 'static,
    Fut: Future<Output = Result<T, ClientError>> + Send + 'static,
{
    let first = range.start;
    let total = range.len();
    // Spawned as slots free up, so only `concurrency` handshakes exist at once.
    let mut tasks = JoinSet::new();
    let mut next = range.start;
    let mut slots: Vec<Option<T>> = range.clone().map(|_| None).collect();
    let mut done = 0;
    loop {
        while tasks.len() < concurrency && next < range.end {
            let i = next;
            next += 1;
            let opening = open(i);
            tasks.spawn(async move { (i, opening.await) });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, result) = joined.context("connect task failed")?;
        let conn = result.with_context(|| {
            format!(
                "subscriber {i} could not connect to {}",
                endpoint.describe()
            )
        })?;
        slots[i - first] = Some(conn);
        done += 1;
        on_open(done, total);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Says (above the progress line) how many topics nobody subscribes to.
pub fn note_empty_topics(board: &Board, layout: &Layout, progress: &Progress) {
    let empty = (0..layout.topics)
        .filter(|&t| board.subscriber_count(t) == 0)
        .count();
    if empty > 0 {
        progress.note(&format!(
            "{empty} of {} topics have no subscriber; their messages go nowhere",
            layout.topics
        ));
    }
}

/// One task per subscriber connection, numbered from 0, until `stop` or the server ends it.
pub fn spawn_subscribers(
    subscribers: Vec<Subscriber>,
    shared: &Arc<Shared>,
    stop: &CancellationToken,
) -> JoinSet<SubscriberEnd> {
    let mut tasks = JoinSet::new();
    for (i, conn) in subscribers.into_iter().enumerate() {
        tasks.spawn(subscriber::run(i, conn, shared.clone(), stop.clone()));
    }
    tasks
}

/// One task per publisher connection, numbered from 0, publishing from `start` to `deadline` and
/// then waiting up to `drain` for the server to confirm.
pub fn spawn_publishers(
    publishers: Vec<Publisher>,
    shared: &Arc<Shared>,
    pace: Pace,
    (start, deadline): (Instant, Instant),
    drain: Duration,
) -> JoinSet<PublisherEnd> {
    let mut tasks = JoinSet::new();
    for (p, conn) in publishers.into_iter().enumerate() {
        tasks.spawn(publisher::run(
            p,
            conn,
            shared.clone(),
            pace,
            start,
            deadline,
            drain,
        ));
    }
    tasks
}

/// Collects every publisher's end; returns them and how many were still stuck (and aborted)
/// [`STUCK_GRACE`] past `drain_deadline`.
pub async fn join_publishers(
    mut tasks: JoinSet<PublisherEnd>,
    drain_deadline: Instant,
) -> Result<(Vec<PublisherEnd>, usize)> {
    let mut ends = Vec::new();
    loop {
        match timeout_at(drain_deadline + STUCK_GRACE, tasks.join_next()).await {
            Ok(Some(end)) => ends.push(end.context("publisher task failed")?),
            Ok(None) => return Ok((ends, 0)),
            Err(_) => {
                // A publisher blocked in a write the server never drains: stop it.
                let stuck = tasks.len();
                tasks.abort_all();
                return Ok((ends, stuck));
            }
        }
    }
}

/// Waits until every delivery owed arrived, `drain_deadline` passed, or nothing arrived for
/// [`DRAIN_IDLE`]: what is missing by then (dropped by policy, or lost) is not coming. Calls
/// `tick` every 10 ms meanwhile; returns whether every delivery arrived.
pub async fn wait_caught_up(
    shared: &Shared,
    drain_deadline: Instant,
    mut tick: impl FnMut(),
) -> bool {
    let mut moved = (Instant::now(), shared.board.total_delivered());
    while !shared.board.caught_up() && Instant::now() < drain_deadline {
        sleep(Duration::from_millis(10)).await;
        let delivered = shared.board.total_delivered();
        if delivered != moved.1 {
            moved = (Instant::now(), delivered);
        } else if moved.0.elapsed() >= DRAIN_IDLE {
            break;
        }
        tick();
    }
    shared.board.caught_up()
}

/// Collects every subscriber's end (after `stop` was cancelled).
pub async fn join_subscribers(mut tasks: JoinSet<SubscriberEnd>) -> Result<Vec<SubscriberEnd>> {
    let mut subs = Vec::new();
    while let Some(end) = tasks.join_next().await {
        subs.push(end.context("subscriber task failed")?);
    }
    Ok(subs)
}

/// The "published" and "deliveries" rows: counts within the publishing window and their rates.
pub fn throughput_rows(report: &mut Report, sent: u64, delivered: u64, elapsed: f64) {
    for (name, n) in [("published", sent), ("deliveries", delivered)] {
        report.row(
            name,
            format!(
                "{} in {elapsed:.1} s = {}",
                report::int(n),
                report::rate(n as f64 / elapsed)
            ),
        );
    }
}

/// The counts at the last progress line, so the next one can show rates since then.
#[derive(Debug, Clone, Copy)]
pub struct Since {
    /// When the last line was made.
    pub at: Instant,
    sent: u64,
    delivered: u64,
}

impl Since {
    /// Nothing published or delivered yet at `start`.
    pub fn start(start: Instant) -> Self {
        Self {
            at: start,
            sent: 0,
            delivered: 0,
        }
    }

    /// `published N (rate), delivered M (rate), subscribers alive/all`, with the rates since the
    /// last line; this becomes the last line.
    pub fn line(&mut self, shared: &Shared) -> String {
        let now = Instant::now();
        let sent = shared.board.total_sent();
        let delivered = shared.board.total_delivered();
        let secs = now.duration_since(self.at).as_secs_f64().max(1e-3);
        let text = format!(
            "published {} ({}), delivered {} ({}), subscribers {}/{}",
            report::int(sent),
            report::rate((sent - self.sent) as f64 / secs),
            report::int(delivered),
            report::rate((delivered - self.delivered) as f64 / secs),
            shared.board.alive(),
            shared.layout.subscribers,
        );
        *self = Self {
            at: now,
            sent,
            delivered,
        };
        text
    }
}

/// Publishers that had to be aborted fail the run: their counts are missing.
pub fn stuck_check(report: &mut Report, stuck: usize) {
    report.set("stuck_publishers", stuck);
    report.check(
        stuck > 0,
        format!("{stuck} publishers did not finish (their counts are missing)"),
    );
}
