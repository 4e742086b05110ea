//! Server frames (PROTOCOL.md §1): ack, error, pong and info, each built straight into one buffer.
//! Event frames are built by the broker (`broker::topic`) because only it knows the `seq`.

use std::io::Write;

use bytes::Bytes;

use super::client::RequestId;
use super::{Frame, Published, SubscribeAck, TopicName, TopicPattern};
use crate::clock;
use crate::error::ApiError;

/// Writes `text` as a JSON string literal (quotes and escapes included).
pub fn write_json_str(buf: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail and a &str always serializes.
    let _ = serde_json::to_writer(&mut *buf, text);
}

/// Starts a frame of `kind` with its optional `request_id`.
fn start(kind: &str, request_id: Option<&RequestId>) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(br#"{"type":""#);
    buf.extend_from_slice(kind.as_bytes());
    buf.push(b'"');
    if let Some(id) = request_id {
        buf.extend_from_slice(br#","request_id":"#);
        buf.extend_from_slice(id.as_json().as_bytes());
    }
    buf
}

/// Adds `"ts"`, closes the object and freezes the buffer.
fn finish(mut buf: Vec<u8>) -> Frame {
    buf.extend_from_slice(br#","ts":""#);
    buf.extend_from_slice(clock::now().as_str().as_bytes());
    buf.extend_from_slice(b"\"}");
    // Every piece above is UTF-8 (literals, serde_json output, validated JSON literals).
    Frame::try_from(Bytes::from(buf)).unwrap_or_else(|_| Frame::from_static("{}"))
}

/// `topic` is a checked name or pattern: plain ASCII, no JSON escaping needed.
fn ack_start(request_id: Option<&RequestId>, topic: &str) -> Vec<u8> {
    let mut buf = start("ack", request_id);
    buf.extend_from_slice(br#","topic":""#);
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(br#"","status":"ok""#);
    buf
}

/// The ack of a pattern subscribe or unsubscribe: live only, so no `seq` or `epoch`.
pub fn pattern_ack(request_id: Option<&RequestId>, pattern: &TopicPattern) -> Frame {
    finish(ack_start(request_id, pattern.as_str()))
}

/// The ack of an unsubscribe (or any plain ack).
pub fn ack(request_id: Option<&RequestId>, topic: &TopicName) -> Frame {
    finish(ack_start(request_id, topic.as_str()))
}

/// The ack of a subscribe: latest `seq`, `epoch`, and `recovered` when a replay was asked for.
pub fn subscribe_ack(
    request_id: Option<&RequestId>,
    topic: &TopicName,
    ack: &SubscribeAck,
) -> Frame {
    let mut buf = ack_start(request_id, topic.as_str());
    let _ = write!(buf, r#","seq":{},"epoch":"#, ack.seq);
    write_json_str(&mut buf, ack.epoch);
    if let Some(recovered) = ack.recovered {
        let _ = write!(buf, r#","recovered":{recovered}"#);
    }
    finish(buf)
}

/// The ack of a publish: message `id` and `seq`.
pub fn publish_ack(
    request_id: Option<&RequestId>,
    topic: &TopicName,
    published: &Published,
) -> Frame {
    let mut buf = ack_start(request_id, topic.as_str());
    buf.extend_from_slice(br#","id":"#);
    buf.extend_from_slice(published.id_json.as_bytes());
    let _ = write!(buf, r#","seq":{}"#, published.seq);
    finish(buf)
}

/// The ack of an `auth` frame: who the token says the client is, and how long it is valid.
pub fn auth_ack(request_id: Option<&RequestId>, client_id: &str, expires_in: u64) -> Frame {
    let mut buf = start("ack", request_id);
    buf.extend_from_slice(br#","status":"ok","client_id":"#);
    write_json_str(&mut buf, client_id);
    let _ = write!(buf, r#","expires_in":{expires_in}"#);
    finish(buf)
}

/// Sent `TOKEN_REFRESH_WINDOW_SECS` before the connection's token expires.
pub fn info_token_expiring(expires_in: u64) -> Frame {
    let mut buf = start("info", None);
    let _ = write!(buf, r#","msg":"token_expiring","expires_in":{expires_in}"#);
    finish(buf)
}

/// An error frame.
pub fn error(request_id: Option<&RequestId>, error: &ApiError) -> Frame {
    let mut buf = start("error", request_id);
    buf.extend_from_slice(br#","error":{"code":""#);
    buf.extend_from_slice(error.code.as_str().as_bytes());
    buf.extend_from_slice(br#"","message":"#);
    write_json_str(&mut buf, &error.message);
    buf.push(b'}');
    finish(buf)
}

/// The answer to a `ping` frame.
pub fn pong(request_id: Option<&RequestId>) -> Frame {
    finish(start("pong", request_id))
}

/// An event as seed c's server sent it, its Go `Message` struct (PROTOCOL.md §2):
/// `{"id","topic","data","timestamp"}`, plus herald's `seq`. The parts are already JSON: the id
/// a string literal, the payload compact JSON, the timestamp RFC 3339 text.
pub fn seed_c_event(topic: &str, id_json: &str, payload_json: &str, ts: &str, seq: u64) -> Frame {
    let mut buf = Vec::with_capacity(64 + topic.len() + id_json.len() + payload_json.len());
    buf.extend_from_slice(br#"{"id":"#);
    buf.extend_from_slice(id_json.as_bytes());
    buf.extend_from_slice(br#","topic":""#);
    buf.extend_from_slice(topic.as_bytes());
    buf.extend_from_slice(br#"","data":"#);
    buf.extend_from_slice(payload_json.as_bytes());
    buf.extend_from_slice(br#","timestamp":""#);
    buf.extend_from_slice(ts.as_bytes());
    buf.extend_from_slice(br#"","seq":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    buf.push(b'}');
    // Every part is a slice of a validated UTF-8 event frame.
    Frame::try_from(Bytes::from(buf)).unwrap_or_else(|_| Frame::from_static("{}"))
}

/// The heartbeat sent every `HEARTBEAT_INTERVAL_SECS`.
pub fn info_heartbeat() -> Frame {
    let mut buf = start("info", None);
    buf.extend_from_slice(br#","msg":"ping""#);
    finish(buf)
}

/// Sent to each subscriber of a deleted topic.
pub fn info_topic_deleted(topic: &TopicName) -> Frame {
    let mut buf = start("info", None);
    buf.extend_from_slice(br#","topic":""#);
    buf.extend_from_slice(topic.as_str().as_bytes());
    buf.extend_from_slice(br#"","msg":"topic_deleted""#);
    finish(buf)
}

/// Cluster mode: whatever events of `topic` lay in `from_seq..=to_seq` were lost before this node
/// could deliver them (the backplane's retention was exceeded during a partition); the client
/// should reload.
pub fn info_gap(topic: &TopicName, from_seq: u64, to_seq: u64) -> Frame {
    let mut buf = start("info", None);
    buf.extend_from_slice(br#","topic":""#);
    buf.extend_from_slice(topic.as_str().as_bytes());
    let _ = write!(
        buf,
        r#"","msg":"gap","from_seq":{from_seq},"to_seq":{to_seq}"#
    );
    finish(buf)
}

/// Sent to every connection when the server starts shutting down.
pub fn info_shutting_down() -> Frame {
    let mut buf = start("info", None);
    buf.extend_from_slice(br#","msg":"shutting_down""#);
    finish(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::{json, Value};

    fn v(f: Frame) -> Value {
        serde_json::from_str(f.as_str()).unwrap()
    }

    #[test]
    fn frames_match_the_protocol() {
        let t = TopicName::parse("orders").unwrap();
        let rid = RequestId(r#""r1""#.into());
        let a = v(ack(Some(&rid), &t));
        assert_eq!(
            (&a["type"], &a["request_id"], &a["topic"], &a["status"]),
            (&json!("ack"), &json!("r1"), &json!("orders"), &json!("ok"))
        );
        assert!(a["ts"].as_str().unwrap().ends_with('Z'));
        let s = v(subscribe_ack(
            None,
            &t,
            &SubscribeAck {
                seq: 4,
                epoch: "e",
                recovered: Some(false),
            },
        ));
        assert_eq!(
            (&s["seq"], &s["epoch"], &s["recovered"]),
            (&json!(4), &json!("e"), &json!(false))
        );
        assert!(s.get("request_id").is_none());
        let p = v(publish_ack(
            None,
            &t,
            &Published {
                id_json: r#""m""#.into(),
                seq: 9,
            },
        ));
        assert_eq!((&p["id"], &p["seq"]), (&json!("m"), &json!(9)));
        let e = v(error(
            Some(&rid),
            &ApiError::new(ErrorCode::RateLimited, "slow \"down\""),
        ));
        assert_eq!(
            e["error"],
            json!({"code": "RATE_LIMITED", "message": "slow \"down\""})
        );
        assert_eq!(v(pong(None))["type"], "pong");
        assert_eq!(v(info_heartbeat())["msg"], "ping");
        assert_eq!(v(info_topic_deleted(&t))["topic"], "orders");
        assert_eq!(v(info_shutting_down())["msg"], "shutting_down");
    }
}
