//! Assertions on herald's JSON: timestamps, fields (extensions allowed), `/stats` topics, and
//! the PROTOCOL.md §3 error shape as a REST body, a REST response, a WebSocket frame or a
//! refused upgrade.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Error as WsError;

use super::rest::assert_json_content_type;
use super::ws::WsClient;

/// Asserts `frame["ts"]` is RFC 3339 UTC with milliseconds (`2025-08-25T10:00:00.123Z`) and is
/// "now".
pub fn assert_ts(frame: &Value) {
    let ts = frame["ts"]
        .as_str()
        .unwrap_or_else(|| panic!("no string ts in {frame}"));
    assert_rfc3339_now(ts);
}

/// Like [`assert_ts`] for a timestamp anywhere (e.g. a stored message's `ts`).
pub fn assert_time(value: &Value) {
    let ts = value
        .as_str()
        .unwrap_or_else(|| panic!("timestamp {value} is not a string"));
    assert_rfc3339_now(ts);
}

fn assert_rfc3339_now(ts: &str) {
    let b = ts.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "ts {ts:?} is not RFC 3339 UTC with milliseconds");
    let at = humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("ts {ts:?}: {e}"));
    let skew = match at.duration_since(SystemTime::now()) {
        Ok(ahead) => ahead,
        Err(e) => e.duration(),
    };
    assert!(skew < Duration::from_secs(60), "ts {ts:?} is not now");
}

/// Asserts every field of `expected` is in `actual` with that value; nested objects are
/// compared the same way (extra fields of `actual` are extensions and allowed), except a
/// `payload`, which is the client's data and must match exactly.
pub fn assert_fields(actual: &Value, expected: Value) {
    fn check(root: &Value, actual: &Value, expected: &Value, path: &str) {
        for (key, want) in expected.as_object().expect("expected an object") {
            let got = &actual[key];
            let here = format!("{path}.{key}");
            if want.is_object() && key != "payload" {
                assert!(got.is_object(), "`{here}` is not an object in {root}");
                check(root, got, want, &here);
            } else {
                assert_eq!(got, want, "field `{here}` of {root}");
            }
        }
    }
    check(actual, actual, &expected, "");
}

/// Asserts `/stats` lists exactly these topics, each with these `messages` and `subscribers`
/// (extra per-topic fields are extensions and allowed).
pub fn assert_topic_stats(stats: &Value, want: &[(&str, u64, u64)]) {
    let topics = stats["topics"]
        .as_object()
        .unwrap_or_else(|| panic!("no topics object in {stats}"));
    let mut names: Vec<&str> = topics.keys().map(String::as_str).collect();
    names.sort_unstable();
    let mut want_names: Vec<&str> = want.iter().map(|(n, _, _)| *n).collect();
    want_names.sort_unstable();
    assert_eq!(names, want_names, "{stats}");
    for (name, messages, subscribers) in want {
        assert_fields(
            &topics[*name],
            json!({"messages": messages, "subscribers": subscribers}),
        );
    }
}

/// Asserts the PROTOCOL.md §3 error body `{"error":{"code","message"}}` with `code` and a
/// non-empty message.
pub fn assert_error_body(body: &Value, code: &str, what: &str) {
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

/// Asserts a REST error response: `status`, a JSON content type and the §3 body with `code`.
pub async fn assert_rest_error(resp: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(resp.status().as_u16(), status, "{what}");
    assert_json_content_type(&resp, what);
    let body: Value = resp.json().await.unwrap();
    assert_error_body(&body, code, what);
}

/// Asserts `v` is an error frame with `code`, a non-empty message, a `ts`, and exactly the
/// given `request_id` (absent: `None`).
pub fn assert_error_frame(v: &Value, code: &str, request_id: Option<&Value>, what: &str) {
    assert_eq!(
        v["type"], "error",
        "{what}: expected an error frame, got {v}"
    );
    assert_error_body(v, code, what);
    assert!(v["ts"].is_string(), "{what}: ts: {v}");
    match request_id {
        Some(rid) => assert_eq!(&v["request_id"], rid, "{what}: request_id echo: {v}"),
        None => assert!(
            v.get("request_id").is_none(),
            "{what}: request_id must be absent: {v}"
        ),
    }
}

/// Asserts the handshake was refused with HTTP 401 (never upgraded).
pub fn assert_refused_401(result: Result<WsClient, WsError>, what: &str) {
    match result {
        Ok(_) => panic!("{what}: upgrade succeeded without the right key"),
        Err(WsError::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 401, "{what}");
            // Whatever part of the body arrived with the head must be the JSON error.
            if let Some(body) = resp.body().as_deref().filter(|b| !b.is_empty()) {
                if let Ok(v) = serde_json::from_slice::<Value>(body) {
                    assert_eq!(v["error"]["code"], "UNAUTHORIZED", "{what}: {v}");
                }
            }
        }
        Err(e) => panic!("{what}: expected an HTTP 401 refusal, got {e:?}"),
    }
}

/// Asserts an event frame of PROTOCOL.md §1 on `topic` with `seq`, carrying the message `id`
/// and exactly `payload`, stamped with a current `ts`.
pub fn assert_event(ev: &Value, topic: &str, id: &Value, payload: Value, seq: u64) {
    assert_fields(
        ev,
        json!({"type": "event", "topic": topic, "seq": seq,
               "message": {"id": id.clone(), "payload": payload}}),
    );
    assert_ts(ev);
}

/// `seen` (the `seq`s one subscriber received) is strictly increasing, so nothing came twice or
/// out of order, and holds every acknowledged `seq` in `acked`; `who` names the subscriber.
pub fn assert_acked_once_in_order(who: &str, seen: &[u64], acked: &[u64]) {
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "{who}: a duplicate or out of order"
    );
    let seen: std::collections::HashSet<u64> = seen.iter().copied().collect();
    let missing: Vec<_> = acked.iter().filter(|s| !seen.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{who}: acknowledged but never delivered: {missing:?}"
    );
}
