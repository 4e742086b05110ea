//! PROTOCOL.md §3 under bad input: every malformed, oversize, mistyped or misrouted REST request
//! gets its documented status and the JSON error body with the exact code, never a 5xx, and the
//! server stays healthy afterwards.

mod common;

use common::rest::{assert_json_content_type, get_json};
use common::{http, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// `MAX_MESSAGE_BYTES` for this file: small, so the body limit of `/publish` and `/pub`
/// (`MAX_MESSAGE_BYTES + 65536`) is cheap to exceed.
const MAX_MESSAGE_BYTES: usize = 1024;
const PUBLISH_BODY_LIMIT: usize = MAX_MESSAGE_BYTES + 65536;
const TOPICS_BODY_LIMIT: usize = 64 * 1024;

/// One row of the table.
struct Case {
    what: String,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    /// The error code for failures; `None` for rows that must succeed.
    code: Option<&'static str>,
    /// For 405: methods the `Allow` header must list.
    allow: &'static [&'static str],
}

const JSON: Option<&str> = Some("application/json");

fn case(
    what: impl Into<String>,
    method: Method,
    path: &str,
    content_type: Option<&'static str>,
    body: Option<Vec<u8>>,
    status: u16,
    code: Option<&'static str>,
) -> Case {
    Case {
        what: what.into(),
        method,
        path: path.into(),
        content_type,
        body,
        status,
        code,
        allow: &[],
    }
}

/// A JSON-typed POST row.
fn post(what: &str, path: &str, body: impl Into<Vec<u8>>, status: u16, code: &'static str) -> Case {
    case(
        what,
        Method::POST,
        path,
        JSON,
        Some(body.into()),
        status,
        Some(code),
    )
}

/// A body-less row.
fn bare(what: &str, method: Method, path: &str, status: u16, code: &'static str) -> Case {
    case(what, method, path, None, None, status, Some(code))
}

/// A 405 row.
fn wrong_method(method: Method, path: &str, allow: &'static [&'static str]) -> Case {
    Case {
        allow,
        ..bare(
            &format!("{method} {path}"),
            method,
            path,
            405,
            "METHOD_NOT_ALLOWED",
        )
    }
}

