//! The JSON responses every route answers with, errors included (PROTOCOL.md §3).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::error::ApiError;
use crate::protocol::server::write_json_str;

/// The response type of every route.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// A JSON response. Bodies end with a newline, as a text document does, so `curl` output does
/// not run into the shell prompt; JSON parsers ignore trailing whitespace.
pub(crate) fn json(status: StatusCode, mut body: String) -> HttpResponse {
    body.push('\n');
    typed(status, body, "application/json")
}

/// A response with `body` as it is, of `content_type`.
pub(crate) fn typed(status: StatusCode, body: String, content_type: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The error body of PROTOCOL.md §3 with the code's status.
pub(crate) fn error(err: &ApiError) -> HttpResponse {
    let mut body = Vec::with_capacity(64 + err.message.len());
    body.extend_from_slice(br#"{"error":{"code":""#);
    body.extend_from_slice(err.code.as_str().as_bytes());
    body.extend_from_slice(br#"","message":"#);
    write_json_str(&mut body, &err.message);
    body.extend_from_slice(b"}}\n");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = err.code.status();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A permanent redirect (308 keeps the method) to `location`, which may be relative.
pub(crate) fn redirect(location: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}
