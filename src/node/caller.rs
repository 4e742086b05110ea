//! Who is asking ([`Caller`]) and how they proved it ([`Credentials`]): decided once per request
//! or connection by [`Gate`], then checked by every operation of the door (PROTOCOL.md §4).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

use crate::auth::{Auth, AuthCounts, Capability, Grants, MAX_TOKEN_BYTES};
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::protocol::{TopicName, TopicPattern};

use super::budget::VerifyBudget;

/// What a request or an upgrade carried, as the transport found it. The door decides what it is
/// worth; a transport never compares a key or reads a token itself.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// `X-API-Key` or `?api_key=`: only the admin key fits.
    Key(&'a str),
    /// `Authorization: Bearer …`: the admin key, or a token.
    Bearer(&'a str),
    /// `?token=` or an `auth` frame: a token only.
    Token(&'a str),
}

/// A verified token's identity, kept for refreshes and expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHolder {
    /// The token's `sub`; a refresh must keep it. Shared: it is the holder's presence identity
    /// in every topic it subscribes to.
    pub sub: Arc<str>,
    /// The token's `exp`, Unix seconds.
    pub expires_at: u64,
}

/// Who is asking and what they may do: the rights are compiled once, when the credentials are
/// checked, so an operation's check is one `Grants::allows`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The rights.
    grants: Arc<Grants>,
    /// Present when the rights came from a token.
    token: Option<TokenHolder>,
    /// Whether any credentials were presented: decides `FORBIDDEN` (yes) or `UNAUTHORIZED` (no).
    credentialed: bool,
}

impl Caller {
    /// Every right (the admin key, or a server with no auth configured), sharing `grants`.
    fn admin(grants: &Arc<Grants>) -> Self {
        Self {
            grants: Arc::clone(grants),
            token: None,
            credentialed: true,
        }
    }

    /// The token's holder, if the rights came from a token.
    pub fn token(&self) -> Option<&TokenHolder> {
        self.token.as_ref()
    }

    /// Whether this caller may do nothing at all yet (a WebSocket holding it must authenticate
    /// within `AUTH_TIMEOUT_SECS`).
    pub fn has_no_rights(&self) -> bool {
        self.grants.is_empty()
    }

    /// `Ok` when `capability` is granted on `topic`.
    pub fn check(&self, capability: Capability, topic: &TopicName) -> Result<(), ApiError> {
        if self.grants.allows(capability, topic.as_str()) {
            return Ok(());
        }
        Err(self.refusal(capability, topic.as_str()))
    }

    /// `Ok` when `capability` is granted on every topic `pattern` matches: one granted pattern
    /// must cover it whole (`user.42.>` covers `user.42.*`; `user.*` does not cover `>`).
    pub fn check_pattern(
        &self,
        capability: Capability,
        pattern: &TopicPattern,
    ) -> Result<(), ApiError> {
        if self.grants.covers(capability, pattern.as_str()) {
            return Ok(());
        }
        Err(self.refusal(capability, pattern.as_str()))
    }

    /// `FORBIDDEN`, or `UNAUTHORIZED` without credentials, for `capability` on `topic`.
    fn refusal(&self, capability: Capability, topic: &str) -> ApiError {
        let what = format!("{} `{topic}`", verb(capability));
        match (&self.token, self.credentialed) {
            (Some(t), _) => {
                ApiError::new(ErrorCode::Forbidden, format!("`{}` may not {what}", t.sub))
            }
            (None, true) => ApiError::new(ErrorCode::Forbidden, format!("may not {what}")),
            (None, false) => ApiError::new(
                ErrorCode::Unauthorized,
                format!("anonymous callers may not {what}: send a token or the API key"),
            ),
        }
    }

    /// `Ok` when either capability is granted on `topic`.
    pub fn check_either(
        &self,
        a: Capability,
        b: Capability,
        topic: &TopicName,
    ) -> Result<(), ApiError> {
        self.check(a, topic).or_else(|_| self.check(b, topic))
    }

