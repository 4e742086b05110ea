//! The `connections` scenario: open N connections, each subscribed to one topic, spread over
//! several source addresses in 127.0.0.0/8 (one address has only ~28,000 ephemeral ports);
//! report the connect rate and, with `--server-pid`, the server's memory per connection; the
//! kernel's socket memory per connection beside it (machine-wide, both loopback ends).
//!
//! Once subscribed, a connection is held as a bare socket (client buffers freed), so the
//! generator itself stays small at 100,000+ connections.

use anyhow::{bail, Result};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout_at, Instant};

use super::rss_kib;
use crate::cli::ConnectionsArgs;
use crate::client::Subscriber;
use crate::http::{self, HttpConn};
use crate::kernel::KernelMemory;
use crate::latency::LatencySink;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::target::{Endpoint, TargetKind};
use crate::topic::TopicSet;

pub async fn run(args: ConnectionsArgs) -> Result<Report> {
    if args.connections == 0 || args.topics == 0 {
        bail!("--connections and --topics must be at least 1");
    }
    if !args.target.target.is_pubsub() {
        bail!("the hello target serves REST only; use it with the rest scenario");
    }
    let t = &args.target;
    let endpoint = t.endpoint(args.connections)?;
    let topics = TopicSet::new(args.topics);
    let progress = Progress::new(args.output.quiet);
    let limit = crate::target::raise_nofile_limit();
    if limit > 0 && (args.connections as u64) + 64 > limit {
        progress.note(&format!(
            "open-files limit is {limit}; {} connections need more (ulimit -n)",
            args.connections
        ));
    }
    let rss_before = args.server_pid.map(rss_kib).transpose()?;
    let kernel_before = KernelMemory::read();

    let latency = LatencySink::new();
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut held: Vec<TcpStream> = Vec::with_capacity(args.connections);
    let mut tasks = JoinSet::new();
    let mut next = 0;
    let mut failed = 0u64;
    let mut first_error = None;
    let mut last_connect = start;
    let mut timed_out = false;
    loop {
        while tasks.len() < args.concurrency.max(1) && next < args.connections {
            let i = next;
            next += 1;
            let endpoint = endpoint.clone();
            let topic = vec![topics.name(i % topics.len())];
            let mut recorder = latency.recorder();
            tasks.spawn(async move {
                let began = Instant::now();
                let conn = Subscriber::connect(&endpoint, i, &topic).await;
                recorder.record(began.elapsed().as_nanos() as u64);
                conn.map(Subscriber::into_stream)
            });
        }
        match timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(Ok(Ok(stream)))) => {
                held.push(stream);
                last_connect = Instant::now();
            }
            Ok(Some(Ok(Err(e)))) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Ok(Some(Err(e))) => {
                failed += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Ok(None) => break,
            Err(_) => {
                timed_out = true;
                tasks.abort_all();
                break;
            }
        }
        if held.len() % 1000 == 0 {
            let secs = start.elapsed().as_secs_f64().max(1e-3);
            progress.set(format!(
                "connected {}/{} ({}), failed {failed}",
                report::int(held.len() as u64),
                report::int(args.connections as u64),
                report::rate(held.len() as f64 / secs)
            ));
        }
    }
    let connected = held.len() as u64;
    let connect_secs = last_connect.duration_since(start).as_secs_f64().max(1e-3);
    progress.set(format!(
        "{connected} connected; settling for {:.1} s",
        args.settle.as_secs_f64()
    ));
    sleep(args.settle).await;
    let rss_after = args.server_pid.map(rss_kib).transpose()?;
    let kernel_after = KernelMemory::read();
    let server_view = if endpoint.kind == TargetKind::Herald {
        health(&endpoint).await.ok()
    } else {
        None
    };
    progress.set(format!("holding {connected} connections"));
    sleep(args.hold).await;
    drop(held);
    progress.finish();

    let mut report = Report::new(format!(
        "connections → {} {}",
        endpoint.kind,
        endpoint.describe()
    ));
    report.set("scenario", "connections");
    report.set("target", endpoint.kind.to_string());
    report.set("connections", connected);
    report.set("requested", args.connections);
    report.set("failed", failed);
    report.set("source_addrs", endpoint.sources);
    let rate = connected as f64 / connect_secs;
    report.set("connects_per_sec", report::round1(rate));
    report.row(
        "connected",
        format!(
            "{} of {} over {} source address(es){}",
            report::int(connected),
            report::int(args.connections as u64),
            endpoint.sources,
            if timed_out { ", deadline reached" } else { "" }
        ),
    );
    report.row(
        "connect + subscribe rate",
        format!("{} in {connect_secs:.2} s", report::rate(rate)),
    );
    let p = latency.percentiles();
    report.set("connect_latency_us", p.json());
    report.row("connect + subscribe latency", p.line());
    report.set("settle_secs", args.settle.as_secs_f64());
    report.row(
        "settle",
        format!(
            "{:.1} s after the last connect, then memory was read",
            args.settle.as_secs_f64()
        ),
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let per_conn = (after.saturating_sub(before) as f64) / connected.max(1) as f64;
        report.set("server_rss_before_kib", before);
        report.set("server_rss_after_kib", after);
        report.set(
            "server_kib_per_connection",
            report::round1(per_conn * 10.0) / 10.0,
        );
        report.row(
            "server RSS",
            format!(
                "{} KiB → {} KiB = {per_conn:.2} KiB per connection",
                report::int(before),
                report::int(after)
            ),
        );
    } else {
        report.row("server RSS", "not measured (pass --server-pid)");
    }
    if let (Some(before), Some(after)) = (&kernel_before, &kernel_after) {
        kernel_rows(&mut report, before, after, connected);
    }
    if let Some((conns, subs)) = server_view {
        report.set("server_reported_connections", conns);
        report.row(
            "server reports",
            format!("{conns} connections, {subs} subscriptions (GET /health)"),
        );
    }
    if let Some(e) = &first_error {
        report.row("first failure", e.clone());
    }
    report.check(failed > 0, format!("{failed} connections failed"));
    report.check(
        connected < args.connections as u64,
        format!(
            "only {connected} of {} connected before the deadline",
            args.connections
        ),
    );
    Ok(report)
}

