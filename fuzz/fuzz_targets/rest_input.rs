//! REST inputs: path segments (percent-decoded topic names), query strings and `POST /publish`
//! bodies decoded as the server does. Nothing panics; accepted names obey the topic rule.
#![no_main]

use herald::protocol::TopicName;
use herald::protocol::decode;
use libfuzzer_sys::fuzz_target;
use simd_json::prelude::*;

fuzz_target!(|data: &[u8]| {
    // Path segment and query.
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(name) = TopicName::parse(text) {
            let s = name.as_str();
            assert!(!s.is_empty() && s.len() <= 255);
            assert!(s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':')));
        }
    }
    // A /publish body: an object decoded as a publish frame without `type`.
    let mut body = data.to_vec();
    if let Ok(mut value) = simd_json::to_borrowed_value(&mut body) {
        if let Some(object) = value.as_object_mut() {
            object.insert("type".into(), simd_json::BorrowedValue::from("publish"));
            if let Ok(frame) = decode(&value) {
                assert!(frame.topic.is_some() && frame.payload.is_some());
            }
        }
    };
});
