//! Command-line flags. Every scenario is bounded in time: `--duration` (or the connect deadline)
//! plus a short drain, then it stops by itself.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::target::{Endpoint, TargetKind};

#[derive(Parser, Debug)]
#[command(
    name = "herald-load",
    version,
    about = "Load generator for herald and its peers (nats-server, redis-server); loopback only",
    after_help = "Exit status: 0 all checks passed, 1 a check failed (lost, duplicated or \
                  reordered messages, errors), 2 the run could not be done."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fan-out throughput (deliveries/s) with a full lost/duplicated/reordered check.
    Fanout(FanoutArgs),
    /// Publish-to-delivery latency at a fixed offered rate (HDR histogram).
    Latency(FanoutArgs),
    /// Open N subscribed connections; connect rate and server memory per connection.
    Connections(ConnectionsArgs),
    /// herald `POST /publish` over keep-alive HTTP/1.1 connections.
    Rest(RestArgs),
    /// herald for a long time: publish + checked fan-out + connection churn (resuming
    /// subscribers, connections dropped without a close frame) + REST publishes, while the
    /// server's RSS and open file descriptors are sampled.
    Soak(SoakArgs),
    /// Print one side-by-side table from `--json` results (JSON lines with a "label").
    Report(ReportArgs),
    /// Render the SVG charts and Markdown table of `loadtest/scaling.sh` results.
    Plot(PlotArgs),
    /// Serve a bare hyper 1 "hello" over HTTP/1.1 keep-alive: the peer for `rest --target hello`.
    HelloServer(HelloArgs),
}

/// Where to send the load.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// The server kind on the other end.
    #[arg(long, value_enum, default_value_t = TargetKind::Herald)]
    pub target: TargetKind,
    /// Full address, e.g. ws://127.0.0.1:8080/ws, nats://127.0.0.1:4222, redis://127.0.0.1:6379
    /// (overrides --host/--port).
    #[arg(long)]
    pub url: Option<String>,
    /// Server host; must resolve to 127.0.0.0/8.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port [default: 8080 herald, 4222 nats, 6379 redis].
    #[arg(long)]
    pub port: Option<u16>,
    /// Spread client sockets over this many source addresses 127.0.0.1, .2, … (0 = one per
    /// 20,000 connections).
    #[arg(long, default_value_t = 0)]
    pub source_addrs: u8,
    /// herald (or a herald-protocol peer): subscribers read frames themselves and count the
    /// bytes on the wire; `on` also offers permessage-deflate and inflates what arrives
    /// compressed. Unset: the usual tungstenite subscriber, no byte count.
    #[arg(long, value_enum)]
    pub deflate: Option<Switch>,
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

impl TargetArgs {
    /// The endpoint these flags name, with source addresses for `connections` client sockets.
    pub fn endpoint(&self, connections: usize) -> anyhow::Result<Endpoint> {
        let mut endpoint = Endpoint::resolve(
            self.target,
            self.url.as_deref(),
            &self.host,
            self.port,
            self.source_addrs,
            connections,
        )?;
        if let Some(switch) = self.deflate {
            if self.target != TargetKind::Herald {
                anyhow::bail!("--deflate needs --target herald");
            }
            endpoint.deflate = Some(switch == Switch::On);
        }
        Ok(endpoint)
    }
}

