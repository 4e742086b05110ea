//! Topic patterns (NATS style) as written, checked, with `{sub}` substituted per identity; the
//! compiled form is [`super::Matcher`].
//!
//! A pattern is a plain topic name, matched exactly, or `.`-separated tokens where `*` stands for
//! exactly one token and `>` (last token only) for one or more. Tokens are what splitting the topic
//! on `.` gives, so `a.*` matches `a.` (one empty token) but not `a` or `a.b.c`.
//!
//! A pattern may also contain `{sub}`, replaced by the token's subject when its grants are computed
//! ([`PatternTemplate::instantiate`]). A subject that could change the pattern's shape (empty, or
//! holding `.`, `*`, `>` or anything a topic may not contain) makes that pattern match nothing, so
//! a hostile `sub` can never widen a grant.

use std::borrow::Cow;

use crate::protocol::TopicPattern;

/// Longest pattern: the topic name limit (`MAX_TOPIC_LEN` of `broker::TopicName`, asserted in the tests),
/// kept here so `auth` imports nothing from the engine.
const MAX_PATTERN_LEN: usize = 255;

/// The placeholder replaced by the token's `sub`.
pub const SUB_PLACEHOLDER: &str = "{sub}";

/// Why a pattern was refused; the message names the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatternError(Cow<'static, str>);

/// A checked pattern as written, `{sub}` not yet replaced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatternTemplate {
    /// The pattern text, e.g. `user.{sub}.>`.
    text: Box<str>,
    /// Whether `text` contains `{sub}`, so instantiating a plain pattern allocates nothing.
    has_sub: bool,
}

impl PatternTemplate {
    /// Checks `text`; `{sub}` counts as one ordinary token character while checking.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let has_sub = text.contains(SUB_PLACEHOLDER);
        // With `{sub}` stood in for by a letter, the shape rules apply unchanged; a brace left
        // over is outside any placeholder.
        let probe = if has_sub {
            text.replace(SUB_PLACEHOLDER, "s")
        } else {
            text.to_owned()
        };
        if probe.contains(['{', '}']) {
            return Err(PatternError(Cow::Borrowed(
                "`{` and `}` may only appear as the placeholder `{sub}`",
            )));
        }
        check(&probe)?;
        Ok(Self {
            text: text.into(),
            has_sub,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern contains `{sub}`.
    pub fn uses_sub(&self) -> bool {
        self.has_sub
    }

    /// The concrete pattern for subject `sub` (`None`: no subject, e.g. anonymous), or `None`
    /// when it must match nothing because `sub` is not a safe token or the result is too long.
    pub fn instantiate(&self, sub: Option<&str>) -> Option<String> {
        if !self.has_sub {
            return Some(self.text.to_string());
        }
        let sub = sub.filter(|s| is_safe_sub(s))?;
        let concrete = self.text.replace(SUB_PLACEHOLDER, sub);
        // A safe subject keeps every shape rule; only the length can break.
        check(&concrete).ok()?;
        Some(concrete)
    }
}

/// Whether `sub` may stand in a pattern: one non-empty topic token with no wildcard.
fn is_safe_sub(sub: &str) -> bool {
    !sub.is_empty()
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b':'))
}

/// The shape rules of a concrete pattern (no `{sub}` left).
fn check(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError(Cow::Borrowed("empty pattern")));
    }
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(PatternError(Cow::Borrowed(
            "pattern longer than 255 characters (no topic could match it)",
        )));
    }
    if !pattern
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'*' | b'>'))
    {
        return Err(PatternError(Cow::Borrowed(
            "a pattern may only contain A-Z a-z 0-9 _ - . : and the wildcards * >",
        )));
    }
    if !TopicPattern::is_pattern(pattern) {
        return Ok(());
    }
    // The token rules are the ones wildcard subscriptions follow, so a grant and a subscription
    // agree on what a pattern is.
    TopicPattern::parse(pattern)
        .map(|_| ())
        .map_err(|e| PatternError(e.message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_limit_is_the_topic_limit() {
        use crate::protocol::TopicName;
        assert!(TopicName::parse(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
        assert!(TopicName::parse(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
    }

    #[test]
    fn refuses_bad_patterns_with_the_rule() {
        let cases = [
            ("", "empty pattern"),
            ("*x", "whole token"),
            ("x>", "whole token"),
            ("a.>.b", "last token"),
            ("a..*", "empty token"),
            ("a.*.", "empty token"),
            (".>", "empty token"),
            ("a b", "may only contain"),
            ("a/b", "may only contain"),
            ("é", "may only contain"),
            ("{sub", "placeholder"),
            ("{user}", "placeholder"),
            ("a.{sub}x}", "placeholder"),
            ("*{sub}", "whole token"),
        ];
        for (pattern, why) in cases {
            let err = PatternTemplate::parse(pattern).expect_err(pattern);
            assert!(err.to_string().contains(why), "{pattern:?}: {err}");
        }
        assert!(PatternTemplate::parse(&"a".repeat(256)).is_err());
        assert!(PatternTemplate::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn sub_is_substituted_once_per_identity() {
        let t = PatternTemplate::parse("user.{sub}.>").unwrap();
        assert!(t.uses_sub());
        assert_eq!(t.instantiate(Some("42")).as_deref(), Some("user.42.>"));
        let t = PatternTemplate::parse("inbox-{sub}").unwrap();
        assert_eq!(t.instantiate(Some("a:b")).as_deref(), Some("inbox-a:b"));
        let plain = PatternTemplate::parse("chat.*").unwrap();
        assert_eq!(plain.instantiate(None).as_deref(), Some("chat.*"));
    }

    #[test]
    fn unsafe_sub_matches_nothing() {
        let t = PatternTemplate::parse("user.{sub}.>").unwrap();
        // Each of these would widen `user.{sub}.>` or change its shape if spliced in.
        for sub in [
            "", ".", "*", ">", "a.b", "a*", "*.x", "x.>", "a b", "a/b", "é", "{sub}", "a\n",
        ] {
            assert_eq!(t.instantiate(Some(sub)), None, "sub {sub:?}");
        }
        assert_eq!(t.instantiate(None), None, "anonymous has no sub");
        // Too long once substituted: no topic could match, so nothing is granted.
        assert_eq!(t.instantiate(Some(&"a".repeat(250))), None);
        let exact = PatternTemplate::parse("{sub}").unwrap();
        assert_eq!(exact.instantiate(Some("*")), None);
        assert_eq!(exact.instantiate(Some("ok")).as_deref(), Some("ok"));
    }
}