fn table() -> Vec<Case> {
    let long_name = "a".repeat(256);
    let max_name = "m".repeat(255);
    let huge_topics_body = json!({"name": "big", "pad": "x".repeat(TOPICS_BODY_LIMIT)}).to_string();
    let huge_publish_body =
        json!({"topic": "big", "data": "x".repeat(PUBLISH_BODY_LIMIT)}).to_string();
    let over_payload = "y".repeat(MAX_MESSAGE_BYTES + 100);
    let mut rows = vec![
        // POST /topics: not a JSON object.
        post(
            "topics: malformed JSON",
            "/topics",
            r#"{"name":"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: trailing garbage",
            "/topics",
            r#"{"name":"a"} x"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: JSON array",
            "/topics",
            r#"["orders"]"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: JSON string",
            "/topics",
            r#""orders""#,
            400,
            "BAD_REQUEST",
        ),
        post("topics: JSON null", "/topics", "null", 400, "BAD_REQUEST"),
        post("topics: empty body", "/topics", "", 400, "BAD_REQUEST"),
        post(
            "topics: whitespace body",
            "/topics",
            "  \n",
            400,
            "BAD_REQUEST",
        ),
        case(
            "topics: no body at all",
            Method::POST,
            "/topics",
            None,
            None,
            400,
            Some("BAD_REQUEST"),
        ),
        // POST /topics: wrong or missing name.
        post(
            "topics: name is a number",
            "/topics",
            r#"{"name":5}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: name is null",
            "/topics",
            r#"{"name":null}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: name is an object",
            "/topics",
            r#"{"name":{"a":1}}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: name missing",
            "/topics",
            r#"{"topic":"a"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: empty name",
            "/topics",
            r#"{"name":""}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: 256-char name",
            "/topics",
            json!({ "name": long_name }).to_string(),
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: space in name",
            "/topics",
            r#"{"name":"bad name"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: slash in name",
            "/topics",
            r#"{"name":"a/b"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: bang in name",
            "/topics",
            r#"{"name":"hey!"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: non-ASCII name",
            "/topics",
            r#"{"name":"caf\u00e9"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "topics: NUL in name",
            "/topics",
            r#"{"name":"a\u0000b"}"#,
            400,
            "BAD_REQUEST",
        ),
        // POST /topics: size and type.
        post(
            "topics: body over 64 KiB",
            "/topics",
            huge_topics_body,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "topics: application/xml",
            Method::POST,
            "/topics",
            Some("application/xml"),
            Some(b"<name>orders</name>".to_vec()),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        case(
            "topics: multipart/form-data",
            Method::POST,
            "/topics",
            Some("multipart/form-data; boundary=xyz"),
            Some(br#"{"name":"multipart"}"#.to_vec()),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        case(
            "topics: image/png",
            Method::POST,
            "/topics",
            Some("image/png"),
            Some(br#"{"name":"png"}"#.to_vec()),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        post(
            "topics: exists",
            "/topics",
            r#"{"name":"exists"}"#,
            409,
            "CONFLICT",
        ),
        // POST /publish: not a JSON object.
        post(
            "publish: malformed JSON",
            "/publish",
            r#"{"topic":"t","#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: JSON array",
            "/publish",
            r#"[{"topic":"t","data":1}]"#,
            400,
            "BAD_REQUEST",
        ),
        post("publish: JSON number", "/publish", "42", 400, "BAD_REQUEST"),
        post("publish: empty body", "/publish", "", 400, "BAD_REQUEST"),
        // POST /publish: wrong types and missing fields.
        post(
            "publish: topic is a number",
            "/publish",
            r#"{"topic":5,"data":1}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: topic missing",
            "/publish",
            r#"{"data":1}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: payload missing",
            "/publish",
            r#"{"topic":"t"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: message is a number",
            "/publish",
            r#"{"topic":"t","message":5}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: message is a string",
            "/publish",
            r#"{"topic":"t","message":"hi"}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: message is an array",
            "/publish",
            r#"{"topic":"t","message":[1]}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: message.id is a number",
            "/publish",
            r#"{"topic":"t","message":{"id":5,"payload":1}}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: message.id over 255 characters",
            "/publish",
            json!({"topic": "t", "message": {"id": "i".repeat(256), "payload": 1}}).to_string(),
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: empty topic",
            "/publish",
            r#"{"topic":"","data":1}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: invalid topic",
            "/publish",
            r#"{"topic":"no spaces","data":1}"#,
            400,
            "BAD_REQUEST",
        ),
        post(
            "publish: 256-char topic",
            "/publish",
            json!({"topic": "a".repeat(256), "data": 1}).to_string(),
            400,
            "BAD_REQUEST",
        ),
        // POST /publish: size and type.
        post(
            "publish: body over MAX_MESSAGE_BYTES + 64 KiB",
            "/publish",
            huge_publish_body,
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        post(
            "publish: payload over MAX_MESSAGE_BYTES (data)",
            "/publish",
            json!({"topic": "t", "data": over_payload}).to_string(),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        post(
            "publish: payload over MAX_MESSAGE_BYTES (message)",
            "/publish",
            json!({"topic": "t", "message": {"payload": {"s": over_payload}}}).to_string(),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case(
            "publish: application/xml",
            Method::POST,
            "/publish",
            Some("application/xml"),
            Some(br#"{"topic":"t","data":1}"#.to_vec()),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        case(
            "publish: multipart/form-data",
            Method::POST,
            "/publish",
            Some("multipart/form-data; boundary=xyz"),
            Some(br#"{"topic":"t","data":1}"#.to_vec()),
            415,
            Some("UNSUPPORTED_MEDIA_TYPE"),
        ),
        // POST /pub/{topic}.
        post(
            "pub: invalid topic in path",
            "/pub/bad%20name",
            "1",
            400,
            "BAD_REQUEST",
        ),
        case(
            "pub: body is not UTF-8",
            Method::POST,
            "/pub/t",
            Some("application/octet-stream"),
            Some(vec![0xff, 0xfe, 0x00, 0x80]),
            400,
            Some("BAD_REQUEST"),
        ),
        post(
            "pub: payload over MAX_MESSAGE_BYTES",
            "/pub/t",
            over_payload.clone(),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        post(
            "pub: body over MAX_MESSAGE_BYTES + 64 KiB",
            "/pub/t",
            "z".repeat(PUBLISH_BODY_LIMIT + 1),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        // Topics that do not exist, and names that cannot.
        bare(
            "get missing",
            Method::GET,
            "/topics/missing",
            404,
            "TOPIC_NOT_FOUND",
        ),
        bare(
            "delete missing",
            Method::DELETE,
            "/topics/missing",
            404,
            "TOPIC_NOT_FOUND",
        ),
        bare(
            "history missing",
            Method::GET,
            "/topics/missing/history",
            404,
            "TOPIC_NOT_FOUND",
        ),
        bare(
            "history missing with last_n",
            Method::GET,
            "/topics/missing/history?last_n=5",
            404,
            "TOPIC_NOT_FOUND",
        ),
        bare(
            "get invalid name",
            Method::GET,
            "/topics/bad%20name",
            400,
            "BAD_REQUEST",
        ),
        bare(
            "delete invalid name",
            Method::DELETE,
            "/topics/a%2Fb",
            400,
            "BAD_REQUEST",
        ),
        // History query.
        bare(
            "history last_n=abc",
            Method::GET,
            "/topics/hist/history?last_n=abc",
            400,
            "BAD_REQUEST",
        ),
        bare(
            "history last_n=-1",
            Method::GET,
            "/topics/hist/history?last_n=-1",
            400,
            "BAD_REQUEST",
        ),
        bare(
            "history last_n=1.5",
            Method::GET,
            "/topics/hist/history?last_n=1.5",
            400,
            "BAD_REQUEST",
        ),
        bare(
            "history last_n empty",
            Method::GET,
            "/topics/hist/history?last_n=",
            400,
            "BAD_REQUEST",
        ),
        // Unknown routes.
        bare("unknown route", Method::GET, "/nope", 404, "NOT_FOUND"),
        bare(
            "unknown POST route",
            Method::POST,
            "/subscribe",
            404,
            "NOT_FOUND",
        ),
        bare(
            "too deep",
            Method::GET,
            "/topics/hist/history/more",
            404,
            "NOT_FOUND",
        ),
        bare(
            "unknown under topic",
            Method::GET,
            "/topics/hist/messages",
            404,
            "NOT_FOUND",
        ),
        bare("api prefix", Method::GET, "/api/topics", 404, "NOT_FOUND"),
        // Wrong methods.
        wrong_method(Method::PUT, "/topics", &["GET", "POST"]),
        wrong_method(Method::DELETE, "/topics", &["GET", "POST"]),
        wrong_method(Method::POST, "/topics/hist", &["GET", "DELETE"]),
        wrong_method(Method::PATCH, "/topics/hist", &["GET", "DELETE"]),
        wrong_method(Method::POST, "/topics/hist/history", &["GET"]),
        wrong_method(Method::DELETE, "/topics/hist/history", &["GET"]),
        wrong_method(Method::GET, "/publish", &["POST"]),
        wrong_method(Method::PUT, "/publish", &["POST"]),
        wrong_method(Method::GET, "/pub/t", &["POST"]),
        wrong_method(Method::POST, "/health", &["GET"]),
        wrong_method(Method::DELETE, "/stats", &["GET"]),
        wrong_method(Method::POST, "/metrics", &["GET"]),
        wrong_method(Method::POST, "/livez", &["GET"]),
        wrong_method(Method::POST, "/readyz", &["GET"]),
        wrong_method(Method::POST, "/ws", &["GET"]),
    ];
    // Rows that must succeed: unknown fields are ignored, and the boundaries are inclusive.
    let ok = |what: &str, path: &str, body: String, status: u16| {
        case(
            what,
            Method::POST,
            path,
            JSON,
            Some(body.into_bytes()),
            status,
            None,
        )
    };
    rows.extend([
        ok(
            "topics: unknown fields ignored",
            "/topics",
            json!({"name": "extra", "zzz": 1, "nested": {"a": [1, 2]}}).to_string(),
            201,
        ),
        ok(
            "topics: 255-char name",
            "/topics",
            json!({ "name": max_name }).to_string(),
            201,
        ),
        ok(
            "topics: every allowed character",
            "/topics",
            json!({"name": "AZaz09_-.:"}).to_string(),
            201,
        ),
        ok(
            "publish: unknown fields ignored",
            "/publish",
            json!({"topic": "t", "data": 1, "zzz": true, "request_id": "r"}).to_string(),
            200,
        ),
        ok(
            "publish: message with unknown fields",
            "/publish",
            json!({"topic": "t", "message": {"payload": 2, "extra": "x"}}).to_string(),
            200,
        ),
        ok(
            "publish: payload exactly MAX_MESSAGE_BYTES",
            "/publish",
            // A JSON string of n characters is n + 2 bytes of compact JSON.
            json!({"topic": "t", "data": "q".repeat(MAX_MESSAGE_BYTES - 2)}).to_string(),
            200,
        ),
    ]);
    rows
}

async fn run_case(server: &TestServer, c: &Case) {
    let mut req = http().request(c.method.clone(), server.url(&c.path));
    if let Some(ct) = c.content_type {
        req = req.header("Content-Type", ct);
    }
    if let Some(body) = &c.body {
        req = req.body(body.clone());
    }
    let resp = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{}: request failed: {e}", c.what));
    let status = resp.status();
    assert!(
        !status.is_server_error(),
        "{}: server error {status}",
        c.what
    );
    assert_eq!(status.as_u16(), c.status, "{}", c.what);
    assert_json_content_type(&resp, &c.what);
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {text}", c.what));
    match c.code {
        Some(code) => {
            let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
            assert_eq!(keys, ["error"], "{}: {body}", c.what);
            assert_eq!(body["error"]["code"], code, "{}: {body}", c.what);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.trim().is_empty()),
                "{}: message must be a non-empty string: {body}",
                c.what
            );
        }
        None => assert!(body.get("error").is_none(), "{}: {body}", c.what),
    }
    if c.status == 405 {
        let allow = allow.unwrap_or_else(|| panic!("{}: 405 without Allow", c.what));
        let listed: Vec<String> = allow
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        for m in c.allow {
            assert!(
                listed.iter().any(|l| l == m),
                "{}: Allow `{allow}` lacks {m}",
                c.what
            );
        }
        assert!(
            !listed.iter().any(|l| l == c.method.as_str()),
            "{}: Allow `{allow}` lists the refused method",
            c.what
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_documented_status_and_error_body() {
    let server = TestServer::start_with(|c| c.max_message_bytes = MAX_MESSAGE_BYTES).await;
    for name in ["exists", "hist"] {
        let resp = http()
            .post(server.url("/topics"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let rows = table();
    assert!(rows.len() > 80, "table shrank to {}", rows.len());
    for c in &rows {
        run_case(&server, c).await;
    }

    // The refused requests changed nothing: only the successful rows created topics, and only
    // the successful publishes were stored.
    let topics: Value = get_json(&server.url("/topics")).await;
    let mut names: Vec<String> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut want = vec![
        "AZaz09_-.:".to_string(),
        "exists".into(),
        "extra".into(),
        "hist".into(),
        "m".repeat(255),
        "t".into(),
    ];
    want.sort();
    assert_eq!(names, want);
    let t: Value = get_json(&server.url("/topics/t")).await;
    assert_eq!(
        t["messages"], 3,
        "only the three good publishes are stored: {t}"
    );

    // Still healthy.
    let livez = http().get(server.url("/livez")).send().await.unwrap();
    assert_eq!(livez.status(), 200);
    let health = http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");
    let resp = http()
        .post(server.url("/publish"))
        .json(&json!({"topic": "hist", "data": "after"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_content_types_are_parsed_as_json() {
    let server = TestServer::start().await;
    for (i, ct) in [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/merge-patch+json"),
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut req = http()
            .post(server.url("/topics"))
            .body(json!({"name": format!("ct{i}")}).to_string());
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 201, "POST /topics with {ct:?}");
        let mut req = http()
            .post(server.url("/publish"))
            .body(json!({"topic": format!("ct{i}"), "data": i}).to_string());
        if let Some(ct) = ct {
            req = req.header("Content-Type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "POST /publish with {ct:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "published");
        assert_eq!(body["seq"], 1);
    }
}

/// A body that is not JSON is explained in words a user knows (what was expected, at which
/// byte), not in the parser's internal names (`ExpectedNull at character 0`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_errors_say_what_was_expected_and_where() {
    let server = TestServer::start().await;
    let cases: &[(&str, Option<&str>, &str, &str)] = &[
        // curl -d sends a form content type; /publish reads it as JSON all the same.
        (
            "/publish",
            Some("application/x-www-form-urlencoded"),
            "not json",
            "expected a JSON object at byte 0, found `n`",
        ),
        (
            "/publish",
            Some("application/json"),
            r#"{"topic":"t","data":"#,
            "unexpected end of input after byte 19: an object or array is not closed",
        ),
        (
            "/publish",
            None,
            r#"{"topic":"t","data":yes}"#,
            "expected a JSON value at byte 20, found `y` (strings need double quotes)",
        ),
        (
            "/topics",
            Some("application/json"),
            r#"{"name":"a",}"#,
            "expected a double-quoted key at byte 12, found `}` (no comma after the last member)",
        ),
        (
            "/topics",
            Some("application/json"),
            "{'name':'a'}",
            "unexpected `'` at byte 1 inside an object: expected a double-quoted key, `,` or `}`",
        ),
    ];
    for (path, content_type, body, expected) in cases {
        let mut req = http().post(server.url(path)).body(body.to_string());
        if let Some(t) = content_type {
            req = req.header("content-type", *t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["code"], "BAD_REQUEST", "{body}: {v}");
        assert_eq!(
            v["error"]["message"],
            format!("the body is not valid JSON: {expected}"),
            "{body}"
        );
    }
}
