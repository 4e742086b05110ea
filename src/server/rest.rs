//! The REST routes of PROTOCOL.md §2–§3. Each answers with the documented body or the JSON error
//! body; request bodies are size-limited and their content type checked before parsing.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::json;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use super::http::{error, json, query_param, HttpResponse};
use super::{State, FRAME_ENVELOPE_BYTES};
use crate::broker::{Payload, Published, TopicName};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Readings;
use crate::protocol::{self, Kind};

/// Largest body of `POST /topics`; a topic name is at most 255 bytes.
const SMALL_BODY_LIMIT: usize = 64 * 1024;

/// Whether a JSON route accepts this `Content-Type`. A missing type, `text/plain` and the form
/// type are accepted because `curl -d` and `fetch` send them for JSON bodies.
fn json_content_type<B>(req: &Request<B>) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let ok = mime.is_empty()
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "text/plain"
        || mime == "application/x-www-form-urlencoded";
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content type `{mime}` is not accepted; send application/json"),
        ))
    }
}

/// Reads the whole body, refusing more than `limit` bytes with `PAYLOAD_TOO_LARGE`.
async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body over the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Err(_) => Err(ApiError::bad_request("could not read the request body")),
    }
}

thread_local! {
    /// simd-json's working buffers, kept per worker thread so a request body is parsed without
    /// allocating them anew (the WebSocket reader keeps its own per connection).
    static PARSE_BUFFERS: RefCell<simd_json::Buffers> = RefCell::new(simd_json::Buffers::default());
}

/// Parses a JSON object body, or explains why it is not one.
fn parse_object(body: &mut [u8]) -> Result<BorrowedValue<'_>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let value = PARSE_BUFFERS
        .with_borrow_mut(|buffers| simd_json::to_borrowed_value_with_buffers(body, buffers))
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if value.as_object().is_none() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

/// `POST /topics {"name": ...}`.
pub(super) async fn create_topic(state: &State, req: Request<Incoming>) -> HttpResponse {
    let result = async {
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
        state.backplane.create_topic(&state.broker, &name).await?;
        Ok(name)
    }
    .await;
    match result {
        Ok(name) => json(
            StatusCode::CREATED,
            json!({"status": "created", "topic": name.as_str()}).to_string(),
        ),
        Err(e) => error(&e),
    }
}

/// `GET /topics`.
pub(super) fn list_topics(state: &State) -> HttpResponse {
    let topics: Vec<_> = state
        .backplane
        .topics(&state.broker)
        .into_iter()
        .map(|t| json!({"name": t.name, "subscribers": t.subscribers, "messages": t.messages}))
        .collect();
    json(StatusCode::OK, json!({ "topics": topics }).to_string())
}

fn existing(state: &State, name: &str) -> Result<Arc<crate::broker::Topic>, ApiError> {
    let name = TopicName::parse(name)?;
    state.broker.get(name.as_str()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic `{name}` does not exist"),
        )
    })
}

/// `GET /topics/{name}`.
pub(super) fn get_topic(state: &State, name: &str) -> HttpResponse {
    match existing(state, name) {
        Ok(topic) => json(StatusCode::OK, {
            let (subscribers, messages) = state.backplane.topic_counts(&topic);
            json!({
                "name": topic.name().as_str(),
                "subscribers": subscribers,
                "messages": messages,
                "seq": topic.seq(),
                "epoch": topic.epoch(),
                "created_at": topic.created_at(),
            })
            .to_string()
        }),
        Err(e) => error(&e),
    }
}

/// `DELETE /topics/{name}`.
pub(super) async fn delete_topic(state: &State, name: &str) -> HttpResponse {
    let result = match TopicName::parse(name) {
        Ok(n) => state
            .backplane
            .delete_topic(&state.broker, &n)
            .await
            .map(|_| n),
        Err(e) => Err(e),
    };
    match result {
        Ok(name) => json(
            StatusCode::OK,
            json!({"status": "deleted", "topic": name.as_str()}).to_string(),
        ),
        Err(e) => error(&e),
    }
}

