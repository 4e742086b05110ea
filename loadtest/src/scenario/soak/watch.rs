//! The publishing window of a soak, watched: the warm-up and the measured part after it run as
//! one loop that refreshes the progress line, prints a status line every `--log-every`, samples
//! the server every `--sample-every`, and times its own wake-ups to count load-generator stalls.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::{sleep, Instant};

use super::measure::Stalls;
use super::server::Server;
use super::setup::Plan;
use super::start::Run;
use crate::cli::SoakArgs;
use crate::progress::Progress;
use crate::report;
use crate::scenario::engine::{Since, PROGRESS_EVERY};

/// What happened inside the publishing window.
pub struct Window {
    /// Its length in seconds (shorter than `--duration` when the server went away).
    pub elapsed: f64,
    /// Messages published and delivered by its end.
    pub sent: u64,
    pub delivered: u64,
    /// Late wake-ups of the watcher's own timer.
    pub stalls: Stalls,
}

/// Watches the run until its deadline (or until the server is gone).
pub async fn watch(
    run: &Run,
    mut server: Option<&mut Server>,
    plan: &Plan,
    args: &SoakArgs,
    progress: &Progress,
) -> Window {
    let (start, deadline) = (run.start, run.deadline);
    let mut next_sample = start;
    let mut next_log = start + plan.log_every;
    let mut last = Since::start(start);
    let mut stalls = Stalls::default();
    loop {
        let now = Instant::now();
        if let Some(s) = server.as_deref_mut() {
            if now >= next_sample || now >= deadline {
                s.sample(start);
                next_sample += args.sample_every;
                if s.gone.is_some() {
                    break;
                }
            }
        }
        if now >= deadline {
            if let Some(s) = server.as_deref_mut() {
                s.read_huge_pages();
            }
            break;
        }
        if now.duration_since(last.at) >= PROGRESS_EVERY {
            let line = status(run, server.as_deref(), &mut last);
            progress.set(format!("soak {}: {line}", clock_of(start, args.duration)));
            if !plan.log_every.is_zero() && now >= next_log {
                progress.note(&format!("soak {}: {line}", clock_of(start, args.duration)));
                next_log += plan.log_every;
            }
        }
        let nap = PROGRESS_EVERY.min(deadline.saturating_duration_since(Instant::now()));
        let due = Instant::now() + nap;
        sleep(nap).await;
        stalls.observe(
            start.elapsed(),
            Instant::now().saturating_duration_since(due),
            plan.warmup,
        );
    }
    Window {
        elapsed: start.elapsed().as_secs_f64(),
        sent: run.shared.board.total_sent(),
        delivered: run.shared.board.total_delivered(),
        stalls,
    }
}

/// `mm:ss/mm:ss` of the run.
fn clock_of(start: Instant, duration: Duration) -> String {
    format!("{}/{}", mmss(start.elapsed().min(duration)), mmss(duration))
}

/// `m:ss`.
pub fn mmss(d: Duration) -> String {
    format!("{}:{:02}", d.as_secs() / 60, d.as_secs() % 60)
}

/// The status text: what the engine's progress line says, plus churn and the server.
fn status(run: &Run, server: Option<&Server>, last: &mut Since) -> String {
    let mut text = format!(
        "{}, resumes {}, dropped conns {}",
        last.line(&run.shared),
        run.live.resumes.load(Relaxed),
        run.live.dropped.load(Relaxed),
    );
    if let Some(s) = server.and_then(|s| s.samples.last()) {
        text.push_str(&format!(
            ", server RSS {} KiB, {} fds",
            report::int(s.rss_kib),
            s.fds
        ));
    }
    text
}
