//! [`AuthError`]: why a token was refused, in words a client can act on, never with the token.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Algorithm;

use crate::error::{ApiError, ErrorCode};

/// Longest token accepted, in bytes; longer ones are refused unparsed, which bounds the work a
/// flood of bad tokens can cause.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Why a token was refused. The message says why and never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Longer than [`MAX_TOKEN_BYTES`]; not parsed.
    #[error("token longer than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    /// Not a JWT (parts, base64url, JSON).
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is `none`, unknown, or not enabled by the configured keys.
    #[error("token algorithm {0} not accepted")]
    AlgorithmNotAccepted(String),
    /// The signature does not verify with the configured key.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` + leeway is in the past.
    #[error("token expired")]
    Expired,
    /// `nbf` - leeway is in the future.
    #[error("token not valid yet (nbf)")]
    NotYetValid,
    /// `iss` differs from `JWT_ISSUER`.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` does not contain `JWT_AUDIENCE`.
    #[error("wrong token audience")]
    WrongAudience,
    /// A required claim (`exp`, `sub`, `iss` or `aud` when configured) is absent or, for `exp`,
    /// not a number.
    #[error("token has no valid `{0}` claim")]
    MissingClaim(String),
    /// A claim has the wrong type or an invalid pattern.
    #[error("bad token claim: {0}")]
    BadClaim(String),
}

impl AuthError {
    /// The `UNAUTHORIZED` answer (HTTP 401, or an error frame) carrying this reason.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::new(ErrorCode::Unauthorized, self.to_string())
    }
}

/// The library's reason, as herald's.
pub(super) fn refusal(kind: &ErrorKind, alg: Algorithm) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) => {
            AuthError::BadSignature
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            AuthError::AlgorithmNotAccepted(format!("{alg:?}"))
        }
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidClaimFormat(claim) => {
            AuthError::BadClaim(format!("`{claim}` must be a NumericDate (Unix seconds)"))
        }
        ErrorKind::Base64(_) => AuthError::Malformed("not base64url"),
        ErrorKind::Utf8(_) => AuthError::Malformed("not UTF-8"),
        ErrorKind::Json(_) => AuthError::Malformed("header or claims are not the expected JSON"),
        _ => AuthError::Malformed("cannot be verified"),
    }
}
