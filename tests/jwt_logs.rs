//! Keys and tokens never reach the logs (issue 15, PROTOCOL.md §4): the real binary, with
//! `JWT_SECRET` and `API_KEY` set and `RUST_LOG=debug`, is handed credentials in every place a
//! client can put them (header, query, `auth` frame, a frame that is not JSON, valid and refused
//! alike); then its whole output, stdout and stderr, must hold none of them.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::free_port;
use common::jwt::*;
use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};

/// A wrong admin key close to the real one: a typo of a real key is a secret too.
const WRONG_KEY: &str = "herald-tests-admin-key-4b1c";

/// The binary, killed on drop; its output lines collected from both pipes.
struct Herald {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Herald {
    fn start(port: u16, format: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ADDR", format!("127.0.0.1:{port}"))
            .env("JWT_SECRET", SECRET)
            .env("API_KEY", ADMIN_KEY)
            .env("TOKEN_REFRESH_WINDOW_SECS", "3600")
            .env("RUST_LOG", "debug")
            .env("LOG_FORMAT", format)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        let pipes: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let lines = Arc::clone(&lines);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            child,
            lines,
            readers,
        }
    }

    /// Waits for the "herald listening" line.
    async fn listening(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while !self.text().contains("herald listening") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "herald did not start: {}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, wait for the exit and for both pipes to close; the whole output.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(std::time::Instant::now() < deadline, "herald did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        for reader in self.readers.drain(..) {
            reader.join().expect("log reader");
        }
        self.text()
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token of `sub` for chat topics; each call gives a different token (`jti`).
fn chat(sub: &str, n: u32, ttl: i64) -> String {
    let mut c = claims(sub, ttl, rights(&["chat.*"], &["chat.*"], &["chat.*"]));
    c["jti"] = json!(format!("log-{n}"));
    sign(Algorithm::HS256, &c)
}

/// Drives every credential path against the server at `port`; returns every secret it sent.
async fn exercise(port: u16) -> Vec<String> {
    let http_base = format!("http://127.0.0.1:{port}");
    let ws_base = format!("ws://127.0.0.1:{port}");
    let valid = chat("u-log-rest", 1, 3600);
    let expired = chat("u-log-old", 2, -60);
    let forged = wrong_signature(&claims("u-log-forged", 3600, Value::Null));
    let none = unsigned(&claims("u-log-none", 3600, admin_rights()));
    let padded = {
        let mut c = claims("u-log-big", 3600, Value::Null);
        c["pad"] = json!("p".repeat(9 * 1024));
        sign(Algorithm::HS256, &c)
    };
    let ws_bearer = chat("u-log-ws", 3, 3600);
    let ws_query = chat("u-log-ws", 4, 3600);
    let framed = chat("u-log-frame", 5, 3600);
    let refresh = chat("u-log-frame", 6, 7200);
    let other_sub = chat("u-log-other", 7, 3600);
    let in_broken_frame = chat("u-log-frame", 8, 3600);
    let sub_route = chat("u-log-sub", 9, 3600);

    // REST: header forms, query form, valid and refused.
    let calls: Vec<(Method, &str, Cred<'_>, u16)> = vec![
        (Method::POST, "/publish", Cred::Bearer(&valid), 200),
        (
            Method::GET,
            "/topics/chat.log/history",
            Cred::Bearer(&valid),
            200,
        ),
        (Method::GET, "/topics/chat.log", Cred::Bearer(&expired), 401),
        (Method::GET, "/topics/chat.log", Cred::Bearer(&forged), 401),
        (Method::GET, "/topics/chat.log", Cred::Bearer(&none), 401),
        (Method::GET, "/topics/chat.log", Cred::Bearer(&padded), 401),
        (Method::GET, "/stats", Cred::KeyHeader(ADMIN_KEY), 200),
        (Method::GET, "/stats", Cred::Bearer(ADMIN_KEY), 200),
        (Method::GET, "/stats", Cred::KeyQuery(ADMIN_KEY), 200),
        (Method::GET, "/stats", Cred::KeyHeader(WRONG_KEY), 401),
        (Method::GET, "/stats", Cred::KeyQuery(WRONG_KEY), 401),
        (Method::GET, "/stats", Cred::Bearer(WRONG_KEY), 401),
    ];
    for (method, path, cred, want) in calls {
        let body = (method == Method::POST).then(|| json!({"topic": "chat.log", "data": 1}));
        let (status, body) = rest_at(&http_base, method, path, cred, body).await;
        assert_eq!(status, want, "{path} with {cred:?}: {body}");
    }
    // WebSocket upgrades: Bearer, ?token=, /ws/sub with ?token=, the key as ?api_key=, refused.
    let mut ws = ws_at(&ws_base, "/ws", Cred::Bearer(&ws_bearer))
        .await
        .expect("bearer");
    assert_alive(&mut ws, "bearer").await;
    let mut ws2 = ws_at(&ws_base, "/ws?id=cid-log", Cred::Query(&ws_query))
        .await
        .expect("query");
    assert_alive(&mut ws2, "query").await;
    let mut sub = ws_at(
        &ws_base,
        "/ws/sub/chat.log?id=sub-log",
        Cred::Query(&sub_route),
    )
    .await
    .expect("/ws/sub");
    assert_alive(&mut sub, "/ws/sub").await;
    let mut keyed = ws_at(&ws_base, "/ws", Cred::KeyQuery(ADMIN_KEY))
        .await
        .expect("key");
    assert_alive(&mut keyed, "api_key").await;
    for cred in [
        Cred::Query(&forged),
        Cred::Bearer(&expired),
        Cred::KeyQuery(WRONG_KEY),
        Cred::Query(&padded),
    ] {
        assert!(
            ws_at(&ws_base, "/ws", cred).await.is_err(),
            "{cred:?} upgraded"
        );
    }
    // In-band: valid, refused, refresh, refresh with another sub, inside frames that are not JSON.
    let mut anon = ws_at(&ws_base, "/ws", Cred::None).await.expect("anonymous");
    let err = authenticate(&mut anon, &forged, "bad").await;
    assert_eq!(err["type"], "error", "{err}");
    let ack = authenticate(&mut anon, &framed, "good").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = authenticate(&mut anon, &refresh, "refresh").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let err = authenticate(&mut anon, &other_sub, "other").await;
    assert_eq!(err["error"]["code"], "FORBIDDEN", "{err}");
    for text in [
        format!(r#"{{"type":"auth","token":"{in_broken_frame}""#),
        format!("auth {in_broken_frame}"),
    ] {
        anon.send_text(&text).await;
        let err = reply(&mut anon).await;
        assert_eq!(err["error"]["code"], "BAD_REQUEST", "{err}");
    }
    let ack = try_publish(&mut anon, "chat.log", json!("bye"), "p").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for ws in [&mut ws, &mut ws2, &mut sub, &mut keyed, &mut anon] {
        let _ = futures_util::SinkExt::close(&mut ws.inner).await;
    }
    vec![
        SECRET.to_string(),
        ADMIN_KEY.to_string(),
        WRONG_KEY.to_string(),
        valid,
        expired,
        forged,
        none,
        padded,
        ws_bearer,
        ws_query,
        framed,
        refresh,
        other_sub,
        in_broken_frame,
        sub_route,
    ]
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_secret_or_token_reaches_the_log_at_debug_level() {
    for format in ["text", "json"] {
        let port = free_port();
        let herald = Herald::start(port, format);
        herald.listening().await;
        let secrets = exercise(port).await;
        let log = herald.stop();
        // The log is real: debug lines, requests, and the token's sub as the client's identity.
        assert!(
            log.lines().count() > 20,
            "{format}: too little logged to judge:\n{log}"
        );
        assert!(
            log.contains("DEBUG"),
            "{format}: RUST_LOG=debug is not in effect:\n{log}"
        );
        for sub in ["u-log-ws", "u-log-frame"] {
            assert!(
                log.contains(sub),
                "{format}: `{sub}` (client_id) never logged:\n{log}"
            );
        }
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{format}: a secret reached the log: {}…",
                &secret[..secret.len().min(12)]
            );
            for part in secret.split('.').filter(|p| p.len() >= 16) {
                let line = log.lines().find(|l| l.contains(part));
                assert!(line.is_none(), "{format}: part of a token logged: {line:?}");
            }
        }
        // Nothing that looks like a JWT at all (every base64url JSON object starts so).
        let jwtish = log.lines().find(|l| l.contains("eyJ"));
        assert!(
            jwtish.is_none(),
            "{format}: a JWT piece in the log: {jwtish:?}"
        );
    }
}
