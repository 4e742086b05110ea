//! The start of a soak's publishing window: every task of the run spawned at once (steady
//! subscribers, churners, WebSocket publishers, the REST publisher, the dropper).

use std::sync::Arc;

use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::churn::{self, ChurnPlan, ChurnStats, DropStats, Live};
use super::rest::{self, RestPlan, RestStats};
use super::setup::{Clients, Plan};
use crate::cli::SoakArgs;
use crate::clock;
use crate::latency::LatencySink;
use crate::scenario::board::Board;
use crate::scenario::engine;
use crate::scenario::publisher::{Pace, PublisherEnd};
use crate::scenario::subscriber::{Shared, SubscriberEnd};

/// herald publishers wait for acks beyond this many publishes in flight (below its default
/// `SUBSCRIBER_QUEUE_SIZE` of 100: acks share the connection's outbox).
const MAX_UNACKED: u64 = 64;

/// Messages a WebSocket publisher queues before one flush.
const BATCH: usize = 8;

/// What the running soak shares with its watcher and its report.
pub struct Run {
    /// The start of publishing.
    pub start: Instant,
    /// The end of publishing.
    pub deadline: Instant,
    /// What every subscriber and publisher task shares (board, layout, latency).
    pub shared: Arc<Shared>,
    /// Cancelled once the drain is over: subscribers and churners stop.
    pub stop: CancellationToken,
    /// Resumes and dropped connections so far, for the status line.
    pub live: Arc<Live>,
    /// What every churner shares, with the resume latency of all of them.
    pub churn: Arc<ChurnPlan>,
    /// Request latency of the REST publisher.
    pub rest_latency: Arc<LatencySink>,
}

/// The tasks of the run, collected by the drain.
pub struct Tasks {
    /// Steady subscribers.
    pub subscribers: JoinSet<SubscriberEnd>,
    /// Churning subscribers.
    pub churners: JoinSet<(SubscriberEnd, ChurnStats)>,
    /// WebSocket publishers.
    pub publishers: JoinSet<PublisherEnd>,
    /// The REST publisher, with `--rest-rate`.
    pub rest: Option<JoinHandle<(PublisherEnd, RestStats)>>,
    /// The connection dropper, with `--drop-rate`.
    pub dropper: Option<JoinHandle<DropStats>>,
}

/// Starts publishing now: spawns every task over `clients`.
pub fn start(clients: Clients, plan: &Plan, board: Board, args: &SoakArgs) -> (Run, Tasks) {
    let start = Instant::now();
    let start_ns = clock::now_ns();
    let deadline = start + args.duration;
    let shared = Arc::new(Shared {
        board,
        layout: plan.layout,
        topics: plan.topics.clone(),
        latency: LatencySink::new(),
        warm_from_ns: start_ns + plan.warmup.as_nanos() as u64,
    });
    let stop = CancellationToken::new();
    let live = Arc::new(Live::default());
    let subscribers = engine::spawn_subscribers(clients.subscribers, &shared, &stop);
    let churn = Arc::new(ChurnPlan {
        endpoint: plan.endpoint.clone(),
        every: args.churn_every,
        offline: args.churn_offline,
        until: deadline,
        resume_latency: LatencySink::new(),
        live: live.clone(),
    });
    let seed = start_ns ^ u64::from(std::process::id()).rotate_left(32);
    let mut churners = JoinSet::new();
    for (k, (conn, ack)) in clients.churners.into_iter().enumerate() {
        churners.spawn(churn::churner(
            plan.steady + k,
            conn,
            ack,
            shared.clone(),
            churn.clone(),
            seed.wrapping_add(k as u64 * 0x9e37_79b9),
            stop.clone(),
        ));
    }
    let pace = Pace {
        rate: args.rate / args.publishers as f64,
        window: 0,
        max_unacked: MAX_UNACKED,
        batch: BATCH,
        payload: args.payload,
        text: false,
        messages: None,
    };
    let publishers = engine::spawn_publishers(
        clients.publishers,
        &shared,
        pace,
        (start, deadline),
        args.drain,
    );
    let rest_latency = LatencySink::new();
    let rest = plan.rest_on.then(|| {
        tokio::spawn(rest::run(
            RestPlan {
                publisher: args.publishers,
                endpoint: plan.endpoint.clone(),
                socket: args.subscribers + args.publishers,
                rate: args.rest_rate,
                payload: args.payload,
                start,
                deadline,
                latency: rest_latency.clone(),
            },
            shared.clone(),
        ))
    });
    let dropper = (args.drop_rate > 0.0).then(|| {
        tokio::spawn(churn::dropper(
            plan.endpoint.clone(),
            plan.topics.clone(),
            args.drop_rate,
            deadline,
            args.subscribers + args.publishers + 1,
            live.clone(),
        ))
    });
    let run = Run {
        start,
        deadline,
        shared,
        stop,
        live,
        churn,
        rest_latency,
    };
    let tasks = Tasks {
        subscribers,
        churners,
        publishers,
        rest,
        dropper,
    };
    (run, tasks)
}
