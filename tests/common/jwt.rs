//! Token auth (PROTOCOL.md §4) for the tests: tokens minted with the real `jsonwebtoken` crate,
//! the settings that turn tokens on, credentials on a WebSocket upgrade, and REST calls carrying
//! them. The config fields are set here only, so a renamed setting is fixed in one place.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use herald::config::{Config, Secret};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::{http, TestServer, WsClient};

/// `JWT_SECRET` of the test servers (at least 32 bytes, as the server requires).
pub const SECRET: &str = "herald-tests-jwt-secret-0123456789abcdef";
/// A secret the server does not know: its tokens have a bad signature.
pub const OTHER_SECRET: &str = "not-the-herald-secret-0123456789abcdef!!";
/// `API_KEY` of the test servers that also accept tokens.
pub const ADMIN_KEY: &str = "herald-tests-admin-key-4b1d";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A PEM test key of `tests/fixtures/auth/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

/// The `herald` claim granting `sub`, `pub` and `history` on those patterns.
pub fn rights(sub: &[&str], publish: &[&str], history: &[&str]) -> Value {
    json!({"sub": sub, "pub": publish, "history": history, "presence": [], "admin": false})
}

/// The `herald` claim of an admin token.
pub fn admin_rights() -> Value {
    json!({"admin": true})
}

/// Claims of `sub` expiring in `ttl` seconds (negative: already expired) with `herald` rights
/// (`Value::Null`: no `herald` claim at all).
pub fn claims(sub: &str, ttl: i64, herald: Value) -> Value {
    let exp = now() as i64 + ttl;
    let mut c = json!({"sub": sub, "exp": exp, "iat": now()});
    if !herald.is_null() {
        c["herald"] = herald;
    }
    c
}

/// Signs `claims` with `header` and `key`.
pub fn sign_with(header: &Header, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(header, claims, key).expect("jsonwebtoken encodes")
}

/// Signs `claims` with `alg` and the matching test key: `SECRET` for HS*, the RSA fixture for
/// RS*, the P-256 or P-384 fixture for ES256 / ES384.
pub fn sign(alg: Algorithm, claims: &Value) -> String {
    let pem = |name: &str| std::fs::read(fixture(name)).expect("test key fixture");
    let key = match alg {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
            EncodingKey::from_secret(SECRET.as_bytes())
        }
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
            EncodingKey::from_rsa_pem(&pem("rsa_private.pem")).expect("RSA fixture")
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem("ec256_private.pem")).expect("P-256"),
        Algorithm::ES384 => EncodingKey::from_ec_pem(&pem("ec384_private.pem")).expect("P-384"),
        other => panic!("no test key for {other:?}"),
    };
    sign_with(&Header::new(alg), &key, claims)
}

/// An HS256 token of `sub` with `herald` rights, valid for `ttl` seconds.
pub fn token(sub: &str, ttl: i64, herald: Value) -> String {
    sign(Algorithm::HS256, &claims(sub, ttl, herald))
}

/// An HS256 token signed with a secret the server does not know.
pub fn wrong_signature(claims: &Value) -> String {
    sign_with(
        &Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(OTHER_SECRET.as_bytes()),
        claims,
    )
}

/// An `alg: none` token (header and claims, empty signature). Built by hand: jsonwebtoken has no
/// `none` algorithm and refuses to produce one, which is the very token an attacker sends.
pub fn unsigned(claims: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "typ": "JWT"})),
        part(claims)
    )
}

/// The RS/HS confusion: an HS256 token whose HMAC secret is the server's PEM public key, which an
/// attacker can read; a verifier that lets the token's `alg` pick how the key is used accepts it.
pub fn hs256_keyed_with_public_pem(public_pem: &Path, claims: &Value) -> String {
    let pem = std::fs::read(public_pem).expect("public key fixture");
    sign_with(
        &Header::new(Algorithm::HS256),
        &EncodingKey::from_secret(&pem),
        claims,
    )
}

/// Turns tokens on with `JWT_SECRET` = [`SECRET`].
pub fn tokens_on(c: &mut Config) {
    c.tokens.jwt_secret = Some(Secret::new(SECRET));
}

/// Turns tokens on with `JWT_PUBLIC_KEY` only (no `JWT_SECRET`).
pub fn public_key_only(c: &mut Config, pem: PathBuf) {
    c.tokens.jwt_secret = None;
    c.tokens.jwt_public_key = Some(pem);
}

/// `API_KEY` = [`ADMIN_KEY`].
pub fn admin_key(c: &mut Config) {
    c.api_key = Some(ADMIN_KEY.into());
}

/// `JWT_ISSUER` and `JWT_AUDIENCE`.
pub fn issuer_and_audience(c: &mut Config, iss: &str, aud: &str) {
    c.tokens.jwt_issuer = Some(iss.into());
    c.tokens.jwt_audience = Some(aud.into());
}

/// `JWT_LEEWAY_SECS`.
pub fn leeway(c: &mut Config, secs: u64) {
    c.tokens.jwt_leeway = Duration::from_secs(secs);
}

/// `TOKEN_REFRESH_WINDOW_SECS`.
pub fn refresh_window(c: &mut Config, secs: u64) {
    c.tokens.token_refresh_window = Duration::from_secs(secs);
}

/// `AUTH_TIMEOUT_SECS`.
pub fn auth_timeout(c: &mut Config, secs: u64) {
    c.tokens.auth_timeout = Duration::from_secs(secs);
}

/// `PERMISSIONS_FILE`.
pub fn permissions_file(c: &mut Config, file: &TempFile) {
    c.tokens.permissions_file = Some(file.path.clone());
}

/// A file in the temporary directory, removed on drop.
pub struct TempFile {
    /// Where it is.
    pub path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a fresh file whose name starts with `stem`.
    pub fn new(stem: &str, contents: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("{stem}-{}-{nanos}.toml", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        Self { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What a WebSocket upgrade or a REST call carries.
#[derive(Debug, Clone, Copy)]
pub enum Cred<'a> {
    /// Nothing.
    None,
    /// `Authorization: Bearer …` (a token or the admin key).
    Bearer(&'a str),
    /// `?token=…` (WebSocket only).
    Query(&'a str),
    /// `X-API-Key: …`.
    KeyHeader(&'a str),
    /// `?api_key=…`.
    KeyQuery(&'a str),
}

impl Cred<'_> {
    /// `path` with the query parameter this credential travels in, if any.
    pub fn path(&self, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        match self {
            Cred::Query(t) => format!("{path}{sep}token={t}"),
            Cred::KeyQuery(k) => format!("{path}{sep}api_key={k}"),
            _ => path.to_string(),
        }
    }

    /// The header this credential travels in, if any.
    pub fn header(&self) -> Option<(&'static str, String)> {
        match self {
            Cred::Bearer(t) => Some(("Authorization", format!("Bearer {t}"))),
            Cred::KeyHeader(k) => Some(("X-API-Key", k.to_string())),
            _ => None,
        }
    }
}

/// Opens a WebSocket on `path` whose upgrade carries `cred`.
pub async fn ws_with(
    server: &TestServer,
    path: &str,
    cred: Cred<'_>,
) -> Result<WsClient, tungstenite::Error> {
    ws_at(&server.ws_url(""), path, cred).await
}

/// Opens a WebSocket on `base` (`ws://host:port`) + `path` whose upgrade carries `cred`.
pub async fn ws_at(base: &str, path: &str, cred: Cred<'_>) -> Result<WsClient, tungstenite::Error> {
    let mut req = format!("{base}{}", cred.path(path))
        .into_client_request()
        .expect("request");
    if let Some((name, value)) = cred.header() {
        req.headers_mut()
            .insert(name, HeaderValue::from_str(&value).expect("header value"));
    }
    let (inner, _resp) = tokio_tungstenite::connect_async(req).await?;
    Ok(WsClient { inner })
}

