//! The `fanout` and `latency` scenarios: S subscriber connections over T topics, P publishers.
//! Set-up connects and subscribes everything first (bounded by `--setup-timeout`), publishers run
//! for `--duration`, then a bounded drain waits for the last deliveries before every delivery
//! stream is checked for lost, duplicated and reordered messages.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::task::JoinSet;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::publisher::{self, Pace, PublisherEnd};
use super::subscriber::{self, Shared, SubscriberEnd};
use super::summary::Summary;
use crate::cli::FanoutArgs;
use crate::client::{Publisher, Subscriber};
use crate::clock;
use crate::latency::LatencySink;
use crate::payload::STAMP_LEN;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::Endpoint;
use crate::topic::{Layout, TopicSet};

/// Which of the two scenarios this run is; they differ in defaults and emphasis only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Fanout,
    Latency,
}

/// Default offered rate of `latency`, messages/s over all publishers.
const LATENCY_DEFAULT_RATE: f64 = 1000.0;

/// Default flow-control window at max rate: below herald's default `SUBSCRIBER_QUEUE_SIZE`
/// (100), so a subscriber that keeps reading is never closed as a slow consumer.
const DEFAULT_WINDOW: u64 = 64;

/// Extra time a publisher gets past the drain deadline before it is aborted.
const STUCK_GRACE: Duration = Duration::from_secs(1);

/// The drain ends early after this long without a single delivery.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

