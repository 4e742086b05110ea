//! Property tests: the replay ring and a topic's replay logic against a simple reference model
//! (a `Vec` of every event ever appended).

use std::sync::Arc;

use herald::broker::{Ring, StoredEvent};
use herald::protocol::Frame;
use proptest::prelude::*;

fn event(seq: u64) -> Arc<StoredEvent> {
    Arc::new(StoredEvent {
        seq,
        frame: Frame::from(seq.to_string()),
        id: 0..0,
        payload: 0..0,
        ts: 0..0,
        seed_c: Default::default(),
        deflated: Default::default(),
        at_ms: 0,
    })
}

fn seqs(events: &[Arc<StoredEvent>]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// What the ring must answer, computed from the full history.
struct Model {
    capacity: usize,
    appended: u64,
}

impl Model {
    fn retained(&self) -> Vec<u64> {
        let first = self.appended.saturating_sub(self.capacity as u64) + 1;
        (first..=self.appended).collect()
    }

    fn last_n(&self, n: usize) -> Vec<u64> {
        let all = self.retained();
        all[all.len().saturating_sub(n)..].to_vec()
    }

    fn since(&self, after: u64) -> (Vec<u64>, bool) {
        let all = self.retained();
        let got: Vec<u64> = all.into_iter().filter(|&s| s > after).collect();
        // Complete when nothing after `after` was overwritten.
        let complete = after >= self.appended || got.first() == Some(&(after + 1));
        (got, complete)
    }
}

#[derive(Debug, Clone)]
enum Op {
    Append(u8),
    LastN(usize),
    Since(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..20).prop_map(Op::Append),
        (0usize..40).prop_map(Op::LastN),
        (0u64..300).prop_map(Op::Since),
    ]
}

proptest! {
    #[test]
    fn ring_matches_the_model(capacity in 1usize..32, ops in proptest::collection::vec(op(), 1..60)) {
        let ring = Ring::new(capacity);
        let mut model = Model { capacity, appended: 0 };
        for op in ops {
            match op {
                Op::Append(k) => {
                    for _ in 0..k {
                        model.appended += 1;
                        ring.push(event(model.appended));
                    }
                }
                Op::LastN(n) => prop_assert_eq!(seqs(&ring.last_n(n)), model.last_n(n)),
                Op::Since(after) => {
                    let (events, complete) = ring.since(after);
                    prop_assert_eq!((seqs(&events), complete), model.since(after));
                }
            }
            prop_assert_eq!(ring.head(), model.appended);
        }
    }
}
