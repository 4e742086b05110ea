//! Every setting of PROTOCOL.md §6, as one `Config` built from flags and environment variables.
//! `values` turns each setting's text into a value, or into the one line a bad value gets;
//! `auth` says how clients authenticate, for the start-up line.

mod auth;
mod presence;
mod resolve;
mod validate;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

pub use auth::{
    AuthArgs, AuthSummary, Secret, TokenSettings, MAX_JWT_LEEWAY_SECS, MIN_JWT_SECRET_BYTES,
};
pub use presence::{PresenceArgs, PresenceSettings};
pub use values::{clap_error_line, ConfigError};
use values::{whole, UNBOUNDED};

/// Largest `SUBSCRIBER_QUEUE_SIZE` and `RING_BUFFER_SIZE`: a topic's ring is allocated up front,
/// and the outbox's packed counter holds 24 bits of frames.
const MAX_QUEUE: u64 = 1 << 20;
/// Largest `MAX_MESSAGE_BYTES`: one message is held whole in memory by every ring it enters.
const MAX_MESSAGE: u64 = 64 << 20;
/// Largest `SUBSCRIBER_QUEUE_BYTES` (16 GiB): far above any sane queue, and within the outbox's
/// packed byte counter.
const MAX_QUEUE_BYTES: u64 = 16 << 30;
/// Largest value of a `*_SECS` setting (a year): deadlines are `now + setting`, and far larger
/// values would overflow that sum.
const MAX_SECS: u64 = 365 * 24 * 60 * 60;
/// Most replicas JetStream allows a stream.
const MAX_REPLICAS: u64 = 5;

/// What the broker does when a connection's outbound queue is full (PROTOCOL.md §1, Backpressure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Send `SLOW_CONSUMER` and close the connection with 1008 (the default).
    Disconnect,
    /// Drop the oldest queued frame, count it, keep the connection.
    DropOldest,
}

/// `COMPRESSION`: whether permessage-deflate (RFC 7692) is offered back to clients that ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Compression {
    /// Accept a client's permessage-deflate offer (the default).
    On,
    /// Decline every offer: all frames go out plain.
    Off,
}

/// The PEM files of native TLS (`TLS_CERT`, `TLS_KEY`): both or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf certificate.
    pub key: PathBuf,
}

/// The broker's validated configuration. `Config::default()` is PROTOCOL.md's defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (HOST/PORT, or ADDR).
    pub addr: SocketAddr,
    /// Shared secret that enables auth when set.
    pub api_key: Option<String>,
    /// Outbound queue per connection, in frames.
    pub subscriber_queue_size: usize,
    /// Outbound queue per connection, in bytes of queued frames: whichever of this and
    /// `subscriber_queue_size` is reached first applies the slow-consumer policy.
    pub subscriber_queue_bytes: u64,
    /// What happens when that queue is full.
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Replay ring per topic, in messages.
    pub ring_buffer_size: usize,
    /// Whether subscribe/publish create a missing topic.
    pub auto_create_topics: bool,
    /// Upper bound on the number of topics.
    pub max_topics: usize,
    /// Largest message payload accepted, in bytes of serialized JSON.
    pub max_message_bytes: usize,
    /// Publishes per second per topic; 0 turns the limit off.
    pub max_publish_rate: u32,
    /// Upper bound on the topics one connection may subscribe to.
    pub max_subscriptions_per_connection: usize,
    /// Upper bound on pattern subscriptions on this server, all connections together.
    pub max_pattern_subscriptions: usize,
    /// Cluster mode: publishes one connection may have waiting for their PubAck (its reader
    /// waits past that); replies still go out in the order the publishes arrived.
    pub max_inflight_publishes: usize,
    /// Upper bound on open WebSocket connections; upgrades beyond it get 503.
    pub max_connections: usize,
    /// Ping/Pong/Close frames a connection may send per second before it is closed (1008).
    pub max_control_frames_per_sec: u32,
    /// Browser origins allowed to open WebSockets; empty allows every origin.
    pub allowed_origins: Vec<String>,
    /// Interval between heartbeat info frames and WebSocket pings.
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is closed.
    pub idle_timeout: Duration,
    /// How long shutdown waits for queued frames to drain.
    pub shutdown_timeout: Duration,
    /// Deadline for a client to send a complete HTTP request head (slowloris guard).
    pub header_read_timeout: Duration,
    /// WebSocket read buffer, bytes.
    pub ws_read_buffer_size: usize,
    /// WebSocket write buffer, bytes.
    pub ws_write_buffer_size: usize,
    /// Whether permessage-deflate is negotiated with clients that offer it.
    pub compression: Compression,
    /// Event frames shorter than this go out uncompressed even on a compressing connection.
    pub compress_min_bytes: usize,
    /// Serve HTTPS and `wss://` with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// NATS server(s) of the cluster backplane (comma-separated URLs); unset runs a single node.
    pub nats_url: Option<String>,
    /// This node's name in cluster reports; unique per process.
    pub node_id: String,
    /// Replicas of herald's JetStream stream and registry bucket (1 on a single NATS server; 3 or
    /// 5 on a NATS cluster, so losing a server loses nothing acknowledged).
    pub nats_replicas: usize,
    /// Lame-duck drain on SIGTERM: clients are closed with 1012 in batches over this long before
    /// the normal shutdown; zero skips it.
    pub drain_duration: Duration,
    /// Token auth (PROTOCOL.md §4), read by `crate::auth`.
    pub tokens: TokenSettings,
    /// A topic created by subscribe or publish is removed after this long without a subscriber
    /// or a publish; zero keeps it.
    pub topic_idle_ttl: Duration,
    /// Events older than this are not replayed or listed; zero keeps the whole ring.
    pub history_ttl: Duration,
    /// Cluster mode: messages per topic the stream keeps for nodes catching up after a partition
    /// (at least `ring_buffer_size`).
    pub stream_max_msgs_per_topic: u64,
    /// Cluster mode: the stream drops messages older than this; zero keeps them by count only.
    pub stream_max_age: Duration,
    /// Who is on a topic, and join/leave notices (issue 21).
    pub presence: PresenceSettings,
}

