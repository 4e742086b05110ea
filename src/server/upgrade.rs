//! The WebSocket handshake (RFC 6455 §4.2) over hyper's upgrade: validate, answer 101, and hand
//! the upgraded socket to a session task. Every refusal happens here, before the upgrade, as a
//! JSON error with a 4xx/5xx status.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::{Instrument, Span};

use super::request::query_param;
use super::response::HttpResponse;
use super::{session, State};
use crate::broker::ConnId;
use crate::config::Compression;
use crate::error::{ApiError, ErrorCode};
use crate::node::Caller;
use crate::protocol::client::MAX_CLIENT_ID_BYTES;
use crate::protocol::{deflate, TopicName};

fn header_has_token<B>(req: &Request<B>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// RFC 6455 §4.1: the key is the base64 of 16 random bytes, so 22 base64 characters and `==`.
fn is_valid_key(key: &HeaderValue) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
}

/// Whether `origin` (lowercased `scheme://host[:port]`) is the host the request was sent to: a
/// page this server served, its dashboard, talking back to it. Such a page is never a foreign
/// site, so the allow-list need not name it (the rule of gorilla/websocket's default check). The
/// scheme is not compared: behind a TLS-terminating balancer the page is `https` and the hop
/// to herald plain.
fn is_own_origin(origin: &str, host: Option<&HeaderValue>) -> bool {
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| !authority.is_empty() && authority.eq_ignore_ascii_case(host))
}

/// Answers an upgrade request on `/ws` or `/ws/sub/{topic}` (then `topic` is set).
pub(super) async fn upgrade(
    state: Arc<State>,
    caller: Caller,
    mut req: Request<Incoming>,
    topic: Option<String>,
) -> Result<HttpResponse, ApiError> {
    if state.shutdown.is_cancelled() || state.draining.load(Ordering::Relaxed) {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "server is shutting down",
        ));
    }
    // Browsers send Origin and let any page open a socket to us; the allow-list stops pages of
    // other sites from using a visitor's network position. Non-browser clients send no Origin,
    // and pages this server served (same host) are its own.
    if !state.config.allowed_origins.is_empty() {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin
                .to_str()
                .unwrap_or("")
                .trim_end_matches('/')
                .to_ascii_lowercase();
            if !state.config.allowed_origins.contains(&origin)
                && !is_own_origin(&origin, req.headers().get(header::HOST))
            {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "origin not allowed (ALLOWED_ORIGINS)",
                ));
            }
        }
    }
    // Counted before the upgrade so a connection storm cannot overshoot by much; the session
    // count is the one /health reports.
    if state.node.session_count() >= state.config.max_connections {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!(
                "connection limit reached (MAX_CONNECTIONS = {})",
                state.config.max_connections
            ),
        ));
    }
    let is_upgrade = header_has_token(&req, header::CONNECTION, "upgrade")
        && header_has_token(&req, header::UPGRADE, "websocket");
    let version_ok = req
        .headers()
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Err(ApiError::bad_request(
            "this route expects a WebSocket upgrade (Sec-WebSocket-Key missing)",
        ));
    };
    if !is_valid_key(&key) {
        return Err(ApiError::bad_request(
            "Sec-WebSocket-Key must be the base64 of 16 bytes (RFC 6455 §4.1)",
        ));
    }
    if !is_upgrade || !version_ok {
        return Err(ApiError::bad_request(
            "this route expects a WebSocket upgrade (Upgrade: websocket, version 13)",
        ));
    }
    // Seed a (PROTOCOL.md §2): the socket opens already subscribed, so the topic is checked before upgrading.
    let topic = match topic.as_deref().map(TopicName::parse).transpose() {
        Ok(t) => t,
        Err(e) => return Err(e),
    };
    if let Some(name) = &topic {
        state.node.check_subscribable(&caller, name).await?;
    }
    // A token's `sub` is who the client is; else the name it gave itself (seed a's `?id=`).
    let named = query_param(req.uri().query(), "id")
        .or_else(|| query_param(req.uri().query(), "client_id"))
        .filter(|id| !id.is_empty() && id.len() <= MAX_CLIENT_ID_BYTES);
    let client_id = caller.token().map(|t| t.sub.to_string()).or(named.clone());
    // The connection's span (see `serve_connection`) follows the session into its own task.
    let span = Span::current();
    span.record(
        "route",
        if topic.is_some() {
            "/ws/sub/{topic}"
        } else {
            "/ws"
        },
    );
    if let Some(id) = &client_id {
        span.record("client_id", id.as_str());
    }
    let conn = req
        .extensions()
        .get::<ConnId>()
        .copied()
        .unwrap_or_else(|| state.node.next_conn_id());
    let mut session = session::Session::new(state.clone(), conn, caller, named);
    if let Some(topic) = topic {
        session.subscribe_on_open(topic).await;
    }
    // permessage-deflate (PROTOCOL.md §1): accepted when offered, unless COMPRESSION=off.
    let extensions = match state.config.compression {
        Compression::On => deflate::negotiate(
            req.headers()
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        ),
        Compression::Off => None,
    };
    let deflate = extensions.is_some();
    let on_upgrade = hyper::upgrade::on(&mut req);
    state
        .tracker
        .spawn(session::run(session, on_upgrade, deflate).instrument(span));
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(answer) = extensions.and_then(|a| HeaderValue::from_str(&a).ok()) {
        headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, answer);
    }
    Ok(response)
}
