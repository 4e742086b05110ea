//! The `rest` scenario: herald `POST /publish` over N keep-alive HTTP/1.1 connections, one
//! request in flight on each, as fast as responses come back or at a fixed total rate. The same
//! requests go to the bare hyper hello server (`--target hello`) for the peer figure.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::cli::RestArgs;
use crate::client::ClientError;
use crate::clock;
use crate::http::{self, HttpConn};
use crate::latency::{LatencyRecorder, LatencySink};
use crate::payload::{Stamp, STAMP_LEN};
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::{Endpoint, TargetKind};
use crate::topic::TopicSet;

/// Longest wait for one response; the connection is replaced after it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// What one connection did.
#[derive(Default)]
struct ConnEnd {
    ok: u64,
    /// Answers other than 200, with the first one's status and body.
    rejected: u64,
    first_rejection: Option<String>,
    /// Transport errors (each followed by a reconnect).
    errors: u64,
    first_error: Option<String>,
    reconnects: u64,
}

/// What every connection task reads.
struct Plan {
    endpoint: Endpoint,
    topics: TopicSet,
    host: String,
    payload: usize,
    /// Requests/s per connection; 0 = closed loop.
    rate: f64,
    start: Instant,
    deadline: Instant,
    /// Requests completed per connection, for the progress line.
    done: Vec<AtomicU64>,
}

pub async fn run(args: RestArgs) -> Result<Report> {
    let t = &args.target;
    if !matches!(t.target, TargetKind::Herald | TargetKind::Hello) {
        bail!(
            "the rest scenario runs against herald (POST /publish) or its bare hyper peer \
             (--target hello, see `herald-load hello-server`); use fanout or latency for others"
        );
    }
    if args.connections == 0 || args.topics == 0 {
        bail!("--connections and --topics must be at least 1");
    }
    if args.payload < STAMP_LEN {
        bail!("--payload must be at least {STAMP_LEN} bytes");
    }
    let endpoint = t.endpoint(args.connections)?;
    let progress = Progress::new(args.output.quiet);
    let latency = LatencySink::new();
    let start = Instant::now();
    let plan = Arc::new(Plan {
        host: endpoint.addr.to_string(),
        endpoint: endpoint.clone(),
        topics: TopicSet::new(args.topics),
        payload: args.payload,
        rate: args.rate / args.connections as f64,
        start,
        deadline: start + args.duration,
        done: (0..args.connections).map(|_| AtomicU64::new(0)).collect(),
    });
    let mut tasks = JoinSet::new();
    for c in 0..args.connections {
        tasks.spawn(connection(c, plan.clone(), latency.recorder()));
    }
    let mut last = (start, 0u64);
    while Instant::now() < plan.deadline {
        sleep(Duration::from_millis(250)).await;
        let done: u64 = plan.done.iter().map(|d| d.load(Relaxed)).sum();
        let secs = last.0.elapsed().as_secs_f64().max(1e-3);
        progress.set(format!(
            "publishing: {} requests ({})",
            report::int(done),
            report::rate((done - last.1) as f64 / secs)
        ));
        last = (Instant::now(), done);
    }
    let mut total = ConnEnd::default();
    while let Some(end) = tasks.join_next().await {
        let end = end?;
        total.ok += end.ok;
        total.rejected += end.rejected;
        total.errors += end.errors;
        total.reconnects += end.reconnects;
        if total.first_rejection.is_none() {
            total.first_rejection = end.first_rejection;
        }
        if total.first_error.is_none() {
            total.first_error = end.first_error;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    progress.finish();

    let mut report = Report::new(format!(
        "rest → {} http://{}/publish",
        t.target, endpoint.addr
    ));
    let per_sec = total.ok as f64 / elapsed;
    report.set("scenario", "rest");
    report.set("target", t.target.to_string());
    report.set("connections", args.connections);
    report.set("payload_bytes", args.payload);
    report.set("duration_s", report::round1(elapsed));
    report.set("rate", args.rate);
    report.set("requests", total.ok);
    report.set("requests_per_sec", report::round1(per_sec));
    report.set("rejected", total.rejected);
    report.set("errors", total.errors);
    report.set("reconnects", total.reconnects);
    report.row(
        "connections",
        format!(
            "{} keep-alive, {} B payload, {}",
            args.connections,
            args.payload,
            if args.rate > 0.0 {
                format!("{} req/s offered", report::int(args.rate as u64))
            } else {
                "closed loop (max rate)".into()
            }
        ),
    );
    report.row(
        "published (200)",
        format!(
            "{} in {elapsed:.1} s = {}",
            report::int(total.ok),
            report::rate(per_sec)
        ),
    );
    let p = latency.percentiles();
    report.set("latency_us", p.json());
    report.row("request latency", p.line());
    report.row(
        "rejected / errors / reconnects",
        format!(
            "{} / {} / {}",
            total.rejected, total.errors, total.reconnects
        ),
    );
    if let Some(first) = total
        .first_rejection
        .as_ref()
        .or(total.first_error.as_ref())
    {
        report.row("first failure", first.clone());
    }
    report.check(total.ok == 0, "no request succeeded");
    report.check(
        total.rejected > 0,
        format!("{} requests rejected", total.rejected),
    );
    report.check(
        total.errors > 0,
        format!("{} transport errors", total.errors),
    );
    Ok(report)
}

async fn connection(c: usize, plan: Arc<Plan>, mut latency: LatencyRecorder) -> ConnEnd {
    let mut end = ConnEnd::default();
    let mut conn = match plan.endpoint.connect(c).await {
        Ok(stream) => HttpConn::new(stream),
        Err(e) => {
            end.errors += 1;
            end.first_error = Some(e.to_string());
            return end;
        }
    };
    let mut body = Vec::with_capacity(plan.payload + 64);
    let mut sent = 0u64;
    while Instant::now() < plan.deadline {
        if plan.rate > 0.0 {
            let at = plan.start + Duration::from_secs_f64(sent as f64 / plan.rate);
            if at >= plan.deadline {
                break;
            }
            sleep_until(at).await;
        }
        let topic = plan.topics.name((c + sent as usize) % plan.topics.len());
        let stamp = Stamp {
            publisher: c as u32,
            counter: sent,
            sent_ns: clock::now_ns(),
        };
        let request = http::publish_request(&plan.host, &topic, &stamp, plan.payload, &mut body);
        sent += 1;
        let answer = conn
            .send_timed(&request, REQUEST_TIMEOUT, &mut latency)
            .await;
        let reconnect = match answer {
            Ok(response) => {
                match response.rejection() {
                    None => end.ok += 1,
                    Some(why) => {
                        end.rejected += 1;
                        end.first_rejection.get_or_insert(why);
                    }
                }
                plan.done[c].fetch_add(1, Relaxed);
                response.close
            }
            Err(e) => {
                end.errors += 1;
                end.first_error.get_or_insert_with(|| e.to_string());
                true
            }
        };
        if reconnect {
            match plan.endpoint.connect(c).await {
                Ok(stream) => {
                    conn = HttpConn::new(stream);
                    end.reconnects += 1;
                }
                Err(e) => {
                    end.errors += 1;
                    end.first_error
                        .get_or_insert_with(|| ClientError::from(e).to_string());
                    break;
                }
            }
        }
    }
    end
}
