//! Tokens in: signatures, algorithms, claims, sizes; each refusal says why.

use super::*;

#[test]
fn hmac_tokens_verify() {
    let auth = auth(&hs_config());
    let exp = now() + 600;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        let token = sign_with(alg, &key, &json!({"sub": "alice", "exp": exp}));
        let id = auth.verify(&token).expect("valid token");
        assert_eq!(id.sub, "alice");
        assert_eq!(id.expires_at, exp);
        assert!(id.grants.is_empty(), "no claim and no file: no rights");
    }
    assert!(
        auth.anonymous().is_empty(),
        "no file: anonymous may do nothing"
    );
    assert_eq!(auth.algorithms(), ["HS256", "HS384", "HS512"]);
}

#[test]
fn rsa_and_ec_tokens_verify() {
    let rsa_auth = auth(&public_config("rsa_public.pem"));
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        assert_eq!(rsa_auth.verify(&rsa(alg, &claims())).unwrap().sub, "alice");
    }
    let es256 = auth(&public_config("ec256_public.pem"));
    let token = ec(Algorithm::ES256, "ec256_private.pem", &claims());
    assert_eq!(es256.verify(&token).unwrap().sub, "alice");
    assert_eq!(es256.algorithms(), ["ES256"]);
    let es384 = auth(&public_config("ec384_public.pem"));
    let token = ec(Algorithm::ES384, "ec384_private.pem", &claims());
    assert_eq!(es384.verify(&token).unwrap().sub, "alice");
    // The curve decides: a P-256 key does not take ES384 tokens.
    assert_eq!(
        refused(&es256, &token),
        AuthError::AlgorithmNotAccepted("ES384".into())
    );
}

#[test]
fn expiry_and_not_before_honour_the_leeway() {
    let auth = auth(&hs_config());
    let t = now();
    let expired = hs(&json!({"sub": "a", "exp": t - 100}));
    assert_eq!(refused(&auth, &expired), AuthError::Expired);
    assert!(auth.verify(&hs(&json!({"sub": "a", "exp": t - 2}))).is_ok());
    let early = hs(&json!({"sub": "a", "exp": t + 600, "nbf": t + 100}));
    assert_eq!(refused(&auth, &early), AuthError::NotYetValid);
    assert!(auth
        .verify(&hs(&json!({"sub": "a", "exp": t + 600, "nbf": t + 2})))
        .is_ok());

    let strict = super::Auth::from_config(&{
        let mut config = hs_config();
        config.tokens.jwt_leeway = std::time::Duration::ZERO;
        config
    })
    .unwrap()
    .unwrap();
    let just_expired = hs(&json!({"sub": "a", "exp": t - 2}));
    assert_eq!(refused(&strict, &just_expired), AuthError::Expired);
    assert_eq!(strict.leeway_secs(), 0);
}

