//! The auth settings (PROTOCOL.md §4): the token flags, their checks, the redacted secret, how the
//! start-up line shows auth (never a secret), and the warning an empty `API_KEY` gets.

use std::fmt;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::ConfigError;

/// Which ways of authenticating the server accepts, as the start-up line shows them: `none`,
/// `api_key`, `tokens` or `api_key+tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthSummary {
    /// `API_KEY` is set: the shared key opens every route.
    pub api_key: bool,
    /// Signed bearer tokens are accepted.
    pub tokens: bool,
}

impl fmt::Display for AuthSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.api_key, self.tokens) {
            (false, false) => "none",
            (true, false) => "api_key",
            (false, true) => "tokens",
            (true, true) => "api_key+tokens",
        })
    }
}

/// A secret setting (`JWT_SECRET`): its `Debug` output is redacted so it never reaches logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(super) String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Shortest `JWT_SECRET`: RFC 7518 3.2 asks for a key as long as the hash (HS256: 32 bytes).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// Upper bound of `JWT_LEEWAY_SECS`: an hour of clock skew is already far beyond any real clock.
pub const MAX_JWT_LEEWAY_SECS: u64 = 3600;

/// The token settings of `herald` / `herald serve` (flattened into the server's flags).
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// HMAC secret (32+ bytes) of HS256/HS384/HS512 tokens; enables token auth.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM RSA or EC public key file of RS256/384/512 or ES256/384 tokens; enables token auth.
    #[arg(long, env = "JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Required `iss` claim of tokens.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim of tokens.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    #[arg(long, env = "JWT_LEEWAY_SECS", default_value_t = 5)]
    pub jwt_leeway_secs: u64,
    /// TOML file of default rights: `[anonymous]` and `[authenticated]`.
    #[arg(long, env = "PERMISSIONS_FILE")]
    pub permissions_file: Option<PathBuf>,
    /// Seconds a connection with no rights has to authenticate.
    #[arg(long, env = "AUTH_TIMEOUT_SECS", default_value_t = 10)]
    pub auth_timeout_secs: u64,
    /// Seconds before a token's `exp` that its connection is told to refresh.
    #[arg(long, env = "TOKEN_REFRESH_WINDOW_SECS", default_value_t = 30)]
    pub token_refresh_window_secs: u64,
}

/// Auth settings that are valid but probably not what was meant (an empty `API_KEY`).
pub(super) fn warnings(api_key: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    if api_key.is_some_and(str::is_empty) {
        warnings.push(
            "API_KEY is set but empty, so authentication is off: every client may publish, \
                 subscribe and delete topics (unset it to silence this, or give it a value)"
                .into(),
        );
    }
    warnings
}

