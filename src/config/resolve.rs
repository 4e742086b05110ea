//! Flags and environment variables resolved into one checked [`Config`]: aliases, empty values
//! read as unset, the settings that depend on each other.

use std::path::PathBuf;
use std::time::Duration;

use super::values::{check_nats_urls, check_origin, listen_addr};
use super::{
    default_node_id, Config, ConfigError, ServerArgs, TlsFiles, DEFAULT_CLUSTER_DRAIN_SECS,
};

impl ServerArgs {
    /// Resolves aliases and checks every value, so a bad setting stops start-up before binding.
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let addr = listen_addr(self.addr.as_deref(), &self.host, self.port)?;
        let ring_buffer_size = self
            .ring_buffer_size
            .or(self.max_messages_per_topic)
            .unwrap_or(100);
        let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        let tls = match (nonempty(self.tls_cert), nonempty(self.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "TLS_CERT is set but TLS_KEY is not: TLS needs both (or neither)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "TLS_KEY is set but TLS_CERT is not: TLS needs both (or neither)".into(),
                ))
            }
        };
        let nats_url = self.nats_url.filter(|u| !u.trim().is_empty());
        if let Some(urls) = &nats_url {
            check_nats_urls(urls)?;
        }
        if self.idle_timeout_secs <= self.heartbeat_interval_secs {
            // The heartbeat's Ping is what keeps a listening client's connection alive: its Pong
            // must arrive before the idle timeout, or every quiet subscriber is closed.
            return Err(ConfigError(format!(
                "IDLE_TIMEOUT_SECS={} must be more than HEARTBEAT_INTERVAL_SECS={}: the server \
                 pings every heartbeat and closes connections silent for the idle timeout, so \
                 clients that only listen would be closed",
                self.idle_timeout_secs, self.heartbeat_interval_secs
            )));
        }
        let config = Config {
            addr,
            api_key: self.api_key.filter(|k| !k.is_empty()),
            subscriber_queue_size: self.subscriber_queue_size,
            subscriber_queue_bytes: self.subscriber_queue_bytes,
            slow_consumer_policy: self.slow_consumer_policy,
            ring_buffer_size,
            auto_create_topics: self.auto_create_topics,
            max_topics: self.max_topics,
            max_message_bytes: self.max_message_bytes,
            max_publish_rate: self.max_publish_rate,
            max_subscriptions_per_connection: self.max_subscriptions_per_connection,
            max_pattern_subscriptions: self.max_pattern_subscriptions,
            max_inflight_publishes: self.max_inflight_publishes,
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
            compression: self.compression,
            compress_min_bytes: self.compress_min_bytes,
            tls,
            drain_duration: Duration::from_secs(self.drain_duration_secs.unwrap_or(
                if nats_url.is_some() {
                    DEFAULT_CLUSTER_DRAIN_SECS
                } else {
                    0
                },
            )),
            nats_url,
            node_id: self
                .node_id
                .filter(|n| !n.is_empty())
                .unwrap_or_else(default_node_id),
            nats_replicas: self.nats_replicas,
            tokens: self.auth.into_settings(),
            topic_idle_ttl: Duration::from_secs(self.topic_idle_ttl_secs),
            history_ttl: Duration::from_secs(self.history_ttl_secs),
            stream_max_msgs_per_topic: self.stream_max_msgs_per_topic,
            stream_max_age: Duration::from_secs(self.stream_max_age_secs),
            presence: self.presence.into_settings(),
        };
        for origin in &config.allowed_origins {
            check_origin(origin)?;
        }
        config.validate()?;
        Ok(config)
    }
}
