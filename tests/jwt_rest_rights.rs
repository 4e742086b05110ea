//! PROTOCOL.md §4 over REST, the rights: each capability (publish by `POST /publish` and `POST
//! /pub/{topic}`, history, topic info, the admin-only routes) is granted by its right only, with
//! `*` and `>` patterns, `PERMISSIONS_FILE` defaults and `{sub}`; refusals are 403 with credentials
//! and 401 without, and change nothing; the admin key keeps every form with tokens on.

mod common;

use common::jwt::*;
use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

/// Every admin-only route: the call and the status it answers when allowed. `tag` keeps the
/// names a successful call consumes unique.
fn admin_calls(tag: &str) -> Vec<(Method, String, Option<Value>, u16)> {
    vec![
        (
            Method::POST,
            "/topics".into(),
            Some(json!({"name": format!("made-{tag}")})),
            201,
        ),
        (Method::DELETE, format!("/topics/doomed-{tag}"), None, 200),
        (Method::GET, "/topics".into(), None, 200),
        (Method::GET, "/health".into(), None, 200),
        (Method::GET, "/stats".into(), None, 200),
        (Method::GET, "/metrics".into(), None, 200),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_refuse_a_non_admin_token_and_accept_an_admin_token_or_the_key() {
    let server = token_server().await;
    // Every topic right on every topic, but not admin.
    let everything = token("u1", 3600, rights(&[">"], &[">"], &[">"]));
    let admin = token("root", 3600, admin_rights());
    admin_publish(&server, "doomed-refused", json!(1)).await;
    for (method, path, body, _) in admin_calls("refused") {
        let what = format!("{method} {path} with a non-admin token");
        let got = rest(
            &server,
            method.clone(),
            &path,
            Cred::Bearer(&everything),
            body.clone(),
        )
        .await;
        assert_error(&got, 403, "FORBIDDEN", &everything, &what);
        let got = rest(&server, method, &path, Cred::None, body).await;
        assert_error(
            &got,
            401,
            "UNAUTHORIZED",
            "",
            &format!("{path} without credentials"),
        );
    }
    assert_eq!(
        messages_in(&server, "doomed-refused").await,
        1,
        "refused DELETE deleted"
    );
    let (status, _) = rest_get(&server, "/topics/made-refused", Cred::KeyHeader(ADMIN_KEY)).await;
    assert_eq!(status, 404, "refused POST /topics created the topic");

    let admins = [
        ("admin token", Cred::Bearer(&admin)),
        ("X-API-Key", Cred::KeyHeader(ADMIN_KEY)),
        ("Bearer key", Cred::Bearer(ADMIN_KEY)),
        ("api_key=", Cred::KeyQuery(ADMIN_KEY)),
    ];
    for (i, (who, cred)) in admins.into_iter().enumerate() {
        let tag = i.to_string();
        admin_publish(&server, &format!("doomed-{tag}"), json!(1)).await;
        for (method, path, body, ok) in admin_calls(&tag) {
            let got = rest(&server, method.clone(), &path, cred, body).await;
            assert_eq!(got.0, ok, "{method} {path} with {who}: {}", got.1);
            if path == "/metrics" {
                assert!(got.1.as_str().unwrap_or("").contains("herald_"), "{who}");
            }
        }
        let (status, _) = rest_get(&server, &format!("/topics/made-{tag}"), cred).await;
        assert_eq!(status, 200, "POST /topics with {who} created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_over_rest_needs_pub_on_the_topic() {
    let server = token_server().await;
    let writer = token("w", 3600, rights(&["chat.*"], &["chat.*"], &["chat.*"]));
    let reader = token("r", 3600, rights(&["chat.*"], &[], &["chat.*"]));
    assert_eq!(
        rest_publish(&server, "chat.a", Cred::Bearer(&writer))
            .await
            .0,
        200
    );
    assert_eq!(
        rest_pub_raw(&server, "chat.a", Cred::Bearer(&writer))
            .await
            .0,
        200
    );
    for topic in ["chat.a.b", "chat", "orders", "xchat.a"] {
        for got in [
            rest_publish(&server, topic, Cred::Bearer(&writer)).await,
            rest_pub_raw(&server, topic, Cred::Bearer(&writer)).await,
        ] {
            assert_error(
                &got,
                403,
                "FORBIDDEN",
                &writer,
                &format!("w publishes {topic}"),
            );
        }
        assert_eq!(
            messages_in(&server, topic).await,
            0,
            "{topic}: refused but stored"
        );
    }
    for got in [
        rest_publish(&server, "chat.a", Cred::Bearer(&reader)).await,
        rest_pub_raw(&server, "chat.a", Cred::Bearer(&reader)).await,
    ] {
        assert_error(
            &got,
            403,
            "FORBIDDEN",
            &reader,
            "sub+history token publishes",
        );
    }
    for got in [
        rest_publish(&server, "chat.a", Cred::None).await,
        rest_pub_raw(&server, "chat.a", Cred::None).await,
    ] {
        assert_error(
            &got,
            401,
            "UNAUTHORIZED",
            "",
            "anonymous publish, no defaults",
        );
    }
    assert_eq!(messages_in(&server, "chat.a").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_needs_history_and_topic_info_needs_sub_or_history() {
    let server = token_server().await;
    for topic in ["chat.room1", "orders.1"] {
        admin_publish(&server, topic, json!({"n": 1})).await;
        admin_publish(&server, topic, json!({"n": 2})).await;
    }
    let historian = token("h", 3600, rights(&[], &[], &["chat.*"]));
    let subscriber = token("s", 3600, rights(&["chat.*"], &[], &[]));
    let publisher = token("p", 3600, rights(&[], &["chat.*"], &[]));
    let (status, body) = rest_get(
        &server,
        "/topics/chat.room1/history",
        Cred::Bearer(&historian),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2), "{body}");
    for (who, token) in [("history", &historian), ("sub", &subscriber)] {
        let (status, body) = rest_get(&server, "/topics/chat.room1", Cred::Bearer(token)).await;
        assert_eq!(status, 200, "GET /topics/chat.room1 with {who}: {body}");
        assert_eq!(body["messages"], 2, "{body}");
        let got = rest_get(&server, "/topics/orders.1", Cred::Bearer(token)).await;
        assert_error(&got, 403, "FORBIDDEN", token, &format!("{who} on orders.1"));
    }
    for (who, token) in [("sub", &subscriber), ("pub", &publisher)] {
        let got = rest_get(
            &server,
            "/topics/chat.room1/history?last_n=1",
            Cred::Bearer(token),
        )
        .await;
        assert_error(
            &got,
            403,
            "FORBIDDEN",
            token,
            &format!("history with only {who}"),
        );
    }
    let got = rest_get(&server, "/topics/chat.room1", Cred::Bearer(&publisher)).await;
    assert_error(
        &got,
        403,
        "FORBIDDEN",
        &publisher,
        "topic info with only pub",
    );
    let got = rest_get(
        &server,
        "/topics/orders.1/history",
        Cred::Bearer(&historian),
    )
    .await;
    assert_error(
        &got,
        403,
        "FORBIDDEN",
        &historian,
        "history of another topic",
    );
    for path in ["/topics/chat.room1", "/topics/chat.room1/history"] {
        let got = rest_get(&server, path, Cred::None).await;
        assert_error(
            &got,
            401,
            "UNAUTHORIZED",
            "",
            &format!("{path} anonymously"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn star_matches_one_token_and_gt_one_or_more() {
    let server = token_server().await;
    let t = token(
        "u42",
        3600,
        rights(&[], &["chat.*", "user.u42.>", "orders"], &[]),
    );
    let cases = [
        ("chat.room1", true),
        ("chat.room1.x", false),
        ("chat", false),
        ("user.u42.inbox", true),
        ("user.u42.a.b", true),
        ("user.u42", false),
        ("user.u43.inbox", false),
        ("xuser.u42.inbox", false),
        ("orders", true),
        ("orders.eu", false),
    ];
    for (topic, allowed) in cases {
        let got = rest_publish(&server, topic, Cred::Bearer(&t)).await;
        if allowed {
            assert_eq!(got.0, 200, "{topic} matches: {}", got.1);
        } else {
            assert_error(
                &got,
                403,
                "FORBIDDEN",
                &t,
                &format!("{topic} does not match"),
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_file_gives_anonymous_and_authenticated_defaults_with_sub_substituted() {
    let file = TempFile::new(
        "herald-perms-rest",
        r#"
[anonymous]
sub = ["public.>"]
history = ["public.>"]

[authenticated]
sub = ["user.{sub}.>"]
pub = ["user.{sub}.>"]
history = ["user.{sub}.>"]
"#,
    );
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
        permissions_file(c, &file);
    })
    .await;
    admin_publish(&server, "public.news", json!("hello")).await;
    // Anonymous: exactly the [anonymous] rights.
    let (status, body) = rest_get(&server, "/topics/public.news/history", Cred::None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest_get(&server, "/topics/public.news", Cred::None).await.0,
        200
    );
    for got in [
        rest_publish(&server, "public.news", Cred::None).await,
        rest_get(&server, "/topics/user.u42.inbox/history", Cred::None).await,
        rest_get(&server, "/health", Cred::None).await,
    ] {
        assert_error(
            &got,
            401,
            "UNAUTHORIZED",
            "",
            "anonymous beyond [anonymous]",
        );
    }
    // A token without its own claim: [authenticated] with its sub, plus [anonymous].
    let u42 = token("u42", 3600, Value::Null);
    assert_eq!(
        rest_publish(&server, "user.u42.inbox", Cred::Bearer(&u42))
            .await
            .0,
        200
    );
    assert_eq!(
        rest_publish(&server, "user.u42.a.b", Cred::Bearer(&u42))
            .await
            .0,
        200
    );
    let (status, body) = rest_get(
        &server,
        "/topics/user.u42.inbox/history",
        Cred::Bearer(&u42),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        rest_get(&server, "/topics/public.news/history", Cred::Bearer(&u42))
            .await
            .0,
        200,
        "a token keeps the [anonymous] rights"
    );
    for topic in ["user.u43.inbox", "public.news", "user.u42"] {
        let got = rest_publish(&server, topic, Cred::Bearer(&u42)).await;
        assert_error(
            &got,
            403,
            "FORBIDDEN",
            &u42,
            &format!("u42 publishes {topic}"),
        );
    }
    // Its own claim adds to the defaults.
    let own = token("u42", 3600, rights(&[], &["chat.*"], &[]));
    assert_eq!(
        rest_publish(&server, "chat.x", Cred::Bearer(&own)).await.0,
        200
    );
    assert_eq!(
        rest_publish(&server, "user.u42.inbox", Cred::Bearer(&own))
            .await
            .0,
        200
    );
    // A sub that is not one plain topic token makes `{sub}` match nothing, rather than a
    // wildcard or a deeper subtree.
    for (sub, topic) in [
        ("u1.evil", "user.u1.evil.inbox"),
        ("*", "user.bob.inbox"),
        (">", "user.bob.inbox"),
        ("a b", "user.a"),
    ] {
        let t = token(sub, 3600, Value::Null);
        let got = rest_publish(&server, topic, Cred::Bearer(&t)).await;
        assert_error(
            &got,
            403,
            "FORBIDDEN",
            &t,
            &format!("sub {sub:?} publishes {topic}"),
        );
        assert_eq!(messages_in(&server, topic).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_on_the_admin_key_keeps_every_form_and_a_wrong_one_is_refused() {
    let server = token_server().await;
    let forms = [
        Cred::KeyHeader(ADMIN_KEY),
        Cred::Bearer(ADMIN_KEY),
        Cred::KeyQuery(ADMIN_KEY),
    ];
    for (i, cred) in forms.into_iter().enumerate() {
        let topic = format!("any.{i}");
        assert_eq!(rest_publish(&server, &topic, cred).await.0, 200, "{cred:?}");
        let (status, body) = rest(
            &server,
            Method::POST,
            &format!("/pub/{topic}"),
            cred,
            Some(json!("raw")),
        )
        .await;
        assert_eq!(status, 200, "{cred:?}: {body}");
        for path in [
            format!("/topics/{topic}"),
            format!("/topics/{topic}/history"),
        ] {
            let (status, body) = rest_get(&server, &path, cred).await;
            assert_eq!(status, 200, "{path} with {cred:?}: {body}");
        }
    }
    let wrong = "herald-tests-admin-key-4b1e";
    for cred in [
        Cred::KeyHeader(wrong),
        Cred::Bearer(wrong),
        Cred::KeyQuery(wrong),
    ] {
        let got = rest_get(&server, "/topics/any.0", cred).await;
        assert_error(&got, 401, "UNAUTHORIZED", wrong, &format!("{cred:?}"));
    }
}
