//! Rights out: a token's claim merged with `PERMISSIONS_FILE`, `{sub}` safety, counts, settings.

use super::*;

#[test]
fn grants_merge_claim_file_and_sub() {
    let file = TempFile::new("permissions.toml", PERMISSIONS);
    let auth = auth(&{
        let mut config = hs_config();
        config.tokens.permissions_file = Some(file.0.clone());
        config
    });
    let anon = auth.anonymous();
    assert!(anon.allows(Capability::Subscribe, "public.news"));
    assert!(!anon.allows(Capability::Subscribe, "user.42.inbox"));
    assert!(!anon.allows(Capability::Publish, "public.news"));

    let token = hs(&json!({"sub": "42", "exp": now() + 600,
                           "herald": {"pub": ["chat.*"], "history": ["chat.>"]}}));
    let g = auth.verify(&token).unwrap().grants;
    assert!(g.allows(Capability::Subscribe, "public.news"));
    assert!(g.allows(Capability::Subscribe, "user.42.inbox"));
    assert!(g.allows(Capability::Publish, "user.42.outbox"));
    assert!(g.allows(Capability::Publish, "chat.lobby"));
    assert!(g.allows(Capability::History, "chat.lobby.old"));
    assert!(!g.allows(Capability::Subscribe, "user.43.inbox"));
    assert!(!g.allows(Capability::Publish, "user.43.outbox"));
    assert!(!g.allows(Capability::Presence, "chat.lobby"));
    assert!(!g.is_admin());

    let admin = hs(&json!({"sub": "ops", "exp": now() + 600, "herald": {"admin": true}}));
    assert!(auth.verify(&admin).unwrap().grants.is_admin());
}

#[test]
fn a_hostile_sub_never_widens_a_grant() {
    let file = TempFile::new("permissions.toml", PERMISSIONS);
    let auth = auth(&{
        let mut config = hs_config();
        config.tokens.permissions_file = Some(file.0.clone());
        config
    });
    for sub in [">", "*", "x.>", "a.b", "*.*", "a b", "{sub}"] {
        let token = hs(&json!({"sub": sub, "exp": now() + 600}));
        let g = auth
            .verify(&token)
            .expect("a valid token with an odd sub")
            .grants;
        for topic in ["user.a.b", "user.x.y", "user.x.y.z", "user.*.x"] {
            assert!(
                !g.allows(Capability::Subscribe, topic),
                "{sub:?} got {topic}"
            );
        }
        assert!(!g.allows(Capability::Publish, "user.a.b.outbox"), "{sub:?}");
        assert!(
            g.allows(Capability::Subscribe, "public.news"),
            "still anonymous's"
        );
    }
}

#[test]
fn a_bad_herald_claim_refuses_the_token() {
    let auth = auth(&hs_config());
    let exp = now() + 600;
    let bad_pattern = hs(&json!({"sub": "a", "exp": exp, "herald": {"sub": ["ok", "a.>.b"]}}));
    let err = refused(&auth, &bad_pattern).to_string();
    assert!(err.contains("herald.sub[1] `a.>.b`"), "{err}");
    let unknown = hs(&json!({"sub": "a", "exp": exp, "herald": {"publish": ["x"]}}));
    assert!(refused(&auth, &unknown).to_string().contains("publish"));
    let wrong_type = hs(&json!({"sub": "a", "exp": exp, "herald": ["x"]}));
    assert!(matches!(
        refused(&auth, &wrong_type),
        AuthError::BadClaim(_)
    ));
}

#[test]
fn tokens_without_a_claim_share_one_grants() {
    let file = TempFile::new("permissions.toml", "[authenticated]\nsub = [\"news.>\"]\n");
    let auth = auth(&{
        let mut config = hs_config();
        config.tokens.permissions_file = Some(file.0.clone());
        config
    });
    let a = auth
        .verify(&hs(&json!({"sub": "a", "exp": now() + 60})))
        .unwrap();
    let b = auth
        .verify(&hs(&json!({"sub": "b", "exp": now() + 60})))
        .unwrap();
    assert!(Arc::ptr_eq(&a.grants, &b.grants));
    assert!(a.grants.allows(Capability::Subscribe, "news.eu"));
}

#[test]
fn counts_outcomes() {
    let auth = auth(&hs_config());
    assert_eq!(
        auth.counts(),
        AuthCounts {
            verified: 0,
            failed: 0
        }
    );
    auth.verify(&hs(&claims())).unwrap();
    auth.verify("x").unwrap_err();
    auth.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)).unwrap_err();
    assert_eq!(
        auth.counts(),
        AuthCounts {
            verified: 1,
            failed: 2
        }
    );
}

#[test]
fn settings_load_or_say_what_is_wrong() {
    assert!(Auth::from_config(&Config::default()).unwrap().is_none());
    let debug = format!("{:?}", auth(&hs_config()));
    assert!(
        !debug.contains(SECRET) && debug.contains("HS256"),
        "{debug}"
    );

    let err = |config: Config| Auth::from_config(&config).unwrap_err();
    let missing = err(public_config("no-such-key.pem"));
    assert!(missing.contains("no-such-key.pem") && missing.contains("cannot read"));
    let private = err(public_config("rsa_private.pem"));
    assert!(private.contains("rsa_private.pem") && private.contains("private key"));
    let readme = err(public_config("README.md"));
    assert!(readme.contains("not a PEM RSA or EC"), "{readme}");
    let cert = TempFile::new(
        "cert.pem",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let cert = err({
        let mut config = Config::default();
        config.tokens.jwt_public_key = Some(cert.0.clone());
        config
    });
    assert!(cert.contains("certificate"), "{cert}");
    let bad_file = TempFile::new("perms.toml", "[anonymous]\nsub = [\"*x\"]\n");
    let perms = err({
        let mut config = hs_config();
        config.tokens.permissions_file = Some(bad_file.0.clone());
        config
    });
    assert!(perms.starts_with("PERMISSIONS_FILE ") && perms.contains("[anonymous] sub[0] `*x`"));
}
