//! Topic names as NATS subject tokens and KV keys.

use crate::protocol::TopicName;

/// Encodes a topic name into one NATS subject token that is also a valid KV key: topic names may
/// hold `.` (the subject separator) and `:` (not allowed in KV keys). `_` escapes: `__` is `_`,
/// `_d` is `.`, `_c` is `:`; everything else is kept, so the encoding is reversible.
pub fn encode_topic(name: &TopicName) -> String {
    let mut out = String::with_capacity(name.as_str().len() + 8);
    for c in name.as_str().chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            ':' => out.push_str("_c"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_topic`]; `None` for a token that no topic name encodes to.
pub fn decode_topic(token: &str) -> Option<TopicName> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '_' => out.push('_'),
            'd' => out.push('.'),
            'c' => out.push(':'),
            _ => return None,
        }
    }
    TopicName::parse(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_encoding_round_trips_and_is_a_plain_token() {
        for name in [
            "orders",
            "a.b:c_d",
            "_",
            "__._:",
            "x-y",
            "a_db",
            &"z".repeat(255),
        ] {
            let topic = TopicName::parse(name).unwrap();
            let token = encode_topic(&topic);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{token}"
            );
            assert_eq!(decode_topic(&token).unwrap(), topic);
        }
        assert!(decode_topic("a_x").is_none());
        assert!(decode_topic("a_").is_none());
        assert_ne!(
            encode_topic(&TopicName::parse("a.b").unwrap()),
            encode_topic(&TopicName::parse("a_db").unwrap())
        );
    }
}