/// Like [`ws_with`], panicking when the upgrade is refused.
pub async fn ws_ok(server: &TestServer, path: &str, cred: Cred<'_>) -> WsClient {
    ws_with(server, path, cred)
        .await
        .unwrap_or_else(|e| panic!("upgrade of {path} with {cred:?} refused: {e}"))
}

/// Asserts the upgrade was refused with HTTP `status` before it happened, with the §3 error body
/// when the body came along.
pub fn assert_upgrade_refused(
    result: Result<WsClient, tungstenite::Error>,
    status: u16,
    code: &str,
    what: &str,
) {
    match result {
        Ok(_) => panic!("{what}: upgraded, expected HTTP {status}"),
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), status, "{what}");
            if let Some(body) = resp.body().as_deref().filter(|b| !b.is_empty()) {
                if let Ok(v) = serde_json::from_slice::<Value>(body) {
                    assert_eq!(v["error"]["code"], code, "{what}: {v}");
                }
            }
        }
        Err(e) => panic!("{what}: expected HTTP {status} before the upgrade, got {e:?}"),
    }
}

/// The status and body of a refused upgrade, asked over plain HTTP with the upgrade headers so
/// the body can be read whole.
pub async fn upgrade_over_http(server: &TestServer, path: &str, cred: Cred<'_>) -> (u16, String) {
    let mut req = http()
        .get(server.url(&cred.path(path)))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some((name, value)) = cred.header() {
        req = req.header(name, value);
    }
    let resp = req.send().await.expect("upgrade request answered");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

/// One REST call carrying `cred`: the status and the body (JSON, or the text as a JSON string).
pub async fn rest(
    server: &TestServer,
    method: Method,
    path: &str,
    cred: Cred<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    rest_at(&server.url(""), method, path, cred, body).await
}

/// [`rest`] against `base` (`http://host:port`).
pub async fn rest_at(
    base: &str,
    method: Method,
    path: &str,
    cred: Cred<'_>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http().request(method, format!("{base}{}", cred.path(path)));
    if let Some((name, value)) = cred.header() {
        req = req.header(name, value);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("REST call answered");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// A server with tokens on (`JWT_SECRET`) and the admin key; no `PERMISSIONS_FILE`.
pub async fn token_server() -> TestServer {
    TestServer::start_with(|c| {
        tokens_on(c);
        admin_key(c);
    })
    .await
}

/// `POST /publish` of a small message to `topic`.
pub async fn rest_publish(server: &TestServer, topic: &str, cred: Cred<'_>) -> (u16, Value) {
    rest(
        server,
        Method::POST,
        "/publish",
        cred,
        Some(json!({"topic": topic, "data": {"hello": topic}})),
    )
    .await
}

/// `POST /pub/{topic}` with a raw body.
pub async fn rest_pub_raw(server: &TestServer, topic: &str, cred: Cred<'_>) -> (u16, Value) {
    rest(
        server,
        Method::POST,
        &format!("/pub/{topic}"),
        cred,
        Some(json!("raw text")),
    )
    .await
}

/// `GET path`.
pub async fn rest_get(server: &TestServer, path: &str, cred: Cred<'_>) -> (u16, Value) {
    rest(server, Method::GET, path, cred, None).await
}

/// Asserts the §3 error body: `status`, `code`, a non-empty message that does not contain
/// `secret` (the token or key that was sent).
pub fn assert_error(got: &(u16, Value), status: u16, code: &str, secret: &str, what: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "{what}: no message: {body}");
    assert_not_echoed(&body.to_string(), secret, what);
}

/// Asserts `text` holds neither `secret` nor, for a JWT, any of its parts.
pub fn assert_not_echoed(text: &str, secret: &str, what: &str) {
    if secret.len() < 8 {
        return;
    }
    assert!(
        !text.contains(secret),
        "{what}: the credential is echoed: {text}"
    );
    for part in secret.split('.').filter(|p| p.len() >= 16) {
        assert!(
            !text.contains(part),
            "{what}: a part of the token is echoed: {text}"
        );
    }
}

/// Asserts `message` names the reason: it contains one of `words` (case-insensitive).
pub fn assert_says_why(message: &str, words: &[&str], what: &str) {
    let lower = message.to_ascii_lowercase();
    assert!(
        words.iter().any(|w| lower.contains(w)),
        "{what}: message {message:?} does not say why (expected one of {words:?})"
    );
}

/// The next frame that is not a heartbeat, an event or a `token_expiring` notice: the answer to
/// the request just sent.
pub async fn reply(ws: &mut WsClient) -> Value {
    loop {
        let v = ws.recv_json_no_heartbeat().await;
        if v["type"] == "event" || (v["type"] == "info" && v["msg"] == "token_expiring") {
            continue;
        }
        return v;
    }
}

/// Sends `frame` and returns its answer ([`reply`]).
pub async fn ask(ws: &mut WsClient, frame: Value) -> Value {
    ws.send_json(frame).await;
    reply(ws).await
}

/// Sends an `auth` frame with `token` and returns the answer.
pub async fn authenticate(ws: &mut WsClient, token: &str, request_id: &str) -> Value {
    ask(
        ws,
        json!({"type": "auth", "token": token, "request_id": request_id}),
    )
    .await
}

/// Asserts an error frame with `code` answering `request_id`, whose message does not echo
/// `secret`.
pub fn assert_error_frame(v: &Value, code: &str, request_id: &str, secret: &str, what: &str) {
    assert_eq!(v["type"], "error", "{what}: {v}");
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert_eq!(v["request_id"], request_id, "{what}: {v}");
    assert_not_echoed(&v.to_string(), secret, what);
}

/// Asserts the connection is open and answers: a ping gets its pong as the very next answer.
pub async fn assert_alive(ws: &mut WsClient, what: &str) {
    let pong = ask(ws, json!({"type": "ping", "request_id": "alive"})).await;
    assert_eq!(pong["type"], "pong", "{what}: {pong}");
    assert_eq!(pong["request_id"], "alive", "{what}: {pong}");
}

/// Subscribes with `request_id`; returns the answer (ack or error).
pub async fn try_subscribe(ws: &mut WsClient, topic: &str, request_id: &str) -> Value {
    ask(
        ws,
        json!({"type": "subscribe", "topic": topic, "request_id": request_id}),
    )
    .await
}

/// Publishes `payload` with `request_id`; returns the answer (ack or error).
pub async fn try_publish(
    ws: &mut WsClient,
    topic: &str,
    payload: Value,
    request_id: &str,
) -> Value {
    ask(
        ws,
        json!({"type": "publish", "topic": topic, "message": {"payload": payload},
            "request_id": request_id}),
    )
    .await
}

/// The number of messages published to `topic`, asked with the admin key (0 when it does not
/// exist).
pub async fn messages_in(server: &TestServer, topic: &str) -> u64 {
    let (status, body) = rest(
        server,
        Method::GET,
        &format!("/topics/{topic}"),
        Cred::KeyHeader(ADMIN_KEY),
        None,
    )
    .await;
    if status == 404 {
        return 0;
    }
    assert_eq!(
        status, 200,
        "GET /topics/{topic} with the admin key: {body}"
    );
    body["messages"].as_u64().expect("messages")
}

/// Publishes `payload` to `topic` over REST with the admin key; returns its seq.
pub async fn admin_publish(server: &TestServer, topic: &str, payload: Value) -> u64 {
    let (status, body) = rest(
        server,
        Method::POST,
        "/publish",
        Cred::KeyHeader(ADMIN_KEY),
        Some(json!({"topic": topic, "data": payload})),
    )
    .await;
    assert_eq!(status, 200, "admin publish to {topic}: {body}");
    body["seq"].as_u64().expect("seq")
}

/// Unix time now, with the fraction.
pub fn wall() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Reads until wall time `until`: only heartbeats and `token_expiring` notices may arrive (they
/// are returned); an error frame, any other frame or the close fails the test.
pub async fn quiet_until(ws: &mut WsClient, until: f64, what: &str) -> Vec<Value> {
    let mut notices = Vec::new();
    loop {
        let left = until - wall();
        if left <= 0.0 {
            return notices;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(left);
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut ws.inner)).await
        {
            Err(_) => return notices,
            Ok(Some(Ok(tungstenite::Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).expect("JSON frame");
                match (v["type"].as_str(), v["msg"].as_str()) {
                    (Some("info"), Some("ping")) => {}
                    (Some("info"), Some("token_expiring")) => notices.push(v),
                    _ => panic!("{what}: expected quiet, got {v}"),
                }
            }
            Ok(Some(Ok(tungstenite::Message::Close(c)))) => panic!("{what}: closed: {c:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("{what}: socket error: {e}"),
            Ok(None) => panic!("{what}: connection ended"),
        }
    }
}

/// `u1`: subscribe and publish on `chat.*`, nothing else.
pub fn chat_token() -> String {
    token("u1", 3600, rights(&["chat.*"], &["chat.*"], &[]))
}

/// Asserts `ws` has u1's rights: `chat.*` yes, `secret.*` no (FORBIDDEN: it has credentials).
pub async fn assert_chat_rights(ws: &mut WsClient, secret: &str, what: &str) {
    let ack = try_subscribe(ws, "chat.room1", "s-ok").await;
    assert_eq!(ack["type"], "ack", "{what}: {ack}");
    assert_eq!(ack["request_id"], "s-ok", "{what}: {ack}");
    let refused = try_subscribe(ws, "secret.x", "s-no").await;
    assert_error_frame(&refused, "FORBIDDEN", "s-no", secret, what);
    assert_alive(ws, what).await;
}
