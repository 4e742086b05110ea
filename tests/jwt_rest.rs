//! PROTOCOL.md §4 over REST, the tokens themselves, against a real server with tokens minted by
//! `jsonwebtoken`: every refused token (expired, not yet valid, forged, wrong issuer or audience,
//! missing claims, `alg: none`, truncated, too large) is a 401 saying why and never echoing the
//! token; HS256/384/512 pass, leeway is honoured and key URLs are never fetched; RS and ES tokens
//! work with `JWT_PUBLIC_KEY` while the HS/RS confusion is refused; a 1 MiB token does no harm.
//! What a valid token may do is in `jwt_rest_rights.rs`.

mod common;

use common::jwt::*;
use common::raw_http::huge_request;
use common::TestServer;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{json, Value};

/// `JWT_ISSUER` and `JWT_AUDIENCE` of the matrix server.
const ISS: &str = "herald-tests";
const AUD: &str = "herald";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_token_is_a_401_that_says_why_and_never_echoes_the_token() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
        issuer_and_audience(c, ISS, AUD);
    })
    .await;
    let good = || {
        let mut c = claims("u1", 3600, rights(&["chat.*"], &["chat.*"], &["chat.*"]));
        c["iss"] = json!(ISS);
        c["aud"] = json!(AUD);
        c
    };
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = good();
        edit(&mut c);
        c
    };
    let hs = |c: &Value| sign(Algorithm::HS256, c);
    let valid = hs(&good());
    // A validly signed token whose claims pad it past 8 KiB: refused for its size alone.
    let padded = hs(&with(&|c| c["pad"] = json!("p".repeat(9 * 1024))));
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        (
            "expired a minute ago",
            hs(&with(&|c| c["exp"] = json!(now() - 60))),
            "UNAUTHORIZED",
            &["expired"],
        ),
        (
            "not valid for ten minutes (nbf)",
            hs(&with(&|c| c["nbf"] = json!(now() + 600))),
            "UNAUTHORIZED",
            &["not yet valid", "not valid yet", "nbf"],
        ),
        (
            "signed with another secret",
            wrong_signature(&good()),
            "UNAUTHORIZED",
            &["signature"],
        ),
        (
            "wrong issuer",
            hs(&with(&|c| c["iss"] = json!("someone-else"))),
            "UNAUTHORIZED",
            &["issuer"],
        ),
        (
            "no issuer",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("iss");
            })),
            "UNAUTHORIZED",
            &["iss"],
        ),
        (
            "wrong audience",
            hs(&with(&|c| c["aud"] = json!("another-service"))),
            "UNAUTHORIZED",
            &["audience"],
        ),
        (
            "no audience",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            })),
            "UNAUTHORIZED",
            &["aud"],
        ),
        (
            "no exp",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
            "UNAUTHORIZED",
            &["exp"],
        ),
        (
            "no sub",
            hs(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
            "UNAUTHORIZED",
            &["sub"],
        ),
        (
            "empty sub",
            hs(&with(&|c| c["sub"] = json!(""))),
            "UNAUTHORIZED",
            &["sub"],
        ),
        (
            "alg none",
            unsigned(&good()),
            "UNAUTHORIZED",
            &["algorithm", "alg"],
        ),
        (
            "RS256 while only JWT_SECRET is set",
            sign(Algorithm::RS256, &good()),
            "UNAUTHORIZED",
            &["algorithm", "alg"],
        ),
        (
            "signature cut short",
            valid[..valid.len() - 6].to_string(),
            "UNAUTHORIZED",
            &["signature", "malformed"],
        ),
        (
            "signature cut off (two parts)",
            valid[..valid.rfind('.').unwrap()].to_string(),
            "UNAUTHORIZED",
            &["malformed"],
        ),
        (
            "claims cut in the middle",
            valid[..valid.find('.').unwrap() + 20].to_string(),
            "UNAUTHORIZED",
            &["malformed"],
        ),
        (
            "over 8 KiB",
            padded,
            "UNAUTHORIZED",
            &["large", "long", "size", "8 kib", "8192"],
        ),
    ];
    // The control: the untouched token passes both calls, so each refusal below is its defect's.
    assert_eq!(
        rest_publish(&server, "chat.room1", Cred::Bearer(&valid))
            .await
            .0,
        200
    );
    let (status, body) =
        rest_get(&server, "/topics/chat.room1/history", Cred::Bearer(&valid)).await;
    assert_eq!(status, 200, "{body}");
    for (what, token, code, why) in &cases {
        for got in [
            rest_publish(&server, "chat.room1", Cred::Bearer(token)).await,
            rest_get(&server, "/topics/chat.room1/history", Cred::Bearer(token)).await,
        ] {
            assert_error(&got, 401, code, token, what);
            let message = got.1["error"]["message"].as_str().unwrap_or_default();
            assert_says_why(message, why, what);
        }
    }
    assert_eq!(
        messages_in(&server, "chat.room1").await,
        1,
        "a refused token published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_hs384_hs512_are_accepted_and_leeway_and_key_urls_are_honoured_as_documented() {
    let server = token_server().await;
    let pubs = || rights(&[], &["chat.*"], &[]);
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, &claims("u1", 3600, pubs()));
        let got = rest_publish(&server, "chat.algs", Cred::Bearer(&token)).await;
        assert_eq!(got.0, 200, "{alg:?}: {}", got.1);
    }
    // JWT_LEEWAY_SECS (default 5) of skew: expired 2 s ago, or valid 2 s from now, still pass.
    let mut late = claims("u1", -2, pubs());
    let early = {
        let mut c = claims("u1", 3600, pubs());
        c["nbf"] = json!(now() + 2);
        c
    };
    for (what, c) in [("exp 2 s ago", &late), ("nbf in 2 s", &early)] {
        let token = sign(Algorithm::HS256, c);
        let got = rest_publish(&server, "chat.leeway", Cred::Bearer(&token)).await;
        assert_eq!(got.0, 200, "{what} is within the leeway: {}", got.1);
    }
    late["exp"] = json!(now() - 30);
    let token = sign(Algorithm::HS256, &late);
    let got = rest_publish(&server, "chat.leeway", Cred::Bearer(&token)).await;
    assert_error(&got, 401, "UNAUTHORIZED", &token, "exp 30 s ago");
    assert_says_why(
        got.1["error"]["message"].as_str().unwrap_or_default(),
        &["expired"],
        "exp 30 s ago",
    );

    // `kid`, `jku` and `x5u` are never fetched: they point at a listener that must see nothing.
    let bait = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    bait.set_nonblocking(true).unwrap();
    let url = format!("http://{}/jwks.json", bait.local_addr().unwrap());
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-1".into());
    header.jku = Some(url.clone());
    header.x5u = Some(url);
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let token = sign_with(&header, &key, &claims("u1", 3600, pubs()));
    let got = rest_publish(&server, "chat.kid", Cred::Bearer(&token)).await;
    assert_eq!(got.0, 200, "kid/jku/x5u are ignored: {}", got.1);
    let wrong = sign_with(
        &header,
        &jsonwebtoken::EncodingKey::from_secret(OTHER_SECRET.as_bytes()),
        &claims("u1", 3600, pubs()),
    );
    let got = rest_publish(&server, "chat.kid", Cred::Bearer(&wrong)).await;
    assert_error(
        &got,
        401,
        "UNAUTHORIZED",
        &wrong,
        "jku pointing at another key",
    );
    // Verification is over once the answers are in: a fetch would have connected by now.
    assert!(
        bait.accept().is_err(),
        "the server fetched a key URL from a token header"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_public_key_accepts_rs_and_es_tokens_and_refuses_the_hs_confusion() {
    let c = claims("u1", 3600, rights(&[], &["chat.*"], &[]));
    // RSA key: RS256/384/512 only.
    let rsa_pem = fixture("rsa_public.pem");
    let rsa = TestServer::start_with(|cfg| public_key_only(cfg, rsa_pem.clone())).await;
    for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512] {
        let got = rest_publish(&rsa, "chat.rs", Cred::Bearer(&sign(alg, &c))).await;
        assert_eq!(got.0, 200, "{alg:?} with the RSA public key: {}", got.1);
    }
    let refused_by_rsa = [
        (
            "HS256 keyed with the RSA public key PEM",
            hs256_keyed_with_public_pem(&rsa_pem, &c),
        ),
        (
            "HS256 with a secret the server does not have",
            sign(Algorithm::HS256, &c),
        ),
        (
            "ES256 with the RSA key configured",
            sign(Algorithm::ES256, &c),
        ),
        ("alg none", unsigned(&c)),
    ];
    for (what, token) in &refused_by_rsa {
        let got = rest_publish(&rsa, "chat.rs", Cred::Bearer(token)).await;
        assert_error(&got, 401, "UNAUTHORIZED", token, what);
    }
    assert_eq!(messages_without_key(&rsa, "chat.rs").await, 3);

    // P-256 key: ES256 only.
    let ec_pem = fixture("ec256_public.pem");
    let ec = TestServer::start_with(|cfg| public_key_only(cfg, ec_pem.clone())).await;
    let got = rest_publish(&ec, "chat.es", Cred::Bearer(&sign(Algorithm::ES256, &c))).await;
    assert_eq!(got.0, 200, "ES256 with the P-256 public key: {}", got.1);
    for (what, token) in [
        (
            "HS256 keyed with the EC public key PEM",
            hs256_keyed_with_public_pem(&ec_pem, &c),
        ),
        ("ES384 with a P-256 key", sign(Algorithm::ES384, &c)),
        ("RS256 with an EC key", sign(Algorithm::RS256, &c)),
    ] {
        let got = rest_publish(&ec, "chat.es", Cred::Bearer(&token)).await;
        assert_error(&got, 401, "UNAUTHORIZED", &token, what);
    }

    // Both configured: each family with its own key; the PEM as an HMAC secret is still wrong.
    let both = TestServer::start_with(|cfg| {
        tokens_on(cfg);
        cfg.tokens.jwt_public_key = Some(rsa_pem.clone());
    })
    .await;
    for alg in [Algorithm::HS256, Algorithm::RS256] {
        let got = rest_publish(&both, "chat.both", Cred::Bearer(&sign(alg, &c))).await;
        assert_eq!(got.0, 200, "{alg:?} with both keys: {}", got.1);
    }
    let confused = hs256_keyed_with_public_pem(&rsa_pem, &c);
    let got = rest_publish(&both, "chat.both", Cred::Bearer(&confused)).await;
    assert_error(
        &got,
        401,
        "UNAUTHORIZED",
        &confused,
        "HS256 keyed with the PEM",
    );
    assert_says_why(
        got.1["error"]["message"].as_str().unwrap_or_default(),
        &["signature"],
        "HS256 keyed with the PEM, JWT_SECRET set",
    );
}

/// Messages of `topic` read with an admin token (for servers without `API_KEY`).
async fn messages_without_key(server: &TestServer, topic: &str) -> u64 {
    let admin = sign(Algorithm::RS256, &claims("root", 600, admin_rights()));
    let (status, body) = rest_get(server, &format!("/topics/{topic}"), Cred::Bearer(&admin)).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_u64().expect("messages")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_token_is_refused_quickly_and_harms_nothing() {
    let server = token_server().await;
    let huge = format!("eyJ{}", "A".repeat(1024 * 1024));
    let outcome = huge_request(
        server.addr,
        "/topics/chat.x",
        &[format!("Authorization: Bearer {huge}")],
    )
    .await;
    outcome.assert_refused(&[401, 431], &huge, "1 MiB Authorization: Bearer on REST");
    let (status, _) = rest_get(&server, "/health", Cred::KeyHeader(ADMIN_KEY)).await;
    assert_eq!(status, 200, "the server is still serving");
}
