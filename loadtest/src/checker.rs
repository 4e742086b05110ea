//! The delivery checker: one [`StreamChecker`] per (subscriber, topic, publisher) stream sees the
//! publisher's counters in arrival order and tells lost, duplicated and reordered messages apart.
//!
//! Counters of one stream are sent 0, 1, 2, … over one connection, and every target preserves a
//! single publisher's order on a topic, so any other arrival order is a broker fault.

use std::ops::Range;

/// Gaps remembered per stream so a late arrival can still be told from a duplicate; older gaps
/// are folded into a plain count (still lost, no longer matchable).
const MAX_GAPS: usize = 1024;

/// How one arrival compared with what came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next expected counter.
    InOrder,
    /// Ahead of the expected one: the ones in between are missing (for now).
    Gap,
    /// A counter that was missing arrived after a later one.
    Late,
    /// Already seen.
    Duplicate,
}

/// The state of one stream.
#[derive(Debug, Clone, Default)]
pub struct StreamChecker {
    /// The counter expected next: one past the highest seen.
    next: u64,
    /// Counters below `next` not seen yet, as ascending half-open ranges.
    gaps: Vec<Range<u64>>,
    /// Missing counters from gaps dropped out of `gaps` (over [`MAX_GAPS`]).
    forgotten: u64,
    /// Distinct counters received.
    received: u64,
    duplicated: u64,
    reordered: u64,
}

impl StreamChecker {
    /// Records the arrival of `counter`.
    pub fn observe(&mut self, counter: u64) -> Arrival {
        if counter == self.next {
            self.next += 1;
            self.received += 1;
            return Arrival::InOrder;
        }
        if counter > self.next {
            self.gaps.push(self.next..counter);
            if self.gaps.len() > MAX_GAPS {
                let old = self.gaps.remove(0);
                self.forgotten += old.end - old.start;
            }
            self.next = counter + 1;
            self.received += 1;
            return Arrival::Gap;
        }
        // Below `next`: a missing one arriving late, or a duplicate. Late ones are usually recent.
        match self.gaps.iter().rposition(|g| g.contains(&counter)) {
            Some(i) => {
                let gap = self.gaps[i].clone();
                let mut pieces = [gap.start..counter, counter + 1..gap.end]
                    .into_iter()
                    .filter(|r| !r.is_empty());
                match (pieces.next(), pieces.next()) {
                    (Some(a), Some(b)) => {
                        self.gaps[i] = a;
                        self.gaps.insert(i + 1, b);
                    }
                    (Some(a), None) => self.gaps[i] = a,
                    _ => {
                        self.gaps.remove(i);
                    }
                }
                self.received += 1;
                self.reordered += 1;
                Arrival::Late
            }
            None => {
                self.duplicated += 1;
                Arrival::Duplicate
            }
        }
    }

    /// Messages missing in the middle of the stream (gaps still open).
    pub fn gap_missing(&self) -> u64 {
        self.forgotten + self.gaps.iter().map(|g| g.end - g.start).sum::<u64>()
    }

    /// Messages missing after the last one received, given that `sent` were sent.
    pub fn tail_missing(&self, sent: u64) -> u64 {
        sent.saturating_sub(self.next)
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }
}

/// Totals over many streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Distinct messages received.
    pub received: u64,
    /// Sent but never received, not explained by the server's policy.
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Not received by a subscriber after the server closed it by policy (`SLOW_CONSUMER`).
    pub missed_after_policy_close: u64,
    /// Missing in the middle of a stream while the server runs a dropping policy (`drop_oldest`).
    pub dropped_by_policy: u64,
}

