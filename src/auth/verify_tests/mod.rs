//! The unit tests of [`Auth::verify`] (issue 15): the shared helpers here, the bad-input token
//! matrix in `tokens`, grants and `PERMISSIONS_FILE` in `grants`.
//!
//! The bad-input matrix of issue 15 against [`Auth::verify`]. Tokens are signed by the real JWT
//! library (`jsonwebtoken::encode`) with the secret or the test keys of `tests/fixtures/auth`;
//! only tokens no library will produce (`alg: none`, a `crit` header) are assembled by hand from
//! base64url JSON pieces, in [`raw`].

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::*;
use crate::auth::Capability;
use crate::config::{Config, Secret};
use crate::error::ErrorCode;

const SECRET: &str = "unit-test-secret-unit-test-secret-42";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture key")
}

fn now() -> u64 {
    get_current_timestamp()
}

fn hs_config() -> Config {
    {
        let mut config = Config::default();
        config.tokens.jwt_secret = Some(Secret::new(SECRET));
        config
    }
}

fn public_config(key: &str) -> Config {
    {
        let mut config = Config::default();
        config.tokens.jwt_public_key = Some(fixture(key));
        config
    }
}

fn auth(config: &Config) -> Auth {
    Auth::from_config(config)
        .expect("valid auth settings")
        .expect("token auth on")
}

fn sign_with(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).expect("sign")
}

fn hs(claims: &Value) -> String {
    sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        claims,
    )
}

fn rsa(alg: Algorithm, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("rsa key");
    sign_with(alg, &key, claims)
}

fn ec(alg: Algorithm, private: &str, claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(&pem(private)).expect("ec key");
    sign_with(alg, &key, claims)
}

fn claims() -> Value {
    json!({"sub": "alice", "exp": now() + 600})
}

/// A token built by hand, for the shapes the JWT library refuses to produce.
fn raw(header: &Value, payload: &Value, signature: &str) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(payload))
}

/// Verifies that `token` is refused, with a reason that carries neither the token nor the secret
/// and maps to `UNAUTHORIZED`.
fn refused(auth: &Auth, token: &str) -> AuthError {
    let err = auth.verify(token).expect_err("token must be refused");
    let message = err.to_string();
    for part in token.split('.').filter(|p| p.len() >= 8) {
        assert!(!message.contains(part), "{message} echoes the token");
    }
    assert!(!message.contains(SECRET));
    assert_eq!(err.to_api_error().code, ErrorCode::Unauthorized);
    assert_eq!(err.to_api_error().message, message);
    err
}

/// A permissions file in a fresh temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "herald-auth-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const PERMISSIONS: &str = r#"
    [anonymous]
    sub = ["public.>"]

    [authenticated]
    sub = ["user.{sub}.>"]
    pub = ["user.{sub}.outbox"]
"#;

mod grants;
mod tokens;
