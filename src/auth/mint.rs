//! Minting HS256 tokens from `JWT_SECRET`, for `herald token` (development and tests).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use super::grants::{Rules, RulesText};
use super::refusal::MAX_TOKEN_BYTES;
use super::verify::is_printable_id;
use crate::config::MIN_JWT_SECRET_BYTES;

/// What a minted token says.
#[derive(Debug, Clone, Default)]
pub struct MintClaims {
    /// The identity (`sub`).
    pub sub: String,
    /// Lifetime: `exp` is now + this.
    pub ttl: Duration,
    /// The `herald` claim; left out of the token when empty.
    pub rules: RulesText,
    /// `iss`, when the server checks one.
    pub issuer: Option<String>,
    /// `aud`, when the server checks one.
    pub audience: Option<String>,
}

/// Why no token was minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    /// The secret is shorter than the server accepts.
    #[error("JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes")]
    ShortSecret,
    /// `sub` is one the server would refuse.
    #[error("--sub must be 1 to 256 bytes without control characters")]
    BadSub,
    /// A zero or absurd lifetime.
    #[error("--ttl must be between 1 second and 10 years")]
    BadTtl,
    /// A pattern the server would refuse.
    #[error("{0}")]
    Pattern(String),
    /// The server would refuse a token this long.
    #[error("token would be {0} bytes; the server refuses tokens over {MAX_TOKEN_BYTES}")]
    TooLarge(usize),
    /// The JWT library failed.
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// The token's payload.
#[derive(Serialize)]
struct Payload<'a> {
    /// Identity.
    sub: &'a str,
    /// Issued at, Unix seconds.
    iat: u64,
    /// Expiry, Unix seconds.
    exp: u64,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    /// Rights.
    #[serde(skip_serializing_if = "Option::is_none")]
    herald: Option<&'a RulesText>,
}

/// Longest `--ttl`: a token is a credential, and a decade is already far too long for one.
const MAX_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Mints an HS256 token signed with `secret`; patterns are checked as the server will.
pub fn mint(secret: &str, claims: &MintClaims) -> Result<String, MintError> {
    if secret.len() < MIN_JWT_SECRET_BYTES {
        return Err(MintError::ShortSecret);
    }
    if !is_printable_id(&claims.sub) {
        return Err(MintError::BadSub);
    }
    if claims.ttl.as_secs() == 0 || claims.ttl > MAX_TTL {
        return Err(MintError::BadTtl);
    }
    Rules::parse(&claims.rules).map_err(MintError::Pattern)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let payload = Payload {
        sub: &claims.sub,
        iat: now,
        exp: now + claims.ttl.as_secs(),
        iss: claims.issuer.as_deref(),
        aud: claims.audience.as_deref(),
        herald: (claims.rules != RulesText::default()).then_some(&claims.rules),
    };
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &payload,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| MintError::Signing(e.to_string()))?;
    if token.len() > MAX_TOKEN_BYTES {
        return Err(MintError::TooLarge(token.len()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Auth, Capability};
    use crate::config::{Config, Secret};

    const SECRET: &str = "mint-test-secret-mint-test-secret-0123";

    fn auth() -> Auth {
        let config = {
            let mut config = Config::default();
            config.tokens.jwt_secret = Some(Secret::new(SECRET));
            config.tokens.jwt_issuer = Some("herald-dev".into());
            config
        };
        Auth::from_config(&config).unwrap().unwrap()
    }

    #[test]
    fn minted_token_verifies_with_its_rights() {
        let claims = MintClaims {
            sub: "alice".into(),
            ttl: Duration::from_secs(3600),
            rules: RulesText {
                sub: vec!["chat.*".into()],
                publish: vec!["chat.lobby".into()],
                ..RulesText::default()
            },
            issuer: Some("herald-dev".into()),
            audience: None,
        };
        let token = mint(SECRET, &claims).unwrap();
        let id = auth().verify(&token).unwrap();
        assert_eq!(id.sub, "alice");
        let now = jsonwebtoken::get_current_timestamp();
        assert!((now + 3590..=now + 3600).contains(&id.expires_at));
        assert!(id.grants.allows(Capability::Subscribe, "chat.room"));
        assert!(id.grants.allows(Capability::Publish, "chat.lobby"));
        assert!(!id.grants.allows(Capability::Publish, "chat.room"));
        assert!(!id.grants.is_admin());
    }

    #[test]
    fn refuses_what_the_server_would_refuse() {
        let ok = MintClaims {
            sub: "a".into(),
            ttl: Duration::from_secs(60),
            ..MintClaims::default()
        };
        assert_eq!(mint("short", &ok), Err(MintError::ShortSecret));
        let empty = MintClaims {
            sub: String::new(),
            ..ok.clone()
        };
        assert_eq!(mint(SECRET, &empty), Err(MintError::BadSub));
        let newline = MintClaims {
            sub: "a\nb".into(),
            ..ok.clone()
        };
        assert_eq!(mint(SECRET, &newline), Err(MintError::BadSub));
        let zero = MintClaims {
            ttl: Duration::ZERO,
            ..ok.clone()
        };
        assert_eq!(mint(SECRET, &zero), Err(MintError::BadTtl));
        let bad = MintClaims {
            rules: RulesText {
                publish: vec!["a.>.b".into()],
                ..RulesText::default()
            },
            ..ok.clone()
        };
        let err = mint(SECRET, &bad).unwrap_err().to_string();
        assert!(err.contains("pub[0] `a.>.b`"), "{err}");
        let huge = MintClaims {
            rules: RulesText {
                sub: (0..1000).map(|i| format!("topic.{i}")).collect(),
                ..RulesText::default()
            },
            ..ok
        };
        assert!(matches!(mint(SECRET, &huge), Err(MintError::TooLarge(n)) if n > MAX_TOKEN_BYTES));
    }
}
