//! The scenarios. `fanout` and `latency` share one engine (`engine.rs`: the phases of a checked
//! fan-out run, over the `board`, `subscriber` and `publisher` tasks, judged by `summary`);
//! `soak` runs that engine for a long time with churn, REST publishes and server sampling added;
//! `connections` and `rest` stand alone. This file also reads a server's memory and fds.

mod board;
pub mod connections;
mod engine;
pub mod fanout;
mod publisher;
pub mod rest;
pub mod soak;
mod subscriber;
mod summary;

use anyhow::{Context, Result};

/// The resident set size of process `pid` in KiB (`VmRSS` in `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmRSS:")
}

/// The peak resident set size of process `pid` over its lifetime, in KiB (`VmHWM` in
/// `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM:")
}

/// A `Name:   123 kB` field of `/proc/PID/status`.
fn status_kib(pid: u32, name: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_kib_field(&status, name).with_context(|| format!("no {name} line in {path}"))
}

/// Open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/fd");
    let entries = std::fs::read_dir(&path).with_context(|| format!("cannot read {path}"))?;
    Ok(entries.count() as u64)
}

/// Anonymous memory of process `pid` held in transparent huge pages, in KiB (`AnonHugePages` in
/// `/proc/PID/smaps_rollup`); such memory is resident in 2 MiB steps.
pub fn anon_huge_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_kib_field(&text, "AnonHugePages:").with_context(|| format!("no AnonHugePages in {path}"))
}

/// The value of a `Name:   123 kB` line.
fn parse_kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() {
        let status = "Name:\therald\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_kib_field(status, "VmRSS:"), Some(12345));
        assert_eq!(parse_kib_field("Name: x\n", "VmRSS:"), None);
        let me = std::process::id();
        // Current first: the peak read after it is at least that.
        let rss = rss_kib(me).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_kib(me).unwrap() >= rss);
        assert!(peak_rss_kib(u32::MAX).is_err());
        assert!(fd_count(std::process::id()).unwrap() >= 3);
        assert!(fd_count(u32::MAX).is_err());
        let rollup = "Rss:      18432 kB\nAnonymous:  14336 kB\nAnonHugePages:  14336 kB\n";
        assert_eq!(parse_kib_field(rollup, "AnonHugePages:"), Some(14336));
        assert_eq!(parse_kib_field(rollup, "Shared_Hugetlb:"), None);
        assert!(anon_huge_kib(std::process::id()).is_ok());
    }
}