/// How results are printed.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// A name for this run, copied into the JSON (used by `report` and compare.sh).
    #[arg(long)]
    pub label: Option<String>,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// What the server does with a subscriber whose queue overflows (its `SLOW_CONSUMER_POLICY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerPolicy {
    /// Close the subscriber (herald default; NATS and Redis behave alike).
    Disconnect,
    /// Drop its oldest queued events (herald `drop_oldest`): gaps are counted as policy drops.
    DropOldest,
}

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Subscriber connections.
    #[arg(long, short, default_value_t = 100)]
    pub subscribers: usize,
    /// Topics (subjects, channels).
    #[arg(long, short, default_value_t = 1)]
    pub topics: usize,
    /// Topics each subscriber connection subscribes to (consecutive, so every topic gets
    /// subscribers × this / topics subscribers).
    #[arg(long, default_value_t = 1)]
    pub topics_per_subscriber: usize,
    /// Publisher connections (each owns topics round-robin, or shares one when there are fewer
    /// topics than publishers).
    #[arg(long, short, default_value_t = 1)]
    pub publishers: usize,
    /// Payload bytes per message (at least 40: publisher id, counter, send time).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Fill payloads with varied text (words and numbers, as JSON feeds carry) instead of one
    /// repeated byte: what compression should be measured with.
    #[arg(long)]
    pub text_payload: bool,
    /// How long publishers publish (with --messages: the longest they may take).
    #[arg(long, short, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Publish exactly this many messages over all publishers (split evenly), then stop: a
    /// burst of a known size instead of a run of --duration.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Total offered publish rate, messages/s over all publishers; 0 = as fast as the window
    /// allows [default: 0 for fanout, 1000 for latency].
    #[arg(long, short)]
    pub rate: Option<f64>,
    /// Flow control: at most this many messages in flight (published, not yet received) per
    /// subscriber connection, split evenly over its topics; keep it below the server's
    /// per-connection queue (herald's SUBSCRIBER_QUEUE_SIZE is 100); 0 = none
    /// [default: 64 at max rate, 0 at a fixed rate].
    #[arg(long, short)]
    pub window: Option<u64>,
    /// herald only: publishes in flight per publisher connection before it waits for acks (its
    /// acks share the connection's bounded outbox).
    #[arg(long, default_value_t = 64)]
    pub max_unacked: u64,
    /// Messages a publisher queues before one flush.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// After publishing stops, how long to wait for the last deliveries.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain: Duration,
    /// Latency samples from messages sent in this first part of the run are not recorded.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// Connections opened concurrently during set-up.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Longest set-up (connect and subscribe everything) before giving up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub setup_timeout: Duration,
    /// The server's process id: its RSS before publishing and at the end, and its peak RSS
    /// (VmHWM, the process's lifetime peak: start a fresh server for each run).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// The server's slow-consumer policy, to tell its documented drops from faults.
    #[arg(long, value_enum, default_value_t = ServerPolicy::Disconnect)]
    pub server_policy: ServerPolicy,
    /// Treat drops and disconnects explained by the server's policy as failures too.
    #[arg(long)]
    pub strict: bool,
    /// herald and NATS: every subscriber subscribes once to the wildcard pattern `<run>.>`,
    /// which matches every topic of the run, instead of to each topic by name (needs
    /// --topics-per-subscriber equal to --topics).
    #[arg(long)]
    pub via_pattern: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ConnectionsArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Connections to open, each subscribed to one topic.
    #[arg(long, short = 'n', default_value_t = 1000)]
    pub connections: usize,
    /// Topics the connections are spread over.
    #[arg(long, short, default_value_t = 1)]
    pub topics: usize,
    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Deadline for opening them all; the run reports what it reached by then.
    #[arg(long, short, value_parser = parse_duration, default_value = "30s")]
    pub duration: Duration,
    /// How long to wait after the last connect before reading the server's and the kernel's
    /// memory: time for the server to give back buffers its idle connections no longer need.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub settle: Duration,
    /// How long to hold them open once memory was read.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub hold: Duration,
    /// The server's process id, to read its VmRSS from /proc/PID/status before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct RestArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, short, default_value_t = 16)]
    pub connections: usize,
    /// Topics the publishes rotate over.
    #[arg(long, short, default_value_t = 1)]
    pub topics: usize,
    /// Payload bytes per message (at least 40).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    #[arg(long, short, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Total requests/s over all connections; 0 = as fast as responses come back.
    #[arg(long, short, default_value_t = 0.0)]
    pub rate: f64,
}

