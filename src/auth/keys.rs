//! The verification keys of `JWT_SECRET` and `JWT_PUBLIC_KEY`, each with the algorithms it
//! enables and one ready [`Validation`] per algorithm.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::Config;

/// The HMAC algorithms `JWT_SECRET` enables.
const HMAC: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
/// The algorithms an RSA `JWT_PUBLIC_KEY` enables (PKCS#1 v1.5 only, as documented).
const RSA: &[Algorithm] = &[Algorithm::RS256, Algorithm::RS384, Algorithm::RS512];

/// A verification key with the algorithms it accepts and one ready [`Validation`] per algorithm.
pub struct Key {
    /// The secret or public key.
    key: DecodingKey,
    /// Its algorithms, each with the validation that allows exactly that one.
    validations: Vec<(Algorithm, Validation)>,
}

impl Key {
    /// The key of `JWT_SECRET`: HS256, HS384, HS512.
    pub fn hmac(secret: &str, config: &Config) -> Self {
        Self::new(DecodingKey::from_secret(secret.as_bytes()), HMAC, config)
    }

    /// The key of `JWT_PUBLIC_KEY`: RS256/384/512, or ES256 or ES384 by the key's curve.
    pub fn public(path: &Path, config: &Config) -> Result<Self, String> {
        let (key, algorithms) = load_public_key(path)?;
        Ok(Self::new(key, algorithms, config))
    }

    /// `key` for `algorithms`, each with its validation.
    fn new(key: DecodingKey, algorithms: &[Algorithm], config: &Config) -> Self {
        Self {
            key,
            validations: algorithms
                .iter()
                .map(|&alg| (alg, validation(alg, config)))
                .collect(),
        }
    }

    /// The key and the validation for `alg`, when this key accepts it.
    pub fn accepting(&self, alg: Algorithm) -> Option<(&DecodingKey, &Validation)> {
        self.validations
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, v)| (&self.key, v))
    }

    /// The algorithms this key accepts.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + '_ {
        self.validations.iter().map(|(alg, _)| *alg)
    }
}

/// One [`Validation`] that accepts exactly `alg`, with the configured claim rules.
fn validation(alg: Algorithm, config: &Config) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = config.tokens.jwt_leeway.as_secs();
    v.validate_exp = true;
    v.validate_nbf = true;
    let mut required = vec!["exp"];
    // The library checks `iss`/`aud` only when present, so a configured one is also required.
    if let Some(issuer) = &config.tokens.jwt_issuer {
        v.set_issuer(&[issuer]);
        required.push("iss");
    }
    match &config.tokens.jwt_audience {
        Some(audience) => {
            v.set_audience(&[audience]);
            required.push("aud");
        }
        // Unset: `aud` is not looked at (the library would otherwise refuse any token with one).
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

/// Reads `JWT_PUBLIC_KEY`: a PEM RSA or EC (P-256, P-384) public key, and the algorithms it
/// enables. A private key or certificate is refused with a hint rather than half-used.
fn load_public_key(path: &Path) -> Result<(DecodingKey, &'static [Algorithm]), String> {
    let fail = |why: &str| format!("JWT_PUBLIC_KEY {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| fail(&format!("cannot read: {e}")))?;
    let text = String::from_utf8_lossy(&pem);
    if text.contains("PRIVATE KEY-----") {
        return Err(fail(
            "holds a private key; give the server only the public key \
             (openssl pkey -in key.pem -pubout)",
        ));
    }
    if text.contains("CERTIFICATE-----") {
        return Err(fail(
            "holds a certificate; give its public key (openssl x509 -in cert.pem -pubkey -noout)",
        ));
    }
    let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        (key, RSA)
    } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        // The SEC1 point's length tells the curve: 0x04 || x || y, or 0x02/0x03 || x.
        let algorithms: &'static [Algorithm] = match key.as_bytes().len() {
            65 | 33 => &[Algorithm::ES256],
            97 | 49 => &[Algorithm::ES384],
            _ => {
                return Err(fail(
                    "EC key on an unsupported curve (ES256 needs P-256, ES384 P-384)",
                ))
            }
        };
        (key, algorithms)
    } else {
        return Err(fail("not a PEM RSA or EC (P-256, P-384) public key"));
    };
    // An EC point off its curve would fail every token; say so now. (An RSA key is parsed per
    // verification by the backend, so a broken one shows as bad signatures.)
    if let Err(e) = jsonwebtoken::crypto::verify("AA", b"probe", &key, algorithms[0]) {
        return Err(fail(&format!("unusable key: {e}")));
    }
    Ok((key, algorithms))
}
