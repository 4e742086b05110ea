//! The API documents and the dashboard (issue 8): the server serves exactly the files in `api/` and
//! `dashboard/` without a key, every path and method in `api/openapi.json` is the router's (the
//! paths themselves are matched against the router's source by a unit test in
//! `src/server/assets.rs`), the statuses the document lists are the ones the server answers (a
//! token without the right gets the documented 403 `FORBIDDEN` on every route that checks one), the
//! error codes it lists are the server's, and `api/asyncapi.yaml` knows every client frame type and
//! info message the server has.

mod common;

use std::collections::BTreeSet;

use common::rest::{upgrade_request, SAMPLE_WS_KEY};
use common::{http, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const KEY: &str = "docs-key";

fn repo_file(path: &str) -> Vec<u8> {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn openapi() -> Value {
    serde_json::from_slice(&repo_file("api/openapi.json")).expect("api/openapi.json is JSON")
}

async fn keyed_server() -> TestServer {
    TestServer::start_with(|c| c.api_key = Some(KEY.into())).await
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{name}", "docs-topic")
        .replace("{topic}", "docs-topic")
}

/// The documented methods of each path, upper case.
fn documented_methods(doc: &Value) -> Vec<(String, BTreeSet<String>)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete", "head"].contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// The statuses `api/openapi.json` lists for `method path`.
fn documented_statuses(doc: &Value, path: &str, method: &str) -> BTreeSet<u16> {
    doc["paths"][path][method.to_lowercase()]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} has no responses"))
        .keys()
        .map(|k| k.parse().expect("numeric status"))
        .collect()
}

#[tokio::test]
async fn served_documents_and_dashboard_equal_the_files_and_need_no_key() {
    let server = keyed_server().await;
    let files = [
        ("/openapi.json", "api/openapi.json", "application/json"),
        ("/asyncapi.yaml", "api/asyncapi.yaml", "application/yaml"),
        ("/dashboard", "dashboard/index.html", "text/html"),
        ("/dashboard/app.js", "dashboard/app.js", "text/javascript"),
        (
            "/dashboard/herald-client.js",
            "clients/js/index.js",
            "text/javascript",
        ),
        ("/dashboard/style.css", "dashboard/style.css", "text/css"),
        ("/favicon.ico", "dashboard/favicon.svg", "image/svg+xml"),
    ];
    for (path, file, media) in files {
        let resp = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path} without a key");
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with(media),
            "{path}: content-type {content_type}"
        );
        assert_eq!(
            resp.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
        let body = resp.bytes().await.unwrap();
        assert!(
            body.as_ref() == repo_file(file).as_slice(),
            "{path} differs from {file}"
        );

        let head = http().head(server.url(path)).send().await.unwrap();
        assert_eq!(head.status(), 200, "HEAD {path}");
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
    }
    // The page may run only its own script and talk only to this server.
    let page = http().get(server.url("/dashboard")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    // Everything else still needs the key.
    for path in ["/topics", "/stats", "/dashboard/other.js", "/openapi.yaml"] {
        let resp = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 401, "GET {path} without a key");
    }
}

/// Issue 18's small things: `/dashboard/` leads to the page (relative links need `/dashboard`),
/// browsers' `/favicon.ico` is there without a key, and JSON bodies end with a newline.
#[tokio::test]
async fn dashboard_slash_redirects_and_json_bodies_end_with_a_newline() {
    let server = keyed_server().await;
    let resp = http().get(server.url("/dashboard/")).send().await.unwrap();
    assert_eq!(resp.status(), 308, "GET /dashboard/ without a key");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let target = reqwest::Url::parse(&server.url("/dashboard/"))
        .unwrap()
        .join(&location)
        .unwrap();
    assert_eq!(target.path(), "/dashboard", "Location {location}");
    let page = http().get(target).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("href=\"favicon.ico\""));

    let keyed = |path: &str| http().get(server.url(path)).header("X-API-Key", KEY);
    for (request, status) in [
        (keyed("/health"), 200),
        (keyed("/topics/none"), 404),
        (http().get(server.url("/stats")), 401),
        (http().get(server.url("/livez")), 200),
    ] {
        let resp = request.send().await.unwrap();
        assert_eq!(resp.status(), status);
        let body = resp.text().await.unwrap();
        assert!(
            body.ends_with("}\n"),
            "body without a final newline: {body:?}"
        );
        serde_json::from_str::<Value>(&body).expect("still JSON");
    }
}

