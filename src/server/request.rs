//! Reading requests: query parameters, path segments, size-limited bodies and JSON objects, with
//! the error a client gets for each way they can be wrong.

use std::cell::RefCell;

use bytes::Bytes;
use http::header;
use http::Request;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::error::{ApiError, ErrorCode};
use crate::node::Credentials;
use crate::protocol::json_error;

/// Whether a JSON route accepts this `Content-Type`. A missing type, `text/plain` and the form
/// type are accepted because `curl -d` and `fetch` send them for JSON bodies.
pub(super) fn json_content_type<B>(req: &Request<B>) -> Result<(), ApiError> {
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
pub(super) async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
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
pub(super) fn parse_object(body: &mut [u8]) -> Result<BorrowedValue<'_>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let value = with_parse_buffers(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: {}",
            json_error::describe(&e)
        ))
    })?;
    if value.as_object().is_none() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    Ok(value)
}

/// The first value of `key` in a query string, percent-decoded.
pub(super) fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// Decodes `%xx` in a path segment (names are validated afterwards).
pub(super) fn percent_decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses JSON in place with this thread's simd-json buffers.
pub(super) fn with_parse_buffers(body: &mut [u8]) -> simd_json::Result<BorrowedValue<'_>> {
    PARSE_BUFFERS
        .with_borrow_mut(|buffers| simd_json::to_borrowed_value_with_buffers(body, buffers))
}

/// Calls `f` with every credential the request carries (PROTOCOL.md §4): `X-API-Key`,
/// `Authorization: Bearer`, `?api_key=`, and on WebSocket routes `?token=` (browsers cannot set
/// headers on an upgrade).
pub(super) fn with_credentials<B, T>(
    req: &Request<B>,
    websocket: bool,
    f: impl FnOnce(&[Credentials<'_>]) -> T,
) -> T {
    let headers = req.headers();
    let header_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let query_key = query_param(req.uri().query(), "api_key");
    let query_token = websocket
        .then(|| query_param(req.uri().query(), "token"))
        .flatten();
    // On the stack: this runs for every request.
    let mut presented = [Credentials::Key(""); 4];
    let mut n = 0;
    for found in [
        header_key.map(Credentials::Key),
        bearer.map(Credentials::Bearer),
        query_key.as_deref().map(Credentials::Key),
        query_token.as_deref().map(Credentials::Token),
    ]
    .into_iter()
    .flatten()
    {
        presented[n] = found;
        n += 1;
    }
    f(&presented[..n])
}