#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Subscriber connections, one topic each (topic = index mod --topics); the last
    /// --churners of them disconnect and resume over and over.
    #[arg(long, short, default_value_t = 200)]
    pub subscribers: usize,
    /// Of the subscribers, how many churn: drop the connection without a close frame (FIN or
    /// RST, alternating), reconnect, resume with since_seq + epoch.
    #[arg(long, default_value_t = 20)]
    pub churners: usize,
    /// Mean time a churning subscriber stays connected (each hold is uniform in 0.5–1.5×).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub churn_every: Duration,
    /// Longest time a churning subscriber stays away before it reconnects (uniform in 0 to
    /// this), so its resume has missed messages to replay; keep it well inside what the
    /// server's replay ring holds (RING_BUFFER_SIZE messages per topic).
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub churn_offline: Duration,
    /// Topics.
    #[arg(long, short, default_value_t = 10)]
    pub topics: usize,
    /// WebSocket publisher connections.
    #[arg(long, short, default_value_t = 5)]
    pub publishers: usize,
    /// Total WebSocket publish rate, messages/s over all publishers.
    #[arg(long, short, default_value_t = 300.0)]
    pub rate: f64,
    /// REST `POST /publish` rate, requests/s over one keep-alive connection that owns its own
    /// topics like one more publisher; 0 = no REST publishes.
    #[arg(long, default_value_t = 20.0)]
    pub rest_rate: f64,
    /// Connections opened and dropped without a close frame per second (cycling through: bare
    /// TCP, WebSocket upgrade, upgrade + subscribe); 0 = none.
    #[arg(long, default_value_t = 10.0)]
    pub drop_rate: f64,
    /// Payload bytes per message (at least 40).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// How long the soak publishes (e.g. 60s, 30m, 2h).
    #[arg(long, short, value_parser = parse_duration, default_value = "60s")]
    pub duration: Duration,
    /// RSS and fd growth are measured from the end of this first part of the run [default:
    /// 10 % of --duration, at least 30 s but at most half of the run].
    #[arg(long, value_parser = parse_duration)]
    pub warmup: Option<Duration>,
    /// The server's process id: its VmRSS and open fds are sampled from /proc/PID.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How often the server's RSS and fds are sampled.
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub sample_every: Duration,
    /// Fail when the server's RSS grows by more than this percentage after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    pub max_rss_growth: f64,
    /// Fail when the server's open fds grow by more than this after the warm-up [default: the
    /// connections that can be in flux at once: churners + dropped connections in flight + 8].
    #[arg(long)]
    pub max_fd_growth: Option<u64>,
    /// After publishing stops, how long to wait for the last deliveries.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub drain: Duration,
    /// Longest set-up (connect and subscribe everything) before giving up.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub setup_timeout: Duration,
    /// A plain status line on stderr this often (also when stderr is not a terminal) [default:
    /// a sixth of the run, at most 60 s]; 0 = none.
    #[arg(long, value_parser = parse_duration)]
    pub log_every: Option<Duration>,
}

#[derive(Args, Debug, Clone)]
pub struct HelloArgs {
    /// Address to listen on; must resolve to 127.0.0.0/8.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8081)]
    pub port: u16,
}

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Files of JSON lines written by `--json --label …` runs.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// JSON lines from `--json` fanout runs, each with an "axis" field ("subscribers" or
    /// "topics") naming the field that is the x value.
    #[arg(long, short)]
    pub input: PathBuf,
    /// Directory for `scaling-<axis>.svg`.
    #[arg(long, short, default_value = ".")]
    pub out_dir: PathBuf,
}

/// `10`, `10s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?} (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("bad duration {text:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }

    #[test]
    fn flags_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "herald-load",
            "fanout",
            "--target",
            "nats",
            "-s",
            "1000",
            "--json",
        ])
        .unwrap();
        match cli.command {
            Command::Fanout(a) => {
                assert_eq!(a.subscribers, 1000);
                assert_eq!(a.target.target, TargetKind::Nats);
                assert!(a.output.json);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn soak_flags_parse() {
        let cli = Cli::try_parse_from([
            "herald-load",
            "soak",
            "-d",
            "30m",
            "--server-pid",
            "42",
            "--max-rss-growth",
            "2.5",
        ])
        .unwrap();
        match cli.command {
            Command::Soak(a) => {
                assert_eq!(a.duration, Duration::from_secs(1800));
                assert_eq!(a.server_pid, Some(42));
                assert_eq!(a.max_rss_growth, 2.5);
                assert_eq!((a.subscribers, a.churners, a.publishers), (200, 20, 5));
                assert_eq!(a.warmup, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
