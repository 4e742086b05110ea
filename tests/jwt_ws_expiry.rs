//! PROTOCOL.md §4, the WebSocket's clock: `token_expiring` before `exp`, `TOKEN_EXPIRED` and close
//! 1008 at `exp` + leeway, a refresh that moves the expiry, a refresh with another `sub` that
//! changes nothing, and the `AUTH_TIMEOUT_SECS` close of a connection without rights.
//!
//! JWT times are whole seconds, so the tokens here live a few seconds and every bound on when a
//! frame arrives allows one second of rounding on the early side and a few on the late side.

mod common;

use common::jwt::*;
use common::{TestServer, WsClient};
use serde_json::Value;

/// `JWT_LEEWAY_SECS` of these servers.
const LEEWAY: u64 = 1;

/// The `exp` of `claims`.
fn exp_of(claims: &Value) -> u64 {
    claims["exp"].as_u64().expect("exp")
}

/// Waits for the closing sequence: an error frame with `code` (no `request_id`), then a close
/// with 1008. `token_expiring` notices before it are skipped. Returns the wall time of the error.
async fn expect_closed_with(ws: &mut WsClient, code: &str, secret: &str, what: &str) -> f64 {
    let err = loop {
        let v = ws.recv_json_no_heartbeat().await;
        if !(v["type"] == "info" && v["msg"] == "token_expiring") {
            break v;
        }
    };
    let at = wall();
    assert_eq!(err["type"], "error", "{what}: {err}");
    assert_eq!(err["error"]["code"], code, "{what}: {err}");
    assert!(
        err.get("request_id").is_none_or(Value::is_null),
        "{what}: {err}"
    );
    assert_not_echoed(&err.to_string(), secret, what);
    let close = ws
        .recv_close()
        .await
        .unwrap_or_else(|| panic!("{what}: no close frame"));
    assert_eq!(u16::from(close.code), 1008, "{what}: {close:?}");
    at
}

/// Asserts `at` is `exp` + leeway: no earlier than a second of rounding, no later than 3 s.
fn assert_at_expiry(at: f64, exp: f64) {
    let due = exp + LEEWAY as f64;
    assert!(
        at >= due - 1.0,
        "TOKEN_EXPIRED {:.2} s before exp + leeway",
        due - at
    );
    assert!(
        at <= due + 3.0,
        "TOKEN_EXPIRED {:.2} s after exp + leeway",
        at - due
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiring_comes_before_exp_then_token_expired_and_close_1008() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        leeway(c, LEEWAY);
        refresh_window(c, 3);
    })
    .await;
    let c = claims("u1", 6, rights(&["chat.*"], &[], &[]));
    let exp = exp_of(&c) as f64;
    let t = sign(jsonwebtoken::Algorithm::HS256, &c);
    let mut ws = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    let ack = try_subscribe(&mut ws, "chat.room1", "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // The notice: inside the window, before exp, telling the time left.
    let notice = ws.recv_json_no_heartbeat().await;
    let at = wall();
    assert_eq!(notice["type"], "info", "{notice}");
    assert_eq!(notice["msg"], "token_expiring", "{notice}");
    let left = notice["expires_in"].as_u64().expect("expires_in") as f64;
    assert!(at < exp, "token_expiring came {:.2} s after exp", at - exp);
    assert!(
        at >= exp - 3.0 - 1.0,
        "token_expiring came {:.2} s before exp, window 3",
        exp - at
    );
    assert!(left <= 3.0, "expires_in {left} beyond the 3 s window");
    assert!(
        (at + left - exp).abs() <= 1.5,
        "expires_in {left} at {:.2} s before exp",
        exp - at
    );
    // Still fully working until it runs out.
    assert_alive(&mut ws, "after token_expiring").await;
    let at = expect_closed_with(&mut ws, "TOKEN_EXPIRED", &t, "expiry").await;
    assert_at_expiry(at, exp);
}

