//! PROTOCOL.md §4: with `API_KEY` set every route but the probes (and CORS preflight) needs the
//! key, in any of its three forms; a missing or wrong key is a 401 `UNAUTHORIZED` JSON error, and
//! a WebSocket upgrade is refused with HTTP 401 before it happens.

mod common;

use common::assert::{assert_refused_401, assert_rest_error};
use common::rest::{upgrade_request, SAMPLE_WS_KEY};
use common::{http, TestServer, WsClient};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;

const KEY: &str = "s3cret";

/// Where a request carries its key (or a wrong one).
#[derive(Debug, Clone, Copy)]
enum Key {
    None,
    Header(&'static str),
    Bearer(&'static str),
    Query(&'static str),
    /// A raw `Authorization` header value.
    Authorization(&'static str),
}

const RIGHT_FORMS: [Key; 3] = [Key::Header(KEY), Key::Bearer(KEY), Key::Query(KEY)];

const WRONG_FORMS: [Key; 9] = [
    Key::None,
    Key::Header("nope"),
    Key::Header("S3CRET"),
    Key::Header("s3cret2"),
    Key::Bearer("s3cre"),
    Key::Query("nope"),
    Key::Query(""),
    Key::Authorization("s3cret"),
    Key::Authorization("Basic s3cret"),
];

impl Key {
    /// The header that carries the key, when it travels in a header.
    fn header(self) -> Option<(&'static str, String)> {
        match self {
            Key::Header(k) => Some(("X-API-Key", k.to_string())),
            Key::Bearer(k) => Some(("Authorization", format!("Bearer {k}"))),
            Key::Authorization(v) => Some(("Authorization", v.to_string())),
            Key::None | Key::Query(_) => None,
        }
    }
}

/// Appends `api_key=` to `path` when the key travels in the query.
fn with_query(path: &str, key: Key) -> String {
    match key {
        Key::Query(k) => {
            let sep = if path.contains('?') { '&' } else { '?' };
            format!("{path}{sep}api_key={k}")
        }
        _ => path.to_string(),
    }
}

/// One REST call and the status it answers when authorized.
struct Call {
    method: Method,
    path: String,
    body: Option<String>,
    ok: StatusCode,
}

impl Call {
    fn new(method: Method, path: impl Into<String>, body: Option<Value>, ok: u16) -> Self {
        Self {
            method,
            path: path.into(),
            body: body.map(|b| b.to_string()),
            ok: StatusCode::from_u16(ok).unwrap(),
        }
    }
}

/// Every REST route of PROTOCOL.md §2–§3. `tag` makes the names that a successful call consumes
/// (the topic it creates, the topic it deletes) unique per round.
fn rest_routes(tag: &str) -> Vec<Call> {
    vec![
        Call::new(
            Method::POST,
            "/topics",
            Some(json!({"name": format!("new-{tag}")})),
            201,
        ),
        Call::new(Method::GET, "/topics", None, 200),
        Call::new(Method::GET, "/topics/keep", None, 200),
        Call::new(Method::DELETE, format!("/topics/del-{tag}"), None, 200),
        Call::new(Method::GET, "/topics/keep/history", None, 200),
        Call::new(Method::GET, "/topics/keep/history?last_n=1", None, 200),
        Call::new(
            Method::POST,
            "/publish",
            Some(json!({"topic": "keep", "data": {"tag": tag}})),
            200,
        ),
        Call {
            method: Method::POST,
            path: "/pub/keep".into(),
            body: Some("raw text".into()),
            ok: StatusCode::OK,
        },
        Call::new(Method::GET, "/health", None, 200),
        Call::new(Method::GET, "/stats", None, 200),
        Call::new(Method::GET, "/metrics", None, 200),
    ]
}

async fn send(server: &TestServer, call: &Call, key: Key) -> reqwest::Response {
    let mut req = http().request(
        call.method.clone(),
        server.url(&with_query(&call.path, key)),
    );
    if let Some((name, value)) = key.header() {
        req = req.header(name, value);
    }
    if let Some(body) = &call.body {
        req = req
            .header("Content-Type", "application/json")
            .body(body.clone());
    }
    req.send().await.unwrap()
}

/// Creates `name` with the right key.
async fn create(server: &TestServer, name: &str) {
    let resp = http()
        .post(server.url("/topics"))
        .header("X-API-Key", KEY)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "create {name}");
}

async fn get_with_key(server: &TestServer, path: &str) -> (StatusCode, Value) {
    let resp = http()
        .get(server.url(path))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A WebSocket client whose handshake carries `key`.
async fn ws_connect(
    server: &TestServer,
    path: &str,
    key: Key,
) -> Result<WsClient, tungstenite::Error> {
    let url = server.ws_url(&with_query(path, key));
    let header = key.header();
    let headers: Vec<(&'static str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
    WsClient::try_connect_with(&url, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_route_refuses_a_missing_or_wrong_key_and_does_nothing() {
    let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
    create(&server, "keep").await;
    create(&server, "del-x").await;
    for key in WRONG_FORMS {
        for call in rest_routes("x") {
            let what = format!("{} {} with {key:?}", call.method, call.path);
            let resp = send(&server, &call, key).await;
            assert_rest_error(resp, 401, "UNAUTHORIZED", &what).await;
        }
    }
    // None of the refused calls had an effect.
    let (status, _) = get_with_key(&server, "/topics/new-x").await;
    assert_eq!(status, 404, "refused POST /topics created the topic");
    let (status, _) = get_with_key(&server, "/topics/del-x").await;
    assert_eq!(status, 200, "refused DELETE removed the topic");
    let (status, keep) = get_with_key(&server, "/topics/keep").await;
    assert_eq!(status, 200);
    assert_eq!(keep["messages"], 0, "refused publishes were stored: {keep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_route_accepts_each_of_the_three_key_forms() {
    let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
    create(&server, "keep").await;
    for (i, key) in RIGHT_FORMS.into_iter().enumerate() {
        let tag = i.to_string();
        create(&server, &format!("del-{tag}")).await;
        for call in rest_routes(&tag) {
            let what = format!("{} {} with {key:?}", call.method, call.path);
            let resp = send(&server, &call, key).await;
            assert_eq!(resp.status(), call.ok, "{what}");
            let body = resp.text().await.unwrap();
            if call.path == "/metrics" {
                assert!(body.contains("herald_topics"), "{what}: {body}");
            } else {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert!(v.get("error").is_none(), "{what}: {v}");
            }
        }
        let (status, _) = get_with_key(&server, &format!("/topics/new-{tag}")).await;
        assert_eq!(status, 200, "POST /topics with {key:?} did not create");
        let (status, _) = get_with_key(&server, &format!("/topics/del-{tag}")).await;
        assert_eq!(status, 404, "DELETE with {key:?} did not delete");
    }
    // Two publishes per round (POST /publish and POST /pub).
    let (_, keep) = get_with_key(&server, "/topics/keep").await;
    assert_eq!(keep["messages"], 6, "{keep}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_without_the_right_key_are_refused_with_401_before_upgrading() {
    let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
    for key in WRONG_FORMS {
        for path in ["/ws", "/ws/sub/secret-topic", "/ws/sub/secret-topic?id=c1"] {
            let result = ws_connect(&server, path, key).await;
            assert_refused_401(result, &format!("{path} with {key:?}"));
        }
    }
    // The plain helper (no key at all) is refused the same way.
    assert_refused_401(
        WsClient::try_connect(&server.ws_url("/ws")).await,
        "try_connect /ws",
    );
    // The refusal carries the JSON error body (checked over plain HTTP with upgrade headers).
    for path in ["/ws", "/ws/sub/secret-topic"] {
        let resp = upgrade_request(server.url(path), SAMPLE_WS_KEY)
            .send()
            .await
            .unwrap();
        assert_rest_error(resp, 401, "UNAUTHORIZED", path).await;
    }
    // Nothing happened behind the refusals: no session, no auto-created topic.
    let (status, _) = get_with_key(&server, "/topics/secret-topic").await;
    assert_eq!(status, 404, "a refused /ws/sub upgrade created its topic");
    let (_, stats) = get_with_key(&server, "/stats").await;
    assert_eq!(stats["connections"], 0, "{stats}");
    assert_eq!(stats["subscribers"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_with_the_key_in_any_form_connect_and_work() {
    let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
    for (i, key) in RIGHT_FORMS.into_iter().enumerate() {
        let topic = format!("t{i}");
        let mut ws = ws_connect(&server, "/ws", key)
            .await
            .unwrap_or_else(|e| panic!("/ws with {key:?}: {e}"));
        let mut sub = ws_connect(&server, &format!("/ws/sub/{topic}?id=c{i}"), key)
            .await
            .unwrap_or_else(|e| panic!("/ws/sub with {key:?}: {e}"));
        let pong = ws.request(json!({"type": "ping", "request_id": "p"})).await;
        assert_eq!(pong["type"], "pong", "{pong}");
        assert_eq!(pong["request_id"], "p");
        // The /ws/sub socket has no ack; a ping round trip proves its subscription is in place.
        let pong = sub
            .request(json!({"type": "ping", "request_id": "s"}))
            .await;
        assert_eq!(pong["type"], "pong", "{pong}");
        ws.subscribe(&topic).await;
        // A third socket publishes, so neither subscriber's `request` skips its own event.
        let mut publisher = ws_connect(&server, "/ws", key).await.unwrap();
        let ack = publisher.publish(&topic, json!({"form": i})).await;
        assert_eq!(ack["seq"], 1, "{ack}");
        for client in [&mut ws, &mut sub] {
            let ev = client.recv_json_no_heartbeat().await;
            assert_eq!(ev["type"], "event", "{key:?}: {ev}");
            assert_eq!(ev["topic"], topic.as_str());
            assert_eq!(ev["message"]["payload"], json!({"form": i}));
            assert_eq!(ev["seq"], 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_cors_preflight_need_no_key() {
    let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
    let livez = http().get(server.url("/livez")).send().await.unwrap();
    assert_eq!(livez.status(), 200);
    assert_eq!(livez.json::<Value>().await.unwrap()["status"], "ok");
    let readyz = http().get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(readyz.status(), 200);
    assert_eq!(readyz.json::<Value>().await.unwrap()["status"], "ready");
    // A wrong key does not spoil the probes either.
    let livez = http()
        .get(server.url("/livez"))
        .header("X-API-Key", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(livez.status(), 200);
    for path in [
        "/topics",
        "/topics/keep",
        "/topics/keep/history",
        "/publish",
        "/pub/keep",
        "/ws",
        "/health",
    ] {
        let resp = http()
            .request(Method::OPTIONS, server.url(path))
            .header("Origin", "https://dashboard.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-api-key, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "OPTIONS {path}");
        let allow_origin = resp
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(allow_origin.as_deref(), Some("*"), "OPTIONS {path}");
        let allow_headers = resp
            .headers()
            .get("access-control-allow-headers")
            .map(|v| v.to_str().unwrap().to_ascii_lowercase())
            .unwrap_or_default();
        assert!(
            allow_headers.contains("x-api-key") && allow_headers.contains("authorization"),
            "OPTIONS {path}: allow-headers {allow_headers}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_api_key_everything_is_open() {
    let server = TestServer::start().await;
    create(&server, "keep").await;
    create(&server, "del-open").await;
    for call in rest_routes("open") {
        let what = format!("{} {}", call.method, call.path);
        let resp = send(&server, &call, Key::None).await;
        assert_eq!(resp.status(), call.ok, "{what}");
    }
    // A stray key is not an error when auth is off.
    let resp = send(
        &server,
        &Call::new(Method::GET, "/health", None, 200),
        Key::Header("whatever"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let mut ws = server.ws().await;
    let mut sub = server.ws_path("/ws/sub/keep?id=open").await;
    let pong = sub.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong");
    ws.subscribe("keep").await;
    let ack = server.ws().await.publish("keep", json!("hi")).await;
    for client in [&mut ws, &mut sub] {
        let ev = client.recv_json_no_heartbeat().await;
        assert_eq!(ev["type"], "event", "{ev}");
        assert_eq!(ev["seq"], ack["seq"]);
        assert_eq!(ev["message"]["payload"], "hi");
    }
}
