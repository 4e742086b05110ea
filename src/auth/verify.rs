//! [`Auth`]: verifies a JWT and turns it into an [`Identity`] with its compiled [`Grants`].
//!
//! Only the configured key families are accepted: HS256/384/512 with `JWT_SECRET`, RS256/384/512
//! or ES256/ES384 with `JWT_PUBLIC_KEY` (the EC curve picks which). The algorithm is read from the
//! header first and picks the key, so an HS token is never checked against the public key (the
//! classic "HS256 signed with the RSA public key" confusion) and `alg: none` never reaches the
//! library. `kid`, `jku` and `x5u` are ignored: nothing is ever fetched. A token longer than
//! [`MAX_TOKEN_BYTES`] is refused before it is parsed, which bounds the work a flood of bad tokens
//! can cause.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::grants::{Grants, Rules, RulesText};
use super::keys::Key;
use super::permissions::Permissions;
use super::refusal::{refusal, AuthError, MAX_TOKEN_BYTES};
use crate::config::Config;

/// Who a valid token says the client is, and what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The `sub` claim: shown as `client_id`; a refresh must keep it.
    pub sub: String,
    /// The `exp` claim, Unix seconds (leeway not added).
    pub expires_at: u64,
    /// The token's claim ∪ `[authenticated]` ∪ `[anonymous]`, `{sub}` replaced.
    pub grants: Arc<Grants>,
}

/// Verification outcomes so far, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCounts {
    /// Tokens accepted.
    pub verified: u64,
    /// Tokens refused, for any reason.
    pub failed: u64,
}

/// Token verification and default rights, built once from the configuration.
pub struct Auth {
    /// From `JWT_SECRET`.
    hmac: Option<Key>,
    /// From `JWT_PUBLIC_KEY`.
    public: Option<Key>,
    /// `PERMISSIONS_FILE`, or nothing.
    permissions: Permissions,
    /// Rights of a connection without credentials.
    anonymous: Arc<Grants>,
    /// Rights of every token without a `herald` claim, when no default uses `{sub}`: shared by
    /// all such tokens instead of compiled per token.
    shared: Option<Arc<Grants>>,
    /// `JWT_LEEWAY_SECS`.
    leeway: u64,
    /// Tokens accepted.
    verified: AtomicU64,
    /// Tokens refused.
    failed: AtomicU64,
}

impl fmt::Debug for Auth {
    // Hand-written so no key material can be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("algorithms", &self.algorithms())
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Builds the verifier: `None` when neither `JWT_SECRET` nor `JWT_PUBLIC_KEY` is set (token
    /// auth off). Reads `JWT_PUBLIC_KEY` and `PERMISSIONS_FILE`; errors name the file and the
    /// problem.
    pub fn from_config(config: &Config) -> Result<Option<Self>, String> {
        if config.tokens.jwt_secret.is_none() && config.tokens.jwt_public_key.is_none() {
            return Ok(None);
        }
        // Only `rust_crypto` is enabled, which the library picks by itself; installing it makes
        // that independent of features another crate might switch on. An error only means it is
        // already installed.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
        let hmac = config
            .tokens
            .jwt_secret
            .as_ref()
            .map(|s| Key::hmac(s.expose(), config));
        let public = match &config.tokens.jwt_public_key {
            Some(path) => Some(Key::public(path, config)?),
            None => None,
        };
        let permissions = match &config.tokens.permissions_file {
            Some(path) => Permissions::load(path)?,
            None => Permissions::default(),
        };
        let anonymous = Arc::new(Grants::compile(None, &[&permissions.anonymous]));
        let shared = (!permissions.authenticated.uses_sub() && !permissions.anonymous.uses_sub())
            .then(|| {
                Arc::new(Grants::compile(
                    None,
                    &[&permissions.authenticated, &permissions.anonymous],
                ))
            });
        Ok(Some(Self {
            hmac,
            public,
            permissions,
            anonymous,
            shared,
            leeway: config.tokens.jwt_leeway.as_secs(),
            verified: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }))
    }

    /// Verifies `token` (the bare JWT, no `Bearer `) and computes its rights.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let result = self.check(token);
        let counter = if result.is_ok() {
            &self.verified
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }

    /// Rights of a connection without credentials (`[anonymous]`; nothing without a file).
    pub fn anonymous(&self) -> Arc<Grants> {
        Arc::clone(&self.anonymous)
    }

    /// Tokens accepted and refused so far.
    pub fn counts(&self) -> AuthCounts {
        AuthCounts {
            verified: self.verified.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// `JWT_LEEWAY_SECS`: a connection is closed at `expires_at` + this.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway
    }

    /// The accepted algorithms, e.g. `["HS256", "HS384", "HS512", "ES256"]`, for the start-up log.
    pub fn algorithms(&self) -> Vec<String> {
        [&self.hmac, &self.public]
            .into_iter()
            .flatten()
            .flat_map(|k| k.algorithms().map(|alg| format!("{alg:?}")))
            .collect()
    }

    /// [`Auth::verify`] without the counting.
    fn check(&self, token: &str) -> Result<Identity, AuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TooLarge);
        }
        let alg = peek_algorithm(token)?;
        let (key, validation) = [&self.hmac, &self.public]
            .into_iter()
            .flatten()
            .find_map(|k| k.accepting(alg))
            .ok_or_else(|| AuthError::AlgorithmNotAccepted(format!("{alg:?}")))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
            .map_err(|e| refusal(e.kind(), alg))?
            .claims;
        let sub = match claims.sub {
            Some(Value::String(sub)) if is_printable_id(&sub) => sub,
            None => return Err(AuthError::MissingClaim("sub".into())),
            Some(_) => return Err(AuthError::BadClaim(BAD_SUB.into())),
        };
        // The library has already required `exp` and checked that it is a number.
        let expires_at = claims
            .exp
            .as_ref()
            .and_then(seconds)
            .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        let own = match claims.herald {
            None => None,
            Some(value) => {
                let text: RulesText = serde_json::from_value(value)
                    .map_err(|e| AuthError::BadClaim(format!("`herald`: {e}")))?;
                let rules =
                    Rules::parse(&text).map_err(|e| AuthError::BadClaim(format!("herald.{e}")))?;
                Some(rules)
            }
        };
        Ok(Identity {
            grants: self.grants(&sub, own.as_ref()),
            sub,
            expires_at,
        })
    }

    /// The token's own rules ∪ `[authenticated]` ∪ `[anonymous]` for `sub`.
    fn grants(&self, sub: &str, own: Option<&Rules>) -> Arc<Grants> {
        let p = &self.permissions;
        match (own, &self.shared) {
            (None, Some(shared)) => Arc::clone(shared),
            (None, None) => Arc::new(Grants::compile(
                Some(sub),
                &[&p.authenticated, &p.anonymous],
            )),
            (Some(own), _) => Arc::new(Grants::compile(
                Some(sub),
                &[own, &p.authenticated, &p.anonymous],
            )),
        }
    }
}

