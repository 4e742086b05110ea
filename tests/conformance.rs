//! HTTP conformance fixes found while writing `api/openapi.json` and running schemathesis against
//! it (tests/schemathesis/run.sh); one regression test each.

mod common;

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
