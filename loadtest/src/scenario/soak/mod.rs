//! The `soak` scenario (herald only): the fan-out engine run for a long time at a modest fixed
//! rate, with faults a long-lived server sees, while the server process is watched.
//!
//! - **Publish + fan-out, checked.** S subscribers, one topic each, over T topics; P WebSocket
//!   publishers at `--rate`; every delivery goes through the lost / duplicated / reordered
//!   checker of its (subscriber, topic, publisher) stream. Any of them fails the run, and so does
//!   any subscriber the server closes (the soak is always strict).
//! - **Churn.** The last `--churners` subscribers drop their connection without a close frame
//!   every `--churn-every` (FIN or RST, alternating), reconnect and resume with `since_seq` +
//!   `epoch`: the ack must say `recovered: true`, and `seq` must continue without a gap or repeat
//!   ([`churn`]). A dropper opens and drops `--drop-rate` connections a second (bare TCP,
//!   upgrade, upgrade + subscribe), also without close frames.
//! - **REST.** One keep-alive connection publishes `--rest-rate` requests/s with `POST /publish`
//!   to its own topics, checked like the others ([`rest`]).
//! - **Server.** With `--server-pid`, its `VmRSS` and open fds are sampled every
//!   `--sample-every`, from before the first client connects to after the last one closed. RSS
//!   growth from the warm-up end to the end of the run over `--max-rss-growth` percent fails the
//!   run, so does fd growth beyond what the churn can hold open at once, so do fds still open
//!   once every client closed, and so does the process going away ([`measure`]).

mod churn;
mod measure;
mod rest;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use self::churn::{ChurnPlan, ChurnStats, DropStats, Live, DROP_IN_FLIGHT};
use self::measure::{default_log_every, default_warmup, downsample, Sample, Stalls, Trend};
use self::rest::{RestPlan, RestStats};
use super::board::Board;
use super::fanout;
use super::publisher::{self, Pace, PublisherEnd};
use super::subscriber::{self, Shared, SubscriberEnd};
use super::summary::Summary;
use super::{anon_huge_kib, fd_count, rss_kib};
use crate::cli::{ServerPolicy, SoakArgs};
use crate::client::herald::{Resumable, SubscribeAck};
use crate::clock;
use crate::latency::LatencySink;
use crate::payload::STAMP_LEN;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::{Endpoint, TargetKind};
use crate::topic::{Layout, TopicSet};

/// Extra time a publisher gets past the drain deadline before it is aborted.
const STUCK_GRACE: Duration = Duration::from_secs(1);

/// The drain ends early after this long without a single delivery.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Connections opened at once during set-up.
const CONNECT_CONCURRENCY: usize = 32;

/// herald publishers wait for acks beyond this many publishes in flight (below its default
/// `SUBSCRIBER_QUEUE_SIZE` of 100: acks share the connection's outbox).
const MAX_UNACKED: u64 = 64;

/// Messages a WebSocket publisher queues before one flush.
const BATCH: usize = 8;

/// fds the server may hold beyond churn noise without it counting as growth.
const FD_SLACK: u64 = 8;

/// Once every client closed, the server's fds must come back to within this of the count
/// before the first client connected, within [`CLOSE_SETTLE`].
const AFTER_CLOSE_SLACK: u64 = 2;
const CLOSE_SETTLE: Duration = Duration::from_secs(5);

/// Points of the RSS / fd series kept in the JSON output.
const SERIES_POINTS: usize = 60;