/// The token settings (PROTOCOL.md §4), validated.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// HMAC secret of HS256/HS384/HS512 tokens (JWT_SECRET); redacted in `Debug`.
    pub jwt_secret: Option<Secret>,
    /// PEM RSA or EC public key file of RS256/384/512 or ES256/384 tokens (JWT_PUBLIC_KEY).
    pub jwt_public_key: Option<PathBuf>,
    /// Required `iss` of every token, when set (JWT_ISSUER).
    pub jwt_issuer: Option<String>,
    /// Required `aud` of every token, when set (JWT_AUDIENCE).
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf` (JWT_LEEWAY_SECS).
    pub jwt_leeway: Duration,
    /// TOML defaults for anonymous and authenticated connections (PERMISSIONS_FILE).
    pub permissions_file: Option<PathBuf>,
    /// A connection with no rights must authenticate within this (AUTH_TIMEOUT_SECS).
    pub auth_timeout: Duration,
    /// How long before `exp` a connection is told to refresh (TOKEN_REFRESH_WINDOW_SECS).
    pub token_refresh_window: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway: Duration::from_secs(5),
            permissions_file: None,
            auth_timeout: Duration::from_secs(10),
            token_refresh_window: Duration::from_secs(30),
        }
    }
}

impl TokenSettings {
    /// Whether tokens are accepted (a key is set).
    pub fn is_on(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key.is_some()
    }
}

impl TokenSettings {
    /// The token auth settings (issue 15): they need a key, and the leeway is bounded because a
    /// large one would keep expired tokens valid (and overflow the `now - leeway` arithmetic).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let keyed = self.is_on();
        let needs_key = [
            ("JWT_ISSUER", self.jwt_issuer.is_some()),
            ("JWT_AUDIENCE", self.jwt_audience.is_some()),
            ("PERMISSIONS_FILE", self.permissions_file.is_some()),
        ];
        if let Some((name, _)) = needs_key.iter().find(|(_, set)| *set && !keyed) {
            return Err(ConfigError(format!(
                "{name} needs JWT_SECRET or JWT_PUBLIC_KEY (token auth is off without a key)"
            )));
        }
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.0.len() < MIN_JWT_SECRET_BYTES)
        {
            return Err(ConfigError(format!(
                "JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes (RFC 7518 3.2)"
            )));
        }
        if self.jwt_leeway > Duration::from_secs(MAX_JWT_LEEWAY_SECS) {
            return Err(ConfigError(format!(
                "JWT_LEEWAY_SECS must be at most {MAX_JWT_LEEWAY_SECS}"
            )));
        }
        if self.auth_timeout.is_zero() {
            return Err(ConfigError("AUTH_TIMEOUT_SECS must be at least 1".into()));
        }
        Ok(())
    }
}

impl AuthArgs {
    /// The settings these flags give; empty values count as unset.
    pub(super) fn into_settings(self) -> TokenSettings {
        let nonempty = |p: Option<PathBuf>| p.filter(|p| !p.as_os_str().is_empty());
        TokenSettings {
            jwt_secret: self.jwt_secret.filter(|s| !s.is_empty()).map(Secret),
            jwt_public_key: nonempty(self.jwt_public_key),
            jwt_issuer: self.jwt_issuer.filter(|s| !s.is_empty()),
            jwt_audience: self.jwt_audience.filter(|s| !s.is_empty()),
            jwt_leeway: Duration::from_secs(self.jwt_leeway_secs),
            permissions_file: nonempty(self.permissions_file),
            auth_timeout: Duration::from_secs(self.auth_timeout_secs),
            token_refresh_window: Duration::from_secs(self.token_refresh_window_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_settings_are_checked_and_the_secret_redacted() {
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        let keyed = TokenSettings {
            jwt_secret: Some(Secret::new(secret)),
            jwt_issuer: Some("issuer".into()),
            permissions_file: Some("perms.toml".into()),
            ..TokenSettings::default()
        };
        keyed.validate().unwrap();
        assert!(!format!("{keyed:?}").contains(secret));
        let short = TokenSettings {
            jwt_secret: Some(Secret::new("short")),
            ..TokenSettings::default()
        };
        assert!(short
            .validate()
            .unwrap_err()
            .to_string()
            .contains("32 bytes"));
        for unkeyed in [
            TokenSettings {
                jwt_audience: Some("a".into()),
                ..TokenSettings::default()
            },
            TokenSettings {
                permissions_file: Some("p.toml".into()),
                ..TokenSettings::default()
            },
        ] {
            let err = unkeyed.validate().unwrap_err().to_string();
            assert!(err.contains("needs JWT_SECRET or JWT_PUBLIC_KEY"), "{err}");
        }
        let leeway = TokenSettings {
            jwt_leeway: Duration::from_secs(MAX_JWT_LEEWAY_SECS + 1),
            ..keyed.clone()
        };
        assert!(leeway
            .validate()
            .unwrap_err()
            .to_string()
            .contains("JWT_LEEWAY_SECS"));
        let timeout = TokenSettings {
            auth_timeout: Duration::ZERO,
            ..keyed
        };
        assert!(timeout.validate().is_err());
    }
}
