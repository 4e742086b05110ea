//! PROTOCOL.md §4 on WebSocket, which tokens a connection accepts: RS256 and ES256 with
//! `JWT_PUBLIC_KEY` while the HS/RS confusion is refused, `JWT_ISSUER` and `JWT_AUDIENCE` checked
//! on the upgrade and in the `auth` frame, and a 1 MiB token refused before any harm.

mod common;

use common::jwt::*;
use common::raw_http::{huge_request, upgrade_headers};
use common::TestServer;
use jsonwebtoken::Algorithm;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_tokens_work_on_websocket_and_the_hs_confusion_does_not() {
    for (pem, alg) in [
        ("rsa_public.pem", Algorithm::RS256),
        ("ec256_public.pem", Algorithm::ES256),
    ] {
        let pem = fixture(pem);
        let server = TestServer::start_with(|c| public_key_only(c, pem.clone())).await;
        let c = claims("u1", 3600, rights(&["chat.*"], &["chat.*"], &[]));
        let t = sign(alg, &c);
        let mut ws = ws_ok(&server, "/ws", Cred::Query(&t)).await;
        assert_chat_rights(&mut ws, &t, &format!("{alg:?}")).await;
        let mut framed = ws_ok(&server, "/ws", Cred::None).await;
        let ack = authenticate(&mut framed, &t, "a").await;
        assert_eq!(ack["type"], "ack", "{alg:?}: {ack}");
        let confused = hs256_keyed_with_public_pem(&pem, &c);
        assert_upgrade_refused(
            ws_with(&server, "/ws", Cred::Bearer(&confused)).await,
            401,
            "UNAUTHORIZED",
            "HS256 keyed with the public key PEM",
        );
        let mut other = ws_ok(&server, "/ws", Cred::None).await;
        let err = authenticate(&mut other, &confused, "c").await;
        assert_error_frame(
            &err,
            "UNAUTHORIZED",
            "c",
            &confused,
            "HS confusion in a frame",
        );
        let err = try_subscribe(&mut other, "chat.room1", "s").await;
        assert_error_frame(&err, "UNAUTHORIZED", "s", &confused, "still anonymous");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_token_on_the_upgrade_is_refused_quickly_and_harms_nothing() {
    let server = token_server().await;
    let huge = format!("eyJ{}", "A".repeat(1024 * 1024));
    let mut bearer = upgrade_headers();
    bearer.push(format!("Authorization: Bearer {huge}"));
    let outcome = huge_request(server.addr, "/ws", &bearer).await;
    outcome.assert_refused(&[401, 431], &huge, "1 MiB Bearer on the upgrade");
    // In the URL it makes the request line too long, for which HTTP also has 414.
    let target = format!("/ws?token={huge}");
    let outcome = huge_request(server.addr, &target, &upgrade_headers()).await;
    outcome.assert_refused(&[401, 414, 431], &huge, "1 MiB ?token= on the upgrade");
    let mut ws = ws_ok(&server, "/ws", Cred::Bearer(&chat_token())).await;
    assert_alive(&mut ws, "a normal client afterwards").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_checked_on_the_upgrade_and_in_the_auth_frame() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        issuer_and_audience(c, "herald-tests", "herald");
    })
    .await;
    let good = || {
        let mut c = claims("u1", 3600, rights(&["chat.*"], &["chat.*"], &[]));
        c["iss"] = json!("herald-tests");
        c["aud"] = json!("herald");
        c
    };
    let t = sign(Algorithm::HS256, &good());
    let mut ws = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    assert_chat_rights(&mut ws, &t, "iss and aud as configured").await;
    let mut others = Vec::new();
    for (claim, value) in [
        ("iss", Some("someone-else")),
        ("iss", None),
        ("aud", Some("another-service")),
        ("aud", None),
    ] {
        let mut c = good();
        match value {
            Some(v) => c[claim] = json!(v),
            None => {
                c.as_object_mut().expect("claims").remove(claim);
            }
        }
        others.push((format!("{claim} {value:?}"), sign(Algorithm::HS256, &c)));
    }
    let mut framed = ws_ok(&server, "/ws", Cred::None).await;
    for (what, bad) in &others {
        for cred in [Cred::Bearer(bad), Cred::Query(bad)] {
            let result = ws_with(&server, "/ws", cred).await;
            assert_upgrade_refused(result, 401, "UNAUTHORIZED", &format!("{what} {cred:?}"));
        }
        let err = authenticate(&mut framed, bad, "a").await;
        assert_error_frame(&err, "UNAUTHORIZED", "a", bad, what);
        let words: &[&str] = if what.starts_with("iss") {
            &["iss"]
        } else {
            &["aud"]
        };
        assert_says_why(err["error"]["message"].as_str().unwrap_or(""), words, what);
    }
    let err = try_subscribe(&mut framed, "chat.room1", "s").await;
    assert_error_frame(&err, "UNAUTHORIZED", "s", &t, "no bad token was taken");
}