#[test]
fn wrong_signatures_are_refused() {
    let auth = auth(&hs_config());
    let other = EncodingKey::from_secret(b"another-secret-another-secret-another");
    let forged = sign_with(Algorithm::HS256, &other, &claims());
    assert_eq!(refused(&auth, &forged), AuthError::BadSignature);

    // A genuine signature over other claims: swap in a payload that grants admin.
    let genuine = hs(&claims());
    let admin = hs(&json!({"sub": "alice", "exp": now() + 600, "herald": {"admin": true}}));
    let parts: Vec<&str> = genuine.split('.').collect();
    let admin_payload = admin.split('.').nth(1).unwrap();
    let tampered = format!("{}.{admin_payload}.{}", parts[0], parts[2]);
    assert_eq!(refused(&auth, &tampered), AuthError::BadSignature);

    let rsa_auth = self::auth(&public_config("rsa_public.pem"));
    let genuine = rsa(Algorithm::RS256, &claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{admin_payload}.{}", parts[0], parts[2]);
    assert_eq!(refused(&rsa_auth, &tampered), AuthError::BadSignature);
}

#[test]
fn issuer_and_audience_must_match_when_configured() {
    let auth = auth(&{
        let mut config = hs_config();
        config.tokens.jwt_issuer = Some("https://issuer.example".into());
        config.tokens.jwt_audience = Some("herald".into());
        config
    });
    let exp = now() + 600;
    let ok = json!({"sub": "a", "exp": exp, "iss": "https://issuer.example", "aud": "herald"});
    assert!(auth.verify(&hs(&ok)).is_ok());
    let many = json!({"sub": "a", "exp": exp, "iss": "https://issuer.example",
                      "aud": ["other", "herald"]});
    assert!(auth.verify(&hs(&many)).is_ok());

    let cases = [
        (
            json!({"sub": "a", "exp": exp, "iss": "https://evil.example", "aud": "herald"}),
            AuthError::WrongIssuer,
        ),
        (
            json!({"sub": "a", "exp": exp, "aud": "herald"}),
            AuthError::MissingClaim("iss".into()),
        ),
        (
            json!({"sub": "a", "exp": exp, "iss": "https://issuer.example", "aud": "other"}),
            AuthError::WrongAudience,
        ),
        (
            json!({"sub": "a", "exp": exp, "iss": "https://issuer.example"}),
            AuthError::MissingClaim("aud".into()),
        ),
    ];
    for (claims, expected) in cases {
        assert_eq!(refused(&auth, &hs(&claims)), expected, "{claims}");
    }

    // Not configured: `iss` and `aud` are not looked at.
    let open = self::auth(&hs_config());
    let any = json!({"sub": "a", "exp": exp, "iss": "whoever", "aud": "anything"});
    assert!(open.verify(&hs(&any)).is_ok());
}

#[test]
fn alg_none_and_unknown_algorithms_are_refused() {
    let auth = auth(&hs_config());
    for (alg, shown) in [("none", "none"), ("NONE", "none"), ("HS1024", "(unknown)")] {
        let header = json!({"alg": alg, "typ": "JWT"});
        for signature in ["", "c2lnbmF0dXJl"] {
            let token = raw(&header, &claims(), signature);
            assert_eq!(
                refused(&auth, &token),
                AuthError::AlgorithmNotAccepted(shown.into()),
                "{alg}"
            );
        }
    }
    // A real algorithm this server did not enable (RSA-PSS with the test RSA key).
    let rsa_auth = self::auth(&public_config("rsa_public.pem"));
    let pss = rsa(Algorithm::PS256, &claims());
    assert_eq!(
        refused(&rsa_auth, &pss),
        AuthError::AlgorithmNotAccepted("PS256".into())
    );
}

#[test]
fn key_families_never_mix() {
    let public_pem = pem("rsa_public.pem");
    // The classic confusion: HS256 with the server's public key bytes as the HMAC secret.
    let confused = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public_pem),
        &claims(),
    );
    let public_only = auth(&public_config("rsa_public.pem"));
    assert_eq!(
        refused(&public_only, &confused),
        AuthError::AlgorithmNotAccepted("HS256".into())
    );
    assert_eq!(
        refused(&public_only, &hs(&claims())),
        AuthError::AlgorithmNotAccepted("HS256".into())
    );

    let secret_only = auth(&hs_config());
    assert_eq!(
        refused(&secret_only, &rsa(Algorithm::RS256, &claims())),
        AuthError::AlgorithmNotAccepted("RS256".into())
    );
    let es = ec(Algorithm::ES256, "ec256_private.pem", &claims());
    assert_eq!(
        refused(&secret_only, &es),
        AuthError::AlgorithmNotAccepted("ES256".into())
    );

    // Both keys: each family goes to its own key, so the confusion is just a bad signature.
    let both = auth(&{
        let mut config = hs_config();
        config.tokens.jwt_public_key = Some(fixture("rsa_public.pem"));
        config
    });
    assert_eq!(refused(&both, &confused), AuthError::BadSignature);
    assert!(both.verify(&hs(&claims())).is_ok());
    assert!(both.verify(&rsa(Algorithm::RS256, &claims())).is_ok());
    assert_eq!(
        both.algorithms(),
        ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512"]
    );
}

