//! herald: a lock-free WebSocket + REST publish/subscribe broker.
//!
//! A message published to a topic is serialized once into one `Bytes` buffer; that buffer is stored
//! in the topic's replay ring and pushed to the bounded outbox of every subscriber, whose writer task
//! sends it. See `ARCHITECTURE.md` for the path of one message.
//!
//! # Layout
//! - [`config`]: every setting (flags and environment variables), validated before binding.
//! - [`error`]: the wire error codes and their HTTP status.
//! - [`broker`]: the engine, no I/O: topic registry, topics (subscriber snapshots, sequencer,
//!   replay ring), outboxes.
//! - [`protocol`]: client frames in (simd-json), server frames out; pure functions.
//! - [`server`]: the accept loop, REST routes, WebSocket sessions, graceful shutdown.
//! - [`cluster`]: the backplane: single node in memory, or a cluster over NATS JetStream.
//! - [`clock`]: the cached RFC 3339 timestamp every frame carries.
//! - [`metrics`]: the Prometheus metrics of `GET /metrics`, sharded off the fan-out path.
//! - [`tls`]: optional native TLS (rustls): HTTPS and `wss://` on the listener.
//! - [`cli`]: the binary's client commands: `herald sub`, `herald pub`, `herald probe`.

pub mod broker;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod error;
pub mod metrics;
pub mod protocol;
pub mod server;
mod sync;
pub mod tls;

pub use config::Config;
pub use server::run;