/// `GET /topics/{name}/history?last_n=N`: stored events oldest first (all of them without N).
pub(super) fn history(state: &State, name: &str, query: Option<&str>) -> HttpResponse {
    let result = (|| {
        let topic = existing(state, name)?;
        let n = match query_param(query, "last_n") {
            None => topic.history(usize::MAX).len(),
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("`last_n` must be a non-negative integer"))?
                as usize,
        };
        Ok((topic.clone(), topic.history(n)))
    })();
    let (topic, events) = match result {
        Ok(found) => found,
        Err(e) => return error(&e),
    };
    let mut body = String::with_capacity(64 + events.iter().map(|e| e.frame.len()).sum::<usize>());
    let _ = write!(body, r#"{{"topic":"{}","messages":["#, topic.name());
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
    json(StatusCode::OK, body)
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
pub(super) async fn publish(state: &State, req: Request<Incoming>) -> HttpResponse {
    let limit = state.config.max_message_bytes + FRAME_ENVELOPE_BYTES;
    let result = async {
        json_content_type(&req)?;
        let mut body = read_body(req, limit).await?.to_vec();
        let mut value = parse_object(&mut body)?;
        // The body is a publish frame without `type`; decoding it as one keeps both paths alike.
        // A REST answer echoes no `request_id`, so any value is ignored rather than checked.
        if let Some(object) = value.as_object_mut() {
            object.insert("type".into(), BorrowedValue::from("publish"));
            object.remove("action");
            object.remove("request_id");
        }
        let frame = protocol::decode(&value).map_err(|e| e.error)?;
        debug_assert_eq!(frame.kind, Kind::Publish);
        let (Some(topic), Some(payload)) = (frame.topic, frame.payload) else {
            return Err(ApiError::bad_request("publish needs `topic` and a payload"));
        };
        let p = state
            .backplane
            .publish(
                &state.broker,
                &topic,
                frame.message_id,
                Payload::Value(payload),
            )
            .await?;
        Ok(published(&topic, &p))
    }
    .await;
    result.unwrap_or_else(|e| error(&e))
}

/// `POST /pub/{topic}` (seed a): the raw body is the payload, as JSON when it parses, else as a
/// JSON string.
pub(super) async fn publish_raw(
    state: &State,
    topic: &str,
    req: Request<Incoming>,
) -> HttpResponse {
    let limit = state.config.max_message_bytes + FRAME_ENVELOPE_BYTES;
    let result = async {
        let topic = TopicName::parse(topic)?;
        let body = read_body(req, limit).await?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
        let mut scratch = body.to_vec();
        let (b, broker) = (&state.backplane, &state.broker);
        let parsed = PARSE_BUFFERS.with_borrow_mut(|buffers| {
            simd_json::to_borrowed_value_with_buffers(&mut scratch, buffers)
        });
        let p = match parsed {
            Ok(value) => {
                b.publish(broker, &topic, None, Payload::Value(&value))
                    .await?
            }
            Err(_) => b.publish(broker, &topic, None, Payload::Text(text)).await?,
        };
        Ok(published(&topic, &p))
    }
    .await;
    result.unwrap_or_else(|e| error(&e))
}

fn subscriptions(state: &State) -> (Vec<crate::broker::TopicStats>, usize) {
    let topics = state.backplane.topics(&state.broker);
    let total = topics.iter().map(|t| t.subscribers).sum();
    (topics, total)
}

/// `GET /health`.
pub(super) fn health(state: &State) -> HttpResponse {
    let (topics, subscribers) = subscriptions(state);
    let (totals, nodes) = state.backplane.totals(state.node_counts());
    let mut body = json!({
        "status": "ok",
        "uptime_sec": state.broker.uptime_secs(),
        "topics": topics.len(),
        "subscribers": subscribers,
        "connections": totals.connections,
    });
    if state.backplane.is_cluster() {
        body["nodes"] = nodes.into();
    }
    json(StatusCode::OK, body.to_string())
}

/// `GET /stats`.
pub(super) fn stats(state: &State) -> HttpResponse {
    let (topics, subscribers) = subscriptions(state);
    let per_topic: serde_json::Map<String, serde_json::Value> = topics
        .into_iter()
        .map(|t| {
            (
                t.name,
                json!({"messages": t.messages, "subscribers": t.subscribers, "dropped": t.dropped}),
            )
        })
        .collect();
    let (totals, nodes) = state.backplane.totals(state.node_counts());
    let mut body = json!({
        "topics": per_topic,
        "subscribers": subscribers,
        "connections": totals.connections,
        "dropped": totals.dropped,
        "slow_consumer_disconnects": totals.slow_consumer_disconnects,
        "uptime_sec": state.broker.uptime_secs(),
    });
    if state.backplane.is_cluster() {
        body["nodes"] = nodes.into();
    }
    json(StatusCode::OK, body.to_string())
}

/// `GET /metrics`: the OpenMetrics text exposition (names in `crate::metrics`).
pub(super) fn metrics(state: &State) -> HttpResponse {
    let (topics, subscriptions) = subscriptions(state);
    let readings = Readings {
        connections: state.session_count(),
        topics: topics.len(),
        subscriptions,
        events: state.broker.event_counts(),
        slow_consumer_disconnects: state.slow_consumer_disconnects.load(Ordering::Relaxed),
        backplane_up: state.backplane.is_ready(),
        publish_latency: state.broker.publish_latency(),
        uptime_secs: state.broker.uptime_secs(),
    };
    let mut response = json(StatusCode::OK, state.metrics.render(readings));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}
