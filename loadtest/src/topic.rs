//! Topic (subject, channel) names of one run, and which subscriber and publisher use which topic.
//!
//! Names carry a per-run prefix so a run never reads messages left in a replay ring by another,
//! and end in the topic's index so a subscriber maps a delivered name back to it without a hash
//! lookup: `hl<run id>.<index>`, valid as a herald topic, a NATS subject and a Redis channel.

/// The topics of one run.
#[derive(Debug, Clone)]
pub struct TopicSet {
    /// `hl<run id>.`, shared by every name of this run.
    prefix: String,
    /// How many topics there are.
    count: usize,
    /// Subscribers subscribe once to `<prefix>>` (every topic of the run) instead of by name.
    via_pattern: bool,
}

impl TopicSet {
    /// `count` topics with a prefix unique to this process and moment.
    pub fn new(count: usize) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let run = (nanos ^ u64::from(std::process::id()).rotate_left(40)) & 0xffff_ffff;
        Self::with_prefix(format!("hl{run:08x}."), count)
    }

    /// Topics named `<prefix><index>`.
    pub fn with_prefix(prefix: String, count: usize) -> Self {
        Self {
            prefix,
            count,
            via_pattern: false,
        }
    }

    /// The same topics, subscribed to through the wildcard pattern `<prefix>>` (herald, NATS).
    pub fn via_pattern(self) -> Self {
        Self {
            via_pattern: true,
            ..self
        }
    }

    /// The pattern every subscriber subscribes to instead of names, when there is one.
    pub fn pattern(&self) -> Option<String> {
        self.via_pattern.then(|| format!("{}>", self.prefix))
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// The name of topic `index`.
    pub fn name(&self, index: usize) -> String {
        format!("{}{index}", self.prefix)
    }

    /// The index of a delivered topic name, or `None` for a name not of this run.
    pub fn index(&self, name: &[u8]) -> Option<usize> {
        let digits = name.strip_prefix(self.prefix.as_bytes())?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        let mut value = 0usize;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            value = value * 10 + usize::from(d - b'0');
        }
        (value < self.count).then_some(value)
    }
}

/// Who subscribes and who publishes where.
///
/// Subscriber `i` subscribes to the `per_subscriber` consecutive topics starting at
/// `i * per_subscriber` (modulo the topic count), so subscriptions spread evenly. With at least as
/// many topics as publishers, publisher `p` owns the topics `t` with `t % publishers == p`; with
/// more publishers than topics, publisher `p` publishes to topic `p % topics` and shares it.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub topics: usize,
    pub subscribers: usize,
    pub per_subscriber: usize,
    pub publishers: usize,
}

impl Layout {
    /// The topics subscriber `sub` subscribes to, in local order.
    pub fn subscriber_topics(&self, sub: usize) -> impl Iterator<Item = usize> + '_ {
        let first = sub * self.per_subscriber;
        (0..self.per_subscriber).map(move |j| (first + j) % self.topics)
    }

    /// The local position of topic `topic` among subscriber `sub`'s topics, if it has it.
    pub fn local_index(&self, sub: usize, topic: usize) -> Option<usize> {
        let first = (sub * self.per_subscriber) % self.topics;
        let j = (topic + self.topics - first) % self.topics;
        (j < self.per_subscriber).then_some(j)
    }

    /// The topics publisher `publisher` publishes to.
    pub fn publisher_topics(&self, publisher: usize) -> Vec<usize> {
        if self.topics >= self.publishers {
            (publisher..self.topics).step_by(self.publishers).collect()
        } else {
            vec![publisher % self.topics]
        }
    }

    /// How many publishers share one topic at most.
    pub fn publishers_per_topic(&self) -> usize {
        self.publishers.div_ceil(self.topics)
    }

    /// Publisher `publisher`'s slot among the publishers of its topic(s).
    pub fn publisher_slot(&self, publisher: usize) -> usize {
        if self.topics >= self.publishers {
            0
        } else {
            publisher / self.topics
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let set = TopicSet::with_prefix("hlabc.".into(), 1000);
        assert_eq!(set.name(42), "hlabc.42");
        assert_eq!(set.index(b"hlabc.42"), Some(42));
        assert_eq!(set.index(b"hlabc.1000"), None);
        assert_eq!(set.index(b"hlabd.4"), None);
        assert_eq!(set.index(b"hlabc."), None);
        assert_eq!(set.index(b"hlabc.4x"), None);
    }

    #[test]
    fn layout_spreads_subscriptions_evenly() {
        let layout = Layout {
            topics: 1000,
            subscribers: 1000,
            per_subscriber: 10,
            publishers: 10,
        };
        let mut per_topic = vec![0; 1000];
        for s in 0..1000 {
            for (j, t) in layout.subscriber_topics(s).enumerate() {
                per_topic[t] += 1;
                assert_eq!(layout.local_index(s, t), Some(j));
            }
        }
        assert!(per_topic.iter().all(|&n| n == 10));
        let owned: usize = (0..10).map(|p| layout.publisher_topics(p).len()).sum();
        assert_eq!(owned, 1000);
    }

    #[test]
    fn more_publishers_than_topics_share() {
        let layout = Layout {
            topics: 2,
            subscribers: 4,
            per_subscriber: 1,
            publishers: 5,
        };
        assert_eq!(layout.publishers_per_topic(), 3);
        assert_eq!(layout.publisher_topics(3), vec![1]);
        assert_eq!(layout.publisher_slot(4), 2);
        assert_eq!(layout.local_index(1, 1), Some(0));
        assert_eq!(layout.local_index(1, 0), None);
    }
}
