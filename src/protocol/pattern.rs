//! Topic patterns for wildcard subscriptions (PROTOCOL.md §1): NATS syntax over topic names.
//!
//! A pattern is `.`-separated tokens where `*` stands for exactly one token and `>` (last token
//! only) for one or more; `>` alone matches every topic. A `topic` field holding `*` or `>` is a
//! pattern; anything else is a topic name with today's rules (so `a..b` stays a valid name).

use std::fmt;

use super::name::MAX_TOPIC_LEN;
use crate::error::ApiError;

/// A validated wildcard pattern: it holds at least one `*` or `>` token, every token is
/// non-empty, and the characters are those of topic names plus the two wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPattern(Box<str>);

impl TopicPattern {
    /// Whether `text` asks for a pattern (holds a wildcard), as opposed to a topic name.
    pub fn is_pattern(text: &str) -> bool {
        text.contains(['*', '>'])
    }

    /// Validates `text` as a pattern; `BAD_REQUEST` naming the rule it breaks.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        if text.len() > MAX_TOPIC_LEN {
            return Err(ApiError::bad_request(format!(
                "topic pattern longer than {MAX_TOPIC_LEN} characters"
            )));
        }
        if !text.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'*' | b'>')
        }) {
            return Err(ApiError::bad_request(
                "topic pattern may only contain A-Z a-z 0-9 _ - . : and the wildcards * >",
            ));
        }
        if !Self::is_pattern(text) {
            return Err(ApiError::bad_request("topic pattern has no wildcard"));
        }
        let last = text.split('.').count() - 1;
        for (i, token) in text.split('.').enumerate() {
            if token.is_empty() {
                return Err(ApiError::bad_request(
                    "empty token (leading, trailing or doubled `.`) in a topic pattern",
                ));
            }
            if token.len() > 1 && token.contains(['*', '>']) {
                return Err(ApiError::bad_request(
                    "`*` and `>` must each be a whole token of a topic pattern",
                ));
            }
            if token == ">" && i != last {
                return Err(ApiError::bad_request(
                    "`>` may only be the last token of a topic pattern",
                ));
            }
        }
        Ok(Self(text.into()))
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its tokens.
    pub fn tokens(&self) -> std::str::Split<'_, char> {
        self.0.split('.')
    }

    /// Whether `topic` matches, token by token. Subscriptions are matched through the engine's
    /// trie when topics or patterns change; this direct form is for one-off checks and tests.
    pub fn matches(&self, topic: &str) -> bool {
        let mut topic = topic.split('.');
        for token in self.tokens() {
            match (token, topic.next()) {
                (">", Some(_)) => return true,
                (_, None) => return false,
                ("*", Some(_)) => {}
                (literal, Some(t)) if literal == t => {}
                _ => return false,
            }
        }
        topic.next().is_none()
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for good in [
            ">",
            "*",
            "orders.*",
            "orders.>",
            "*.eu.>",
            "a:b.*",
            "a-b_c.*.*",
        ] {
            assert!(TopicPattern::parse(good).is_ok(), "{good} refused");
        }
        let bad = [
            ("*x", "whole token"),
            ("x>", "whole token"),
            ("a.>.b", "last token"),
            (">.>", "last token"),
            ("a..*", "empty token"),
            (".*", "empty token"),
            ("*.", "empty token"),
            ("a b.*", "may only contain"),
            ("orders", "no wildcard"),
        ];
        for (text, why) in bad {
            let err = TopicPattern::parse(text).expect_err(text);
            assert!(err.message.contains(why), "{text}: {}", err.message);
        }
        assert!(TopicPattern::parse(&format!("{}.*", "a".repeat(254))).is_err());
    }

    #[test]
    fn match_table() {
        let table = [
            ("orders.*", "orders.eu", true),
            ("orders.*", "orders.eu.x", false),
            ("orders.*", "orders", false),
            ("orders.>", "orders.eu", true),
            ("orders.>", "orders.eu.x", true),
            ("orders.>", "orders", false),
            (">", "a", true),
            (">", "a.b.c", true),
            ("*", "a", true),
            ("*", "a.b", false),
            ("*.b", "a.b", true),
            ("a.*.c", "a..c", true),
            ("a.*", "a.", true),
            ("a.*", "ab.c", false),
        ];
        for (pattern, topic, expected) in table {
            let p = TopicPattern::parse(pattern).unwrap();
            assert_eq!(p.matches(topic), expected, "{pattern} vs {topic}");
        }
    }
}
