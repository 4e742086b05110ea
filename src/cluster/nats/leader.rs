//! What the node asks of a replicated backplane: whether herald's stream has a leader (looked up
//! every second, for `/readyz` and `/metrics`), and whether NATS refused `NATS_REPLICAS` (the node
//! then stops with that one line).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::NatsBackplane;

/// How often the stream's leader is looked up, and the longest wait for one answer: an election
/// takes seconds, so this notices it within about a second and costs one small request a second.
const LEADER_POLL: Duration = Duration::from_secs(1);

impl NatsBackplane {
    /// Resolves with one line when NATS refused the replica count: the node cannot run as
    /// configured. Never resolves otherwise.
    pub(in crate::cluster) async fn refused(&self) -> String {
        let mut refused = self.replication.refused.subscribe();
        let line = match refused.wait_for(Option::is_some).await {
            Ok(line) => line.clone(),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        match line {
            Some(line) => line,
            None => std::future::pending().await,
        }
    }

    /// Whether the last look-up found a leader for the stream (a single server always leads).
    pub(in crate::cluster) fn has_stream_leader(&self) -> bool {
        self.replication.leader.load(Ordering::Acquire)
    }

    /// Looks the stream's leader up every [`LEADER_POLL`] forever. No answer in time counts as no
    /// leader: the server this node reaches cannot serve the stream either way.
    pub(in crate::cluster) async fn watch_stream_leader(self: Arc<Self>) {
        let mut last: Option<String> = None;
        loop {
            let parts = self.wait_parts().await;
            let leader = match tokio::time::timeout(LEADER_POLL, parts.stream.get_info()).await {
                // A stream on a single (unclustered) server has no cluster section: that server
                // leads it.
                Ok(Ok(info)) => {
                    // Only a leader answers stream info, so this is the stream as it stands.
                    let replication = &self.replication;
                    replication
                        .stream_last
                        .store(info.state.last_sequence, Ordering::Release);
                    replication.looks.fetch_add(1, Ordering::AcqRel);
                    match info.cluster {
                        None => Some(String::new()),
                        Some(cluster) => cluster.leader.filter(|l| !l.is_empty()),
                    }
                }
                _ => None,
            };
            if leader != last {
                match &leader {
                    Some(name) => info!(leader = %name, "stream leader"),
                    None => warn!("the stream has no leader: publishes fail until one is elected"),
                }
            }
            self.replication
                .leader
                .store(leader.is_some(), Ordering::Release);
            last = leader;
            tokio::time::sleep(LEADER_POLL).await;
        }
    }
}
