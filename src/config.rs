//! Every setting of PROTOCOL.md §6, as one `Config` built from flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// What the broker does when a connection's outbound queue is full (PROTOCOL.md §1, Backpressure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum SlowConsumerPolicy {
    /// Send `SLOW_CONSUMER` and close the connection with 1008 (the default).
    Disconnect,
    /// Drop the oldest queued frame, count it, keep the connection.
    DropOldest,
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
    /// Serve HTTPS and `wss://` with these files instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// NATS server(s) of the cluster backplane (comma-separated URLs); unset runs a single node.
    pub nats_url: Option<String>,
    /// This node's name in cluster reports; unique per process.
    pub node_id: String,
    /// Lame-duck drain on SIGTERM: clients are closed with 1012 in batches over this long before
    /// the normal shutdown; zero skips it.
    pub drain_duration: Duration,
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
            slow_consumer_policy: SlowConsumerPolicy::Disconnect,
            ring_buffer_size: 100,
            auto_create_topics: true,
            max_topics: 100_000,
            max_message_bytes: 1 << 20,
            max_publish_rate: 0,
            max_subscriptions_per_connection: 1_000,
            max_connections: 1_000_000,
            max_control_frames_per_sec: 100,
            allowed_origins: Vec::new(),
            heartbeat_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            ws_read_buffer_size: 4 * 1024,
            ws_write_buffer_size: 16 * 1024,
            tls: None,
            nats_url: None,
            node_id: default_node_id(),
            drain_duration: Duration::ZERO,
        }
    }
}

/// A configuration value that cannot be used; the message is the one line shown at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

/// The command-line flags and environment variables of PROTOCOL.md §6.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Listen host.
    #[arg(long, env = "HOST", default_value = "0.0.0.0")]
    pub host: String,
    /// Listen port.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Listen address, `:8080` or `host:port`; overrides HOST and PORT.
    #[arg(long, env = "ADDR")]
    pub addr: Option<String>,
    /// Shared API key; enables auth when set.
    #[arg(long, env = "API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Outbound queue per connection, in frames.
    #[arg(long, env = "SUBSCRIBER_QUEUE_SIZE", default_value_t = 100)]
    pub subscriber_queue_size: usize,
    /// Policy when a connection's outbound queue is full.
    #[arg(
        long,
        env = "SLOW_CONSUMER_POLICY",
        value_enum,
        default_value = "disconnect"
    )]
    pub slow_consumer_policy: SlowConsumerPolicy,
    /// Replay ring per topic, in messages.
    #[arg(long, env = "RING_BUFFER_SIZE")]
    pub ring_buffer_size: Option<usize>,
    /// Alias of RING_BUFFER_SIZE (seed b).
    #[arg(long, env = "MAX_MESSAGES_PER_TOPIC", hide = true)]
    pub max_messages_per_topic: Option<usize>,
    /// Whether subscribe and publish create missing topics.
    #[arg(long, env = "AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,
    /// Maximum number of topics.
    #[arg(long, env = "MAX_TOPICS", default_value_t = 100_000)]
    pub max_topics: usize,
    /// Largest message payload, bytes.
    #[arg(long, env = "MAX_MESSAGE_BYTES", default_value_t = 1 << 20)]
    pub max_message_bytes: usize,
    /// Publishes per second per topic, 0 = off.
    #[arg(long, env = "MAX_PUBLISH_RATE", default_value_t = 0)]
    pub max_publish_rate: u32,
    /// Maximum topics one connection may subscribe to.
    #[arg(
        long,
        env = "MAX_SUBSCRIPTIONS_PER_CONNECTION",
        default_value_t = 1_000
    )]
    pub max_subscriptions_per_connection: usize,
    /// Maximum open WebSocket connections; upgrades beyond it are refused with 503.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1_000_000)]
    pub max_connections: usize,
    /// Control frames (ping/pong/close) a client may send per second before it is closed.
    #[arg(long, env = "MAX_CONTROL_FRAMES_PER_SEC", default_value_t = 100)]
    pub max_control_frames_per_sec: u32,
    /// Comma-separated browser origins (e.g. `https://app.example.com`) allowed to open
    /// WebSockets; unset allows all. Requests without an Origin header (non-browsers) pass.
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Seconds between heartbeats.
    #[arg(long, env = "HEARTBEAT_INTERVAL_SECS", default_value_t = 20)]
    pub heartbeat_interval_secs: u64,
    /// Seconds of silence before a connection is closed.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,
    /// Seconds allowed for draining on shutdown.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
    /// Seconds a client has to send a complete HTTP request head.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,
    /// WebSocket read buffer, bytes.
    #[arg(long, env = "WS_READ_BUFFER_SIZE", default_value_t = 4 * 1024)]
    pub ws_read_buffer_size: usize,
    /// WebSocket write buffer, bytes.
    #[arg(long, env = "WS_WRITE_BUFFER_SIZE", default_value_t = 16 * 1024)]
    pub ws_write_buffer_size: usize,
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
    /// Seconds to spread closing clients (1012) over on SIGTERM; default 5 in cluster mode, 0 else.
    #[arg(long, env = "DRAIN_DURATION_SECS")]
    pub drain_duration_secs: Option<u64>,
}