/// `DRAIN_DURATION_SECS` when unset in cluster mode: long enough to spread reconnects of many
/// clients, short enough for a default 30 s termination grace period.
pub const DEFAULT_CLUSTER_DRAIN_SECS: u64 = 5;

/// A node id unique to this process: host name (when known), process id and a random suffix.
fn default_node_id() -> String {
    let host: String = std::env::var("HOSTNAME")
        .unwrap_or_else(|_| "herald".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{host}-{}-{suffix}", std::process::id())
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            api_key: None,
            subscriber_queue_size: 100,
            subscriber_queue_bytes: 1 << 20,
            slow_consumer_policy: SlowConsumerPolicy::Disconnect,
            ring_buffer_size: 100,
            auto_create_topics: true,
            max_topics: 100_000,
            max_message_bytes: 1 << 20,
            max_publish_rate: 0,
            max_subscriptions_per_connection: 1_000,
            max_pattern_subscriptions: 100_000,
            max_inflight_publishes: 256,
            max_connections: 1_000_000,
            max_control_frames_per_sec: 100,
            allowed_origins: Vec::new(),
            heartbeat_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            ws_read_buffer_size: 4 * 1024,
            ws_write_buffer_size: 16 * 1024,
            compression: Compression::On,
            compress_min_bytes: 256,
            tls: None,
            nats_url: None,
            node_id: default_node_id(),
            nats_replicas: 1,
            drain_duration: Duration::ZERO,
            tokens: TokenSettings::default(),
            topic_idle_ttl: Duration::from_secs(3600),
            history_ttl: Duration::ZERO,
            stream_max_msgs_per_topic: 10_000,
            stream_max_age: Duration::ZERO,
            presence: PresenceSettings::default(),
        }
    }
}