    /// `Ok` for the admin-only operations; `what` names the operation ("listing topics").
    pub fn check_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.grants.is_admin() {
            return Ok(());
        }
        let needs = format!("{what} needs the admin key or an admin token");
        Err(match (&self.token, self.credentialed) {
            (Some(t), _) => ApiError::new(
                ErrorCode::Forbidden,
                format!("{needs}; the token of `{}` is not one", t.sub),
            ),
            (None, true) => ApiError::new(ErrorCode::Forbidden, needs),
            (None, false) => ApiError::new(ErrorCode::Unauthorized, needs),
        })
    }
}

fn verb(capability: Capability) -> &'static str {
    match capability {
        Capability::Subscribe => "subscribe to",
        Capability::Publish => "publish to",
        Capability::History => "read the history of",
        Capability::Presence => "see who is on",
    }
}

/// Turns credentials into a [`Caller`]: the admin key and the token verifier, built once.
#[derive(Debug)]
pub struct Gate {
    /// `API_KEY`.
    api_key: Option<Box<str>>,
    /// Token verification, when `JWT_SECRET` or `JWT_PUBLIC_KEY` is set.
    auth: Option<Auth>,
    /// Every right, built once: every admin request shares it (no allocation per request).
    admin: Arc<Grants>,
    /// CPU time verification may still take (see `budget`).
    budget: VerifyBudget,
    /// Tokens refused unverified because the budget was spent.
    shed: AtomicU64,
}

impl Gate {
    /// The gate `config` describes; reads `JWT_PUBLIC_KEY` and `PERMISSIONS_FILE`.
    pub fn new(config: &Config) -> Result<Self, String> {
        Ok(Self {
            api_key: config.api_key.as_deref().map(Into::into),
            auth: Auth::from_config(config)?,
            admin: Arc::new(Grants::admin()),
            budget: VerifyBudget::default(),
            shed: AtomicU64::new(0),
        })
    }

    /// Tokens verified, refused, and refused unverified (the budget was spent) so far: `None`
    /// when tokens are off.
    pub fn counts(&self) -> Option<(AuthCounts, u64)> {
        let counts = self.auth.as_ref().map(Auth::counts)?;
        Some((counts, self.shed.load(Ordering::Relaxed)))
    }

    /// `JWT_LEEWAY_SECS`.
    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.auth.as_ref().map_or(0, Auth::leeway_secs))
    }

    /// Who presents `presented` (every credential the request carried): `UNAUTHORIZED` when
    /// they are wrong, or absent where the server needs some before anything else (only
    /// `API_KEY` set, PROTOCOL.md §4). The admin key wins wherever it is; otherwise the first
    /// token is verified.
    pub fn caller(&self, presented: &[Credentials<'_>]) -> Result<Caller, ApiError> {
        let key_matches = |given: &str| {
            self.api_key
                .as_deref()
                .is_some_and(|key| bool::from(given.as_bytes().ct_eq(key.as_bytes())))
        };
        let is_key = presented.iter().any(|c| match c {
            Credentials::Key(given) | Credentials::Bearer(given) => key_matches(given),
            Credentials::Token(_) => false,
        });
        if is_key {
            return Ok(Caller::admin(&self.admin));
        }
        let token = presented.iter().find_map(|c| match c {
            Credentials::Bearer(given) | Credentials::Token(given) => Some(*given),
            Credentials::Key(_) => None,
        });
        // A key that does not fit is refused even beside a token: bad credentials are 401.
        let some_key = presented.iter().any(|c| matches!(c, Credentials::Key(_)));
        match (&self.api_key, &self.auth, token) {
            (None, None, _) => Ok(Caller::admin(&self.admin)),
            (_, _, _) if some_key => Err(wrong_key()),
            (_, Some(_), Some(token)) => self.verify(token),
            (_, Some(auth), None) => Ok(Caller {
                grants: auth.anonymous(),
                token: None,
                credentialed: false,
            }),
            (Some(_), None, _) => Err(wrong_key()),
        }
    }

    /// A token's caller; `UNAUTHORIZED` saying why (expired, bad signature, …) when it is refused.
    pub fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let Some(auth) = &self.auth else {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "tokens are not enabled on this server (JWT_SECRET / JWT_PUBLIC_KEY)",
            ));
        };
        if token.len() > MAX_TOKEN_BYTES {
            // Refused unparsed (and counted) by the verifier: no work to charge to the budget.
            if let Err(e) = auth.verify(token) {
                return Err(e.to_api_error());
            }
        }
        if !self.budget.allows() {
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "too many tokens to verify right now; retry in a moment",
            ));
        }
        let start = Instant::now();
        let verified = auth.verify(token);
        self.budget.charge(start.elapsed());
        match verified {
            Ok(identity) => Ok(Caller {
                grants: identity.grants,
                token: Some(TokenHolder {
                    sub: identity.sub.into(),
                    expires_at: identity.expires_at,
                }),
                credentialed: true,
            }),
            Err(e) => Err(e.to_api_error()),
        }
    }
}

