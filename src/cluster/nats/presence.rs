//! Exchanging presence reports over core NATS (issue 21; the bookkeeping and the reasons for
//! this design are in `../presence.rs`): every `PRESENCE_COALESCE_MS` this node flushes its
//! topics' notices and sends the local counts that changed, every beat it says it is alive, and
//! it answers another node's request for a full report; every node's reports come in here.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::NatsBackplane;
use crate::broker::new_epoch;
use crate::cluster::presence::{entries, Entries, Kind, Remote, Report};

/// Subject prefix of presence reports; the sending node's id follows.
const PRESENCE_PREFIX: &str = "herald.presence.";

/// Most bytes of identities and topic names in one report: a full report larger than this goes
/// out in parts (NATS refuses messages over its `max_payload`, 1 MiB by default).
const REPORT_BYTES: usize = 256 * 1024;

/// How long a node shutting down waits to say `bye`.
const BYE_TIMEOUT: Duration = Duration::from_millis(500);

/// This node's side of the exchange: what it sends and under which numbers.
struct Sender {
    /// `herald.presence.<node id>`.
    subject: String,
    /// This process's life.
    inc: String,
    /// The last report number sent.
    seq: u64,
}

impl NatsBackplane {
    /// Runs the presence exchange until `shutdown`, then says `bye`.
    pub(super) async fn exchange_presence(self: Arc<Self>, shutdown: CancellationToken) {
        let mut sender = Sender {
            subject: format!("{PRESENCE_PREFIX}{}", self.node_id),
            inc: new_epoch(),
            seq: 0,
        };
        let mut subscription = self.subscribe_core(format!("{PRESENCE_PREFIX}*")).await;
        let mut remote = Remote::new(&self.node_id, self.presence.ttl);
        let beat_every =
            (self.presence.ttl / 3).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut flush = tokio::time::interval(self.presence.coalesce);
        let mut beat = tokio::time::interval(beat_every);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut want_full = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    let bye = self.report(&mut sender, Kind::Bye, Vec::new(), None);
                    let _ = tokio::time::timeout(BYE_TIMEOUT, async {
                        self.send_report(&sender, bye).await;
                        let _ = self.client.flush().await;
                    })
                    .await;
                    return;
                }
                _ = flush.tick() => {
                    let changed = self.broker.flush_presence();
                    if std::mem::take(&mut want_full) {
                        self.send_full(&mut sender).await;
                    } else if !changed.is_empty() {
                        let delta = self.report(&mut sender, Kind::Delta, entries(changed), None);
                        self.send_report(&sender, delta).await;
                    }
                }
                _ = beat.tick() => {
                    remote.sweep(&self.broker);
                    let beat = self.report(&mut sender, Kind::Beat, Vec::new(), None);
                    self.send_report(&sender, beat).await;
                }
                message = subscription.next() => {
                    let Some(message) = message else { return };
                    let report = match serde_json::from_slice::<Report>(&message.payload) {
                        Ok(report) => report,
                        Err(e) => {
                            debug!(error = %e, "ignoring a malformed presence report");
                            continue;
                        }
                    };
                    let (ask, asked) = remote.receive(report, &self.broker);
                    want_full |= asked;
                    if let Some(node) = ask {
                        let want = self.report(&mut sender, Kind::Want, Vec::new(), Some(node));
                        self.send_report(&sender, want).await;
                    }
                }
            }
        }
    }

    /// A report of `kind`; deltas and fulls take the next number.
    fn report(
        &self,
        sender: &mut Sender,
        kind: Kind,
        topics: Entries,
        target: Option<String>,
    ) -> Report {
        if matches!(kind, Kind::Delta | Kind::Full) {
            sender.seq += 1;
        }
        Report {
            node: self.node_id.clone(),
            inc: sender.inc.clone(),
            seq: sender.seq,
            kind,
            target,
            topics,
        }
    }

    /// Every local count, in parts of at most [`REPORT_BYTES`]: a full report, then deltas.
    async fn send_full(&self, sender: &mut Sender) {
        let mut parts: Vec<Entries> = vec![Vec::new()];
        let mut bytes = 0;
        for entry in entries(self.broker.local_presence()) {
            let size = entry.0.len() + entry.1.iter().map(|(id, _)| id.len() + 16).sum::<usize>();
            if bytes + size > REPORT_BYTES && parts.last().is_some_and(|p| !p.is_empty()) {
                parts.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            if let Some(part) = parts.last_mut() {
                part.push(entry);
            }
        }
        for (i, part) in parts.into_iter().enumerate() {
            let kind = if i == 0 { Kind::Full } else { Kind::Delta };
            let report = self.report(sender, kind, part, None);
            self.send_report(sender, report).await;
        }
    }

    /// Publishes `report` when connected; a lost one is noticed by its receivers (a missing
    /// number) and repaired with a full report.
    async fn send_report(&self, sender: &Sender, report: Report) {
        if !self.connected() {
            return;
        }
        match serde_json::to_vec(&report) {
            Ok(body) => {
                if let Err(e) = self
                    .client
                    .publish(sender.subject.clone(), body.into())
                    .await
                {
                    debug!(error = %e, "presence report not sent");
                }
            }
            Err(e) => debug!(error = %e, "presence report not encoded"),
        }
    }
}
