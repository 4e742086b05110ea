//! The presence settings (issue 21, PROTOCOL.md §1 "Presence"): how long join/leave notices are
//! coalesced, how long a silent cluster node's identities stay present, and how many identities
//! one presence answer lists.

use std::time::Duration;

use clap::Args;

use super::values::{whole, UNBOUNDED};

/// Longest `PRESENCE_COALESCE_MS`: notices later than 10 s are no longer "live".
pub const MAX_PRESENCE_COALESCE_MS: u64 = 10_000;

/// Longest `PRESENCE_TTL_SECS`: an hour of a dead node's users shown present is already absurd.
pub const MAX_PRESENCE_TTL_SECS: u64 = 3_600;

/// The presence flags of `herald` / `herald serve` (flattened into the server's flags).
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// Milliseconds join/leave notices of one topic are gathered before they are sent; a join and
    /// leave of the same client inside it cancel out.
    #[arg(long, env = "PRESENCE_COALESCE_MS", default_value_t = 100,
        value_parser = whole::<u64, 1, MAX_PRESENCE_COALESCE_MS>)]
    pub presence_coalesce_ms: u64,
    /// Cluster mode: seconds after its last word a silent (killed) node's clients leave.
    #[arg(long, env = "PRESENCE_TTL_SECS", default_value_t = 10,
        value_parser = whole::<u64, 1, MAX_PRESENCE_TTL_SECS>)]
    pub presence_ttl_secs: u64,
    /// Most clients one presence answer lists (its `count` stays exact).
    #[arg(long, env = "MAX_PRESENCE_CLIENTS", default_value_t = 1_000,
        value_parser = whole::<usize, 1, UNBOUNDED>)]
    pub max_presence_clients: usize,
}

/// Presence as the server runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceSettings {
    /// `PRESENCE_COALESCE_MS`.
    pub coalesce: Duration,
    /// `PRESENCE_TTL_SECS`.
    pub ttl: Duration,
    /// `MAX_PRESENCE_CLIENTS`.
    pub max_clients: usize,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            coalesce: Duration::from_millis(100),
            ttl: Duration::from_secs(10),
            max_clients: 1_000,
        }
    }
}

impl PresenceArgs {
    /// The settings these flags describe (each already range-checked by its parser).
    pub fn into_settings(self) -> PresenceSettings {
        PresenceSettings {
            coalesce: Duration::from_millis(self.presence_coalesce_ms),
            ttl: Duration::from_secs(self.presence_ttl_secs),
            max_clients: self.max_presence_clients,
        }
    }
}