fn wrong_key() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthorized,
        "missing or wrong API key (X-API-Key, Authorization: Bearer, or api_key=)",
    )
}

/// Seconds from now until `unix_secs` (0 when past).
pub fn secs_until(unix_secs: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    unix_secs.saturating_sub(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{mint, MintClaims, RulesText};
    use crate::config::Secret;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn gate(api_key: Option<&str>, tokens: bool) -> Gate {
        let mut config = Config {
            api_key: api_key.map(str::to_string),
            ..Config::default()
        };
        config.tokens.jwt_secret = tokens.then(|| Secret::new(SECRET));
        Gate::new(&config).unwrap()
    }

    fn token(sub: &str, rules: RulesText) -> String {
        let claims = MintClaims {
            sub: sub.into(),
            ttl: Duration::from_secs(60),
            rules,
            ..MintClaims::default()
        };
        mint(SECRET, &claims).unwrap()
    }

    fn topic(name: &str) -> TopicName {
        TopicName::parse(name).unwrap()
    }

    #[test]
    fn without_auth_settings_everyone_is_admin() {
        let gate = gate(None, false);
        for presented in [
            &[][..],
            &[Credentials::Key("x")],
            &[Credentials::Bearer("y")],
        ] {
            assert!(gate.caller(presented).unwrap().check_admin("x").is_ok());
        }
    }

    #[test]
    fn the_admin_key_counts_in_any_form_and_a_wrong_one_is_refused() {
        let gate = gate(Some("k 1"), true);
        for presented in [
            &[Credentials::Key("k 1")][..],
            &[Credentials::Bearer("k 1")],
            &[Credentials::Token("t"), Credentials::Key("k 1")],
        ] {
            assert!(gate.caller(presented).unwrap().check_admin("x").is_ok());
        }
        let wrong = gate.caller(&[Credentials::Key("k")]).unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Unauthorized);
        let only_key = self::gate(Some("k 1"), false);
        assert_eq!(
            only_key.caller(&[]).unwrap_err().code,
            ErrorCode::Unauthorized,
            "with only API_KEY set, no credentials is refused up front"
        );
    }

    #[test]
    fn a_token_gets_its_rights_and_is_refused_the_rest() {
        let gate = gate(Some("key"), true);
        let rules = RulesText {
            sub: vec!["chat.*".into()],
            ..RulesText::default()
        };
        let caller = gate
            .caller(&[Credentials::Bearer(&token("alice", rules))])
            .unwrap();
        assert_eq!(caller.token().unwrap().sub.as_ref(), "alice");
        assert!(caller
            .check(Capability::Subscribe, &topic("chat.a"))
            .is_ok());
        let refused = caller
            .check(Capability::Publish, &topic("chat.a"))
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        assert!(refused.message.contains("alice"), "{}", refused.message);
        assert_eq!(
            caller.check_admin("listing topics").unwrap_err().code,
            ErrorCode::Forbidden
        );
        let bad = gate.caller(&[Credentials::Token("not.a.jwt")]).unwrap_err();
        assert_eq!(bad.code, ErrorCode::Unauthorized);
        assert!(!bad.message.contains("not.a.jwt"));
    }

    #[test]
    fn anonymous_callers_are_told_to_authenticate() {
        let gate = gate(None, true);
        let anonymous = gate.caller(&[]).unwrap();
        assert!(anonymous.has_no_rights());
        let refused = anonymous
            .check(Capability::Subscribe, &topic("t"))
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unauthorized);
        let admin = gate
            .caller(&[Credentials::Token(&token(
                "ops",
                RulesText {
                    admin: true,
                    ..RulesText::default()
                },
            ))])
            .unwrap();
        assert!(admin.check_admin("x").is_ok());
    }
}
