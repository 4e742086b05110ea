//! The REST routes of PROTOCOL.md §2–§3: each turns a request into one call on the [`Node`] and
//! its answer into the documented body. Errors go back to the router as `ApiError`, which turns
//! every one of them into the JSON error body in one place.
//!
//! [`Node`]: crate::node::Node

use std::fmt::Write as _;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use simd_json::prelude::*;

use super::request::{json_content_type, parse_object, query_param, read_body, with_parse_buffers};
use super::response::{json, typed, HttpResponse};
use super::state::{State, FRAME_ENVELOPE_BYTES};
use crate::error::ApiError;
use crate::metrics::Readings;
use crate::node::{Caller, NodeStats};
use crate::protocol::{decode_publish, Payload, Published, TopicName};

/// What every route returns; the router answers an error with its JSON body.
pub(super) type RouteResult = Result<HttpResponse, ApiError>;

/// Largest body of `POST /topics`; a topic name is at most 255 bytes.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// `POST /topics {"name": ...}`.
pub(super) async fn create_topic(
    state: &State,
    caller: &Caller,
    req: Request<Incoming>,
) -> RouteResult {
    json_content_type(&req)?;
    let mut body = read_body(req, SMALL_BODY_LIMIT).await?.to_vec();
    let value = parse_object(&mut body)?;
    let name = match value.get("name") {
        None => return Err(ApiError::bad_request("missing field `name`")),
        Some(v) => v
            .as_str()
            .ok_or_else(|| ApiError::bad_request("`name` must be a string"))?,
    };
    let name = TopicName::parse(name)?;
    state.node.create_topic(caller, &name).await?;
    Ok(json(
        StatusCode::CREATED,
        json!({"status": "created", "topic": name.as_str()}).to_string(),
    ))
}

/// `GET /topics`.
pub(super) fn list_topics(state: &State, caller: &Caller) -> RouteResult {
    let topics: Vec<_> = state
        .node
        .topics(caller)?
        .into_iter()
        .map(|t| json!({"name": t.name, "subscribers": t.subscribers, "messages": t.messages}))
        .collect();
    Ok(json(
        StatusCode::OK,
        json!({ "topics": topics }).to_string(),
    ))
}

/// `GET /topics/{name}`.
pub(super) fn get_topic(state: &State, caller: &Caller, name: &str) -> RouteResult {
    let topic = state.node.topic(caller, &TopicName::parse(name)?)?;
    Ok(json(
        StatusCode::OK,
        json!({
            "name": topic.name,
            "subscribers": topic.subscribers,
            "messages": topic.messages,
            "seq": topic.seq,
            "epoch": topic.epoch,
            "created_at": topic.created_at,
        })
        .to_string(),
    ))
}

/// `DELETE /topics/{name}`.
pub(super) async fn delete_topic(state: &State, caller: &Caller, name: &str) -> RouteResult {
    let name = TopicName::parse(name)?;
    state.node.delete_topic(caller, &name).await?;
    Ok(json(
        StatusCode::OK,
        json!({"status": "deleted", "topic": name.as_str()}).to_string(),
    ))
}

/// `GET /topics/{name}/presence`: who is on the topic (cluster-wide in cluster mode).
pub(super) fn presence(state: &State, caller: &Caller, name: &str) -> RouteResult {
    let name = TopicName::parse(name)?;
    let list = state.node.presence(caller, &name)?;
    let body = crate::protocol::presence::presence_body(&name, &list);
    Ok(json(StatusCode::OK, body))
}

/// `GET /topics/{name}/history?last_n=N`: stored events oldest first (all of them without N).
pub(super) fn history(
    state: &State,
    caller: &Caller,
    name: &str,
    query: Option<&str>,
) -> RouteResult {
    let name = TopicName::parse(name)?;
    let last_n = match query_param(query, "last_n") {
        None => None,
        Some(text) => Some(
            text.parse::<u64>()
                .map_err(|_| ApiError::bad_request("`last_n` must be a non-negative integer"))?
                as usize,
        ),
    };
    let events = state.node.history(caller, &name, last_n)?;
    let mut body = String::with_capacity(64 + events.iter().map(|e| e.frame.len()).sum::<usize>());
    let _ = write!(body, r#"{{"topic":"{name}","messages":["#);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"id":{},"payload":{},"seq":{},"ts":"{}"}}"#,
            event.id_json(),
            event.payload_json(),
            event.seq,
            event.ts()
        );
    }
    body.push_str("]}");
    Ok(json(StatusCode::OK, body))
}

