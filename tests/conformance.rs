//! HTTP conformance fixes found while writing `api/openapi.json` and running schemathesis against
//! it (tests/schemathesis/run.sh); one regression test each.

mod common;

use common::rest::{upgrade_request, SAMPLE_WS_KEY};
use common::{http, TestServer};
use serde_json::json;

/// Regression: `HEAD /topics` and `HEAD /topics/{name}` answered 405 while every other GET route
/// answered HEAD, and no 405 listed HEAD in `Allow`.
#[tokio::test]
async fn head_is_answered_wherever_get_is() {
    let server = TestServer::start().await;
    http()
        .post(server.url("/publish"))
        .json(&json!({"topic": "head-topic", "data": 1}))
        .send()
        .await
        .unwrap();
    for path in [
        "/topics",
        "/topics/head-topic",
        "/topics/missing-topic",
        "/topics/head-topic/history",
        "/health",
        "/stats",
        "/metrics",
        "/livez",
        "/readyz",
    ] {
        let get = http().get(server.url(path)).send().await.unwrap().status();
        let head = http().head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get, "HEAD {path}");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    let resp = http().put(server.url("/topics")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET, POST, HEAD, OPTIONS");
    let resp = http().post(server.url("/livez")).send().await.unwrap();
    assert_eq!(resp.headers()["allow"], "GET, HEAD, OPTIONS");
}

/// Regression: any `Sec-WebSocket-Key` was accepted, though RFC 6455 §4.1 requires the base64 of
/// 16 bytes; schemathesis sent keys the document rules out and got 101.
#[tokio::test]
async fn a_malformed_websocket_key_is_refused() {
    let server = TestServer::start().await;
    let upgrade = |path: &str, key: &str| upgrade_request(server.url(path), key).send();
    for path in ["/ws", "/ws/sub/key-topic"] {
        for bad in [
            "",
            "abc",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZQ=x",
            "dGhlIHNhbXBsZSBub25j!Q==",
            "dGhlIHNhbXBsZSBub25jZQ===",
        ] {
            let resp = upgrade(path, bad).await.unwrap();
            assert_eq!(resp.status(), 400, "{path} with key {bad:?}");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
        }
        let resp = upgrade(path, SAMPLE_WS_KEY).await.unwrap();
        assert_eq!(resp.status(), 101, "{path} with a valid key");
    }
}

/// Regression: `POST /publish` refused a `request_id` that was not a string or an integer literal
/// (`1.5`, `-3.0`, an object), though a REST answer echoes none. JSON Schema cannot tell `-3.0`
/// from `-3`, so schemathesis found no document that described the check; the field is ignored now.
#[tokio::test]
async fn rest_publish_ignores_request_id() {
    let server = TestServer::start().await;
    for rid in [
        json!(1.5),
        json!(-3.0),
        json!({"a": 1}),
        json!([1]),
        json!(true),
        json!("r"),
        json!(7),
    ] {
        let resp = http()
            .post(server.url("/publish"))
            .json(&json!({"topic": "rid-topic", "data": 1, "request_id": rid}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request_id {rid}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "published", "{body}");
        assert!(body.get("request_id").is_none(), "{body}");
    }
}
