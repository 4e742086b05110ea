//! `herald-load`: the load generator for herald and its peers (nats-server, redis-server).
//!
//! # Layout
//! - `cli.rs`: flags (clap). `target.rs`: loopback-only endpoints, source addresses.
//! - `client/`: one lean client per target behind `Subscriber` / `Publisher`.
//! - `scenario/`: `fanout` + `latency` (one engine: `engine` phases over the `board`,
//!   `subscriber` and `publisher` tasks), `connections`, `rest`, `soak` (the fan-out engine plus
//!   churn, REST and server sampling, one file per phase).
//! - `payload.rs` (publisher id, counter, send time), `topic.rs` (names and layout),
//!   `checker.rs` (lost / duplicated / reordered), `latency.rs` (HDR histogram).
//! - `report.rs` (table, JSON), `compare.rs` (`report` subcommand), `progress.rs`,
//!   `http.rs` (minimal HTTP/1.1 client, herald's `POST /publish`), `clock.rs`.
//! - `plot.rs`: `plot`, the SVG charts of `loadtest/scaling.sh` results.
//! - `hello.rs`: `hello-server`, the bare hyper peer for the `rest` scenario.

mod checker;
mod cli;
mod client;
mod clock;
mod compare;
mod hello;
mod http;
mod kernel;
mod latency;
mod payload;
mod plot;
mod progress;
mod report;
mod scenario;
mod target;
mod topic;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use scenario::fanout::Mode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    clock::init();
    target::raise_nofile_limit();
    // One worker per CPU this process may use: under `taskset -c 1` that is one.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("herald-load: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(cli));
    // Leftover tasks (aborted handshakes, closing sockets) must not delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(200));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("herald-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command; `Ok(false)` when a check failed.
async fn run(cli: Cli) -> Result<bool> {
    let (report, output) = match cli.command {
        Command::Fanout(args) => {
            let output = args.output.clone();
            (scenario::fanout::run(args, Mode::Fanout).await?, output)
        }
        Command::Latency(args) => {
            let output = args.output.clone();
            (scenario::fanout::run(args, Mode::Latency).await?, output)
        }
        Command::Connections(args) => {
            let output = args.output.clone();
            (scenario::connections::run(args).await?, output)
        }
        Command::Rest(args) => {
            let output = args.output.clone();
            (scenario::rest::run(args).await?, output)
        }
        Command::Soak(args) => {
            let output = args.output.clone();
            (scenario::soak::run(args).await?, output)
        }
        Command::Report(args) => return compare::run(&args),
        Command::Plot(args) => return plot::run(&args),
        Command::HelloServer(args) => return hello::serve(args).await.map(|()| true),
    };
    let pass = report.pass();
    report.print(&output);
    Ok(pass)
}