/// The kernel's socket memory per connection: slab objects and TCP buffers, both loopback ends.
fn kernel_rows(report: &mut Report, before: &KernelMemory, after: &KernelMemory, conns: u64) {
    let per_conn = |b: u64, a: u64| (a.saturating_sub(b) as f64) / 1024.0 / conns.max(1) as f64;
    let buffers = per_conn(before.tcp_buffers, after.tcp_buffers);
    report.set(
        "kernel_tcp_buffer_kib_per_connection",
        report::round1(buffers * 10.0) / 10.0,
    );
    if after.slab.is_empty() {
        report.row(
            "kernel (both ends)",
            format!("TCP buffers {buffers:.2} KiB per connection; slabs not readable (not root)"),
        );
        return;
    }
    let slab = per_conn(before.slab_total(), after.slab_total());
    report.set(
        "kernel_slab_kib_per_connection",
        report::round1(slab * 10.0) / 10.0,
    );
    let caches: Vec<String> = after
        .slab
        .iter()
        .map(|(name, &bytes)| {
            let b = before.slab.get(name).copied().unwrap_or(0);
            format!("{name} {:.2}", per_conn(b, bytes))
        })
        .collect();
    report.row(
        "kernel (both ends)",
        format!(
            "{slab:.2} KiB of socket slabs ({}) + {buffers:.2} KiB of TCP buffers per connection",
            caches.join(", ")
        ),
    );
}

/// herald's own count of connections and subscriptions (`GET /health`).
async fn health(endpoint: &Endpoint) -> Result<(u64, u64)> {
    let stream = TcpStream::connect(endpoint.addr).await?;
    let mut conn = HttpConn::new(stream);
    let request = http::request("GET", &endpoint.addr.to_string(), "/health", None);
    let response = conn.send(&request).await?;
    let body: serde_json::Value = serde_json::from_slice(&response.body)?;
    let field = |k: &str| body.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok((field("connections"), field("subscribers")))
}
