//! One publisher connection's task in a fan-out run: publishes round-robin over its topics at
//! the offered rate or as fast as the flow-control window allows, flushing once per batch, then
//! waits (bounded) until the server has processed everything it sent.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, sleep_until, Instant};

use super::subscriber::Shared;
use crate::client::{Finished, Publisher};
use crate::clock;
use crate::payload::{self, Stamp};

/// Yields to the subscriber tasks this many times while blocked before sleeping 1 ms: a window
/// usually reopens within a few rounds of the local tasks.
const SPINS_BEFORE_SLEEP: u32 = 256;

/// How a publisher is paced.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Messages/s for this publisher; 0 = as fast as allowed.
    pub rate: f64,
    /// Per-topic in-flight limit (see `Board::window_open`); 0 = none.
    pub window: u64,
    /// herald: publishes awaiting an ack before this publisher waits.
    pub max_unacked: u64,
    /// Messages queued before one flush.
    pub batch: usize,
    pub payload: usize,
    /// Fill payloads with text (`--text-payload`) instead of one repeated byte.
    pub text: bool,
    /// Messages to publish over all publishers (`--messages`), then stop; `None` = until the
    /// deadline.
    pub messages: Option<u64>,
}

/// Publisher `p`'s part of `total` messages split over `publishers`: the first `total %
/// publishers` publish one more.
pub fn share(total: u64, p: usize, publishers: usize) -> u64 {
    let n = publishers.max(1) as u64;
    total / n + u64::from((p as u64) < total % n)
}

/// What one publisher did.
pub struct PublisherEnd {
    /// Which publisher this is.
    pub publisher: usize,
    /// (topic, messages sent on it).
    pub sent: Vec<(usize, u64)>,
    pub finished: Finished,
}

pub async fn run(
    publisher: usize,
    mut conn: Publisher,
    shared: Arc<Shared>,
    pace: Pace,
    start: Instant,
    deadline: Instant,
    drain: Duration,
) -> PublisherEnd {
    let topics = shared.layout.publisher_topics(publisher);
    let names: Vec<String> = topics.iter().map(|&t| shared.topics.name(t)).collect();
    let mut counters = vec![0u64; topics.len()];
    let mut floors = vec![0u64; topics.len()];
    let mut buf = Vec::with_capacity(pace.payload);
    let mut total = 0u64;
    let mut next = 0usize;
    let mut spins = 0u32;
    let mut failure = None;
    let quota = pace
        .messages
        .map_or(u64::MAX, |n| share(n, publisher, shared.layout.publishers));
    'run: while Instant::now() < deadline && total < quota {
        let mut budget = (pace.batch as u64).min(quota - total);
        if pace.rate > 0.0 {
            let due = (start.elapsed().as_secs_f64() * pace.rate) as u64;
            if due <= total {
                let at = start + Duration::from_secs_f64((total + 1) as f64 / pace.rate);
                sleep_until(at.min(deadline)).await;
                continue;
            }
            budget = budget.min(due - total);
        }
        let mut queued = 0;
        let mut blocked = 0;
        while queued < budget && blocked < topics.len() && conn.unacked() < pace.max_unacked {
            let k = next;
            next = (next + 1) % topics.len();
            let topic = topics[k];
            if pace.window > 0 && !shared.board.window_open(topic, &mut floors[k], pace.window) {
                blocked += 1;
                continue;
            }
            blocked = 0;
            buf.clear();
            let stamp = Stamp {
                publisher: publisher as u32,
                counter: counters[k],
                sent_ns: clock::now_ns(),
            };
            if pace.text {
                payload::encode_text(&mut buf, &stamp, pace.payload);
            } else {
                payload::encode(&mut buf, &stamp, pace.payload);
            }
            if let Err(e) = conn.push(&names[k], &buf).await {
                failure = Some(e.to_string());
                break 'run;
            }
            counters[k] += 1;
            total += 1;
            shared.board.sent(topic);
            queued += 1;
        }
        if queued > 0 {
            if let Err(e) = conn.flush().await {
                failure = Some(e.to_string());
                break;
            }
            spins = 0;
        } else if spins < SPINS_BEFORE_SLEEP {
            spins += 1;
            tokio::task::yield_now().await;
        } else {
            sleep(Duration::from_millis(1)).await;
        }
    }
    let mut finished = conn.finish(drain).await;
    if let Some(e) = failure {
        finished.errors += 1;
        finished.first_error.get_or_insert(e);
    }
    PublisherEnd {
        publisher,
        sent: topics.into_iter().zip(counters).collect(),
        finished,
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_add_up() {
        for (total, publishers) in [(6000, 1), (10, 3), (2, 5), (0, 2)] {
            let parts: Vec<u64> = (0..publishers)
                .map(|p| share(total, p, publishers))
                .collect();
            assert_eq!(parts.iter().sum::<u64>(), total);
            assert!(parts.iter().max().unwrap() - parts.iter().min().unwrap() <= 1);
        }
        assert_eq!(share(10, 0, 3), 4);
        assert_eq!(share(10, 2, 3), 3);
    }
}