fn published(topic: &TopicName, p: &Published) -> HttpResponse {
    json(
        StatusCode::OK,
        format!(
            r#"{{"status":"published","topic":"{}","id":{},"seq":{}}}"#,
            topic, p.id_json, p.seq
        ),
    )
}

/// `POST /publish` with `{"topic","data"}` or `{"topic","message":{"id"?,"payload"}}`.
pub(super) async fn publish(state: &State, caller: &Caller, req: Request<Incoming>) -> RouteResult {
    let limit = state.config.max_message_bytes + FRAME_ENVELOPE_BYTES;
    json_content_type(&req)?;
    let mut body = read_body(req, limit).await?.to_vec();
    let value = parse_object(&mut body)?;
    let request = decode_publish(&value)?;
    let p = state
        .node
        .publish(
            caller,
            &request.topic,
            request.message_id,
            Payload::Value(request.payload),
        )
        .await?;
    Ok(published(&request.topic, &p))
}

/// `POST /pub/{topic}` (seed a, PROTOCOL.md §2): the raw body is the payload, as JSON when it parses, else as a
/// JSON string.
pub(super) async fn publish_raw(
    state: &State,
    caller: &Caller,
    topic: &str,
    req: Request<Incoming>,
) -> RouteResult {
    let limit = state.config.max_message_bytes + FRAME_ENVELOPE_BYTES;
    let topic = TopicName::parse(topic)?;
    let body = read_body(req, limit).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let mut scratch = body.to_vec();
    let p = match with_parse_buffers(&mut scratch) {
        Ok(value) => {
            state
                .node
                .publish(caller, &topic, None, Payload::Value(&value))
                .await?
        }
        Err(_) => {
            state
                .node
                .publish(caller, &topic, None, Payload::Text(text))
                .await?
        }
    };
    Ok(published(&topic, &p))
}

/// `GET /health`.
pub(super) fn health(state: &State, caller: &Caller) -> RouteResult {
    let stats = state.node.stats(caller)?;
    let mut body = json!({
        "status": "ok",
        "uptime_sec": stats.uptime_secs,
        "topics": stats.topics.len(),
        "subscribers": stats.subscribers,
        "connections": stats.totals.connections,
    });
    add_nodes(&mut body, &stats);
    Ok(json(StatusCode::OK, body.to_string()))
}

/// `GET /stats`.
pub(super) fn stats(state: &State, caller: &Caller) -> RouteResult {
    let stats = state.node.stats(caller)?;
    let per_topic: serde_json::Map<String, serde_json::Value> = stats
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                json!({"messages": t.messages, "subscribers": t.subscribers, "dropped": t.dropped}),
            )
        })
        .collect();
    let mut body = json!({
        "topics": per_topic,
        "subscribers": stats.subscribers,
        "pattern_subscriptions": stats.pattern_subscriptions,
        "connections": stats.totals.connections,
        "dropped": stats.totals.dropped,
        "slow_consumer_disconnects": stats.totals.slow_consumer_disconnects,
        "uptime_sec": stats.uptime_secs,
    });
    add_nodes(&mut body, &stats);
    Ok(json(StatusCode::OK, body.to_string()))
}

/// Cluster mode: how many nodes the counts were summed over.
fn add_nodes(body: &mut serde_json::Value, stats: &NodeStats) {
    if let Some(nodes) = stats.nodes {
        body["nodes"] = nodes.into();
    }
}

/// `GET /metrics`: the OpenMetrics text exposition (names in `crate::metrics`).
pub(super) fn metrics(state: &State, caller: &Caller) -> RouteResult {
    let stats = state.node.stats(caller)?;
    let readings = Readings {
        connections: state.node.session_count(),
        topics: stats.topics.len(),
        subscriptions: stats.subscribers,
        pattern_subscriptions: stats.pattern_subscriptions,
        events: state.node.event_counts(),
        // This node's own count: Prometheus sums the nodes it scrapes.
        slow_consumer_disconnects: state.node.local_counts().slow_consumer_disconnects,
        topics_expired: state.node.topics_expired(),
        gaps: state.node.gaps(),
        presence_notices: state.node.presence_notices(),
        backplane_up: state.node.is_ready(),
        stream_leader: state.node.has_stream_leader(),
        publish_latency: state.node.publish_latency(),
        uptime_secs: stats.uptime_secs,
        tokens: state.node.gate().counts(),
    };
    Ok(typed(
        StatusCode::OK,
        state.metrics.render(readings),
        crate::metrics::CONTENT_TYPE,
    ))
}
