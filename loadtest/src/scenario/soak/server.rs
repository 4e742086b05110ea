//! The server process a soak watches (`--server-pid`): its `VmRSS` and open fds sampled from
//! before the first client connects to after the last one closed, and what those samples say in
//! the report (growth after the warm-up, fds left open, the process going away).

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::time::{sleep, Instant};

use super::churn::DROP_IN_FLIGHT;
use super::measure::{downsample, Sample, Stalls, Trend};
use crate::cli::SoakArgs;
use crate::progress::Progress;
use crate::report::{self, Report};
use crate::scenario::{anon_huge_kib, fd_count, rss_kib};

/// fds the server may hold beyond churn noise without it counting as growth.
const FD_SLACK: u64 = 8;

/// Once every client closed, the server's fds must come back to within this of the count
/// before the first client connected, within [`CLOSE_SETTLE`].
const AFTER_CLOSE_SLACK: u64 = 2;
const CLOSE_SETTLE: Duration = Duration::from_secs(5);

/// Points of the RSS / fd series kept in the JSON output.
const SERIES_POINTS: usize = 60;

/// The server process being watched.
pub struct Server {
    /// Its process id.
    pub pid: u32,
    /// Read before the first client connected.
    pub baseline: Sample,
    /// Every `--sample-every` from the start of publishing.
    pub samples: Vec<Sample>,
    /// Its anonymous memory in transparent huge pages at the end of the run, in KiB.
    pub huge_kib: Option<u64>,
    /// Why it could no longer be sampled (it exited, most likely).
    pub gone: Option<String>,
}

impl Server {
    /// Starts watching `pid`: reads the baseline now.
    pub fn watch(pid: u32) -> Result<Self> {
        let baseline = read(pid).context("cannot sample the server (--server-pid)")?;
        Ok(Self {
            pid,
            baseline,
            samples: Vec::new(),
            huge_kib: None,
            gone: None,
        })
    }

    /// Records one sample, or that the process is gone.
    pub fn sample(&mut self, start: Instant) {
        if self.gone.is_some() {
            return;
        }
        match read(self.pid) {
            Ok(mut s) => {
                s.at = start.elapsed();
                self.samples.push(s);
            }
            Err(e) => self.gone = Some(format!("{e:#}")),
        }
    }

    /// Reads how much of its memory is in transparent huge pages (at the end of the run).
    pub fn read_huge_pages(&mut self) {
        self.huge_kib = anon_huge_kib(self.pid).ok();
    }

    /// Once every client is gone, waits (up to [`CLOSE_SETTLE`]) for the server's fds to come
    /// back to where they started; the last reading, or `None` when it could not be read.
    pub async fn settle_after_close(&mut self, progress: &Progress) -> Option<Sample> {
        if self.gone.is_some() {
            return None;
        }
        progress.set("waiting for the server to close every connection".into());
        let settle = Instant::now() + CLOSE_SETTLE;
        loop {
            match read(self.pid) {
                Ok(sample) if sample.fds <= self.baseline.fds + AFTER_CLOSE_SLACK => {
                    break Some(sample)
                }
                Ok(sample) if Instant::now() >= settle => break Some(sample),
                Ok(_) => sleep(Duration::from_millis(100)).await,
                Err(e) => {
                    self.gone.get_or_insert(format!("{e:#}"));
                    break None;
                }
            }
        }
    }

    /// The server's rows and checks: RSS and fd trends, fds after close, the series, and
    /// whether the process went away.
    pub fn rows(
        &self,
        report: &mut Report,
        after: Option<Sample>,
        warmup: Duration,
        args: &SoakArgs,
        stalls: &Stalls,
    ) {
        let (s, base) = (self, self.baseline);
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
                        "{} KiB of its heap is in transparent huge pages: RSS moves in 2 MiB \
                         steps ({:.1} % of the end RSS each); MIMALLOC_ALLOW_THP=0 on the \
                         server makes it move by 4 KiB pages",
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
                            " with {} load-generator stalls after the warm-up (longest {} ms): \
                             a backlog leaves its high-water mark in the server's RSS",
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
                    "{} before connecting → {} at warm-up end → {} at the end (growth {}, \
                     churn noise allows {}); max {}{}",
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
}

/// Reads RSS and fds of `pid` now (`at` left zero).
fn read(pid: u32) -> Result<Sample> {
    Ok(Sample {
        at: Duration::ZERO,
        rss_kib: rss_kib(pid)?,
        fds: fd_count(pid)?,
    })
}
