//! One subscriber connection's task in a fan-out run: hands every delivery to the checker of
//! its (topic, publisher) stream, counts it on the board, samples its latency, and stops when
//! the run cancels it or the server closes it.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::board::Board;
use crate::checker::StreamChecker;
use crate::client::{Closed, Recv, Subscriber};
use crate::clock;
use crate::latency::LatencySink;
use crate::payload;
use crate::topic::{Layout, TopicSet};

/// What a subscriber task needs from the run.
pub struct Shared {
    pub board: Board,
    pub layout: Layout,
    pub topics: TopicSet,
    pub latency: Arc<LatencySink>,
    /// Messages sent before this (`clock::now_ns`) are not latency-sampled (`--warmup`).
    pub warm_from_ns: u64,
}

/// How one subscriber ended, and what it saw.
pub struct SubscriberEnd {
    /// Which subscriber this is.
    pub subscriber: usize,
    /// Per (local topic, publisher slot): `streams[j * publishers_per_topic + slot]`.
    pub streams: Vec<StreamChecker>,
    /// `None` when the run stopped it; otherwise why the server side ended it.
    pub closed: Option<Closed>,
    /// Frames that were not a delivery of this run's payloads.
    pub foreign: u64,
}

pub async fn run(
    sub: usize,
    mut conn: Subscriber,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> SubscriberEnd {
    let layout = shared.layout;
    let per_topic = layout.publishers_per_topic();
    let mut streams = vec![StreamChecker::default(); layout.per_subscriber * per_topic];
    let mut latency = shared.latency.recorder();
    let mut foreign = 0u64;
    let warm_from = shared.warm_from_ns;
    let mut on = |topic: &[u8], payload: &[u8]| {
        let now = clock::now_ns();
        let delivery = shared.topics.index(topic).and_then(|t| {
            let j = layout.local_index(sub, t)?;
            let stamp = payload::decode(payload)?;
            let slot = layout.publisher_slot(stamp.publisher as usize);
            (slot < per_topic).then_some((j, slot, stamp))
        });
        let Some((j, slot, stamp)) = delivery else {
            foreign += 1;
            return;
        };
        streams[j * per_topic + slot].observe(stamp.counter);
        shared.board.received(sub, j);
        if stamp.sent_ns >= warm_from {
            latency.record(now.saturating_sub(stamp.sent_ns));
        }
    };
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    let closed = loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break None,
            recv = conn.recv(&mut on) => {
                if let Recv::Closed(why) = recv {
                    break Some(why);
                }
            }
        }
    };
    if closed.is_some() {
        shared.board.gone(sub);
    }
    drop(conn);
    SubscriberEnd {
        subscriber: sub,
        streams,
        closed,
        foreign,
    }
}