impl Tally {
    /// Adds one stream. `closed_by_policy`: the server closed this subscriber under its documented
    /// slow-consumer policy; `dropping_policy`: the server may drop events (`drop_oldest`).
    pub fn add(
        &mut self,
        stream: &StreamChecker,
        sent: u64,
        closed_by_policy: bool,
        dropping_policy: bool,
    ) {
        self.received += stream.received();
        self.duplicated += stream.duplicated();
        self.reordered += stream.reordered();
        let gaps = stream.gap_missing();
        let tail = stream.tail_missing(sent);
        if dropping_policy {
            self.dropped_by_policy += gaps;
        } else {
            self.lost += gaps;
        }
        if closed_by_policy {
            self.missed_after_policy_close += tail;
        } else {
            self.lost += tail;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(counters: &[u64]) -> StreamChecker {
        let mut c = StreamChecker::default();
        for &n in counters {
            c.observe(n);
        }
        c
    }

    #[test]
    fn in_order_stream_is_clean() {
        let c = run(&[0, 1, 2, 3, 4]);
        assert_eq!(
            (c.received(), c.gap_missing(), c.tail_missing(5)),
            (5, 0, 0)
        );
        assert_eq!((c.duplicated(), c.reordered()), (0, 0));
    }

    #[test]
    fn counts_lost_in_gaps_and_tail() {
        let c = run(&[0, 1, 4, 5, 9]);
        assert_eq!(c.gap_missing(), 2 + 3);
        assert_eq!(c.tail_missing(12), 2);
        assert_eq!(c.received(), 5);
    }

    #[test]
    fn late_arrival_is_reordered_not_lost() {
        let mut c = StreamChecker::default();
        assert_eq!(c.observe(0), Arrival::InOrder);
        assert_eq!(c.observe(2), Arrival::Gap);
        assert_eq!(c.observe(5), Arrival::Gap);
        assert_eq!(c.observe(1), Arrival::Late);
        assert_eq!(c.observe(3), Arrival::Late);
        assert_eq!(c.gap_missing(), 1); // 4
        assert_eq!(c.reordered(), 2);
        assert_eq!(c.observe(4), Arrival::Late);
        assert_eq!(c.gap_missing(), 0);
        assert_eq!(c.received(), 6);
    }

    #[test]
    fn duplicates_are_counted_once_each() {
        let mut c = StreamChecker::default();
        for n in [0, 1, 1, 2, 0, 2] {
            c.observe(n);
        }
        assert_eq!(c.duplicated(), 3);
        assert_eq!(c.reordered(), 0);
        assert_eq!(c.received(), 3);
        // A late one seen twice: first is reordered, second a duplicate.
        let mut c = run(&[0, 2, 1]);
        assert_eq!(c.observe(1), Arrival::Duplicate);
        assert_eq!((c.reordered(), c.duplicated()), (1, 1));
    }

    #[test]
    fn gap_splits_in_the_middle() {
        let mut c = run(&[10]);
        c.observe(5);
        assert_eq!(c.gap_missing(), 9);
        c.observe(0);
        c.observe(9);
        assert_eq!(c.gap_missing(), 7);
        assert_eq!(c.reordered(), 3);
    }

    #[test]
    fn too_many_gaps_are_forgotten_but_still_lost() {
        let counters: Vec<u64> = (0..(MAX_GAPS as u64 + 10)).map(|i| i * 2 + 1).collect();
        let c = run(&counters);
        assert_eq!(c.gap_missing(), MAX_GAPS as u64 + 10);
    }

    #[test]
    fn tally_sorts_by_policy() {
        let c = run(&[0, 2, 3]); // 1 missing in a gap, then the subscriber stopped
        let mut strict = Tally::default();
        strict.add(&c, 6, false, false);
        assert_eq!((strict.lost, strict.missed_after_policy_close), (3, 0));
        let mut policy = Tally::default();
        policy.add(&c, 6, true, false);
        assert_eq!((policy.lost, policy.missed_after_policy_close), (1, 2));
        let mut dropping = Tally::default();
        dropping.add(&c, 6, false, true);
        assert_eq!((dropping.lost, dropping.dropped_by_policy), (2, 1));
    }
}
