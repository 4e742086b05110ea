//! `ALLOWED_ORIGINS`: browser WebSocket upgrades from other origins are refused before upgrading;
//! listed origins, the server's own origin (its dashboard) and non-browser clients (no Origin
//! header) connect.

mod common;

use common::rest::get_json;
use common::{TestServer, WsClient};
use serde_json::json;
use tokio_tungstenite::tungstenite::Error as WsError;

/// Opens `/ws` as a browser on page `origin` would, or as a non-browser client (`None`).
async fn connect_with_origin(
    server: &TestServer,
    origin: Option<&str>,
) -> Result<WsClient, WsError> {
    let headers: Vec<(&'static str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    WsClient::try_connect_with(&server.ws_url("/ws"), &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_origins_may_open_websockets() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    for refused in [
        "https://evil.example",
        "null",
        "https://app.example.com.evil",
    ] {
        match connect_with_origin(&server, Some(refused)).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status(), 403, "{refused}");
                let body = response.body().as_deref().unwrap_or_default();
                let body: serde_json::Value = serde_json::from_slice(body).unwrap();
                assert_eq!(body["error"]["code"], "FORBIDDEN", "{refused}");
            }
            Err(other) => panic!("{refused}: unexpected error {other}"),
            Ok(_) => panic!("{refused}: upgrade accepted"),
        }
    }
    let health: serde_json::Value = get_json(&server.url("/health")).await;
    assert_eq!(
        health["connections"], 0,
        "refused upgrades left sessions: {health}"
    );
    for allowed in [
        Some("https://app.example.com"),
        Some("HTTPS://App.Example.com/"),
        None,
    ] {
        let mut ws = connect_with_origin(&server, allowed)
            .await
            .unwrap_or_else(|e| panic!("{allowed:?} refused: {e}"));
        let pong = ws.request(json!({"type": "ping"})).await;
        assert_eq!(pong["type"], "pong");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_allow_list_every_origin_connects() {
    let server = TestServer::start().await;
    let mut ws = connect_with_origin(&server, Some("https://anywhere.example"))
        .await
        .expect("no allow-list: any origin");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_own_origin_needs_no_listing() {
    let server = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    // The client sends `Host: 127.0.0.1:port`: a page served from there is the server's own,
    // over http or (behind a TLS-terminating balancer) https.
    let addr = server.addr;
    for own in [format!("http://{addr}"), format!("https://{addr}")] {
        let mut ws = connect_with_origin(&server, Some(&own))
            .await
            .unwrap_or_else(|e| panic!("{own} refused: {e}"));
        assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
    }
    // Same host, another port is another origin; so is the bare host.
    let other_port = format!("http://{}:{}", addr.ip(), addr.port() ^ 1);
    for foreign in [other_port, format!("http://{}", addr.ip())] {
        match connect_with_origin(&server, Some(&foreign)).await {
            Err(WsError::Http(response)) => assert_eq!(response.status(), 403, "{foreign}"),
            Err(other) => panic!("{foreign}: unexpected error {other}"),
            Ok(_) => panic!("{foreign}: upgrade accepted"),
        }
    }
}
