//! The wire error codes of PROTOCOL.md and their HTTP status, in one place.

use http::StatusCode;

/// A stable error code, sent in `error` frames and in REST error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not JSON, not an object, unknown type, missing or invalid field, invalid topic name.
    BadRequest,
    /// The topic does not exist and auto-create is off.
    TopicNotFound,
    /// Over `MAX_PUBLISH_RATE` for that topic.
    RateLimited,
    /// The message exceeds `MAX_MESSAGE_BYTES`.
    PayloadTooLarge,
    /// Missing or wrong API key, or a token that is invalid (the message says why).
    Unauthorized,
    /// The connection's outbound queue overflowed under policy `disconnect`.
    SlowConsumer,
    /// A bug or a failed backplane call.
    Internal,
    /// `POST /topics` for a topic that exists.
    Conflict,
    /// Unknown REST route.
    NotFound,
    /// Known route, wrong method.
    MethodNotAllowed,
    /// A request body that is not JSON (extension).
    UnsupportedMediaType,
    /// `MAX_TOPICS` or the per-connection subscription cap is reached (extension).
    LimitExceeded,
    /// The server is shutting down or cannot serve right now.
    Unavailable,
    /// A browser origin not in `ALLOWED_ORIGINS` (extension), or valid credentials that lack
    /// the right for the operation.
    Forbidden,
    /// The connection's token expired (past `exp` + leeway) without a refresh.
    TokenExpired,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BAD_REQUEST",
            Self::TopicNotFound => "TOPIC_NOT_FOUND",
            Self::RateLimited => "RATE_LIMITED",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::SlowConsumer => "SLOW_CONSUMER",
            Self::Internal => "INTERNAL",
            Self::Conflict => "CONFLICT",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Forbidden => "FORBIDDEN",
            Self::TokenExpired => "TOKEN_EXPIRED",
        }
    }

    /// The HTTP status a REST response carries for this code.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::TopicNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::SlowConsumer => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Conflict => StatusCode::CONFLICT,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::LimitExceeded => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::TokenExpired => StatusCode::UNAUTHORIZED,
        }
    }
}

/// An error answered to a client: a code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ApiError {
    /// The stable wire code.
    pub code: ErrorCode,
    /// What went wrong, for people; never contains secrets.
    pub message: String,
}

impl ApiError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}