/// The command-line flags and environment variables of PROTOCOL.md §6.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Listen host.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Listen port.
    #[arg(long, env = "PORT", default_value_t = 8080, value_parser = whole::<u16, 0, 65535>)]
    pub port: u16,
    /// Listen address, `:8080` or `host:port`; overrides HOST and PORT.
    #[arg(long, env = "ADDR")]
    pub addr: Option<String>,
    /// Shared API key; enables auth when set.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Outbound queue per connection, in frames.
    #[arg(long, env = "SUBSCRIBER_QUEUE_SIZE", default_value_t = 100,
        value_parser = whole::<usize, 1, MAX_QUEUE>)]
    pub subscriber_queue_size: usize,
    /// Outbound queue per connection, in bytes of queued frames (a burst of small messages fits
    /// where a few large ones do not); costs nothing until used.
    #[arg(long, env = "SUBSCRIBER_QUEUE_BYTES", default_value_t = 1 << 20,
        value_parser = whole::<u64, 1024, MAX_QUEUE_BYTES>)]
    pub subscriber_queue_bytes: u64,
    /// Policy when a connection's outbound queue is full.
    #[arg(
        long,
        env = "SLOW_CONSUMER_POLICY",
        value_enum,
        default_value = "disconnect"
    )]
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Replay ring per topic, in messages.
    #[arg(long, env = "RING_BUFFER_SIZE", value_parser = whole::<usize, 1, MAX_QUEUE>)]
    pub ring_buffer_size: Option<usize>,
    /// Alias of RING_BUFFER_SIZE (seed b, PROTOCOL.md §6).
    #[arg(long, env = "MAX_MESSAGES_PER_TOPIC", hide = true,
        value_parser = whole::<usize, 1, MAX_QUEUE>)]
    pub max_messages_per_topic: Option<usize>,
    /// Whether subscribe and publish create missing topics.
    #[arg(long, env = "AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Maximum number of topics.
    #[arg(long, env = "MAX_TOPICS", default_value_t = 100_000,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub max_topics: usize,
    /// Largest message payload, bytes.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 1 << 20,
        value_parser = whole::<usize, 1, MAX_MESSAGE>)]
    pub max_message_bytes: usize,
    /// Publishes per second per topic, 0 = off.
    #[arg(long, env = "MAX_PUBLISH_RATE", default_value_t = 0,
        value_parser = whole::<u32, 0, { u32::MAX as u64 }>)]
    pub max_publish_rate: u32,
    /// Maximum topics one connection may subscribe to.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = 1_000,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub max_subscriptions_per_connection: usize,
    /// Maximum pattern subscriptions (`orders.*`) on this server, all connections together.
    #[arg(long, env = "MAX_PATTERN_SUBSCRIPTIONS", default_value_t = 100_000,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub max_pattern_subscriptions: usize,
    /// Cluster mode: publishes one WebSocket connection may have waiting for their PubAck.
    #[arg(long, env = "MAX_INFLIGHT_PUBLISHES", default_value_t = 256,
        value_parser = whole::<usize, 1, 65_536>)]
    pub max_inflight_publishes: usize,
    /// Maximum open WebSocket connections; upgrades beyond it are refused with 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1_000_000,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub max_connections: usize,
    /// Control frames (ping/pong/close) a client may send per second before it is closed.
    #[arg(long, env = "MAX_CONTROL_FRAMES_PER_SEC", default_value_t = 100,
        value_parser = whole::<u32, 1, { u32::MAX as u64 }>)]
    pub max_control_frames_per_sec: u32,
    /// Comma-separated browser origins (e.g. `https://app.example.com`) allowed to open
    /// WebSockets; unset allows all. Requests without an Origin header (non-browsers) pass.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "HEARTBEAT_INTERVAL_SECS", default_value_t = 20,
        value_parser = whole::<u64, 1, MAX_SECS>)]
    pub heartbeat_interval_secs: u64,
    /// Seconds of silence before a connection is closed; more than the heartbeat interval.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60,
        value_parser = whole::<u64, 1, MAX_SECS>)]
    pub idle_timeout_secs: u64,
    /// Seconds allowed for draining on shutdown.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10,
        value_parser = whole::<u64, 0, MAX_SECS>)]
    pub shutdown_timeout_secs: u64,
    /// Seconds a client has to send a complete HTTP request head.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
        value_parser = whole::<u64, 1, MAX_SECS>)]
    pub header_read_timeout_secs: u64,
    /// WebSocket read buffer, bytes.
    #[arg(long, env = "WS_READ_BUFFER_SIZE", default_value_t = 4 * 1024,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub ws_read_buffer_size: usize,
    /// WebSocket write buffer, bytes.
    #[arg(long, env = "WS_WRITE_BUFFER_SIZE", default_value_t = 16 * 1024,
        value_parser = whole::<usize, 0, UNBOUNDED>)]
    pub ws_write_buffer_size: usize,
    /// permessage-deflate for clients that offer it: `on` or `off`.
    #[arg(long, env = "COMPRESSION", value_enum, default_value = "on")]
    pub compression: Compression,
    /// Event frames of fewer bytes go out uncompressed (deflate costs more than it saves).
    #[arg(long, env = "COMPRESS_MIN_BYTES", default_value_t = 256,
        value_parser = whole::<usize, 0, MAX_MESSAGE>)]
    pub compress_min_bytes: usize,
    /// PEM certificate chain: serve HTTPS and wss:// on the same port (needs --tls-key).
    #[arg(long, env = "TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate (needs --tls-cert).
    #[arg(long, env = "TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// NATS URL(s), comma-separated, e.g. `nats://127.0.0.1:4222`: enables cluster mode.
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// This node's id in cluster reports (default: host name, pid and a random suffix).
    #[arg(long, env = "NODE_ID")]
    pub node_id: Option<String>,
    /// Replicas of herald's JetStream stream and topic bucket: 1, or 3 (5) on a NATS cluster.
    #[arg(long, env = "NATS_REPLICAS", default_value_t = 1,
        value_parser = whole::<usize, 1, MAX_REPLICAS>)]
    pub nats_replicas: usize,
    /// Seconds to spread closing clients (1012) over on SIGTERM; default 5 in cluster mode, 0 else.
    #[arg(long, env = "DRAIN_DURATION_SECS", value_parser = whole::<u64, 0, MAX_SECS>)]
    pub drain_duration_secs: Option<u64>,
    /// Seconds a topic created by subscribe or publish may go without a subscriber or a publish
    /// before it is removed; 0 = never.
    #[arg(long, env = "TOPIC_IDLE_TTL_SECS", default_value_t = 3600,
        value_parser = whole::<u64, 0, MAX_SECS>)]
    pub topic_idle_ttl_secs: u64,
    /// Seconds a message stays replayable (last_n, since_seq, history); 0 = as long as the ring
    /// holds it.
    #[arg(long, env = "HISTORY_TTL_SECS", default_value_t = 0,
        value_parser = whole::<u64, 0, MAX_SECS>)]
    pub history_ttl_secs: u64,
    /// Cluster mode: messages per topic the NATS stream keeps so a node cut off from NATS can
    /// catch up (at least RING_BUFFER_SIZE).
    #[arg(long, env = "STREAM_MAX_MSGS_PER_TOPIC", default_value_t = 10_000,
        value_parser = whole::<u64, 1, 1_000_000_000>)]
    pub stream_max_msgs_per_topic: u64,
    /// Cluster mode: seconds the NATS stream keeps a message; 0 = by count only.
    #[arg(long, env = "STREAM_MAX_AGE_SECS", default_value_t = 0,
        value_parser = whole::<u64, 0, MAX_SECS>)]
    pub stream_max_age_secs: u64,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub presence: PresenceArgs,
}

