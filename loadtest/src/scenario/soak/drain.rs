//! Teardown of a soak: publishers confirm what they sent, the REST publisher and the dropper
//! finish, subscribers catch up (all within `--drain`), then every subscriber and churner is
//! stopped and collected.

use anyhow::{Context, Result};
use tokio::time::Instant;

use super::churn::{ChurnStats, DropStats};
use super::rest::RestStats;
use super::start::{Run, Tasks};
use crate::cli::SoakArgs;
use crate::progress::Progress;
use crate::scenario::engine;
use crate::scenario::publisher::PublisherEnd;
use crate::scenario::subscriber::SubscriberEnd;

/// How every task of the run ended.
pub struct Ended {
    /// Every publisher's end, the REST publisher's included.
    pub publishers: Vec<PublisherEnd>,
    /// Publishers still stuck past the drain (aborted, their counts missing).
    pub stuck: usize,
    /// Steady subscribers and churners.
    pub subscribers: Vec<SubscriberEnd>,
    /// Every delivery owed arrived before the drain ended.
    pub drained: bool,
    pub churned: ChurnStats,
    pub rest: Option<RestStats>,
    pub dropped: Option<DropStats>,
}

/// Drains and collects every task.
pub async fn drain(run: &Run, tasks: Tasks, args: &SoakArgs, progress: &Progress) -> Result<Ended> {
    progress.set("draining".into());
    let drain_deadline = Instant::now() + args.drain;
    let (mut publishers, stuck) = engine::join_publishers(tasks.publishers, drain_deadline).await?;
    let rest = match tasks.rest {
        Some(task) => {
            let (end, stats) = task.await.context("REST publisher task failed")?;
            publishers.push(end);
            Some(stats)
        }
        None => None,
    };
    let dropped = match tasks.dropper {
        Some(task) => Some(task.await.context("dropper task failed")?),
        None => None,
    };
    let drained = engine::wait_caught_up(&run.shared, drain_deadline, || {}).await;
    run.stop.cancel();
    let mut subscribers = engine::join_subscribers(tasks.subscribers).await?;
    let mut churned = ChurnStats::default();
    let mut churners = tasks.churners;
    while let Some(end) = churners.join_next().await {
        let (end, stats) = end.context("churner task failed")?;
        subscribers.push(end);
        churned.add(&stats);
    }
    Ok(Ended {
        publishers,
        stuck,
        subscribers,
        drained,
        churned,
        rest,
        dropped,
    })
}