/// Longest `sub`, in bytes: it is logged and shown as `client_id`, so it stays a readable size.
pub const MAX_SUB_BYTES: usize = 256;

/// The refusal of a `sub` that [`is_printable_id`] rejects.
const BAD_SUB: &str = "`sub` must be a string of 1 to 256 bytes without control characters";

/// Whether `sub` can be logged and displayed as is: non-empty, bounded, no control characters
/// (a newline in it could forge a log line).
pub(super) fn is_printable_id(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= MAX_SUB_BYTES && !sub.chars().any(char::is_control)
}

/// The claims herald reads, as loose JSON values so that a wrong type gets herald's own message
/// rather than serde's, and `iss`/`aud`/`nbf` are left to the library.
#[derive(Deserialize)]
struct Claims {
    /// The identity.
    #[serde(default)]
    sub: Option<Value>,
    /// Expiry, Unix seconds (integer or float, as the library accepts).
    #[serde(default)]
    exp: Option<Value>,
    /// The rights claim ([`RulesText`]).
    #[serde(default)]
    herald: Option<Value>,
}

/// A NumericDate as whole seconds, rounded like the library does.
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f.round() as u64)
    })
}

/// Reads the header's `alg` before anything is verified, so that it can pick the key and `none`
/// or an unknown name gets its own answer.
fn peek_algorithm(token: &str) -> Result<Algorithm, AuthError> {
    /// The header fields looked at.
    #[derive(Deserialize)]
    struct Header {
        /// The signing algorithm.
        alg: Option<String>,
        /// Critical extensions (RFC 7515 4.1.11): none is understood, so any is refused.
        crit: Option<IgnoredAny>,
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not three `.`-separated parts"));
    };
    let json = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| AuthError::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&json)
        .map_err(|_| AuthError::Malformed("header is not a JSON object with a string `alg`"))?;
    if header.crit.is_some() {
        return Err(AuthError::Malformed("`crit` header is not supported"));
    }
    let alg = header
        .alg
        .ok_or(AuthError::Malformed("header has no `alg`"))?;
    Algorithm::from_str(&alg).map_err(|_| {
        // Only a fixed word is echoed, never header text.
        let shown = if alg.eq_ignore_ascii_case("none") {
            "none"
        } else {
            "(unknown)"
        };
        AuthError::AlgorithmNotAccepted(shown.into())
    })
}

#[cfg(test)]
#[path = "verify_tests/mod.rs"]
mod tests;