impl ServerArgs {
    /// Resolves aliases and checks every value, so a bad setting stops start-up before binding.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let addr = match &self.addr {
            Some(a) => parse_addr(a)?,
            None => parse_addr(&format!("{}:{}", self.host, self.port))?,
        };
        let ring_buffer_size = self
            .ring_buffer_size
            .or(self.max_messages_per_topic)
            .unwrap_or(100);
        let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        let tls = match (nonempty(self.tls_cert), nonempty(self.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "TLS_CERT and TLS_KEY must be given together".into(),
                ))
            }
        };
        let config = Config {
            addr,
            api_key: self.api_key.filter(|k| !k.is_empty()),
            subscriber_queue_size: self.subscriber_queue_size,
            slow_consumer_policy: self.slow_consumer_policy,
            ring_buffer_size,
            auto_create_topics: self.auto_create_topics,
            max_topics: self.max_topics,
            max_message_bytes: self.max_message_bytes,
            max_publish_rate: self.max_publish_rate,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
            max_connections: self.max_connections,
            max_control_frames_per_sec: self.max_control_frames_per_sec,
            allowed_origins: self
                .allowed_origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
                .filter(|o| !o.is_empty())
                .collect(),
            heartbeat_interval: Duration::from_secs(self.heartbeat_interval_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            ws_read_buffer_size: self.ws_read_buffer_size,
            ws_write_buffer_size: self.ws_write_buffer_size,
            tls,
            drain_duration: Duration::from_secs(self.drain_duration_secs.unwrap_or(
                if self.nats_url.is_some() {
                    DEFAULT_CLUSTER_DRAIN_SECS
                } else {
                    0
                },
            )),
            nats_url: self.nats_url.filter(|u| !u.trim().is_empty()),
            node_id: self
                .node_id
                .filter(|n| !n.is_empty())
                .unwrap_or_else(default_node_id),
        };
        config.validate()?;
        Ok(config)
    }
}

impl Config {
    /// Rejects values the broker cannot run with (zero-sized queues, zero intervals, ...).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("SUBSCRIBER_QUEUE_SIZE", self.subscriber_queue_size),
            ("RING_BUFFER_SIZE", self.ring_buffer_size),
            ("MAX_TOPICS", self.max_topics),
            ("MAX_MESSAGE_BYTES", self.max_message_bytes),
            (
                "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                self.max_subscriptions_per_connection,
            ),
            ("WS_READ_BUFFER_SIZE", self.ws_read_buffer_size),
            ("MAX_CONNECTIONS", self.max_connections),
            (
                "MAX_CONTROL_FRAMES_PER_SEC",
                self.max_control_frames_per_sec as usize,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be at least 1")));
            }
        }
        if self.ring_buffer_size > 1 << 20 {
            return Err(ConfigError(
                "RING_BUFFER_SIZE must be at most 1048576".into(),
            ));
        }
        if self.subscriber_queue_size > 1 << 20 {
            return Err(ConfigError(
                "SUBSCRIBER_QUEUE_SIZE must be at most 1048576".into(),
            ));
        }
        if self.max_message_bytes > 64 << 20 {
            return Err(ConfigError(
                "MAX_MESSAGE_BYTES must be at most 67108864".into(),
            ));
        }
        if self.heartbeat_interval.is_zero() || self.idle_timeout.is_zero() {
            return Err(ConfigError(
                "HEARTBEAT_INTERVAL_SECS and IDLE_TIMEOUT_SECS must be at least 1".into(),
            ));
        }
        if !self
            .node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            || self.node_id.is_empty()
        {
            return Err(ConfigError(
                "NODE_ID may only contain A-Z a-z 0-9 _ -".into(),
            ));
        }
        if self.header_read_timeout.is_zero() {
            return Err(ConfigError(
                "HEADER_READ_TIMEOUT_SECS must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Parses `:8080` (Go form, all interfaces), `host:port` or `[v6]:port`.
fn parse_addr(text: &str) -> Result<SocketAddr, ConfigError> {
    let full = if let Some(port) = text.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else {
        text.to_string()
    };
    if let Ok(addr) = full.parse() {
        return Ok(addr);
    }
    // Host names such as `localhost:8080` resolve once, at start-up.
    std::net::ToSocketAddrs::to_socket_addrs(&full)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| ConfigError(format!("cannot parse listen address `{text}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_addr_binds_all_interfaces() {
        assert_eq!(
            parse_addr(":9090").unwrap(),
            "0.0.0.0:9090".parse().unwrap()
        );
        assert_eq!(
            parse_addr("127.0.0.1:1").unwrap(),
            "127.0.0.1:1".parse().unwrap()
        );
        assert!(parse_addr("nonsense").is_err());
        assert!(parse_addr(":99999").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }
}
