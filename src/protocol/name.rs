//! Topic names (PROTOCOL.md §5).

use std::borrow::Borrow;
use std::fmt;

use crate::error::ApiError;

/// Longest topic name, in characters (all allowed characters are ASCII, so also bytes).
pub const MAX_TOPIC_LEN: usize = 255;

/// A validated topic name: 1 to 255 characters of `A-Z a-z 0-9 _ - . :`. Because every allowed
/// character is plain ASCII, a name needs no JSON escaping and is spliced into frames as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Box<str>);

impl TopicName {
    /// Validates `name`.
    pub fn parse(name: &str) -> Result<Self, ApiError> {
        if name.is_empty() {
            return Err(ApiError::bad_request("topic name must not be empty"));
        }
        if name.len() > MAX_TOPIC_LEN {
            return Err(ApiError::bad_request(format!(
                "topic name longer than {MAX_TOPIC_LEN} characters"
            )));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return Err(ApiError::bad_request(
                "topic name may only contain A-Z a-z 0-9 _ - . :",
            ));
        }
        Ok(Self(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert!(TopicName::parse("orders.eu-west_1:v2").is_ok());
        assert!(TopicName::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        for bad in ["", " ", "a b", "a/b", "é", "a\"b", "a\\b"] {
            assert!(TopicName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(TopicName::parse(&"a".repeat(256)).is_err());
    }
}
