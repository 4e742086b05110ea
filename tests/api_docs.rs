//! The API documents and the dashboard (issue 8): the server serves exactly the files in `api/` and
//! `dashboard/` without a key, every path and method in `api/openapi.json` is the router's (the
//! paths themselves are matched against the router's source by a unit test in
//! `src/server/assets.rs`), the statuses the document lists are the ones the server answers, and
//! the error codes it lists are the server's.

mod common;

use std::collections::BTreeSet;

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
        ("/dashboard/style.css", "dashboard/style.css", "text/css"),
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
        let upgraded = http()
            .get(server.url(path))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
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
    let ws_codes: BTreeSet<String> = yaml
        .split("ErrorCode:")
        .nth(1)
        .and_then(|s| s.split("enum: [").nth(1))
        .and_then(|s| s.split(']').next())
        .expect("asyncapi ErrorCode enum")
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    assert!(ws_codes.len() >= 8, "{ws_codes:?}");
    let unknown: Vec<_> = ws_codes.difference(&documented).collect();
    assert!(
        unknown.is_empty(),
        "asyncapi codes the server lacks: {unknown:?}"
    );
}
