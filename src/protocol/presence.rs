//! Presence on the wire (PROTOCOL.md §1 "Presence"): the answer to "who is on this topic", as a
//! WebSocket `presence` frame or a REST body, and the `join` / `leave` notices.

use std::sync::Arc;

use bytes::Bytes;

use super::client::RequestId;
use super::server::write_json_str;
use super::{Frame, TopicName};
use crate::clock;

/// Who is on a topic: up to `MAX_PRESENCE_CLIENTS` identities by name with their connections,
/// and how many identities there are in all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PresenceList {
    /// Identities and their connection counts, sorted by identity, at most the cap.
    pub clients: Vec<(Arc<str>, u32)>,
    /// Every identity present, listed or not.
    pub count: usize,
}

/// `"clients":[…],"count":n` without braces, shared by both answers.
fn write_body(buf: &mut Vec<u8>, list: &PresenceList) {
    buf.extend_from_slice(br#","clients":["#);
    for (i, (client, connections)) in list.clients.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"client_id":"#);
        write_json_str(buf, client);
        buf.extend_from_slice(format!(r#","connections":{connections}}}"#).as_bytes());
    }
    buf.extend_from_slice(format!(r#"],"count":{}"#, list.count).as_bytes());
}

fn freeze(buf: Vec<u8>) -> Frame {
    // Every piece is UTF-8: literals, a checked topic name, serde_json output.
    Frame::try_from(Bytes::from(buf)).unwrap_or_else(|_| Frame::from_static("{}"))
}

/// `{"type":"presence","topic","request_id"?,"clients","count","ts"}`.
pub fn presence_frame(
    request_id: Option<&RequestId>,
    topic: &TopicName,
    list: &PresenceList,
) -> Frame {
    let mut buf = Vec::with_capacity(96 + list.clients.len() * 40);
    buf.extend_from_slice(br#"{"type":"presence","topic":""#);
    buf.extend_from_slice(topic.as_str().as_bytes());
    buf.push(b'"');
    if let Some(id) = request_id {
        buf.extend_from_slice(br#","request_id":"#);
        buf.extend_from_slice(id.as_json().as_bytes());
    }
    write_body(&mut buf, list);
    buf.extend_from_slice(br#","ts":""#);
    buf.extend_from_slice(clock::now().as_str().as_bytes());
    buf.extend_from_slice(b"\"}");
    freeze(buf)
}

/// The REST body of `GET /topics/{name}/presence`: `{"topic","clients","count"}`.
pub fn presence_body(topic: &TopicName, list: &PresenceList) -> String {
    let mut buf = Vec::with_capacity(64 + list.clients.len() * 40);
    buf.extend_from_slice(br#"{"topic":""#);
    buf.extend_from_slice(topic.as_str().as_bytes());
    buf.push(b'"');
    write_body(&mut buf, list);
    buf.push(b'}');
    // Every piece is UTF-8, as above.
    String::from_utf8(buf).unwrap_or_default()
}

/// `{"type":"info","msg":"join"|"leave","topic","client_id","ts"}`: built once per change and
/// shared by every watcher it goes to.
pub fn info_presence(topic: &TopicName, joined: bool, client_id: &str) -> Frame {
    let mut buf = Vec::with_capacity(112 + client_id.len());
    buf.extend_from_slice(if joined {
        br#"{"type":"info","msg":"join""#
    } else {
        br#"{"type":"info","msg":"leave""#
    });
    buf.extend_from_slice(br#","topic":""#);
    buf.extend_from_slice(topic.as_str().as_bytes());
    buf.extend_from_slice(br#"","client_id":"#);
    write_json_str(&mut buf, client_id);
    buf.extend_from_slice(br#","ts":""#);
    buf.extend_from_slice(clock::now().as_str().as_bytes());
    buf.extend_from_slice(b"\"}");
    freeze(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_json_with_every_field() {
        let topic = TopicName::parse("chat").unwrap();
        let list = PresenceList {
            clients: vec![("u\"1".into(), 2), ("u2".into(), 1)],
            count: 3,
        };
        let rid = RequestId("\"p1\"".into());
        let v: serde_json::Value =
            serde_json::from_slice(presence_frame(Some(&rid), &topic, &list).as_bytes()).unwrap();
        assert_eq!(v["type"], "presence");
        assert_eq!(v["request_id"], "p1");
        assert_eq!(v["clients"][0]["client_id"], "u\"1");
        assert_eq!(v["clients"][0]["connections"], 2);
        assert_eq!(v["count"], 3);
        assert!(v["ts"].is_string());
        let v: serde_json::Value = serde_json::from_str(&presence_body(&topic, &list)).unwrap();
        assert_eq!(v["topic"], "chat");
        assert_eq!(v["clients"].as_array().unwrap().len(), 2);
        let v: serde_json::Value =
            serde_json::from_slice(info_presence(&topic, false, "u1").as_bytes()).unwrap();
        assert_eq!(
            (v["msg"].as_str(), v["client_id"].as_str()),
            (Some("leave"), Some("u1"))
        );
    }
}
