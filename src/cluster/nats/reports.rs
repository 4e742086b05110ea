//! Exchanging node reports over core NATS: this node's every interval out, every node's in (the
//! counts themselves and their sums are `../report.rs`).

use std::sync::Arc;

use futures_util::StreamExt;
use tracing::debug;

use super::{NatsBackplane, RETRY_PAUSE};
use crate::cluster::report::{Report, REPORT_INTERVAL};
use crate::cluster::CountsFn;

/// Subject prefix of node reports; the node id follows.
const STATS_PREFIX: &str = "herald.stats.";

impl NatsBackplane {
    /// Publishes this node's report every interval and records every node's.
    pub(super) async fn exchange_reports(self: Arc<Self>, counts: CountsFn) {
        let subject = format!("{STATS_PREFIX}{}", self.node_id);
        let mut subscription = loop {
            match self.client.subscribe(format!("{STATS_PREFIX}*")).await {
                Ok(s) => break s,
                Err(e) => {
                    debug!(error = %e, "cannot subscribe to reports yet");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        };
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
}
