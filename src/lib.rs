//! herald: a lock-free WebSocket + REST publish/subscribe broker.
//!
//! A message published to a topic is serialized once into one `Bytes` buffer; that buffer is stored
//! in the topic's replay ring and pushed to the bounded outbox of every subscriber, whose writer task
//! sends it. See `ARCHITECTURE.md` for the path of one message.
//!
//! # Layout
//! - [`auth`]: per-client authorization: JWT verification, `PERMISSIONS_FILE`, compiled grants.
//! - [`config`]: every setting (flags and environment variables), validated before binding.
//! - [`error`]: the wire error codes and their HTTP status.
//! - [`histogram`]: sharded counters and histograms, written on the hot path without contention.
//! - [`broker`]: the engine, no I/O: topic registry, topics (subscriber snapshots, sequencer,
//!   replay ring), outboxes.
//! - [`protocol`]: client frames in (simd-json), server frames out; pure functions.
//! - [`node`]: the one door into the engine: every operation, whatever transport asked, local or
//!   cluster.
//! - [`server`]: the accept loop, REST routes, WebSocket sessions, graceful shutdown.
//! - [`cluster`]: the backplane: single node in memory, or a cluster over NATS JetStream.
//! - [`clock`]: the cached RFC 3339 timestamp every frame carries.
//! - [`logging`]: the broker's log output: format, levels, colour only on a terminal.
//! - [`metrics`]: the Prometheus metrics of `GET /metrics`, sharded off the fan-out path.
//! - [`tls`]: optional native TLS (rustls): HTTPS and `wss://` on the listener.
//! - [`client`]: the binary's client commands: `herald sub`, `herald pub`, `herald probe`.

pub mod auth;
pub mod broker;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod histogram;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod server;
mod sync;
pub mod tls;

pub use config::Config;
pub use server::run;
