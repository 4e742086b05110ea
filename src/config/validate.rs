//! The checks every `Config` passes before the server starts, whether it came from flags and
//! variables or was built in code (tests, embedders).

use super::presence::{MAX_PRESENCE_COALESCE_MS, MAX_PRESENCE_TTL_SECS};
use super::values::{allowed, UNBOUNDED};
use super::{Config, ConfigError, MAX_MESSAGE, MAX_QUEUE, MAX_QUEUE_BYTES, MAX_REPLICAS, MAX_SECS};

impl Config {
    /// Rejects values the broker cannot run with (zero-sized queues, zero intervals, ...), named
    /// as `NAME=value: what is allowed`, the same line a bad flag or variable gets.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let u32_max = u64::from(u32::MAX);
        let counts = [
            (
                "SUBSCRIBER_QUEUE_SIZE",
                self.subscriber_queue_size as u64,
                1,
                MAX_QUEUE,
            ),
            (
                "SUBSCRIBER_QUEUE_BYTES",
                self.subscriber_queue_bytes,
                1024,
                MAX_QUEUE_BYTES,
            ),
            (
                "RING_BUFFER_SIZE",
                self.ring_buffer_size as u64,
                1,
                MAX_QUEUE,
            ),
            ("MAX_TOPICS", self.max_topics as u64, 1, UNBOUNDED),
            (
                "MAX_MESSAGE_BYTES",
                self.max_message_bytes as u64,
                1,
                MAX_MESSAGE,
            ),
            (
                "MAX_SUBSCRIPTIONS_PER_CONNECTION",
                self.max_subscriptions_per_connection as u64,
                1,
                UNBOUNDED,
            ),
            (
                "MAX_PATTERN_SUBSCRIPTIONS",
                self.max_pattern_subscriptions as u64,
                1,
                UNBOUNDED,
            ),
            (
                "MAX_INFLIGHT_PUBLISHES",
                self.max_inflight_publishes as u64,
                1,
                65_536,
            ),
            (
                "WS_READ_BUFFER_SIZE",
                self.ws_read_buffer_size as u64,
                1,
                UNBOUNDED,
            ),
            ("MAX_CONNECTIONS", self.max_connections as u64, 1, UNBOUNDED),
            ("NATS_REPLICAS", self.nats_replicas as u64, 1, MAX_REPLICAS),
            (
                "STREAM_MAX_MSGS_PER_TOPIC",
                self.stream_max_msgs_per_topic,
                1,
                1_000_000_000,
            ),
            (
                "MAX_CONTROL_FRAMES_PER_SEC",
                self.max_control_frames_per_sec.into(),
                1,
                u32_max,
            ),
            (
                "PRESENCE_COALESCE_MS",
                u64::try_from(self.presence.coalesce.as_millis()).unwrap_or(u64::MAX),
                1,
                MAX_PRESENCE_COALESCE_MS,
            ),
            (
                "PRESENCE_TTL_SECS",
                self.presence.ttl.as_secs(),
                1,
                MAX_PRESENCE_TTL_SECS,
            ),
            (
                "MAX_PRESENCE_CLIENTS",
                self.presence.max_clients as u64,
                1,
                UNBOUNDED,
            ),
        ];
        for (name, value, min, max) in counts {
            if !(min..=max).contains(&value) {
                return Err(ConfigError::setting(
                    name,
                    &value.to_string(),
                    allowed(min, max),
                ));
            }
        }
        // Durations may be sub-second when built in code (tests), so only zero and overflow are
        // checked here; the flags take whole seconds.
        let durations = [
            ("HEARTBEAT_INTERVAL_SECS", self.heartbeat_interval, 1),
            ("IDLE_TIMEOUT_SECS", self.idle_timeout, 1),
            ("HEADER_READ_TIMEOUT_SECS", self.header_read_timeout, 1),
            ("SHUTDOWN_TIMEOUT_SECS", self.shutdown_timeout, 0),
            ("DRAIN_DURATION_SECS", self.drain_duration, 0),
            ("TOPIC_IDLE_TTL_SECS", self.topic_idle_ttl, 0),
            ("HISTORY_TTL_SECS", self.history_ttl, 0),
            ("STREAM_MAX_AGE_SECS", self.stream_max_age, 0),
        ];
        for (name, value, min) in durations {
            if (min > 0 && value.is_zero()) || value.as_secs() > MAX_SECS {
                let shown = value.as_secs_f64().to_string();
                return Err(ConfigError::setting(name, &shown, allowed(min, MAX_SECS)));
            }
        }
        if self.node_id.is_empty()
            || !self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        {
            return Err(ConfigError::setting(
                "NODE_ID",
                &self.node_id,
                "only A-Z a-z 0-9 _ - are allowed",
            ));
        }
        self.tokens.validate()
    }
}
