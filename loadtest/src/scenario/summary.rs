//! The end of a fan-out run: every delivery stream checked against what its publisher sent,
//! sorted into lost, duplicated, reordered and what the server's policy explains, and written
//! into the report with the checks that fail the run.

use super::publisher::PublisherEnd;
use super::subscriber::{Shared, SubscriberEnd};
use crate::checker::Tally;
use crate::cli::ServerPolicy;
use crate::client::Closed;
use crate::report::{self, Report};

/// The delivery check over every stream, and the publishers' side of it.
pub struct Summary {
    /// Messages the publishers sent.
    pub published: u64,
    /// Deliveries owed: each topic's messages times its subscribers.
    pub expected: u64,
    /// Totals over every (subscriber, topic, publisher) stream.
    pub tally: Tally,
    /// Subscribers the server closed under its slow-consumer policy, and the first reason.
    policy_closed: u64,
    first_policy: Option<String>,
    /// Subscribers that ended any other way before the run stopped them (a failure).
    other_closed: u64,
    first_other: Option<String>,
    /// Publishes the server refused, or that were never confirmed before the drain ended.
    publish_errors: u64,
    unconfirmed: u64,
    first_publish_error: Option<String>,
    /// Frames that were not deliveries of this run (other clients, other payloads).
    foreign: u64,
}

impl Summary {
    pub fn of(
        shared: &Shared,
        pubs: &[PublisherEnd],
        subs: &[SubscriberEnd],
        policy: ServerPolicy,
    ) -> Self {
        let layout = shared.layout;
        let per_topic = layout.publishers_per_topic();
        // sent[topic * per_topic + slot]: what each (topic, publisher) stream should deliver.
        let mut sent = vec![0u64; layout.topics * per_topic];
        let mut summary = Summary {
            published: 0,
            expected: shared.board.expected_deliveries(),
            tally: Tally::default(),
            policy_closed: 0,
            first_policy: None,
            other_closed: 0,
            first_other: None,
            publish_errors: 0,
            unconfirmed: 0,
            first_publish_error: None,
            foreign: 0,
        };
        for end in pubs {
            let slot = layout.publisher_slot(end.publisher);
            for &(topic, count) in &end.sent {
                sent[topic * per_topic + slot] += count;
                summary.published += count;
            }
            summary.publish_errors += end.finished.errors;
            summary.unconfirmed += end.finished.unconfirmed;
            if summary.first_publish_error.is_none() {
                summary.first_publish_error = end.finished.first_error.clone();
            }
        }
        let dropping = policy == ServerPolicy::DropOldest;
        for end in subs {
            summary.foreign += end.foreign;
            let by_policy = matches!(end.closed, Some(Closed::Policy(_)));
            match &end.closed {
                Some(Closed::Policy(why)) => {
                    summary.policy_closed += 1;
                    summary.first_policy.get_or_insert_with(|| why.clone());
                }
                Some(Closed::Other(why)) => {
                    summary.other_closed += 1;
                    summary.first_other.get_or_insert_with(|| why.clone());
                }
                None => {}
            }
            for (j, topic) in layout.subscriber_topics(end.subscriber).enumerate() {
                for slot in 0..per_topic {
                    summary.tally.add(
                        &end.streams[j * per_topic + slot],
                        sent[topic * per_topic + slot],
                        by_policy,
                        dropping,
                    );
                }
            }
        }
        summary
    }

    /// The "delivered / owed" row; `drained` is false when the drain wait ended first.
    pub fn delivered_row(&self, report: &mut Report, drained: bool) {
        report.row(
            "delivered / owed",
            format!(
                "{} / {}{}",
                crate::report::int(self.tally.received),
                crate::report::int(self.expected),
                if drained {
                    ""
                } else {
                    " (drain ended before all arrived)"
                }
            ),
        );
    }

    /// `strict`: disconnects and drops the server's policy explains fail the run too.
    pub fn fill(&self, report: &mut Report, policy: ServerPolicy, strict: bool) {
        let t = &self.tally;
        report.set("lost", t.lost);
        report.set("duplicated", t.duplicated);
        report.set("reordered", t.reordered);
        report.set("policy_disconnects", self.policy_closed);
        report.set("missed_after_policy_close", t.missed_after_policy_close);
        report.set("dropped_by_policy", t.dropped_by_policy);
        report.set("other_disconnects", self.other_closed);
        report.set("publish_errors", self.publish_errors);
        report.set("unconfirmed_publishes", self.unconfirmed);
        report.set("foreign_frames", self.foreign);
        report.row(
            "lost / duplicated / reordered",
            format!("{} / {} / {}", t.lost, t.duplicated, t.reordered),
        );
        report.row(
            "disconnected by policy",
            format!(
                "{} subscribers (missed {} messages after the close{}){}",
                self.policy_closed,
                report::int(t.missed_after_policy_close),
                self.first_policy
                    .as_deref()
                    .map(|w| format!("; first: {w}"))
                    .unwrap_or_default(),
                if strict { ", --strict" } else { "" }
            ),
        );
        if policy == ServerPolicy::DropOldest {
            report.row(
                "dropped by policy",
                format!("{} (drop_oldest)", report::int(t.dropped_by_policy)),
            );
        }
        if self.other_closed > 0 {
            report.row(
                "disconnected otherwise",
                format!(
                    "{} subscribers (first: {})",
                    self.other_closed,
                    self.first_other.as_deref().unwrap_or("?")
                ),
            );
        }
        if self.publish_errors > 0 || self.unconfirmed > 0 {
            report.row(
                "publish errors",
                format!(
                    "{} errors, {} unconfirmed (first: {})",
                    self.publish_errors,
                    self.unconfirmed,
                    self.first_publish_error.as_deref().unwrap_or("?")
                ),
            );
        }
        if self.foreign > 0 {
            report.row("foreign frames", report::int(self.foreign));
        }
        report.check(self.published == 0, "nothing was published");
        report.check(t.lost > 0, format!("{} messages lost", t.lost));
        report.check(t.duplicated > 0, format!("{} duplicated", t.duplicated));
        report.check(t.reordered > 0, format!("{} reordered", t.reordered));
        report.check(
            self.other_closed > 0,
            format!(
                "{} subscribers disconnected outside the policy",
                self.other_closed
            ),
        );
        let hint = match self.first_publish_error.as_deref() {
            Some(e) if e.contains("SLOW_CONSUMER") => {
                " (a publisher was closed as a slow consumer: its acks share the outbox, keep \
                 --max-unacked below the server's SUBSCRIBER_QUEUE_SIZE)"
            }
            _ if policy == ServerPolicy::DropOldest && self.unconfirmed > 0 => {
                " (under drop_oldest the server may evict acks from a publisher's outbox)"
            }
            _ => "",
        };
        report.check(
            self.publish_errors > 0 || self.unconfirmed > 0,
            format!(
                "{} publish errors, {} unconfirmed{hint}",
                self.publish_errors, self.unconfirmed
            ),
        );
        report.check(
            strict && self.policy_closed > 0,
            format!(
                "{} subscribers disconnected by policy (--strict)",
                self.policy_closed
            ),
        );
        report.check(
            strict && t.dropped_by_policy > 0,
            format!("{} dropped by policy (--strict)", t.dropped_by_policy),
        );
    }
}
