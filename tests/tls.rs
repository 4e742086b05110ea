//! Native TLS (`--tls-cert`, `--tls-key`): HTTPS REST and `wss://` on the one listener, with a CA
//! and a server certificate made here by rcgen; plain HTTP on that port gets a clear 400 and
//! harms nothing; half or broken TLS configuration stops start-up with one line and exit code 2.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::pki::Pki;
use common::spawned::{assert_one_line_refusal, run_refused};
use common::{TestServer, RECV_TIMEOUT};
use futures_util::{SinkExt, StreamExt};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// The name the server certificate is issued for; clients resolve it to the test server.
const HOST: &str = "herald.test";

/// The clients of these tests, trusting only the test CA.
trait Clients {
    fn https(&self, addr: SocketAddr) -> reqwest::Client;
    fn client_config(&self) -> Arc<rustls::ClientConfig>;
    async fn wss(&self, addr: SocketAddr, path: &str) -> Wss;
}

impl Clients for Pki {
    /// An HTTPS client that trusts only this CA and sends `HOST` to `addr`.
    fn https(&self, addr: SocketAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .resolve(HOST, addr)
            .timeout(RECV_TIMEOUT)
            .build()
            .unwrap()
    }

    /// A rustls client configuration that trusts only this CA.
    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A `wss://` WebSocket on `path`.
    async fn wss(&self, addr: SocketAddr, path: &str) -> Wss {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let tls = TlsConnector::from(self.client_config())
            .connect(ServerName::try_from(HOST).unwrap(), tcp)
            .await
            .expect("TLS handshake with the server certificate");
        let url = format!("wss://{HOST}:{}{path}", addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("WebSocket upgrade over TLS");
        Wss(ws)
    }
}

/// A WebSocket client over TLS.
struct Wss(WebSocketStream<TlsStream<TcpStream>>);

impl Wss {
    async fn send(&mut self, frame: Value) {
        self.0.send(Message::text(frame.to_string())).await.unwrap();
    }

    /// The next text frame that is not a heartbeat.
    async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(RECV_TIMEOUT, self.0.next())
                .await
                .expect("a frame in time")
                .expect("socket open")
                .expect("no socket error");
            if let Message::Text(t) = message {
                let v: Value = serde_json::from_str(&t).unwrap();
                if !(v["type"] == "info" && v["msg"] == "ping") {
                    return v;
                }
            }
        }
    }
}