impl Config {
    /// How clients authenticate, for the start-up log line; never the secret itself.
    pub fn auth_summary(&self) -> AuthSummary {
        AuthSummary {
            api_key: self.api_key.is_some(),
            tokens: self.tokens.is_on(),
        }
    }
}

impl ServerArgs {
    /// Settings that are valid but probably not what was meant, for the start-up log; never a
    /// secret.
    pub fn warnings(&self) -> Vec<String> {
        auth::warnings(self.api_key.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn auth_is_summarized_without_the_secret() {
        let mut config = Config::default();
        assert_eq!(config.auth_summary().to_string(), "none");
        config.api_key = Some("s3cret".into());
        assert_eq!(config.auth_summary().to_string(), "api_key");
    }

    #[test]
    fn validate_names_the_setting_and_its_value() {
        let config = Config {
            subscriber_queue_size: 0,
            ..Config::default()
        };
        assert_eq!(
            config.validate().unwrap_err().to_string(),
            "invalid configuration: SUBSCRIBER_QUEUE_SIZE=0: expected a whole number from 1 to 1048576"
        );
        let config = Config {
            heartbeat_interval: Duration::ZERO,
            ..Config::default()
        };
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("HEARTBEAT_INTERVAL_SECS=0: expected a whole number from 1 to"));
    }
}
