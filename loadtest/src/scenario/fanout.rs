//! The `fanout` and `latency` scenarios: S subscriber connections over T topics, P publishers.
//! Set-up connects and subscribes everything first (bounded by `--setup-timeout`), publishers run
//! for `--duration` (or until they published `--messages`), then a bounded drain waits for the
//! last deliveries before every delivery stream is checked for lost, duplicated and reordered
//! messages. With `--server-pid` the server's RSS and peak RSS go into the report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::board::Board;
use super::engine::{self, Since, PROGRESS_EVERY};
use super::publisher::Pace;
use super::subscriber::Shared;
use super::summary::Summary;
use super::{peak_rss_kib, rss_kib};
use crate::cli::FanoutArgs;
use crate::clock;
use crate::latency::LatencySink;
use crate::payload::STAMP_LEN;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::TargetKind;
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

/// With `--messages`, how often the run looks whether everything was published: a burst can
/// take less than one progress interval, and its publishing time is measured to this step.
const BURST_TICK: Duration = Duration::from_millis(1);

pub async fn run(args: FanoutArgs, mode: Mode) -> Result<Report> {
    let rate = args.rate.unwrap_or(match mode {
        Mode::Fanout => 0.0,
        Mode::Latency => LATENCY_DEFAULT_RATE,
    });
    let window = args
        .window
        .unwrap_or(if rate > 0.0 { 0 } else { DEFAULT_WINDOW });
    validate(&args, rate)?;
    if let Some(pid) = args.server_pid {
        rss_kib(pid).context("--server-pid")?;
    }
    let endpoint = args.target.endpoint(args.subscribers + args.publishers)?;
    let layout = Layout {
        topics: args.topics,
        subscribers: args.subscribers,
        per_subscriber: args.topics_per_subscriber,
        publishers: args.publishers,
    };
    let mut topics = TopicSet::new(args.topics);
    if args.via_pattern {
        topics = topics.via_pattern();
    }
    let progress = Progress::new(args.output.quiet);
    let board = Board::new(&layout);
    engine::note_empty_topics(&board, &layout, &progress);

    let connected = tokio::time::timeout(
        args.setup_timeout,
        engine::connect(
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
    let rss_before = args.server_pid.map(rss_kib).transpose()?;

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
    let sub_tasks = engine::spawn_subscribers(subscribers, &shared, &stop);
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
        text: args.text_payload,
        messages: args.messages,
    };
    let pub_tasks =
        engine::spawn_publishers(publishers, &shared, pace, (start, deadline), args.drain);

    // Publishing: watch until the deadline (or the last of --messages), then snapshot what
    // happened inside it.
    let mut last = Since::start(start);
    let all_sent = || {
        args.messages
            .is_some_and(|n| shared.board.total_sent() >= n)
    };
    let tick = if args.messages.is_some() {
        BURST_TICK
    } else {
        PROGRESS_EVERY
    };
    while Instant::now() < deadline && !all_sent() {
        sleep(tick.min(deadline.saturating_duration_since(Instant::now()))).await;
        if last.at.elapsed() >= PROGRESS_EVERY {
            progress.set(format!("publishing: {}", last.line(&shared)));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent_in_window = shared.board.total_sent();
    let delivered_in_window = shared.board.total_delivered();

    // Drain: publishers confirm what they sent, subscribers catch up, all within `--drain`.
    let drain_deadline = Instant::now() + args.drain;
    let (ends, stuck) = engine::join_publishers(pub_tasks, drain_deadline).await?;
    let drained = engine::wait_caught_up(&shared, drain_deadline, || {
        if last.at.elapsed() >= PROGRESS_EVERY {
            progress.set(format!("draining: {}", last.line(&shared)));
        }
    })
    .await;
    let caught_up_secs = start.elapsed().as_secs_f64();
    // Read while the subscribers are still connected: what the server holds at the end of the run.
    let server_memory = match args.server_pid {
        Some(pid) => Some((rss_kib(pid)?, peak_rss_kib(pid)?)),
        None => None,
    };
    stop.cancel();
    let subs = engine::join_subscribers(sub_tasks).await?;
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
    engine::throughput_rows(&mut report, sent_in_window, delivered_in_window, elapsed);
    if let Some(n) = args.messages {
        let secs = (elapsed, drained.then_some(caught_up_secs));
        burst_rows(&mut report, (n, summary.published), secs);
    }
    summary.delivered_row(&mut report, drained);
    if let Some(offered) = endpoint.deflate {
        let wire = crate::client::deflate::WIRE_BYTES.load(std::sync::atomic::Ordering::Relaxed);
        let per = wire as f64 / summary.tally.received.max(1) as f64;
        report.set("deflate", offered);
        report.set("wire_bytes_per_delivery", report::round1(per));
        report.row(
            "wire bytes / delivery",
            format!(
                "{per:.1} B (subscriber sockets, frames and handshakes; permessage-deflate {})",
                if offered { "offered" } else { "not offered" }
            ),
        );
    }
    let latency = shared.latency.percentiles();
    report.set("latency_us", latency.json());
    report.row("latency (publish→delivery)", latency.line());
    memory_rows(&mut report, rss_before, server_memory);
    summary.fill(&mut report, args.server_policy, args.strict);
    engine::stuck_check(&mut report, stuck);
    Ok(report)
}

/// `--messages`: the size of the burst, how long publishing took, when every delivery was in
/// (`None`: the drain ended first), and a check that all of it was published in time.
fn burst_rows(
    report: &mut Report,
    (messages, published): (u64, u64),
    (publish_secs, caught_up_secs): (f64, Option<f64>),
) {
    let ms = |secs: f64| (secs * 1000.0).round() / 1000.0;
    report.set("messages", messages);
    report.set("publish_secs", ms(publish_secs));
    if let Some(secs) = caught_up_secs {
        report.set("caught_up_secs", ms(secs));
    }
    report.row(
        "burst",
        format!(
            "{} of {} messages published in {publish_secs:.3} s; {}",
            report::int(published),
            report::int(messages),
            match caught_up_secs {
                Some(secs) => format!(
                    "every subscriber still connected caught up {secs:.3} s after the first publish"
                ),
                None => "the drain ended before every delivery was in".into(),
            }
        ),
    );
    report.check(
        published < messages,
        format!(
            "only {published} of {messages} messages published before --duration ran out \
             (or a publisher failed)"
        ),
    );
}

/// `--server-pid`: RSS once every subscriber was connected, RSS at the end (subscribers still
/// connected), and VmHWM, the peak over the server's whole life; nothing without it.
fn memory_rows(report: &mut Report, before: Option<u64>, end: Option<(u64, u64)>) {
    let (Some(before), Some((rss, peak))) = (before, end) else {
        return;
    };
    report.set("server_rss_before_kib", before);
    report.set("server_rss_kib", rss);
    report.set("server_peak_rss_kib", peak);
    report.row(
        "server RSS",
        format!(
            "{} KiB once subscribed → {} KiB at the end; peak {} KiB (VmHWM, since it started)",
            report::int(before),
            report::int(rss),
            report::int(peak)
        ),
    );
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
    if args.via_pattern {
        if args.target.target == TargetKind::Redis {
            bail!("--via-pattern: Redis patterns (PSUBSCRIBE) are not supported");
        }
        if args.topics_per_subscriber != args.topics {
            bail!("--via-pattern needs --topics-per-subscriber equal to --topics (the pattern matches every topic)");
        }
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
    if args.messages == Some(0) {
        bail!("--messages must be at least 1");
    }
    Ok(())
}