async fn tls_server(pki: &Pki) -> TestServer {
    let files = pki.files();
    TestServer::start_with(move |c| c.tls = Some(files)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_rest_and_wss_publish_subscribe_round_trip() {
    let pki = Pki::new(&[HOST]);
    let server = tls_server(&pki).await;
    let https = pki.https(server.addr);
    let base = format!("https://{HOST}:{}", server.addr.port());

    let health: Value = https
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("HTTPS request")
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok", "{health}");

    let mut sub = pki.wss(server.addr, "/ws").await;
    sub.send(json!({"type": "subscribe", "topic": "secure", "request_id": "s"}))
        .await;
    let ack = sub.recv().await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // REST over HTTPS reaches the wss:// subscriber.
    let published = https
        .post(format!("{base}/publish"))
        .json(&json!({"topic": "secure", "data": {"n": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(published.status(), 200);
    let event = sub.recv().await;
    assert_eq!(event["type"], "event", "{event}");
    assert_eq!(event["message"]["payload"]["n"], 1);
    assert_eq!(event["seq"], 1);

    // And a wss:// publisher does too.
    let mut publisher = pki.wss(server.addr, "/ws").await;
    publisher
        .send(json!({"type": "publish", "topic": "secure", "message": {"payload": "two"}, "request_id": "p"}))
        .await;
    let ack = publisher.recv().await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let event = sub.recv().await;
    assert_eq!(event["message"]["payload"], "two");
    assert_eq!(event["seq"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_gets_a_clear_400_and_harms_nothing() {
    let pki = Pki::new(&[HOST]);
    let server = tls_server(&pki).await;

    let plain = common::http()
        .get(server.url("/health"))
        .send()
        .await
        .expect("a plain HTTP answer, not a reset");
    assert_eq!(plain.status(), 400);
    let body: Value = plain.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BAD_REQUEST", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("TLS"),
        "{body}"
    );

    // A plain ws:// upgrade is refused the same way.
    let refused = tokio_tungstenite::connect_async(server.ws_url("/ws")).await;
    assert!(refused.is_err(), "plain ws:// on the TLS port must fail");

    // Bytes that are neither TLS nor HTTP: at most a TLS alert record (type 21), then close.
    let mut junk = TcpStream::connect(server.addr).await.unwrap();
    junk.write_all(&[0u8, 1, 2, 3, 4, 5, 6, 7]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(RECV_TIMEOUT, junk.read_to_end(&mut answer))
        .await
        .expect("the server closes a non-TLS connection");
    assert!(read.is_ok() || answer.is_empty(), "{read:?}");
    assert!(
        answer.is_empty() || answer[0] == 21,
        "not a TLS alert: {answer:?}"
    );

    // A client that does not trust the certificate fails its own handshake.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .resolve(HOST, server.addr)
        .timeout(RECV_TIMEOUT)
        .build()
        .unwrap();
    let url = format!("https://{HOST}:{}/health", server.addr.port());
    assert!(untrusting.get(&url).send().await.is_err());

    // None of that harmed the server.
    let ok = pki.https(server.addr).get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

/// Flags, environment, exit code, and text the one stderr line must contain.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], i32, &'a str);

#[test]
fn half_or_broken_tls_configuration_stops_startup_with_one_line() {
    let pki = Pki::new(&[HOST]);
    let other = Pki::new(&[HOST]);
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let cert = pki.cert.to_str().unwrap();
    let key = pki.key.to_str().unwrap();
    let missing = pki.dir.join("missing.pem");
    let missing = missing.to_str().unwrap();
    let garbage = garbage.to_str().unwrap();
    let other_key = other.key.to_str().unwrap();
    let cases: &[Case] = &[
        (&[], &[("TLS_CERT", cert)], 2, "TLS_KEY"),
        (&["--tls-key", key], &[], 2, "TLS_CERT"),
        (
            &[],
            &[("TLS_CERT", garbage), ("TLS_KEY", key)],
            2,
            "TLS_CERT",
        ),
        (
            &[],
            &[("TLS_CERT", cert), ("TLS_KEY", garbage)],
            2,
            "TLS_KEY",
        ),
        (&[], &[("TLS_CERT", missing), ("TLS_KEY", key)], 2, missing),
        (&[], &[("TLS_CERT", cert), ("TLS_KEY", other_key)], 2, "TLS"),
    ];
    for (args, vars, code, mention) in cases {
        // A free `ADDR`, so only the TLS settings can stop start-up.
        let vars: Vec<(&str, &str)> = [("ADDR", "127.0.0.1:0")]
            .into_iter()
            .chain(vars.iter().copied())
            .collect();
        let out = run_refused(args, &vars);
        assert_one_line_refusal(&out, *code, mention, &format!("{args:?} {vars:?}"));
    }
}

/// The flags reach the server: the binary started with `--tls-cert` and `--tls-key` answers
/// HTTPS.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_https_with_the_flags() {
    let pki = Pki::new(&[HOST]);
    let mut child = Command::new(BIN)
        .args([
            "--tls-cert",
            pki.cert.to_str().unwrap(),
            "--tls-key",
            pki.key.to_str().unwrap(),
        ])
        .env("ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("LOG_FORMAT", "text")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(rest) = line.split("addr=").nth(1) {
                assert!(line.contains("tls=true"), "{line}");
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .unwrap();
    let response = pki
        .https(addr)
        .get(format!("https://{HOST}:{}/livez", addr.port()))
        .send()
        .await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(response.expect("HTTPS answer").status(), 200);
}