#[test]
fn truncated_and_malformed_tokens_are_refused() {
    let auth = auth(&hs_config());
    // Fixed claims (no clock in them), so the signature, and whether its 42-character prefix
    // leaves non-zero stray bits, is the same every run: with `claims()` it changed each second
    // and one run in sixteen cut on zero bits, which decodes (a bad signature, not malformed).
    let token = hs(&json!({"sub": "a", "exp": 4_102_444_800u64}));
    let (head, signature) = token.rsplit_once('.').unwrap();
    // An HS256 signature is 43 base64url characters; 42 leave stray bits, 40 and 12 decode.
    assert_eq!(signature.len(), 43);
    assert_eq!(
        refused(&auth, &token[..token.len() - 1]),
        AuthError::Malformed("not base64url")
    );
    for cut in [40, 12] {
        assert_eq!(
            refused(&auth, &format!("{head}.{}", &signature[..cut])),
            AuthError::BadSignature
        );
    }
    assert_eq!(refused(&auth, &format!("{head}.")), AuthError::BadSignature);
    let three_parts = AuthError::Malformed("not three `.`-separated parts");
    assert_eq!(refused(&auth, head), three_parts);
    assert_eq!(refused(&auth, &token[..token.len() / 3]), three_parts);
    assert_eq!(refused(&auth, ""), three_parts);
    assert_eq!(refused(&auth, &format!("{token}.x")), three_parts);
    assert_eq!(
        refused(&auth, "!!!.e30.sig"),
        AuthError::Malformed("header is not base64url")
    );
    assert_eq!(
        refused(&auth, "bm90IGpzb24.e30.sig"),
        AuthError::Malformed("header is not a JSON object with a string `alg`")
    );
    let no_alg = raw(&json!({"typ": "JWT"}), &claims(), "sig");
    assert_eq!(
        refused(&auth, &no_alg),
        AuthError::Malformed("header has no `alg`")
    );
    let crit = raw(&json!({"alg": "HS256", "crit": ["exp"]}), &claims(), "sig");
    assert_eq!(
        refused(&auth, &crit),
        AuthError::Malformed("`crit` header is not supported")
    );
    // Correctly signed, but the payload is not a JSON object.
    let not_object = sign_with(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &json!([1, 2]),
    );
    assert!(matches!(
        refused(&auth, &not_object),
        AuthError::Malformed(_)
    ));
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    let auth = auth(&hs_config());
    let mib = "a".repeat(1 << 20);
    assert_eq!(refused(&auth, &mib), AuthError::TooLarge);
    let huge = raw(&json!({"alg": "HS256"}), &json!({"pad": mib}), "sig");
    assert_eq!(refused(&auth, &huge), AuthError::TooLarge);

    // At the boundary, with genuinely signed tokens: 8192 bytes pass, one step more does not.
    let sized = |n: usize| hs(&json!({"sub": "a", "exp": now() + 600, "pad": "x".repeat(n)}));
    let mut n = 5_000;
    while sized(n + 1).len() <= MAX_TOKEN_BYTES {
        n += 1;
    }
    let (fits, over) = (sized(n), sized(n + 1));
    assert!(fits.len() <= MAX_TOKEN_BYTES && over.len() > MAX_TOKEN_BYTES);
    assert!(auth.verify(&fits).is_ok());
    assert_eq!(refused(&auth, &over), AuthError::TooLarge);
}

#[test]
fn sub_and_exp_are_required() {
    let auth = auth(&hs_config());
    let exp = now() + 600;
    let cases = [
        (json!({"exp": exp}), AuthError::MissingClaim("sub".into())),
        (
            json!({"sub": null, "exp": exp}),
            AuthError::MissingClaim("sub".into()),
        ),
        (
            json!({"sub": "", "exp": exp}),
            AuthError::BadClaim(BAD_SUB.into()),
        ),
        (
            json!({"sub": 42, "exp": exp}),
            AuthError::BadClaim(BAD_SUB.into()),
        ),
        (
            json!({"sub": "a\nforged log line", "exp": exp}),
            AuthError::BadClaim(BAD_SUB.into()),
        ),
        (
            json!({"sub": "a".repeat(MAX_SUB_BYTES + 1), "exp": exp}),
            AuthError::BadClaim(BAD_SUB.into()),
        ),
        (json!({"sub": "a"}), AuthError::MissingClaim("exp".into())),
        // The library counts an `exp` that is not a number as absent.
        (
            json!({"sub": "a", "exp": "tomorrow"}),
            AuthError::MissingClaim("exp".into()),
        ),
        (
            json!({"sub": "a", "exp": exp, "nbf": "yesterday"}),
            AuthError::BadClaim("`nbf` must be a NumericDate (Unix seconds)".into()),
        ),
    ];
    for (claims, expected) in cases {
        assert_eq!(refused(&auth, &hs(&claims)), expected, "{claims}");
    }
    assert!(BAD_SUB.contains(&MAX_SUB_BYTES.to_string()));
    let longest = hs(&json!({"sub": "é".repeat(MAX_SUB_BYTES / 2), "exp": exp}));
    assert!(
        auth.verify(&longest).is_ok(),
        "any printable text up to the limit"
    );
    let float = hs(&json!({"sub": "a", "exp": (exp as f64) + 0.4}));
    assert_eq!(auth.verify(&float).unwrap().expires_at, exp);
}

#[test]
fn key_urls_in_the_header_are_ignored() {
    let auth = auth(&hs_config());
    let mut header = Header::new(Algorithm::HS256);
    // Nothing listens on port 1: were these fetched, verification could not succeed offline.
    header.kid = Some("attacker-key".into());
    header.jku = Some("http://127.0.0.1:1/jwks.json".into());
    header.x5u = Some("http://127.0.0.1:1/cert.pem".into());
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    let token = encode(&header, &claims(), &key).unwrap();
    assert!(auth.verify(&token).is_ok());
    let attacker = EncodingKey::from_secret(b"attacker-secret-attacker-secret-0000");
    let forged = encode(&header, &claims(), &attacker).unwrap();
    assert_eq!(refused(&auth, &forged), AuthError::BadSignature);
}