pub async fn run(args: FanoutArgs, mode: Mode) -> Result<Report> {
    let rate = args.rate.unwrap_or(match mode {
        Mode::Fanout => 0.0,
        Mode::Latency => LATENCY_DEFAULT_RATE,
    });
    let window = args
        .window
        .unwrap_or(if rate > 0.0 { 0 } else { DEFAULT_WINDOW });
    validate(&args, rate)?;
    let t = &args.target;
    let endpoint = Endpoint::resolve(
        t.target,
        t.url.as_deref(),
        &t.host,
        t.port,
        t.source_addrs,
        args.subscribers + args.publishers,
    )?;
    let layout = Layout {
        topics: args.topics,
        subscribers: args.subscribers,
        per_subscriber: args.topics_per_subscriber,
        publishers: args.publishers,
    };
    let topics = TopicSet::new(args.topics);
    let progress = Progress::new(args.output.quiet);
    let board = Board::new(&layout);
    let empty = (0..layout.topics)
        .filter(|&t| board.subscriber_count(t) == 0)
        .count();
    if empty > 0 {
        progress.note(&format!(
            "{empty} of {} topics have no subscriber; their messages go nowhere",
            layout.topics
        ));
    }

    let connected = tokio::time::timeout(
        args.setup_timeout,
        connect(
            &endpoint,
            &layout,
            &topics,
            args.connect_concurrency,
            &progress,
        ),
    )
    .await
    .with_context(|| format!("set-up took longer than {:?}", args.setup_timeout))??;
    let (subscribers, publishers) = connected;

    let start = Instant::now();
    let start_ns = clock::now_ns();
    let shared = Arc::new(Shared {
        board,
        layout,
        topics,
        latency: LatencySink::new(),
        warm_from_ns: start_ns + args.warmup.as_nanos() as u64,
    });
    let stop = CancellationToken::new();
    let mut sub_tasks = JoinSet::new();
    for (i, conn) in subscribers.into_iter().enumerate() {
        sub_tasks.spawn(subscriber::run(i, conn, shared.clone(), stop.clone()));
    }
    let deadline = start + args.duration;
    // The window bounds what one subscriber connection can have in flight, over all its topics:
    // that is what must fit in the server's per-connection queue.
    let topic_window = if window == 0 {
        0
    } else {
        (window / args.topics_per_subscriber as u64).max(1)
    };
    let pace = Pace {
        rate: rate / args.publishers as f64,
        window: topic_window,
        max_unacked: args.max_unacked,
        batch: args.batch.max(1),
        payload: args.payload,
    };
    let mut pub_tasks = JoinSet::new();
    for (p, conn) in publishers.into_iter().enumerate() {
        pub_tasks.spawn(publisher::run(
            p,
            conn,
            shared.clone(),
            pace,
            start,
            deadline,
            args.drain,
        ));
    }

    // Publishing: watch until the deadline, then snapshot what happened inside it.
    let mut last = (start, 0u64, 0u64);
    while Instant::now() < deadline {
        sleep(PROGRESS_EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
        last = show(&progress, "publishing", &shared, last);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent_in_window = shared.board.total_sent();
    let delivered_in_window = shared.board.total_delivered();

    // Drain: publishers confirm what they sent, subscribers catch up, all within `--drain`.
    let drain_deadline = Instant::now() + args.drain;
    let mut ends: Vec<PublisherEnd> = Vec::new();
    let mut stuck = 0;
    loop {
        match tokio::time::timeout_at(drain_deadline + STUCK_GRACE, pub_tasks.join_next()).await {
            Ok(Some(end)) => ends.push(end.context("publisher task failed")?),
            Ok(None) => break,
            Err(_) => {
                // A publisher blocked in a write the server never drains: stop it.
                stuck = pub_tasks.len();
                pub_tasks.abort_all();
                break;
            }
        }
    }
    // Stops early once nothing has arrived for `DRAIN_IDLE`: what is missing by then (dropped
    // by policy, or lost) is not coming.
    let mut moved = (Instant::now(), shared.board.total_delivered());
    while !shared.board.caught_up() && Instant::now() < drain_deadline {
        sleep(Duration::from_millis(10)).await;
        let delivered = shared.board.total_delivered();
        if delivered != moved.1 {
            moved = (Instant::now(), delivered);
        } else if moved.0.elapsed() >= DRAIN_IDLE {
            break;
        }
        if last.0.elapsed() >= PROGRESS_EVERY {
            last = show(&progress, "draining", &shared, last);
        }
    }
    let drained = shared.board.caught_up();
    stop.cancel();
    let mut subs: Vec<SubscriberEnd> = Vec::new();
    while let Some(end) = sub_tasks.join_next().await {
        subs.push(end.context("subscriber task failed")?);
    }
    progress.finish();

    let mut report = Report::new(format!(
        "{} → {} {}",
        match mode {
            Mode::Fanout => "fanout",
            Mode::Latency => "latency",
        },
        endpoint.kind,
        endpoint.describe()
    ));
    let summary = Summary::of(&shared, &ends, &subs, args.server_policy);
    report.set(
        "scenario",
        if mode == Mode::Fanout {
            "fanout"
        } else {
            "latency"
        },
    );
    report.set("target", endpoint.kind.to_string());
    report.set("subscribers", args.subscribers);
    report.set("topics", args.topics);
    report.set("topics_per_subscriber", args.topics_per_subscriber);
    report.set("publishers", args.publishers);
    report.set("payload_bytes", args.payload);
    report.set("duration_s", report::round1(elapsed));
    report.set("rate", rate);
    report.set("window", window);
    report.row(
        "topology",
        format!(
            "{} subscribers × {} topic(s) each over {} topics, {} publisher(s), {} B payload",
            args.subscribers,
            args.topics_per_subscriber,
            args.topics,
            args.publishers,
            args.payload
        ),
    );
    report.row(
        "offered rate",
        if rate > 0.0 {
            format!("{} msg/s", report::int(rate as u64))
        } else {
            format!(
                "max (flow-control window {window} msgs per subscriber connection, {topic_window} per topic)"
            )
        },
    );
    let published_per_sec = sent_in_window as f64 / elapsed;
    let deliveries_per_sec = delivered_in_window as f64 / elapsed;
    report.set("published", summary.published);
    report.set("published_per_sec", report::round1(published_per_sec));
    report.set("deliveries", summary.tally.received);
    report.set("deliveries_per_sec", report::round1(deliveries_per_sec));
    report.set("expected_deliveries", summary.expected);
    report.row(
        "published",
        format!(
            "{} in {elapsed:.1} s = {}",
            report::int(sent_in_window),
            report::rate(published_per_sec)
        ),
    );
    report.row(
        "deliveries",
        format!(
            "{} in {elapsed:.1} s = {}",
            report::int(delivered_in_window),
            report::rate(deliveries_per_sec)
        ),
    );
    summary.delivered_row(&mut report, drained);
    let latency = shared.latency.percentiles();
    report.set("latency_us", latency.json());
    report.row("latency (publish→delivery)", latency.line());
    summary.fill(&mut report, args.server_policy, args.strict);
    report.set("stuck_publishers", stuck);
    report.check(
        stuck > 0,
        format!("{stuck} publishers did not finish (their counts are missing)"),
    );
    Ok(report)
}

fn validate(args: &FanoutArgs, rate: f64) -> Result<()> {
    if !args.target.target.is_pubsub() {
        bail!("the hello target serves REST only; use it with the rest scenario");
    }
    if args.subscribers == 0 || args.topics == 0 || args.publishers == 0 {
        bail!("--subscribers, --topics and --publishers must be at least 1");
    }
    if args.topics_per_subscriber == 0 || args.topics_per_subscriber > args.topics {
        bail!("--topics-per-subscriber must be between 1 and --topics");
    }
    if args.payload < STAMP_LEN {
        bail!("--payload must be at least {STAMP_LEN} bytes (publisher id, counter, send time)");
    }
    if !(rate.is_finite() && rate >= 0.0) {
        bail!("--rate must be a non-negative number");
    }
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    Ok(())
}

/// Opens every subscriber (at most `concurrency` at a time) and then the publishers.
pub(super) async fn connect(
    endpoint: &Endpoint,
    layout: &Layout,
    topics: &TopicSet,
    concurrency: usize,
    progress: &Progress,
) -> Result<(Vec<Subscriber>, Vec<Publisher>)> {
    // Spawned as slots free up, so only `concurrency` handshakes exist at once.
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut slots: Vec<Option<Subscriber>> = (0..layout.subscribers).map(|_| None).collect();
    let mut done = 0;
    loop {
        while tasks.len() < concurrency.max(1) && next < layout.subscribers {
            let i = next;
            next += 1;
            let names: Vec<String> = layout
                .subscriber_topics(i)
                .map(|t| topics.name(t))
                .collect();
            let endpoint = endpoint.clone();
            tasks.spawn(async move { (i, Subscriber::connect(&endpoint, i, &names).await) });
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
        slots[i] = Some(conn);
        done += 1;
        if done % 100 == 0 || done == layout.subscribers {
            progress.set(format!(
                "connecting subscribers {done}/{}",
                layout.subscribers
            ));
        }
    }
    let mut publishers = Vec::with_capacity(layout.publishers);
    for p in 0..layout.publishers {
        let conn = Publisher::connect(endpoint, layout.subscribers + p)
            .await
            .with_context(|| {
                format!("publisher {p} could not connect to {}", endpoint.describe())
            })?;
        publishers.push(conn);
    }
    Ok((slots.into_iter().flatten().collect(), publishers))
}

/// Updates the progress line; returns the new (time, sent, delivered) reference.
fn show(
    progress: &Progress,
    phase: &str,
    shared: &Shared,
    (at, sent0, delivered0): (Instant, u64, u64),
) -> (Instant, u64, u64) {
    let now = Instant::now();
    let sent = shared.board.total_sent();
    let delivered = shared.board.total_delivered();
    let secs = now.duration_since(at).as_secs_f64().max(1e-3);
    progress.set(format!(
        "{phase}: published {} ({}), delivered {} ({}), subscribers {}/{}",
        report::int(sent),
        report::rate((sent - sent0) as f64 / secs),
        report::int(delivered),
        report::rate((delivered - delivered0) as f64 / secs),
        shared.board.alive(),
        shared.layout.subscribers,
    ));
    (now, sent, delivered)
}