#[tokio::test]
async fn documented_methods_are_the_routers_and_undocumented_ones_get_405_with_allow() {
    let doc = openapi();
    let server = TestServer::start().await;
    let created = http()
        .post(server.url("/topics"))
        .json(&json!({"name": "docs-topic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let probe = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    for (path, methods) in documented_methods(&doc) {
        let url = server.url(&concrete(&path));
        for method in probe {
            let resp = http()
                .request(Method::from_bytes(method.as_bytes()).unwrap(), &url)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            if methods.contains(method) {
                assert_ne!(status, 405, "{method} {path} is documented but refused");
                let statuses = documented_statuses(&doc, &path, method);
                assert!(
                    statuses.contains(&status.as_u16()),
                    "{method} {path}: {status} is not among the documented {statuses:?}"
                );
                if status == StatusCode::NOT_FOUND {
                    let body: Value = resp.json().await.unwrap();
                    assert_ne!(
                        body["error"]["code"], "NOT_FOUND",
                        "{method} {path}: no route"
                    );
                }
                if method == "DELETE" {
                    // Put it back for the paths probed after this one.
                    let _ = http()
                        .post(server.url("/topics"))
                        .json(&json!({"name": "docs-topic"}))
                        .send()
                        .await
                        .unwrap();
                }
            } else {
                assert_eq!(
                    status, 405,
                    "{method} {path} is not documented but answered"
                );
                let allow: BTreeSet<String> = resp.headers()["allow"]
                    .to_str()
                    .unwrap()
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .collect();
                let mut expected = methods.clone();
                if methods.contains("GET") {
                    expected.insert("HEAD".into());
                }
                expected.insert("OPTIONS".into());
                assert_eq!(allow, expected, "Allow of {path}");
            }
        }
    }
}

#[tokio::test]
async fn websocket_routes_answer_documented_statuses() {
    let doc = openapi();
    let server = TestServer::start().await;
    for (path, doc_path) in [("/ws", "/ws"), ("/ws/sub/docs-topic", "/ws/sub/{topic}")] {
        let statuses = documented_statuses(&doc, doc_path, "GET");
        let plain = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(plain.status(), 400, "{path} without upgrade headers");
        let upgraded = upgrade_request(server.url(path), SAMPLE_WS_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(upgraded.status(), 101, "{path}");
        for status in [400, 101, 401] {
            assert!(statuses.contains(&status), "{doc_path} lacks {status}");
        }
    }
    let keyed = keyed_server().await;
    let resp = http().get(keyed.url("/ws")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[test]
fn documented_error_codes_are_the_servers() {
    let source = String::from_utf8(repo_file("src/error.rs")).unwrap();
    let server: BTreeSet<String> = source
        .lines()
        .filter_map(|l| l.trim().split_once("=> \""))
        .filter_map(|(_, rest)| rest.split_once('"'))
        .map(|(code, _)| code.to_string())
        .collect();
    assert!(server.len() >= 10, "parsed {server:?}");
    let doc = openapi();
    let documented: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum")
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        documented, server,
        "api/openapi.json ErrorCode vs src/error.rs"
    );
    // The WebSocket codes of api/asyncapi.yaml (one flow list) are the server's too.
    let yaml = String::from_utf8(repo_file("api/asyncapi.yaml")).unwrap();
    let ws_codes = flow_list(&yaml, "ErrorCode:", "enum");
    assert!(ws_codes.len() >= 8, "{ws_codes:?}");
    let unknown: Vec<_> = ws_codes.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "asyncapi codes the server lacks: {unknown:?}"
    );
}

/// The items of the first flow list `key: [a, b]` after `section` in the YAML text `yaml`.
fn flow_list(yaml: &str, section: &str, key: &str) -> BTreeSet<String> {
    yaml.split(section)
        .nth(1)
        .and_then(|s| s.split(&format!("{key}: [")).nth(1))
        .and_then(|s| s.split(']').next())
        .unwrap_or_else(|| panic!("api/asyncapi.yaml: no `{key}: [` under {section}"))
        .split(',')
        .map(|item| item.trim().to_string())
        .collect()
}

/// Every `"key":"value"` value the Rust source `file` writes for `key`, read from its text.
fn written_values(file: &str, key: &str) -> BTreeSet<String> {
    let source = String::from_utf8(repo_file(file)).unwrap();
    let marker = format!("\"{key}\":\"");
    source
        .split(&marker)
        .skip(1)
        .filter_map(|rest| rest.split_once('"'))
        .map(|(value, _)| value.to_string())
        .collect()
}

#[test]
fn asyncapi_documents_every_client_frame_type_and_info_message() {
    let yaml = String::from_utf8(repo_file("api/asyncapi.yaml")).unwrap();
    // The frame types the decoder accepts: `Some(Some("auth")) => Kind::Auth,`.
    let client = String::from_utf8(repo_file("src/protocol/client.rs")).unwrap();
    let types: BTreeSet<&str> = client
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Some(Some(\""))
        .filter_map(|rest| rest.split_once("\"))"))
        .map(|(kind, _)| kind)
        .collect();
    assert!(types.len() >= 5, "parsed {types:?}");
    for kind in types {
        assert!(
            yaml.contains(&format!("type: {{const: {kind}}}")),
            "api/asyncapi.yaml has no client frame of type `{kind}`"
        );
    }
    // The info messages the server writes are the InfoFrame's `msg` enum.
    let mut sent = written_values("src/protocol/server.rs", "msg");
    sent.extend(written_values("src/protocol/presence.rs", "msg"));
    assert!(sent.len() >= 4, "parsed {sent:?}");
    let documented = flow_list(&yaml, "InfoFrame:", "enum");
    assert_eq!(
        documented, sent,
        "api/asyncapi.yaml info msgs vs src/protocol/server.rs"
    );
    // The auth ack's fields are the ones the server writes.
    let ack = flow_list(&yaml, "AuthAckFrame:", "required");
    let server = String::from_utf8(repo_file("src/protocol/server.rs")).unwrap();
    for field in ["client_id", "expires_in"] {
        assert!(ack.contains(field), "AuthAckFrame lacks {field}");
        assert!(
            server.contains(&format!("\"{field}\":")),
            "server writes no {field}"
        );
    }
}

const SECRET: &str = "api-docs-secret-of-at-least-32-bytes!";

/// An HS256 token for `sub` with the `herald` claim `rights`, valid for an hour.
fn token(sub: &str, rights: Value) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": sub, "exp": exp, "herald": rights}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The codes the documented response `status` of `method path` may carry.
fn documented_codes(doc: &Value, path: &str, method: &str, status: u16) -> Vec<String> {
    let mut response = &doc["paths"][path][method.to_lowercase()]["responses"][status.to_string()];
    if let Some(name) = response["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/responses/"))
    {
        response = &doc["components"]["responses"][name];
    }
    response["content"]["application/json"]["schema"]["properties"]["error"]["properties"]["code"]
        ["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path}: no documented {status} with codes"))
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn every_route_that_checks_a_right_documents_its_403_and_401() {
    let doc = openapi();
    let server = TestServer::start_with(|c| {
        c.tokens.jwt_secret = Some(herald::config::Secret::new(SECRET));
    })
    .await;
    let admin = token("docs-admin", json!({"admin": true}));
    let created = http()
        .post(server.url("/topics"))
        .bearer_auth(&admin)
        .json(&json!({"name": "docs-topic"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    // Valid, with rights only on another topic: every right-checking route refuses it.
    let outsider = token(
        "docs-outsider",
        json!({"sub": ["elsewhere"], "pub": ["elsewhere"], "history": ["elsewhere"]}),
    );
    let bodies = [
        ("/topics", r#"{"name":"docs-other"}"#),
        ("/publish", r#"{"topic":"docs-topic","data":1}"#),
        ("/pub/{topic}", "hello"),
    ];
    let mut checked = 0;
    for (path, methods) in documented_methods(&doc) {
        for method in methods {
            let op = &doc["paths"][&path][method.to_lowercase()];
            if op["security"] == json!([]) || path.starts_with("/ws") {
                continue;
            }
            let body = bodies.iter().find(|(p, _)| *p == path).map(|(_, b)| *b);
            let send = |bearer: Option<&str>| {
                let mut req = http().request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    server.url(&concrete(&path)),
                );
                if let Some(token) = bearer {
                    req = req.bearer_auth(token);
                }
                if let Some(body) = body {
                    req = req.header("content-type", "application/json").body(body);
                }
                req.send()
            };
            for (bearer, status, code) in [
                (Some(outsider.as_str()), 403, "FORBIDDEN"),
                (None, 401, "UNAUTHORIZED"),
            ] {
                let resp = send(bearer).await.unwrap();
                assert_eq!(resp.status(), status, "{method} {path} with {bearer:?}");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
                let codes = documented_codes(&doc, &path, &method, status);
                assert!(
                    codes.iter().any(|c| c == code),
                    "{method} {path}: {status} documents {codes:?}, not {code}"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 11, "routes that check a right");
    // `/ws/sub/{topic}` subscribes before the upgrade, so a missing `sub` right is a 403 there.
    let resp = upgrade_request(server.url("/ws/sub/docs-topic"), SAMPLE_WS_KEY)
        .bearer_auth(&outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let codes = documented_codes(&doc, "/ws/sub/{topic}", "GET", 403);
    assert_eq!(codes, ["FORBIDDEN"]);
}