pub async fn run(args: SoakArgs) -> Result<Report> {
    validate(&args)?;
    let warmup = args.warmup.unwrap_or_else(|| default_warmup(args.duration));
    if warmup >= args.duration {
        bail!("--warmup must be shorter than --duration");
    }
    let log_every = args
        .log_every
        .unwrap_or_else(|| default_log_every(args.duration));
    let rest_on = args.rest_rate > 0.0;
    let t = &args.target;
    let endpoint = Endpoint::resolve(
        t.target,
        t.url.as_deref(),
        &t.host,
        t.port,
        t.source_addrs,
        args.subscribers + args.publishers + DROP_IN_FLIGHT + 1,
    )?;
    let layout = Layout {
        topics: args.topics,
        subscribers: args.subscribers,
        per_subscriber: 1,
        publishers: args.publishers + usize::from(rest_on),
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
    let mut server = args.server_pid.map(Server::new);
    let baseline = match server.as_mut() {
        Some(s) => Some(
            s.read()
                .context("cannot sample the server (--server-pid)")?,
        ),
        None => None,
    };

    // Set-up: steady subscribers and WebSocket publishers as in `fanout`, then the churners.
    let steady = args.subscribers - args.churners;
    let set_up = async {
        let ws_layout = Layout {
            subscribers: steady,
            publishers: args.publishers,
            ..layout
        };
        let (subs, pubs) = fanout::connect(
            &endpoint,
            &ws_layout,
            &topics,
            CONNECT_CONCURRENCY,
            &progress,
        )
        .await?;
        let churners = connect_churners(&endpoint, &layout, &topics, steady, &progress).await?;
        anyhow::Ok((subs, pubs, churners))
    };
    let (subscribers, publishers, churners) = timeout(args.setup_timeout, set_up)
        .await
        .with_context(|| format!("set-up took longer than {:?}", args.setup_timeout))??;

    let start = Instant::now();
    let start_ns = clock::now_ns();
    let deadline = start + args.duration;
    let shared = Arc::new(Shared {
        board,
        layout,
        topics: topics.clone(),
        latency: LatencySink::new(),
        warm_from_ns: start_ns + warmup.as_nanos() as u64,
    });
    let stop = CancellationToken::new();
    let live = Arc::new(Live::default());
    let mut sub_tasks = JoinSet::new();
    for (i, conn) in subscribers.into_iter().enumerate() {
        sub_tasks.spawn(subscriber::run(i, conn, shared.clone(), stop.clone()));
    }
    let plan = Arc::new(ChurnPlan {
        endpoint: endpoint.clone(),
        every: args.churn_every,
        offline: args.churn_offline,
        until: deadline,
        resume_latency: LatencySink::new(),
        live: live.clone(),
    });
    let seed = start_ns ^ u64::from(std::process::id()).rotate_left(32);
    let mut churn_tasks = JoinSet::new();
    for (k, (conn, ack)) in churners.into_iter().enumerate() {
        churn_tasks.spawn(churn::churner(
            steady + k,
            conn,
            ack,
            shared.clone(),
            plan.clone(),
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
    let rest_latency = LatencySink::new();
    let rest_task = rest_on.then(|| {
        tokio::spawn(rest::run(
            RestPlan {
                publisher: args.publishers,
                endpoint: endpoint.clone(),
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
    let drop_task = (args.drop_rate > 0.0).then(|| {
        tokio::spawn(churn::dropper(
            endpoint.clone(),
            topics.clone(),
            args.drop_rate,
            deadline,
            args.subscribers + args.publishers + 1,
            live.clone(),
        ))
    });

    // The run: progress, samples, status lines.
    let mut next_sample = start;
    let mut next_log = start + log_every;
    let mut last = (start, 0u64, 0u64);
    let mut stalls = Stalls::default();
    loop {
        let now = Instant::now();
        if let Some(s) = server.as_mut() {
            if now >= next_sample || now >= deadline {
                s.sample(start);
                next_sample += args.sample_every;
                if s.gone.is_some() {
                    break;
                }
            }
        }
        if now >= deadline {
            if let Some(s) = server.as_mut() {
                s.huge_kib = anon_huge_kib(s.pid).ok();
            }
            break;
        }
        if now.duration_since(last.0) >= PROGRESS_EVERY {
            let line = status(&shared, &live, server.as_ref(), last);
            progress.set(format!(
                "soak {}: {}",
                clock_of(start, args.duration),
                line.0
            ));
            if !log_every.is_zero() && now >= next_log {
                progress.note(&format!(
                    "soak {}: {}",
                    clock_of(start, args.duration),
                    line.0
                ));
                next_log += log_every;
            }
            last = line.1;
        }
        let nap = PROGRESS_EVERY.min(deadline.saturating_duration_since(Instant::now()));
        let due = Instant::now() + nap;
        sleep(nap).await;
        stalls.observe(
            start.elapsed(),
            Instant::now().saturating_duration_since(due),
            warmup,
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    let sent_in_window = shared.board.total_sent();
    let delivered_in_window = shared.board.total_delivered();

    // Drain: publishers confirm, the REST publisher and the dropper finish, subscribers catch up.
    progress.set("draining".into());
    let drain_deadline = Instant::now() + args.drain;
    let mut ends: Vec<PublisherEnd> = Vec::new();
    let mut stuck = 0;
    loop {
        match timeout_at(drain_deadline + STUCK_GRACE, pub_tasks.join_next()).await {
            Ok(Some(end)) => ends.push(end.context("publisher task failed")?),
            Ok(None) => break,
            Err(_) => {
                stuck = pub_tasks.len();
                pub_tasks.abort_all();
                break;
            }
        }
    }
    let rest_stats = match rest_task {
        Some(task) => {
            let (end, stats) = task.await.context("REST publisher task failed")?;
            ends.push(end);
            Some(stats)
        }
        None => None,
    };
    let drop_stats = match drop_task {
        Some(task) => Some(task.await.context("dropper task failed")?),
        None => None,
    };
    let mut moved = (Instant::now(), shared.board.total_delivered());
    while !shared.board.caught_up() && Instant::now() < drain_deadline {
        sleep(Duration::from_millis(10)).await;
        let delivered = shared.board.total_delivered();
        if delivered != moved.1 {
            moved = (Instant::now(), delivered);
        } else if moved.0.elapsed() >= DRAIN_IDLE {
            break;
        }
    }
    let drained = shared.board.caught_up();
    stop.cancel();
    let mut subs: Vec<SubscriberEnd> = Vec::new();
    while let Some(end) = sub_tasks.join_next().await {
        subs.push(end.context("subscriber task failed")?);
    }
    let mut churned = ChurnStats::default();
    while let Some(end) = churn_tasks.join_next().await {
        let (end, stats) = end.context("churner task failed")?;
        subs.push(end);
        churned.add(&stats);
    }

    // Every client is gone: the server's fds must come back to where they started.
    let after_close = match (server.as_mut(), baseline) {
        (Some(s), Some(base)) if s.gone.is_none() => {
            progress.set("waiting for the server to close every connection".into());
            let settle = Instant::now() + CLOSE_SETTLE;
            loop {
                let now = s.read();
                match now {
                    Ok(sample) if sample.fds <= base.fds + AFTER_CLOSE_SLACK => break Some(sample),
                    Ok(sample) if Instant::now() >= settle => break Some(sample),
                    Ok(_) => sleep(Duration::from_millis(100)).await,
                    Err(e) => {
                        s.gone.get_or_insert(format!("{e:#}"));
                        break None;
                    }
                }
            }
        }
        _ => None,
    };
    progress.finish();

    let mut report = Report::new(format!("soak → herald {}", endpoint.describe()));
    let summary = Summary::of(&shared, &ends, &subs, ServerPolicy::Disconnect);
    report.set("scenario", "soak");
    report.set("target", "herald");
    report.set("subscribers", args.subscribers);
    report.set("churners", args.churners);
    report.set("topics", args.topics);
    report.set("publishers", args.publishers);
    report.set("payload_bytes", args.payload);
    report.set("rate", args.rate);
    report.set("rest_rate", args.rest_rate);
    report.set("drop_rate", args.drop_rate);
    report.set("churn_every_s", args.churn_every.as_secs_f64());
    report.set("churn_offline_s", args.churn_offline.as_secs_f64());
    report.set("duration_s", report::round1(elapsed));
    report.set("warmup_s", report::round1(warmup.as_secs_f64()));
    report.row(
        "load",
        format!(
            "{} subscribers ({} steady, {} dropping every ~{:.0?} and resuming after up to \
             {:.0?}) over {} topics; {} WebSocket publishers at {} msg/s{}; {} B payload",
            args.subscribers,
            steady,
            args.churners,
            args.churn_every,
            args.churn_offline,
            args.topics,
            args.publishers,
            report::int(args.rate as u64),
            if rest_on {
                format!(" + REST at {} req/s", args.rest_rate)
            } else {
                String::new()
            },
            args.payload
        ),
    );
    report.row(
        "run",
        format!(
            "{elapsed:.1} s, warm-up {:.0} s, server sampled every {:.1} s",
            warmup.as_secs_f64(),
            args.sample_every.as_secs_f64()
        ),
    );
    report.set("published", summary.published);
    report.set("deliveries", summary.tally.received);
    report.set("expected_deliveries", summary.expected);
    report.row(
        "published",
        format!(
            "{} in {elapsed:.1} s = {}",
            report::int(sent_in_window),
            report::rate(sent_in_window as f64 / elapsed)
        ),
    );
    report.row(
        "deliveries",
        format!(
            "{} in {elapsed:.1} s = {}",
            report::int(delivered_in_window),
            report::rate(delivered_in_window as f64 / elapsed)
        ),
    );
    summary.delivered_row(&mut report, drained);
    let latency = shared.latency.percentiles();
    report.set("latency_us", latency.json());
    report.row("latency after warm-up (live, not replays)", latency.line());
    summary.fill(&mut report, ServerPolicy::Disconnect, true);
    report.set("stuck_publishers", stuck);
    report.check(
        stuck > 0,
        format!("{stuck} publishers did not finish (their counts are missing)"),
    );

    report.set(
        "generator_stalls",
        json!({
            "count": stalls.count,
            "after_warmup": stalls.after_warmup,
            "longest_ms": stalls.longest.as_millis() as u64,
            "longest_at_s": report::round1(stalls.longest_at.as_secs_f64()),
        }),
    );
    report.row(
        "load-generator stalls",
        if stalls.count == 0 {
            format!(
                "none (no timer wake-up {} ms late)",
                Stalls::THRESHOLD.as_millis()
            )
        } else {
            format!(
                "{} timer wake-ups ≥ {} ms late ({} after the warm-up); longest {} ms at {}",
                stalls.count,
                Stalls::THRESHOLD.as_millis(),
                stalls.after_warmup,
                stalls.longest.as_millis(),
                mmss(stalls.longest_at)
            )
        },
    );
    churn_rows(&mut report, &churned, &plan.resume_latency, args.churners);
    if let Some(d) = &drop_stats {
        drop_rows(&mut report, d);
    }
    if let Some(r) = &rest_stats {
        rest_rows(&mut report, r, &rest_latency);
    }
    match (&server, baseline) {
        (Some(s), Some(base)) => {
            server_rows(&mut report, s, base, after_close, warmup, &args, &stalls);
        }
        _ => report.row("server RSS / fds", "not measured (pass --server-pid)"),
    }
    Ok(report)
}

fn validate(args: &SoakArgs) -> Result<()> {
    if args.target.target != TargetKind::Herald {
        bail!("the soak scenario is herald-only (it resumes with since_seq + epoch)");
    }
    if args.subscribers == 0 || args.topics == 0 || args.publishers == 0 {
        bail!("--subscribers, --topics and --publishers must be at least 1");
    }
    if args.churners > args.subscribers {
        bail!("--churners cannot exceed --subscribers");
    }
    if args.payload < STAMP_LEN {
        bail!("--payload must be at least {STAMP_LEN} bytes (publisher id, counter, send time)");
    }
    for (name, v) in [
        ("--rate", args.rate),
        ("--rest-rate", args.rest_rate),
        ("--drop-rate", args.drop_rate),
        ("--max-rss-growth", args.max_rss_growth),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    if args.rate == 0.0 {
        bail!("--rate must be positive (the soak runs at a fixed rate)");
    }
    if args.duration.is_zero() || args.sample_every.is_zero() {
        bail!("--duration and --sample-every must be positive");
    }
    if args.churners > 0 && args.churn_every.is_zero() {
        bail!("--churn-every must be positive");
    }
    Ok(())
}

/// Connects the churners: subscribers `first..layout.subscribers`, one topic each.
async fn connect_churners(
    endpoint: &Endpoint,
    layout: &Layout,
    topics: &TopicSet,
    first: usize,
    progress: &Progress,
) -> Result<Vec<(Resumable, SubscribeAck)>> {
    let mut tasks = JoinSet::new();
    let mut next = first;
    let mut slots: Vec<Option<(Resumable, SubscribeAck)>> =
        (first..layout.subscribers).map(|_| None).collect();
    loop {
        while tasks.len() < CONNECT_CONCURRENCY && next < layout.subscribers {
            let i = next;
            next += 1;
            let topic = topics.name(layout.subscriber_topics(i).next().unwrap_or(0));
            let endpoint = endpoint.clone();
            tasks.spawn(async move {
                let conn = churn::subscribe(&endpoint, i, &topic, None, &mut |_| {}).await;
                (i, conn)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (i, conn) = joined.context("connect task failed")?;
        let conn = conn.with_context(|| {
            format!(
                "subscriber {i} could not connect to {}",
                endpoint.describe()
            )
        })?;
        slots[i - first] = Some(conn);
        progress.set(format!(
            "connecting churning subscribers {}/{}",
            slots.iter().flatten().count(),
            slots.len()
        ));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// The server process being watched.
struct Server {
    pid: u32,
    samples: Vec<Sample>,
    /// Its anonymous memory in transparent huge pages at the end of the run, in KiB.
    huge_kib: Option<u64>,
    /// Why it could no longer be sampled (it exited, most likely).
    gone: Option<String>,
}

impl Server {
    fn new(pid: u32) -> Self {
        Self {
            pid,
            samples: Vec::new(),
            huge_kib: None,
            gone: None,
        }
    }

    /// Reads RSS and fds now (`at` left zero).
    fn read(&self) -> Result<Sample> {
        Ok(Sample {
            at: Duration::ZERO,
            rss_kib: rss_kib(self.pid)?,
            fds: fd_count(self.pid)?,
        })
    }

    /// Records one sample, or that the process is gone.
    fn sample(&mut self, start: Instant) {
        if self.gone.is_some() {
            return;
        }
        match self.read() {
            Ok(mut s) => {
                s.at = start.elapsed();
                self.samples.push(s);
            }
            Err(e) => self.gone = Some(format!("{e:#}")),
        }
    }
}

/// `mm:ss/mm:ss` of the run.
fn clock_of(start: Instant, duration: Duration) -> String {
    format!("{}/{}", mmss(start.elapsed().min(duration)), mmss(duration))
}

/// `m:ss`.
fn mmss(d: Duration) -> String {
    format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60)
}

/// The status text, and the new (time, sent, delivered) reference.
fn status(
    shared: &Shared,
    live: &Live,
    server: Option<&Server>,
    (at, sent0, delivered0): (Instant, u64, u64),
) -> (String, (Instant, u64, u64)) {
    let now = Instant::now();
    let sent = shared.board.total_sent();
    let delivered = shared.board.total_delivered();
    let secs = now.duration_since(at).as_secs_f64().max(1e-3);
    let mut text = format!(
        "published {} ({}), delivered {} ({}), subscribers {}/{}, resumes {}, dropped conns {}",
        report::int(sent),
        report::rate((sent - sent0) as f64 / secs),
        report::int(delivered),
        report::rate((delivered - delivered0) as f64 / secs),
        shared.board.alive(),
        shared.layout.subscribers,
        live.resumes.load(Relaxed),
        live.dropped.load(Relaxed),
    );
    if let Some(s) = server.and_then(|s| s.samples.last()) {
        text.push_str(&format!(
            ", server RSS {} KiB, {} fds",
            report::int(s.rss_kib),
            s.fds
        ));
    }
    (text, (now, sent, delivered))
}

fn churn_rows(report: &mut Report, c: &ChurnStats, latency: &LatencySink, churners: usize) {
    report.set("resumes", c.resumes);
    report.set("resume_drops_fin", c.fin_drops);
    report.set("resume_drops_rst", c.rst_drops);
    report.set("resume_replayed", c.replayed);
    report.set("resume_failed", c.bad_resumes);
    report.set("resume_retries", c.retries);
    report.set("resume_gave_up", c.gave_up);
    report.set("seq_gaps", c.seq_gaps);
    report.set("seq_skipped", c.seq_skipped);
    report.set("seq_repeated", c.seq_repeated);
    let p = latency.percentiles();
    report.set("resume_latency_us", p.json());
    if churners == 0 {
        return;
    }
    report.row(
        "resumes (since_seq + epoch)",
        format!(
            "{} after {} drops without close ({} FIN, {} RST); {} events replayed; {} not \
             recovered, {} retries, {} gave up",
            report::int(c.resumes),
            report::int(c.fin_drops + c.rst_drops),
            report::int(c.fin_drops),
            report::int(c.rst_drops),
            report::int(c.replayed),
            c.bad_resumes,
            c.retries,
            c.gave_up
        ),
    );
    report.row("resume latency (reconnect→ack)", p.line());
    report.row(
        "seq continuity (churners)",
        format!(
            "{} gaps ({} skipped), {} repeated",
            c.seq_gaps, c.seq_skipped, c.seq_repeated
        ),
    );
    if let Some(first) = &c.first_problem {
        report.row("first churn problem", first.clone());
    }
    report.check(
        c.bad_resumes > 0,
        format!("{} resumes not recovered", c.bad_resumes),
    );
    report.check(
        c.retries > 0 || c.gave_up > 0,
        format!(
            "{} reconnect attempts failed, {} churning subscribers gave up",
            c.retries, c.gave_up
        ),
    );
    report.check(
        c.seq_gaps > 0 || c.seq_repeated > 0,
        format!(
            "seq gaps {} / repeats {} across resumes",
            c.seq_gaps, c.seq_repeated
        ),
    );
}

fn drop_rows(report: &mut Report, d: &DropStats) {
    report.set(
        "dropped_connections",
        json!({
            "tcp": d.tcp,
            "upgraded": d.upgraded,
            "subscribed": d.subscribed,
            "reset": d.reset,
            "failed": d.failed,
        }),
    );
    report.row(
        "connections dropped without close",
        format!(
            "{} (bare TCP {}, upgraded {}, upgraded + subscribed {}; {} by RST); {} failed{}",
            report::int(d.total()),
            report::int(d.tcp),
            report::int(d.upgraded),
            report::int(d.subscribed),
            report::int(d.reset),
            d.failed,
            d.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        ),
    );
    report.check(
        d.failed > 0,
        format!("{} churn connections failed", d.failed),
    );
}

fn rest_rows(report: &mut Report, r: &RestStats, latency: &LatencySink) {
    report.set("rest_requests", r.ok);
    report.set("rest_rejected", r.rejected);
    report.set("rest_errors", r.errors);
    let p = latency.percentiles();
    report.set("rest_latency_us", p.json());
    report.row(
        "REST POST /publish",
        format!(
            "{} ok, {} rejected, {} errors, {} reconnects",
            report::int(r.ok),
            r.rejected,
            r.errors,
            r.reconnects
        ),
    );
    report.row("REST latency", p.line());
    // Rejections and errors also fail the run as publish errors (summary).
}

fn server_rows(
    report: &mut Report,
    s: &Server,
    base: Sample,
    after: Option<Sample>,
    warmup: Duration,
    args: &SoakArgs,
    stalls: &Stalls,
) {
    let rss = Trend::of(&s.samples, warmup, |x| x.rss_kib);
    let fds = Trend::of(&s.samples, warmup, |x| x.fds);
    let fd_allowed = args
        .max_fd_growth
        .unwrap_or(args.churners as u64 + DROP_IN_FLIGHT as u64 + FD_SLACK);
    report.set("server_pid", s.pid);
    report.set("server_samples", s.samples.len());
    if let Some(r) = rss {
        report.set(
            "server_rss_kib",
            json!({
                "baseline": base.rss_kib,
                "warm": r.warm,
                "end": r.end,
                "max": r.max,
                "after_close": after.map(|a| a.rss_kib),
                "growth_pct": (r.growth_pct * 100.0).round() / 100.0,
            }),
        );
        report.row(
            "server RSS",
            format!(
                "{} KiB before connecting → {} KiB at warm-up end → {} KiB at the end \
                 ({:+.2} %, limit {} %); max {} KiB{}",
                report::int(base.rss_kib),
                report::int(r.warm),
                report::int(r.end),
                r.growth_pct,
                args.max_rss_growth,
                report::int(r.max),
                after
                    .map(|a| format!(", {} KiB after close", report::int(a.rss_kib)))
                    .unwrap_or_default()
            ),
        );
        if let Some(huge) = s.huge_kib.filter(|&k| k > 0) {
            report.set("server_anon_huge_pages_kib", huge);
            report.row(
                "server RSS granularity",
                format!(
                    "{} KiB of its heap is in transparent huge pages: RSS moves in 2 MiB steps \
                     ({:.1} % of the end RSS each); MIMALLOC_ALLOW_THP=0 on the server makes \
                     it move by 4 KiB pages",
                    report::int(huge),
                    2048.0 * 100.0 / r.end.max(1) as f64
                ),
            );
        }
        report.check(
            r.growth_pct > args.max_rss_growth,
            format!(
                "server RSS grew {:.2} % after the warm-up (limit {} %){}",
                r.growth_pct,
                args.max_rss_growth,
                if stalls.after_warmup > 0 {
                    format!(
                        " with {} load-generator stalls after the warm-up (longest {} ms): a \
                         backlog leaves its high-water mark in the server's RSS",
                        stalls.after_warmup,
                        stalls.longest.as_millis()
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
    if let Some(f) = fds {
        report.set(
            "server_fds",
            json!({
                "baseline": base.fds,
                "warm": f.warm,
                "end": f.end,
                "max": f.max,
                "after_close": after.map(|a| a.fds),
                "allowed_growth": fd_allowed,
            }),
        );
        report.row(
            "server fds",
            format!(
                "{} before connecting → {} at warm-up end → {} at the end (growth {}, churn \
                 noise allows {}); max {}{}",
                base.fds,
                f.warm,
                f.end,
                f.growth(),
                fd_allowed,
                f.max,
                after
                    .map(|a| format!(", {} after every client closed", a.fds))
                    .unwrap_or_default()
            ),
        );
        report.check(
            f.growth() > fd_allowed,
            format!(
                "server fds grew by {} after the warm-up (churn noise allows {fd_allowed})",
                f.growth()
            ),
        );
    }
    if rss.is_none() && s.gone.is_none() {
        report.row("server RSS / fds", "no sample after the warm-up");
    }
    if let Some(a) = after {
        report.check(
            a.fds > base.fds + AFTER_CLOSE_SLACK,
            format!(
                "server holds {} fds {} s after every client closed ({} before the run)",
                a.fds,
                CLOSE_SETTLE.as_secs(),
                base.fds
            ),
        );
    }
    let series: Vec<serde_json::Value> = downsample(&s.samples, SERIES_POINTS)
        .iter()
        .map(|x| json!([report::round1(x.at.as_secs_f64()), x.rss_kib, x.fds]))
        .collect();
    report.set(
        "server_series",
        json!({"columns": ["t_s", "rss_kib", "fds"], "rows": series}),
    );
    if let Some(why) = &s.gone {
        report.row("server process", format!("gone during the run: {why}"));
    }
    report.check(
        s.gone.is_some(),
        format!("server process {} went away during the run (crash?)", s.pid),
    );
}
