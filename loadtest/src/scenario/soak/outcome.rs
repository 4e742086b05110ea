//! The report of a soak: the load and what it delivered, the churn, the dropped connections,
//! the REST publisher and the watched server, each with the checks that fail the run.

use serde_json::json;

use super::churn::{ChurnStats, DropStats};
use super::drain::Ended;
use super::measure::{Sample, Stalls};
use super::rest::RestStats;
use super::server::Server;
use super::setup::Plan;
use super::start::Run;
use super::watch::{mmss, Window};
use crate::cli::{ServerPolicy, SoakArgs};
use crate::latency::LatencySink;
use crate::report::{self, Report};
use crate::scenario::engine;
use crate::scenario::summary::Summary;

/// Everything the run measured, as rows, JSON fields and checks.
pub fn report(
    args: &SoakArgs,
    plan: &Plan,
    run: &Run,
    window: &Window,
    ended: &Ended,
    (server, after_close): (Option<&Server>, Option<Sample>),
) -> Report {
    let (elapsed, stalls) = (window.elapsed, &window.stalls);
    let mut report = Report::new(format!("soak → herald {}", plan.endpoint.describe()));
    let summary = Summary::of(
        &run.shared,
        &ended.publishers,
        &ended.subscribers,
        ServerPolicy::Disconnect,
    );
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
    report.set("warmup_s", report::round1(plan.warmup.as_secs_f64()));
    report.row(
        "load",
        format!(
            "{} subscribers ({} steady, {} dropping every ~{:.0?} and resuming after up to \
             {:.0?}) over {} topics; {} WebSocket publishers at {} msg/s{}; {} B payload",
            args.subscribers,
            plan.steady,
            args.churners,
            args.churn_every,
            args.churn_offline,
            args.topics,
            args.publishers,
            report::int(args.rate as u64),
            if plan.rest_on {
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
            plan.warmup.as_secs_f64(),
            args.sample_every.as_secs_f64()
        ),
    );
    report.set("published", summary.published);
    report.set("deliveries", summary.tally.received);
    report.set("expected_deliveries", summary.expected);
    engine::throughput_rows(&mut report, window.sent, window.delivered, elapsed);
    summary.delivered_row(&mut report, ended.drained);
    let latency = run.shared.latency.percentiles();
    report.set("latency_us", latency.json());
    report.row("latency after warm-up (live, not replays)", latency.line());
    summary.fill(&mut report, ServerPolicy::Disconnect, true);
    engine::stuck_check(&mut report, ended.stuck);

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
    churn_rows(
        &mut report,
        &ended.churned,
        &run.churn.resume_latency,
        args.churners,
    );
    if let Some(d) = &ended.dropped {
        drop_rows(&mut report, d);
    }
    if let Some(r) = &ended.rest {
        rest_rows(&mut report, r, &run.rest_latency);
    }
    match server {
        Some(s) => s.rows(&mut report, after_close, plan.warmup, args, stalls),
        None => report.row("server RSS / fds", "not measured (pass --server-pid)"),
    }
    report
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
