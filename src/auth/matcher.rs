//! [`Matcher`]: many concrete patterns compiled for the permission check of every operation.
//!
//! Exact names sit in one hash set: one hash of the topic. Wildcard patterns share a token trie,
//! as in NATS' sublist: each node maps a literal next token to a child, has at most one `*` child,
//! and records whether a pattern ends there exactly or with `>`. Matching walks the topic's tokens
//! once down the trie, so its cost follows the topic's depth, not the number of patterns; every
//! trie node is visited at most once per topic (its depth is fixed by its path), so a `*` branch
//! cannot blow up. Nothing is allocated per match.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

/// One level of the wildcard trie.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Children by literal token.
    literal: HashMap<Box<str>, Node, RandomState>,
    /// The child after a `*` token.
    star: Option<Box<Node>>,
    /// A pattern ends here: the topic must end here too.
    end: bool,
    /// A pattern ends here with `>`: at least one more topic token must follow.
    rest: bool,
}

impl Node {
    /// Adds the tokens of a checked wildcard pattern below this node.
    fn insert<'a>(&mut self, mut tokens: impl Iterator<Item = &'a str>) {
        match tokens.next() {
            None => self.end = true,
            Some(">") => self.rest = true,
            Some("*") => self.star.get_or_insert_with(Box::default).insert(tokens),
            Some(literal) => self
                .literal
                .entry(literal.into())
                .or_default()
                .insert(tokens),
        }
    }

    /// Whether the topic tokens in `rest` (`None`: all consumed) match a pattern below here.
    fn matches(&self, rest: Option<&str>) -> bool {
        let Some(rest) = rest else {
            return self.end;
        };
        if self.rest {
            return true;
        }
        let (token, after) = match rest.as_bytes().iter().position(|&b| b == b'.') {
            Some(dot) => (&rest[..dot], Some(&rest[dot + 1..])),
            None => (rest, None),
        };
        self.literal
            .get(token)
            .is_some_and(|child| child.matches(after))
            || self.star.as_ref().is_some_and(|child| child.matches(after))
    }

    /// Whether the patterns below here together with one single pattern cover every topic the
    /// pattern tokens in `rest` (`None`: all consumed) match.
    fn covers(&self, rest: Option<&str>) -> bool {
        let Some(rest) = rest else {
            return self.end;
        };
        if self.rest {
            return true;
        }
        let (token, after) = match rest.split_once('.') {
            Some((token, after)) => (token, Some(after)),
            None => (rest, None),
        };
        match token {
            // Any number of tokens: only a `>` here could cover them.
            ">" => false,
            // Any one token: only a `*` here.
            "*" => self.star.as_ref().is_some_and(|child| child.covers(after)),
            literal => {
                self.literal
                    .get(literal)
                    .is_some_and(|child| child.covers(after))
                    || self.star.as_ref().is_some_and(|child| child.covers(after))
            }
        }
    }

    /// Whether no pattern was added.
    fn is_empty(&self) -> bool {
        self.literal.is_empty() && self.star.is_none() && !self.end && !self.rest
    }
}

/// Many concrete patterns compiled for matching. Built once per identity; [`Matcher::matches`]
/// allocates nothing.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// `>` alone was given: every topic matches.
    all: bool,
    /// Patterns without wildcards.
    exact: HashSet<Box<str>, RandomState>,
    /// Patterns with wildcards.
    wildcards: Node,
}

impl Matcher {
    /// Compiles patterns already checked by [`super::PatternTemplate`] and instantiated.
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Self {
        let mut matcher = Self::default();
        for pattern in patterns {
            if pattern == ">" {
                return Self::everything();
            }
            if pattern.contains(['*', '>']) {
                matcher.wildcards.insert(pattern.split('.'));
            } else {
                matcher.exact.insert(pattern.into());
            }
        }
        matcher
    }

    /// A matcher that matches every topic.
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// Whether `topic` matches any pattern.
    pub fn matches(&self, topic: &str) -> bool {
        self.all
            || (!self.exact.is_empty() && self.exact.contains(topic))
            || self.wildcards.matches(Some(topic))
    }

    /// Whether one of the patterns covers the whole wildcard `pattern` (already checked):
    /// every topic it matches, any pattern here matches too. Each granted pattern is weighed on
    /// its own, so a family covered only by a union of patterns is refused (the safe side).
    pub fn covers(&self, pattern: &str) -> bool {
        self.all || self.wildcards.covers(Some(pattern))
    }

