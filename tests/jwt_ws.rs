//! PROTOCOL.md §4 on WebSocket, against a real server with tokens minted by `jsonwebtoken`: a
//! token works in each of its three places (Bearer on the upgrade, `?token=`, the `auth` frame);
//! bad credentials on the upgrade are a 401 before it happens; `/ws/sub/{topic}` needs `sub`
//! before upgrading; a bad `auth` frame leaves the connection as it was; every refused operation
//! is an error frame and the connection stays. Expiry, refresh and the auth timeout are in
//! `jwt_ws_expiry.rs`.

mod common;

use common::jwt::*;
use common::{TestServer, WsClient};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The next frame that is not a heartbeat, whatever it is (events included).
async fn next(ws: &mut WsClient) -> Value {
    ws.recv_json_no_heartbeat().await
}

/// Asserts each client's next frame is the event with `seq`.
async fn assert_each_gets<const N: usize>(clients: [(&str, &mut WsClient); N], seq: u64) {
    for (what, ws) in clients {
        let ev = next(ws).await;
        assert_eq!(ev["type"], "event", "{what}: {ev}");
        assert_eq!(ev["seq"], seq, "{what}: {ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_as_bearer_on_the_upgrade_as_token_query_and_in_an_auth_frame() {
    let server = token_server().await;
    let t = chat_token();
    let mut bearer = ws_ok(&server, "/ws", Cred::Bearer(&t)).await;
    assert_chat_rights(&mut bearer, &t, "Bearer on the upgrade").await;
    let mut query = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    assert_chat_rights(&mut query, &t, "?token=").await;

    let mut framed = ws_ok(&server, "/ws", Cred::None).await;
    let before = now();
    let ack = authenticate(&mut framed, &t, "a1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["request_id"], "a1", "{ack}");
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(ack["client_id"], "u1", "{ack}");
    let expires_in = ack["expires_in"].as_u64().expect("expires_in");
    assert!(
        (3595..=3600).contains(&(expires_in + now() - before)),
        "expires_in {expires_in} for a token of 3600 s: {ack}"
    );
    assert_not_echoed(&ack.to_string(), &t, "auth ack");
    assert_chat_rights(&mut framed, &t, "auth frame").await;

    let ack = try_publish(&mut framed, "chat.lobby", json!("may publish"), "p").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // All three are real subscriptions: one publish reaches each.
    let seq = admin_publish(&server, "chat.room1", json!("to all")).await;
    let clients = [
        ("bearer", &mut bearer),
        ("query", &mut query),
        ("frame", &mut framed),
    ];
    assert_each_gets(clients, seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_credentials_on_the_upgrade_are_refused_with_401_before_upgrading() {
    let server = token_server().await;
    let c = claims("u1", 3600, rights(&["chat.*"], &[], &[]));
    let valid = sign(Algorithm::HS256, &c);
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 60);
    let mut early = c.clone();
    early["nbf"] = json!(now() + 600);
    let bad: Vec<(&str, String)> = vec![
        ("expired", sign(Algorithm::HS256, &expired)),
        ("not yet valid", sign(Algorithm::HS256, &early)),
        ("wrong signature", wrong_signature(&c)),
        ("alg none", unsigned(&c)),
        ("RS256 without JWT_PUBLIC_KEY", sign(Algorithm::RS256, &c)),
        ("truncated", valid[..valid.len() - 5].to_string()),
        ("two parts", valid[..valid.rfind('.').unwrap()].to_string()),
        ("garbage", "not-a-token-at-all".to_string()),
    ];
    for path in ["/ws", "/ws/sub/chat.room1", "/ws/sub/chat.room1?id=c1"] {
        for (what, token) in &bad {
            for cred in [Cred::Bearer(token), Cred::Query(token)] {
                let what = format!("{path} with {what} as {cred:?}");
                assert_upgrade_refused(
                    ws_with(&server, path, cred).await,
                    401,
                    "UNAUTHORIZED",
                    &what,
                );
                let (status, body) = upgrade_over_http(&server, path, cred).await;
                let body: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{what}: body is not JSON: {body}"));
                assert_error(&(status, body), 401, "UNAUTHORIZED", token, &what);
            }
        }
    }
    // A wrong admin key is refused the same way while tokens are on.
    for cred in [
        Cred::KeyHeader("wrong-key-123456"),
        Cred::KeyQuery("wrong-key-123456"),
    ] {
        assert_upgrade_refused(
            ws_with(&server, "/ws", cred).await,
            401,
            "UNAUTHORIZED",
            "key",
        );
    }
    // Nothing happened behind the refusals.
    assert_eq!(messages_in(&server, "chat.room1").await, 0);
    let (status, _) = rest(
        &server,
        reqwest::Method::GET,
        "/topics/chat.room1",
        Cred::KeyHeader(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(status, 404, "a refused /ws/sub upgrade created its topic");
    let (_, stats) = rest(
        &server,
        reqwest::Method::GET,
        "/stats",
        Cred::KeyHeader(ADMIN_KEY),
        None,
    )
    .await;
    assert_eq!(stats["subscribers"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_sub_needs_the_sub_right_before_upgrading() {
    let server = token_server().await;
    let t = token(
        "u1",
        3600,
        rights(&["chat.*"], &["secret.*"], &["secret.*"]),
    );
    for cred in [Cred::Bearer(&t), Cred::Query(&t)] {
        let what = format!("/ws/sub/secret.x with {cred:?}");
        assert_upgrade_refused(
            ws_with(&server, "/ws/sub/secret.x", cred).await,
            403,
            "FORBIDDEN",
            &what,
        );
        let (status, body) = upgrade_over_http(&server, "/ws/sub/secret.x", cred).await;
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_error(&(status, body), 403, "FORBIDDEN", &t, &what);
    }
    assert_upgrade_refused(
        ws_with(&server, "/ws/sub/chat.room1", Cred::None).await,
        401,
        "UNAUTHORIZED",
        "/ws/sub without credentials, no [anonymous] rights",
    );
    // With the right it upgrades already subscribed.
    let mut sub = ws_ok(&server, "/ws/sub/chat.room1?id=c1", Cred::Query(&t)).await;
    assert_alive(&mut sub, "/ws/sub/chat.room1").await;
    let seq = admin_publish(&server, "chat.room1", json!("hi")).await;
    let ev = next(&mut sub).await;
    assert_eq!(ev["type"], "event", "{ev}");
    assert_eq!(ev["seq"], seq, "{ev}");
    assert_eq!(messages_in(&server, "secret.x").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_in_an_auth_frame_is_unauthorized_and_leaves_the_rights_as_they_were() {
    let server = token_server().await;
    let good = chat_token();
    let c = claims("u1", 3600, rights(&["secret.*"], &[], &[]));
    let mut expired = c.clone();
    expired["exp"] = json!(now() - 60);
    let mut early = c.clone();
    early["nbf"] = json!(now() + 600);
    let padded = {
        let mut p = c.clone();
        p["pad"] = json!("p".repeat(64 * 1024));
        sign(Algorithm::HS256, &p)
    };
    let bad: Vec<(&str, String)> = vec![
        ("expired", sign(Algorithm::HS256, &expired)),
        ("not yet valid", sign(Algorithm::HS256, &early)),
        ("wrong signature", wrong_signature(&c)),
        ("alg none", unsigned(&c)),
        ("RS256 without JWT_PUBLIC_KEY", sign(Algorithm::RS256, &c)),
        ("truncated", good[..good.len() - 5].to_string()),
        ("64 KiB", padded),
        ("the admin key", ADMIN_KEY.to_string()),
    ];
    let mut authed = ws_ok(&server, "/ws", Cred::Bearer(&good)).await;
    let mut anonymous = ws_ok(&server, "/ws", Cred::None).await;
    for (i, (what, token)) in bad.iter().enumerate() {
        let rid = format!("bad-{i}");
        for ws in [&mut authed, &mut anonymous] {
            let err = authenticate(ws, token, &rid).await;
            // PROTOCOL.md §4: a bad token in an `auth` frame is UNAUTHORIZED, an expired one too
            // (TOKEN_EXPIRED is the connection's own token running out).
            assert_error_frame(&err, "UNAUTHORIZED", &rid, token, what);
        }
        assert_chat_rights(&mut authed, &good, &format!("after {what}")).await;
        let refused = try_subscribe(&mut anonymous, "chat.room1", "anon").await;
        assert_error_frame(&refused, "UNAUTHORIZED", "anon", token, "still anonymous");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_a_frame_that_is_not_json_is_a_bad_request_and_grants_nothing() {
    let server = token_server().await;
    let t = chat_token();
    let mut ws = ws_ok(&server, "/ws", Cred::None).await;
    let not_json = [
        format!(r#"{{"type":"auth","token":"{t}""#),
        format!("auth {t}"),
        format!(r#"{{"type":"auth","token":{t}}}"#),
        format!(r#"["auth","{t}"]"#),
    ];
    for (i, text) in not_json.iter().enumerate() {
        ws.send_text(text).await;
        let err = reply(&mut ws).await;
        assert_eq!(err["type"], "error", "frame {i}: {err}");
        assert_eq!(err["error"]["code"], "BAD_REQUEST", "frame {i}: {err}");
        assert_not_echoed(&err.to_string(), &t, &format!("frame {i}"));
    }
    for (i, frame) in [
        json!({"type": "auth", "request_id": "m"}),
        json!({"type": "auth", "token": 42, "request_id": "m"}),
        json!({"type": "auth", "token": {"jwt": t}, "request_id": "m"}),
    ]
    .into_iter()
    .enumerate()
    {
        let err = ask(&mut ws, frame).await;
        assert_error_frame(&err, "BAD_REQUEST", "m", &t, &format!("auth field {i}"));
    }
    let refused = try_subscribe(&mut ws, "chat.room1", "s").await;
    assert_error_frame(&refused, "UNAUTHORIZED", "s", &t, "no auth happened");
    // The same auth frame as a binary message of UTF-8 JSON is accepted like a text one.
    let frame = json!({"type": "auth", "token": t, "request_id": "bin"}).to_string();
    futures_util::SinkExt::send(&mut ws.inner, Message::binary(frame.into_bytes()))
        .await
        .unwrap();
    let ack = reply(&mut ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_chat_rights(&mut ws, &t, "after the binary auth frame").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscribe_replays_nothing() {
    let server = token_server().await;
    for topic in ["secret.x", "chat.room1"] {
        for n in 1..=3 {
            admin_publish(&server, topic, json!({"n": n})).await;
        }
    }
    let t = chat_token();
    let mut ws = ws_ok(&server, "/ws", Cred::Bearer(&t)).await;
    for (rid, frame) in [
        (
            "last",
            json!({"type": "subscribe", "topic": "secret.x", "last_n": 3}),
        ),
        (
            "since",
            json!({"type": "subscribe", "topic": "secret.x", "since_seq": 0}),
        ),
    ] {
        let mut frame = frame;
        frame["request_id"] = json!(rid);
        ws.send_json(frame).await;
        // The refusal comes first and the pong right after it: no replayed event in between.
        let err = next(&mut ws).await;
        assert_error_frame(&err, "FORBIDDEN", rid, &t, rid);
        ws.send_json(json!({"type": "ping", "request_id": "after"}))
            .await;
        let pong = next(&mut ws).await;
        assert_eq!(
            pong["type"], "pong",
            "{rid}: a replayed event leaked: {pong}"
        );
    }
    // The control: with the right, the same request replays the three messages.
    ws.send_json(
        json!({"type": "subscribe", "topic": "chat.room1", "last_n": 3,
        "request_id": "ok"}),
    )
    .await;
    let ack = next(&mut ws).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for n in 1..=3 {
        let ev = next(&mut ws).await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["message"]["payload"]["n"], n, "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_over_websocket_needs_pub_and_a_refusal_stores_and_sends_nothing() {
    let server = token_server().await;
    let t = token("u1", 3600, rights(&["other.x"], &["chat.*"], &[]));
    let mut watcher = ws_ok(&server, "/ws", Cred::KeyHeader(ADMIN_KEY)).await;
    watcher.subscribe("other.x").await;
    let mut ws = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    let ack = try_publish(&mut ws, "chat.a", json!("ok"), "p1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for topic in ["other.x", "chat.a.b", "chat"] {
        let err = try_publish(&mut ws, topic, json!("no"), "p2").await;
        assert_error_frame(&err, "FORBIDDEN", "p2", &t, topic);
        assert_eq!(messages_in(&server, topic).await, 0, "{topic}");
    }
    // Alias form too (`data`).
    let err = ask(
        &mut ws,
        json!({"type": "publish", "topic": "other.x", "data": 1,
        "request_id": "p3"}),
    )
    .await;
    assert_error_frame(&err, "FORBIDDEN", "p3", &t, "publish with data");
    assert_alive(&mut ws, "after refused publishes").await;
    // The watcher's first event is the admin's message with seq 1: nothing was sent before it.
    let seq = admin_publish(&server, "other.x", json!("first")).await;
    assert_eq!(seq, 1);
    let ev = next(&mut watcher).await;
    assert_eq!(ev["message"]["payload"], "first", "{ev}");
    // Without any credentials the refusal is UNAUTHORIZED.
    let mut anonymous = ws_ok(&server, "/ws", Cred::None).await;
    let err = try_publish(&mut anonymous, "chat.a", json!("no"), "p4").await;
    assert_error_frame(&err, "UNAUTHORIZED", "p4", "", "anonymous publish");
    assert_alive(&mut anonymous, "anonymous after a refusal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_and_the_permissions_file_on_websocket() {
    let file = TempFile::new(
        "herald-perms-ws",
        r#"
[anonymous]
sub = ["public.>"]

[authenticated]
sub = ["user.{sub}.>"]
pub = ["user.{sub}.>"]
"#,
    );
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
        permissions_file(c, &file);
        auth_timeout(c, 1);
    })
    .await;
    // Anonymous: [anonymous] only, refusals are UNAUTHORIZED, and it is not timed out: it has
    // rights.
    let opened = wall();
    let mut anonymous = ws_ok(&server, "/ws", Cred::None).await;
    let ack = try_subscribe(&mut anonymous, "public.news.eu", "a1").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for (rid, answer) in [
        ("a2", try_subscribe(&mut anonymous, "private.x", "a2").await),
        (
            "a3",
            try_publish(&mut anonymous, "public.news", json!(1), "a3").await,
        ),
        ("a4", try_subscribe(&mut anonymous, "public", "a4").await),
    ] {
        assert_error_frame(&answer, "UNAUTHORIZED", rid, "", "anonymous");
    }
    let mut topic_sub = ws_ok(&server, "/ws/sub/public.news.eu", Cred::None).await;
    assert_upgrade_refused(
        ws_with(&server, "/ws/sub/private.x", Cred::None).await,
        401,
        "UNAUTHORIZED",
        "/ws/sub/private.x anonymously",
    );
    // A token without a claim: [authenticated] with `{sub}`, plus [anonymous].
    let u42 = token("u42", 3600, Value::Null);
    let mut user = ws_ok(&server, "/ws", Cred::Query(&u42)).await;
    for topic in ["user.u42.inbox", "user.u42.a.b", "public.news.eu"] {
        let ack = try_subscribe(&mut user, topic, topic).await;
        assert_eq!(ack["type"], "ack", "{topic}: {ack}");
    }
    for topic in ["user.u43.inbox", "user.u42", "private.x"] {
        let err = try_subscribe(&mut user, topic, topic).await;
        assert_error_frame(&err, "FORBIDDEN", topic, &u42, topic);
    }
    // Published where it is not subscribed, so no event of its own interleaves with the acks.
    let ack = try_publish(&mut user, "user.u42.outbox", json!("mine"), "p").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let err = try_publish(&mut user, "public.news.eu", json!("no"), "p").await;
    assert_error_frame(&err, "FORBIDDEN", "p", &u42, "publish beyond the defaults");
    // The anonymous sockets outlive AUTH_TIMEOUT_SECS (1 s) and their subscriptions are live.
    let until = opened + 2.5;
    quiet_until(&mut anonymous, until, "anonymous with rights").await;
    quiet_until(&mut topic_sub, until, "anonymous /ws/sub").await;
    let seq = admin_publish(&server, "public.news.eu", json!("news")).await;
    let clients = [
        ("anonymous", &mut anonymous),
        ("/ws/sub", &mut topic_sub),
        ("u42", &mut user),
    ];
    assert_each_gets(clients, seq).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_and_admin_key_have_every_right_on_websocket() {
    let server = token_server().await;
    let admin = token("root", 3600, admin_rights());
    let mut by_frame = ws_ok(&server, "/ws", Cred::None).await;
    let ack = authenticate(&mut by_frame, &admin, "a").await;
    assert_eq!(ack["client_id"], "root", "{ack}");
    let mut clients = [
        ("admin token by frame", by_frame),
        (
            "admin token as Bearer",
            ws_ok(&server, "/ws", Cred::Bearer(&admin)).await,
        ),
        (
            "X-API-Key",
            ws_ok(&server, "/ws", Cred::KeyHeader(ADMIN_KEY)).await,
        ),
        (
            "Bearer key",
            ws_ok(&server, "/ws", Cred::Bearer(ADMIN_KEY)).await,
        ),
        (
            "api_key=",
            ws_ok(&server, "/ws", Cred::KeyQuery(ADMIN_KEY)).await,
        ),
    ];
    for (i, (what, ws)) in clients.iter_mut().enumerate() {
        let topic = format!("anything.{i}.deep");
        let ack = try_subscribe(ws, &topic, "s").await;
        assert_eq!(ack["type"], "ack", "{what}: {ack}");
        let ack = try_publish(ws, &format!("elsewhere.{i}"), json!(what), "p").await;
        assert_eq!(ack["type"], "ack", "{what}: {ack}");
        let seq = admin_publish(&server, &topic, json!(what)).await;
        let ev = next(ws).await;
        assert_eq!(ev["type"], "event", "{what}: {ev}");
        assert_eq!(ev["seq"], seq, "{what}: {ev}");
    }
    let mut sub = ws_ok(&server, "/ws/sub/anything.else", Cred::Query(&admin)).await;
    assert_alive(&mut sub, "/ws/sub with an admin token").await;
}
