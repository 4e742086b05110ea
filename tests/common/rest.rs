//! HTTP helpers for tests: a client with the harness timeout, requests shaped as `curl` sends
//! them, and reads of a JSON or text answer.

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::RECV_TIMEOUT;

/// A reqwest client for REST calls.
pub fn http() -> reqwest::Client {
    // Redirects are answers to check (`/dashboard/`), not to follow.
    reqwest::Client::builder()
        .timeout(RECV_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A request as `curl` sends it: its `User-Agent` and `Accept: */*`.
pub fn curl(method: Method, url: String) -> RequestBuilder {
    http()
        .request(method, url)
        .header("user-agent", "curl/8.5.0")
        .header("accept", "*/*")
}

/// Asserts `resp` is labelled `application/json`.
pub fn assert_json_content_type(resp: &Response, what: &str) {
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "{what}: content-type {ct:?}"
    );
}

/// Sends `req` and returns the status and the body, which must be labelled and parse as JSON.
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status();
    assert_json_content_type(&resp, status.as_str());
    (status, resp.json().await.expect("JSON body"))
}

/// `POST /topics` at `topics_url` (a node's or the load balancer's), which must create `name`.
pub async fn create_topic(topics_url: &str, name: &str) {
    let created = http()
        .post(topics_url)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .expect("POST /topics");
    assert_eq!(created.status(), 201, "POST /topics {name}");
}

/// `GET url` and its JSON body, whatever the status.
pub async fn get_json(url: &str) -> Value {
    send(http().get(url)).await.1
}

/// `GET url` and its body as text, whatever the status.
pub async fn get_text(url: &str) -> String {
    http()
        .get(url)
        .send()
        .await
        .expect("HTTP request")
        .text()
        .await
        .expect("text body")
}

/// `curl -X METHOD URL -H "Content-Type: application/json" -d 'BODY'`: the status and JSON body.
pub async fn curl_json(method: Method, url: String, body: &str) -> (StatusCode, Value) {
    send(
        curl(method, url)
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

/// The RFC 6455 §1.3 example `Sec-WebSocket-Key` (the base64 of 16 bytes).
pub const SAMPLE_WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A WebSocket upgrade request sent over plain HTTP with `Sec-WebSocket-Key: key`, so a test
/// can read the status and body of the answer (a refusal's JSON error, or the 101).
pub fn upgrade_request(url: String, key: &str) -> RequestBuilder {
    http()
        .get(url)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", key)
}

/// The value of the sample named `name` (no labels) in the `/metrics` text at `url`, or
/// `"missing"`.
pub async fn metric(url: &str, name: &str) -> String {
    let text = http()
        .get(url)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or("missing")
        .to_owned()
}