    /// Whether no topic can match.
    pub fn is_empty(&self) -> bool {
        !self.all && self.exact.is_empty() && self.wildcards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PatternTemplate;

    fn matcher(patterns: &[&str]) -> Matcher {
        for p in patterns {
            PatternTemplate::parse(p).unwrap_or_else(|e| panic!("{p}: {e}"));
        }
        Matcher::new(patterns.iter().copied())
    }

    #[test]
    fn match_table() {
        // (pattern, topic, expected)
        let table = [
            ("chat", "chat", true),
            ("chat", "chat.x", false),
            ("chat", "cha", false),
            ("a..b", "a..b", true),
            ("chat.*", "chat.room", true),
            ("chat.*", "chat", false),
            ("chat.*", "chat.room.1", false),
            ("chat.*", "chat.", true),
            ("chat.*", "chatx.room", false),
            ("*", "anything", true),
            ("*", "a.b", false),
            ("*.b", "a.b", true),
            ("*.b", "a.c", false),
            ("*.*", "a.b", true),
            ("*.*", "a", false),
            ("a.*.c", "a.b.c", true),
            ("a.*.c", "a.b.d", false),
            ("a.*.c", "a.b.c.d", false),
            ("a.*.c.>", "a.b.c.d.e", true),
            ("a.*.c.>", "a.b.c", false),
            ("user.42.>", "user.42.inbox", true),
            ("user.42.>", "user.42.inbox.x", true),
            ("user.42.>", "user.42", false),
            ("user.42.>", "user.420.inbox", false),
            ("user.42.>", "user.4.inbox", false),
            ("user.42.>", "xuser.42.inbox", false),
            ("*.>", "a.b", true),
            ("*.>", "a", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("a:b.*", "a:b.c", true),
        ];
        for (pattern, topic, expected) in table {
            assert_eq!(
                matcher(&[pattern]).matches(topic),
                expected,
                "{pattern} vs {topic}"
            );
        }
    }

    #[test]
    fn many_patterns_match_if_any_does() {
        let m = matcher(&["a", "b.*", "c.>", "a", "b.*", "b.x.c", "*.x.d", "b.*.e"]);
        for topic in ["a", "b.x", "c.x.y", "b.x.c", "q.x.d", "b.x.d", "b.y.e"] {
            assert!(m.matches(topic), "{topic}");
        }
        for topic in ["b", "d", "c", "b.x.e.f", "b.y.c", "q.y.d", "a.b"] {
            assert!(!m.matches(topic), "{topic}");
        }
        assert!(Matcher::new([]).is_empty());
        assert!(!Matcher::new([]).matches("a"));
        assert!(!matcher(&["a.*"]).is_empty() && !matcher(&["a"]).is_empty());
        assert!(Matcher::everything().matches("x.y"));
        assert!(matcher(&["a", ">"]).matches("z"));
    }

    #[test]
    fn cover_table() {
        // (granted, asked, covered)
        let table = [
            ("user.42.>", "user.42.*", true),
            ("user.42.>", "user.42.>", true),
            ("user.42.>", "user.42.a.*", true),
            ("user.42.>", "user.*", false),
            ("user.42.>", "user.*.x", false),
            ("user.*", ">", false),
            ("user.*", "user.*", true),
            ("user.*", "user.>", false),
            ("user.*", "user.*.x", false),
            ("*.x", "a.*", false),
            ("*.*", "a.*", true),
            ("*.>", "a.*.b.>", true),
            ("a.*.c", "a.*.c", true),
            ("a.*.c", "a.*.*", false),
            ("user.42", "user.*", false),
            (">", ">", true),
            (">", "a.*", true),
        ];
        for (granted, asked, expected) in table {
            assert_eq!(
                matcher(&[granted]).covers(asked),
                expected,
                "{granted} covers {asked}"
            );
        }
        // Covering is checked against the reference matcher: a covered pattern's sample topics
        // all match the grant.
        assert!(!Matcher::new([]).covers("a.*"));
    }

    proptest::proptest! {
        /// Covering is sound: when a granted pattern covers the asked one, every topic the asked
        /// pattern matches (over a small alphabet, so they collide often) is granted.
        #[test]
        fn a_covered_pattern_only_matches_granted_topics(
            granted in "(a|b|\\*)(\\.(a|b|\\*)){0,3}(\\.>)?",
            asked in "(a|b|\\*)(\\.(a|b|\\*)){0,3}(\\.>)?",
            topics in proptest::collection::vec("(a|b|c)(\\.(a|b|c)){0,5}", 1..40),
        ) {
            use crate::protocol::TopicPattern;
            let Ok(asked) = TopicPattern::parse(&asked) else {
                return Ok(()); // no wildcard: a name, not a pattern
            };
            let m = matcher(&[granted.as_str()]);
            if m.covers(asked.as_str()) {
                for topic in topics.iter().filter(|t| asked.matches(t)) {
                    proptest::prop_assert!(m.matches(topic), "{granted} covers {asked} but not {topic}");
                }
            }
        }
    }

    #[test]
    fn deep_topics_match_without_blowup() {
        // `*` and a literal at every level: each trie node is still visited once per topic.
        let patterns: Vec<String> = (1..=60)
            .map(|n| {
                let mut p = vec!["*"; n];
                p[n - 1] = "z";
                p.join(".")
            })
            .chain((1..=60).map(|n| vec!["a"; n].join(".") + ".q"))
            .collect();
        let m = Matcher::new(patterns.iter().map(String::as_str));
        let deep = vec!["a"; 120].join(".");
        assert!(!m.matches(&deep));
        assert!(m.matches(&(vec!["a"; 59].join(".") + ".z")));
        assert!(m.matches(&(vec!["a"; 30].join(".") + ".q")));
    }
}
