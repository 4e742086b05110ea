//! Exchanging node reports over core NATS: this node's every interval out, every node's in (the
//! counts themselves and their sums are `../report.rs`).

use std::sync::Arc;

use futures_util::StreamExt;
use tracing::debug;

use super::RETRY_PAUSE;

use super::NatsBackplane;
use crate::cluster::report::{Report, REPORT_INTERVAL};
use crate::cluster::CountsFn;

/// Subject prefix of node reports; the node id follows.
const STATS_PREFIX: &str = "herald.stats.";

impl NatsBackplane {
    /// Publishes this node's report every interval and records every node's.
    pub(super) async fn exchange_reports(self: Arc<Self>, counts: CountsFn) {
        let subject = format!("{STATS_PREFIX}{}", self.node_id);
        let mut subscription = self.subscribe_core(format!("{STATS_PREFIX}*")).await;
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if !self.connected() {
                        continue;
                    }
                    let report = Report::local(&self.node_id, &self.broker, counts());
                    if let Ok(body) = serde_json::to_vec(&report) {
                        if let Err(e) = self.client.publish(subject.clone(), body.into()).await {
                            debug!(error = %e, "report not sent");
                        }
                    }
                }
                message = subscription.next() => match message {
                    Some(message) => match serde_json::from_slice::<Report>(&message.payload) {
                        Ok(report) => self.reports.record(report),
                        Err(e) => debug!(error = %e, "ignoring a malformed report"),
                    },
                    None => return,
                },
            }
        }
    }

    /// A core NATS subscription to `subject`, retried until NATS takes it (the client renews it
    /// by itself after every reconnect).
    pub(super) async fn subscribe_core(&self, subject: String) -> async_nats::Subscriber {
        loop {
            match self.client.subscribe(subject.clone()).await {
                Ok(s) => return s,
                Err(e) => {
                    debug!(error = %e, %subject, "cannot subscribe yet");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}