/// A token that arrives with less than the window left is warned about at once (its client can
/// refresh instead of being closed at expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_already_inside_the_window_is_warned_about_at_once() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        leeway(c, LEEWAY);
        refresh_window(c, 10);
    })
    .await;
    let c = claims("u1", 4, rights(&["chat.*"], &[], &[]));
    let exp = exp_of(&c) as f64;
    let t = sign(jsonwebtoken::Algorithm::HS256, &c);
    let opened = wall();
    let mut ws = ws_ok(&server, "/ws", Cred::Query(&t)).await;
    let notice = ws.recv_json_no_heartbeat().await;
    assert_eq!(notice["msg"], "token_expiring", "{notice}");
    assert!(
        wall() - opened < 1.5,
        "token_expiring came {:.2} s after the upgrade",
        wall() - opened
    );
    assert!(notice["expires_in"].as_u64().expect("expires_in") <= 4);
    let at = expect_closed_with(&mut ws, "TOKEN_EXPIRED", &t, "expiry").await;
    assert_at_expiry(at, exp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_with_the_same_sub_moves_the_expiry() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        leeway(c, LEEWAY);
        refresh_window(c, 2);
    })
    .await;
    let first = claims("u1", 3, rights(&["chat.*"], &[], &[]));
    let old_exp = exp_of(&first) as f64;
    let t1 = sign(jsonwebtoken::Algorithm::HS256, &first);
    let mut ws = ws_ok(&server, "/ws", Cred::Bearer(&t1)).await;
    let t2 = token("u1", 3600, rights(&["chat.*"], &[], &[]));
    let ack = authenticate(&mut ws, &t2, "refresh").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["request_id"], "refresh", "{ack}");
    assert_eq!(ack["client_id"], "u1", "{ack}");
    let expires_in = ack["expires_in"].as_u64().expect("expires_in");
    assert!(expires_in > 3590, "the ack tells the new expiry: {ack}");
    // Well past the old exp + leeway: no TOKEN_EXPIRED, no close.
    let notices = quiet_until(&mut ws, old_exp + LEEWAY as f64 + 2.5, "refreshed").await;
    for n in &notices {
        // Only a notice about the old token, sent before the refresh landed, may be seen.
        assert!(n["expires_in"].as_u64().unwrap_or(u64::MAX) <= 3, "{n}");
    }
    assert_alive(&mut ws, "after the old exp").await;
    let ack = try_subscribe(&mut ws, "chat.room1", "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_with_another_sub_is_forbidden_and_changes_nothing() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        leeway(c, LEEWAY);
        refresh_window(c, 1);
    })
    .await;
    let mine = claims("u1", 5, rights(&["chat.*"], &[], &[]));
    let exp = exp_of(&mine) as f64;
    let t1 = sign(jsonwebtoken::Algorithm::HS256, &mine);
    let mut ws = ws_ok(&server, "/ws", Cred::Bearer(&t1)).await;
    let others = [
        token("u2", 3600, rights(&["secret.*"], &["secret.*"], &[])),
        token("root", 3600, admin_rights()),
    ];
    for (i, other) in others.iter().enumerate() {
        let rid = format!("swap-{i}");
        let err = authenticate(&mut ws, other, &rid).await;
        assert_error_frame(&err, "FORBIDDEN", &rid, other, "refresh with another sub");
        let err = try_subscribe(&mut ws, "secret.x", "s-no").await;
        assert_error_frame(&err, "FORBIDDEN", "s-no", other, "rights unchanged");
    }
    let ack = try_subscribe(&mut ws, "chat.room1", "s-ok").await;
    assert_eq!(ack["type"], "ack", "u1 keeps its own rights: {ack}");
    // And its own expiry.
    let at = expect_closed_with(&mut ws, "TOKEN_EXPIRED", &t1, "old expiry kept").await;
    assert_at_expiry(at, exp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_rights_is_closed_after_auth_timeout_and_others_are_not() {
    let server = TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
        auth_timeout(c, 2);
    })
    .await;
    let started = wall();
    let mut idle = ws_ok(&server, "/ws", Cred::None).await;
    let mut late = ws_ok(&server, "/ws", Cred::None).await;
    let mut keyed = ws_ok(&server, "/ws", Cred::KeyHeader(ADMIN_KEY)).await;
    let mut bearer = ws_ok(
        &server,
        "/ws",
        Cred::Bearer(&token("u2", 3600, rights(&["chat.*"], &[], &[]))),
    )
    .await;
    // Refused operations and a bad auth frame neither close it nor reset its clock.
    let err = try_subscribe(&mut idle, "chat.room1", "s").await;
    assert_error_frame(&err, "UNAUTHORIZED", "s", "", "anonymous subscribe");
    let bad = wrong_signature(&claims("u1", 3600, Value::Null));
    let err = authenticate(&mut idle, &bad, "a").await;
    assert_error_frame(&err, "UNAUTHORIZED", "a", &bad, "bad auth frame");
    assert_alive(&mut idle, "before the timeout").await;
    // One that authenticates in time stays.
    let t = token("u1", 3600, rights(&["chat.*"], &[], &[]));
    let ack = authenticate(&mut late, &t, "in-time").await;
    assert_eq!(ack["type"], "ack", "{ack}");

    let at = expect_closed_with(&mut idle, "UNAUTHORIZED", &bad, "auth timeout").await;
    assert!(
        at - started >= 1.5,
        "closed after {:.2} s, timeout 2 s",
        at - started
    );
    assert!(
        at - started <= 7.0,
        "closed after {:.2} s, timeout 2 s",
        at - started
    );
    let until = started + 3.5;
    for (what, ws) in [
        ("authenticated in time", &mut late),
        ("admin key", &mut keyed),
        ("bearer", &mut bearer),
    ] {
        quiet_until(ws, until, what).await;
        assert_alive(ws, what).await;
    }
    let ack = try_subscribe(&mut late, "chat.room1", "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
}
