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

//!
//! # Phases
//! [`run`] reads top to bottom as the run goes; each phase is its own file:
//! - `setup.rs`: the flags worked out into a plan, every connection opened.
//! - `start.rs`: every task spawned at once, the publishing window begins.
//! - `watch.rs`: warm-up and measured part, with server samples and load-generator stalls.
//! - `drain.rs`: teardown, every task collected.
//! - `server.rs`: the watched server process, from baseline to after the last close.
//! - `outcome.rs`: the report and its checks.
//!
//! The tasks themselves: `churn.rs` (churners and the dropper), `rest.rs` (the REST publisher),
//! and the fan-out engine's subscribers and publishers; `measure.rs` holds the pure parts.

mod churn;
mod drain;
mod measure;
mod outcome;
mod rest;
mod server;
mod setup;
mod start;
mod watch;

use anyhow::Result;

use self::server::Server;
use self::setup::Plan;
use super::board::Board;
use super::engine;
use crate::cli::SoakArgs;
use crate::progress::Progress;
use crate::report::Report;

/// Runs the soak: set-up, start, watch, drain, then the report.
pub async fn run(args: SoakArgs) -> Result<Report> {
    let plan = Plan::new(&args)?;
    let progress = Progress::new(args.output.quiet);
    let board = Board::new(&plan.layout);
    engine::note_empty_topics(&board, &plan.layout, &progress);
    // The server's baseline is read before the first client connects.
    let mut server = args.server_pid.map(Server::watch).transpose()?;
    let clients = setup::connect(&plan, &args, &progress).await?;
    let (run, tasks) = start::start(clients, &plan, board, &args);
    let window = watch::watch(&run, server.as_mut(), &plan, &args, &progress).await;
    let ended = drain::drain(&run, tasks, &args, &progress).await?;
    // Every client is gone: the server's fds must come back to where they started.
    let after_close = match server.as_mut() {
        Some(s) => s.settle_after_close(&progress).await,
        None => None,
    };
    progress.finish();
    Ok(outcome::report(
        &args,
        &plan,
        &run,
        &window,
        &ended,
        (server.as_ref(), after_close),
    ))
}
